//! Prediction logs through the real binary: every request served (and refused or failed) is
//! on record, `ballast logs query` finds it, SIGTERM under load loses nothing acknowledged,
//! and a kill -9 loop under heavy durable logging loses and duplicates nothing.
//!
//! `BALLAST_KILL_LOOP_ITERATIONS` sets the kill loop's length (50 by default, as in CI;
//! `bench/kill_loop.sh` runs 1,000).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

/// A repository with the fraud model's first version only (quick to start), with `config`
/// as its config.toml.
fn repository(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("fraud");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::copy(
        examples().join("fraud/1/model.onnx"),
        model.join("1/model.onnx"),
    )
    .unwrap();
    std::fs::write(model.join("config.toml"), config).unwrap();
    dir
}

struct Server {
    child: Child,
    http: String,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
}

fn spawn(repo: &Path, data: &Path) -> Child {
    spawn_with(Some(repo), data, &["--no-monitor"])
}

/// `ballast serve` over `repo` (`None`: the registry in `data`) with JSON logs.
fn spawn_with(repo: Option<&Path>, data: &Path, extra: &[&str]) -> Child {
    let mut serve = Command::new(BIN);
    serve
        .args([
            "serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--admin-port",
            "0",
            "--log-format",
            "json",
        ])
        .args(extra);
    if let Some(repo) = repo {
        serve.arg("--model-repository").arg(repo);
    }
    serve
        .arg("--data-dir")
        .arg(data)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn start(repo: &Path, data: &Path) -> Server {
    started(spawn(repo, data))
}

fn started(mut child: Child) -> Server {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let mut http = None;
    while let Some(Ok(line)) = lines.next() {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["fields"]["message"] == "ready" {
            http = v["fields"]["http"].as_str().map(str::to_string);
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let Some(http) = http else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not become ready");
    };
    Server { child, http, lines }
}

impl Server {
    /// SIGTERM, then the exit code and every log line after it.
    fn stop(mut self) -> (Option<i32>, Vec<String>) {
        signal(&self.child, "-TERM");
        let rest: Vec<String> = self.lines.map_while(Result::ok).collect();
        (self.child.wait().unwrap().code(), rest)
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn features(i: usize) -> Vec<f32> {
    (0..12).map(|j| (i * 12 + j) as f32 / 100.0 - 1.0).collect()
}

fn body(id: &str, i: usize) -> Value {
    json!({
        "id": id,
        "inputs": [{"name": "features", "shape": [1, 12], "datatype": "FP32", "data": features(i)}],
        "parameters": {"customer": "c-7", "note": "call me at jane.doe@example.com"}
    })
}

/// `ballast logs query --json ARGS` over `data`: one object per record.
fn query(data: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["logs", "query", "--json", "--model", "fraud", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "logs query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_prediction_is_on_record_and_logs_query_finds_it() {
    let repo = repository("");
    let data = tempfile::tempdir().unwrap();
    let server = start(repo.path(), data.path());
    let url = format!("http://{}/v2/models/fraud/infer", server.http);
    let rt = runtime();
    let mut answers = BTreeMap::new();
    rt.block_on(async {
        let client = reqwest::Client::new();
        for i in 0..20 {
            let r = client.post(&url).json(&body(&format!("t-{i}"), i)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            answers.insert(format!("t-{i}"), v["outputs"][0]["data"][0].as_f64().unwrap());
        }
        let bad = json!({"id": "bad-1", "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
        let r = client.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400);
    });
    // Acknowledged means durable: readable while the server still runs (from the WAL).
    let live = query(data.path(), &[]);
    assert_eq!(live.len(), 21, "{live:#?}");
    let (code, rest) = server.stop();
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("prediction log flushed and closed")),
        "{rest:?}"
    );
    // After a clean stop every record is in a Parquet segment and the WAL is empty.
    let logs = data.path().join("logs");
    let wal: Vec<_> = std::fs::read_dir(logs.join("wal"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .collect();
    assert!(wal.is_empty(), "WAL left after a clean stop: {wal:?}");
    let records = query(data.path(), &[]);
    assert_eq!(records.len(), 21);
    for r in &records {
        for key in [
            "id", "model", "version", "time", "status", "inputs", "outputs",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    let one = query(data.path(), &["--id", "t-3"]);
    assert_eq!(one.len(), 1);
    let r = &one[0];
    assert_eq!(
        (
            r["model"].as_str(),
            r["version"].as_str(),
            r["status"].as_str()
        ),
        (Some("fraud"), Some("1"), Some("ok"))
    );
    let sent = features(3);
    let logged: Vec<f64> = r["inputs"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(logged.len(), 12);
    for (a, b) in logged.iter().zip(&sent) {
        assert!((a - f64::from(*b)).abs() < 1e-6, "{logged:?} vs {sent:?}");
    }
    let p = r["outputs"]["probability"][0].as_f64().unwrap();
    assert!(
        (p - answers["t-3"]).abs() < 1e-6,
        "logged {p}, answered {}",
        answers["t-3"]
    );
    assert_eq!(r["input_shapes"]["features"], json!([1, 12]));
    // Parameters are kept, their strings redacted before anything was written.
    assert_eq!(r["parameters"]["customer"], "c-7");
    assert_eq!(r["parameters"]["note"], "call me at <EMAIL>");
    let failed = query(data.path(), &["--where", "status = error"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "bad-1");
    assert_eq!(failed[0]["code"], "invalid_argument");
    assert_eq!(query(data.path(), &["--limit", "5"]).len(), 5);
    assert_eq!(
        query(data.path(), &["--where", "outputs.probability > 1"]).len(),
        0
    );
    assert_eq!(query(data.path(), &["--version", "2"]).len(), 0);
    assert_eq!(query(data.path(), &["--from", "1h"]).len(), 21);
    assert_eq!(
        query(data.path(), &["--to", "2000-01-01T00:00:00Z"]).len(),
        0
    );
}

/// Clients sending as fast as they can until the server goes away; the ids it answered 200.
async fn hammer(
    url: String,
    prefix: String,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut i = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let id = format!("{prefix}-{i}");
        i += 1;
        match client.post(&url).json(&body(&id, i)).send().await {
            Ok(r) if r.status() == 200 => {
                // The answer's body arrived: acknowledged.
                if r.bytes().await.is_ok() {
                    acked.lock().push(id);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Every id in the log (from segments and WAL), with how often it appears.
fn logged_ids(data: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in query(data, &[]) {
        *seen
            .entry(r["id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    seen
}

fn check_nothing_lost_nothing_twice(acked: &[String], seen: &BTreeMap<String, usize>) {
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records logged twice: {twice:?}");
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn sigterm_under_load_keeps_every_acknowledged_record_and_stops_everything_in_order() {
    let repo = repository("");
    let data = tempfile::tempdir().unwrap();
    // The monitor on: its observer thread is one of those that must stop.
    let server = started(spawn_with(Some(repo.path()), data.path(), &[]));
    let url = format!("http://{}/v2/models/fraud/infer", server.http);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rt = runtime();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            rt.spawn(hammer(
                url.clone(),
                format!("c{c}"),
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = acked.lock().len();
    let (code, rest) = server.stop();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(async {
        for c in clients {
            c.await.unwrap();
        }
    });
    assert_eq!(code, Some(0), "{rest:?}");
    let acked = acked.lock().clone();
    assert!(
        before > 100,
        "the load was real: {before} answered before SIGTERM"
    );
    check_nothing_lost_nothing_twice(&acked, &logged_ids(data.path()));
    check_stopped_in_order(&rest);
}

/// The shutdown log: the drain first, then every stage in order with nothing left running,
/// the prediction log closed after the stages.
fn check_stopped_in_order(lines: &[String]) {
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |message: &str| {
        events
            .iter()
            .position(|e| e["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no '{message}' in the shutdown log: {lines:#?}"))
    };
    let drain = at("shutdown requested: readiness off, draining in-flight requests");
    let log_closed = at("prediction log flushed and closed");
    let all = at("every background task and thread stopped");
    assert!(drain < log_closed && log_closed < all, "{lines:#?}");
    let summary = &events[all]["fields"];
    assert_eq!(
        summary["order"], "control → front → engines → observers → delivery",
        "{summary}"
    );
    // At least the model's engine thread, the monitor's observer and the door's probe.
    assert!(
        summary["threads_joined"].as_u64().unwrap() >= 3,
        "{summary}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("still running")),
        "{lines:#?}"
    );
}

#[test]
fn kill_9_loop_under_durable_logging_loses_and_duplicates_nothing() {
    let iterations: usize = std::env::var("BALLAST_KILL_LOOP_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let repo = repository("[log]\ndurability = \"durable\"\n");
    let data = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let rt = runtime();
    let mut kills_before_ready = 0;
    for it in 0..iterations {
        // Every third kill lands at a random moment of startup (recovery of the previous WAL
        // included); the others after a random stretch of heavy logging.
        if it % 3 == 2 {
            let child = spawn(repo.path(), data.path());
            std::thread::sleep(Duration::from_millis(rand::random_range(0..400)));
            signal(&child, "-KILL");
            let mut child = child;
            child.wait().unwrap();
            kills_before_ready += 1;
            continue;
        }
        let server = start(repo.path(), data.path());
        let url = format!("http://{}/v2/models/fraud/infer", server.http);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..6)
            .map(|c| {
                rt.spawn(hammer(
                    url.clone(),
                    format!("i{it}c{c}"),
                    acked.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rand::random_range(50..400)));
        let mut child = server.child;
        signal(&child, "-KILL");
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            for c in clients {
                c.await.unwrap();
            }
        });
    }
    // A last clean start recovers the final WAL; a clean stop rolls everything into segments.
    let server = start(repo.path(), data.path());
    let (code, rest) = server.stop();
    assert_eq!(code, Some(0), "{rest:?}");
    let acked = acked.lock().clone();
    assert!(
        acked.len() > iterations * 10,
        "heavy logging: only {} acknowledged",
        acked.len()
    );
    let seen = logged_ids(data.path());
    check_nothing_lost_nothing_twice(&acked, &seen);
    let ids: BTreeSet<&String> = acked.iter().collect();
    eprintln!(
        "kill loop: {iterations} kills ({kills_before_ready} during startup), {} acknowledged, {} logged (the rest were in flight when killed)",
        ids.len(),
        seen.len()
    );
}

/// `ballast` run against the registry in `data`; panics with its stderr when it fails.
fn registry_cli(data: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .env("BALLAST_DATA_DIR", data)
        .env("BALLAST_ACTOR", "test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ballast {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A shadow mirror is on record as the candidate's run of the client's request: same id, arm
/// `candidate`, priority `shadow`, with the candidate's own outputs; the client's record stays
/// the baseline's.
#[test]
fn shadow_mirrors_are_logged_as_the_candidates_runs() {
    let data = tempfile::tempdir().unwrap();
    for v in ["1", "2"] {
        let dir = examples().join(format!("fraud/{v}"));
        registry_cli(
            data.path(),
            &[
                "model",
                "push",
                dir.to_str().unwrap(),
                "--name",
                "fraud",
                "--allow-missing-card",
                "--no-check",
            ],
        );
    }
    registry_cli(
        data.path(),
        &["policy", "set", "fraud", "--shadow", "2:100"],
    );
    let server = started(spawn_with(None, data.path(), &["--no-monitor"]));
    let url = format!("http://{}/v2/models/fraud/infer", server.http);
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::new();
        for i in 0..30 {
            let r = client
                .post(&url)
                .json(&body(&format!("s-{i}"), i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    });
    let (code, rest) = server.stop();
    assert_eq!(code, Some(0), "{rest:?}");
    let records = query(data.path(), &[]);
    let baseline: Vec<&Value> = records.iter().filter(|r| r["version"] == "1").collect();
    let mirrors: Vec<&Value> = records.iter().filter(|r| r["version"] == "2").collect();
    assert_eq!(baseline.len(), 30, "{records:#?}");
    // A mirror can be dropped for capacity, never invented: at most one per request, and with
    // 30 sequential requests on an idle server, all of them.
    assert_eq!(mirrors.len(), 30, "{records:#?}");
    for m in &mirrors {
        assert_eq!(m["arm"], "candidate", "{m}");
        assert_eq!(m["priority"], "shadow", "{m}");
        assert_eq!(m["status"], "ok", "{m}");
        let id = m["id"].as_str().unwrap();
        assert!(
            baseline.iter().any(|b| b["id"] == id),
            "mirror {id} has no client request"
        );
        assert!(m["outputs"]["probability"][0].as_f64().is_some(), "{m}");
    }
    for b in &baseline {
        assert_ne!(b["priority"], "shadow", "{b}");
    }
}
