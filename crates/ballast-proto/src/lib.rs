//! Generated Open Inference Protocol v2 gRPC types, client and server, shared by the server
//! (`ballast-api`) and the load generator (`ballast-loadgen`).

#![allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]

/// The `inference` protobuf package.
pub mod inference {
    tonic::include_proto!("inference");
}
