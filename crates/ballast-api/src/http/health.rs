//! Liveness (no dependency checks), readiness (every model loaded and warm, not draining) and
//! per-model readiness.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ballast_core::Error;

use crate::error::ApiError;
use crate::server::ApiState;

pub async fn live() -> impl IntoResponse {
    (StatusCode::OK, Json(serde_json::json!({ "live": true })))
}

pub async fn ready(State(state): State<ApiState>) -> impl IntoResponse {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({ "ready": ready })))
}

fn model_ready_response(
    state: &ApiState,
    model: &str,
    version: Option<&str>,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let mv = state.repository()?.get(model, version)?;
    if !mv.is_ready() {
        return Err(Error::unavailable(format!(
            "model '{model}' is not ready: the server is draining"
        ))
        .into());
    }
    Ok(Json(serde_json::json!({
        "name": &*mv.name,
        "version": &*mv.version_label,
        "ready": true,
    })))
}

pub async fn model_ready(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    model_ready_response(&state, &model, None)
}

pub async fn model_version_ready(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    model_ready_response(&state, &model, Some(&version))
}
