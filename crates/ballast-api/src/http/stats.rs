//! Triton's statistics extension (`GET /v2/models[/{m}[/versions/{v}]]/stats`) and the model
//! repository extension (`POST /v2/repository/index`, `POST /v2/repository/models/{m}/load` and
//! `/unload`). The gRPC `ModelStatistics`, `RepositoryIndex` and `RepositoryModelLoad|Unload`
//! calls answer from the same functions.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use ballast_core::Error;
use ballast_serve::{ModelRepository, ModelVersion};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::ApiState;

/// The versions whose statistics were asked for: every served version of every model, of one
/// model, or one version.
pub fn versions_for(
    repo: &ModelRepository,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<Arc<ModelVersion>>, Error> {
    match (
        model.filter(|m| !m.is_empty()),
        version.filter(|v| !v.is_empty()),
    ) {
        (None, _) => Ok(repo
            .models()
            .iter()
            .flat_map(|e| e.versions.values().cloned().collect::<Vec<_>>())
            .collect()),
        (Some(m), None) => Ok(repo.entry(m)?.versions.values().cloned().collect()),
        (Some(m), Some(v)) => Ok(vec![repo.get(m, Some(v))?]),
    }
}

fn duration(count: u64, ns: u64) -> Value {
    json!({ "count": count, "ns": ns })
}

/// One version's statistics in Triton's JSON shape.
pub fn stats_json(mv: &ModelVersion) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let s = mv.stats();
    let (sc, sn) = s.success.get();
    let (fc, fnn) = s.fail.get();
    let (qc, qn) = s.queue.get();
    let (cc, cn) = s.compute_infer.get();
    let batches: Vec<Value> = s
        .batch_stats()
        .into_iter()
        .map(|(size, count, ns)| {
            json!({
                "batch_size": size,
                "compute_input": duration(count, 0),
                "compute_infer": duration(count, ns),
                "compute_output": duration(count, 0),
            })
        })
        .collect();
    json!({
        "name": &*mv.name,
        "version": &*mv.version_label,
        "last_inference": s.last_inference_ms.load(Relaxed),
        "inference_count": s.inference_count.load(Relaxed),
        "execution_count": s.execution_count.load(Relaxed),
        "inference_stats": {
            "success": duration(sc, sn),
            "fail": duration(fc, fnn),
            "queue": duration(qc, qn),
            "compute_input": duration(cc, 0),
            "compute_infer": duration(cc, cn),
            "compute_output": duration(cc, 0),
            "cache_hit": duration(0, 0),
            "cache_miss": duration(0, 0),
        },
        "batch_stats": batches,
    })
}

fn stats(
    state: &ApiState,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let repo = state.repository()?;
    let stats: Vec<Value> = versions_for(repo, model, version)?
        .iter()
        .map(|mv| stats_json(mv))
        .collect();
    Ok(Json(json!({ "model_stats": stats })))
}

pub async fn all_stats(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    stats(&state, None, None)
}

pub async fn model_stats(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    stats(&state, Some(&model), None)
}

pub async fn model_version_stats(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    stats(&state, Some(&model), Some(&version))
}

/// One repository index entry: `(name, version, state, reason)`.
pub type IndexEntry = (String, String, &'static str, String);

/// Every model and version the repository knows: served versions `READY`, versions that
/// failed to load `UNAVAILABLE` with the reason; with `ready_only`, the ready ones.
pub fn index(repo: &ModelRepository, ready_only: bool) -> Vec<IndexEntry> {
    let mut out: Vec<IndexEntry> = Vec::new();
    for entry in repo.models() {
        for mv in entry.versions.values() {
            let state = if mv.is_ready() {
                "READY"
            } else {
                "UNAVAILABLE"
            };
            out.push((
                entry.name.clone(),
                mv.version_label.to_string(),
                state,
                String::new(),
            ));
        }
    }
    if !ready_only {
        for f in repo.failures() {
            out.push((
                f.model,
                f.version.map(|v| v.to_string()).unwrap_or_default(),
                "UNAVAILABLE",
                f.reason,
            ));
        }
    }
    if ready_only {
        out.retain(|e| e.2 == "READY");
    }
    out.sort();
    out
}

pub async fn repository_index(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let ready_only = if body.is_empty() {
        false
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            Error::invalid(format!("repository index request body is not JSON: {e}"))
        })?;
        match v.get("ready") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::invalid(format!("ready must be a boolean, got {other}")).into());
            }
        }
    };
    let repo = state.repository()?;
    let entries: Vec<Value> = index(repo, ready_only)
        .into_iter()
        .map(|(name, version, state, reason)| {
            let mut e = json!({ "name": name, "version": version, "state": state });
            if !reason.is_empty() {
                e["reason"] = Value::String(reason);
            }
            e
        })
        .collect();
    Ok(Json(Value::Array(entries)))
}

/// Loads (`load = true`) or unloads one model of the served directory (explicit mode only).
pub async fn control(repo: &ModelRepository, model: &str, load: bool) -> Result<(), Error> {
    let Some(source) = repo.source() else {
        return Err(Error::invalid(
            "models are loaded and unloaded through the registry here (ballast model promote / \
             rollback); repository load and unload apply to --model-repository",
        ));
    };
    if load {
        source.load(repo, model).await
    } else {
        source.unload(repo, model).await
    }
}

pub async fn load_model(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    control(state.repository()?, &model, true).await?;
    Ok(Json(json!({})))
}

pub async fn unload_model(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    control(state.repository()?, &model, false).await?;
    Ok(Json(json!({})))
}
