//! Prediction log throughput: durable commits (each waits for its group commit's fsync) from
//! many concurrent requests, and buffered offers, on real files. Prints records/s, the
//! acknowledgement latency (p50/p99/max) and the mean group size, and the ratio of durable
//! to buffered throughput measured in the same run.
//!
//! `cargo bench -p ballast-capture --bench log` (set `BALLAST_LOG_BENCH_DIR` to put the WAL on
//! another disk, `BALLAST_LOG_BENCH_SECS` for longer runs; pin it with `taskset -c 0` to
//! measure one core, as the server runs).
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_capture::record::{Record, Status};
use ballast_capture::sink::{LocalSink, PredictionSink};
use ballast_capture::{LogOptions, PredictionLog};
use ballast_core::{Tensor, TensorData};

fn record(i: u64) -> Record {
    Record {
        id_generated: false,
        id: format!("{i:032x}"),
        trace_id: None,
        time_us: 1_765_000_000_000_000 + i as i64,
        tenant: String::new(),
        model: "fraud".into(),
        version: "2".into(),
        requested: Some("production".into()),
        arm: None,
        protocol: "http".into(),
        priority: "default".into(),
        status: Status::Ok,
        code: None,
        queue_us: Some(40),
        engine_us: Some(25),
        batch_rows: Some(8),
        total_us: 90,
        input_schema: "0123456789abcdef".into(),
        parameters: None,
        inputs: vec![Tensor::new("features", vec![1, 12], TensorData::F32(vec![0.5; 12])).unwrap()],
        outputs: vec![Tensor::new("probability", vec![1], TensorData::F32(vec![0.1])).unwrap()],
    }
}

fn open(dir: &std::path::Path) -> Arc<PredictionLog> {
    let sink: Arc<dyn PredictionSink> =
        Arc::new(LocalSink::new(dir.join("logs/segments")).unwrap());
    let mut o = LogOptions::new(dir.join("logs"));
    // Measure the WAL path, not segment conversion racing it.
    o.roll_interval = Duration::from_secs(3600);
    o.roll_bytes = 1 << 40;
    Arc::new(PredictionLog::open(o, sink).unwrap())
}

fn durable(
    dir: &std::path::Path,
    secs: f64,
    concurrency: u64,
) -> (f64, hdrhistogram::Histogram<u64>) {
    let log = open(dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (n, hist) = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                let mut i = t << 40;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let r = log.reserve().unwrap();
                    log.commit(r, record(i), None).await.unwrap();
                    h.record(start.elapsed().as_micros() as u64).unwrap();
                    i += 1;
                    n += 1;
                }
                (n, h)
            }));
        }
        let mut total = 0;
        let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for t in tasks {
            let (n, h) = t.await.unwrap();
            total += n;
            hist.add(h).unwrap();
        }
        (total, hist)
    });
    log.close();
    (n as f64 / secs, hist)
}

fn buffered(dir: &std::path::Path, secs: f64) -> (f64, u64) {
    let log = open(dir);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut offered, mut dropped) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..256 {
            if !log.offer(record(offered), None) {
                dropped += 1;
            }
            offered += 1;
        }
    }
    log.close();
    ((offered - dropped) as f64 / secs, dropped)
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let secs: f64 = std::env::var("BALLAST_LOG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let base =
        std::env::var("BALLAST_LOG_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let mut frame = Vec::new();
    ballast_capture::wal::frame(&record(0), &mut frame);
    println!(
        "prediction log bench: {secs} s per case, WAL in {}, {} bytes per framed record",
        base.display(),
        frame.len()
    );
    let buf_dir = tempfile::tempdir_in(&base).unwrap();
    let (buffered_rate, dropped) = buffered(buf_dir.path(), secs);
    println!(
        "  buffered offers (one producer): {buffered_rate:>10.0} records/s written ({dropped} dropped at the queue bound)"
    );
    for concurrency in [64, 512] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let (rate, h) = durable(dir.path(), secs, concurrency);
        println!(
            "  durable, {concurrency:>3} concurrent requests: {rate:>10.0} records/s   ack p50 {:>6} us  p99 {:>6} us  max {:>6} us   durable/buffered {:.2}",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max(),
            rate / buffered_rate
        );
    }
}
