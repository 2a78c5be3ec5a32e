//! ballast-capture: every prediction on record — durable, redacted, queryable.
//!
//! - [`record`]: one prediction as logged, and its binary form in the WAL.
//! - [`wal`]: numbered files of checksummed frames; recovery stops at a torn tail.
//! - [`log`]: the service — bounded queue, writer thread with group commit, segmenter thread.
//! - [`segment`]: records of one model, version and hour as a Parquet file (Hive partitions).
//! - [`sink`]: where segments go: a local directory or an object store, one trait.
//! - [`retention`]: segments expired by age, evicted by size, small ones compacted.
//! - [`query`]: `ballast logs query` — partition, row-group and bloom-filter pruning.
//! - [`policy`]: a model's `[log.redact]` compiled into the redactor the writer applies.
//! - [`redact`]: PII detectors (e-mail, phone, payment card, US SSN, IBAN) and per-field
//!   actions (drop, mask, keyed hash), applied before anything is written.
//!
//! The crate depends on `ballast-core` only; the serving path (`ballast-serve`) calls into it.

pub mod error;
pub mod log;
pub mod metrics;
pub mod policy;
pub mod query;
pub mod record;
pub mod redact;
pub mod retention;
pub mod segment;
pub mod sink;
pub mod wal;

pub use error::CaptureError;
pub use log::{Durability, LogOptions, PredictionLog, Redactor, Refusal, Reservation};
pub use record::{Record, Status};
pub use sink::{LocalSink, ObjectStoreSink, PredictionSink};
