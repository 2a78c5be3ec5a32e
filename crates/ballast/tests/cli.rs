//! The built binary, as an operator runs it: configuration errors, serve + SIGTERM drain, demo.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

#[test]
fn bad_configuration_lists_every_problem_and_exits_64() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--host",
            "not-an-ip",
            "--max-request-bytes",
            "10",
            "--model-repository",
            "/nonexistent/models",
        ])
        .env_remove("BALLAST_MODEL_REPOSITORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for fragment in [
        "host",
        "not-an-ip",
        "model_repository: /nonexistent/models is not a directory",
        "max_request_bytes",
    ] {
        assert!(err.contains(fragment), "stderr lacks {fragment:?}:\n{err}");
    }
}

#[test]
fn environment_and_config_file_feed_settings_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.toml");
    std::fs::write(&file, "http_port = 9\nunknown_key = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env("BALLAST_HOST", "also-not-an-ip")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown_key"),
        "unknown file keys are rejected:\n{err}"
    );
}

#[test]
fn serve_becomes_ready_then_drains_on_sigterm_and_exits_0() {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--log-format",
            "json",
            "--model-repository",
        ])
        .arg(examples())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    let mut http = None;
    while let Some(Ok(line)) = lines.next() {
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        if v["fields"]["message"] == "ready" {
            http = v["fields"]["http"].as_str().map(str::to_string);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready in time"
        );
    }
    let http = http.expect("a ready line with the HTTP address");
    let ready = reqwest::blocking_get(&format!("http://{http}/v2/health/ready"));
    assert_eq!(ready, 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "logs after SIGTERM: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

#[test]
fn demo_serves_and_drives_traffic_then_exits() {
    let out = Command::new(BIN)
        .args([
            "demo",
            "--phase-secs",
            "1",
            "--no-serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for fragment in ["Phase 1", "Phase 2", "Phase 3", "curl", "ok/s"] {
        assert!(
            stdout.contains(fragment),
            "demo output lacks {fragment:?}:\n{stdout}"
        );
    }
}

mod reqwest {
    /// A tiny blocking GET over a fresh runtime: the status code.
    pub fn blocking_get(url: &str) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().status().as_u16() })
    }
}
