//! ballast-capture: every prediction on record — durable, redacted, queryable.
//!
//! - [`redact`]: PII detectors (e-mail, phone, payment card, US SSN, IBAN) and per-field
//!   actions (drop, mask, keyed hash), applied before anything is written.
//!
//! The crate depends on `ballast-core` only; the serving path (`ballast-serve`) calls into it.

pub mod redact;
