//! Open- and closed-loop load generator for Open Inference Protocol v2 servers, over HTTP
//! (JSON or the binary tensor extension) and gRPC, reporting HDR latency percentiles.
//!
//! The figures it produces are published, so it is built to be honest rather than flattering:
//! - the open loop measures latency from each request's *intended* send time, so time a request
//!   spends waiting behind a slow server (or a busy client) counts (no coordinated omission);
//! - requests whose intended start falls in the warmup are sent but never recorded;
//! - every request that was sent ends in exactly one of ok, rejected, unavailable, timeouts or
//!   errors (`sent` is their sum), and the open loop reports what it could not send at all
//!   (`client_dropped`);
//! - it is lean, because it shares the machine with the server: payloads are encoded once up
//!   front and reused (`Bytes` clones), one HTTP client with a large idle pool, a few gRPC
//!   channels, and a raw gRPC codec that neither re-encodes requests nor decodes responses.
//!
//! Modules: [`metadata`] (model metadata over HTTP), [`payload`] (request bodies), `client`
//! (one request over HTTP or gRPC, classified), `runner` (the loops), [`stats`] (histograms
//! and the report), [`progress`] (a terminal progress bar).
// A client: its connection tasks and threads are joined by the runner before a run returns.
#![allow(clippy::disallowed_methods)]
// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::time::Duration;

mod client;
pub mod metadata;
pub mod payload;
pub mod progress;
mod runner;
pub mod stats;

pub use metadata::{ModelMeta, TensorMeta, fetch_metadata, fetch_metadata_grpc};
pub use payload::{HttpPayload, Payloads, fp32_row_payloads, random_payloads};
pub use progress::{progress_bar, steps_bar};
pub use runner::{MAX_OUTSTANDING, run};
pub use stats::{LiveStats, Percentiles, Report};

/// The wire protocol a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v2/models/{m}[/versions/{v}]/infer` over HTTP/1.1.
    Http,
    /// `GRPCInferenceService/ModelInfer` over HTTP/2.
    Grpc,
}

impl Protocol {
    /// Lower-case name, as in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// The server and model under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Base URL of the HTTP front end, e.g. `http://127.0.0.1:8000`.
    pub http_url: String,
    /// URL of the gRPC front end, e.g. `http://127.0.0.1:8001`.
    pub grpc_url: String,
    /// Model name.
    pub model: String,
    /// Model version; `None` lets the server choose.
    pub version: Option<String>,
}

/// How requests are offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `concurrency` workers, each sending a request, awaiting it, and sending the next.
    Closed {
        /// Number of workers (= requests in flight).
        concurrency: usize,
    },
    /// A fixed arrival rate, independent of how fast the server answers.
    Open {
        /// Requests per second.
        rate: f64,
    },
}

/// Parameters of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Protocol to use.
    pub protocol: Protocol,
    /// Closed or open loop.
    pub mode: Mode,
    /// Measured period; excludes `warmup`.
    pub duration: Duration,
    /// Period before `duration` whose requests are sent but not recorded.
    pub warmup: Duration,
    /// Client-side timeout of one request (for gRPC also sent as `grpc-timeout`).
    pub request_timeout: Duration,
    /// gRPC: number of channels (HTTP/2 connections), used round-robin; 0 counts as 1.
    /// HTTP: unused. HTTP/1.1 carries one request at a time, so the client opens a connection
    /// per request in flight (`concurrency` in the closed loop; in the open loop as many as are
    /// outstanding, up to [`MAX_OUTSTANDING`]) and keeps them all in its idle pool. Capping
    /// them would queue requests in the client, not the server, and measure the client.
    pub connections: usize,
}
