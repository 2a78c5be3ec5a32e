//! ballast-engine: the [`Backend`] seam and the engines behind it.
//!
//! A backend is small and synchronous: it reports the model's [`ModelSignature`] and runs one
//! batch. It knows nothing of HTTP, tokio or queues; the serving layer calls it from dedicated
//! threads. Engines: [`tract::TractBackend`] (pure-Rust ONNX, always available),
//! [`trees::TreeBackend`] (native XGBoost / LightGBM / ONNX-ML tree ensembles) and
//! [`onnxruntime::OrtBackend`] (ONNX Runtime, loaded at run time when its library is present).

pub mod graph;
pub mod onnxruntime;
pub mod tract;
pub mod trees;

use std::path::Path;
use std::sync::Arc;

use ballast_core::{EngineChoice, ErrorCode, ModelFormat, ModelSignature, Tensor};

/// Why an engine could not load or run a model.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The model file cannot be read or parsed, or uses something the engine cannot run.
    #[error("cannot load model from {path}: {reason}")]
    Load { path: String, reason: String },
    /// The inputs do not fit what the engine expected (validation upstream should prevent it).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The engine failed while computing.
    #[error("inference failed: {0}")]
    Compute(String),
}

impl BackendError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BackendError::InvalidInput(_) => ErrorCode::InvalidArgument,
            BackendError::Load { .. } | BackendError::Compute(_) => ErrorCode::Internal,
        }
    }
}

/// Checks that an engine returned as many outputs as the signature lists.
pub(crate) fn expect_outputs(signature: &ModelSignature, got: usize) -> Result<(), BackendError> {
    if got == signature.outputs.len() {
        Ok(())
    } else {
        Err(BackendError::Compute(format!(
            "engine returned {got} outputs, signature has {}",
            signature.outputs.len()
        )))
    }
}

/// One loaded model, ready to run batches. Implementations must be usable from several threads
/// at once (`&self`); an engine that needs per-thread state keeps it internally.
pub trait Backend: Send + Sync + 'static {
    /// A short engine name for metadata, logs and metric labels (`"tract"`).
    fn engine(&self) -> &'static str;

    /// The model's inputs and outputs as the engine sees them.
    fn signature(&self) -> &ModelSignature;

    /// Runs one batch. `inputs` follow the signature's input order; the result holds every
    /// output in the signature's output order.
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError>;

    /// Whether NaN inputs mean "missing" to this engine (tree ensembles send them down each
    /// split's default side), so a model config that does not say accepts them.
    fn nan_is_missing(&self) -> bool {
        false
    }
}

/// Model file names, in the order an engine is chosen for a version directory.
pub const MODEL_FILES: &[&str] = &["model.onnx", "model.json", "model.ubj", "model.txt"];

/// How to open a model: the engine choice and its resources, from the model's config.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub backend: EngineChoice,
    /// Threads one engine call may use.
    pub threads: usize,
    /// Engine calls that may run at once (the model's `instances`); ONNX Runtime needs a
    /// session for each.
    pub concurrent_calls: usize,
    /// The ONNX Runtime library, when configured explicitly.
    pub onnxruntime_library: Option<std::path::PathBuf>,
    /// The model file's name inside each version directory, when not one of [`MODEL_FILES`].
    pub model_file: Option<String>,
    /// The file's format, when its extension does not say.
    pub format: Option<ModelFormat>,
}

/// Opens the model in a version directory with default options.
pub fn open(version_dir: &Path) -> Result<Arc<dyn Backend>, BackendError> {
    open_with(version_dir, &OpenOptions::default())
}

/// Opens the model in a version directory (`<repo>/<model>/<version>/`) with the engine its
/// file and `options.backend` call for:
///
/// | file | auto | explicit |
/// | --- | --- | --- |
/// | `model.json` / `model.ubj` (XGBoost), `model.txt` (LightGBM) | trees | trees only |
/// | `model.onnx` with a TreeEnsemble node | trees, else ONNX Runtime, else onnx-ml, else tract | as asked |
/// | `model.onnx` with other `ai.onnx.ml` operators | ONNX Runtime, else onnx-ml, else tract | as asked |
/// | `model.onnx`, other graphs | ONNX Runtime when its library loads, else tract | as asked |
///
/// Without ONNX Runtime, a graph the native onnx-ml engine cannot run falls back to tract; the
/// error then names what each engine lacked.
pub fn open_with(
    version_dir: &Path,
    options: &OpenOptions,
) -> Result<Arc<dyn Backend>, BackendError> {
    let (path, format) = locate(version_dir, options)?;
    open_as(&path, format, options.backend, options)
}

/// Opens `path`, a file of `format`, on `engine` (see [`open_with`] for what `Auto` picks).
fn open_as(
    path: &Path,
    format: ModelFormat,
    engine: EngineChoice,
    options: &OpenOptions,
) -> Result<Arc<dyn Backend>, BackendError> {
    let threads = options.threads.max(1);
    match (format, engine) {
        (ModelFormat::Onnx, EngineChoice::Tract) => Ok(Arc::new(tract::TractBackend::load(path)?)),
        (ModelFormat::Onnx, EngineChoice::OnnxMl) => Ok(Arc::new(graph::GraphBackend::load(path)?)),
        (ModelFormat::Onnx, EngineChoice::Trees) => {
            Ok(Arc::new(trees::TreeBackend::load_onnx(path, threads)?))
        }
        (ModelFormat::Onnx, EngineChoice::OnnxRuntime) => open_onnxruntime(path, options),
        (ModelFormat::Onnx, EngineChoice::Auto) => {
            if trees::onnx_ml::has_tree_ensemble(path) {
                match trees::TreeBackend::load_onnx(path, threads) {
                    Ok(b) => return Ok(Arc::new(b)),
                    Err(e) => tracing::info!(
                        path = %path.display(),
                        reason = %e,
                        "tree engine declined this graph; trying the other engines"
                    ),
                }
            }
            open_onnx_auto(path, options)
        }
        (ModelFormat::Xgboost, EngineChoice::Auto | EngineChoice::Trees) => {
            Ok(Arc::new(trees::TreeBackend::load_xgboost(path, threads)?))
        }
        (ModelFormat::Lightgbm, EngineChoice::Auto | EngineChoice::Trees) => {
            Ok(Arc::new(trees::TreeBackend::load_lightgbm(path, threads)?))
        }
        (ModelFormat::Xgboost | ModelFormat::Lightgbm, other) => Err(BackendError::Load {
            path: path.display().to_string(),
            reason: format!(
                "backend \"{}\" cannot run this file; the tree engine (backend = \"trees\" or \"auto\") runs XGBoost and LightGBM models",
                other.as_str()
            ),
        }),
    }
}

/// A model file's format by its extension: `.onnx`, `.json` / `.ubj` (XGBoost), `.txt`
/// (LightGBM).
fn format_of(path: &Path) -> Option<ModelFormat> {
    match path.extension()?.to_str()? {
        "onnx" => Some(ModelFormat::Onnx),
        "json" | "ubj" => Some(ModelFormat::Xgboost),
        "txt" => Some(ModelFormat::Lightgbm),
        _ => None,
    }
}

/// The model file of a version directory and its format: `options.model_file` (format from
/// `options.format` or the extension) or the first of [`MODEL_FILES`] present.
fn locate(
    version_dir: &Path,
    options: &OpenOptions,
) -> Result<(std::path::PathBuf, ModelFormat), BackendError> {
    let load_err = |path: &Path, reason: String| BackendError::Load {
        path: path.display().to_string(),
        reason,
    };
    if let Some(file) = &options.model_file {
        let path = version_dir.join(file);
        if !path.is_file() {
            return Err(load_err(
                &path,
                format!("model_file \"{file}\" does not exist in this version"),
            ));
        }
        let Some(format) = options.format.or_else(|| format_of(&path)) else {
            return Err(load_err(
                &path,
                "cannot tell the format from the extension; set format = \"onnx\", \"xgboost\" or \"lightgbm\"".into(),
            ));
        };
        return Ok((path, format));
    }
    for file in MODEL_FILES {
        let path = version_dir.join(file);
        if let (true, Some(format)) = (path.is_file(), format_of(&path)) {
            return Ok((path, options.format.unwrap_or(format)));
        }
    }
    Err(load_err(
        version_dir,
        format!(
            "no model file found; expected one of: {}",
            MODEL_FILES.join(", ")
        ),
    ))
}

/// Opens one model file on one engine, e.g. to compare engines on the same file: `.onnx` on
/// tract, ONNX Runtime or the tree engine; `.json` (XGBoost) and `.txt` (LightGBM) on the tree
/// engine.
pub fn open_file(
    file: &Path,
    engine: EngineChoice,
    options: &OpenOptions,
) -> Result<Arc<dyn Backend>, BackendError> {
    let format = options
        .format
        .or_else(|| format_of(file))
        .ok_or_else(|| BackendError::Load {
            path: file.display().to_string(),
            reason: "cannot tell the format from the extension (.onnx, .json, .ubj, .txt)".into(),
        })?;
    open_as(file, format, engine, options)
}

/// ONNX on ONNX Runtime, asked for explicitly: a missing or unusable library is an error that
/// names where it looked.
fn open_onnxruntime(path: &Path, options: &OpenOptions) -> Result<Arc<dyn Backend>, BackendError> {
    let library =
        onnxruntime::available(options.onnxruntime_library.as_deref()).map_err(|reason| {
            BackendError::Load {
                path: path.display().to_string(),
                reason: format!("backend \"onnxruntime\" was asked for, but {reason}"),
            }
        })?;
    Ok(Arc::new(onnxruntime::OrtBackend::load(
        path,
        &ort_options(library, options),
    )?))
}

fn ort_options(library: std::path::PathBuf, options: &OpenOptions) -> onnxruntime::OrtOptions {
    onnxruntime::OrtOptions {
        library: Some(library),
        intra_op_threads: options.threads.max(1),
        sessions: options.concurrent_calls.max(1),
    }
}

/// ONNX with `backend = "auto"`: ONNX Runtime when its library loads; else the native onnx-ml
/// engine for graphs with `ai.onnx.ml` operators that it runs in full; else tract.
fn open_onnx_auto(path: &Path, options: &OpenOptions) -> Result<Arc<dyn Backend>, BackendError> {
    let reason = match onnxruntime::available(options.onnxruntime_library.as_deref()) {
        Ok(library) => {
            return Ok(Arc::new(onnxruntime::OrtBackend::load(
                path,
                &ort_options(library, options),
            )?));
        }
        Err(reason) => reason,
    };
    tracing::debug!(%reason, "ONNX Runtime not available; using the pure-Rust engines");
    if graph::uses_onnx_ml(path) {
        let native = match graph::GraphBackend::load(path) {
            Ok(b) => return Ok(Arc::new(b)),
            Err(e) => e,
        };
        // tract may still run it; if not, say what both engines lacked.
        return match tract::TractBackend::load(path) {
            Ok(b) => Ok(Arc::new(b)),
            Err(BackendError::Load { reason: tract, .. }) => {
                let native = match native {
                    BackendError::Load { reason, .. } => reason,
                    other => other.to_string(),
                };
                Err(BackendError::Load {
                    path: path.display().to_string(),
                    reason: format!(
                        "no pure-Rust engine runs this graph: {native}; tract: {tract}. ONNX \
                         Runtime was not used because {reason}"
                    ),
                })
            }
            Err(other) => Err(other),
        };
    }
    tract::TractBackend::load(path).map(|b| Arc::new(b) as Arc<dyn Backend>)
}
