//! Content-addressed artifacts behind `object_store`: every file of a version is stored once
//! under `blobs/sha256/<hh>/<hex>`, whatever model or version refers to it. A version's digest
//! is the SHA-256 of its manifest (the sorted list of path, file digest and size), so two pushes
//! of the same directory give the same digest and the same (already stored) blobs.
//!
//! Files stream in 1 MiB chunks both ways (hashing while reading), so pushing or loading a
//! multi-gigabyte model never holds it in memory. [`ArtifactStore::materialize`] verifies every
//! byte against the manifest on every load, cached or not: a blob altered in the store, or a
//! cached file altered on disk, is refused with the file, the expected and the found digest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::RegistryError;
use crate::store::FileEntry;

const CHUNK: usize = 1 << 20;

/// What a push stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredArtifact {
    pub digest: String,
    pub size: u64,
    pub files: Vec<FileEntry>,
    /// Bytes actually written (files not already in the store).
    pub new_bytes: u64,
}

pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Where verified copies are materialised for engines that need a file path.
    cache_dir: PathBuf,
    location: String,
}

fn storage(what: String) -> impl FnOnce(object_store::Error) -> RegistryError {
    move |e| RegistryError::Storage(format!("{what}: {e}"))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |e| RegistryError::Storage(format!("{what}: {e}"))
}

/// `sha256:<hex>` of a manifest: its canonical JSON (files sorted by path).
pub fn manifest_digest(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    // Serialising plain strings and integers cannot fail.
    let json = serde_json::to_vec(&sorted).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&json)))
}

impl ArtifactStore {
    /// `location` is a directory path (created if missing) or an `s3://`, `gs://`, `az://`,
    /// `file://` or `memory://` URL; cloud credentials come from the usual environment
    /// variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(location: &str, cache_dir: &Path) -> Result<Self, RegistryError> {
        Self::open_with(location, cache_dir, &[])
    }

    /// As [`Self::open`], with `object_store` configuration keys (`aws_endpoint`,
    /// `aws_allow_http`, `google_service_account`, ...) that override the environment.
    pub fn open_with(
        location: &str,
        cache_dir: &Path,
        options: &[(String, String)],
    ) -> Result<Self, RegistryError> {
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = if location.contains("://") {
            let url = url::Url::parse(location).map_err(|e| {
                RegistryError::Invalid(format!("artifact store URL {location:?} is invalid: {e}"))
            })?;
            let env = std::env::vars()
                .filter(|(k, _)| {
                    ["AWS_", "GOOGLE_", "AZURE_"]
                        .iter()
                        .any(|p| k.starts_with(p))
                })
                .chain(options.iter().cloned());
            let (store, prefix) = object_store::parse_url_opts(&url, env).map_err(|e| {
                RegistryError::Invalid(format!("artifact store URL {location:?}: {e}"))
            })?;
            (Arc::from(store), prefix)
        } else {
            std::fs::create_dir_all(location)
                .map_err(io(format!("cannot create artifact directory {location}")))?;
            let fs = LocalFileSystem::new_with_prefix(location)
                .map_err(storage(format!("artifact directory {location}")))?;
            (Arc::new(fs), ObjectPath::default())
        };
        Ok(Self {
            store,
            prefix,
            cache_dir: cache_dir.to_path_buf(),
            location: location.to_string(),
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn blob_path(&self, digest: &str) -> Result<ObjectPath, RegistryError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| RegistryError::Invalid(format!("not a sha256 digest: {digest:?}")))?;
        Ok(self
            .prefix
            .clone()
            .join("blobs")
            .join("sha256")
            .join(&hex[..2])
            .join(hex))
    }

    /// Stores every file under `dir` (recursively; hidden files and `config.toml` skipped) and
    /// returns the manifest. Files already present are not written again.
    pub async fn put_dir(&self, dir: &Path) -> Result<StoredArtifact, RegistryError> {
        let mut paths = Vec::new();
        collect_files(dir, dir, &mut paths)?;
        paths.sort();
        if paths.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "{} holds no model files",
                dir.display()
            )));
        }
        let mut files = Vec::with_capacity(paths.len());
        let mut new_bytes = 0;
        for rel in paths {
            let full = dir.join(&rel);
            let (digest, size) = hash_file(&full).await?;
            let blob = self.blob_path(&digest)?;
            let present = match self.store.head(&blob).await {
                Ok(meta) => meta.size == size,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => return Err(storage(format!("artifact store {}", self.location))(e)),
            };
            if !present {
                self.upload(&full, &blob).await?;
                new_bytes += size;
            }
            files.push(FileEntry {
                path: rel,
                digest,
                size,
            });
        }
        Ok(StoredArtifact {
            digest: manifest_digest(&files),
            size: files.iter().map(|f| f.size).sum(),
            files,
            new_bytes,
        })
    }

    async fn upload(&self, file: &Path, blob: &ObjectPath) -> Result<(), RegistryError> {
        let mut reader = tokio::fs::File::open(file)
            .await
            .map_err(io(format!("cannot read {}", file.display())))?;
        let mut writer = BufWriter::with_capacity(self.store.clone(), blob.clone(), 8 * CHUNK);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(io(format!("cannot read {}", file.display())))?;
            if n == 0 {
                break;
            }
            writer
                .write_all(&buf[..n])
                .await
                .map_err(io(format!("cannot upload {}", file.display())))?;
        }
        writer
            .shutdown()
            .await
            .map_err(io(format!("cannot upload {}", file.display())))
    }

    /// Number of blobs stored (tests and `ballast model gc` reporting).
    pub async fn blob_count(&self) -> Result<usize, RegistryError> {
        let prefix = self.prefix.clone().join("blobs");
        let mut list = self.store.list(Some(&prefix));
        let mut n = 0;
        while let Some(item) = list.next().await {
            item.map_err(storage(format!("artifact store {}", self.location)))?;
            n += 1;
        }
        Ok(n)
    }

    /// A local directory holding exactly the version's files, each verified against the
    /// manifest, and the manifest against `digest`. Returns the directory.
    pub async fn materialize(
        &self,
        model: &str,
        version: u64,
        digest: &str,
        files: &[FileEntry],
    ) -> Result<PathBuf, RegistryError> {
        let listed = manifest_digest(files);
        if listed != digest {
            return Err(RegistryError::Integrity(format!(
                "model '{model}' version {version}: manifest digest {listed} does not match the registered digest {digest}"
            )));
        }
        let hex = digest.trim_start_matches("sha256:");
        let dir = self.cache_dir.join(hex);
        for f in files {
            let rel = safe_relative(&f.path)?;
            let target = dir.join(rel);
            if target.is_file() {
                let (found, size) = hash_file(&target).await?;
                if found == f.digest && size == f.size {
                    continue;
                }
                tracing::warn!(
                    file = %target.display(),
                    expected = %f.digest,
                    found = %found,
                    "cached artifact file changed on disk; fetching it again"
                );
            }
            self.download(model, version, f, &target).await?;
        }
        Ok(dir)
    }

    /// Streams a blob to `target` through a temporary file, hashing as it goes; the file is
    /// renamed into place only if the digest matches.
    async fn download(
        &self,
        model: &str,
        version: u64,
        f: &FileEntry,
        target: &Path,
    ) -> Result<(), RegistryError> {
        let blob = self.blob_path(&f.digest)?;
        let parent = target.parent().unwrap_or(&self.cache_dir);
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(format!("cannot create {}", parent.display())))?;
        let tmp = parent.join(format!(
            ".{}.partial-{}",
            target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("file"),
            std::process::id()
        ));
        let got = self.store.get(&blob).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => RegistryError::Integrity(format!(
                "model '{model}' version {version}: artifact file {} ({}) is missing from the artifact store {}",
                f.path, f.digest, self.location
            )),
            e => RegistryError::Storage(format!("artifact store {}: {e}", self.location)),
        })?;
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(io(format!("cannot write {}", tmp.display())))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(storage(format!("artifact store {}", self.location)))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(io(format!("cannot write {}", tmp.display())))?;
        }
        out.sync_all()
            .await
            .map_err(io(format!("cannot write {}", tmp.display())))?;
        drop(out);
        let found = format!("sha256:{}", hex::encode(hasher.finalize()));
        if found != f.digest || size != f.size {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(RegistryError::Integrity(format!(
                "model '{model}' version {version}: artifact file {} is corrupt or tampered: expected {} ({} bytes), found {found} ({size} bytes) in {}",
                f.path, f.digest, f.size, self.location
            )));
        }
        tokio::fs::rename(&tmp, target)
            .await
            .map_err(io(format!("cannot write {}", target.display())))
    }
}

/// Rejects absolute paths and `..` so a manifest can never write outside the cache.
fn safe_relative(path: &str) -> Result<&Path, RegistryError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(RegistryError::Integrity(format!(
            "manifest names an unsafe path {path:?}"
        )))
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), RegistryError> {
    let entries =
        std::fs::read_dir(dir).map_err(io(format!("cannot read directory {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("cannot read directory {}", dir.display())))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if path.is_file() {
            let rel = path.strip_prefix(root).map_err(|_| {
                RegistryError::Invalid(format!("{} is outside {}", path.display(), root.display()))
            })?;
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let rel = rel.join("/");
            if rel == "config.toml" {
                continue;
            }
            out.push(rel);
        }
    }
    Ok(())
}

/// The manifest and digest `put_dir` would produce for `path` (a directory or one file),
/// without storing anything: how `apply` finds out whether a directory is already a version.
pub async fn local_manifest(path: &Path) -> Result<(Vec<FileEntry>, String), RegistryError> {
    let mut files = Vec::new();
    if path.is_file() {
        let (digest, size) = hash_file(path).await?;
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            RegistryError::Invalid(format!("{} has no file name", path.display()))
        })?;
        files.push(FileEntry {
            path: name.to_string(),
            digest,
            size,
        });
    } else {
        let mut paths = Vec::new();
        collect_files(path, path, &mut paths)?;
        paths.sort();
        for rel in paths {
            let (digest, size) = hash_file(&path.join(&rel)).await?;
            files.push(FileEntry {
                path: rel,
                digest,
                size,
            });
        }
    }
    let digest = manifest_digest(&files);
    Ok((files, digest))
}

/// `sha256:<hex>` and size of a file, streamed.
pub async fn hash_file(path: &Path) -> Result<(String, u64), RegistryError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(io(format!("cannot read {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}
