//! Where Parquet segments go: [`PredictionSink`], with a local directory ([`LocalSink`]) and
//! any object store ([`ObjectStoreSink`]: S3, GCS, Azure, or in memory) behind one trait.
//! Both pass the same conformance suite (`tests/sink_conformance.rs`).
//!
//! Keys are `/`-separated paths relative to the sink's root
//! (`fraud/2/2026-12-06/04/00000000000000000042.parquet`). A put is
//! atomic — a reader sees the whole object or none of it — and durable once it returns: the
//! local sink writes a temporary file, fsyncs it, renames it into place and fsyncs the
//! directory; object stores give both by their PUT semantics. Putting a key again replaces it
//! whole, which is what makes converting a WAL file twice (after a crash) harmless.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::CaptureError;

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

#[async_trait]
pub trait PredictionSink: Send + Sync + 'static {
    /// Where segments go, for logs and messages (`/data/logs`, `s3://bucket/prefix`).
    fn location(&self) -> String;

    /// Stores `bytes` under `key`, atomically and durably; replaces an existing object whole.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), CaptureError>;

    /// The object under `key`.
    async fn get(&self, key: &str) -> Result<Bytes, CaptureError>;

    /// Every object whose key starts with `prefix` (a whole path component or empty), in key
    /// order.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, CaptureError>;

    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), CaptureError>;
}

/// Where the local sink writes a segment before renaming it into place.
const TMP_DIR: &str = ".tmp";

/// Removes temporary files of puts that a process ending mid-put left (those of processes
/// still running are younger than a minute).
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        let ours = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&format!("{}-", std::process::id())));
        if old && !ours {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Refuses keys that could leave the sink's root.
fn check_key(key: &str) -> Result<(), CaptureError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(CaptureError::Config(format!(
            "segment key {key:?} must be a relative path without empty, '.' or '..' parts"
        )));
    }
    Ok(())
}

/// Segments as files under a directory (`<data-dir>/logs` by default).
pub struct LocalSink {
    root: PathBuf,
}

impl LocalSink {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, CaptureError> {
        let root = root.into();
        let tmp = root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| CaptureError::io(format!("creating {}", tmp.display()), e))?;
        // Puts cut short by a crash leave their temporary file here, never a partial segment.
        sweep_stale(&tmp);
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn put_blocking(root: &Path, key: &str, bytes: &[u8]) -> Result<(), CaptureError> {
        use std::io::Write;
        let path = root.join(key);
        let dir = path
            .parent()
            .ok_or_else(|| CaptureError::Config(format!("segment key {key:?} has no parent")))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| CaptureError::io(format!("creating {}", dir.display()), e))?;
        // Written beside the tree and renamed into place (one filesystem): readers that glob
        // `**/*.parquet` never see a partial file.
        static PUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = root
            .join(TMP_DIR)
            .join(format!("{}-{n}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| CaptureError::io(format!("creating {}", tmp.display()), e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| CaptureError::io(format!("writing {}", tmp.display()), e))?;
        drop(f);
        std::fs::rename(&tmp, &path)
            .map_err(|e| CaptureError::io(format!("renaming into {}", path.display()), e))?;
        crate::wal::sync_dir(dir)
    }

    fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<Listed>, CaptureError> {
        let mut out = Vec::new();
        let start = if prefix.is_empty() {
            root.to_path_buf()
        } else {
            root.join(prefix.trim_end_matches('/'))
        };
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(CaptureError::io(format!("listing {}", dir.display()), e)),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|e| CaptureError::io(format!("listing {}", dir.display()), e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                // Temporary files of puts in progress are not segments.
                if name.starts_with('.') {
                    continue;
                }
                let meta = entry
                    .metadata()
                    .map_err(|e| CaptureError::io(format!("reading {name}"), e))?;
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let Ok(rel) = entry.path().strip_prefix(root).map(Path::to_path_buf) else {
                    continue;
                };
                let key = rel
                    .components()
                    .filter_map(|c| c.as_os_str().to_str())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Listed {
                    key,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CaptureError> + Send + 'static,
) -> Result<T, CaptureError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CaptureError::Store {
            what: "a file operation".into(),
            message: e.to_string(),
        })?
}

#[async_trait]
impl PredictionSink for LocalSink {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), CaptureError> {
        check_key(key)?;
        let (root, key) = (self.root.clone(), key.to_string());
        blocking(move || Self::put_blocking(&root, &key, &bytes)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, CaptureError> {
        check_key(key)?;
        let path = self.root.join(key);
        blocking(move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| CaptureError::io(format!("reading {}", path.display()), e))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, CaptureError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        blocking(move || Self::list_blocking(&root, &prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), CaptureError> {
        check_key(key)?;
        let path = self.root.join(key);
        blocking(move || crate::wal::remove(&path)).await
    }
}

/// Segments in an object store under a prefix.
pub struct ObjectStoreSink {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    location: String,
}

impl ObjectStoreSink {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, location: impl Into<String>) -> Self {
        Self {
            store,
            prefix: ObjectPath::from(prefix),
            location: location.into(),
        }
    }

    /// An `s3://`, `gs://`, `az://` or `memory://` URL; credentials from the usual environment
    /// variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), overridden by `options` (object_store keys
    /// such as `aws_endpoint`).
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Self, CaptureError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            CaptureError::Config(format!("prediction log URL {url:?} is invalid: {e}"))
        })?;
        let env = std::env::vars()
            .filter(|(k, _)| {
                ["AWS_", "GOOGLE_", "AZURE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .chain(options.iter().cloned());
        let (store, prefix) = object_store::parse_url_opts(&parsed, env)
            .map_err(|e| CaptureError::Config(format!("prediction log URL {url:?}: {e}")))?;
        Ok(Self {
            store: Arc::from(store),
            prefix,
            location: url.to_string(),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        key.split('/')
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    fn err(&self, what: String) -> impl FnOnce(object_store::Error) -> CaptureError {
        move |e| CaptureError::Store {
            what,
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl PredictionSink for ObjectStoreSink {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), CaptureError> {
        check_key(key)?;
        self.store
            .put(&self.path(key), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(self.err(format!("put {key}")))
    }

    async fn get(&self, key: &str) -> Result<Bytes, CaptureError> {
        check_key(key)?;
        let got = self
            .store
            .get(&self.path(key))
            .await
            .map_err(self.err(format!("get {key}")))?;
        got.bytes().await.map_err(self.err(format!("get {key}")))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, CaptureError> {
        let base = if prefix.is_empty() {
            self.prefix.clone()
        } else {
            self.path(prefix.trim_end_matches('/'))
        };
        let strip = self.prefix.as_ref().len();
        let mut out: Vec<Listed> = self
            .store
            .list(Some(&base))
            .map_ok(|m| {
                let full = m.location.as_ref();
                let key = full[strip.min(full.len())..].trim_start_matches('/');
                Listed {
                    key: key.to_string(),
                    size: m.size,
                    modified: m.last_modified.into(),
                }
            })
            .try_collect()
            .await
            .map_err(self.err(format!("list {prefix}")))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), CaptureError> {
        check_key(key)?;
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("delete {key}"))(e)),
        }
    }
}

/// The sink a `--prediction-logs` location names: a URL with a scheme other than `file`
/// goes to the object store, anything else is a local directory.
pub fn open(location: &str) -> Result<Arc<dyn PredictionSink>, CaptureError> {
    if let Some(path) = location.strip_prefix("file://") {
        return Ok(Arc::new(LocalSink::new(path)?));
    }
    if location.contains("://") {
        return Ok(Arc::new(ObjectStoreSink::open(location, &[])?));
    }
    Ok(Arc::new(LocalSink::new(location)?))
}
