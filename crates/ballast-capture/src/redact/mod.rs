//! Redaction before anything is written: detectors for personal data inside strings and the
//! per-field actions of a model's `[log.redact]` policy.
//!
//! - [`Scanner`] finds e-mail addresses, phone numbers, payment card numbers, US SSNs and IBANs
//!   in free text and replaces each span by a placeholder (`<EMAIL>`, `<PHONE>`, …), keeping the
//!   rest of the string. Each detector is a candidate regex (the `regex` crate: linear time, no
//!   backtracking) followed by validation in plain code: Luhn and the IIN table for cards, mod-97
//!   and the registry length for IBANs, area/group/serial rules for SSNs, E.164 country codes and
//!   digit counts for phones. Checksums and structure, not context scores, decide.
//! - [`Action`], [`Hasher`] and [`mask`]: what happens to a whole field (drop, mask, keyed hash).
//! - [`REDACTIONS_TOTAL`] and [`record_counts`]: per-detector counters for `/metrics`.
//! - [`Redacted`]: client text (request ids, error messages quoting a request) as the
//!   server's own log lines write it.

mod action;
mod card;
mod email;
mod iban;
mod phone;
mod scanner;
mod ssn;
mod text;

pub use action::{Action, Hasher, mask};
pub use scanner::Scanner;

/// A kind of personal data the scanner detects. `Kind as usize` indexes the counts array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email = 0,
    Phone = 1,
    Card = 2,
    Ssn = 3,
    Iban = 4,
}

impl Kind {
    /// Every kind, in `Kind as usize` order.
    pub const ALL: [Kind; 5] = [Kind::Email, Kind::Phone, Kind::Card, Kind::Ssn, Kind::Iban];

    /// The name used in policies (`detect = ["email", …]`) and as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::Ssn => "ssn",
            Kind::Iban => "iban",
        }
    }

    /// What replaces a detected span.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "<EMAIL>",
            Kind::Phone => "<PHONE>",
            Kind::Card => "<CARD>",
            Kind::Ssn => "<SSN>",
            Kind::Iban => "<IBAN>",
        }
    }

    /// Parses a detector name from a policy; `field` names the config field in the error.
    pub fn parse(name: &str, field: &str) -> Result<Kind, RedactError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| RedactError::UnknownDetector {
                field: field.to_owned(),
                name: name.to_owned(),
            })
    }

    /// When two detections overlap, the higher rank wins (checksummed kinds first).
    pub(crate) fn rank(self) -> u8 {
        match self {
            Kind::Iban => 4,
            Kind::Card => 3,
            Kind::Email => 2,
            Kind::Ssn => 1,
            Kind::Phone => 0,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detection: byte offsets into the scanned string, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

/// A policy that names something this module does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedactError {
    #[error("{field}: unknown detector {name:?}; expected one of email, phone, card, ssn, iban")]
    UnknownDetector { field: String, name: String },
    #[error("{field}: unknown action {name:?}; expected one of drop, mask, hash")]
    UnknownAction { field: String, name: String },
}

/// Counter of redacted spans, labelled `detector` = [`Kind::as_str`] (five values, bounded).
pub const REDACTIONS_TOTAL: &str = "ballast_redactions_total";

/// Adds counts gathered by [`Scanner::redact`] (indexed by `Kind as usize`) to
/// [`REDACTIONS_TOTAL`]; kinds with a zero count are not touched.
pub fn record_counts(counts: &[u64; 5]) {
    for kind in Kind::ALL {
        let n = counts[kind as usize];
        if n > 0 {
            metrics::counter!(REDACTIONS_TOTAL, "detector" => kind.as_str()).increment(n);
        }
    }
}

/// Client text as the server's own log lines write it, every detector's spans replaced
/// (`error = %Redacted(&message)`). The scan runs when the value is formatted, that is only
/// for an event that is written. Not counted in [`REDACTIONS_TOTAL`], which counts what the
/// prediction log redacted.
pub struct Redacted<'a>(pub &'a str);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        static SCANNER: std::sync::LazyLock<Scanner> = std::sync::LazyLock::new(Scanner::all);
        f.write_str(&SCANNER.redact(self.0, &mut [0; 5]))
    }
}

/// Registers the help text of [`REDACTIONS_TOTAL`] with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        REDACTIONS_TOTAL,
        "Spans of personal data replaced before a prediction was logged, by detector."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_parse_accepts_every_name_and_round_trips() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str(), "detect"), Ok(k));
            assert_eq!(Kind::ALL[k as usize], k);
        }
    }

    #[test]
    fn kind_parse_error_names_the_field_and_the_allowed_names() {
        let err = Kind::parse("passport", "models.fraud.log.redact.detect")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("models.fraud.log.redact.detect"), "{err}");
        assert!(err.contains("\"passport\""), "{err}");
        assert!(err.contains("email, phone, card, ssn, iban"), "{err}");
    }

    /// Records counter increments as (name, detector label, value).
    #[derive(Default)]
    struct Tape(std::sync::Arc<std::sync::Mutex<Vec<(String, String, u64)>>>);

    struct TapeCounter(
        std::sync::Arc<std::sync::Mutex<Vec<(String, String, u64)>>>,
        String,
        String,
    );

    impl metrics::CounterFn for TapeCounter {
        fn increment(&self, value: u64) {
            if let Ok(mut v) = self.0.lock() {
                v.push((self.1.clone(), self.2.clone(), value));
            }
        }
        fn absolute(&self, _: u64) {}
    }

    impl metrics::Recorder for Tape {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            let label = key
                .labels()
                .find(|l| l.key() == "detector")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            metrics::Counter::from_arc(std::sync::Arc::new(TapeCounter(
                self.0.clone(),
                key.name().to_owned(),
                label,
            )))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn record_counts_increments_the_counter_per_detector_and_skips_zeros() {
        let tape = Tape::default();
        let seen = tape.0.clone();
        metrics::with_local_recorder(&tape, || record_counts(&[2, 0, 1, 0, 0]));
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            [
                (REDACTIONS_TOTAL.to_owned(), "email".to_owned(), 2),
                (REDACTIONS_TOTAL.to_owned(), "card".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn placeholders_are_the_documented_ones() {
        let p: Vec<_> = Kind::ALL.iter().map(|k| k.placeholder()).collect();
        assert_eq!(p, ["<EMAIL>", "<PHONE>", "<CARD>", "<SSN>", "<IBAN>"]);
    }
}
