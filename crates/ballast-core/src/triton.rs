//! Triton's model configuration (`config.pbtxt`) mapped onto [`ModelConfig`], so an existing
//! Triton model repository serves as it is.
//!
//! Fields with a meaning here are read: `max_batch_size`, `input` / `output` (datatypes and dims;
//! Triton leaves the batch dimension out of `dims` when `max_batch_size > 0`),
//! `dynamic_batching` (queue delay, default timeout, queue size), `instance_group` (count),
//! `version_policy` (Triton's default, the latest version only, applies), `platform` /
//! `backend` (ONNX Runtime, FIL with its `model_type`), `default_model_filename`. Every other
//! field is named in a warning, never silently dropped. Tensor names in the configuration that
//! the model file does not use (FIL's `input__0`, `output__0`) rename the model's tensors in
//! order.

use std::time::Duration;

use crate::config::{EngineChoice, ModelConfig, ModelFormat, TensorOverride};
use crate::error::Error;
use crate::pbtxt::{self, Message, Value};
use crate::tensor::DataType;

/// Which versions of a model are served (Triton's `version_policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The newest `n` versions (Triton's default: 1).
    Latest(usize),
    All,
    Specific(Vec<u64>),
}

impl VersionPolicy {
    /// The versions to serve out of `available` (ascending).
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::All => available.to_vec(),
            VersionPolicy::Latest(n) => available[available.len().saturating_sub(*n)..].to_vec(),
            VersionPolicy::Specific(v) => available
                .iter()
                .copied()
                .filter(|a| v.contains(a))
                .collect(),
        }
    }
}

/// A Triton configuration read for ballast.
#[derive(Debug, Clone)]
pub struct TritonConfig {
    pub config: ModelConfig,
    pub version_policy: VersionPolicy,
    /// Fields that have no effect here, and why: to be logged at `warn`.
    pub warnings: Vec<String>,
}

const KNOWN: &[&str] = &[
    "name",
    "platform",
    "backend",
    "max_batch_size",
    "input",
    "output",
    "instance_group",
    "dynamic_batching",
    "version_policy",
    "default_model_filename",
    "parameters",
];

/// Parses `config.pbtxt` text; `origin` names the file in messages.
pub fn from_pbtxt(text: &str, origin: &str) -> Result<TritonConfig, Error> {
    let m = pbtxt::parse(text).map_err(|e| Error::invalid(format!("{origin}: {e}")))?;
    let mut warnings = Vec::new();
    let mut problems = Vec::new();
    let mut cfg = ModelConfig::default();

    for name in m.names() {
        if !KNOWN.contains(&name) {
            warnings.push(format!("{name}: not used by ballast; ignored"));
        }
    }

    let int = |m: &Message, key: &str| m.get(key).and_then(Value::as_i64);
    if let Some(v) = m.get("max_batch_size") {
        match v.as_i64() {
            Some(n) if (0..=65_536).contains(&n) => cfg.max_batch_size = n as usize,
            _ => problems.push(format!("max_batch_size must be 0..=65536, got {v}")),
        }
    } else {
        // Triton's default: 0, no batching dimension.
        cfg.max_batch_size = 0;
    }

    // Engine and file.
    let platform = m.get("platform").and_then(Value::as_str).unwrap_or("");
    let backend = m.get("backend").and_then(Value::as_str).unwrap_or("");
    let params = parameters(&m);
    match (platform, backend) {
        ("onnxruntime_onnx", _) | (_, "onnxruntime") | ("", "") => {}
        (_, "fil") => {
            cfg.backend = EngineChoice::Trees;
            let model_type = params
                .iter()
                .find(|(k, _)| k == "model_type")
                .map(|(_, v)| v.as_str())
                .unwrap_or("xgboost");
            let (file, format) = match model_type {
                "xgboost_json" => ("xgboost.json", ModelFormat::Xgboost),
                "xgboost_ubj" => ("xgboost.ubj", ModelFormat::Xgboost),
                "lightgbm" => ("model.txt", ModelFormat::Lightgbm),
                "xgboost" => {
                    problems.push(
                        "FIL model_type \"xgboost\" is XGBoost's legacy binary format, which ballast \
                         does not read; re-save the booster as JSON or UBJSON (model_type \
                         \"xgboost_json\" / \"xgboost_ubj\")"
                            .into(),
                    );
                    ("xgboost.model", ModelFormat::Xgboost)
                }
                other => {
                    problems.push(format!(
                        "FIL model_type \"{other}\" is not supported (xgboost_json, xgboost_ubj, lightgbm are)"
                    ));
                    ("model", ModelFormat::Xgboost)
                }
            };
            cfg.model_file = Some(file.to_string());
            cfg.format = Some(format);
            for (k, _) in &params {
                if k != "model_type" {
                    warnings.push(format!(
                        "parameters.{k}: a FIL setting with no effect on ballast's tree engine \
                         (outputs are the tree engine's: see the model's metadata)"
                    ));
                }
            }
        }
        (p, b) => problems.push(format!(
            "platform \"{p}\" / backend \"{b}\" is not served by ballast (it serves ONNX models, \
             and XGBoost / LightGBM through backend \"fil\")"
        )),
    }
    if !matches!(backend, "fil") {
        for (k, _) in &params {
            warnings.push(format!("parameters.{k}: not used by ballast; ignored"));
        }
    }
    if let Some(file) = m.get("default_model_filename").and_then(Value::as_str) {
        if file.is_empty() || file.contains('/') || file.contains('\\') || file == ".." {
            problems.push(format!(
                "default_model_filename must be a file name, got \"{file}\""
            ));
        } else {
            cfg.model_file = Some(file.to_string());
            // Not FIL: an ONNX file, whatever its extension.
            if cfg.format.is_none() {
                cfg.format = Some(ModelFormat::Onnx);
            }
        }
    }

    // Tensors.
    let batch = cfg.max_batch_size > 0;
    for (kind, list) in [("input", &mut cfg.inputs), ("output", &mut cfg.outputs)] {
        for (i, v) in m.all(kind).enumerate() {
            let Value::Message(t) = v else {
                problems.push(format!("{kind}[{i}] must be a message"));
                continue;
            };
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                problems.push(format!("{kind}[{i}] has no name"));
                continue;
            };
            let dtype = match t.get("data_type").and_then(Value::as_ident) {
                None => None,
                Some(d) => match datatype(d) {
                    Some(dt) => Some(dt),
                    None => {
                        warnings.push(format!(
                            "{kind} '{name}': data_type {d} is not served by ballast; the model \
                             file's datatype is used"
                        ));
                        None
                    }
                },
            };
            let dims: Vec<i64> = t.all("dims").filter_map(Value::as_i64).collect();
            let shape = if t.get("dims").is_some() {
                let mut s = Vec::with_capacity(dims.len() + 1);
                if batch {
                    s.push(-1);
                }
                s.extend(dims.iter().map(|&d| if d < 0 { -1 } else { d }));
                Some(s)
            } else {
                None
            };
            for field in t.names() {
                if !matches!(field, "name" | "data_type" | "dims") {
                    warnings.push(format!(
                        "{kind} '{name}': {field} is not used by ballast; ignored"
                    ));
                }
            }
            list.push(TensorOverride {
                name: name.to_string(),
                dtype,
                shape,
                position: Some(i),
            });
        }
    }

    // Scheduling.
    if let Some(db) = m.message("dynamic_batching") {
        if let Some(us) = int(db, "max_queue_delay_microseconds") {
            cfg.max_queue_delay = Duration::from_micros(us.max(0) as u64);
        }
        if let Some(policy) = db.message("default_queue_policy") {
            if let Some(us) = int(policy, "default_timeout_microseconds").filter(|&u| u > 0) {
                cfg.default_timeout = Some(Duration::from_micros(us as u64));
            }
            if let Some(n) = int(policy, "max_queue_size").filter(|&n| n > 0) {
                cfg.max_queue_size = n as usize;
            }
            for field in policy.names() {
                if !matches!(field, "default_timeout_microseconds" | "max_queue_size") {
                    warnings.push(format!(
                        "dynamic_batching.default_queue_policy.{field}: ignored"
                    ));
                }
            }
        }
        for field in db.names() {
            match field {
                "max_queue_delay_microseconds" | "default_queue_policy" => {}
                "preferred_batch_size" => warnings.push(
                    "dynamic_batching.preferred_batch_size: ballast forms batches up to \
                     max_batch_size from what is queued; ignored"
                        .into(),
                ),
                other => warnings.push(format!("dynamic_batching.{other}: ignored")),
            }
        }
    } else if batch {
        warnings.push(
            "no dynamic_batching: Triton would run each request alone; ballast still merges \
             queued requests into batches (outputs are the same)"
                .into(),
        );
    }
    let mut instances = 0usize;
    for g in m.all("instance_group") {
        let Value::Message(g) = g else { continue };
        let count = g.get("count").and_then(Value::as_i64).unwrap_or(1).max(1) as usize;
        instances += count;
        if let Some(kind) = g.get("kind").and_then(Value::as_ident)
            && kind == "KIND_GPU"
        {
            warnings.push("instance_group kind KIND_GPU: ballast runs on the CPU".into());
        }
    }
    if instances > 0 {
        cfg.instances = instances.min(256);
    }

    let version_policy = match m.message("version_policy") {
        None => VersionPolicy::Latest(1),
        Some(p) => {
            if p.get("all").is_some() {
                VersionPolicy::All
            } else if let Some(s) = p.message("specific") {
                VersionPolicy::Specific(
                    s.all("versions")
                        .filter_map(Value::as_i64)
                        .filter(|&v| v >= 0)
                        .map(|v| v as u64)
                        .collect(),
                )
            } else if let Some(l) = p.message("latest") {
                VersionPolicy::Latest(int(l, "num_versions").unwrap_or(1).max(1) as usize)
            } else {
                VersionPolicy::Latest(1)
            }
        }
    };

    if !problems.is_empty() {
        return Err(Error::invalid(format!("{origin}: {}", problems.join("; "))));
    }
    Ok(TritonConfig {
        config: cfg,
        version_policy,
        warnings,
    })
}

/// `parameters { key: "k" value: { string_value: "v" } }` entries.
fn parameters(m: &Message) -> Vec<(String, String)> {
    m.all("parameters")
        .filter_map(|p| match p {
            Value::Message(p) => {
                let key = p.get("key")?.as_str()?.to_string();
                let value = p
                    .message("value")
                    .and_then(|v| v.get("string_value"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                Some((key, value))
            }
            _ => None,
        })
        .collect()
}

fn datatype(t: &str) -> Option<DataType> {
    Some(match t {
        "TYPE_BOOL" => DataType::Bool,
        "TYPE_UINT8" => DataType::U8,
        "TYPE_FP16" => DataType::F16,
        "TYPE_INT32" => DataType::I32,
        "TYPE_INT64" => DataType::I64,
        "TYPE_FP32" => DataType::F32,
        "TYPE_FP64" => DataType::F64,
        "TYPE_STRING" => DataType::Bytes,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_onnx_model_configuration_maps_and_warns_about_the_rest() {
        let t = from_pbtxt(
            r#"
name: "fraud"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "features" data_type: TYPE_FP32 dims: [ 12 ] } ]
output [ { name: "probability" data_type: TYPE_FP32 dims: [ 1 ] label_filename: "labels.txt" } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 500 preferred_batch_size: [ 4 ] }
optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }
"#,
            "fraud/config.pbtxt",
        )
        .unwrap();
        assert_eq!(t.config.max_batch_size, 8);
        assert_eq!(t.config.instances, 2);
        assert_eq!(t.config.max_queue_delay, Duration::from_micros(500));
        assert_eq!(t.config.inputs[0].shape, Some(vec![-1, 12]));
        assert_eq!(t.config.inputs[0].dtype, Some(DataType::F32));
        assert_eq!(t.version_policy, VersionPolicy::Latest(1));
        let w = t.warnings.join("\n");
        for part in ["optimization", "label_filename", "preferred_batch_size"] {
            assert!(w.contains(part), "{w}");
        }
    }

    #[test]
    fn a_fil_configuration_names_the_file_and_format() {
        let t = from_pbtxt(
            r#"backend: "fil"
max_batch_size: 32768
input [ { name: "input__0" data_type: TYPE_FP32 dims: [ 6 ] } ]
output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
parameters [ { key: "model_type" value: { string_value: "xgboost_json" } },
             { key: "output_class" value: { string_value: "true" } } ]
version_policy { all { } }"#,
            "x",
        )
        .unwrap();
        assert_eq!(t.config.backend, EngineChoice::Trees);
        assert_eq!(t.config.model_file.as_deref(), Some("xgboost.json"));
        assert_eq!(t.config.format, Some(ModelFormat::Xgboost));
        assert_eq!(t.version_policy.select(&[1, 2, 3]), vec![1, 2, 3]);
        assert!(t.warnings.iter().any(|w| w.contains("output_class")));
        let e = from_pbtxt("backend: \"fil\"\nparameters { key: \"model_type\" value { string_value: \"xgboost\" } }", "x")
            .unwrap_err();
        assert!(e.message.contains("legacy binary"), "{e:?}");
        let e = from_pbtxt("platform: \"tensorflow_savedmodel\"", "x").unwrap_err();
        assert!(e.message.contains("not served by ballast"), "{e:?}");
    }

    #[test]
    fn version_policies_select_versions() {
        assert_eq!(VersionPolicy::Latest(2).select(&[1, 2, 5]), vec![2, 5]);
        assert_eq!(VersionPolicy::Latest(9).select(&[1, 2]), vec![1, 2]);
        assert_eq!(
            VersionPolicy::Specific(vec![1, 5]).select(&[1, 2, 5]),
            vec![1, 5]
        );
        let t = from_pbtxt("version_policy: { specific: { versions: [1, 3] } }", "x").unwrap();
        assert_eq!(t.version_policy, VersionPolicy::Specific(vec![1, 3]));
    }
}
