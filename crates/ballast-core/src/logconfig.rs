//! The `[log]` table of a model's `config.toml`: whether and how its predictions are logged,
//! and what is redacted before anything is written.
//!
//! ```toml
//! [log]
//! enabled = true            # default true (the server's --no-prediction-log turns every model off)
//! sample = 1.0              # share of requests logged, 0..=1
//! durability = "durable"    # or "buffered"
//! [log.redact]
//! detect = ["email", "phone", "card", "ssn", "iban"]   # string content scanned (see below)
//! inputs = { ssn = "drop", note = "mask" }               # per tensor: drop | mask | hash
//! outputs = { }
//! parameters = { customer_id = "hash" }                  # per request parameter
//! ```
//!
//! `detect` left out means every detector for a model with BYTES inputs or outputs or with
//! request parameters, and none for a purely numeric one; `detect = []` turns scanning off.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The detector names `detect` accepts.
pub const DETECTORS: [&str; 5] = ["email", "phone", "card", "ssn", "iban"];

/// Logging is on unless a model or the server turns it off: predictions are on record by default.
pub const DEFAULT_LOG_ENABLED: bool = true;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogDurability {
    /// Answers wait for the fsync that covers their record (group-committed).
    #[default]
    Durable,
    /// Answers do not wait; a crash loses at most the queue and the last second.
    Buffered,
}

impl LogDurability {
    pub fn as_str(self) -> &'static str {
        match self {
            LogDurability::Durable => "durable",
            LogDurability::Buffered => "buffered",
        }
    }
}

/// What happens to a named field before the record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAction {
    /// Not written at all.
    Drop,
    /// Each value masked (all but its last characters replaced by `*`).
    Mask,
    /// Each value replaced by a keyed HMAC, so equal values still join.
    Hash,
}

impl FieldAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldAction::Drop => "drop",
            FieldAction::Mask => "mask",
            FieldAction::Hash => "hash",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedactConfig {
    /// `None`: the default rule (every detector when the model has strings to scan).
    pub detect: Option<Vec<String>>,
    pub inputs: BTreeMap<String, FieldAction>,
    pub outputs: BTreeMap<String, FieldAction>,
    pub parameters: BTreeMap<String, FieldAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub enabled: bool,
    pub sample: f64,
    pub durability: LogDurability,
    pub redact: RedactConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_LOG_ENABLED,
            sample: 1.0,
            durability: LogDurability::Durable,
            redact: RedactConfig::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    enabled: Option<bool>,
    sample: Option<f64>,
    durability: Option<String>,
    redact: Option<RawRedact>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedact {
    detect: Option<Vec<String>>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    outputs: BTreeMap<String, String>,
    #[serde(default)]
    parameters: BTreeMap<String, String>,
}

impl RawLog {
    /// Applies defaults, pushing each problem (naming its key) to `problems`.
    pub(crate) fn resolve(self, problems: &mut Vec<String>) -> LogConfig {
        let mut cfg = LogConfig::default();
        if let Some(e) = self.enabled {
            cfg.enabled = e;
        }
        if let Some(s) = self.sample {
            if !(0.0..=1.0).contains(&s) {
                problems.push(format!("log.sample must be between 0 and 1, got {s}"));
            }
            cfg.sample = s;
        }
        match self.durability.as_deref() {
            None => {}
            Some("durable") => cfg.durability = LogDurability::Durable,
            Some("buffered") => cfg.durability = LogDurability::Buffered,
            Some(other) => problems.push(format!(
                "log.durability must be \"durable\" or \"buffered\", got \"{other}\""
            )),
        }
        let Some(r) = self.redact else { return cfg };
        if let Some(detect) = &r.detect {
            for d in detect {
                if !DETECTORS.contains(&d.as_str()) {
                    problems.push(format!(
                        "log.redact.detect: unknown detector \"{d}\", expected some of {}",
                        DETECTORS.join(", ")
                    ));
                }
            }
        }
        cfg.redact.detect = r.detect;
        for (table, raw, out) in [
            ("inputs", r.inputs, &mut cfg.redact.inputs),
            ("outputs", r.outputs, &mut cfg.redact.outputs),
            ("parameters", r.parameters, &mut cfg.redact.parameters),
        ] {
            for (field, action) in raw {
                let a = match action.as_str() {
                    "drop" => FieldAction::Drop,
                    "mask" => FieldAction::Mask,
                    "hash" => FieldAction::Hash,
                    other => {
                        problems.push(format!(
                            "log.redact.{table}.{field} must be drop, mask or hash, got \"{other}\""
                        ));
                        continue;
                    }
                };
                out.insert(field, a);
            }
        }
        cfg
    }
}

#[cfg(test)]
mod tests {
    use crate::ModelConfig;

    use super::*;

    #[test]
    fn logging_is_on_and_durable_by_default() {
        let c = ModelConfig::from_toml("", "config.toml").map(|c| c.log);
        assert_eq!(c.ok(), Some(LogConfig::default()));
        assert!(LogConfig::default().enabled);
        assert_eq!(LogConfig::default().durability, LogDurability::Durable);
    }

    #[test]
    fn parses_the_log_table_with_redaction() {
        let text = r#"
[log]
enabled = true
sample = 0.25
durability = "buffered"
[log.redact]
detect = ["email", "card"]
inputs = { ssn = "drop", note = "mask" }
parameters = { customer = "hash" }
"#;
        let c = ModelConfig::from_toml(text, "config.toml").map(|c| c.log);
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.sample, 0.25);
        assert_eq!(c.durability, LogDurability::Buffered);
        assert_eq!(c.redact.detect, Some(vec!["email".into(), "card".into()]));
        assert_eq!(c.redact.inputs.get("ssn"), Some(&FieldAction::Drop));
        assert_eq!(c.redact.inputs.get("note"), Some(&FieldAction::Mask));
        assert_eq!(
            c.redact.parameters.get("customer"),
            Some(&FieldAction::Hash)
        );
    }

    #[test]
    fn every_bad_log_key_is_named() {
        let text = r#"
[log]
sample = 1.5
durability = "sometimes"
[log.redact]
detect = ["email", "passport"]
inputs = { note = "shred" }
"#;
        let Err(e) = ModelConfig::from_toml(text, "config.toml") else {
            panic!("accepted")
        };
        for needle in [
            "log.sample",
            "log.durability",
            "unknown detector \"passport\"",
            "log.redact.inputs.note",
        ] {
            assert!(e.message.contains(needle), "{needle} in {}", e.message);
        }
        let Err(e) = ModelConfig::from_toml("[log]\nsampel = 1\n", "config.toml") else {
            panic!("accepted")
        };
        assert!(e.message.contains("sampel"), "{}", e.message);
    }
}
