//! The write-ahead log: numbered files of checksummed frames in `<logs>/wal/`.
//!
//! A file is `MAGIC` followed by frames `[u32 length][u32 CRC-32 of the payload][payload]`,
//! little-endian, one record per frame. Only the writer appends, and only to the newest file;
//! a file is *sealed* when the writer moves on (by size or age) and then belongs to the
//! segmenter, which turns it into Parquet and deletes it. Reading stops at the first frame
//! that is short or fails its checksum: with fsync before every acknowledgement, only the tail
//! written after the last fsync can be torn, and nothing in it was acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::CaptureError;
use crate::record::{self, Record};

const MAGIC: &[u8; 8] = b"BWAL\x01\0\0\0";
/// A frame larger than this is corrupt, not a record (requests are capped far below it).
const MAX_FRAME: u32 = 1 << 30;

/// The WAL directory under a logs directory.
pub fn dir(logs: &Path) -> PathBuf {
    logs.join("wal")
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// The WAL files in `dir`, oldest first, with their sequence numbers.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CaptureError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(CaptureError::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| CaptureError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Appends frames to the newest WAL file.
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    seq: u64,
    bytes: u64,
    /// Frames written since the last successful fsync.
    unsynced: bool,
}

impl WalWriter {
    /// Starts a new file numbered `seq` in `dir` (created if missing, and fsynced so the new
    /// file's name survives a crash).
    pub fn create(dir: &Path, seq: u64) -> Result<Self, CaptureError> {
        fs::create_dir_all(dir)
            .map_err(|e| CaptureError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(file_name(seq));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| CaptureError::io(format!("creating {}", path.display()), e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| CaptureError::io(format!("writing {}", path.display()), e))?;
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            seq,
            bytes: MAGIC.len() as u64,
            unsynced: false,
        })
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(file_name(self.seq))
    }

    /// Bytes in the file so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes <= MAGIC.len() as u64
    }

    /// Writes already-framed bytes ([`frame`]) in one call.
    pub fn append(&mut self, frames: &[u8]) -> Result<(), CaptureError> {
        if frames.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(frames)
            .map_err(|e| CaptureError::io(format!("writing {}", self.path().display()), e))?;
        self.bytes += frames.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Makes everything appended durable (`fdatasync`). An error here is final for the log:
    /// after a failed fsync the kernel may have dropped the dirty pages and cleared the error,
    /// so a retry could "succeed" over lost data (PostgreSQL's fsyncgate).
    pub fn sync(&mut self) -> Result<(), CaptureError> {
        if !self.unsynced {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| CaptureError::io(format!("fsync of {}", self.path().display()), e))?;
        self.unsynced = false;
        Ok(())
    }

    pub fn unsynced(&self) -> bool {
        self.unsynced
    }
}

/// Appends one record's frame to `out`.
pub fn frame(r: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    record::encode(r, out);
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What reading a WAL file found.
#[derive(Debug)]
pub struct Recovered {
    pub records: Vec<Record>,
    /// Bytes after the last good frame (a torn tail), with why reading stopped there.
    pub torn: Option<(u64, String)>,
}

/// Reads every good frame of a WAL file, stopping at a torn tail.
pub fn read(path: &Path) -> Result<Recovered, CaptureError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| CaptureError::io(format!("reading {}", path.display()), e))?;
    let mut records = Vec::new();
    if bytes.len() < MAGIC.len() {
        // Created but its header never reached the disk: nothing was written to it.
        let torn = (!bytes.is_empty()).then(|| (bytes.len() as u64, "short header".to_string()));
        return Ok(Recovered { records, torn });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(CaptureError::Corrupt(format!(
            "{} is not a ballast WAL file",
            path.display()
        )));
    }
    let mut at = MAGIC.len();
    let torn = loop {
        if at == bytes.len() {
            break None;
        }
        let rest = &bytes[at..];
        if rest.len() < 8 {
            break Some("a frame header cut short".to_string());
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_FRAME || rest.len() - 8 < len as usize {
            break Some(format!("a frame of {len} bytes cut short"));
        }
        let payload = &rest[8..8 + len as usize];
        if crc32fast::hash(payload) != crc {
            break Some("a frame failing its checksum".to_string());
        }
        match record::decode(payload) {
            Ok(r) => records.push(r),
            Err(e) => break Some(format!("a frame that does not decode ({e})")),
        }
        at += 8 + len as usize;
    };
    Ok(Recovered {
        records,
        torn: torn.map(|why| ((bytes.len() - at) as u64, why)),
    })
}

/// Makes a directory's entries (a created, renamed or removed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), CaptureError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaptureError::io(format!("fsync of directory {}", dir.display()), e))
}

/// Removes a WAL file whose records are all in segments.
pub fn remove(path: &Path) -> Result<(), CaptureError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CaptureError::io(format!("removing {}", path.display()), e)),
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::tests::sample;

    fn write(dir: &Path, ids: &[&str]) -> PathBuf {
        let mut w = WalWriter::create(dir, 7).unwrap();
        let mut buf = Vec::new();
        for id in ids {
            frame(&sample(id), &mut buf);
        }
        w.append(&buf).unwrap();
        w.sync().unwrap();
        w.path()
    }

    #[test]
    fn frames_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &["a", "b", "c"]);
        let got = read(&path).unwrap();
        let ids: Vec<_> = got.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(got.torn.is_none());
        assert_eq!(list(dir.path()).unwrap(), vec![(7, path)]);
    }

    #[test]
    fn a_torn_tail_keeps_every_whole_frame_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &["a", "b"]);
        let full = fs::read(&path).unwrap();
        let one = {
            let mut b = Vec::new();
            frame(&sample("b"), &mut b);
            b.len()
        };
        // Every cut inside the last frame loses only that frame.
        for cut in (full.len() - one + 1)..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let got = read(&path).unwrap();
            assert_eq!(got.records.len(), 1, "cut at {cut}");
            assert!(got.torn.is_some());
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &["a", "b"]);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let got = read(&path).unwrap();
        assert_eq!(got.records.len(), 1);
        assert!(got.torn.unwrap().1.contains("checksum"));
    }

    #[test]
    fn an_empty_file_is_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(3));
        fs::write(&path, b"").unwrap();
        let got = read(&path).unwrap();
        assert!(got.records.is_empty() && got.torn.is_none());
    }
}
