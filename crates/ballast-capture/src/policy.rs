//! A model's redaction policy (`[log.redact]`), compiled once per version and applied to each
//! record on the writer thread before it is framed: nothing unredacted reaches the WAL.
//!
//! Order: named fields first (`drop` removes the tensor or parameter, `mask` and `hash`
//! replace each value with its masked or keyed-hash text, so the column becomes strings),
//! then the detectors over every remaining string — BYTES tensors and string parameters,
//! nested ones included, tensor names and parameter keys (a client's text too) — replacing
//! each detected span by its placeholder.
//! Every detector runs unless `detect` says otherwise: they only ever read strings, so a
//! purely numeric model pays nothing for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use ballast_core::{FieldAction, LogConfig, ModelSignature, Tensor, TensorData};
use serde_json::Value;

use crate::error::CaptureError;
use crate::log::Redactor;
use crate::record::Record;
use crate::redact::{self, Hasher, Kind, Scanner};

pub struct Policy {
    scanner: Option<Scanner>,
    inputs: BTreeMap<String, FieldAction>,
    outputs: BTreeMap<String, FieldAction>,
    parameters: BTreeMap<String, FieldAction>,
    hasher: Hasher,
}

impl Policy {
    /// Compiles a version's policy; field names are checked against its signature (every
    /// problem named). `key` is the HMAC key of `hash`.
    pub fn build(
        model: &str,
        config: &LogConfig,
        signature: &ModelSignature,
        key: &[u8],
    ) -> Result<Self, CaptureError> {
        let r = &config.redact;
        let kinds: Vec<Kind> = match &r.detect {
            None => Kind::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| Kind::parse(n, "log.redact.detect"))
                .collect::<Result<_, _>>()
                .map_err(|e| CaptureError::Config(e.to_string()))?,
        };
        let mut problems = Vec::new();
        for (table, fields, specs) in [
            ("inputs", &r.inputs, &signature.inputs),
            ("outputs", &r.outputs, &signature.outputs),
        ] {
            for name in fields.keys() {
                if !specs.iter().any(|s| s.name == *name) {
                    let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    problems.push(format!(
                        "log.redact.{table}.{name}: model '{model}' has no such {} (it has {})",
                        &table[..table.len() - 1],
                        known.join(", ")
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(CaptureError::Config(problems.join("; ")));
        }
        Ok(Self {
            scanner: (!kinds.is_empty()).then(|| Scanner::new(&kinds)),
            inputs: r.inputs.clone(),
            outputs: r.outputs.clone(),
            parameters: r.parameters.clone(),
            hasher: Hasher::new(key),
        })
    }

    /// As a redactor for the log.
    pub fn into_redactor(self) -> Arc<dyn Redactor> {
        Arc::new(self)
    }

    fn replace(&self, action: FieldAction, text: &str) -> String {
        match action {
            FieldAction::Mask => redact::mask(text),
            FieldAction::Hash => self.hasher.hash(text.as_bytes()),
            FieldAction::Drop => String::new(),
        }
    }

    fn tensors(
        &self,
        tensors: &mut Vec<Tensor>,
        fields: &BTreeMap<String, FieldAction>,
        counts: &mut [u64; 5],
    ) {
        tensors.retain(|t| fields.get(&t.name) != Some(&FieldAction::Drop));
        for t in tensors.iter_mut() {
            // The name is the client's too (a request may name an input that does not exist,
            // and such a failed request is logged with it): scanned like any string, once the
            // field's action is looked up.
            let named = fields.get(&t.name).copied();
            if let Some(scanner) = &self.scanner
                && let std::borrow::Cow::Owned(clean) = scanner.redact(&t.name, counts)
            {
                t.name = clean;
            }
            if let Some(action) = named {
                let texts: Vec<Vec<u8>> = value_texts(&t.data)
                    .iter()
                    .map(|s| self.replace(action, s).into_bytes())
                    .collect();
                t.data = TensorData::Bytes(texts);
                continue;
            }
            if let (TensorData::Bytes(values), Some(scanner)) = (&mut t.data, &self.scanner) {
                for v in values.iter_mut() {
                    let text = String::from_utf8_lossy(v);
                    if let std::borrow::Cow::Owned(clean) = scanner.redact(&text, counts) {
                        *v = clean.into_bytes();
                    } else if let std::borrow::Cow::Owned(lossy) = text {
                        // Invalid UTF-8 is logged as its lossy text (the segment's column is
                        // UTF-8); scanning ran on that text.
                        *v = lossy.into_bytes();
                    }
                }
            }
        }
    }

    fn parameters(&self, params: &str, counts: &mut [u64; 5]) -> Option<String> {
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(params) else {
            // Not an object (front ends only produce objects): scan it as text.
            return Some(self.scan(params, counts));
        };
        map.retain(|k, _| self.parameters.get(k) != Some(&FieldAction::Drop));
        for (k, v) in map.iter_mut() {
            match self.parameters.get(k) {
                Some(&action) => {
                    let text = match &*v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    *v = Value::String(self.replace(action, &text));
                }
                None => Self::scan_value(self.scanner.as_ref(), v, counts),
            }
        }
        if let Some(scanner) = &self.scanner {
            map = Self::scan_keys(scanner, map, counts);
        }
        (!map.is_empty()).then(|| Value::Object(map).to_string())
    }

    fn scan(&self, text: &str, counts: &mut [u64; 5]) -> String {
        match &self.scanner {
            Some(s) => s.redact(text, counts).into_owned(),
            None => text.to_string(),
        }
    }

    fn scan_value(scanner: Option<&Scanner>, v: &mut Value, counts: &mut [u64; 5]) {
        match v {
            Value::String(s) => {
                if let Some(scanner) = scanner
                    && let std::borrow::Cow::Owned(clean) = scanner.redact(s, counts)
                {
                    *s = clean;
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|i| Self::scan_value(scanner, i, counts)),
            Value::Object(map) => {
                map.values_mut()
                    .for_each(|i| Self::scan_value(scanner, i, counts));
                if let Some(scanner) = scanner {
                    *map = Self::scan_keys(scanner, std::mem::take(map), counts);
                }
            }
            _ => {}
        }
    }

    /// The object with its keys scanned: a key is client text like any value (two keys that
    /// redact to the same text keep the last value).
    fn scan_keys(
        scanner: &Scanner,
        map: serde_json::Map<String, Value>,
        counts: &mut [u64; 5],
    ) -> serde_json::Map<String, Value> {
        map.into_iter()
            .map(|(k, v)| match scanner.redact(&k, counts) {
                std::borrow::Cow::Owned(clean) => (clean, v),
                std::borrow::Cow::Borrowed(_) => (k, v),
            })
            .collect()
    }
}

/// Each value of a tensor as text (numbers in their shortest round-trip form).
fn value_texts(data: &TensorData) -> Vec<String> {
    match data {
        TensorData::Bool(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::U8(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::I32(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::I64(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::F16(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::F32(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::F64(v) => v.iter().map(ToString::to_string).collect(),
        TensorData::Bytes(v) => v
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
    }
}

impl Redactor for Policy {
    fn redact(&self, record: &mut Record) {
        let mut counts = [0u64; 5];
        self.tensors(&mut record.inputs, &self.inputs, &mut counts);
        self.tensors(&mut record.outputs, &self.outputs, &mut counts);
        if let Some(p) = record.parameters.take() {
            record.parameters = self.parameters(&p, &mut counts);
        }
        // A client's request id is echoed to it; it is scanned like any string so that an id
        // made of an e-mail address is not written as one. An id the server generated holds
        // nothing of the client's and is not scanned.
        if !record.id_generated
            && let Some(scanner) = &self.scanner
            && let std::borrow::Cow::Owned(clean) = scanner.redact(&record.id, &mut counts)
        {
            record.id = clean;
        }
        if counts.iter().any(|&n| n > 0) {
            redact::record_counts(&counts);
        }
    }
}

/// The `hash` key: read from `path`, or on first use made there with 32 random bytes
/// (mode 0600), so hashed values still join across restarts.
pub fn load_or_create_key(path: &std::path::Path) -> Result<Vec<u8>, CaptureError> {
    match std::fs::read(path) {
        Ok(k) if k.len() >= 16 => return Ok(k),
        Ok(k) => {
            return Err(CaptureError::Config(format!(
                "{}: a hash key needs at least 16 bytes, the file has {}",
                path.display(),
                k.len()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CaptureError::io(format!("reading {}", path.display()), e)),
    }
    let key: [u8; 32] = rand::random();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CaptureError::io(format!("creating {}", dir.display()), e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(path).and_then(|mut f| {
        use std::io::Write;
        f.write_all(&key)?;
        f.sync_all()
    });
    match written {
        Ok(()) => Ok(key.to_vec()),
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)
            .map_err(|e| CaptureError::io(format!("reading {}", path.display()), e)),
        Err(e) => Err(CaptureError::io(format!("writing {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail by panicking

    use ballast_core::{LogConfig, ModelSignature, Tensor, TensorData};

    use super::*;
    use crate::record::Status;

    fn record(inputs: Vec<Tensor>, parameters: Option<&str>) -> Record {
        Record {
            id_generated: false,
            id: "r-1".into(),
            trace_id: None,
            time_us: 0,
            tenant: String::new(),
            model: "notes".into(),
            version: "1".into(),
            requested: None,
            arm: None,
            protocol: "http".into(),
            priority: "default".into(),
            status: Status::Error,
            code: Some("invalid_argument".into()),
            queue_us: None,
            engine_us: None,
            batch_rows: None,
            total_us: 1,
            input_schema: "0".into(),
            parameters: parameters.map(str::to_string),
            inputs,
            outputs: Vec::new(),
        }
    }

    fn policy() -> Policy {
        let signature = ModelSignature {
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        Policy::build("notes", &LogConfig::default(), &signature, &[7; 32]).unwrap()
    }

    #[test]
    fn a_client_request_id_is_scanned_and_a_generated_one_is_not() {
        let p = policy();
        let mut client = record(Vec::new(), None);
        client.id = "jane.doe@example.com".into();
        p.redact(&mut client);
        assert_eq!(client.id, "<EMAIL>");
        // The server's own ids are hex counters: nothing of the client's, never scanned. (An
        // e-mail address here stands for "what a scan would change".)
        let mut generated = record(Vec::new(), None);
        generated.id = "jane.doe@example.com".into();
        generated.id_generated = true;
        p.redact(&mut generated);
        assert_eq!(generated.id, "jane.doe@example.com");
    }

    #[test]
    fn tensor_names_holding_personal_data_are_redacted() {
        // A client may name an input that does not exist; the failed request is logged with
        // the name it sent.
        let t = Tensor::new(
            "jane.doe@example.com",
            vec![1],
            TensorData::Bytes(vec![b"call 4111 1111 1111 1111".to_vec()]),
        )
        .unwrap();
        let mut r = record(vec![t], None);
        policy().redact(&mut r);
        assert_eq!(r.inputs[0].name, "<EMAIL>");
        assert_eq!(
            r.inputs[0].data,
            TensorData::Bytes(vec![b"call <CARD>".to_vec()])
        );
    }

    #[test]
    fn parameter_keys_holding_personal_data_are_redacted_at_every_depth() {
        let mut r = record(
            Vec::new(),
            Some(r#"{"jane.doe@example.com": 1, "nested": {"078-05-1120": "x", "ok": "y"}}"#),
        );
        policy().redact(&mut r);
        let p: Value = serde_json::from_str(r.parameters.as_deref().unwrap()).unwrap();
        assert_eq!(
            p,
            serde_json::json!({"<EMAIL>": 1, "nested": {"<SSN>": "x", "ok": "y"}})
        );
    }
}
