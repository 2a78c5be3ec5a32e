//! The protocol-neutral request and response that every front end builds and renders.

use std::time::Duration;

use ballast_core::Tensor;
use tokio::time::Instant;

use crate::context::Priority;

/// One inference request, already decoded from its wire format.
#[derive(Debug, Default)]
pub struct InferRequest {
    /// Client-chosen id, echoed back.
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// Names of the outputs to return; empty means all, in signature order.
    pub outputs: Vec<String>,
    /// No inference starts after this instant; the caller gets DEADLINE_EXCEEDED instead.
    pub deadline: Option<Instant>,
    /// Decides who is refused first under overload.
    pub priority: Priority,
}

/// Where the time went for one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub queue: Duration,
    pub compute: Duration,
    /// Rows in the engine call that served this request.
    pub batch_rows: usize,
}

#[derive(Debug)]
pub struct InferResponse {
    pub model: std::sync::Arc<str>,
    pub version: std::sync::Arc<str>,
    pub id: Option<String>,
    pub outputs: Vec<Tensor>,
    pub timing: Timing,
}
