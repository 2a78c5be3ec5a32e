//! Per-model configuration (`<repository>/<model>/config.toml`): batching, queueing, deadlines,
//! admission control and signature overrides. Unknown keys are rejected; every problem in a file
//! is reported at once.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::logconfig::{LogConfig, RawLog};
use crate::signature::TensorSpec;
use crate::tensor::DataType;

/// Up to 64 rows per engine call: enough to amortise per-call overhead on CPU engines.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 64;
/// Do not hold a request back to fill a batch: batches still grow under load, because the
/// batcher forms one only when an engine thread is free and requests queue meanwhile (as
/// Triton's default of 0). Raise it for engines whose per-call cost dominates.
pub const DEFAULT_MAX_QUEUE_DELAY: Duration = Duration::ZERO;
/// A queue longer than this holds seconds of work on a CPU model; past it, shed load.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1024;
/// Aim to keep queueing delay near 5 ms: a small share of a fraud check's budget.
pub const DEFAULT_TARGET_QUEUE_DELAY: Duration = Duration::from_millis(5);
/// One engine thread per model: on tabular models parallelism across batches, not within one,
/// pays; raise it for models whose batches are long.
pub const DEFAULT_INSTANCES: usize = 1;

/// Which engine runs a model's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// Tree files (`model.json`, `model.txt`) and ONNX tree-ensemble graphs on the native tree
    /// engine; other ONNX graphs on ONNX Runtime when its library loads, else tract.
    #[default]
    Auto,
    Tract,
    OnnxRuntime,
    Trees,
    /// The native ONNX-ML graph engine (scikit-learn pipelines without ONNX Runtime).
    OnnxMl,
}

impl EngineChoice {
    pub const NAMES: &'static str = "auto, tract, onnxruntime, trees, onnx-ml";

    pub fn as_str(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Tract => "tract",
            EngineChoice::OnnxRuntime => "onnxruntime",
            EngineChoice::Trees => "trees",
            EngineChoice::OnnxMl => "onnx-ml",
        }
    }
}

impl std::str::FromStr for EngineChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => EngineChoice::Auto,
            "tract" => EngineChoice::Tract,
            "onnxruntime" | "ort" => EngineChoice::OnnxRuntime,
            "trees" => EngineChoice::Trees,
            "onnx-ml" | "onnx_ml" => EngineChoice::OnnxMl,
            other => {
                return Err(format!(
                    "backend must be one of {}, got '{other}'",
                    Self::NAMES
                ));
            }
        })
    }
}

/// What kind of file a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Onnx,
    /// XGBoost JSON (`Booster.save_model("x.json")`).
    Xgboost,
    /// LightGBM text (`Booster.save_model("x.txt")`).
    Lightgbm,
}

impl std::str::FromStr for ModelFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "onnx" => ModelFormat::Onnx,
            "xgboost" => ModelFormat::Xgboost,
            "lightgbm" => ModelFormat::Lightgbm,
            other => {
                return Err(format!(
                    "format must be one of onnx, xgboost, lightgbm, got '{other}'"
                ));
            }
        })
    }
}

/// Rows one request may carry unless its model's config says otherwise.
pub const DEFAULT_MAX_REQUEST_ROWS: usize = 65_536;

/// One intra-op thread per engine call: for tabular models a second thread made batches of
/// 1–64 rows slower (measured); parallelism across batches (`instances`) pays first.
pub const DEFAULT_THREADS: usize = 1;

/// A model's configuration after defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Largest number of rows merged into one engine call; 0 disables batching. A request
    /// with more rows runs as one engine call of its own.
    pub max_batch_size: usize,
    /// Largest number of rows one request may carry (bounds absurd requests; a request above
    /// `max_batch_size` but within this runs alone).
    pub max_request_rows: usize,
    pub max_queue_delay: Duration,
    /// Hard bound on queued requests; the adaptive limit usually sheds earlier.
    pub max_queue_size: usize,
    /// Applied to requests that carry no deadline of their own.
    pub default_timeout: Option<Duration>,
    /// The queueing delay the adaptive concurrency limit steers towards.
    pub target_queue_delay: Duration,
    /// Bounds for the adaptive concurrency limit (requests admitted but not finished).
    pub min_concurrency: Option<usize>,
    pub max_concurrency: Option<usize>,
    /// Dedicated engine threads for this model (batches run at once).
    pub instances: usize,
    /// Which engine runs the model file.
    pub backend: EngineChoice,
    /// The model file in each version directory, when not `model.onnx|json|txt`.
    pub model_file: Option<String>,
    /// The model file's format, when its extension does not say.
    pub format: Option<ModelFormat>,
    /// Threads one engine call may use (ONNX Runtime intra-op threads; the tree engine's row
    /// blocks for batches of 512 rows or more). tract ignores it.
    pub threads: usize,
    /// Accept NaN / Inf inputs. `None`: the engine's default — tree engines take NaN as
    /// "missing" (each split sends it to its default side); other engines refuse them.
    pub allow_non_finite: Option<bool>,
    /// Run one inference before declaring the model ready.
    pub warmup: bool,
    pub inputs: Vec<TensorOverride>,
    pub outputs: Vec<TensorOverride>,
    /// The `[log]` table: prediction logging and redaction.
    pub log: LogConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            max_request_rows: DEFAULT_MAX_REQUEST_ROWS,
            max_queue_delay: DEFAULT_MAX_QUEUE_DELAY,
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            default_timeout: None,
            target_queue_delay: DEFAULT_TARGET_QUEUE_DELAY,
            min_concurrency: None,
            max_concurrency: None,
            instances: DEFAULT_INSTANCES,
            backend: EngineChoice::Auto,
            model_file: None,
            format: None,
            threads: DEFAULT_THREADS,
            allow_non_finite: None,
            warmup: true,
            inputs: Vec::new(),
            outputs: Vec::new(),
            log: LogConfig::default(),
        }
    }
}

/// Declares or corrects one tensor of the signature where the model file does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorOverride {
    pub name: String,
    pub dtype: Option<DataType>,
    pub shape: Option<Vec<i64>>,
    /// Its index in a configuration that lists every tensor in the model's order (Triton's
    /// `config.pbtxt`): a name the model does not use then renames the tensor at that index.
    pub position: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    max_batch_size: Option<usize>,
    max_request_rows: Option<usize>,
    max_queue_delay_ms: Option<f64>,
    max_queue_size: Option<usize>,
    default_timeout_ms: Option<f64>,
    target_queue_delay_ms: Option<f64>,
    min_concurrency: Option<usize>,
    max_concurrency: Option<usize>,
    instances: Option<usize>,
    backend: Option<String>,
    model_file: Option<String>,
    format: Option<String>,
    threads: Option<usize>,
    allow_non_finite: Option<bool>,
    warmup: Option<bool>,
    #[serde(default, rename = "input")]
    inputs: Vec<RawTensor>,
    #[serde(default, rename = "output")]
    outputs: Vec<RawTensor>,
    log: Option<RawLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTensor {
    name: String,
    datatype: Option<String>,
    shape: Option<Vec<i64>>,
}

impl ModelConfig {
    /// Parses a `config.toml`. `origin` names the file in messages. All problems are collected.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, Error> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::invalid(format!("{origin}: {}", e.to_string().trim_end())))?;
        let mut problems = Vec::new();
        let mut cfg = ModelConfig::default();
        let mut ms = |key: &str, v: Option<f64>, allow_zero: bool| -> Option<Duration> {
            let v = v?;
            if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) || v > 3_600_000.0 {
                problems.push(format!(
                    "{key} must be a number of milliseconds in {}..=3600000, got {v}",
                    if allow_zero { "0" } else { "(0" }
                ));
                return None;
            }
            Some(Duration::from_secs_f64(v / 1000.0))
        };
        if let Some(d) = ms("max_queue_delay_ms", raw.max_queue_delay_ms, true) {
            cfg.max_queue_delay = d;
        }
        cfg.default_timeout = ms("default_timeout_ms", raw.default_timeout_ms, false);
        if let Some(d) = ms("target_queue_delay_ms", raw.target_queue_delay_ms, false) {
            cfg.target_queue_delay = d;
        }
        if let Some(v) = raw.max_batch_size {
            if v > 65_536 {
                problems.push(format!("max_batch_size must be at most 65536, got {v}"));
            }
            cfg.max_batch_size = v;
        }
        if let Some(v) = raw.max_request_rows {
            if v == 0 || v > 10_000_000 {
                problems.push(format!("max_request_rows must be in 1..=10000000, got {v}"));
            }
            cfg.max_request_rows = v;
        }
        if let Some(v) = raw.max_queue_size {
            if v == 0 || v > 1_000_000 {
                problems.push(format!("max_queue_size must be in 1..=1000000, got {v}"));
            }
            cfg.max_queue_size = v;
        }
        if let Some(v) = raw.instances {
            if v == 0 || v > 256 {
                problems.push(format!("instances must be in 1..=256, got {v}"));
            }
            cfg.instances = v;
        }
        if let Some(b) = &raw.backend {
            match b.parse() {
                Ok(choice) => cfg.backend = choice,
                Err(e) => problems.push(e),
            }
        }
        if let Some(f) = raw.model_file {
            if f.is_empty() || f.contains('/') || f.contains('\\') || f == "." || f == ".." {
                problems.push(format!(
                    "model_file must be a file name inside the version directory, got '{f}'"
                ));
            }
            cfg.model_file = Some(f);
        }
        if let Some(f) = &raw.format {
            match f.parse() {
                Ok(format) => cfg.format = Some(format),
                Err(e) => problems.push(e),
            }
        }
        if let Some(v) = raw.threads {
            if v == 0 || v > 256 {
                problems.push(format!("threads must be in 1..=256, got {v}"));
            }
            cfg.threads = v;
        }
        cfg.min_concurrency = raw.min_concurrency;
        cfg.max_concurrency = raw.max_concurrency;
        if let (Some(lo), Some(hi)) = (raw.min_concurrency, raw.max_concurrency)
            && lo > hi
        {
            problems.push(format!(
                "min_concurrency ({lo}) must not exceed max_concurrency ({hi})"
            ));
        }
        if raw.min_concurrency == Some(0) || raw.max_concurrency == Some(0) {
            problems.push("min_concurrency and max_concurrency must be at least 1".to_string());
        }
        cfg.allow_non_finite = raw.allow_non_finite;
        cfg.warmup = raw.warmup.unwrap_or(cfg.warmup);
        if let Some(log) = raw.log {
            cfg.log = log.resolve(&mut problems);
        }
        for (kind, list, out) in [
            ("input", raw.inputs, &mut cfg.inputs),
            ("output", raw.outputs, &mut cfg.outputs),
        ] {
            for t in list {
                let dtype = match t.datatype.as_deref().map(str::parse::<DataType>) {
                    Some(Ok(d)) => Some(d),
                    Some(Err(e)) => {
                        problems.push(format!("{kind} '{}': {}", t.name, e.message));
                        None
                    }
                    None => None,
                };
                if let Some(shape) = &t.shape
                    && shape.iter().any(|&d| d < -1)
                {
                    problems.push(format!(
                        "{kind} '{}': shape dimensions must be -1 (variable) or >= 0, got {shape:?}",
                        t.name
                    ));
                }
                out.push(TensorOverride {
                    name: t.name,
                    dtype,
                    shape: t.shape,
                    position: None,
                });
            }
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(Error::invalid(format!(
                "{origin}: {} problem(s): {}",
                problems.len(),
                problems.join("; ")
            )))
        }
    }

    /// Applies the overrides to an engine-discovered signature list. Unknown names are errors.
    /// Applies `overrides` to `specs`; returns, per spec index, the new name of each tensor
    /// that a positional override renamed.
    pub fn apply_overrides(
        overrides: &[TensorOverride],
        specs: &mut [TensorSpec],
        kind: &str,
    ) -> Result<Vec<Option<String>>, Error> {
        let mut renamed = vec![None; specs.len()];
        let positional = overrides.len() == specs.len();
        for o in overrides {
            let found = specs.iter().position(|s| s.name == o.name);
            let index = match (found, o.position) {
                (Some(i), _) => i,
                (None, Some(i)) if positional && i < specs.len() => {
                    specs[i].name.clone_from(&o.name);
                    renamed[i] = Some(o.name.clone());
                    i
                }
                _ => {
                    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    return Err(Error::invalid(format!(
                        "config names {kind} '{}', but the model has {kind}s: {}",
                        o.name,
                        names.join(", ")
                    )));
                }
            };
            let spec = &mut specs[index];
            if let Some(d) = o.dtype {
                spec.dtype = d;
            }
            if let Some(s) = &o.shape {
                spec.shape.clone_from(s);
            }
        }
        Ok(renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config() {
        let cfg = ModelConfig::from_toml(
            "max_batch_size = 8\nmax_queue_delay_ms = 1.5\ninstances = 2\n[[input]]\nname = \"x\"\ndatatype = \"FP64\"\nshape = [-1, 3]\n",
            "m/config.toml",
        )
        .unwrap();
        assert_eq!(cfg.max_batch_size, 8);
        assert_eq!(cfg.max_queue_delay, Duration::from_micros(1500));
        assert_eq!(cfg.instances, 2);
        assert_eq!(cfg.inputs[0].dtype, Some(DataType::F64));
        assert_eq!(cfg.backend, EngineChoice::Auto);
        let cfg = ModelConfig::from_toml("backend = \"trees\"\nthreads = 4\n", "m").unwrap();
        assert_eq!((cfg.backend, cfg.threads), (EngineChoice::Trees, 4));
        let cfg =
            ModelConfig::from_toml("model_file = \"b.bin\"\nformat = \"lightgbm\"\n", "m").unwrap();
        assert_eq!(cfg.model_file.as_deref(), Some("b.bin"));
        assert_eq!(cfg.format, Some(ModelFormat::Lightgbm));
        let err =
            ModelConfig::from_toml("model_file = \"../x\"\nformat = \"pmml\"\n", "m").unwrap_err();
        assert!(
            err.message.contains("model_file must be"),
            "{}",
            err.message
        );
        assert!(err.message.contains("format must be"), "{}", err.message);
        let err = ModelConfig::from_toml("backend = \"gpu\"\nthreads = 0\n", "m").unwrap_err();
        assert!(
            err.message.contains("backend must be one of"),
            "{}",
            err.message
        );
        assert!(err.message.contains("threads must be"), "{}", err.message);
    }

    #[test]
    fn rejects_unknown_keys_naming_them() {
        let err = ModelConfig::from_toml("max_batch = 8\n", "m/config.toml").unwrap_err();
        assert!(err.message.contains("m/config.toml"), "{}", err.message);
        assert!(err.message.contains("max_batch"), "{}", err.message);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = ModelConfig::from_toml(
            "instances = 0\nmax_queue_size = 0\nmax_queue_delay_ms = -1\n",
            "m/config.toml",
        )
        .unwrap_err();
        assert!(err.message.contains("3 problem(s)"), "{}", err.message);
        assert!(err.message.contains("instances"), "{}", err.message);
        assert!(err.message.contains("max_queue_size"), "{}", err.message);
        assert!(
            err.message.contains("max_queue_delay_ms"),
            "{}",
            err.message
        );
    }
}
