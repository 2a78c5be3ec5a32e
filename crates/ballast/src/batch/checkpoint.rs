//! The checkpoint of a `ballast batch` output directory, `_checkpoint.json`: which run made the
//! directory (model, version and digest; every input file with its size and modification
//! time; the settings that decide the parts) and which parts are done.
//!
//! Resume rules. A part file (`part-FFFFF-PPPPPP.parquet`, file index and row group / chunk
//! index) appears only by an atomic rename after an fsync, so a part file present and whole
//! (its footer counts the part's rows) is done, even when a kill came before the checkpoint
//! recorded it. The checkpoint's `done` list, for people and tools, is rewritten (atomically
//! too) at most once a second while parts land, and when the run ends: two fsyncs a part were
//! a third of the writer's time on 65,536-row parts. A resume deletes temporary files (`.*.tmp`) and scores every part not done.
//! A directory made by another model version, other settings or other input files (added,
//! removed, or with another size or modification time) is refused, saying what differs; so is
//! a non-empty directory without a checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::Usage;
use super::input::Format;
use super::output::{part_rows, sync_dir, temp_name};

pub const FILE: &str = "_checkpoint.json";

/// Version of the checkpoint's layout.
const LAYOUT: u32 = 1;

/// Least time between two rewrites of the checkpoint while parts land.
const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What made an output directory; a resume must match it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub model: String,
    pub version: u64,
    pub digest: String,
    /// `--columns`, empty when the columns were mapped by name or taken in file order.
    pub columns: Vec<String>,
    /// Rows per part of a CSV file.
    pub csv_chunk_rows: usize,
    pub inputs: Vec<InputId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputId {
    pub path: String,
    pub format: Format,
    pub size: u64,
    pub mtime_ns: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    layout: u32,
    #[serde(flatten)]
    identity: Identity,
    parts_total: usize,
    /// Part file name → rows in it.
    done: BTreeMap<String, u64>,
    complete: bool,
}

/// An output directory being filled.
pub struct Checkpoint {
    dir: PathBuf,
    stored: Stored,
    saved: std::time::Instant,
}

/// The part file of part `part` of input file `file`.
pub fn part_name(file: usize, part: usize) -> String {
    format!("part-{file:05}-{part:06}.parquet")
}

/// Every difference between what made the directory (`was`) and this run (`now`).
fn differences(was: &Identity, now: &Identity) -> Vec<String> {
    let mut out = Vec::new();
    if (&was.model, was.version, &was.digest) != (&now.model, now.version, &now.digest) {
        out.push(format!(
            "model: the directory holds {}@{} ({}), this run scores with {}@{} ({})",
            was.model, was.version, was.digest, now.model, now.version, now.digest
        ));
    }
    if was.columns != now.columns {
        out.push(format!(
            "--columns: was [{}], now [{}]",
            was.columns.join(","),
            now.columns.join(",")
        ));
    }
    if was.csv_chunk_rows != now.csv_chunk_rows {
        out.push(format!(
            "--csv-chunk-rows: was {}, now {}",
            was.csv_chunk_rows, now.csv_chunk_rows
        ));
    }
    let old: BTreeMap<&str, &InputId> = was.inputs.iter().map(|i| (i.path.as_str(), i)).collect();
    let new: BTreeMap<&str, &InputId> = now.inputs.iter().map(|i| (i.path.as_str(), i)).collect();
    for (path, w) in &old {
        match new.get(path) {
            None => out.push(format!(
                "input {path}: in the directory's run, not in this one"
            )),
            Some(n) if n.size != w.size => out.push(format!(
                "input {path}: {} bytes then, {} now",
                w.size, n.size
            )),
            Some(n) if n.mtime_ns != w.mtime_ns => {
                out.push(format!("input {path}: modified since the directory's run"));
            }
            Some(_) => {}
        }
    }
    for path in new.keys().filter(|p| !old.contains_key(*p)) {
        out.push(format!("input {path}: new in this run"));
    }
    let order = |ids: &[InputId]| ids.iter().map(|i| i.path.clone()).collect::<Vec<_>>();
    if out.is_empty() && order(&was.inputs) != order(&now.inputs) {
        out.push("the input files come in another order".into());
    }
    out
}

impl Checkpoint {
    /// Opens `dir` for this run: creates it (or takes an empty one), or resumes the run that
    /// made it. `parts` lists every part of the run as (part file name, rows); the result says
    /// which are already done.
    pub fn open(
        dir: &Path,
        identity: Identity,
        parts: &[(String, u64)],
    ) -> anyhow::Result<(Self, Vec<bool>)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        let path = dir.join(FILE);
        let resumed = if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let stored: Stored = serde_json::from_str(&text).map_err(|e| {
                Usage(format!(
                    "{} is not a ballast batch checkpoint ({e}); choose another --output",
                    path.display()
                ))
            })?;
            if stored.layout != LAYOUT {
                return Err(Usage(format!(
                    "{} has checkpoint layout {}, this ballast writes {LAYOUT}",
                    path.display(),
                    stored.layout
                ))
                .into());
            }
            let diff = differences(&stored.identity, &identity);
            if !diff.is_empty() {
                return Err(Usage(format!(
                    "{} holds the output of another run, so this one does not resume into it:\n  {}\nUse a new --output directory, or run again with the arguments and inputs that made it",
                    dir.display(),
                    diff.join("\n  ")
                ))
                .into());
            }
            Some(stored)
        } else {
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
            if let Some(entry) = entries.next() {
                let name = entry
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(Usage(format!(
                    "{} is not empty ({name}, ...) and has no {FILE}: not a ballast batch output; choose a new or empty --output",
                    dir.display()
                ))
                .into());
            }
            None
        };
        // Partial parts of a killed run: a temporary file is never taken as done.
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("cannot delete {}", entry.path().display()))?;
            }
        }
        let mut done_map = BTreeMap::new();
        let mut done = Vec::with_capacity(parts.len());
        for (name, rows) in parts {
            let whole = resumed.is_some() && part_rows(&dir.join(name)) == Some(*rows);
            if whole {
                done_map.insert(name.clone(), *rows);
            }
            done.push(whole);
        }
        let complete = done.iter().all(|d| *d);
        let mut checkpoint = Self {
            dir: dir.to_path_buf(),
            stored: Stored {
                layout: LAYOUT,
                identity,
                parts_total: parts.len(),
                done: done_map,
                complete,
            },
            saved: std::time::Instant::now(),
        };
        checkpoint.save()?;
        Ok((checkpoint, done))
    }

    /// Records a part as done (after its file was renamed into place); written out when the
    /// last save is [`SAVE_INTERVAL`] old or the run is complete.
    pub fn done(&mut self, name: &str, rows: u64) -> anyhow::Result<()> {
        self.stored.done.insert(name.to_string(), rows);
        self.stored.complete = self.stored.done.len() == self.stored.parts_total;
        if self.stored.complete || self.saved.elapsed() >= SAVE_INTERVAL {
            self.save()?;
        }
        Ok(())
    }

    /// Writes out what is recorded (at the end of a run, complete or not).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.save()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn complete(&self) -> bool {
        self.stored.complete
    }

    /// Writes the checkpoint atomically: temporary file, fsync, rename, directory fsync.
    fn save(&mut self) -> anyhow::Result<()> {
        let path = self.dir.join(FILE);
        let tmp = self.dir.join(temp_name(FILE));
        let text = serde_json::to_vec_pretty(&self.stored)?;
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(&text)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        sync_dir(&self.dir)?;
        self.saved = std::time::Instant::now();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            model: "m".into(),
            version: 1,
            digest: "sha256:a".into(),
            columns: vec![],
            csv_chunk_rows: 10,
            inputs: vec![InputId {
                path: "a.csv".into(),
                format: Format::Csv,
                size: 5,
                mtime_ns: 7,
            }],
        }
    }

    #[test]
    fn every_difference_is_named() {
        let was = identity();
        let mut now = identity();
        now.version = 2;
        now.inputs[0].size = 6;
        now.inputs.push(InputId {
            path: "b.csv".into(),
            format: Format::Csv,
            size: 1,
            mtime_ns: 1,
        });
        let d = differences(&was, &now).join("\n");
        assert!(d.contains("m@1") && d.contains("m@2"), "{d}");
        assert!(d.contains("input a.csv: 5 bytes then, 6 now"), "{d}");
        assert!(d.contains("input b.csv: new in this run"), "{d}");
        assert!(differences(&was, &identity()).is_empty());
    }

    #[test]
    fn a_foreign_directory_is_refused_and_temp_files_are_deleted_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let err = Checkpoint::open(dir.path(), identity(), &[]).err().unwrap();
        assert!(err.downcast_ref::<Usage>().is_some(), "{err}");

        let out = dir.path().join("out");
        let parts = vec![(part_name(0, 0), 3)];
        let (_, done) = Checkpoint::open(&out, identity(), &parts).unwrap();
        assert_eq!(done, [false]);
        std::fs::write(out.join(temp_name(&part_name(0, 0))), "partial").unwrap();
        // A part file that is not whole Parquet is not done either.
        std::fs::write(out.join(part_name(0, 0)), "torn").unwrap();
        let (_, done) = Checkpoint::open(&out, identity(), &parts).unwrap();
        assert_eq!(done, [false]);
        assert!(!out.join(temp_name(&part_name(0, 0))).exists());
    }
}
