//! ballast-api: the protocol edges. HTTP/JSON ([`http`], axum) and gRPC ([`grpc`], tonic) speak
//! the Open Inference Protocol v2; both decode into the same [`ballast_serve::InferRequest`]
//! through [`codec`], and render the same [`ballast_core::Error`] classification.
//!
//! Nothing here decides anything a second front end would also need: admission, batching and
//! validation live in `ballast-serve`.

pub mod codec;
pub mod error;
pub mod grpc;
pub mod http;
pub mod listener;
pub mod server;
pub mod telemetry;

pub use server::{ApiConfig, ApiState, Server, ServerHandle};
