//! The crate's one error type; each variant maps to an [`ErrorCode`] at the edge.

use ballast_core::{Error, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A file or object could not be read or written.
    #[error("prediction log {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A WAL frame or segment that does not decode.
    #[error("prediction log data is corrupt: {0}")]
    Corrupt(String),
    /// The object store refused or failed.
    #[error("prediction log store {what}: {message}")]
    Store { what: String, message: String },
    /// Parquet encoding or decoding failed.
    #[error("prediction log segment {what}: {message}")]
    Parquet { what: String, message: String },
    /// A configuration value out of range, naming the field.
    #[error("{0}")]
    Config(String),
    /// The log stopped acknowledging after a write or fsync failure (never retried).
    #[error("prediction log stopped: {0}")]
    Stopped(String),
}

impl CaptureError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CaptureError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            CaptureError::Config(_) => ErrorCode::InvalidArgument,
            CaptureError::Stopped(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

impl From<CaptureError> for Error {
    fn from(e: CaptureError) -> Self {
        Error::new(e.code(), e.to_string())
    }
}
