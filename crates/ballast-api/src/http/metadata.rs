//! Server and model metadata (`GET /v2`, `GET /v2/models/{m}[/versions/{v}]`) and the model
//! configuration extension (`.../config`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use ballast_core::{Error, TensorSpec};
use ballast_serve::ModelVersion;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::ApiState;

/// OIP extensions this server implements, as listed by `GET /v2`.
pub const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "parameters",
    "model_configuration",
    "statistics",
    "model_repository",
];

pub async fn server_metadata() -> impl IntoResponse {
    Json(json!({
        "name": "ballast",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
}

fn tensors(specs: &[TensorSpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|s| json!({ "name": s.name, "datatype": s.dtype.as_str(), "shape": s.shape }))
        .collect()
}

/// The model's platform string, as Triton clients expect it.
pub fn platform(mv: &ModelVersion) -> &'static str {
    match mv.engine {
        "tract" => "onnx",
        "onnxruntime" => "onnxruntime_onnx",
        other => other,
    }
}

fn metadata(state: &ApiState, model: &str, version: Option<&str>) -> Result<Json<Value>, ApiError> {
    let repo = state.repository()?;
    let mv = repo.get(model, version)?;
    let versions: Vec<String> = match version {
        Some(_) => vec![mv.version_label.to_string()],
        None => repo
            .entry(model)?
            .versions
            .keys()
            .map(u64::to_string)
            .collect(),
    };
    Ok(Json(json!({
        "name": &*mv.name,
        "versions": versions,
        "platform": platform(&mv),
        "inputs": tensors(&mv.signature.inputs),
        "outputs": tensors(&mv.signature.outputs),
    })))
}

pub async fn model_metadata(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    metadata(&state, &model, None)
}

pub async fn model_version_metadata(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    metadata(&state, &model, Some(&version))
}

fn config(state: &ApiState, model: &str, version: Option<&str>) -> Result<Json<Value>, ApiError> {
    let mv = state.repository()?.get(model, version)?;
    let c = &mv.config;
    Ok(Json(json!({
        "name": &*mv.name,
        "version": &*mv.version_label,
        "platform": platform(&mv),
        "engine": mv.engine,
        "max_batch_size": c.max_batch_size,
        "max_queue_delay_ms": c.max_queue_delay.as_secs_f64() * 1000.0,
        "max_queue_size": c.max_queue_size,
        "default_timeout_ms": c.default_timeout.map(|d| d.as_secs_f64() * 1000.0),
        "target_queue_delay_ms": c.target_queue_delay.as_secs_f64() * 1000.0,
        "instances": c.instances,
        "max_request_rows": c.max_request_rows,
        "allow_non_finite": c.allow_non_finite,
        "allow_nan": mv.limits().allow_nan,
        "allow_inf": mv.limits().allow_inf,
        "concurrency_limit": mv.concurrency_limit(),
        "input": tensors(&mv.signature.inputs),
        "output": tensors(&mv.signature.outputs),
    })))
}

pub async fn model_config(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    config(&state, &model, None)
}

pub async fn model_version_config(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    config(&state, &model, Some(&version))
}

pub async fn not_found(uri: http::Uri) -> ApiError {
    ApiError(Error::not_found(format!("no route for '{}'", uri.path())))
}
