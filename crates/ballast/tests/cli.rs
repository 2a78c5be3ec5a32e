//! The built binary, as an operator runs it: configuration errors, serve + SIGTERM drain, demo.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

/// Runs `ballast serve ARGS`, expects the bad-configuration exit (64), returns stderr.
fn refused_config(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env_remove("BALLAST_MODEL_REPOSITORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh data directory for one server (its registry and prediction logs), under cargo's
/// scratch directory for integration tests.
fn scratch_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn bad_configuration_lists_every_problem_and_exits_64() {
    let err = refused_config(&[
        "--host",
        "not-an-ip",
        "--max-request-bytes",
        "10",
        "--model-repository",
        "/nonexistent/models",
    ]);
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
fn bad_alert_rules_are_named_and_need_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ballast.toml");
    std::fs::write(
        &config,
        "[[alert]]\nname = \"d\"\nsignal = \"quality\"\nop = \">\"\nthreshold = 0.1\nfor = \"soon\"\n\n[[alerting.webhook]]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"abc\"\n",
    )
    .unwrap();
    let err = refused_config(&["--no-monitor", "--config", config.to_str().unwrap()]);
    for fragment in [
        "alert[0].for",
        "alert[0].issue: required",
        "alerting.webhook[0].secret: must start with whsec_",
        "monitoring is off",
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
        .env("BALLAST_DATA_DIR", scratch_dir())
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
    for fragment in [
        "Phase 1",
        "Phase 2",
        "Phase 3",
        "Phase 6: where the predictions went",
        "records on record",
        "ballast logs query --data-dir",
        "read_parquet(",
        "curl",
        "ok/s",
        "Stopped in order (control → front → engines → observers → delivery)",
        "the prediction log flushed and closed",
    ] {
        assert!(
            stdout.contains(fragment),
            "demo output lacks {fragment:?}:\n{stdout}"
        );
    }
}

mod reqwest {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A tiny blocking GET over a fresh runtime: the status code.
    pub fn blocking_get(url: &str) -> u16 {
        runtime().block_on(async { ::reqwest::get(url).await.unwrap().status().as_u16() })
    }

    /// GET: status and body.
    pub fn get_text(url: &str) -> (u16, String) {
        runtime().block_on(async {
            let r = ::reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// POST a JSON body: status and body.
    pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, String) {
        runtime().block_on(async {
            let r = ::reqwest::Client::new()
                .post(url)
                .json(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }
}

/// Starts `ballast serve` with JSON logs and waits for its "ready" line: the child, its HTTP
/// address and the rest of its log lines.
fn serve_until_ready(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = Command::new(BIN)
        .env("BALLAST_DATA_DIR", scratch_dir())
        .args([
            "serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--log-format",
            "json",
        ])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        if v["fields"]["message"] == "ready" {
            let http = v["fields"]["http"].as_str().unwrap().to_string();
            return (child, http, lines);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready in time"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server exited before it was ready");
}

/// A repository with one good model and two broken ones (a corrupt file, a bad config).
fn repository_with_broken_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good/1");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::copy(
        examples().join("fraud/1/model.onnx"),
        good.join("model.onnx"),
    )
    .unwrap();
    let corrupt = dir.path().join("corrupt/1");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("model.onnx"),
        b"these bytes are not an ONNX model",
    )
    .unwrap();
    let misconfigured = dir.path().join("misconfigured/1");
    std::fs::create_dir_all(&misconfigured).unwrap();
    std::fs::copy(
        examples().join("fraud/1/model.onnx"),
        misconfigured.join("model.onnx"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("misconfigured/config.toml"),
        "max_batch_size = \"lots\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_model_that_fails_to_load_is_not_ready_and_the_rest_serve() {
    let repo = repository_with_broken_models();
    let (mut child, http, _lines) =
        serve_until_ready(&["--model-repository", repo.path().to_str().unwrap()]);
    let base = format!("http://{http}");
    assert_eq!(
        reqwest::blocking_get(&format!("{base}/v2/health/ready")),
        200
    );
    assert_eq!(
        reqwest::blocking_get(&format!("{base}/v2/models/good/ready")),
        200
    );
    for (model, reason) in [
        ("corrupt", "not a readable ONNX file"),
        ("misconfigured", "max_batch_size"),
    ] {
        let (status, body) = reqwest::get_text(&format!("{base}/v2/models/{model}/ready"));
        assert_eq!(status, 503, "{model}: {body}");
        assert!(
            body.contains("failed to load") && body.contains(reason),
            "{model}: {body}"
        );
        let (status, body) = reqwest::get_text(&format!("{base}/v2/models/{model}"));
        assert_eq!(status, 503, "{model} metadata: {body}");
        let (status, body) = reqwest::post_json(
            &format!("{base}/v2/models/{model}/infer"),
            &serde_json::json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [0.0]}]}),
        );
        assert_eq!(status, 503, "{model} infer: {body}");
        assert!(body.contains(reason), "{model} infer: {body}");
    }
    let (_, metrics) = reqwest::get_text(&format!("{base}/metrics"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ballast_model_load_failures_total{model=\"corrupt\"} 1")),
        "load failures are counted"
    );
    let (status, _) = reqwest::get_text(&format!("{base}/v2/models/unknown/ready"));
    assert_eq!(status, 404, "an unknown model stays unknown");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn strict_exits_when_a_model_fails_to_load() {
    let repo = repository_with_broken_models();
    let out = Command::new(BIN)
        .env("BALLAST_DATA_DIR", scratch_dir())
        .args([
            "serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--strict",
            "--model-repository",
        ])
        .arg(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt"), "{err}");
}

/// `ballast ... | head -1` ends quietly when the reader goes away: no panic message.
#[test]
fn output_commands_exit_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["model", "list"])
        .env("BALLAST_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: every write of the command hits a broken pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "exit code of a panic: {err}");
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn add_model(repo: &std::path::Path, name: &str, bytes: Option<&[u8]>) {
    let d = repo.join(format!("{name}/1"));
    std::fs::create_dir_all(&d).unwrap();
    match bytes {
        Some(b) => std::fs::write(d.join("model.onnx"), b).unwrap(),
        None => {
            std::fs::copy(examples().join("fraud/1/model.onnx"), d.join("model.onnx")).unwrap();
        }
    }
}

#[test]
fn poll_mode_picks_up_added_and_removed_models_and_sighup_rescans() {
    let dir = tempfile::tempdir().unwrap();
    add_model(dir.path(), "first", None);
    let (mut child, http, _lines) = serve_until_ready(&[
        "--model-repository",
        dir.path().to_str().unwrap(),
        "--model-control-mode",
        "poll",
        "--repository-poll-secs",
        "0.2",
    ]);
    let base = format!("http://{http}");
    add_model(dir.path(), "second", None);
    wait_for("the added model to be served", || {
        reqwest::blocking_get(&format!("{base}/v2/models/second/ready")) == 200
    });
    std::fs::remove_dir_all(dir.path().join("first")).unwrap();
    wait_for("the removed model to be unloaded", || {
        reqwest::blocking_get(&format!("{base}/v2/models/first/ready")) == 404
    });
    // A model whose new files are broken keeps serving what it had.
    std::fs::write(dir.path().join("second/1/model.onnx"), b"broken").unwrap();
    wait_for("the broken reload to be reported", || {
        let (_, body) = reqwest::post_json(
            &format!("{base}/v2/repository/index"),
            &serde_json::json!({}),
        );
        body.contains("not a readable ONNX file")
    });
    assert_eq!(
        reqwest::blocking_get(&format!("{base}/v2/models/second/ready")),
        200
    );
    // Explicit load is refused outside explicit mode, naming the flag.
    let (status, body) = reqwest::post_json(
        &format!("{base}/v2/repository/models/second/load"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--model-control-mode explicit"), "{body}");
    // SIGHUP rescans instead of killing the process.
    add_model(dir.path(), "third", None);
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the model added before SIGHUP", || {
        reqwest::blocking_get(&format!("{base}/v2/models/third/ready")) == 200
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the server"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn explicit_mode_loads_and_unloads_on_request() {
    let dir = tempfile::tempdir().unwrap();
    add_model(dir.path(), "fraud", None);
    let (mut child, http, _lines) = serve_until_ready(&[
        "--model-repository",
        dir.path().to_str().unwrap(),
        "--model-control-mode",
        "explicit",
    ]);
    let base = format!("http://{http}");
    add_model(dir.path(), "late", None);
    assert_eq!(
        reqwest::blocking_get(&format!("{base}/v2/models/late/ready")),
        404
    );
    let (status, body) = reqwest::post_json(
        &format!("{base}/v2/repository/models/late/load"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        reqwest::blocking_get(&format!("{base}/v2/models/late/ready")),
        200
    );
    let (status, body) = reqwest::post_json(
        &format!("{base}/v2/repository/models/late/unload"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        reqwest::blocking_get(&format!("{base}/v2/models/late/ready")),
        404
    );
    add_model(dir.path(), "broken", Some(b"not onnx"));
    let (status, body) = reqwest::post_json(
        &format!("{base}/v2/repository/models/broken/load"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("failed to load model 'broken'"), "{body}");
    let (status, _) = reqwest::post_json(
        &format!("{base}/v2/repository/models/nothing-here/load"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 404);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn registry_commands_refuse_what_they_cannot_mean() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("BALLAST_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["events", "--kind", "promotd"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown event kind 'promotd'") && err.contains("promoted"),
        "{err}"
    );
    let out = run(&["policy", "set", "fraud"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--canary") && err.contains("policy clear"),
        "{err}"
    );
}

/// `ballast diff` is a CI gate: exit 2 while the registry differs from the declaration, 0 once
/// `apply` made them match.
#[test]
fn diff_exits_2_while_changes_are_pending() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let v1 = root.path().join("v1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::copy(examples().join("fraud/1/model.onnx"), v1.join("model.onnx")).unwrap();
    let file = root.path().join("ballast.yaml");
    std::fs::write(
        &file,
        "models:\n  - name: fraud\n    card: {owner: risk, description: d, intended_use: u, trained_on: \"s3://x\", metrics: {auc: 0.9}}\n    versions:\n      - path: v1\n    aliases:\n      production: v1\n",
    )
    .unwrap();
    let run = |cmd: &str| {
        Command::new(BIN)
            .args([cmd])
            .arg(&file)
            .env("BALLAST_DATA_DIR", data.path())
            .output()
            .unwrap()
    };
    let out = run("diff");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("diff");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The creator comes from --actor; a re-push of the same files with another card says the card
/// was not applied (versions are immutable).
#[test]
fn push_records_the_actor_and_says_what_happened_to_a_new_card() {
    let data = tempfile::tempdir().unwrap();
    let model = examples().join("fraud/1");
    let push = |description: &str| {
        Command::new(BIN)
            .args(["model", "push"])
            .arg(&model)
            .args([
                "--name",
                "fraud",
                "--owner",
                "risk",
                "--description",
                description,
                "--intended-use",
                "tests",
                "--trained-on",
                "s3://x",
                "--metric",
                "auc=0.9",
                "--actor",
                "alice",
                "--no-check",
            ])
            .env("BALLAST_DATA_DIR", data.path())
            .env_remove("BALLAST_ACTOR")
            .output()
            .unwrap()
    };
    let out = push("first card");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = Command::new(BIN)
        .args(["model", "show", "fraud@1", "--json"])
        .env("BALLAST_DATA_DIR", data.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&show.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&show.stdout)));
    let created_by = v["created_by"]
        .as_str()
        .or_else(|| v["version"]["created_by"].as_str());
    assert_eq!(created_by, Some("alice"), "{v}");
    let out = push("second card");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("already holds this artifact") && text.contains("not applied"),
        "{text}"
    );
}

/// What a new user's first pushes meet: a refusal for a missing card names the way out, the
/// creator is the account name even with `USER` unset (never "cli"), and the model's first
/// version is production while the second waits (or none is, with `--no-promote`).
#[test]
fn a_first_push_is_production_and_records_the_os_account() {
    let data = tempfile::tempdir().unwrap();
    let push = |model: &str, version: &str, extra: &[&str]| {
        Command::new(BIN)
            .args(["model", "push"])
            .arg(examples().join(format!("fraud/{version}")))
            .args(["--name", model, "--no-check"])
            .args(extra)
            .env("BALLAST_DATA_DIR", data.path())
            .env_remove("BALLAST_ACTOR")
            .env_remove("USER")
            .env_remove("LOGNAME")
            .output()
            .unwrap()
    };
    let card = [
        "--owner",
        "risk",
        "--description",
        "d",
        "--intended-use",
        "tests",
        "--trained-on",
        "s3://x",
        "--metric",
        "auc=0.9",
    ];
    let out = push("fraud", "1", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing owner") && err.contains("--allow-missing-card"),
        "{err}"
    );

    let out = push("fraud", "1", &card);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("fraud@production → version 1"), "{text}");
    let out = push("fraud", "2", &card);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("production"));
    let mut held = card.to_vec();
    held.push("--no-promote");
    assert!(push("held", "1", &held).status.success());

    let show = |spec: &str| {
        let out = Command::new(BIN)
            .args(["model", "show", spec, "--json"])
            .env("BALLAST_DATA_DIR", data.path())
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let fraud = show("fraud");
    assert_eq!(fraud["aliases"]["production"], 1, "{fraud}");
    assert!(show("held")["aliases"].get("production").is_none());

    let account = Command::new("id").arg("-un").output().unwrap();
    let account = String::from_utf8_lossy(&account.stdout).trim().to_string();
    let v1 = show("fraud@1");
    assert_ne!(v1["created_by"], "cli", "{v1}");
    if !account.is_empty() {
        assert_eq!(v1["created_by"], account.as_str(), "{v1}");
    }
}

/// `ballast events` prints, under a rollout decision, the figures each gate decided on.
#[test]
fn events_text_shows_the_gate_figures() {
    let data = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let registry = ballast_registry::Registry::open(ballast_registry::RegistryOptions::new(
            data.path(),
        ))
        .await
        .unwrap();
        registry
            .event(
                Some("fraud"),
                "rollout_step",
                "fraud: rollout 1 of version 2 passed step 1/3 (shadow 100%); now step 2/3 (canary 25%)".into(),
                serde_json::json!({"rollout": 1, "figures": {"step": 0, "error_rate": {"candidate": 0.001, "baseline": 0.0}, "p99_latency": {"ratio": 1.04}}}),
            )
            .await
            .unwrap();
    });
    let out = Command::new(BIN)
        .args(["events", "--model", "fraud"])
        .env("BALLAST_DATA_DIR", data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("passed step 1/3 (shadow 100%)"), "{text}");
    assert!(
        text.contains("error_rate: {\"baseline\":0.0,\"candidate\":0.001}"),
        "{text}"
    );
    assert!(text.contains("p99_latency: {\"ratio\":1.04}"), "{text}");
    assert!(
        !text.contains("elapsed_secs") && !text.contains("   step:"),
        "{text}"
    );
}

#[test]
fn profile_writes_a_reference_profile_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reference.csv");
    let mut text = String::from("amount,country\n");
    for i in 0..200 {
        text.push_str(&format!("{},{}\n", i, ["FR", "DE", "US", "FR"][i % 4]));
    }
    std::fs::write(&data, text).unwrap();
    let out = dir.path().join("profile.json");
    let status = std::process::Command::new(BIN)
        .args(["profile", data.to_str().unwrap(), "--bins", "4", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(p["rows"], 200);
    assert_eq!(p["columns"][0]["kind"], "numeric");
    assert_eq!(
        p["columns"][0]["counts"],
        serde_json::json!([50, 50, 50, 50])
    );
    assert_eq!(p["columns"][1]["kind"], "categorical");
    assert_eq!(p["columns"][1]["categories"][0]["value"], "FR");
    assert_eq!(p["columns"][1]["categories"][0]["count"], 100);

    std::fs::write(&data, "a,b\n1,2\n3\n").unwrap();
    let bad = std::process::Command::new(BIN)
        .args(["profile", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("line 3"), "{err}");
}

/// Rows of `examples/data/fraud_sample.csv` (features only, label dropped).
fn fraud_rows() -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(examples().join("../data/fraud_sample.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let mut v: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
            v.pop();
            v
        })
        .collect()
}

fn monitor_report(base: &str, path: &str) -> serde_json::Value {
    let (status, body) = reqwest::get_text(&format!("{base}{path}"));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn the_monitor_flags_a_shifted_feature_by_name_and_not_same_distribution_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("models");
    add_model(&repo, "fraud", None);
    std::fs::copy(
        examples().join("../data/fraud_sample.csv"),
        repo.join("fraud/1/reference.csv"),
    )
    .unwrap();
    // A reference whose columns do not fit the model: served, unmonitored, with the reason.
    add_model(&repo, "misfit", None);
    let header: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let mut misfit = header.join(",") + "\n";
    for r in 0..50 {
        misfit += &(0..20)
            .map(|c| (r * c).to_string())
            .collect::<Vec<_>>()
            .join(",");
        misfit += "\n";
    }
    std::fs::write(repo.join("misfit/reference.csv"), misfit).unwrap();
    add_model(&repo, "plain", None);
    let config = dir.path().join("ballast.toml");
    std::fs::write(&config, "[monitor]\nwindow_rows = 400\nmin_rows = 100\n").unwrap();

    let (mut child, http, _lines) = serve_until_ready(&[
        "--model-repository",
        repo.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let base = format!("http://{http}");
    let rows = fraud_rows();
    // Resampled reference rows (a fixed LCG): the same distribution as the reference.
    let mut state = 7u64;
    let mut draw = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut send = |shift: f32, requests: usize| {
        for _ in 0..requests {
            let mut data = Vec::with_capacity(40 * 12);
            for _ in 0..40 {
                let mut row = rows[draw() % rows.len()].clone();
                row[0] += shift;
                data.extend(row);
            }
            let body = serde_json::json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [40, 12], "data": data}]});
            let (status, text) =
                reqwest::post_json(&format!("{base}/v2/models/fraud/infer"), &body);
            assert_eq!(status, 200, "{text}");
        }
    };
    send(0.0, 20);
    wait_for("two row windows", || {
        let r = monitor_report(&base, "/v2/models/fraud/versions/1/monitor");
        r["versions"][0]["row_windows"].as_array().unwrap().len() >= 2
    });
    let r = monitor_report(&base, "/v2/models/fraud/versions/1/monitor");
    let v = &r["versions"][0];
    assert_eq!(v["monitored"], true, "{v}");
    // The minimum a window needs is stated, overall and per version and window.
    assert_eq!(r["thresholds"]["min_rows"], 100, "{r}");
    assert_eq!(v["min_rows"], 100, "{v}");
    assert_eq!(v["row_windows"][0]["min_rows"], 100, "{v}");
    assert_eq!(v["row_windows"][0]["insufficient_data"], false, "{v}");
    assert_eq!(
        v["features"].as_array().unwrap().len(),
        12,
        "the label is not a feature"
    );
    assert_eq!(v["features"][0], "amount_log");
    for w in v["row_windows"].as_array().unwrap() {
        assert_eq!(w["rows"], 400, "{w}");
        assert_eq!(
            w["drifted"],
            serde_json::json!([]),
            "same-distribution window: {w}"
        );
        assert_eq!(w["drifted_share"], 0.0, "{w}");
    }

    // amount_log moves up by 3 (e^3 ≈ 20 times the amounts): flagged by name, and alone.
    send(3.0, 10);
    wait_for("the shifted window", || {
        let r = monitor_report(&base, "/v2/models/fraud/versions/1/monitor");
        r["versions"][0]["row_windows"].as_array().unwrap().len() >= 3
    });
    let r = monitor_report(&base, "/v2/models/fraud/versions/1/monitor");
    let w = &r["versions"][0]["row_windows"][0];
    assert_eq!(w["drifted"], serde_json::json!(["amount_log"]), "{w}");
    let amount = &w["features"][0];
    assert_eq!(amount["name"], "amount_log");
    assert_eq!(amount["drifted"], true);
    assert!(
        amount["out_of_range_share"].as_f64().unwrap() > 0.1,
        "{amount}"
    );
    assert!(amount["drift"]["psi"].as_f64().unwrap() > 1.0, "{amount}");
    assert!(
        amount["drift"]["ks"]["statistic"].as_f64().unwrap() > 0.5,
        "{amount}"
    );
    assert!(
        amount["drift"]["wasserstein"].as_f64().unwrap() > 1.0,
        "{amount}"
    );

    // Every served version is listed, monitored or not, with the reason.
    let all = monitor_report(&base, "/v2/monitor");
    let by_model = |m: &str| {
        all["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["model"] == m)
            .unwrap_or_else(|| panic!("{m} missing from {all}"))
            .clone()
    };
    let misfit = by_model("misfit");
    assert_eq!(misfit["monitored"], false);
    assert!(
        misfit["reason"].as_str().unwrap().contains("'c12'"),
        "{misfit}"
    );
    let plain = by_model("plain");
    assert_eq!(plain["monitored"], false);
    assert!(
        plain["reason"].as_str().unwrap().contains("reference.csv"),
        "{plain}"
    );
    assert_eq!(all["thresholds"]["window_rows"], 400);
    let (status, body) = reqwest::get_text(&format!("{base}/v2/models/nope/monitor"));
    assert_eq!(status, 404, "{body}");
    let (status, _) = reqwest::get_text(&format!("{base}/v2/models/fraud/versions/9/monitor"));
    assert_eq!(status, 404);
    let (_, metrics) = reqwest::get_text(&format!("{base}/metrics"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ballast_monitored_rows_total{")
                && l.contains("model=\"fraud\"")
                && l.ends_with(" 1200")),
        "{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
