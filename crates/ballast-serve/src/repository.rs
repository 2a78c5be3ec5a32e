//! The model repository: `DIR/<model>/<version>/model.onnx` plus an optional
//! `DIR/<model>/config.toml`. Every version found is loaded, warmed with one inference and
//! served; the highest version is the default. Readiness and draining live here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ballast_core::{Error, ErrorCode, ModelConfig};
use ballast_engine::Backend;

use crate::model::ModelVersion;

#[derive(Debug, Clone)]
pub struct RepositoryOptions {
    /// Run a warm-up inference per version before declaring it ready (config can opt out).
    pub warmup: bool,
    /// The ONNX Runtime shared library, when configured; else it is searched for.
    pub onnxruntime_library: Option<PathBuf>,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        Self {
            warmup: true,
            onnxruntime_library: None,
        }
    }
}

/// All versions of one model.
pub struct ModelEntry {
    pub name: String,
    pub versions: BTreeMap<u64, Arc<ModelVersion>>,
}

impl ModelEntry {
    pub fn default_version(&self) -> Option<&Arc<ModelVersion>> {
        self.versions.values().next_back()
    }
}

/// A model to serve that was built outside the file layout (tests, embedded models).
pub struct ModelSpec {
    pub name: String,
    pub version: u64,
    pub backend: Arc<dyn Backend>,
    pub config: ModelConfig,
}

pub struct ModelRepository {
    models: BTreeMap<String, ModelEntry>,
    ready: AtomicBool,
    draining: Arc<AtomicBool>,
}

impl ModelRepository {
    /// Scans `dir`, loads every model version (engine loads run on blocking threads) and warms
    /// them. Any failure names the model, version and file.
    pub async fn load(dir: &Path, options: &RepositoryOptions) -> Result<Self, Error> {
        let specs = {
            let dir = dir.to_path_buf();
            let library = options.onnxruntime_library.clone();
            tokio::task::spawn_blocking(move || scan(&dir, library.as_deref()))
                .await
                .map_err(|e| Error::internal(format!("model loading thread failed: {e}")))??
        };
        Self::from_specs(specs, options).await
    }

    /// Serves models that are already loaded.
    pub async fn from_specs(
        specs: Vec<ModelSpec>,
        options: &RepositoryOptions,
    ) -> Result<Self, Error> {
        let draining = Arc::new(AtomicBool::new(false));
        let mut models: BTreeMap<String, ModelEntry> = BTreeMap::new();
        for spec in specs {
            let warm = options.warmup && spec.config.warmup;
            let mv = ModelVersion::start(
                &spec.name,
                spec.version,
                spec.backend,
                spec.config,
                draining.clone(),
            )?;
            if warm {
                let admission = mv.admit()?;
                mv.infer(admission, mv.warmup_request())
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
            }
            mv.set_ready_metric(true);
            tracing::info!(
                model = %spec.name,
                version = spec.version,
                engine = mv.engine,
                inputs = %mv.signature.inputs.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", "),
                outputs = %mv.signature.outputs.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", "),
                max_batch_size = mv.config.max_batch_size,
                "model version ready"
            );
            models
                .entry(spec.name.clone())
                .or_insert_with(|| ModelEntry {
                    name: spec.name.clone(),
                    versions: BTreeMap::new(),
                })
                .versions
                .insert(spec.version, Arc::new(mv));
        }
        Ok(Self {
            models,
            ready: AtomicBool::new(true),
            draining,
        })
    }

    pub fn models(&self) -> impl Iterator<Item = &ModelEntry> {
        self.models.values()
    }

    /// Resolves a model and optional version label to a served version.
    pub fn get(&self, model: &str, version: Option<&str>) -> Result<Arc<ModelVersion>, Error> {
        let Some(entry) = self.models.get(model) else {
            let names: Vec<&str> = self.models.keys().map(String::as_str).collect();
            return Err(Error::not_found(format!(
                "unknown model '{model}'; this server serves: {}",
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let found = match version.filter(|v| !v.is_empty()) {
            None => entry.default_version(),
            Some(v) => v.parse::<u64>().ok().and_then(|n| entry.versions.get(&n)),
        };
        found.cloned().ok_or_else(|| {
            let versions: Vec<String> = entry.versions.keys().map(u64::to_string).collect();
            Error::not_found(format!(
                "model '{model}' has no version '{}'; available versions: {}",
                version.unwrap_or(""),
                versions.join(", ")
            ))
        })
    }

    pub fn entry(&self, model: &str) -> Result<&ModelEntry, Error> {
        self.get(model, None)?;
        self.models
            .get(model)
            .ok_or_else(|| Error::not_found(format!("unknown model '{model}'")))
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
        for mv in self.models.values().flat_map(|m| m.versions.values()) {
            mv.set_ready_metric(false);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.models
            .values()
            .flat_map(|m| m.versions.values())
            .map(|v| v.in_flight())
            .sum()
    }

    /// Waits until no admitted request remains, or `grace` passes. Returns what was left.
    pub async fn wait_idle(&self, grace: Duration) -> usize {
        let until = tokio::time::Instant::now() + grace;
        loop {
            let left = self.in_flight();
            if left == 0 || tokio::time::Instant::now() >= until {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Finds and loads every model version under `dir` (blocking: file I/O and engine loads).
fn scan(dir: &Path, onnxruntime_library: Option<&Path>) -> Result<Vec<ModelSpec>, Error> {
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
        let config_path = model_dir.join("config.toml");
        let config = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path).map_err(|e| {
                Error::invalid(format!("cannot read {}: {e}", config_path.display()))
            })?;
            ModelConfig::from_toml(&text, &config_path.display().to_string())?
        } else {
            ModelConfig::default()
        };
        let mut versions: Vec<(u64, PathBuf)> = read(&model_dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .filter_map(|p| {
                let v = p.file_name()?.to_str()?.parse::<u64>().ok()?;
                Some((v, p))
            })
            .collect();
        versions.sort();
        if versions.is_empty() {
            return Err(Error::invalid(format!(
                "model '{name}' at {} has no version directories (expected {}/<number>/model.onnx)",
                model_dir.display(),
                model_dir.display()
            )));
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
            let backend = ballast_engine::open_with(&path, &options).map_err(|e| {
                Error::new(
                    ErrorCode::Internal,
                    format!("model '{name}' version {version}: {e}"),
                )
            })?;
            specs.push(ModelSpec {
                name: name.clone(),
                version,
                backend,
                config: config.clone(),
            });
        }
    }
    Ok(specs)
}
