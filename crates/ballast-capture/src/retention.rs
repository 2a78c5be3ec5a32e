//! Retention and compaction of segments, run by the segmenter thread between conversions.
//!
//! - **Age**: a partition (model, version, hour) whose hour ended more than `max_age` ago is
//!   deleted whole.
//! - **Size**: while the segments take more than `max_bytes`, the oldest partitions go first
//!   (by hour, then by WAL number).
//! - **Compaction**: a partition whose hour is over, holding two or more segments smaller
//!   than `compact_below`, all from WAL files already converted, becomes one segment named by
//!   the range of WAL numbers it covers (`<first>-<last>.parquet`), written before the
//!   originals are deleted. A crash between the two leaves both; every reader (and the next
//!   run) ignores a segment whose WAL number a range in the same partition covers, so no
//!   record is read twice and none is lost.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::error::CaptureError;
use crate::record::Record;
use crate::segment;
use crate::sink::{Listed, PredictionSink};

/// Segments are kept 30 days unless configured: long enough for delayed labels and audits of
/// the last month, short enough that a forgotten log does not grow for ever.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Segments under 8 MiB are merged with their partition's others once its hour is over.
pub const DEFAULT_COMPACT_BELOW: u64 = 8 << 20;
/// How often retention and compaction run.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Retention {
    /// `None`: kept whatever their age.
    pub max_age: Option<Duration>,
    /// `None`: no size bound.
    pub max_bytes: Option<u64>,
    /// 0 turns compaction off.
    pub compact_below: u64,
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Some(DEFAULT_MAX_AGE),
            max_bytes: None,
            compact_below: DEFAULT_COMPACT_BELOW,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// A segment's key, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKey {
    pub partition: String,
    /// WAL numbers covered: one for a converted WAL file, a range for a compacted segment.
    pub first: u64,
    pub last: u64,
}

impl SegmentKey {
    pub fn parse(key: &str) -> Option<Self> {
        let (partition, file) = key.rsplit_once('/')?;
        let stem = file.strip_suffix(".parquet")?;
        let (first, last) = match stem.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let n = stem.parse().ok()?;
                (n, n)
            }
        };
        Some(Self {
            partition: partition.to_string(),
            first,
            last,
        })
    }

    fn covers(&self, other: &SegmentKey) -> bool {
        self.partition == other.partition
            && self.first <= other.first
            && other.last <= self.last
            && (self.first, self.last) != (other.first, other.last)
    }
}

/// The file name of a compacted segment covering WAL numbers `first..=last`.
pub fn compacted_name(first: u64, last: u64) -> String {
    format!("{first:020}-{last:020}.parquet")
}

/// Segments that are superseded by a compacted segment of their partition (left by a
/// compaction cut short): readers skip them, maintenance deletes them.
pub fn superseded(listed: &[Listed]) -> std::collections::BTreeSet<String> {
    let keys: Vec<(String, SegmentKey)> = listed
        .iter()
        .filter_map(|l| SegmentKey::parse(&l.key).map(|k| (l.key.clone(), k)))
        .collect();
    let mut out = std::collections::BTreeSet::new();
    for (key, k) in &keys {
        if keys.iter().any(|(_, other)| other.covers(k)) {
            out.insert(key.clone());
        }
    }
    out
}

/// What one maintenance run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintained {
    pub expired: usize,
    pub evicted: usize,
    pub compacted: usize,
    pub superseded: usize,
}

/// The start of the partition's hour, from its `<date>/<hour>` parts.
fn hour_start(partition: &str) -> Option<SystemTime> {
    crate::segment::hour_of(partition)
}

/// One run: drop superseded segments, expire by age, evict by size, compact finished hours.
/// `converted_below`: every WAL number below it is in segments (no live WAL file has it).
pub async fn maintain(
    sink: &dyn PredictionSink,
    policy: &Retention,
    converted_below: u64,
    now: SystemTime,
) -> Result<Maintained, CaptureError> {
    let mut done = Maintained::default();
    let listed: Vec<Listed> = sink
        .list("")
        .await?
        .into_iter()
        .filter(|l| l.key.ends_with(".parquet"))
        .collect();
    let stale = superseded(&listed);
    for key in &stale {
        sink.delete(key).await?;
        done.superseded += 1;
    }
    let mut live: Vec<(Listed, SegmentKey, SystemTime)> = listed
        .into_iter()
        .filter(|l| !stale.contains(&l.key))
        .filter_map(|l| {
            let k = SegmentKey::parse(&l.key)?;
            let start = hour_start(&k.partition).unwrap_or(SystemTime::UNIX_EPOCH);
            Some((l, k, start))
        })
        .collect();
    live.sort_by_key(|a| (a.2, a.1.first));
    let hour = Duration::from_secs(3600);
    if let Some(max_age) = policy.max_age {
        let mut kept = Vec::with_capacity(live.len());
        for item in live {
            let ended = item.2 + hour;
            if now.duration_since(ended).is_ok_and(|past| past > max_age) {
                sink.delete(&item.0.key).await?;
                done.expired += 1;
            } else {
                kept.push(item);
            }
        }
        live = kept;
    }
    if let Some(max_bytes) = policy.max_bytes {
        let mut total: u64 = live.iter().map(|i| i.0.size).sum();
        let mut kept = Vec::with_capacity(live.len());
        for item in live {
            if total > max_bytes {
                total -= item.0.size;
                sink.delete(&item.0.key).await?;
                done.evicted += 1;
            } else {
                kept.push(item);
            }
        }
        live = kept;
    }
    if policy.compact_below > 0 {
        done.compacted = compact(sink, policy, &live, converted_below, now).await?;
    }
    Ok(done)
}

async fn compact(
    sink: &dyn PredictionSink,
    policy: &Retention,
    live: &[(Listed, SegmentKey, SystemTime)],
    converted_below: u64,
    now: SystemTime,
) -> Result<usize, CaptureError> {
    let mut by_partition: BTreeMap<&str, Vec<&(Listed, SegmentKey, SystemTime)>> = BTreeMap::new();
    for item in live {
        by_partition
            .entry(&item.1.partition)
            .or_default()
            .push(item);
    }
    let mut compacted = 0;
    for (partition, items) in by_partition {
        let finished = items.first().is_some_and(|i| {
            now.duration_since(i.2)
                .is_ok_and(|d| d > Duration::from_secs(3600))
        });
        let small: Vec<_> = items
            .iter()
            .filter(|i| i.0.size < policy.compact_below && i.1.last < converted_below)
            .collect();
        if !finished || small.len() < 2 {
            continue;
        }
        let mut records: Vec<Record> = Vec::new();
        for item in &small {
            let bytes = sink.get(&item.0.key).await?;
            records.extend(crate::query::read_all(bytes, &item.0.key)?);
        }
        let first = small.iter().map(|i| i.1.first).min().unwrap_or(0);
        let last = small.iter().map(|i| i.1.last).max().unwrap_or(0);
        let key = format!("{partition}/{}", compacted_name(first, last));
        sink.put(&key, segment::encode(&records)?).await?;
        for item in &small {
            sink.delete(&item.0.key).await?;
        }
        compacted += small.len();
    }
    Ok(compacted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_parse_single_and_ranges() {
        let k = SegmentKey::parse("m/1/2026-12-06/04/00000000000000000007.parquet").unwrap();
        assert_eq!((k.first, k.last), (7, 7));
        let r = SegmentKey::parse(&format!("m/1/2026-12-06/04/{}", compacted_name(3, 9))).unwrap();
        assert_eq!((r.first, r.last), (3, 9));
        assert!(r.covers(&k));
        assert!(!k.covers(&r));
        assert!(!r.covers(&r.clone()));
        assert!(SegmentKey::parse("m/x.txt").is_none());
    }
}
