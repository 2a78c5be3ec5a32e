//! The served models. Two ways in: [`ModelRepository::load`] reads a read-only repository
//! (`DIR/<model>/<version>/model.*` plus an optional `DIR/<model>/config.toml`; every version
//! is loaded and warmed, the highest is the default), and the registry's deployer
//! (`ballast-deploy`) [`ModelRepository::launch`]es versions in the background and
//! [`ModelRepository::install`]s whole entries — versions, aliases and traffic policy — in one
//! atomic swap. Readiness and draining live here too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use ballast_core::{Error, ErrorCode, ModelConfig};
use ballast_engine::Backend;
use parking_lot::Mutex;
use tokio_util::task::TaskTracker;

use crate::context::{Priority, Protocol};
use crate::model::ModelVersion;
use crate::traffic::{ActiveTraffic, Routed};

#[derive(Debug, Clone)]
pub struct RepositoryOptions {
    /// Run a warm-up inference per version before declaring it ready (config can opt out).
    pub warmup: bool,
    /// The ONNX Runtime shared library, when configured; else it is searched for.
    pub onnxruntime_library: Option<PathBuf>,
    /// Any model that fails to load fails the whole load (Triton's `--exit-on-error`); by
    /// default the others are served and the failed one is reported not ready with its reason.
    pub strict: bool,
    /// Observers of finished requests (the monitor); attach them before loading.
    pub tap: crate::observe::Tap,
    /// The prediction log, when predictions are logged.
    pub logs: Option<crate::capture::PredictionLogs>,
    /// The owner of the versions' batcher tasks and engine threads.
    pub lifecycle: crate::lifecycle::Lifecycle,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        Self {
            warmup: true,
            onnxruntime_library: None,
            strict: false,
            tap: crate::observe::Tap::new(),
            logs: None,
            lifecycle: crate::lifecycle::Lifecycle::new(),
        }
    }
}

/// A model, or one version of it, that could not be loaded: served as not ready, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub model: String,
    /// `None` when the model as a whole failed (its config, or no loadable version).
    pub version: Option<u64>,
    pub reason: String,
}

/// All served versions of one model, its aliases and the traffic policy in force. Immutable:
/// a change installs a new entry (see [`ModelRepository::install`]).
pub struct ModelEntry {
    pub name: String,
    pub versions: BTreeMap<u64, Arc<ModelVersion>>,
    /// Alias name → version (only aliases whose version is loaded).
    pub aliases: BTreeMap<String, u64>,
    /// The version unversioned requests go to, unless a canary takes them.
    pub default: u64,
    pub traffic: Option<Arc<ActiveTraffic>>,
    /// Versions that exist (in the registry) but are not served, so that a request naming one
    /// is told how to make it servable rather than only that it is unknown.
    pub unserved: Vec<u64>,
}

impl ModelEntry {
    /// An entry serving the highest version by default, with no aliases or policy.
    pub fn newest_by_default(name: String, versions: BTreeMap<u64, Arc<ModelVersion>>) -> Self {
        let default = versions.keys().next_back().copied().unwrap_or(0);
        Self {
            name,
            versions,
            aliases: BTreeMap::new(),
            default,
            traffic: None,
            unserved: Vec::new(),
        }
    }

    pub fn default_version(&self) -> Option<&Arc<ModelVersion>> {
        self.versions.get(&self.default)
    }

    /// A version number or an alias name.
    pub fn lookup(&self, label: &str) -> Option<&Arc<ModelVersion>> {
        match label.parse::<u64>() {
            Ok(n) => self.versions.get(&n),
            Err(_) => self.aliases.get(label).and_then(|v| self.versions.get(v)),
        }
    }
}

/// A model to serve that was built outside the file layout (tests, embedded models).
pub struct ModelSpec {
    pub name: String,
    pub version: u64,
    pub backend: Arc<dyn Backend>,
    pub config: ModelConfig,
    /// The version's directory, when it came from files (observers look for a reference
    /// profile there, and in its parent, the model's directory).
    pub dir: Option<PathBuf>,
}

type Table = BTreeMap<String, Arc<ModelEntry>>;

/// The served models. Readers take a snapshot with one atomic load; writers (loading,
/// alias flips, policies) swap in a new table. A request keeps the version it resolved to
/// alive until it is answered, so a version removed from the table drains by itself.
pub struct ModelRepository {
    table: ArcSwap<Table>,
    write: Mutex<()>,
    /// Versions taken out of the table that may still be finishing requests.
    retired: Mutex<Vec<Weak<ModelVersion>>>,
    ready: AtomicBool,
    draining: Arc<AtomicBool>,
    /// Work spawned off the response path (shadow requests): closed and waited for on drain.
    tasks: TaskTracker,
    /// Models and versions that failed to load, by model name.
    failures: Mutex<BTreeMap<String, Vec<LoadFailure>>>,
    /// The directory it was loaded from and its model-control mode (repository mode only).
    source: std::sync::OnceLock<Arc<crate::watch::Source>>,
    tap: crate::observe::Tap,
    logs: Option<crate::capture::PredictionLogs>,
    lifecycle: crate::lifecycle::Lifecycle,
}

impl ModelRepository {
    /// Scans `dir`, loads every model version (engine loads run on blocking threads) and warms
    /// them. A model or version that fails is logged, counted and served as not ready with
    /// its reason ([`Self::failure`]) while the rest serve; with `options.strict` it fails the
    /// load instead. Errors name the model, version and file.
    pub async fn load(dir: &Path, options: &RepositoryOptions) -> Result<Self, Error> {
        let (specs, failures) = {
            let dir = dir.to_path_buf();
            let library = options.onnxruntime_library.clone();
            let strict = options.strict;
            tokio::task::spawn_blocking(move || scan(&dir, library.as_deref(), strict))
                .await
                .map_err(|e| Error::internal(format!("model loading thread failed: {e}")))??
        };
        let repo = Self::from_specs(specs, options).await?;
        for failure in failures {
            repo.record_failure(failure);
        }
        Ok(repo)
    }

    /// Remembers that a model (or one version) failed to load: logged at error, counted in
    /// `ballast_model_load_failures_total`, and answered as not ready with the reason.
    pub fn record_failure(&self, failure: LoadFailure) {
        tracing::error!(
            model = %failure.model,
            version = failure.version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            reason = %failure.reason,
            "model failed to load; serving the other models (--strict exits instead)"
        );
        metrics::counter!(crate::metrics::LOAD_FAILURES_TOTAL, "model" => failure.model.clone())
            .increment(1);
        if let Some(v) = failure.version {
            metrics::gauge!(crate::metrics::MODEL_READY, "model" => failure.model.clone(), "version" => v.to_string())
                .set(0.0);
        }
        self.failures
            .lock()
            .entry(failure.model.clone())
            .or_default()
            .push(failure);
    }

    /// Why a model (or, with `version`, that version) is not being served, if it failed to
    /// load.
    pub fn failure(&self, model: &str, version: Option<u64>) -> Option<LoadFailure> {
        let failures = self.failures.lock();
        let list = failures.get(model)?;
        list.iter()
            .find(|f| f.version.is_none() || version.is_none() || f.version == version)
            .cloned()
    }

    /// Every recorded load failure.
    pub fn failures(&self) -> Vec<LoadFailure> {
        self.failures.lock().values().flatten().cloned().collect()
    }

    /// A repository serving nothing yet (models are installed as they load).
    pub fn empty() -> Self {
        Self::observed(crate::observe::Tap::new())
    }

    /// A repository serving nothing yet whose versions are observed through `tap`.
    pub fn observed(tap: crate::observe::Tap) -> Self {
        Self {
            tap,
            table: ArcSwap::from_pointee(Table::new()),
            write: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            ready: AtomicBool::new(true),
            draining: Arc::new(AtomicBool::new(false)),
            tasks: TaskTracker::new(),
            failures: Mutex::new(BTreeMap::new()),
            source: std::sync::OnceLock::new(),
            logs: None,
            lifecycle: crate::lifecycle::Lifecycle::new(),
        }
    }

    /// Versions started from now on run their batchers and engine threads under `life`.
    pub fn with_lifecycle(mut self, life: crate::lifecycle::Lifecycle) -> Self {
        self.lifecycle = life;
        self
    }

    /// The owner of this repository's versions' tasks and threads.
    pub fn lifecycle(&self) -> &crate::lifecycle::Lifecycle {
        &self.lifecycle
    }

    /// Logs the predictions of versions started from now on (per their `[log]` config).
    pub fn with_logs(mut self, logs: Option<crate::capture::PredictionLogs>) -> Self {
        self.logs = logs;
        self
    }

    /// The prediction log, when there is one.
    pub fn logs(&self) -> Option<&crate::capture::PredictionLogs> {
        self.logs.as_ref()
    }

    /// Attaches the directory this repository serves, for reloads and load/unload requests.
    pub fn attach_source(&self, source: Arc<crate::watch::Source>) {
        let _ = self.source.set(source);
    }

    /// The directory and control mode, when serving a `--model-repository`.
    pub fn source(&self) -> Option<&Arc<crate::watch::Source>> {
        self.source.get()
    }

    /// Forgets the load failures of a model (it loaded, or was unloaded).
    pub fn clear_failures(&self, model: &str) {
        self.failures.lock().remove(model);
    }

    /// Serves models that are already loaded; each model's highest version is its default.
    pub async fn from_specs(
        specs: Vec<ModelSpec>,
        options: &RepositoryOptions,
    ) -> Result<Self, Error> {
        let repo = Self::observed(options.tap.clone())
            .with_logs(options.logs.clone())
            .with_lifecycle(options.lifecycle.clone());
        let mut models: BTreeMap<String, BTreeMap<u64, Arc<ModelVersion>>> = BTreeMap::new();
        for spec in specs {
            let warm = options.warmup && spec.config.warmup;
            let (name, version) = (spec.name.clone(), spec.version);
            match repo.launch(spec, warm).await {
                Ok(mv) => {
                    models.entry(name).or_default().insert(version, mv);
                }
                Err(e) if !options.strict => repo.record_failure(LoadFailure {
                    model: name,
                    version: Some(version),
                    reason: e.message,
                }),
                Err(e) => return Err(e),
            }
        }
        for (name, versions) in models {
            repo.install(ModelEntry::newest_by_default(name, versions));
        }
        Ok(repo)
    }

    /// Starts one version's scheduler and engine threads and, when `warm`, runs one inference
    /// through the full path. The version serves nothing until an entry holding it is
    /// installed.
    pub async fn launch(&self, spec: ModelSpec, warm: bool) -> Result<Arc<ModelVersion>, Error> {
        let mut mv = ModelVersion::start(
            &spec.name,
            spec.version,
            spec.backend,
            spec.config,
            self.draining.clone(),
            &self.lifecycle,
        )?;
        if warm {
            let admission = mv.admit(Protocol::Internal, Priority::Critical, Some(1), None)?;
            mv.infer(admission, mv.warmup_request(1))
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorCode::Internal,
                        format!(
                            "model '{}' version {}: warm-up inference failed: {}",
                            spec.name, spec.version, e.message
                        ),
                    )
                })?;
            // A full batch too, so admission's service-time model knows per-call and per-row
            // costs apart before the first burst. Not fatal: a model that cannot batch fails
            // its batches at run time with a clear error either way.
            let full = mv.config.max_batch_size;
            if full > 1 {
                let batched =
                    match mv.admit(Protocol::Internal, Priority::Critical, Some(full), None) {
                        Ok(admission) => mv.infer(admission, mv.warmup_request(full)).await,
                        Err(e) => Err(e),
                    };
                if let Err(e) = batched {
                    tracing::warn!(model = %spec.name, version = spec.version, error = %e.message, "warm-up with a full batch failed");
                }
            }
        }
        // Warm-up is not traffic: metrics, statistics, observers and logs start from here.
        if let Some(logs) = &self.logs {
            mv.logged = logs.for_version(&spec.name, &mv.config.log, &mv.signature)?;
        }
        mv.observed = self.tap.version_started(
            &spec.name,
            &mv.version_label,
            &mv.signature,
            spec.dir.as_deref(),
        );
        mv.go_live();
        tracing::info!(
            model = %spec.name,
            version = spec.version,
            engine = mv.engine,
            inputs = %mv.signature.inputs.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", "),
            outputs = %mv.signature.outputs.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", "),
            max_batch_size = mv.config.max_batch_size,
            "model version ready"
        );
        Ok(Arc::new(mv))
    }

    /// Makes `entry` the model's served state at once. Versions of the previous entry that the
    /// new one does not hold finish their in-flight requests and are then dropped.
    pub fn install(&self, entry: ModelEntry) {
        let _w = self.write.lock();
        let mut table = Table::clone(&self.table.load());
        for mv in entry.versions.values() {
            mv.set_ready_metric(true);
        }
        for (alias, version) in &entry.aliases {
            metrics::gauge!(crate::metrics::ALIAS_VERSION, "model" => entry.name.clone(), "alias" => alias.clone())
                .set(*version as f64);
        }
        let old = table.insert(entry.name.clone(), Arc::new(entry));
        if let Some(old) = old {
            let new = &table[&old.name];
            self.retire(&old, Some(new));
        }
        self.table.store(Arc::new(table));
    }

    /// Stops serving a model; its in-flight requests finish.
    pub fn remove(&self, model: &str) {
        let _w = self.write.lock();
        let mut table = Table::clone(&self.table.load());
        if let Some(old) = table.remove(model) {
            self.retire(&old, None);
        }
        self.table.store(Arc::new(table));
    }

    /// Shutdown, after the drain: stops serving every model. Each version is dropped once its
    /// last request lets go of it; its queue closes, so its batcher task and engine threads end
    /// ([`crate::lifecycle::Stage::Engines`]) and observers hear that it stopped.
    pub fn shut_down(&self) {
        let _w = self.write.lock();
        let old = self.table.swap(Arc::new(Table::new()));
        for entry in old.values() {
            self.retire(entry, None);
        }
    }

    fn retire(&self, old: &ModelEntry, new: Option<&Arc<ModelEntry>>) {
        let mut retired = self.retired.lock();
        retired.retain(|w| w.strong_count() > 0);
        for (v, mv) in &old.versions {
            let kept = new.and_then(|n| n.versions.get(v));
            if kept.is_some_and(|k| Arc::ptr_eq(k, mv)) {
                continue;
            }
            if kept.is_none() {
                mv.set_ready_metric(false);
            }
            retired.push(Arc::downgrade(mv));
        }
        for alias in old.aliases.keys() {
            if new.is_none_or(|n| !n.aliases.contains_key(alias)) {
                metrics::gauge!(crate::metrics::ALIAS_VERSION, "model" => old.name.clone(), "alias" => alias.clone())
                    .set(-1.0);
            }
        }
    }

    /// A snapshot of every served model.
    pub fn models(&self) -> Vec<Arc<ModelEntry>> {
        self.table.load().values().cloned().collect()
    }

    fn unknown_model(&self, model: &str, table: &Table) -> Error {
        if let Some(f) = self.failure(model, None) {
            return not_loaded(&f);
        }
        let names: Vec<&str> = table.keys().map(String::as_str).collect();
        Error::not_found(format!(
            "unknown model '{model}'; this server serves: {}",
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        ))
    }

    pub fn entry(&self, model: &str) -> Result<Arc<ModelEntry>, Error> {
        let table = self.table.load();
        table
            .get(model)
            .cloned()
            .ok_or_else(|| self.unknown_model(model, &table))
    }

    /// Resolves a model and optional version label (a number or an alias) to a served
    /// version; without a label, the model's default version (no traffic policy applied).
    pub fn get(&self, model: &str, version: Option<&str>) -> Result<Arc<ModelVersion>, Error> {
        let entry = self.entry(model)?;
        Self::version_of(&entry, model, version)
            .map_err(|e| self.explain_missing(model, version, e))
    }

    /// A version that is not served because it failed to load says so.
    fn explain_missing(&self, model: &str, version: Option<&str>, e: Error) -> Error {
        let number = version.and_then(|v| v.parse::<u64>().ok());
        if let Some(f) = number.and_then(|v| self.failure(model, Some(v))) {
            return not_loaded(&f);
        }
        let unserved = number.filter(|v| {
            self.table
                .load()
                .get(model)
                .is_some_and(|entry| entry.unserved.contains(v))
        });
        match unserved {
            Some(v) => Error::not_found(format!(
                "{}; version {v} is in the registry but not loaded: a server loads the versions \
                 an alias points at, the candidates of a traffic policy or rollout, and the \
                 previous production version. To serve it, point an alias at it \
                 (`ballast model promote {model}@{v} --alias v{v}`); requests may then name \
                 the version or the alias",
                e.message
            )),
            None => e,
        }
    }

    fn version_of(
        entry: &ModelEntry,
        model: &str,
        version: Option<&str>,
    ) -> Result<Arc<ModelVersion>, Error> {
        let found = match version.filter(|v| !v.is_empty()) {
            None => entry.default_version(),
            Some(v) => entry.lookup(v),
        };
        found.cloned().ok_or_else(|| {
            let versions: Vec<String> = entry.versions.keys().map(u64::to_string).collect();
            let aliases: Vec<String> = entry
                .aliases
                .iter()
                .map(|(a, v)| format!("{a} (→{v})"))
                .collect();
            Error::not_found(format!(
                "model '{model}' has no version '{}' being served; served versions: {}{}",
                version.unwrap_or(""),
                versions.join(", "),
                if aliases.is_empty() {
                    String::new()
                } else {
                    format!("; aliases: {}", aliases.join(", "))
                }
            ))
        })
    }

    /// Where an inference request goes: an explicit version or alias goes there directly;
    /// an unversioned request follows the model's traffic policy.
    pub fn route<'h>(
        &self,
        model: &str,
        version: Option<&str>,
        header: impl Fn(&str) -> Option<&'h [u8]>,
    ) -> Result<Routed, Error> {
        let table = self.table.load();
        let entry = table
            .get(model)
            .ok_or_else(|| self.unknown_model(model, &table))?;
        if version.is_none_or(str::is_empty)
            && let Some(traffic) = &entry.traffic
        {
            return Ok(traffic.route(header));
        }
        Self::version_of(entry, model, version)
            .map(Routed::direct)
            .map_err(|e| self.explain_missing(model, version, e))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Readiness off; new requests get UNAVAILABLE; admitted ones finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        for entry in self.models() {
            for mv in entry.versions.values() {
                mv.set_ready_metric(false);
            }
        }
    }

    /// Where observers of this repository's versions are attached.
    pub fn tap(&self) -> &crate::observe::Tap {
        &self.tap
    }

    /// Background work started by requests (shadow mirrors); [`Self::wait_idle`] waits for it.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Requests admitted and not yet answered, including on versions already swapped out.
    pub fn in_flight(&self) -> usize {
        let served: usize = self
            .models()
            .iter()
            .flat_map(|m| {
                m.versions
                    .values()
                    .map(|v| v.in_flight())
                    .collect::<Vec<_>>()
            })
            .sum();
        let retired: usize = self
            .retired
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|v| v.in_flight())
            .sum();
        served + retired
    }

    /// Waits until no admitted request and no background task (a shadow mirror) remains, or
    /// `grace` passes. Returns what was left (requests plus tasks).
    pub async fn wait_idle(&self, grace: Duration) -> usize {
        let until = tokio::time::Instant::now() + grace;
        loop {
            let left = self.in_flight() + self.tasks.len();
            if left == 0 || tokio::time::Instant::now() >= until {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A model directory's configuration: `config.toml`, else Triton's `config.pbtxt` (with its
/// version policy, and a warning per field that has no effect here), else the defaults.
fn read_config(
    model_dir: &Path,
    name: &str,
) -> Result<(ModelConfig, Option<ballast_core::triton::VersionPolicy>), Error> {
    let read_text = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", p.display())))
    };
    let toml = model_dir.join("config.toml");
    let pbtxt = model_dir.join("config.pbtxt");
    if toml.is_file() {
        if pbtxt.is_file() {
            tracing::warn!(
                model = name,
                "both config.toml and config.pbtxt: config.toml is used, config.pbtxt ignored"
            );
        }
        let config = ModelConfig::from_toml(&read_text(&toml)?, &toml.display().to_string())?;
        return Ok((config, None));
    }
    if pbtxt.is_file() {
        let t =
            ballast_core::triton::from_pbtxt(&read_text(&pbtxt)?, &pbtxt.display().to_string())?;
        for w in &t.warnings {
            tracing::warn!(model = name, file = %pbtxt.display(), "{w}");
        }
        return Ok((t.config, Some(t.version_policy)));
    }
    Ok((ModelConfig::default(), None))
}

/// The error for a request to a model or version that failed to load.
fn not_loaded(f: &LoadFailure) -> Error {
    let what = match f.version {
        Some(v) => format!("model '{}' version {v}", f.model),
        None => format!("model '{}'", f.model),
    };
    Error::unavailable(format!(
        "{what} is not ready: it failed to load: {}",
        f.reason
    ))
}

/// Finds and loads every model version under `dir` (blocking: file I/O and engine loads).
/// Per-model problems are returned as failures, unless `strict` (then the first is the error).
fn scan(
    dir: &Path,
    onnxruntime_library: Option<&Path>,
    strict: bool,
) -> Result<(Vec<ModelSpec>, Vec<LoadFailure>), Error> {
    let mut failures = Vec::new();
    let mut fail = |model: &str, version: Option<u64>, e: Error| -> Result<(), Error> {
        if strict {
            return Err(e);
        }
        failures.push(LoadFailure {
            model: model.to_string(),
            version,
            reason: e.message,
        });
        Ok(())
    };
    let read = |p: &Path| {
        std::fs::read_dir(p).map_err(|e| {
            Error::new(
                ErrorCode::NotFound,
                format!("cannot read model repository {}: {e}", p.display()),
            )
        })
    };
    let mut model_dirs: Vec<PathBuf> = read(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    model_dirs.sort();
    let mut specs = Vec::new();
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
        scan_model(
            &model_dir,
            &name,
            onnxruntime_library,
            &mut specs,
            &mut fail,
        )?;
    }
    Ok((specs, failures))
}

/// Where a scan reports a model's (or version's) failure; returning `Err` stops the scan.
type FailFn<'a> = dyn FnMut(&str, Option<u64>, Error) -> Result<(), Error> + 'a;

/// One model directory's loaded versions and its failures (never strict).
pub(crate) fn scan_one(
    model_dir: &Path,
    name: &str,
    onnxruntime_library: Option<&Path>,
) -> Result<(Vec<ModelSpec>, Vec<LoadFailure>), Error> {
    let mut specs = Vec::new();
    let mut failures = Vec::new();
    let mut fail = |model: &str, version: Option<u64>, e: Error| -> Result<(), Error> {
        failures.push(LoadFailure {
            model: model.to_string(),
            version,
            reason: e.message,
        });
        Ok(())
    };
    scan_model(model_dir, name, onnxruntime_library, &mut specs, &mut fail)?;
    Ok((specs, failures))
}

/// Loads one model directory's versions into `specs`; problems go to `fail` (which returns the
/// error itself when the load is strict).
fn scan_model(
    model_dir: &Path,
    name: &str,
    onnxruntime_library: Option<&Path>,
    specs: &mut Vec<ModelSpec>,
    fail: &mut FailFn<'_>,
) -> Result<(), Error> {
    let name = name.to_string();
    let (config, policy) = match read_config(model_dir, &name) {
        Ok(c) => c,
        Err(e) => return fail(&name, None, e),
    };
    let entries = match std::fs::read_dir(model_dir) {
        Ok(entries) => entries,
        Err(e) => {
            return fail(
                &name,
                None,
                Error::new(
                    ErrorCode::NotFound,
                    format!("cannot read {}: {e}", model_dir.display()),
                ),
            );
        }
    };
    let mut versions: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let v = p.file_name()?.to_str()?.parse::<u64>().ok()?;
            Some((v, p))
        })
        .collect();
    versions.sort();
    if let Some(policy) = &policy {
        let available: Vec<u64> = versions.iter().map(|(v, _)| *v).collect();
        let keep = policy.select(&available);
        versions.retain(|(v, _)| keep.contains(v));
        if keep.len() < available.len() {
            tracing::info!(model = %name, serving = ?keep, available = ?available, "config.pbtxt version_policy selects versions");
        }
    }
    if versions.is_empty() {
        return fail(
            &name,
            None,
            Error::invalid(format!(
                "model '{name}' at {} has no version directories (expected {}/<number>/model.onnx)",
                model_dir.display(),
                model_dir.display()
            )),
        );
    }
    for (version, path) in versions {
        let options = ballast_engine::OpenOptions {
            backend: config.backend,
            threads: config.threads,
            concurrent_calls: config.instances,
            onnxruntime_library: onnxruntime_library.map(Path::to_path_buf),
            model_file: config.model_file.clone(),
            format: config.format,
        };
        let backend = match ballast_engine::open_with(&path, &options) {
            Ok(b) => b,
            Err(e) => {
                fail(
                    &name,
                    Some(version),
                    Error::new(
                        ErrorCode::Internal,
                        format!("model '{name}' version {version}: {e}"),
                    ),
                )?;
                continue;
            }
        };
        specs.push(ModelSpec {
            name: name.clone(),
            version,
            backend,
            config: config.clone(),
            dir: Some(path.clone()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_idle_waits_for_background_tasks() {
        let repo = ModelRepository::empty();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        repo.tasks().spawn(async move {
            let _ = released.await;
        });
        repo.tasks().close();
        // A shadow mirror still running counts as work left.
        assert_eq!(repo.wait_idle(Duration::from_millis(20)).await, 1);
        let _ = release.send(());
        assert_eq!(repo.wait_idle(Duration::from_secs(5)).await, 0);
        assert!(repo.tasks().is_empty());
    }
}
