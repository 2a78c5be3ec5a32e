//! ballast-core: the vocabulary every other crate speaks — tensors and their datatypes, model
//! signatures, request validation, the [`ErrorCode`] table and per-model configuration.
//!
//! Nothing here does I/O; everything is plain data and pure functions so that the serving path,
//! the protocol adapters and the engines agree on one definition of "a valid request".

pub mod config;
pub mod error;
pub mod logconfig;
pub mod pbtxt;
pub mod signature;
pub mod tensor;
pub mod traffic;
pub mod triton;
pub mod validate;

pub use config::{EngineChoice, ModelConfig, ModelFormat, TensorOverride};
pub use error::{Error, ErrorCode};
pub use logconfig::{FieldAction, LogConfig, LogDurability, RedactConfig};
pub use signature::{ModelSignature, TensorSpec};
pub use tensor::{DataType, Tensor, TensorData};
pub use traffic::{RolloutPlan, TrafficPolicy};
