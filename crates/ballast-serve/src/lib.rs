//! ballast-serve: everything between a decoded request and the engine.
//!
//! - [`repository`]: finds models on disk, loads and warms them, answers "which version".
//! - [`model`]: one served model version — validation, admission, deadlines, output selection.
//! - [`scheduler`]: per-version adaptive admission limit, bounded queue, dynamic batcher and the
//!   dedicated engine threads.
//! - [`metrics`]: every metric name, help text and bucket layout, in one place.
//!
//! Wire formats live in `ballast-api`; this crate never parses bytes off a socket.

pub mod metrics;
pub mod model;
pub mod repository;
pub mod request;
pub mod scheduler;
pub mod traffic;

pub use model::{Admission, ModelVersion};
pub use repository::{ModelEntry, ModelRepository, ModelSpec, RepositoryOptions};
pub use request::{InferRequest, InferResponse};
pub use traffic::Routed;
