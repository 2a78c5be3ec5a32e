//! ballast-engine: the [`Backend`] seam and the engines behind it.
//!
//! A backend is small and synchronous: it reports the model's [`ModelSignature`] and runs one
//! batch. It knows nothing of HTTP, tokio or queues; the serving layer calls it from dedicated
//! threads. Engines: [`tract::TractBackend`] (pure-Rust ONNX, always available) and
//! [`onnxruntime::OrtBackend`] (ONNX Runtime, loaded at run time from its shared library).

pub mod onnxruntime;
pub mod tract;

use ballast_core::{ErrorCode, ModelSignature, Tensor};

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
}

/// Model file names, in the order an engine is chosen for a version directory.
pub const MODEL_FILES: &[&str] = &["model.onnx"];

/// Opens the model in a version directory (`<repo>/<model>/<version>/`) with the engine its
/// file calls for.
pub fn open(version_dir: &std::path::Path) -> Result<std::sync::Arc<dyn Backend>, BackendError> {
    let onnx = version_dir.join("model.onnx");
    if onnx.is_file() {
        return Ok(std::sync::Arc::new(tract::TractBackend::load(&onnx)?));
    }
    Err(BackendError::Load {
        path: version_dir.display().to_string(),
        reason: format!(
            "no model file found; expected one of: {}",
            MODEL_FILES.join(", ")
        ),
    })
}
