//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ballast_core::Error;
use http::{HeaderValue, header};

use crate::error::ApiError;
use crate::server::ApiState;

pub async fn render(State(state): State<ApiState>) -> Response {
    let Some(handle) = crate::telemetry::prometheus() else {
        return ApiError(Error::unavailable("the metrics recorder is not installed"))
            .into_response();
    };
    // Gauges that are cheaper to read at scrape time than to maintain per request.
    if let Ok(repo) = state.repository() {
        for entry in repo.models() {
            for mv in entry.versions.values() {
                let labels = [
                    ("model", mv.name.to_string()),
                    ("version", mv.version_label.to_string()),
                ];
                metrics::gauge!(ballast_serve::metrics::IN_FLIGHT, &labels)
                    .set(mv.in_flight() as f64);
                metrics::gauge!(ballast_serve::metrics::QUEUE_DEPTH, &labels)
                    .set(mv.queue_depth() as f64);
            }
        }
    }
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
