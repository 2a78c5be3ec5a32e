//! The OIP v2 HTTP/JSON front end, one module per API group: [`health`], [`metadata`],
//! [`infer`], [`stats`] (statistics and repository extensions), [`monitor`] (drift), KServe [`v1`], and the
//! Prometheus [`metrics`] endpoint. Every route is documented in `docs/inference-openapi.yaml`
//! (served at `/openapi.yaml`; a test keeps the two in step).

pub mod health;
pub mod infer;
pub mod metadata;
pub mod metrics;
pub mod monitor;
pub mod stats;
pub mod v1;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::server::ApiState;

pub use ballast_serve::context::{PRIORITY_HEADER, REQUEST_ID_HEADER, TIMEOUT_HEADER};

/// The OpenAPI document of this listener, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../docs/inference-openapi.yaml");

async fn openapi() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v2", get(metadata::server_metadata))
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::ready))
        .route("/livez", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/openapi.yaml", get(openapi))
        .route(
            "/v1/models/{target}",
            get(v1::model_status).post(v1::model_verb),
        )
        .route("/v2/models/stats", get(stats::all_stats))
        .route("/v2/monitor", get(monitor::all))
        .route("/v2/alerts", get(monitor::alerts))
        .route("/v2/models/{model}/monitor", get(monitor::model))
        .route(
            "/v2/models/{model}/versions/{version}/monitor",
            get(monitor::model_version),
        )
        .route("/v2/repository/index", post(stats::repository_index))
        .route(
            "/v2/repository/models/{model}/load",
            post(stats::load_model),
        )
        .route(
            "/v2/repository/models/{model}/unload",
            post(stats::unload_model),
        )
        .route("/v2/models/{model}", get(metadata::model_metadata))
        .route("/v2/models/{model}/stats", get(stats::model_stats))
        .route(
            "/v2/models/{model}/versions/{version}/stats",
            get(stats::model_version_stats),
        )
        .route("/v2/models/{model}/ready", get(health::model_ready))
        .route("/v2/models/{model}/config", get(metadata::model_config))
        .route("/v2/models/{model}/infer", post(infer::infer))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(metadata::model_version_metadata),
        )
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(health::model_version_ready),
        )
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(metadata::model_version_config),
        )
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer::infer_version),
        )
        .fallback(metadata::not_found)
        // The infer handlers enforce their own limit while streaming, with a clear message.
        // No per-request tracing layer or UUID: under overload every refusal paid for them.
        // The request id and the failure log live in the shared entry instead.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
