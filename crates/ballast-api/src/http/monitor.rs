//! Live drift and data quality (`GET /v2/monitor`, `GET /v2/models/{m}[/versions/{v}]/monitor`):
//! what `ballast-monitor` has counted for each served version against its reference profile.
//!
//! Every served version is listed: `monitored: true` with its windows, or `monitored: false`
//! with the reason (no reference beside it, or one that could not be used). An unknown model
//! or version answers 404 exactly as the other model endpoints do.

use axum::Json;
use axum::extract::{Path, State};
use ballast_core::Error;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::stats::versions_for;
use crate::server::ApiState;

/// Said of a version without a reference profile.
const NO_REFERENCE: &str =
    "no reference profile: put reference.csv in the version's directory or the model's";

fn monitor(
    state: &ApiState,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let repo = state.repository()?;
    let versions = versions_for(repo, model, version)?;
    let monitor = state.monitor();
    let mut out = Vec::with_capacity(versions.len());
    for mv in &versions {
        let (name, label) = (&*mv.name, &*mv.version_label);
        let entry =
            match monitor.map(|m| (m.version_report(name, label), m.unmonitored(name, label))) {
                None => json!({
                    "model": name, "version": label, "monitored": false,
                    "reason": "monitoring is off ([monitor] enabled = false)",
                }),
                Some((Some(report), _)) => {
                    let mut v = serde_json::to_value(report).map_err(|e| {
                        Error::internal(format!("cannot encode the monitor report: {e}"))
                    })?;
                    if let Value::Object(o) = &mut v {
                        o.insert("monitored".into(), Value::Bool(true));
                    }
                    v
                }
                Some((None, Some(u))) => json!({
                    "model": name, "version": label, "monitored": false,
                    "reference": u.reference, "reason": u.error,
                }),
                Some((None, None)) => json!({
                    "model": name, "version": label, "monitored": false, "reason": NO_REFERENCE,
                }),
            };
        out.push(entry);
    }
    let thresholds = monitor.map(|m| {
        let o = m.options();
        json!({
            "window_seconds": o.window.as_secs_f64(), "window_rows": o.rows,
            "alpha": o.alpha, "min_distance": o.min_distance, "min_rows": o.min_rows,
        })
    });
    Ok(Json(json!({ "versions": out, "thresholds": thresholds })))
}

pub async fn all(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    monitor(&state, None, None)
}

pub async fn model(
    State(state): State<ApiState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    monitor(&state, Some(&model), None)
}

pub async fn model_version(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    monitor(&state, Some(&model), Some(&version))
}

/// `GET /v2/alerts`: every alert instance (firing first, then pending, then resolved in the
/// last 15 minutes) and the rules.
pub async fn alerts(State(state): State<ApiState>) -> Json<Value> {
    match state.alerts() {
        Some(a) => Json(json!({ "alerts": a.list(), "rules": a.rules() })),
        None => Json(
            json!({ "alerts": [], "rules": [], "reason": "no [[alert]] rules are configured" }),
        ),
    }
}
