//! The OIP v2 HTTP/JSON front end, one module per API group: [`health`], [`metadata`],
//! [`infer`], and the Prometheus [`metrics`] endpoint.

pub mod health;
pub mod infer;
pub mod metadata;
pub mod metrics;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::server::ApiState;

/// The header carrying a request id, generated when the client sends none.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// A per-request timeout in milliseconds, for clients that cannot set the OIP `timeout`
/// parameter (e.g. load balancers).
pub const TIMEOUT_HEADER: &str = "x-ballast-timeout-ms";

pub fn router(state: ApiState) -> Router {
    let request_id = http::HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .route("/v2", get(metadata::server_metadata))
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::ready))
        .route("/livez", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/v2/models/{model}", get(metadata::model_metadata))
        .route("/v2/models/{model}/ready", get(health::model_ready))
        .route("/v2/models/{model}/config", get(metadata::model_config))
        .route("/v2/models/{model}/infer", post(infer::infer))
        .route("/v2/models/{model}/versions/{version}", get(metadata::model_version_metadata))
        .route("/v2/models/{model}/versions/{version}/ready", get(health::model_version_ready))
        .route("/v2/models/{model}/versions/{version}/config", get(metadata::model_version_config))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer::infer_version))
        .fallback(metadata::not_found)
        // The infer handlers enforce their own limit while streaming, with a clear message.
        .layer(DefaultBodyLimit::disable())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &http::Request<axum::body::Body>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
