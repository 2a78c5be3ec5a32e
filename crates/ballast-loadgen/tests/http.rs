//! The load generator against a tiny in-test OIP v2 HTTP server (axum on port 0) that checks
//! every request body and answers according to a scripted behaviour.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ballast_loadgen::{
    LiveStats, Mode, ModelMeta, Payloads, Protocol, Report, RunConfig, Target, TensorMeta,
    fetch_metadata, random_payloads, run,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Behaviour {
    /// 200, except 429 for every 5th request.
    EveryFifthRejected,
    /// 200, 429, 503, 504, 500 in turn.
    StatusCycle,
    /// Sleeps, then 200.
    Sleep(Duration),
    /// Sleeps, then 200, one request at a time (an overloaded single-worker server).
    Serial(Duration),
}

struct Server {
    behaviour: Behaviour,
    requests: AtomicU64,
    bad: AtomicU64,
    versions: std::sync::Mutex<Vec<String>>,
    serial: tokio::sync::Mutex<()>,
}

/// Checks an OIP v2 request body: JSON header, and binary sections that add up.
fn check_body(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let (json, binary) = match headers.get("inference-header-content-length") {
        Some(v) => {
            let n: usize = v
                .to_str()
                .map_err(|e| e.to_string())?
                .parse()
                .map_err(|e| format!("{e}"))?;
            if n > body.len() {
                return Err(format!("header length {n} > body {}", body.len()));
            }
            (&body[..n], &body[n..])
        }
        None => (body, &[][..]),
    };
    let v: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let inputs = v["inputs"].as_array().ok_or("no inputs")?;
    let mut binary_len = 0;
    for input in inputs {
        match input["parameters"]["binary_data_size"].as_u64() {
            Some(n) => binary_len += n as usize,
            None if input["data"].is_array() => {}
            None => return Err(format!("input without data: {input}")),
        }
    }
    if binary_len != binary.len() {
        return Err(format!(
            "binary sections declare {binary_len} bytes, body has {}",
            binary.len()
        ));
    }
    Ok(())
}

async fn infer(
    State(s): State<Arc<Server>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if params.get("model").map(String::as_str) != Some("m") {
        return (StatusCode::NOT_FOUND, "unknown model").into_response();
    }
    if let Some(v) = params.get("version") {
        s.versions.lock().unwrap().push(v.clone());
    }
    if let Err(e) = check_body(&headers, &body) {
        s.bad.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let ok = || (StatusCode::OK, r#"{"model_name":"m","outputs":[]}"#).into_response();
    match s.behaviour {
        Behaviour::EveryFifthRejected if n % 5 == 4 => {
            (StatusCode::TOO_MANY_REQUESTS, "queue full").into_response()
        }
        Behaviour::EveryFifthRejected => ok(),
        Behaviour::StatusCycle => match n % 5 {
            0 => ok(),
            1 => StatusCode::TOO_MANY_REQUESTS.into_response(),
            2 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            3 => StatusCode::GATEWAY_TIMEOUT.into_response(),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        },
        Behaviour::Sleep(d) => {
            tokio::time::sleep(d).await;
            ok()
        }
        Behaviour::Serial(d) => {
            let _turn = s.serial.lock().await;
            tokio::time::sleep(d).await;
            ok()
        }
    }
}

async fn metadata(Path(params): Path<HashMap<String, String>>) -> Response {
    if params.get("model").map(String::as_str) != Some("m") {
        return (StatusCode::NOT_FOUND, r#"{"error":"no such model"}"#).into_response();
    }
    axum::Json(json!({
        "name": "m",
        "versions": [params.get("version").cloned().unwrap_or_else(|| "1".into())],
        "platform": "test",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}, {"name": "k", "datatype": "INT64", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]
    }))
    .into_response()
}

async fn serve(behaviour: Behaviour) -> (Arc<Server>, Target) {
    let server = Arc::new(Server {
        behaviour,
        requests: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        versions: std::sync::Mutex::new(Vec::new()),
        serial: tokio::sync::Mutex::new(()),
    });
    let router = Router::new()
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer))
        .route("/v2/models/{model}", get(metadata))
        .route("/v2/models/{model}/versions/{version}", get(metadata))
        .with_state(Arc::clone(&server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (server, target(addr))
}

fn target(addr: SocketAddr) -> Target {
    Target {
        http_url: format!("http://{addr}"),
        grpc_url: format!("http://{addr}"),
        model: "m".into(),
        version: None,
    }
}

fn meta() -> ModelMeta {
    ModelMeta {
        name: "m".into(),
        inputs: vec![
            TensorMeta {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 4],
            },
            TensorMeta {
                name: "s".into(),
                datatype: "BYTES".into(),
                shape: vec![-1],
            },
        ],
        outputs: vec![],
    }
}

fn payloads(binary: bool) -> Payloads {
    random_payloads(&meta(), 2, 8, binary, 1).unwrap()
}

fn config(mode: Mode, duration_ms: u64) -> RunConfig {
    RunConfig {
        protocol: Protocol::Http,
        mode,
        duration: Duration::from_millis(duration_ms),
        warmup: Duration::ZERO,
        request_timeout: Duration::from_secs(5),
        connections: 0,
    }
}

async fn quiet_run(target: &Target, config: &RunConfig, payloads: &Payloads) -> Report {
    run(target, config, payloads, |_: &LiveStats| {})
        .await
        .unwrap()
}

fn assert_outcomes_add_up(r: &Report) {
    assert_eq!(
        r.sent,
        r.ok + r.rejected + r.unavailable + r.timeouts + r.errors,
        "{r:?}"
    );
    assert_eq!(r.latency_ok.count, r.ok, "{r:?}");
    assert_eq!(r.latency_rejected.count, r.rejected, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_ok_and_rejected_exactly() {
    let (server, target) = serve(Behaviour::EveryFifthRejected).await;
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 4 }, 1_000),
        &payloads(true),
    )
    .await;
    let served = server.requests.load(Ordering::Relaxed);
    assert_eq!(server.bad.load(Ordering::Relaxed), 0);
    assert!(served > 20, "only {served} requests in a second");
    assert_eq!(r.sent, served, "{r:?}");
    assert_eq!(r.rejected, served / 5, "{r:?}");
    assert_eq!(r.ok, served - served / 5, "{r:?}");
    assert_eq!(
        (r.unavailable, r.timeouts, r.errors, r.client_dropped),
        (0, 0, 0, 0)
    );
    assert_outcomes_add_up(&r);
    assert_eq!(r.first_error, None);
    assert_eq!(
        (r.protocol.as_str(), r.mode.as_str(), r.concurrency),
        ("http", "closed", Some(4))
    );
    assert!((r.throughput_ok_per_s - r.ok as f64).abs() < 1e-9);
    assert!(r.latency_ok.p50_us > 0.0 && r.latency_ok.p50_us <= r.latency_ok.p99_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_payloads_and_versions_reach_the_server() {
    let (server, mut target) = serve(Behaviour::EveryFifthRejected).await;
    target.version = Some("7".into());
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 2 }, 300),
        &payloads(false),
    )
    .await;
    assert_eq!(server.bad.load(Ordering::Relaxed), 0);
    assert!(r.ok > 0 && r.errors == 0, "{r:?}");
    let versions = server.versions.lock().unwrap();
    assert_eq!(versions.len() as u64, r.sent);
    assert!(versions.iter().all(|v| v == "7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_are_sent_but_not_recorded() {
    let (server, target) = serve(Behaviour::EveryFifthRejected).await;
    let mut c = config(Mode::Closed { concurrency: 2 }, 500);
    c.warmup = Duration::from_millis(500);
    let r = quiet_run(&target, &c, &payloads(true)).await;
    let served = server.requests.load(Ordering::Relaxed);
    assert!(r.sent > 0 && r.sent < served, "sent {} of {served}", r.sent);
    assert!((r.duration_s - 0.5).abs() < 1e-9);
    assert_outcomes_add_up(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_rate_times_duration() {
    let (server, target) = serve(Behaviour::EveryFifthRejected).await;
    let c = config(Mode::Open { rate: 200.0 }, 2_000);
    let started = Instant::now();
    let r = quiet_run(&target, &c, &payloads(true)).await;
    let wall = started.elapsed();
    assert!((280..=520).contains(&r.sent), "{r:?}");
    // The schedule is exact: 200/s for 2 s is 400 requests, every one sent or dropped.
    assert_eq!(r.sent + r.client_dropped, 400, "{r:?}");
    assert_eq!(server.requests.load(Ordering::Relaxed), r.sent);
    assert_eq!(r.rejected, r.sent / 5);
    assert_outcomes_add_up(&r);
    assert_eq!((r.mode.as_str(), r.offered_rate), ("open", Some(200.0)));
    assert!(
        wall >= Duration::from_millis(1_990) && wall < Duration::from_secs(4),
        "{wall:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_runs_from_the_intended_send_time() {
    // One request at a time, 50 ms each: at most 20 req/s. Offered 40 req/s for 1 s, the
    // requests queue and the last ones are ~1 s late; a closed loop of one would only ever
    // see 50 ms.
    let (_server, target) = serve(Behaviour::Serial(Duration::from_millis(50))).await;
    let open = config(Mode::Open { rate: 40.0 }, 1_000);
    let r = quiet_run(&target, &open, &payloads(true)).await;
    assert_eq!(r.ok, 40, "{r:?}");
    assert!(r.latency_ok.p99_us > 700_000.0, "{:?}", r.latency_ok);
    assert!(r.latency_ok.p50_us > 300_000.0, "{:?}", r.latency_ok);

    let closed = config(Mode::Closed { concurrency: 1 }, 1_000);
    let r = quiet_run(&target, &closed, &payloads(true)).await;
    assert!(r.ok >= 5, "{r:?}");
    assert!(
        r.latency_ok.p50_us >= 50_000.0 && r.latency_ok.p50_us < 200_000.0,
        "{:?}",
        r.latency_ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_map_to_outcomes() {
    let (server, target) = serve(Behaviour::StatusCycle).await;
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 1 }, 500),
        &payloads(true),
    )
    .await;
    let t = server.requests.load(Ordering::Relaxed);
    // Requests 0..t, status by n % 5: count of n with n % 5 == k is (t + 4 - k) / 5.
    let expect = |k: u64| (t + 4 - k) / 5;
    assert_eq!(r.sent, t);
    assert_eq!(
        (r.ok, r.rejected, r.unavailable, r.timeouts, r.errors),
        (expect(0), expect(1), expect(2), expect(3), expect(4)),
        "{r:?}"
    );
    assert_outcomes_add_up(&r);
    let e = r.first_error.unwrap();
    assert!(e.contains("500") && e.contains("boom"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_timeouts_are_counted_and_the_run_ends() {
    let (_server, target) = serve(Behaviour::Sleep(Duration::from_secs(30))).await;
    let mut c = config(Mode::Closed { concurrency: 2 }, 500);
    c.request_timeout = Duration::from_millis(100);
    let started = Instant::now();
    let r = quiet_run(&target, &c, &payloads(true)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        r.timeouts >= 4 && r.ok == 0 && r.timeouts == r.sent,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_gives_errors_not_a_failed_run() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = target(listener.local_addr().unwrap());
    drop(listener);
    let started = Instant::now();
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 2 }, 300),
        &payloads(true),
    )
    .await;
    assert!(r.errors > 0 && r.ok == 0 && r.sent == r.errors, "{r:?}");
    assert!(r.first_error.is_some());
    let r = quiet_run(
        &target,
        &config(Mode::Open { rate: 100.0 }, 300),
        &payloads(true),
    )
    .await;
    assert_eq!((r.sent, r.errors), (30, 30), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_come_about_once_a_second() {
    let (_server, target) = serve(Behaviour::EveryFifthRejected).await;
    let mut ticks: Vec<LiveStats> = Vec::new();
    let c = config(Mode::Closed { concurrency: 2 }, 2_500);
    run(&target, &c, &payloads(true), |s: &LiveStats| {
        ticks.push(s.clone())
    })
    .await
    .unwrap();
    assert!((2..=3).contains(&ticks.len()), "{ticks:?}");
    assert!(
        ticks
            .iter()
            .all(|t| t.ok_per_sec > 0.0 && t.rejected_per_sec > 0.0 && t.p50 > Duration::ZERO)
    );
    assert!(ticks[1].elapsed > ticks[0].elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_fetched_and_drives_the_payloads() {
    let (server, mut target) = serve(Behaviour::EveryFifthRejected).await;
    let meta = fetch_metadata(&target).await.unwrap();
    assert_eq!(meta.name, "m");
    assert_eq!(
        meta.inputs[0],
        TensorMeta {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 4]
        }
    );
    let p = random_payloads(&meta, 3, 4, true, 9).unwrap();
    let r = quiet_run(&target, &config(Mode::Closed { concurrency: 1 }, 200), &p).await;
    assert!(r.ok > 0 && r.errors == 0, "{r:?}");
    assert_eq!(server.bad.load(Ordering::Relaxed), 0);

    target.version = Some("3".into());
    assert_eq!(fetch_metadata(&target).await.unwrap().name, "m");
    target.model = "nope".into();
    let e = fetch_metadata(&target).await.unwrap_err().to_string();
    assert!(e.contains("404") && e.contains("no such model"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_fail_before_sending() {
    let (server, target) = serve(Behaviour::EveryFifthRejected).await;
    let c = config(Mode::Closed { concurrency: 1 }, 100);
    assert!(
        run(&target, &c, &Payloads::default(), |_: &LiveStats| {})
            .await
            .is_err()
    );
    let mut bad_url = target.clone();
    bad_url.http_url = "nonsense".into();
    assert!(
        run(&bad_url, &c, &payloads(true), |_: &LiveStats| {})
            .await
            .is_err()
    );
    assert_eq!(server.requests.load(Ordering::Relaxed), 0);
}
