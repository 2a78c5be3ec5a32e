//! ballast-registry: what should be served, and how it got there.
//!
//! - [`store`]: the metadata store trait (models, versions and model cards, aliases and their
//!   history, traffic policies, rollouts, events), its SQLite implementation and the conformance
//!   suite every implementation passes.
//! - [`artifacts`]: content-addressed files behind `object_store`, verified on every load.
//! - [`signing`]: optional ed25519 signatures and the policy that requires them.
//! - [`Registry`]: the operations the CLI and the admin API share (push, import, promote,
//!   rollback, policies, rollouts, events), each recording its event.
//!
//! The serving side (hot swap, traffic split, rollout controller) lives in `ballast-deploy`.

pub mod apply;
pub mod artifacts;
pub mod signing;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast_core::{ModelConfig, RolloutPlan, TrafficPolicy};
use serde::Serialize;

use artifacts::ArtifactStore;
use signing::SignaturePolicy;
use store::{
    AliasRecord, EventFilter, EventRecord, MetadataStore, ModelCard, NewEvent, NewVersion,
    RolloutRecord, RolloutState, VersionRecord,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A digest or signature does not match: the artifact must not be served.
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    Storage(String),
}

impl RegistryError {
    pub fn http_status(&self) -> u16 {
        match self {
            RegistryError::NotFound(_) => 404,
            RegistryError::Invalid(_) => 400,
            RegistryError::Conflict(_) => 409,
            RegistryError::Integrity(_) => 422,
            RegistryError::Storage(_) => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

/// "model 'm' has no version v", the one wording for a missing version.
pub fn no_version(model: &str, version: u64) -> RegistryError {
    RegistryError::NotFound(format!("model '{model}' has no version {version}"))
}

/// The alias unversioned traffic goes to.
pub const PRODUCTION: &str = "production";

/// Where the registry keeps things and what it insists on.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Holds `registry.db`, `artifacts/` (unless `artifacts` says otherwise) and `cache/`.
    pub data_dir: PathBuf,
    /// Artifact store: a directory or an `s3://`, `gs://`, `az://` URL.
    pub artifacts: Option<String>,
    /// Refuse pushes whose model card misses required fields (default policy: yes).
    pub require_model_card: bool,
    pub signatures: SignaturePolicy,
}

impl RegistryOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            artifacts: None,
            require_model_card: true,
            signatures: SignaturePolicy::default(),
        }
    }
}

pub struct Registry {
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Arc<ArtifactStore>,
    pub options: RegistryOptions,
}

/// The result of a push.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    #[serde(flatten)]
    pub version: VersionRecord,
    /// The same artifact was already registered for this model; nothing new was stored.
    pub existed: bool,
    /// Bytes written to the artifact store (0 when every file was already there).
    pub new_bytes: u64,
    /// This push pointed `production` at the version: it is the model's first
    /// ([`Registry::push`]).
    pub promoted: bool,
}

/// Everything a push needs besides the files.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    pub name: String,
    pub card: ModelCard,
    pub actor: String,
    /// Serving settings (`config.toml` text) to set on the model with this push.
    pub config_toml: Option<String>,
    /// Leave `production` unset even when this is the model's first version (`--no-promote`).
    pub no_promote: bool,
}

/// Model and alias names: what fits in a URL path segment and a metric label.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(RegistryError::Invalid(format!(
            "{kind} name {name:?} must be 1-128 letters, digits, '_', '-' or '.', not starting with '.'"
        )));
    }
    if kind == "alias" && name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegistryError::Invalid(format!(
            "alias name {name:?} is a number; it would be mistaken for a version"
        )));
    }
    Ok(())
}

/// `NAME`, `NAME@VERSION` or `NAME@ALIAS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub model: String,
    pub selector: Option<String>,
}

impl VersionRef {
    pub fn parse(s: &str) -> Result<Self> {
        let (model, selector) = match s.split_once('@') {
            Some((m, sel)) if !sel.is_empty() => (m, Some(sel.to_string())),
            Some(_) => {
                return Err(RegistryError::Invalid(format!(
                    "{s:?}: expected NAME, NAME@VERSION or NAME@ALIAS"
                )));
            }
            None => (s, None),
        };
        check_name("model", model)?;
        Ok(Self {
            model: model.to_string(),
            selector,
        })
    }
}

impl Registry {
    pub async fn open(options: RegistryOptions) -> Result<Self> {
        let store = store::sqlite::SqliteStore::open(&options.data_dir.join("registry.db")).await?;
        let artifacts_location = options.artifacts.clone().unwrap_or_else(|| {
            options
                .data_dir
                .join("artifacts")
                .to_string_lossy()
                .into_owned()
        });
        let artifacts = ArtifactStore::open(&artifacts_location, &options.data_dir.join("cache"))?;
        Ok(Self {
            store: Arc::new(store),
            artifacts: Arc::new(artifacts),
            options,
        })
    }

    pub async fn event(
        &self,
        model: Option<&str>,
        kind: &str,
        message: String,
        details: serde_json::Value,
    ) -> Result<EventRecord> {
        tracing::info!(model = model.unwrap_or(""), kind, %details, "{message}");
        self.store
            .append_event(NewEvent {
                model: model.map(str::to_string),
                kind: kind.to_string(),
                message,
                details,
            })
            .await
    }

    /// Stores the files under `path` (a version directory or one model file) and registers
    /// them as the model's next version; the same files pushed again return the version that
    /// holds them.
    ///
    /// The first version of a model becomes `production` unless `request.no_promote` (or the
    /// signature policy would not serve it yet: sign it, then promote). Every way in (push,
    /// import, the admin API) goes through here, so the rule is the same for all of them; later
    /// versions reach production by a promote or a rollout.
    pub async fn push(&self, path: &Path, request: PushRequest) -> Result<PushOutcome> {
        check_name("model", &request.name)?;
        if self.options.require_model_card {
            let missing = request.card.missing_fields();
            if !missing.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "model card incomplete: missing {} (pass --{}, or --allow-missing-card to push without a complete card)",
                    missing.join(", "),
                    missing.join(", --")
                )));
            }
        }
        if let Some(toml) = &request.config_toml {
            ModelConfig::from_toml(toml, "config")
                .map_err(|e| RegistryError::Invalid(e.message))?;
        }
        let stored = if path.is_file() {
            // One file: stage it alone so the artifact is exactly that file.
            let staging = tempfile_dir(&self.options.data_dir)?;
            let name = path.file_name().ok_or_else(|| {
                RegistryError::Invalid(format!("{} has no file name", path.display()))
            })?;
            std::fs::copy(path, staging.path().join(name)).map_err(|e| {
                RegistryError::Storage(format!("cannot read {}: {e}", path.display()))
            })?;
            self.artifacts.put_dir(staging.path()).await?
        } else if path.is_dir() {
            self.artifacts.put_dir(path).await?
        } else {
            return Err(RegistryError::NotFound(format!(
                "{} does not exist",
                path.display()
            )));
        };
        let inserted = self
            .store
            .insert_version(NewVersion {
                model: request.name.clone(),
                digest: stored.digest.clone(),
                size: stored.size,
                files: stored.files.clone(),
                card: request.card,
                created_by: request.actor.clone(),
            })
            .await?;
        if let Some(toml) = &request.config_toml {
            self.store
                .set_model_config(&request.name, Some(toml))
                .await?;
        }
        let v = &inserted.version;
        if !inserted.existed {
            self.event(
                Some(&v.model),
                "pushed",
                format!(
                    "{} version {} pushed by {} ({})",
                    v.model, v.version, v.created_by, v.digest
                ),
                serde_json::json!({
                    "version": v.version, "digest": v.digest, "size": v.size,
                    "new_bytes": stored.new_bytes, "files": v.files.len(),
                }),
            )
            .await?;
        }
        let promoted = !inserted.existed
            && !request.no_promote
            && self.is_first_version(v).await?
            && self.options.signatures.check(v).is_ok();
        if promoted {
            self.promote(
                &v.model,
                v.version,
                PRODUCTION,
                &request.actor,
                "the model's first version",
            )
            .await?;
        }
        Ok(PushOutcome {
            existed: inserted.existed,
            new_bytes: stored.new_bytes,
            promoted,
            version: inserted.version,
        })
    }

    /// `v` is its model's only version and nothing is in production yet.
    async fn is_first_version(&self, v: &VersionRecord) -> Result<bool> {
        let versions = self.store.list_versions(&v.model).await?;
        Ok(versions.len() == 1
            && versions[0].version == v.version
            && self.store.get_alias(&v.model, PRODUCTION).await?.is_none())
    }

    /// Takes in a Triton-style repository: `DIR/<model>/<version>/...` and optional
    /// `DIR/<model>/config.toml` (serving settings) and `DIR/<model>/card.json` (model card,
    /// overriding `defaults` field by field). Version directories are pushed in numeric
    /// order, each as [`Registry::push`] does: a new model's first (lowest) version becomes
    /// `production` unless `no_promote`. Every card problem in the repository is reported
    /// before anything is stored.
    pub async fn import(
        &self,
        dir: &Path,
        defaults: &ModelCard,
        actor: &str,
        no_promote: bool,
    ) -> Result<Vec<PushOutcome>> {
        let mut plan = Vec::new();
        let mut problems = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            RegistryError::NotFound(format!("cannot read repository {}: {e}", dir.display()))
        })?;
        let mut model_dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        model_dirs.sort();
        for model_dir in model_dirs {
            let Some(name) = model_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if let Err(e) = check_name("model", &name) {
                problems.push(e.to_string());
                continue;
            }
            let card = match read_card(&model_dir, defaults) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    continue;
                }
            };
            if self.options.require_model_card {
                let missing = card.missing_fields();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{name}: model card incomplete: missing {} (add {}/card.json or pass the flags, or --allow-missing-card to import without complete cards)",
                        missing.join(", "),
                        model_dir.display()
                    ));
                }
            }
            let config_path = model_dir.join("config.toml");
            let config_toml = if config_path.is_file() {
                let text = std::fs::read_to_string(&config_path).map_err(|e| {
                    RegistryError::Storage(format!("cannot read {}: {e}", config_path.display()))
                })?;
                if let Err(e) = ModelConfig::from_toml(&text, &config_path.display().to_string()) {
                    problems.push(e.message);
                }
                Some(text)
            } else {
                None
            };
            let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir(&model_dir)
                .map_err(|e| {
                    RegistryError::Storage(format!("cannot read {}: {e}", model_dir.display()))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .filter_map(|p| Some((p.file_name()?.to_str()?.parse::<u64>().ok()?, p)))
                .collect();
            versions.sort();
            if versions.is_empty() {
                problems.push(format!(
                    "{name}: no version directories ({}/<number>/)",
                    model_dir.display()
                ));
            }
            plan.push((name, card, config_toml, versions));
        }
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "nothing imported from {}:\n  {}",
                dir.display(),
                problems.join("\n  ")
            )));
        }
        let mut out = Vec::new();
        for (name, card, config_toml, versions) in plan {
            for (_, path) in versions {
                let pushed = self
                    .push(
                        &path,
                        PushRequest {
                            name: name.clone(),
                            card: card.clone(),
                            actor: actor.to_string(),
                            config_toml: config_toml.clone(),
                            no_promote,
                        },
                    )
                    .await?;
                out.push(pushed);
            }
        }
        Ok(out)
    }

    /// Resolves `NAME[@VERSION|@ALIAS]`; a bare name means `production`, else the newest.
    pub async fn resolve(&self, spec: &str) -> Result<VersionRecord> {
        let r = VersionRef::parse(spec)?;
        let version = match r.selector.as_deref() {
            Some(sel) if sel.bytes().all(|b| b.is_ascii_digit()) => {
                sel.parse::<u64>().map_err(|_| {
                    RegistryError::Invalid(format!("{spec:?}: version number too large"))
                })?
            }
            Some(alias) => {
                self.store
                    .get_alias(&r.model, alias)
                    .await?
                    .ok_or_else(|| {
                        RegistryError::NotFound(format!(
                            "model '{}' has no alias '{alias}'",
                            r.model
                        ))
                    })?
                    .version
            }
            None => match self.store.get_alias(&r.model, PRODUCTION).await? {
                Some(a) => a.version,
                None => self
                    .store
                    .list_versions(&r.model)
                    .await?
                    .last()
                    .map(|v| v.version)
                    .ok_or_else(|| {
                        RegistryError::NotFound(format!("unknown model '{}'", r.model))
                    })?,
            },
        };
        self.store
            .get_version(&r.model, version)
            .await?
            .ok_or_else(|| no_version(&r.model, version))
    }

    /// Points `alias` at `version`, refusing versions the signature policy would not serve.
    pub async fn promote(
        &self,
        model: &str,
        version: u64,
        alias: &str,
        actor: &str,
        reason: &str,
    ) -> Result<AliasRecord> {
        check_name("alias", alias)?;
        let v = self
            .store
            .get_version(model, version)
            .await?
            .ok_or_else(|| no_version(model, version))?;
        self.options.signatures.check(&v)?;
        let previous = self.store.get_alias(model, alias).await?.map(|a| a.version);
        let record = self
            .store
            .set_alias(model, alias, version, actor, reason)
            .await?;
        self.event(
            Some(model),
            "promoted",
            format!("{model}@{alias} → version {version} by {actor} ({reason})"),
            serde_json::json!({ "alias": alias, "version": version, "previous": previous, "actor": actor, "reason": reason }),
        )
        .await?;
        Ok(record)
    }

    /// Returns `alias` to the version it pointed at before its current one.
    pub async fn rollback(
        &self,
        model: &str,
        alias: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(u64, u64)> {
        let (from, to) = self
            .store
            .rollback_alias(model, alias, actor, reason)
            .await?;
        self.event(
            Some(model),
            "rolled_back",
            format!("{model}@{alias} rolled back from version {from} to {to} by {actor} ({reason})"),
            serde_json::json!({ "alias": alias, "from": from, "to": to, "actor": actor, "reason": reason }),
        )
        .await?;
        Ok((from, to))
    }

    pub async fn set_policy(
        &self,
        model: &str,
        policy: Option<&TrafficPolicy>,
        actor: &str,
    ) -> Result<()> {
        if let Some(p) = policy {
            let problems = p.problems();
            if !problems.is_empty() {
                return Err(RegistryError::Invalid(problems.join("; ")));
            }
            for v in p.candidates() {
                self.store
                    .get_version(model, v)
                    .await?
                    .ok_or_else(|| no_version(model, v))?;
            }
        }
        self.store.set_policy(model, policy).await?;
        self.event(
            Some(model),
            "policy_set",
            match policy.filter(|p| !p.is_empty()) {
                Some(p) => format!(
                    "{model}: traffic policy set by {actor}: {}",
                    serde_json::to_string(p).unwrap_or_default()
                ),
                None => format!("{model}: traffic policy cleared by {actor}"),
            },
            serde_json::to_value(policy).unwrap_or_default(),
        )
        .await?;
        Ok(())
    }

    /// Starts an automated rollout of `candidate` against the current production version.
    pub async fn start_rollout(
        &self,
        model: &str,
        candidate: u64,
        plan: &RolloutPlan,
        actor: &str,
    ) -> Result<RolloutRecord> {
        let problems = plan.problems();
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "invalid rollout plan: {}",
                problems.join("; ")
            )));
        }
        let baseline = self
            .store
            .get_alias(model, PRODUCTION)
            .await?
            .ok_or_else(|| {
                RegistryError::Conflict(format!(
                    "model '{model}' has no production version to roll out against; promote one first"
                ))
            })?
            .version;
        if baseline == candidate {
            return Err(RegistryError::Conflict(format!(
                "version {candidate} of '{model}' is already production"
            )));
        }
        let v = self
            .store
            .get_version(model, candidate)
            .await?
            .ok_or_else(|| no_version(model, candidate))?;
        self.options.signatures.check(&v)?;
        let r = self
            .store
            .create_rollout(model, baseline, candidate, plan)
            .await?;
        self.event(
            Some(model),
            "rollout_started",
            format!(
                "{model}: rollout {} of version {candidate} against {baseline} started by {actor} ({} steps)",
                r.id,
                plan.steps.len()
            ),
            serde_json::json!({ "rollout": r.id, "baseline": baseline, "candidate": candidate, "plan": plan, "actor": actor }),
        )
        .await?;
        Ok(r)
    }

    pub async fn cancel_rollout(&self, model: &str, actor: &str) -> Result<RolloutRecord> {
        let r = self.store.active_rollout(model).await?.ok_or_else(|| {
            RegistryError::NotFound(format!("model '{model}' has no running rollout"))
        })?;
        let reason = format!("cancelled by {actor}");
        let r = self
            .store
            .update_rollout(r.id, RolloutState::Cancelled, r.step, Some(&reason))
            .await?;
        self.event(
            Some(model),
            "rollout_cancelled",
            format!("{model}: rollout {} {reason}", r.id),
            serde_json::json!({ "rollout": r.id, "step": r.step, "actor": actor }),
        )
        .await?;
        Ok(r)
    }

    pub async fn sign(&self, spec: &str, key: &ed25519_dalek::SigningKey) -> Result<VersionRecord> {
        let v = self.resolve(spec).await?;
        let (sig, signer) = signing::sign(key, &v.digest);
        self.store
            .set_signature(&v.model, v.version, &sig, &signer)
            .await?;
        self.event(
            Some(&v.model),
            "signed",
            format!("{} version {} signed by key {signer}", v.model, v.version),
            serde_json::json!({ "version": v.version, "digest": v.digest, "signer": signer }),
        )
        .await?;
        self.resolve(&format!("{}@{}", v.model, v.version)).await
    }

    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        self.store.list_events(filter).await
    }

    /// Versions, aliases, policy and rollouts of one model, for `show` and the admin API.
    pub async fn describe(&self, model: &str) -> Result<ModelDescription> {
        let record = self
            .store
            .get_model(model)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("unknown model '{model}'")))?;
        Ok(ModelDescription {
            name: record.name,
            created_at: record.created_at,
            config_toml: record.config_toml,
            versions: self.store.list_versions(model).await?,
            aliases: self
                .store
                .list_aliases(model)
                .await?
                .into_iter()
                .map(|a| (a.alias, a.version))
                .collect(),
            policy: self.store.get_policy(model).await?,
            rollout: self.store.active_rollout(model).await?,
        })
    }
}

/// One field that differs between two versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: String,
    pub a: String,
    pub b: String,
}

/// What differs between two versions: digest, size, files, model card, signature, creator.
pub fn diff_versions(a: &VersionRecord, b: &VersionRecord) -> Vec<Change> {
    let mut out = Vec::new();
    let mut add = |field: &str, x: String, y: String| {
        if x != y {
            out.push(Change {
                field: field.to_string(),
                a: x,
                b: y,
            });
        }
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    add("model", a.model.clone(), b.model.clone());
    add("version", a.version.to_string(), b.version.to_string());
    add("digest", a.digest.clone(), b.digest.clone());
    add("size", a.size.to_string(), b.size.to_string());
    add("created_by", a.created_by.clone(), b.created_by.clone());
    add("signer", opt(&a.signer), opt(&b.signer));
    add("card.owner", opt(&a.card.owner), opt(&b.card.owner));
    add(
        "card.description",
        opt(&a.card.description),
        opt(&b.card.description),
    );
    add(
        "card.intended_use",
        opt(&a.card.intended_use),
        opt(&b.card.intended_use),
    );
    add(
        "card.trained_on",
        opt(&a.card.trained_on),
        opt(&b.card.trained_on),
    );
    let keys: std::collections::BTreeSet<&String> =
        a.card.metrics.keys().chain(b.card.metrics.keys()).collect();
    for k in keys {
        let show = |m: &BTreeMap<String, f64>| m.get(k).map_or("-".into(), |v| v.to_string());
        add(
            &format!("metric.{k}"),
            show(&a.card.metrics),
            show(&b.card.metrics),
        );
    }
    let files: std::collections::BTreeSet<&String> =
        a.files.iter().chain(&b.files).map(|f| &f.path).collect();
    for path in files {
        let find = |v: &VersionRecord| {
            v.files
                .iter()
                .find(|f| &f.path == path)
                .map_or("-".into(), |f| format!("{} ({} bytes)", f.digest, f.size))
        };
        add(&format!("file {path}"), find(a), find(b));
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelDescription {
    pub name: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_toml: Option<String>,
    pub versions: Vec<VersionRecord>,
    pub aliases: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<TrafficPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRecord>,
}

fn read_card(model_dir: &Path, defaults: &ModelCard) -> Result<ModelCard> {
    let path = model_dir.join("card.json");
    if !path.is_file() {
        return Ok(defaults.clone());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| RegistryError::Storage(format!("cannot read {}: {e}", path.display())))?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| RegistryError::Invalid(format!("{}: {e}", path.display())))?;
    let pick = |a: Option<String>, b: &Option<String>| a.or_else(|| b.clone());
    Ok(ModelCard {
        owner: pick(card.owner, &defaults.owner),
        description: pick(card.description, &defaults.description),
        intended_use: pick(card.intended_use, &defaults.intended_use),
        trained_on: pick(card.trained_on, &defaults.trained_on),
        metrics: if card.metrics.is_empty() {
            defaults.metrics.clone()
        } else {
            card.metrics
        },
    })
}

fn tempfile_dir(data_dir: &Path) -> Result<tempfile::TempDir> {
    let base = data_dir.join("tmp");
    std::fs::create_dir_all(&base)
        .map_err(|e| RegistryError::Storage(format!("cannot create {}: {e}", base.display())))?;
    tempfile::Builder::new()
        .prefix("push-")
        .tempdir_in(&base)
        .map_err(|e| {
            RegistryError::Storage(format!(
                "cannot create a staging directory in {}: {e}",
                base.display()
            ))
        })
}
