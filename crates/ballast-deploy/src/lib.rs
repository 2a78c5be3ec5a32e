//! ballast-deploy: makes a running server serve what the registry says, and runs rollouts.
//!
//! One task ([`Deployer::run`]) wakes when the registry's generation changes (polled every
//! `poll_interval`, or at once when the admin API calls [`Deployer::notify`]) and on every
//! tick for running rollouts:
//!
//! 1. **Reconcile** ([`Deployer::reconcile`]): for each model, the versions that must be
//!    loaded are its aliases' targets (production first), the previous production version
//!    (so a rollback is a pointer swap) and the candidates of its traffic policy or running
//!    rollout. A missing one is fetched from the artifact store into the cache, verified
//!    byte for byte against its digest, checked against the signature policy, opened by its
//!    engine and warmed — all off the request path. Only then is a new [`ModelEntry`]
//!    (versions, aliases, default, traffic) installed in one atomic swap. A failure keeps the
//!    version that was serving, records a `load_failed` event with the reason (once per
//!    cause) and retries on the next registry change or after 30 s.
//! 2. **Rollouts** ([`rollout`]), on a loop of their own every `poll_interval` (a slow
//!    download or warm-up in a reconcile does not delay a rollback decision): each running
//!    rollout's step is judged on the window of figures since the step began; the plan
//!    advances, promotes or rolls back, every decision lands in the event log with its
//!    figures, and the reconcile loop is woken to apply it.
//!
//! A server and the CLI may share one SQLite registry: the CLI writes, the server polls.

pub mod admin;
pub mod gates;
pub mod rollout;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ballast_core::{Error, ModelConfig, TrafficPolicy};
use ballast_engine::Backend;
use ballast_registry::store::VersionRecord;
use ballast_registry::{PRODUCTION, Registry, RegistryError};
use ballast_serve::traffic::{ActiveTraffic, RolloutStats};
use ballast_serve::{ModelEntry, ModelRepository, ModelSpec, ModelVersion};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use gates::{Gate, Verdict, default_gates};

/// Opens a materialised version directory with an engine.
pub trait Loader: Send + Sync + 'static {
    fn load(&self, dir: &Path, config: &ModelConfig) -> Result<Arc<dyn Backend>, Error>;
}

/// The engines of `ballast-engine`, chosen by file type and the model's config.
pub struct EngineLoader {
    pub onnxruntime_library: Option<PathBuf>,
}

impl EngineLoader {
    /// The engine options a model's config asks for.
    pub fn options(&self, config: &ModelConfig) -> ballast_engine::OpenOptions {
        ballast_engine::OpenOptions {
            backend: config.backend,
            threads: config.threads,
            concurrent_calls: config.instances,
            onnxruntime_library: self.onnxruntime_library.clone(),
            model_file: config.model_file.clone(),
            format: config.format,
        }
    }
}

impl Loader for EngineLoader {
    fn load(&self, dir: &Path, config: &ModelConfig) -> Result<Arc<dyn Backend>, Error> {
        ballast_engine::open_with(dir, &self.options(config))
            .map_err(|e| Error::internal(e.to_string()))
    }
}

/// A registered version opened as the deployer opens it: its config parsed, its signature
/// checked against the registry's policy, its files materialised (every byte verified) and
/// its engine loaded.
pub struct OpenedVersion {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub backend: Arc<dyn Backend>,
}

/// Opens `record` (with its model's `config.toml` text) the way the deployer does before
/// serving it; `ballast batch` scores with the same. Errors are the reason, for events and
/// the command line.
pub async fn open_version(
    registry: &Registry,
    loader: &Arc<dyn Loader>,
    record: &VersionRecord,
    config_toml: Option<&str>,
) -> Result<OpenedVersion, String> {
    let config = match config_toml {
        Some(t) => ModelConfig::from_toml(t, &format!("model '{}' config", record.model))
            .map_err(|e| e.message)?,
        None => ModelConfig::default(),
    };
    registry
        .options
        .signatures
        .check(record)
        .map_err(|e| e.to_string())?;
    let dir = registry
        .artifacts
        .materialize(&record.model, record.version, &record.digest, &record.files)
        .await
        .map_err(|e| e.to_string())?;
    let loader = loader.clone();
    let open_config = config.clone();
    let open_dir = dir.clone();
    let backend = tokio::task::spawn_blocking(move || loader.load(&open_dir, &open_config))
        .await
        .map_err(|e| format!("loader thread failed: {e}"))?
        .map_err(|e| e.message)?;
    Ok(OpenedVersion {
        dir,
        config,
        backend,
    })
}

#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// How often the registry's generation is checked and rollouts are judged.
    pub poll_interval: Duration,
    /// Warm each version with one inference before it takes traffic.
    pub warmup: bool,
    /// Failed loads are tried again this often even when the registry has not changed (a
    /// transient object-store error, or a restored blob, heals by itself).
    pub load_retry: Duration,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            // A change made by another process is live within ~250 ms plus load time.
            poll_interval: Duration::from_millis(250),
            warmup: true,
            load_retry: Duration::from_secs(30),
        }
    }
}

/// A loaded version and what it was loaded from.
struct Loaded {
    version: Arc<ModelVersion>,
    digest: String,
    config: Option<String>,
}

/// (digest, config, reconcile pass, reason) of a failed load.
type Failed = (String, Option<String>, u64, String);

#[derive(Default)]
struct State {
    loaded: HashMap<(String, u64), Loaded>,
    generation: Option<u64>,
    /// Reconcile passes so far; a failure is not retried within its own pass.
    pass: u64,
    retry_at: Option<tokio::time::Instant>,
    stats: HashMap<String, (u64, u64, Arc<RolloutStats>)>,
}

pub struct Deployer {
    pub registry: Arc<Registry>,
    pub repository: Arc<ModelRepository>,
    loader: Arc<dyn Loader>,
    options: DeployOptions,
    gates: Vec<Box<dyn Gate>>,
    notify: Notify,
    state: tokio::sync::Mutex<State>,
    rollouts: Mutex<HashMap<i64, rollout::StepWindow>>,
    /// Versions that failed to load, read by the rollout controller too: retried on the next
    /// registry change, or after `load_retry`.
    failed: Mutex<HashMap<(String, u64), Failed>>,
    /// The newest event counted into metrics (`None` until the first pass, which starts at
    /// the end of the log: a restart does not recount history).
    events_seen: Mutex<Option<i64>>,
}

impl Deployer {
    pub fn new(
        registry: Arc<Registry>,
        repository: Arc<ModelRepository>,
        loader: Arc<dyn Loader>,
        options: DeployOptions,
    ) -> Self {
        Self {
            registry,
            repository,
            loader,
            options,
            gates: default_gates(),
            notify: Notify::new(),
            state: tokio::sync::Mutex::new(State::default()),
            rollouts: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            events_seen: Mutex::new(None),
        }
    }

    /// Replaces the rollout gates (the defaults are error rate, p99 latency, divergence).
    pub fn with_gates(mut self, gates: Vec<Box<dyn Gate>>) -> Self {
        self.gates = gates;
        self
    }

    /// Why `model` version `version` last failed to load, if it did.
    pub fn load_failure(&self, model: &str, version: u64) -> Option<String> {
        self.failed
            .lock()
            .get(&(model.to_string(), version))
            .map(|f| f.3.clone())
    }

    /// Wakes the loop now (after a change made in this process).
    pub fn notify(&self) {
        self.notify.notify_one();
    }

    /// Reconciles and judges rollouts until `stop` fires.
    ///
    /// Rollouts are judged on a loop of their own: a reconcile can take as long as an artifact
    /// download and a warm-up, and a rollback must not wait for that. A decision wakes the
    /// reconcile loop, which applies the new traffic policy.
    /// The judge runs as a task of its own (a worker of its own on a multi-threaded runtime),
    /// joined before this returns: the caller's task owns both.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        #[allow(clippy::disallowed_methods)] // joined just below
        let judging = tokio::spawn(self.clone().judge_loop(stop.clone()));
        self.clone().reconcile_loop(stop).await;
        let _ = judging.await;
        // Stopped: let go of the versions it loaded, so that once the repository unloads them
        // at shutdown nothing keeps their engine threads alive.
        self.state.lock().await.loaded.clear();
    }

    async fn reconcile_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "cannot reconcile with the registry; serving what is loaded");
            }
            if let Err(e) = self.count_events().await {
                tracing::warn!(error = %e, "cannot read the event log");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.notify.notified() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    async fn judge_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.judge_rollouts().await {
                tracing::warn!(error = %e, "cannot judge rollouts");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// Counts new events by kind into `ballast_registry_events_total`, whoever wrote them
    /// (this server, the CLI, another replica).
    pub async fn count_events(&self) -> Result<(), RegistryError> {
        let seen = *self.events_seen.lock();
        let events = self
            .registry
            .events(&ballast_registry::store::EventFilter {
                after: seen,
                limit: if seen.is_none() {
                    Some(1)
                } else {
                    Some(10_000)
                },
                ..Default::default()
            })
            .await?;
        let Some(last) = events.last().map(|e| e.id) else {
            // An empty log: count from its start.
            self.events_seen.lock().get_or_insert(0);
            return Ok(());
        };
        if seen.is_some() {
            for e in &events {
                metrics::counter!(ballast_serve::metrics::REGISTRY_EVENTS_TOTAL, "kind" => e.kind.clone())
                    .increment(1);
            }
        }
        *self.events_seen.lock() = Some(last);
        Ok(())
    }

    /// Brings the repository in line with the registry when its generation moved. Returns
    /// whether anything was examined.
    pub async fn reconcile(&self) -> Result<bool, RegistryError> {
        let mut state = self.state.lock().await;
        let generation = self.registry.store.generation().await?;
        let retry_due = state
            .retry_at
            .is_some_and(|t| tokio::time::Instant::now() >= t);
        if state.generation == Some(generation) && !retry_due {
            return Ok(false);
        }
        state.pass += 1;
        let pass = state.pass;
        for model in self.registry.store.list_models().await? {
            self.reconcile_model(&mut state, &model.name, model.config_toml, pass)
                .await?;
        }
        state.generation = Some(generation);
        state.retry_at = (!self.failed.lock().is_empty())
            .then(|| tokio::time::Instant::now() + self.options.load_retry);
        Ok(true)
    }

    async fn reconcile_model(
        &self,
        state: &mut State,
        model: &str,
        config_toml: Option<String>,
        pass: u64,
    ) -> Result<(), RegistryError> {
        let store = &self.registry.store;
        let versions: BTreeMap<u64, VersionRecord> = store
            .list_versions(model)
            .await?
            .into_iter()
            .map(|v| (v.version, v))
            .collect();
        let Some(&newest) = versions.keys().next_back() else {
            return Ok(());
        };
        let aliases: BTreeMap<String, u64> = store
            .list_aliases(model)
            .await?
            .into_iter()
            .map(|a| (a.alias, a.version))
            .collect();
        let production = aliases.get(PRODUCTION).copied().unwrap_or(newest);
        let rollout = store.active_rollout(model).await?;
        let policy = match &rollout {
            Some(r) if r.baseline == production => r.plan.policy_at(r.step, r.candidate),
            _ => store.get_policy(model).await?.unwrap_or_default(),
        };
        let previous = store
            .alias_history(model, PRODUCTION)
            .await?
            .iter()
            .rev()
            .filter(|h| !h.reverted && h.version != production)
            .map(|h| h.version)
            .next();

        // Production first: it is what most traffic needs.
        let mut wanted: Vec<u64> = vec![production];
        wanted.extend(aliases.values().copied());
        wanted.extend(policy.candidates());
        wanted.extend(previous);
        let mut seen = HashSet::new();
        wanted.retain(|v| seen.insert(*v));

        let current = self.repository.entry(model).ok();
        let mut served: BTreeMap<u64, Arc<ModelVersion>> = BTreeMap::new();
        for v in &wanted {
            let Some(record) = versions.get(v) else {
                continue;
            };
            match self
                .ensure_loaded(state, record, config_toml.as_deref(), pass)
                .await
            {
                Some(mv) => {
                    served.insert(*v, mv);
                }
                None => {
                    // Keep serving what was serving under this number, if anything.
                    if let Some(old) = current.as_ref().and_then(|c| c.versions.get(v)) {
                        served.insert(*v, old.clone());
                    }
                }
            }
        }
        let default = if served.contains_key(&production) {
            production
        } else if let Some(d) = current.as_ref().map(|c| c.default) {
            // Production's target failed to load: the old default keeps serving.
            if let Some(old) = current.as_ref().and_then(|c| c.versions.get(&d)) {
                served.entry(d).or_insert_with(|| old.clone());
            }
            d
        } else if let Some(&any) = served.keys().next_back() {
            any
        } else {
            return Ok(());
        };
        let served_aliases: BTreeMap<String, u64> = aliases
            .iter()
            .filter(|(_, v)| served.contains_key(v))
            .map(|(a, v)| (a.clone(), *v))
            .collect();
        let traffic = self.traffic(state, model, &policy, default, &served);
        let unserved: Vec<u64> = versions
            .keys()
            .filter(|v| !served.contains_key(v))
            .copied()
            .collect();
        let changed = match &current {
            None => true,
            Some(c) => {
                c.unserved != unserved
                    || c.default != default
                    || c.aliases != served_aliases
                    || c.versions.len() != served.len()
                    || c.versions
                        .iter()
                        .zip(&served)
                        .any(|((a, x), (b, y))| a != b || !Arc::ptr_eq(x, y))
                    || c.traffic
                        .as_ref()
                        .map(|t| (&t.policy, Arc::as_ptr(&t.stats)))
                        != traffic.as_ref().map(|t| (&t.policy, Arc::as_ptr(&t.stats)))
            }
        };
        if changed {
            tracing::info!(
                model,
                default,
                versions = ?served.keys().collect::<Vec<_>>(),
                aliases = ?served_aliases,
                "serving"
            );
            self.repository.install(ModelEntry {
                name: model.to_string(),
                versions: served,
                aliases: served_aliases,
                default,
                traffic,
                unserved,
            });
        }
        // Versions no longer wanted are unloaded once their requests finish.
        state
            .loaded
            .retain(|(m, v), _| m != model || wanted.contains(v));
        self.failed
            .lock()
            .retain(|(m, v), _| m != model || wanted.contains(v));
        Ok(())
    }

    fn traffic(
        &self,
        state: &mut State,
        model: &str,
        policy: &TrafficPolicy,
        baseline: u64,
        served: &BTreeMap<u64, Arc<ModelVersion>>,
    ) -> Option<Arc<ActiveTraffic>> {
        if policy.is_empty() {
            state.stats.remove(model);
            return None;
        }
        let base = served.get(&baseline)?.clone();
        let canary = policy
            .canary
            .as_ref()
            .and_then(|c| served.get(&c.version).cloned());
        let shadow = policy
            .shadow
            .as_ref()
            .and_then(|s| served.get(&s.version).cloned());
        let candidate = policy.candidates().next()?;
        // One stats object per (baseline, candidate) pair, kept across steps so a rollout's
        // windows are differences of one monotonic series.
        let stats = match state.stats.get(model) {
            Some((b, c, s)) if *b == baseline && *c == candidate => s.clone(),
            _ => {
                let s = Arc::new(RolloutStats::default());
                state
                    .stats
                    .insert(model.to_string(), (baseline, candidate, s.clone()));
                s
            }
        };
        Some(Arc::new(ActiveTraffic {
            policy: policy.clone(),
            baseline: base,
            canary,
            shadow,
            stats,
        }))
    }

    /// The loaded version, loading it if needed. `None` when it cannot be loaded (the reason
    /// is in the event log).
    async fn ensure_loaded(
        &self,
        state: &mut State,
        record: &VersionRecord,
        config_toml: Option<&str>,
        pass: u64,
    ) -> Option<Arc<ModelVersion>> {
        let key = (record.model.clone(), record.version);
        if let Some(l) = state.loaded.get(&key)
            && l.digest == record.digest
            && l.config.as_deref() == config_toml
        {
            return Some(l.version.clone());
        }
        let same_cause = |f: &Failed| f.0 == record.digest && f.1.as_deref() == config_toml;
        if self
            .failed
            .lock()
            .get(&key)
            .is_some_and(|f| same_cause(f) && f.2 == pass)
        {
            return None;
        }
        match self.load(record, config_toml).await {
            Ok(mv) => {
                self.failed.lock().remove(&key);
                state.loaded.insert(
                    key,
                    Loaded {
                        version: mv.clone(),
                        digest: record.digest.clone(),
                        config: config_toml.map(str::to_string),
                    },
                );
                Some(mv)
            }
            Err(reason) => {
                let previous = self.failed.lock().insert(
                    key,
                    (
                        record.digest.clone(),
                        config_toml.map(str::to_string),
                        pass,
                        reason.clone(),
                    ),
                );
                // One event per cause, however often the load is retried.
                let already = previous.is_some_and(|f| same_cause(&f) && f.3 == reason);
                metrics::counter!(ballast_serve::metrics::LOAD_FAILURES_TOTAL, "model" => record.model.clone())
                    .increment(1);
                if !already {
                    let _ = self
                        .registry
                        .event(
                            Some(&record.model),
                            "load_failed",
                            format!(
                                "{} version {} was not loaded; the serving version is unaffected: {reason}",
                                record.model, record.version
                            ),
                            serde_json::json!({ "version": record.version, "digest": record.digest, "reason": reason }),
                        )
                        .await;
                }
                None
            }
        }
    }

    async fn load(
        &self,
        record: &VersionRecord,
        config_toml: Option<&str>,
    ) -> Result<Arc<ModelVersion>, String> {
        let OpenedVersion {
            dir: version_dir,
            config,
            backend,
        } = open_version(&self.registry, &self.loader, record, config_toml).await?;
        let warm = self.options.warmup && config.warmup;
        self.repository
            .launch(
                ModelSpec {
                    name: record.model.clone(),
                    version: record.version,
                    backend,
                    config,
                    dir: Some(version_dir),
                },
                warm,
            )
            .await
            .map_err(|e| e.message)
    }
}
