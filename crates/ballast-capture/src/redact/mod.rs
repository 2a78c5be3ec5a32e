//! Redaction before anything is written: detectors for personal data inside strings and the
//! per-field actions of a model's `[log.redact]` policy.
