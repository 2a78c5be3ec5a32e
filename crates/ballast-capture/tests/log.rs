//! The prediction log end to end on real files: durable commits, the bounded queue, recovery
//! of a WAL left by a process that died (torn tail included), and queries that see every
//! record exactly once whether it is in a segment or still in the WAL.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ballast_capture::query::{self, Query};
use ballast_capture::record::{Record, Status};
use ballast_capture::sink::{LocalSink, PredictionSink};
use ballast_capture::{LogOptions, PredictionLog, Refusal, wal};
use ballast_core::{Tensor, TensorData};

fn record(id: usize, model: &str) -> Record {
    Record {
        id_generated: false,
        id: format!("req-{id}"),
        trace_id: None,
        time_us: 1_765_000_000_000_000 + id as i64,
        tenant: String::new(),
        model: model.into(),
        version: "1".into(),
        requested: None,
        arm: None,
        protocol: "http".into(),
        priority: "default".into(),
        status: Status::Ok,
        code: None,
        queue_us: Some(1),
        engine_us: Some(2),
        batch_rows: Some(1),
        total_us: 5,
        input_schema: "0".into(),
        parameters: None,
        inputs: vec![Tensor::new("x", vec![1, 2], TensorData::F32(vec![id as f32, 0.5])).unwrap()],
        outputs: vec![Tensor::new("y", vec![1], TensorData::F32(vec![0.25])).unwrap()],
    }
}

fn open(dir: &std::path::Path) -> (PredictionLog, Arc<dyn PredictionSink>) {
    let sink: Arc<dyn PredictionSink> =
        Arc::new(LocalSink::new(dir.join("logs/segments")).unwrap());
    let log = PredictionLog::open(LogOptions::new(dir.join("logs")), sink.clone()).unwrap();
    (log, sink)
}

async fn ids(sink: &dyn PredictionSink, dir: &std::path::Path, model: &str) -> Vec<String> {
    let mut out = Vec::new();
    let q = Query {
        model: model.into(),
        ..Query::default()
    };
    let wal_dir = wal::dir(&dir.join("logs"));
    query::run(sink, Some(&wal_dir), &q, |r| {
        out.push(r.id.clone());
        true
    })
    .await
    .unwrap();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_commits_are_answered_and_every_record_is_read_back_once() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink) = open(dir.path());
    let log = Arc::new(log);
    let mut waits = Vec::new();
    for i in 0..500 {
        let r = log.reserve().unwrap();
        waits.push(tokio::spawn(log.commit(r, record(i, "m"), None)));
    }
    for w in waits {
        w.await.unwrap().unwrap();
    }
    // Acknowledged means on disk: visible in the WAL before any roll.
    let mut expected: Vec<String> = (0..500).map(|i| format!("req-{i}")).collect();
    expected.sort();
    assert_eq!(ids(sink.as_ref(), dir.path(), "m").await, expected);
    // After a flush they are in a segment, and still seen once.
    log.flush().await.unwrap();
    let segments = sink.list("m").await.unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert_eq!(ids(sink.as_ref(), dir.path(), "m").await, expected);
    assert!(ids(sink.as_ref(), dir.path(), "other").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_reservations_until_one_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn PredictionSink> =
        Arc::new(LocalSink::new(dir.path().join("logs/segments")).unwrap());
    let mut options = LogOptions::new(dir.path().join("logs"));
    options.max_pending_records = 2;
    let log = PredictionLog::open(options, sink).unwrap();
    let a = log.reserve().unwrap();
    let _b = log.reserve().unwrap();
    assert_eq!(log.reserve().err(), Some(Refusal::Full));
    assert!(
        !log.offer(record(1, "m"), None),
        "buffered records are dropped when full"
    );
    drop(a);
    assert!(log.reserve().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_left_by_a_dead_process_is_recovered_into_segments_without_its_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = wal::dir(&dir.path().join("logs"));
    {
        let mut w = wal::WalWriter::create(&wal_dir, 41).unwrap();
        let mut buf = Vec::new();
        for i in 0..10 {
            wal::frame(&record(i, "m"), &mut buf);
        }
        // Half of an eleventh frame: written after the last fsync, never acknowledged.
        let mut torn = Vec::new();
        wal::frame(&record(10, "m"), &mut torn);
        buf.extend_from_slice(&torn[..torn.len() / 2]);
        w.append(&buf).unwrap();
        w.sync().unwrap();
    }
    let (log, sink) = open(dir.path());
    log.flush().await.unwrap();
    let mut expected: Vec<String> = (0..10).map(|i| format!("req-{i}")).collect();
    expected.sort();
    assert_eq!(ids(sink.as_ref(), dir.path(), "m").await, expected);
    let keys: Vec<String> = sink
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.ends_with("00000000000000000041.parquet")),
        "{keys:?}"
    );
    assert!(
        wal::list(&wal_dir)
            .unwrap()
            .iter()
            .all(|(seq, _)| *seq > 41)
    );
    // Opening again recovers nothing twice.
    drop(log);
    let (log, sink) = open(dir.path());
    log.flush().await.unwrap();
    assert_eq!(ids(sink.as_ref(), dir.path(), "m").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_writes_buffered_records_and_rolls_the_wal_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sink) = open(dir.path());
    for i in 0..100 {
        assert!(log.offer(record(i, "b"), None));
    }
    log.close();
    assert_eq!(ids(sink.as_ref(), dir.path(), "b").await.len(), 100);
    let wal_dir = wal::dir(&dir.path().join("logs"));
    assert!(
        wal::list(&wal_dir).unwrap().is_empty(),
        "every WAL file converted"
    );
    assert!(log.reserve().is_ok() || log.stopped().is_none());
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_log_on_the_same_directory_is_refused_naming_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let (_first, _) = open(dir.path());
    let sink: Arc<dyn PredictionSink> =
        Arc::new(LocalSink::new(dir.path().join("logs/segments")).unwrap());
    let Err(e) = PredictionLog::open(LogOptions::new(dir.path().join("logs")), sink) else {
        panic!("a second log opened on the same directory");
    };
    assert!(e.to_string().contains("--data-dir"), "{e}");
}

fn at(id: usize, time: std::time::SystemTime) -> Record {
    let mut r = record(id, "m");
    r.time_us = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    r
}

async fn put(sink: &dyn PredictionSink, name: &str, records: &[Record]) {
    let key = format!(
        "{}/{name}",
        ballast_capture::segment::partition("m", "1", records[0].time_us)
    );
    sink.put(&key, ballast_capture::segment::encode(records).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_old_hours_and_compaction_keeps_every_record_once() {
    use ballast_capture::retention::{Retention, compacted_name, maintain};
    use ballast_capture::segment::file_name;
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(dir.path().join("logs/segments")).unwrap();
    let now = std::time::SystemTime::now();
    let old = now - Duration::from_secs(40 * 24 * 3600);
    let earlier = now - Duration::from_secs(3 * 3600);
    put(&sink, &file_name(1), &[at(1, old)]).await;
    // A finished hour with three small segments.
    put(&sink, &file_name(2), &[at(2, earlier), at(3, earlier)]).await;
    put(&sink, &file_name(3), &[at(4, earlier)]).await;
    put(&sink, &file_name(4), &[at(5, earlier)]).await;
    // A compaction cut short in another hour: the range and its originals both there.
    let other = now - Duration::from_secs(5 * 3600);
    put(&sink, &file_name(5), &[at(6, other)]).await;
    put(&sink, &file_name(6), &[at(7, other)]).await;
    put(&sink, &compacted_name(5, 6), &[at(6, other), at(7, other)]).await;
    // Queries read each record once, before maintenance too.
    assert_eq!(ids(&sink, dir.path(), "m").await.len(), 7);
    let done = maintain(&sink, &Retention::default(), 100, now)
        .await
        .unwrap();
    assert_eq!((done.expired, done.superseded), (1, 2), "{done:?}");
    assert_eq!(done.compacted, 3, "{done:?}");
    let keys: Vec<String> = sink
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().any(|k| k.ends_with(&compacted_name(2, 4))),
        "{keys:?}"
    );
    let mut expected: Vec<String> = (2..=7).map(|i| format!("req-{i}")).collect();
    expected.sort();
    assert_eq!(ids(&sink, dir.path(), "m").await, expected);
    // A size bound evicts the oldest hours first.
    let tight = Retention {
        max_bytes: Some(1),
        ..Retention::default()
    };
    let done = maintain(&sink, &tight, 100, now).await.unwrap();
    assert_eq!(done.evicted, 2, "{done:?}");
    assert!(ids(&sink, dir.path(), "m").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_log_for_good_and_is_never_retried() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn PredictionSink> =
        Arc::new(LocalSink::new(dir.path().join("logs/segments")).unwrap());
    let syncs = Arc::new(AtomicUsize::new(0));
    let mut options = LogOptions::new(dir.path().join("logs"));
    let counter = syncs.clone();
    // The third fsync fails, as a disk error would report it.
    options.sync_fault = Some(Arc::new(move || {
        (counter.fetch_add(1, Ordering::SeqCst) == 2)
            .then(|| std::io::Error::other("EIO (injected)"))
    }));
    let log = PredictionLog::open(options, sink.clone()).unwrap();
    for i in 0..2 {
        let r = log.reserve().unwrap();
        log.commit(r, record(i, "m"), None).await.unwrap();
    }
    let r = log.reserve().unwrap();
    let e = log.commit(r, record(2, "m"), None).await.unwrap_err();
    assert!(e.to_string().contains("EIO (injected)"), "{e}");
    // Stopped: no reservation, nothing acknowledged, no further fsync attempted.
    assert!(matches!(log.reserve(), Err(Refusal::Stopped(why)) if why.contains("EIO")));
    assert!(!log.offer(record(3, "m"), None));
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        3,
        "the failed fsync was retried"
    );
    assert!(log.stopped().is_some());
    // What was acknowledged before the failure is on disk.
    let logged = ids(sink.as_ref(), dir.path(), "m").await;
    assert!(logged.contains(&"req-0".to_string()) && logged.contains(&"req-1".to_string()));
}
