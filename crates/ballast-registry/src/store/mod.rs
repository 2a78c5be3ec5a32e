//! The metadata store: models, immutable versions with their model cards, aliases and their
//! history, traffic policies, rollouts and the event log.
//!
//! [`MetadataStore`] is the seam: [`sqlite::SqliteStore`] is the embedded default, and a Postgres
//! implementation must pass the same [`conformance`] suite. Every mutation that can change what
//! a server serves bumps [`MetadataStore::generation`], which servers poll.

pub mod conformance;
pub mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use ballast_core::{RolloutPlan, TrafficPolicy};
use serde::{Deserialize, Serialize};

use crate::RegistryError;

pub type Result<T> = std::result::Result<T, RegistryError>;

/// One file of a version's artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the version directory, `/`-separated.
    pub path: String,
    /// `sha256:<hex>` of the file's bytes; the blob's address in the artifact store.
    pub digest: String,
    pub size: u64,
}

/// Who made a model, what for, and on what: required by default policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_use: Option<String>,
    /// Training data reference (a dataset URI, table@snapshot, DVC hash ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<String>,
    /// Evaluation metrics, e.g. `auc = 0.93`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl ModelCard {
    /// The fields default policy requires that are missing, as their flag names.
    pub fn missing_fields(&self) -> Vec<&'static str> {
        let empty = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        let mut out = Vec::new();
        if empty(&self.owner) {
            out.push("owner");
        }
        if empty(&self.description) {
            out.push("description");
        }
        if empty(&self.intended_use) {
            out.push("intended-use");
        }
        if empty(&self.trained_on) {
            out.push("trained-on");
        }
        if self.metrics.is_empty() {
            out.push("metric");
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub created_at: i64,
    /// Serving settings as `config.toml` text; `None` = defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_toml: Option<String>,
}

/// What a push writes; the store assigns the version number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub model: String,
    pub digest: String,
    pub size: u64,
    pub files: Vec<FileEntry>,
    pub card: ModelCard,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub model: String,
    pub version: u64,
    pub digest: String,
    pub size: u64,
    pub files: Vec<FileEntry>,
    pub card: ModelCard,
    pub created_by: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub model: String,
    pub alias: String,
    pub version: u64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasChange {
    pub id: i64,
    pub model: String,
    pub alias: String,
    pub version: u64,
    pub at: i64,
    pub actor: String,
    pub reason: String,
    /// A later rollback stepped back over this change.
    pub reverted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    Promoted,
    RolledBack,
    Cancelled,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Promoted => "promoted",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RolloutState::Running,
            "promoted" => RolloutState::Promoted,
            "rolled_back" => RolloutState::RolledBack,
            "cancelled" => RolloutState::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub id: i64,
    pub model: String,
    pub baseline: u64,
    pub candidate: u64,
    pub plan: RolloutPlan,
    pub state: RolloutState,
    /// Index of the current step in `plan.steps`.
    pub step: usize,
    pub step_started_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub model: Option<String>,
    pub kind: String,
    pub message: String,
    /// The figures behind the decision.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub kind: String,
    pub message: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub model: Option<String>,
    /// Only events with an id above this.
    pub after: Option<i64>,
    pub kind: Option<String>,
    /// Newest `limit` events (still returned oldest first); `None` = all.
    pub limit: Option<u32>,
}

/// Outcome of a push: a new version, or the one that already holds this exact artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Inserted {
    pub version: VersionRecord,
    pub existed: bool,
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// A counter bumped by every change to versions' signatures, aliases, policies, rollouts
    /// and model configs.
    async fn generation(&self) -> Result<u64>;

    /// Creates the model if it does not exist; returns it either way.
    async fn ensure_model(&self, name: &str) -> Result<ModelRecord>;
    async fn get_model(&self, name: &str) -> Result<Option<ModelRecord>>;
    async fn list_models(&self) -> Result<Vec<ModelRecord>>;
    /// Replaces the model's serving settings (`None` = defaults). The model must exist.
    async fn set_model_config(&self, name: &str, config_toml: Option<&str>) -> Result<()>;

    /// Assigns the next version number (1, 2, ...) atomically, creating the model if needed.
    /// If the model already has a version with this digest, returns it with `existed = true`.
    async fn insert_version(&self, new: NewVersion) -> Result<Inserted>;
    async fn get_version(&self, model: &str, version: u64) -> Result<Option<VersionRecord>>;
    /// Oldest first.
    async fn list_versions(&self, model: &str) -> Result<Vec<VersionRecord>>;
    async fn set_signature(
        &self,
        model: &str,
        version: u64,
        signature: &str,
        signer: &str,
    ) -> Result<()>;

    /// Points `alias` at `version` (which must exist) and records the change.
    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
        actor: &str,
        reason: &str,
    ) -> Result<AliasRecord>;
    async fn remove_alias(&self, model: &str, alias: &str) -> Result<bool>;
    async fn get_alias(&self, model: &str, alias: &str) -> Result<Option<AliasRecord>>;
    async fn list_aliases(&self, model: &str) -> Result<Vec<AliasRecord>>;
    /// Oldest first.
    async fn alias_history(&self, model: &str, alias: &str) -> Result<Vec<AliasChange>>;
    /// Marks the alias's current change reverted and points the alias at the version of the
    /// change before it (skipping reverted ones). Returns (from, to). `Conflict` when there is
    /// nothing to go back to.
    async fn rollback_alias(
        &self,
        model: &str,
        alias: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(u64, u64)>;

    /// `None` or an empty policy removes it.
    async fn set_policy(&self, model: &str, policy: Option<&TrafficPolicy>) -> Result<()>;
    async fn get_policy(&self, model: &str) -> Result<Option<TrafficPolicy>>;

    /// Starts a rollout; `Conflict` if one is already running for the model.
    async fn create_rollout(
        &self,
        model: &str,
        baseline: u64,
        candidate: u64,
        plan: &RolloutPlan,
    ) -> Result<RolloutRecord>;
    /// Moves a running rollout to `step` (restarting its clock) or ends it with a reason.
    /// `Conflict` if it is no longer running.
    async fn update_rollout(
        &self,
        id: i64,
        state: RolloutState,
        step: usize,
        reason: Option<&str>,
    ) -> Result<RolloutRecord>;
    async fn get_rollout(&self, id: i64) -> Result<Option<RolloutRecord>>;
    /// The model's running rollout, if any.
    async fn active_rollout(&self, model: &str) -> Result<Option<RolloutRecord>>;
    /// Newest first.
    async fn list_rollouts(&self, model: Option<&str>) -> Result<Vec<RolloutRecord>>;

    async fn append_event(&self, event: NewEvent) -> Result<EventRecord>;
    /// Oldest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>>;
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
