//! The admin HTTP API: the CLI's registry operations over HTTP, on their own listener (never
//! on the inference port), documented in `docs/admin-openapi.yaml` (served at
//! `/admin/v1/openapi.yaml`). Optional bearer token, compared in constant time. Every change
//! wakes the deployer, so it applies at once rather than at the next poll.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ballast_core::{RolloutPlan, TrafficPolicy};
use ballast_registry::apply::{self, Desired};
use ballast_registry::store::{EventFilter, ModelCard};
use ballast_registry::{PushRequest, RegistryError};
use futures::TryStreamExt;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;

use crate::Deployer;

pub const OPENAPI: &str = include_str!("../../../docs/admin-openapi.yaml");

#[derive(Clone)]
pub struct AdminState {
    pub deployer: Arc<Deployer>,
    pub token: Option<Arc<str>>,
}

struct AdminError(StatusCode, String);

impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        AdminError(status, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type Result<T> = std::result::Result<T, AdminError>;

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, msg.into())
}

fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-ballast-actor")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "admin-api".to_string(), |s| s.chars().take(64).collect())
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/openapi.yaml", get(openapi))
        .route("/admin/v1/models", get(list_models))
        .route("/admin/v1/models/{model}", get(show_model))
        .route("/admin/v1/models/{model}/versions", post(push))
        .route(
            "/admin/v1/models/{model}/versions/{version}",
            get(show_version),
        )
        .route(
            "/admin/v1/models/{model}/versions/{version}/verify",
            post(verify),
        )
        .route("/admin/v1/models/{model}/diff", get(diff))
        .route("/admin/v1/models/{model}/aliases/{alias}", put(promote))
        .route(
            "/admin/v1/models/{model}/aliases/{alias}/rollback",
            post(rollback),
        )
        .route(
            "/admin/v1/models/{model}/policy",
            put(set_policy).delete(clear_policy),
        )
        .route(
            "/admin/v1/models/{model}/rollouts",
            get(list_rollouts).post(start_rollout),
        )
        .route(
            "/admin/v1/models/{model}/rollouts/active",
            axum::routing::delete(cancel_rollout),
        )
        .route("/admin/v1/events", get(events))
        .route("/admin/v1/apply", post(apply_file))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok = given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()));
        if !ok {
            return AdminError(
                StatusCode::UNAUTHORIZED,
                "admin API: missing or wrong bearer token (Authorization: Bearer ...)".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

async fn list_models(State(s): State<AdminState>) -> Result<Json<serde_json::Value>> {
    let registry = &s.deployer.registry;
    let mut out = Vec::new();
    for m in registry.store.list_models().await? {
        out.push(registry.describe(&m.name).await?);
    }
    Ok(Json(serde_json::json!({ "models": out })))
}

async fn show_model(
    State(s): State<AdminState>,
    Path(model): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let d = s.deployer.registry.describe(&model).await?;
    let serving = s.deployer.repository.entry(&model).ok().map(|e| {
        serde_json::json!({
            "default": e.default,
            "versions": e.versions.keys().collect::<Vec<_>>(),
            "aliases": e.aliases,
            "traffic": e.traffic.as_ref().map(|t| &t.policy),
        })
    });
    let mut v = serde_json::to_value(d).map_err(|e| bad(e.to_string()))?;
    v["serving"] = serving.unwrap_or(serde_json::Value::Null);
    Ok(Json(v))
}

async fn show_version(
    State(s): State<AdminState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>> {
    let v = s
        .deployer
        .registry
        .resolve(&format!("{model}@{version}"))
        .await?;
    Ok(Json(
        serde_json::to_value(v).map_err(|e| bad(e.to_string()))?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushQuery {
    /// The model file's name (`model.onnx`, `model.json`, `model.txt`).
    file: String,
    owner: Option<String>,
    description: Option<String>,
    intended_use: Option<String>,
    trained_on: Option<String>,
    /// `k=v,k=v`
    metrics: Option<String>,
    /// Leave `production` unset even for the model's first version.
    #[serde(default)]
    no_promote: bool,
}

/// Streams one model file (the request body) to a staging file, then pushes it.
async fn push(
    State(s): State<AdminState>,
    Path(model): Path<String>,
    Query(q): Query<PushQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    if q.file.is_empty() || q.file.contains('/') || q.file.starts_with('.') {
        return Err(bad(format!(
            "file: {:?} must be a plain file name such as model.onnx",
            q.file
        )));
    }
    let mut metrics = BTreeMap::new();
    for pair in q
        .metrics
        .iter()
        .flat_map(|m| m.split(','))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("metrics: expected k=v, got {pair:?}")))?;
        let v: f64 = v
            .parse()
            .map_err(|_| bad(format!("metrics: {k}: {v:?} is not a number")))?;
        metrics.insert(k.to_string(), v);
    }
    let registry = &s.deployer.registry;
    let staging = tempfile::tempdir_in(std::env::temp_dir()).map_err(|e| bad(e.to_string()))?;
    let path = staging.path().join(&q.file);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| bad(format!("cannot read the upload: {e}")))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    file.flush()
        .await
        .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    drop(file);
    let out = registry
        .push(
            &path,
            PushRequest {
                name: model,
                card: ModelCard {
                    owner: q.owner,
                    description: q.description,
                    intended_use: q.intended_use,
                    trained_on: q.trained_on,
                    metrics,
                },
                actor: actor(&headers),
                config_toml: None,
                no_promote: q.no_promote,
            },
        )
        .await?;
    s.deployer.notify();
    let status = if out.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(serde_json::to_value(out).map_err(|e| bad(e.to_string()))?),
    ))
}

async fn verify(
    State(s): State<AdminState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>> {
    let registry = &s.deployer.registry;
    let v = registry.resolve(&format!("{model}@{version}")).await?;
    registry
        .artifacts
        .materialize(&v.model, v.version, &v.digest, &v.files)
        .await?;
    registry.options.signatures.check(&v)?;
    Ok(Json(serde_json::json!({
        "model": v.model, "version": v.version, "digest": v.digest,
        "files_verified": v.files.len(), "signer": v.signer,
    })))
}

#[derive(Deserialize)]
struct DiffQuery {
    a: String,
    b: String,
}

async fn diff(
    State(s): State<AdminState>,
    Path(model): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<serde_json::Value>> {
    let registry = &s.deployer.registry;
    let a = registry.resolve(&format!("{model}@{}", q.a)).await?;
    let b = registry.resolve(&format!("{model}@{}", q.b)).await?;
    Ok(Json(
        serde_json::json!({ "a": a.version, "b": b.version, "changes": ballast_registry::diff_versions(&a, &b) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    version: u64,
    #[serde(default)]
    reason: Option<String>,
}

async fn promote(
    State(s): State<AdminState>,
    Path((model, alias)): Path<(String, String)>,
    headers: HeaderMap,
    Json(b): Json<PromoteBody>,
) -> Result<Json<serde_json::Value>> {
    let reason = b
        .reason
        .unwrap_or_else(|| "promoted through the admin API".into());
    let a = s
        .deployer
        .registry
        .promote(&model, b.version, &alias, &actor(&headers), &reason)
        .await?;
    s.deployer.notify();
    Ok(Json(
        serde_json::to_value(a).map_err(|e| bad(e.to_string()))?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn rollback(
    State(s): State<AdminState>,
    Path((model, alias)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<ReasonBody>>,
) -> Result<Json<serde_json::Value>> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "rolled back through the admin API".into());
    let (from, to) = s
        .deployer
        .registry
        .rollback(&model, &alias, &actor(&headers), &reason)
        .await?;
    s.deployer.notify();
    Ok(Json(
        serde_json::json!({ "model": model, "alias": alias, "from": from, "to": to }),
    ))
}

async fn set_policy(
    State(s): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Json(policy): Json<TrafficPolicy>,
) -> Result<Json<serde_json::Value>> {
    s.deployer
        .registry
        .set_policy(&model, Some(&policy), &actor(&headers))
        .await?;
    s.deployer.notify();
    Ok(Json(
        serde_json::json!({ "model": model, "policy": policy }),
    ))
}

async fn clear_policy(
    State(s): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    s.deployer
        .registry
        .set_policy(&model, None, &actor(&headers))
        .await?;
    s.deployer.notify();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutBody {
    version: u64,
    #[serde(default)]
    plan: Option<RolloutPlan>,
}

async fn start_rollout(
    State(s): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Json(b): Json<RolloutBody>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let plan = b.plan.unwrap_or_default();
    let r = s
        .deployer
        .registry
        .start_rollout(&model, b.version, &plan, &actor(&headers))
        .await?;
    s.deployer.notify();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(r).map_err(|e| bad(e.to_string()))?),
    ))
}

async fn list_rollouts(
    State(s): State<AdminState>,
    Path(model): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let all = s
        .deployer
        .registry
        .store
        .list_rollouts(Some(&model))
        .await?;
    Ok(Json(serde_json::json!({ "rollouts": all })))
}

async fn cancel_rollout(
    State(s): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>> {
    let r = s
        .deployer
        .registry
        .cancel_rollout(&model, &actor(&headers))
        .await?;
    s.deployer.notify();
    Ok(Json(
        serde_json::to_value(r).map_err(|e| bad(e.to_string()))?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    model: Option<String>,
    kind: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

async fn events(
    State(s): State<AdminState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>> {
    let events = s
        .deployer
        .registry
        .events(&EventFilter {
            model: q.model,
            kind: q.kind,
            after: q.after,
            limit: Some(q.limit.unwrap_or(100).min(10_000)),
        })
        .await?;
    Ok(Json(serde_json::json!({ "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

/// The body is a declaration file; relative version paths resolve against the server's
/// working directory.
async fn apply_file(
    State(s): State<AdminState>,
    Query(q): Query<ApplyQuery>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<serde_json::Value>> {
    let desired = Desired::parse(&body, std::path::Path::new("."), "request body")?;
    let registry = &s.deployer.registry;
    let plan = apply::plan(registry, &desired).await?;
    if !q.dry_run && !plan.is_empty() {
        apply::execute(registry, &desired, &plan, &actor(&headers)).await?;
        s.deployer.notify();
    }
    Ok(Json(
        serde_json::json!({ "applied": !q.dry_run, "changes": plan }),
    ))
}
