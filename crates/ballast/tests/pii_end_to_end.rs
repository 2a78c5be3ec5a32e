//! Nothing unredacted reaches disk, logs or metrics: the labelled PII corpus
//! (`tests/pii/corpus.jsonl`, made by `tests/pii/make_corpus.py`) goes through the real binary
//! as the rows of a BYTES tensor (the `notes` model of `tests/pii/make_notes_model.py`), as
//! string request parameters and inside request ids, and then every byte the server wrote is
//! scanned for every labelled span:
//!
//! 1. after kill -9 right after the last answer (the records are in the WAL only): every file
//!    under the data directory, raw;
//! 2. after a restart on the same directory and SIGTERM (which rolls the recovered WAL into
//!    Parquet segments): every file raw again, every decoded segment record (each string
//!    column, every BYTES value, the parameters) and `ballast logs query --json`;
//! 3. every server log line (JSON, `--log-level debug`) of both runs and `/metrics` of both.
//!
//! A needle is a labelled span's exact text, and for cards, IBANs, phones and SSNs with at
//! least 9 digits also its digits alone (matched as a whole run of digits, to catch a
//! reformatted number). A needle that also occurs in what may legitimately be written (the
//! corpus with its labelled spans replaced, the request ids) is not searched for; there are
//! few and their number is printed. Failures name the file or line, the span's kind and its
//! corpus line, never the text itself.
//!
//! It also checks that redaction kept the rest: every logged note (tensor row and parameter)
//! equals the note with its labelled spans replaced by their placeholders, compared on their
//! alphanumeric characters, since a detected span may differ from its label in the separators
//! at its edges (the tolerance `crates/ballast-capture/tests/pii_corpus.rs` allows); and that
//! `ballast_redactions_total` counted every detector.
//!
//! Every [`GRPC_EVERY`]th request goes over gRPC (BYTES as `bytes_contents`, the notes as
//! string parameters), the rest over HTTP/JSON.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aho_corasick::AhoCorasick;
use ballast_capture::{Record, Status};
use ballast_core::TensorData;
use ballast_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use ballast_proto::inference::model_infer_request::InferInputTensor;
use ballast_proto::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, infer_parameter,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");
/// Notes per request (rows of the `note` tensor); each is also a string parameter.
const ROWS: usize = 4;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Every this many requests goes over gRPC.
const GRPC_EVERY: usize = 4;
/// Every this many requests, the request id carries a labelled e-mail address.
const EMAIL_ID_EVERY: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A labelled span: its kind and text.
struct Label {
    kind: String,
    text: String,
}

struct Note {
    text: String,
    labels: Vec<Label>,
    /// The text with each labelled span replaced by its placeholder.
    expected: String,
}

fn placeholder(kind: &str) -> String {
    format!("<{}>", kind.to_ascii_uppercase())
}

fn corpus() -> Vec<Note> {
    let raw = std::fs::read_to_string(root().join("tests/pii/corpus.jsonl")).unwrap();
    raw.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let text = v["text"].as_str().unwrap().to_owned();
            // Offsets are code points.
            let chars: Vec<char> = text.chars().collect();
            let mut spans: Vec<(usize, usize, String)> = v["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["start"].as_u64().unwrap() as usize,
                        s["end"].as_u64().unwrap() as usize,
                        s["kind"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            spans.sort();
            let mut expected = String::new();
            let mut at = 0;
            let mut labels = Vec::new();
            for (start, end, kind) in spans {
                expected.extend(&chars[at..start]);
                expected.push_str(&placeholder(&kind));
                at = end;
                labels.push(Label {
                    text: chars[start..end].iter().collect(),
                    kind,
                });
            }
            expected.extend(&chars[at..]);
            Note {
                text,
                labels,
                expected,
            }
        })
        .collect()
}

/// What must never be found, and where each needle came from.
struct Needles {
    exact: AhoCorasick,
    /// For each exact pattern: (kind, corpus line, 1-based).
    exact_from: Vec<(String, usize)>,
    /// Digits-only forms, matched as whole runs of ASCII digits.
    digits: HashMap<String, (String, usize)>,
    skipped: usize,
}

fn digit_runs(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| !b.is_ascii_digit())
        .filter(|run| run.len() >= 9)
}

impl Needles {
    /// Needles of every label; `allowed` is text that may be written as it is.
    fn new(notes: &[Note], allowed: &str) -> Self {
        let allowed_runs: HashSet<&[u8]> = digit_runs(allowed.as_bytes()).collect();
        let mut unique: Vec<(&Label, usize)> = Vec::new();
        let mut seen = HashSet::new();
        for (line, note) in notes.iter().enumerate() {
            for label in &note.labels {
                if seen.insert(label.text.as_str()) {
                    unique.push((label, line + 1));
                }
            }
        }
        let all = AhoCorasick::new(unique.iter().map(|(l, _)| &l.text)).unwrap();
        let in_allowed: HashSet<usize> = all
            .find_overlapping_iter(allowed)
            .map(|m| m.pattern().as_usize())
            .collect();
        let mut skipped = in_allowed.len();
        let mut patterns = Vec::new();
        let mut exact_from = Vec::new();
        let mut digits = HashMap::new();
        for (i, (label, line)) in unique.iter().enumerate() {
            if !in_allowed.contains(&i) {
                patterns.push(label.text.as_str());
                exact_from.push((label.kind.clone(), *line));
            }
            if label.kind == "email" {
                continue;
            }
            let d: String = label.text.chars().filter(char::is_ascii_digit).collect();
            if d.len() >= 9 && !digits.contains_key(&d) {
                if allowed_runs.contains(d.as_bytes()) {
                    skipped += 1;
                } else {
                    digits.insert(d, (label.kind.clone(), *line));
                }
            }
        }
        Self {
            exact: AhoCorasick::new(&patterns).unwrap(),
            exact_from,
            digits,
            skipped,
        }
    }

    /// Each leak in `haystack`, described as "KIND label of corpus line N" (never the text).
    fn find(&self, haystack: &[u8]) -> Vec<String> {
        let mut found: Vec<String> = self
            .exact
            .find_overlapping_iter(haystack)
            .map(|m| {
                let (kind, line) = &self.exact_from[m.pattern().as_usize()];
                format!("{kind} label of corpus line {line} at byte {}", m.start())
            })
            .collect();
        for run in digit_runs(haystack) {
            if let Some((kind, line)) = std::str::from_utf8(run)
                .ok()
                .and_then(|r| self.digits.get(r))
            {
                found.push(format!("{kind} label of corpus line {line} (its digits)"));
            }
        }
        found
    }

    /// Panics naming `what` and each leak found in it.
    fn assert_clean(&self, what: &str, haystack: &[u8]) {
        let found = self.find(haystack);
        assert!(
            found.is_empty(),
            "PII LEAK in {what}: {} labelled span(s) found unredacted: {:?}",
            found.len(),
            &found[..found.len().min(10)]
        );
    }
}

/// A repository with the `notes` model only.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("tests/pii/notes");
    let model = dir.path().join("notes");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::copy(src.join("1/model.onnx"), model.join("1/model.onnx")).unwrap();
    std::fs::copy(src.join("config.toml"), model.join("config.toml")).unwrap();
    dir
}

/// A running server whose every stderr line is collected.
struct Server {
    child: Child,
    http: String,
    grpc: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

fn start(repo: &Path, data: &Path) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--model-repository",
        ])
        .arg(repo)
        .arg("--data-dir")
        .arg(data)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let collected = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "ready"
                && let (Some(http), Some(grpc)) =
                    (v["fields"]["http"].as_str(), v["fields"]["grpc"].as_str())
            {
                let _ = ready_tx.send((http.to_string(), grpc.to_string()));
            }
            collected.lock().push(line);
        }
    });
    let Ok((http, grpc)) = ready_rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not become ready");
    };
    Server {
        child,
        http,
        grpc,
        lines,
        reader,
    }
}

impl Server {
    fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.http);
        runtime().block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
    }

    /// Sends `signal`, waits for the exit; the exit code and every log line.
    fn stop(mut self, signal: &str) -> (Option<i32>, Vec<String>) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
        let code = self.child.wait().unwrap().code();
        self.reader.join().unwrap();
        (code, std::mem::take(&mut *self.lines.lock()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Request `i`'s id: every [`EMAIL_ID_EVERY`]th carries `email` after `n{i}:`.
fn request_id(i: usize, email: &str) -> String {
    if i.is_multiple_of(EMAIL_ID_EVERY) {
        format!("n{i}:{email}")
    } else {
        format!("n{i}")
    }
}

/// The parameter carrying row `j`'s note.
fn parameter(j: usize) -> String {
    if j == 0 {
        "note".to_string()
    } else {
        format!("note_{j}")
    }
}

/// Request `i` over gRPC: `rows` as a BYTES tensor and each as a string parameter; the topics
/// answered.
async fn infer_grpc(
    client: &mut GrpcInferenceServiceClient<tonic::transport::Channel>,
    id: String,
    rows: &[String],
) -> usize {
    let parameters = rows
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let choice = infer_parameter::ParameterChoice::StringParam(n.clone());
            (
                parameter(j),
                InferParameter {
                    parameter_choice: Some(choice),
                },
            )
        })
        .collect();
    let request = ModelInferRequest {
        model_name: "notes".into(),
        id: id.clone(),
        inputs: vec![InferInputTensor {
            name: "note".into(),
            datatype: "BYTES".into(),
            shape: vec![rows.len() as i64, 1],
            parameters: Default::default(),
            contents: Some(InferTensorContents {
                bytes_contents: rows.iter().map(|r| r.clone().into_bytes()).collect(),
                ..Default::default()
            }),
        }],
        parameters,
        ..Default::default()
    };
    let response = client
        .model_infer(request)
        .await
        .unwrap_or_else(|e| panic!("request {id}: {}", e.code()))
        .into_inner();
    match (
        response.raw_output_contents.first(),
        response.outputs.first(),
    ) {
        (Some(raw), _) => raw.len() / 8,
        (None, Some(out)) => out.contents.as_ref().map_or(0, |c| c.int64_contents.len()),
        (None, None) => 0,
    }
}

/// Sends every note, [`ROWS`] to a request, one request in [`GRPC_EVERY`] over gRPC; each
/// answer must be a success with a topic per row.
fn send_all(server: &Server, notes: &[Note], emails: &[String]) {
    let url = format!("http://{}/v2/models/notes/infer", server.http);
    let grpc = format!("http://{}", server.grpc);
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let grpc_client = GrpcInferenceServiceClient::connect(grpc).await.unwrap();
        let chunks: Vec<(usize, Vec<String>)> = notes
            .chunks(ROWS)
            .map(|c| c.iter().map(|n| n.text.clone()).collect())
            .enumerate()
            .collect();
        let queue = Arc::new(Mutex::new(chunks));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (queue, client, url) = (queue.clone(), client.clone(), url.clone());
            let mut grpc_client = grpc_client.clone();
            let emails = emails.to_vec();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some((i, rows)) = queue.lock().pop() else {
                        break;
                    };
                    let id = request_id(i, &emails[i % emails.len()]);
                    if i % GRPC_EVERY == GRPC_EVERY - 1 {
                        let topics = infer_grpc(&mut grpc_client, id, &rows).await;
                        assert_eq!(topics, rows.len(), "request {i} (gRPC)");
                        continue;
                    }
                    let parameters: serde_json::Map<String, Value> = rows
                        .iter()
                        .enumerate()
                        .map(|(j, n)| (parameter(j), json!(n)))
                        .collect();
                    let body = json!({
                        "id": id,
                        "inputs": [{"name": "note", "shape": [rows.len(), 1], "datatype": "BYTES", "data": rows}],
                        "parameters": parameters,
                    });
                    let r = client.post(&url).json(&body).send().await.unwrap();
                    let status = r.status();
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(status, 200, "request {i}: {}", v["error"]);
                    let topics = v["outputs"][0]["data"].as_array().unwrap();
                    assert_eq!(topics.len(), rows.len(), "request {i}");
                    assert!(topics.iter().all(|t| t == -1), "request {i}: {topics:?}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Requests the server refuses, with personal data where a client might put it: a note as a
/// number, as a tensor name, as a datatype, as the timeout parameter, as a parameter's key and
/// (an e-mail address) as the model's name. Each answer must be a 4xx; the server logs each failure (with its
/// reason) at `info`, at most 20 a second, so they are paced to be logged all.
fn send_bad(http: &str, notes: &[Note]) -> usize {
    let base = format!("http://{http}/v2/models");
    let url = format!("{base}/notes/infer");
    let rt = runtime();
    let mut sent = 0;
    rt.block_on(async {
        let client = reqwest::Client::new();
        // Two labelled notes of each kind.
        let mut picked: Vec<&Note> = Vec::new();
        for kind in ["email", "phone", "card", "ssn", "iban"] {
            picked.extend(notes.iter().filter(|n| n.labels.iter().any(|l| l.kind == kind)).take(2));
        }
        for (i, note) in picked.into_iter().enumerate() {
            // The whole note where the server quotes or keeps it (a bare number is not a
            // phone without its context); an e-mail address alone as the model's name.
            let pii = &note.text;
            let bodies = [
                json!({"id": format!("bad{i}a"), "inputs": [{"name": "note", "shape": [1, 1], "datatype": "INT64", "data": [note.text]}]}),
                json!({"id": format!("bad{i}b"), "inputs": [{"name": pii, "shape": [1, 1], "datatype": "BYTES", "data": [note.text]}]}),
                json!({"id": format!("bad{i}c"), "inputs": [{"name": "note", "shape": [1, 1], "datatype": pii, "data": [note.text]}]}),
                json!({"id": format!("bad{i}d"), "inputs": [{"name": "note", "shape": [1, 1], "datatype": "BYTES", "data": [note.text]}], "parameters": {"timeout": pii}}),
                json!({"id": format!("bad{i}e"), "inputs": [{"name": "note", "shape": [2, 1], "datatype": "BYTES", "data": [note.text]}], "parameters": {pii.clone(): true}}),
            ];
            let mut posts: Vec<(String, Value)> = bodies.into_iter().map(|b| (url.clone(), b)).collect();
            if note.labels[0].kind == "email" {
                let body = json!({"id": format!("bad{i}f"), "inputs": [{"name": "note", "shape": [1, 1], "datatype": "BYTES", "data": [note.text]}]});
                posts.push((format!("{base}/{}/infer", note.labels[0].text), body));
            }
            for (url, body) in posts {
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert!(r.status().is_client_error(), "{}: {}", body["id"], r.status());
                sent += 1;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        }
    });
    sent
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn scan_files(needles: &Needles, dir: &Path, when: &str) -> usize {
    let all = files(dir);
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        needles.assert_clean(&format!("{} ({when})", f.display()), &bytes);
    }
    all.len()
}

fn scan_lines(needles: &Needles, lines: &[String], what: &str) {
    for (n, line) in lines.iter().enumerate() {
        if needles.find(line.as_bytes()).is_empty() {
            continue;
        }
        // Name the fields that leak and the line's message, not the values.
        let mut fields = Vec::new();
        if let Ok(Value::Object(v)) = serde_json::from_str::<Value>(line) {
            let mut stack: Vec<(String, &Value)> = v.iter().map(|(k, v)| (k.clone(), v)).collect();
            while let Some((key, v)) = stack.pop() {
                match v {
                    Value::Object(m) => {
                        stack.extend(m.iter().map(|(k, v)| (format!("{key}.{k}"), v)))
                    }
                    other if !needles.find(other.to_string().as_bytes()).is_empty() => {
                        fields.push(key)
                    }
                    _ => {}
                }
            }
        }
        let message = serde_json::from_str::<Value>(line)
            .map(|v| v["fields"]["message"].to_string())
            .unwrap_or_default();
        needles.assert_clean(
            &format!(
                "{what} line {} (message {message}, fields {fields:?})",
                n + 1
            ),
            line.as_bytes(),
        );
    }
}

/// Every string a record holds, by field.
fn record_strings(r: &Record) -> Vec<(String, String)> {
    let mut out = vec![
        ("id".to_string(), r.id.clone()),
        ("tenant".to_string(), r.tenant.clone()),
        ("model".to_string(), r.model.clone()),
        ("version".to_string(), r.version.clone()),
        ("protocol".to_string(), r.protocol.clone()),
        ("priority".to_string(), r.priority.clone()),
        ("input_schema".to_string(), r.input_schema.clone()),
    ];
    for (name, v) in [
        ("trace_id", &r.trace_id),
        ("requested", &r.requested),
        ("arm", &r.arm),
        ("code", &r.code),
        ("parameters", &r.parameters),
    ] {
        if let Some(v) = v {
            out.push((name.to_string(), v.clone()));
        }
    }
    for (side, tensors) in [("inputs", &r.inputs), ("outputs", &r.outputs)] {
        for t in tensors {
            if let TensorData::Bytes(values) = &t.data {
                for (i, v) in values.iter().enumerate() {
                    out.push((
                        format!("{side}.{}[{i}]", t.name),
                        String::from_utf8_lossy(v).into_owned(),
                    ));
                }
            }
        }
    }
    out
}

/// Only the alphanumeric characters: two texts equal under this differ only in separators.
fn alphanumeric(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// `ballast_redactions_total` by detector, read from `/metrics` text.
fn redaction_counts(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("ballast_redactions_total{detector=\""))
        .filter_map(|l| {
            let (kind, rest) = l.split_once('"')?;
            let value = rest.rsplit(' ').next()?.parse().ok()?;
            Some((kind.to_string(), value))
        })
        .collect()
}

#[test]
fn no_labelled_pii_reaches_disk_logs_or_metrics_and_the_rest_is_kept() {
    let started = Instant::now();
    let notes = corpus();
    assert_eq!(notes.len(), 3200, "the corpus changed size");
    let emails: Vec<String> = notes
        .iter()
        .flat_map(|n| &n.labels)
        .filter(|l| l.kind == "email")
        .map(|l| l.text.clone())
        .collect();
    let requests = notes.len().div_ceil(ROWS);
    let mut allowed: String = notes
        .iter()
        .map(|n| n.expected.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for i in 0..requests {
        allowed.push('\n');
        allowed.push_str(&request_id(i, "<EMAIL>"));
    }
    let needles = Needles::new(&notes, &allowed);
    eprintln!(
        "{} exact needles, {} digit-run needles, {} skipped (also in text that may be written)",
        needles.exact_from.len(),
        needles.digits.len(),
        needles.skipped
    );
    assert!(
        needles.skipped < 20,
        "too many needles skipped: {}",
        needles.skipped
    );

    let repo = repository();
    let data = tempfile::tempdir().unwrap();

    // 1. Serve the corpus; kill -9 after the last answer so that the records stay in the WAL.
    let server = start(repo.path(), data.path());
    send_all(&server, &notes, &emails);
    let bad_sent = send_bad(&server.http, &notes);
    let metrics_1 = server.metrics();
    let (_, lines_1) = server.stop("-KILL");
    let wal: Vec<_> = files(&data.path().join("logs/wal"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    assert!(!wal.is_empty(), "no WAL after kill -9");
    let scanned_1 = scan_files(&needles, data.path(), "WAL, after kill -9");
    scan_lines(&needles, &lines_1, "server log (first run)");
    needles.assert_clean("/metrics (first run)", metrics_1.as_bytes());
    let counts = redaction_counts(&metrics_1);
    for kind in ["email", "phone", "card", "ssn", "iban"] {
        assert!(
            counts.get(kind).is_some_and(|&n| n > 0.0),
            "ballast_redactions_total{{detector=\"{kind}\"}} is not > 0: {counts:?}"
        );
    }
    assert!(
        lines_1.iter().any(|l| l.contains("request served")),
        "debug lines were not logged"
    );
    // The native onnx-ml engine without ONNX Runtime, ONNX Runtime where it is installed.
    let engine = lines_1
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "model version ready")
        .map(|v| v["fields"]["engine"].to_string());
    eprintln!("notes served by engine {engine:?}");
    let failed_lines = lines_1
        .iter()
        .filter(|l| l.contains("request failed"))
        .count();
    assert_eq!(
        failed_lines, bad_sent,
        "each refused request is logged once"
    );

    // 2. Restart on the same directory: the WAL is recovered; SIGTERM rolls it into segments.
    let server = start(repo.path(), data.path());
    let metrics_2 = server.metrics();
    let (code, lines_2) = server.stop("-TERM");
    assert_eq!(code, Some(0), "second run did not stop cleanly");
    scan_lines(&needles, &lines_2, "server log (second run)");
    needles.assert_clean("/metrics (second run)", metrics_2.as_bytes());
    let scanned_2 = scan_files(&needles, data.path(), "segments, after SIGTERM");

    let segments: Vec<PathBuf> = files(&data.path().join("logs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!segments.is_empty(), "no segment after SIGTERM");
    let mut records = Vec::new();
    for s in &segments {
        let key = s.display().to_string();
        let bytes = bytes::Bytes::from(std::fs::read(s).unwrap());
        for r in ballast_capture::query::read_all(bytes, &key).unwrap() {
            for (field, text) in record_strings(&r) {
                needles.assert_clean(
                    &format!("{key}: record {:?} field {field}", r.id),
                    text.as_bytes(),
                );
            }
            records.push(r);
        }
    }
    let served = records.iter().filter(|r| r.status == Status::Ok).count();
    assert_eq!(served, requests, "every request served is on record once");
    assert!(
        records.len() > served,
        "the refused requests are on record too"
    );

    let out = Command::new(BIN)
        .args(["logs", "query", "--json", "--model", "notes", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "logs query failed");
    let queried = String::from_utf8(out.stdout).unwrap();
    assert_eq!(queried.lines().count(), records.len());
    for (n, line) in queried.lines().enumerate() {
        needles.assert_clean(
            &format!("`ballast logs query --json` line {}", n + 1),
            line.as_bytes(),
        );
    }

    // 3. Redaction kept the rest: each logged note is the note with its labels replaced.
    let by_id: HashMap<&str, &Record> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut compared = 0;
    for (i, chunk) in notes.chunks(ROWS).enumerate() {
        let id = request_id(i, "<EMAIL>");
        let r = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("request {i} is not on record under id {id:?}"));
        let TensorData::Bytes(rows) = &r.inputs[0].data else {
            panic!("request {i}: note is not BYTES");
        };
        let params: Value = serde_json::from_str(r.parameters.as_deref().unwrap()).unwrap();
        assert_eq!(rows.len(), chunk.len(), "request {i}");
        for (j, note) in chunk.iter().enumerate() {
            let line = i * ROWS + j + 1;
            let tensor = String::from_utf8_lossy(&rows[j]);
            let param = params[parameter(j)].as_str().unwrap();
            for (what, logged) in [("tensor row", &*tensor), ("parameter", param)] {
                assert_eq!(
                    alphanumeric(logged),
                    alphanumeric(&note.expected),
                    "corpus line {line}: the logged {what} is not the note with its labelled spans \
                     replaced (kinds {:?})",
                    note.labels.iter().map(|l| &l.kind).collect::<Vec<_>>()
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, notes.len());
    eprintln!(
        "{} files scanned after kill -9, {} after SIGTERM, {} log lines, {} records; {:.1} s",
        scanned_1,
        scanned_2,
        lines_1.len() + lines_2.len(),
        records.len(),
        started.elapsed().as_secs_f64()
    );
}
