//! The ONNX Runtime backend on the example models: signatures, outputs against the
//! onnxruntime-computed fixtures (`examples/fixtures/expected.json`), batched == row by row,
//! concurrency across a session pool, and typed errors for bad input.
//!
//! The library comes from `find_library(None)`. Without it these tests are skipped with a
//! message (a fresh machine with only Rust runs `cargo test`), unless `BALLAST_REQUIRE_ORT=1`:
//! `.ci/run` installs the `onnxruntime` wheel and sets it, so there its absence fails. Failure
//! paths of the process-global initialisation live in `tests/onnxruntime_missing.rs`, a
//! separate process.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast_core::{DataType, Tensor, TensorData, TensorSpec};
use ballast_engine::onnxruntime::{self, OrtBackend, OrtOptions};
use ballast_engine::tract::TractBackend;
use ballast_engine::{Backend, BackendError};
use serde_json::Value;

/// Tolerance for FP32/FP64 outputs against the fixtures (computed by the same ONNX Runtime).
const TOLERANCE: f64 = 1e-6;

fn ort_ready() -> bool {
    match onnxruntime::available(None) {
        Ok(_) => true,
        Err(e) if std::env::var("BALLAST_REQUIRE_ORT").as_deref() == Ok("1") => {
            panic!("BALLAST_REQUIRE_ORT=1 but ONNX Runtime is not usable: {e}")
        }
        Err(e) => {
            eprintln!(
                "skipping: ONNX Runtime not found ({e}); `pip install onnxruntime` to run this test"
            );
            false
        }
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn model_path(model: &str, version: &str) -> PathBuf {
    examples().join(format!("models/{model}/{version}/model.onnx"))
}

fn test_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}"))
}

fn load(model: &str, version: &str) -> OrtBackend {
    OrtBackend::load(&model_path(model, version), &OrtOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn fixtures() -> Vec<Value> {
    let text = std::fs::read_to_string(examples().join("fixtures/expected.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn tensor_from_json(t: &Value) -> Tensor {
    let name = t["name"].as_str().unwrap();
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = t["data"].as_array().unwrap();
    let data = match t["datatype"].as_str().unwrap() {
        "FP32" => TensorData::F32(data.iter().map(|v| v.as_f64().unwrap() as f32).collect()),
        "FP64" => TensorData::F64(data.iter().map(|v| v.as_f64().unwrap()).collect()),
        "INT32" => TensorData::I32(data.iter().map(|v| v.as_i64().unwrap() as i32).collect()),
        "INT64" => TensorData::I64(data.iter().map(|v| v.as_i64().unwrap()).collect()),
        "BOOL" => TensorData::Bool(data.iter().map(|v| v.as_bool().unwrap()).collect()),
        "UINT8" => TensorData::U8(data.iter().map(|v| v.as_u64().unwrap() as u8).collect()),
        "FP16" => TensorData::F16(
            data.iter()
                .map(|v| ballast_core::tensor::f16::from_f64(v.as_f64().unwrap()))
                .collect(),
        ),
        other => panic!("fixture datatype {other}"),
    };
    Tensor::new(name, shape, data).unwrap()
}

/// Inputs for `backend` in signature order, taken by name from a fixture entry.
fn fixture_inputs(backend: &dyn Backend, entry: &Value) -> Vec<Tensor> {
    let given: Vec<Tensor> = entry["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(tensor_from_json)
        .collect();
    backend
        .signature()
        .inputs
        .iter()
        .map(|spec| {
            given
                .iter()
                .find(|t| t.name == spec.name)
                .unwrap_or_else(|| panic!("fixture lacks input {}", spec.name))
                .clone()
        })
        .collect()
}

fn assert_close(got: &Tensor, want: &Tensor, context: &str) {
    assert_eq!(got.name, want.name, "{context}");
    assert_eq!(got.shape, want.shape, "{context}: {}", got.name);
    let what = format!("{context}: output {}", got.name);
    match (&got.data, &want.data) {
        (TensorData::F32(g), TensorData::F32(w)) => {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert!(
                    (f64::from(*g) - f64::from(*w)).abs() <= TOLERANCE,
                    "{what}[{i}]: {g} vs {w}"
                );
            }
        }
        (TensorData::F64(g), TensorData::F64(w)) => {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert!((g - w).abs() <= TOLERANCE, "{what}[{i}]: {g} vs {w}");
            }
        }
        (g, w) => assert_eq!(g, w, "{what}"),
    }
}

fn spec(name: &str, dtype: DataType, shape: &[i64]) -> TensorSpec {
    TensorSpec::new(name, dtype, shape.to_vec())
}

#[test]
fn discovers_signatures_of_the_example_models() {
    if !ort_ready() {
        return;
    }
    let fraud = load("fraud", "2");
    assert_eq!(fraud.engine(), "onnxruntime");
    assert_eq!(
        fraud.signature().inputs,
        vec![spec("features", DataType::F32, &[-1, 12])]
    );
    assert_eq!(
        fraud.signature().outputs,
        vec![
            spec("probability", DataType::F32, &[-1, 1]),
            spec("is_fraud", DataType::Bool, &[-1, 1]),
        ]
    );
    let seqmean = load("seqmean", "1");
    assert_eq!(
        seqmean.signature().inputs,
        vec![spec("tokens", DataType::F32, &[-1, -1])]
    );
    assert_eq!(
        seqmean.signature().outputs,
        vec![
            spec("mean", DataType::F32, &[-1, 1]),
            spec("scaled", DataType::F32, &[-1, -1]),
        ]
    );
    let dtypes = load("dtypes", "1");
    let names = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| (s.name.clone(), s.dtype, s.shape.clone()))
            .collect::<Vec<_>>()
    };
    let row = |n: &str, d| (n.to_string(), d, vec![-1, 3]);
    assert_eq!(
        names(&dtypes.signature().inputs),
        vec![
            row("x_fp64", DataType::F64),
            row("x_int32", DataType::I32),
            row("x_int64", DataType::I64),
            row("x_bool", DataType::Bool),
            row("x_fp32", DataType::F32),
            row("x_fp16", DataType::F16),
            row("x_uint8", DataType::U8),
        ]
    );
    assert_eq!(
        names(&dtypes.signature().outputs),
        vec![
            row("y_fp64", DataType::F64),
            row("y_int32", DataType::I32),
            row("y_int64", DataType::I64),
            row("y_bool", DataType::Bool),
            row("y_fp32", DataType::F32),
            row("y_fp16", DataType::F16),
            row("y_uint8", DataType::U8),
        ]
    );
}

#[test]
fn signatures_agree_with_tract() {
    if !ort_ready() {
        return;
    }
    for (model, version) in [
        ("fraud", "1"),
        ("fraud", "2"),
        ("dtypes", "1"),
        ("seqmean", "1"),
    ] {
        let path = model_path(model, version);
        let tract = TractBackend::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let ort = load(model, version);
        assert_eq!(ort.signature(), tract.signature(), "{model}/{version}");
    }
}

#[test]
fn outputs_match_the_onnxruntime_fixtures() {
    if !ort_ready() {
        return;
    }
    let entries = fixtures();
    assert!(!entries.is_empty());
    for entry in &entries {
        let model = entry["model"].as_str().unwrap();
        let version = entry["version"].as_str().unwrap();
        let backend = load(model, version);
        let outputs = backend
            .infer(fixture_inputs(&backend, entry))
            .unwrap_or_else(|e| panic!("{model}/{version}: {e}"));
        let expected: Vec<Tensor> = entry["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor_from_json)
            .collect();
        assert_eq!(outputs.len(), backend.signature().outputs.len());
        for (spec, got) in backend.signature().outputs.iter().zip(&outputs) {
            assert_eq!(got.name, spec.name, "outputs come in signature order");
            let want = expected
                .iter()
                .find(|t| t.name == spec.name)
                .unwrap_or_else(|| panic!("fixture lacks output {}", spec.name));
            assert_close(got, want, &format!("{model}/{version} rows={}", got.rows()));
        }
    }
}

/// Row `r` of a tensor as raw bytes.
fn row_bytes(t: &Tensor, r: usize) -> Vec<u8> {
    let n = t.row_len();
    let mut out = Vec::new();
    t.data.slice(r * n, (r + 1) * n).write_raw(&mut out);
    out
}

fn row_of(t: &Tensor, r: usize) -> Tensor {
    let n = t.row_len();
    let mut shape = t.shape.clone();
    shape[0] = 1;
    Tensor::new(t.name.clone(), shape, t.data.slice(r * n, (r + 1) * n)).unwrap()
}

/// Runs `inputs` as one batch and row by row; calls `check(output, row, batched, alone)`.
fn batch_vs_rows(
    backend: &OrtBackend,
    inputs: &[Tensor],
    check: impl Fn(&str, usize, &Tensor, &Tensor),
) {
    let batched = backend.infer(inputs.to_vec()).unwrap();
    for r in 0..inputs[0].rows() {
        let single = backend
            .infer(inputs.iter().map(|t| row_of(t, r)).collect())
            .unwrap();
        for (b, s) in batched.iter().zip(&single) {
            assert_eq!(s.shape[0], 1);
            check(&b.name, r, b, s);
        }
    }
}

#[test]
fn a_batch_gives_the_same_bytes_per_row_as_single_rows() {
    if !ort_ready() {
        return;
    }
    let same_bytes = |model: &str| {
        let model = model.to_string();
        move |output: &str, r: usize, b: &Tensor, s: &Tensor| {
            assert_eq!(
                row_bytes(b, r),
                row_bytes(s, 0),
                "{model}: output {output} row {r}"
            )
        }
    };
    for entry in fixtures()
        .iter()
        .filter(|e| e["inputs"][0]["shape"][0] == 7)
    {
        let model = entry["model"].as_str().unwrap();
        if model == "seqmean" {
            continue; // see the next test
        }
        let backend = load(model, entry["version"].as_str().unwrap());
        batch_vs_rows(
            &backend,
            &fixture_inputs(&backend, entry),
            same_bytes(model),
        );
    }
    let fraud = load("fraud", "2");
    for rows in [64, 1024] {
        batch_vs_rows(&fraud, &[fraud_rows(rows, rows)], same_bytes("fraud"));
    }
}

/// ONNX Runtime's ReduceMean splits each row into a SIMD body and a scalar head/tail by the
/// row's 16-byte alignment, so the summation order depends on where the row sits in memory: a
/// 5-float row at byte offset 60 of a batch can differ in the last bit from the same row alone
/// (checked in Python with onnxruntime 1.32 by shifting one row through a buffer). Rows whose
/// byte length is a multiple of 16 (fraud's 12 floats) and elementwise outputs stay identical.
#[test]
fn seqmean_batched_and_alone_agree_to_an_ulp() {
    if !ort_ready() {
        return;
    }
    let backend = load("seqmean", "1");
    for entry in fixtures().iter().filter(|e| e["model"] == "seqmean") {
        batch_vs_rows(
            &backend,
            &fixture_inputs(&backend, entry),
            |output, r, b, s| match (&b.data, &s.data, output) {
                (TensorData::F32(b), TensorData::F32(s), "mean") => {
                    let (b, s) = (b[r], s[0]);
                    assert!(
                        b.to_bits().abs_diff(s.to_bits()) <= 1,
                        "mean row {r}: {b} vs {s}"
                    );
                }
                _ => assert_eq!(row_bytes(b, r), row_bytes(s, 0), "output {output} row {r}"),
            },
        );
    }
}

fn fraud_rows(rows: usize, seed: usize) -> Tensor {
    Tensor::new(
        "features",
        vec![rows, 12],
        TensorData::F32(
            (0..rows * 12)
                .map(|i| ((i * 7 + seed * 13) % 23) as f32 * 0.25 - 2.0)
                .collect(),
        ),
    )
    .unwrap()
}

#[test]
fn eight_threads_share_two_sessions_and_get_the_single_threaded_results() {
    if !ort_ready() {
        return;
    }
    let opts = OrtOptions {
        sessions: 2,
        ..OrtOptions::default()
    };
    let backend = Arc::new(
        OrtBackend::load(&model_path("fraud", "2"), &opts).unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(backend.sessions(), 2);
    let reference: Vec<Vec<Tensor>> = (0..8)
        .map(|t| backend.infer(vec![fraud_rows(1 + t * 5, t)]).unwrap())
        .collect();
    let reference = Arc::new(reference);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let backend = Arc::clone(&backend);
            let reference = Arc::clone(&reference);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let out = backend.infer(vec![fraud_rows(1 + t * 5, t)]).unwrap();
                    assert_eq!(out, reference[t], "thread {t}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn wrong_dtype_is_invalid_input_naming_the_input() {
    if !ort_ready() {
        return;
    }
    let backend = load("fraud", "2");
    let input = Tensor::new("features", vec![1, 12], TensorData::F64(vec![0.0; 12])).unwrap();
    match backend.infer(vec![input]) {
        Err(BackendError::InvalidInput(msg)) => {
            assert!(msg.contains("'features'"), "{msg}");
            assert!(msg.contains("FP32") && msg.contains("FP64"), "{msg}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn wrong_shape_is_invalid_input() {
    if !ort_ready() {
        return;
    }
    let backend = load("fraud", "2");
    let input = Tensor::new("features", vec![2, 11], TensorData::F32(vec![0.0; 22])).unwrap();
    match backend.infer(vec![input]) {
        Err(BackendError::InvalidInput(msg)) => assert!(msg.contains("features"), "{msg}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    let input = Tensor::new("features", vec![12], TensorData::F32(vec![0.0; 12])).unwrap();
    assert!(matches!(
        backend.infer(vec![input]),
        Err(BackendError::InvalidInput(_))
    ));
}

#[test]
fn wrong_number_of_inputs_is_invalid_input() {
    if !ort_ready() {
        return;
    }
    let backend = load("fraud", "2");
    match backend.infer(vec![fraud_rows(1, 0), fraud_rows(1, 1)]) {
        Err(BackendError::InvalidInput(msg)) => assert!(msg.contains("features"), "{msg}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(matches!(
        backend.infer(vec![]),
        Err(BackendError::InvalidInput(_))
    ));
}

#[test]
fn an_empty_batch_runs() {
    if !ort_ready() {
        return;
    }
    let backend = load("fraud", "2");
    let out = backend.infer(vec![fraud_rows(0, 0)]).unwrap();
    assert_eq!(out[0].shape, vec![0, 1]);
    assert_eq!(out[1].shape, vec![0, 1]);
}

#[test]
fn string_tensors_round_trip_as_bytes() {
    if !ort_ready() {
        return;
    }
    let backend = OrtBackend::load(&test_model("strings.onnx"), &OrtOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        backend.signature().inputs,
        vec![spec("text", DataType::Bytes, &[-1, 2])]
    );
    assert_eq!(
        backend.signature().outputs,
        vec![spec("text_out", DataType::Bytes, &[-1, 2])]
    );
    let words: Vec<Vec<u8>> = ["héllo", "", "ballast", "日本語"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let input = Tensor::new("text", vec![2, 2], TensorData::Bytes(words.clone())).unwrap();
    let out = backend.infer(vec![input]).unwrap();
    assert_eq!(
        out,
        vec![Tensor::new("text_out", vec![2, 2], TensorData::Bytes(words)).unwrap()]
    );
}

#[test]
fn non_utf8_bytes_are_invalid_input_naming_the_input() {
    if !ort_ready() {
        return;
    }
    let backend = OrtBackend::load(&test_model("strings.onnx"), &OrtOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let input = Tensor::new(
        "text",
        vec![1, 2],
        TensorData::Bytes(vec![b"ok".to_vec(), vec![0xff, 0xfe]]),
    )
    .unwrap();
    match backend.infer(vec![input]) {
        Err(BackendError::InvalidInput(msg)) => {
            assert!(msg.contains("'text'"), "{msg}");
            assert!(msg.contains("element 1"), "{msg}");
            assert!(msg.contains("UTF-8"), "{msg}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn unsupported_datatype_fails_to_load_naming_tensor_and_type() {
    if !ort_ready() {
        return;
    }
    match OrtBackend::load(&test_model("uint16.onnx"), &OrtOptions::default()) {
        Err(BackendError::Load { path, reason }) => {
            assert!(path.ends_with("uint16.onnx"), "{path}");
            assert!(reason.contains("input 'x'"), "{reason}");
            assert!(reason.contains("uint16"), "{reason}");
        }
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("expected a load error for a uint16 input"),
    }
}

#[test]
fn missing_or_corrupt_model_is_a_load_error_naming_the_file() {
    if !ort_ready() {
        return;
    }
    let missing = examples().join("models/fraud/9/model.onnx");
    match OrtBackend::load(&missing, &OrtOptions::default()) {
        Err(BackendError::Load { path, .. }) => assert!(path.contains("fraud/9"), "{path}"),
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("loaded a missing file"),
    }
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("model.onnx");
    std::fs::write(&corrupt, b"this is not a protobuf").unwrap();
    match OrtBackend::load(&corrupt, &OrtOptions::default()) {
        Err(BackendError::Load { path, reason }) => {
            assert!(path.ends_with("model.onnx"), "{path}");
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("loaded a corrupt file"),
    }
}

#[test]
fn init_is_idempotent_and_refuses_to_switch_libraries() {
    if !ort_ready() {
        return;
    }
    let lib = onnxruntime::find_library(None).unwrap();
    onnxruntime::init(&lib).unwrap();
    assert_eq!(onnxruntime::available(None).unwrap(), lib);
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("libonnxruntime.so");
    std::fs::write(&other, b"another library").unwrap();
    match onnxruntime::init(&other) {
        Err(BackendError::Load { path, reason }) => {
            assert!(path.contains("libonnxruntime.so"), "{path}");
            assert!(reason.contains("already loaded"), "{reason}");
        }
        other => panic!("expected a load error, got {other:?}"),
    }
    // A model load naming another library fails the same way rather than silently ignoring it.
    let opts = OrtOptions {
        library: Some(other.clone()),
        ..OrtOptions::default()
    };
    match OrtBackend::load(&model_path("fraud", "2"), &opts) {
        Err(BackendError::Load { path, reason }) => {
            assert!(path.ends_with("model.onnx"), "{path}");
            assert!(reason.contains(&other.display().to_string()), "{reason}");
            assert!(reason.contains("already loaded"), "{reason}");
        }
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("loaded with a library other than the one in use"),
    }
}
