//! Triton's model-control modes for a `--model-repository`: `none` (load at start, then only on
//! SIGHUP), `poll` (watch the directory and pick up added, changed and removed models), and
//! `explicit` (load / unload on request: `POST /v2/repository/models/{m}/load|unload`, gRPC
//! `RepositoryModelLoad|Unload`).
//!
//! A (re)load takes the same path as start-up and the registry's swaps: every version of the
//! model is opened and warmed while the old ones keep serving, then the model's entry is
//! replaced in one atomic swap. A model whose new files do not load keeps serving what it had,
//! and the failure is reported (log, metric, repository index, readiness of the new version).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ballast_core::{Error, ErrorCode};
use parking_lot::Mutex;

use crate::repository::{LoadFailure, ModelEntry, ModelRepository, RepositoryOptions};

/// How models in a repository directory are (re)loaded while serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlMode {
    /// Loaded at start; reloaded on SIGHUP.
    #[default]
    None,
    /// The directory is rescanned every poll interval (and on SIGHUP).
    Poll,
    /// Loaded at start; then load and unload on request (and everything on SIGHUP).
    Explicit,
}

impl ControlMode {
    pub const NAMES: &'static str = "none, poll, explicit";

    pub fn as_str(self) -> &'static str {
        match self {
            ControlMode::None => "none",
            ControlMode::Poll => "poll",
            ControlMode::Explicit => "explicit",
        }
    }
}

impl std::str::FromStr for ControlMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => ControlMode::None,
            "poll" => ControlMode::Poll,
            "explicit" => ControlMode::Explicit,
            other => {
                return Err(format!(
                    "model_control_mode must be one of {}, got '{other}'",
                    Self::NAMES
                ));
            }
        })
    }
}

/// The directory a repository was loaded from, and what is known of its files.
pub struct Source {
    pub dir: PathBuf,
    pub mode: ControlMode,
    options: RepositoryOptions,
    /// Per model directory: a fingerprint of its files (names, sizes, modification times).
    seen: Mutex<BTreeMap<String, u64>>,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

impl Source {
    /// Remembers the directory as it is now (call right after the initial load).
    pub fn new(dir: &Path, mode: ControlMode, options: RepositoryOptions) -> Self {
        Self {
            dir: dir.to_path_buf(),
            mode,
            options,
            seen: Mutex::new(fingerprints(dir)),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// `POST /v2/repository/models/{m}/load`: (re)loads one model; only in explicit mode.
    pub async fn load(&self, repo: &ModelRepository, model: &str) -> Result<(), Error> {
        self.explicit_only("load")?;
        let _one = self.busy.lock().await;
        let result = reload_model(repo, &self.dir, model, &self.options).await;
        self.seen
            .lock()
            .insert(model.to_string(), fingerprint(&self.dir.join(model)));
        result
    }

    /// `POST /v2/repository/models/{m}/unload`: stops serving a model; only in explicit mode.
    pub async fn unload(&self, repo: &ModelRepository, model: &str) -> Result<(), Error> {
        self.explicit_only("unload")?;
        let _one = self.busy.lock().await;
        if repo.entry(model).is_err() && repo.failure(model, None).is_none() {
            return Err(Error::not_found(format!("model '{model}' is not loaded")));
        }
        repo.remove(model);
        repo.clear_failures(model);
        tracing::info!(model, "model unloaded");
        Ok(())
    }

    fn explicit_only(&self, what: &str) -> Result<(), Error> {
        if self.mode == ControlMode::Explicit {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "explicit model {what} is not allowed in model control mode '{}' (start the server \
                 with --model-control-mode explicit)",
                self.mode.as_str()
            )))
        }
    }

    /// Reloads every model whose files changed since last seen, loads new model directories and
    /// unloads removed ones. Returns the models it acted on.
    pub async fn rescan(&self, repo: &ModelRepository) -> Vec<String> {
        let _one = self.busy.lock().await;
        let dir = self.dir.clone();
        let now = match tokio::task::spawn_blocking(move || fingerprints(&dir)).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "repository scan thread failed");
                return Vec::new();
            }
        };
        let before = self.seen.lock().clone();
        let mut acted = Vec::new();
        for (model, print) in &now {
            if before.get(model) != Some(print) {
                if let Err(e) = reload_model(repo, &self.dir, model, &self.options).await {
                    tracing::warn!(model, error = %e.message, "reload failed; the model keeps serving what it had");
                }
                acted.push(model.clone());
            }
        }
        for model in before.keys() {
            if !now.contains_key(model) {
                repo.remove(model);
                repo.clear_failures(model);
                tracing::info!(model, "model directory removed; model unloaded");
                acted.push(model.clone());
            }
        }
        *self.seen.lock() = now;
        acted
    }
}

/// Opens and warms every version of `dir/<model>`, then swaps the model's entry in; when
/// nothing of the new files loads, the model keeps serving what it had and the failure is
/// recorded and returned.
pub async fn reload_model(
    repo: &ModelRepository,
    dir: &Path,
    model: &str,
    options: &RepositoryOptions,
) -> Result<(), Error> {
    let model_dir = dir.join(model);
    if model.is_empty() || model.starts_with('.') || model.contains('/') || !model_dir.is_dir() {
        return Err(Error::not_found(format!(
            "no model directory '{model}' in {}",
            dir.display()
        )));
    }
    let (specs, mut failures) = {
        let model_dir = model_dir.clone();
        let name = model.to_string();
        let library = options.onnxruntime_library.clone();
        tokio::task::spawn_blocking(move || {
            crate::repository::scan_one(&model_dir, &name, library.as_deref())
        })
        .await
        .map_err(|e| Error::internal(format!("model loading thread failed: {e}")))??
    };
    let mut versions = BTreeMap::new();
    for spec in specs {
        let warm = options.warmup && spec.config.warmup;
        let version = spec.version;
        match repo.launch(spec, warm).await {
            Ok(mv) => {
                versions.insert(version, mv);
            }
            Err(e) => failures.push(LoadFailure {
                model: model.to_string(),
                version: Some(version),
                reason: e.message,
            }),
        }
    }
    let first_failure = failures.first().cloned();
    if versions.is_empty() {
        let reason = first_failure
            .map(|f| f.reason)
            .unwrap_or_else(|| "no version loaded".to_string());
        let kept = repo.entry(model).is_ok();
        repo.clear_failures(model);
        for f in failures {
            repo.record_failure(f);
        }
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "failed to load model '{model}': {reason}{}",
                if kept {
                    "; the versions it had keep serving"
                } else {
                    ""
                }
            ),
        ));
    }
    let served: Vec<u64> = versions.keys().copied().collect();
    repo.install(ModelEntry::newest_by_default(model.to_string(), versions));
    repo.clear_failures(model);
    for f in failures {
        repo.record_failure(f);
    }
    tracing::info!(model, versions = ?served, "model (re)loaded");
    Ok(())
}

/// Fingerprints of every model directory under `dir` (hidden ones skipped).
fn fingerprints(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        out.insert(name.to_string(), fingerprint(&path));
    }
    out
}

/// A hash of the relative paths, sizes and modification times of the files under `dir`.
fn fingerprint(dir: &Path) -> u64 {
    let mut files = Vec::new();
    collect(dir, dir, 0, &mut files);
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut h);
    h.finish()
}

fn collect(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, u64, u128)>) {
    if depth > 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            collect(root, &path, depth + 1, out);
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let rel = path
                .strip_prefix(root)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            out.push((rel, meta.len(), modified));
        }
    }
}

/// The source shared with the front ends.
pub type SharedSource = Arc<Source>;
