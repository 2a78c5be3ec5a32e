//! The scikit-learn matrix: estimators and pipelines exported with skl2onnx (classifiers with
//! `zipmap` on and off, regressors, preprocessing chains), each served by the pure-Rust path
//! (`backend = "auto"` without ONNX Runtime, which picks the onnx-ml engine) and by ONNX
//! Runtime, and compared with scikit-learn's own predictions and with onnxruntime's outputs.
//!
//! Fixtures (`tests/fixtures/sklearn/<case>/`) come from `examples/make_sklearn.py`.
//! Tolerances: ONNX computes in f32 where scikit-learn uses f64, so probabilities may differ
//! by ~1e-6 and regression outputs by ~1e-6 of their magnitude; 1e-4 is the bound here. A
//! label may differ from scikit-learn's only where its two best classes are within 1e-5.
//! Against onnxruntime (same f32 arithmetic) the bound is 1e-5.

use std::path::{Path, PathBuf};

use ballast_core::{EngineChoice, Tensor, TensorData};
use ballast_engine::{Backend, OpenOptions, onnxruntime};
use serde_json::Value;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/sklearn")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the matrix has {} cases", cases.len());
    cases
}

fn ort_ready() -> bool {
    match onnxruntime::available(None) {
        Ok(_) => true,
        Err(e) if std::env::var("BALLAST_REQUIRE_ORT").as_deref() == Ok("1") => {
            panic!("BALLAST_REQUIRE_ORT=1 but ONNX Runtime is not usable: {e}")
        }
        Err(e) => {
            eprintln!("skipping the ONNX Runtime half: {e}");
            false
        }
    }
}

fn numbers(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

fn input(spec: &Value) -> Tensor {
    let data = match spec["datatype"].as_str() {
        Some("FP32") => TensorData::F32(numbers(spec).iter().map(|&x| x as f32).collect()),
        Some("BYTES") => TensorData::Bytes(
            spec["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|s| s.as_str().expect("string").as_bytes().to_vec())
                .collect(),
        ),
        other => panic!("unexpected input datatype {other:?}"),
    };
    Tensor::new(spec["name"].as_str().expect("name"), shape(spec), data).expect("input")
}

/// Output values as f64 (numbers) or strings.
enum Got {
    Num(Vec<f64>),
    Str(Vec<String>),
}

fn got(t: &Tensor) -> Got {
    match &t.data {
        TensorData::Bytes(v) => Got::Str(
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
        ),
        numeric => Got::Num(numeric.to_f64_vec().expect("numeric")),
    }
}

fn want(v: &Value) -> Got {
    if v["datatype"] == "BYTES" {
        Got::Str(
            v["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect(),
        )
    } else {
        Got::Num(numbers(v))
    }
}

fn max_diff(case: &str, what: &str, a: &Got, b: &Got, relative: bool) -> f64 {
    match (a, b) {
        (Got::Num(a), Got::Num(b)) => {
            assert_eq!(a.len(), b.len(), "{case}: {what}: element count");
            // Relative to the output's largest magnitude: f32 sums of terms that cancel err by
            // the terms' size, not the result's.
            let scale = if relative {
                b.iter()
                    .map(|y| y.abs())
                    .filter(|y| y.is_finite())
                    .fold(1.0, f64::max)
            } else {
                1.0
            };
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() / scale)
                .fold(0.0, f64::max)
        }
        (Got::Str(a), Got::Str(b)) => {
            assert_eq!(a, b, "{case}: {what}");
            0.0
        }
        _ => panic!("{case}: {what}: a string output against a numeric one"),
    }
}

fn output<'a>(case: &str, outputs: &'a [Tensor], name: &str) -> &'a Tensor {
    outputs
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{case}: no output '{name}' in {:?}", names(outputs)))
}

fn names(outputs: &[Tensor]) -> Vec<&str> {
    outputs.iter().map(|t| t.name.as_str()).collect()
}

fn check(case: &str, engine: &str, backend: &dyn Backend, expected: &Value) {
    let x = input(&expected["input"]);
    let rows = x.shape[0];
    let outputs = backend
        .infer(vec![x])
        .unwrap_or_else(|e| panic!("{case} on {engine}: {e}"));
    // Against onnxruntime: every output, same names.
    for (name, v) in expected["onnxruntime"].as_object().expect("onnxruntime") {
        let t = output(case, &outputs, name);
        let d = max_diff(case, name, &got(t), &want(v), true);
        assert!(
            d <= 1e-5,
            "{case} on {engine}: output '{name}' differs from onnxruntime by {d}"
        );
    }
    // Against scikit-learn.
    let names = &expected["names"];
    let sk = &expected["sklearn"];
    match expected["task"].as_str() {
        Some("classifier") => {
            let probs = output(
                case,
                &outputs,
                names["probabilities"].as_str().expect("name"),
            );
            let p = want(&sk["probabilities"]);
            let d = max_diff(case, "probabilities", &got(probs), &p, false);
            assert!(
                d <= 1e-4,
                "{case} on {engine}: probabilities differ from scikit-learn by {d}"
            );
            let labels = output(case, &outputs, names["label"].as_str().expect("name"));
            let Got::Num(p) = p else {
                panic!("{case}: string probabilities")
            };
            let classes = p.len() / rows;
            let close_call = |r: usize| {
                let mut row: Vec<f64> = p[r * classes..(r + 1) * classes].to_vec();
                row.sort_by(|a, b| b.total_cmp(a));
                row.len() > 1 && row[0] - row[1] < 1e-5
            };
            match (got(labels), want(&sk["label"])) {
                (Got::Num(a), Got::Num(b)) => {
                    for r in 0..rows {
                        assert!(
                            a[r] == b[r] || close_call(r),
                            "{case} on {engine}: row {r}: label {} vs scikit-learn {}",
                            a[r],
                            b[r]
                        );
                    }
                }
                (Got::Str(a), Got::Str(b)) => {
                    for r in 0..rows {
                        assert!(
                            a[r] == b[r] || close_call(r),
                            "{case} on {engine}: row {r}: label {} vs scikit-learn {}",
                            a[r],
                            b[r]
                        );
                    }
                }
                _ => panic!("{case}: label types differ"),
            }
        }
        Some("regressor") => {
            let pred = output(case, &outputs, names["prediction"].as_str().expect("name"));
            let d = max_diff(
                case,
                "prediction",
                &got(pred),
                &want(&sk["prediction"]),
                true,
            );
            assert!(
                d <= 1e-4,
                "{case} on {engine}: predictions differ from scikit-learn by {d} (relative)"
            );
        }
        Some("transform") => {
            let t = output(case, &outputs, names["transform"].as_str().expect("name"));
            let d = max_diff(case, "transform", &got(t), &want(&sk["transform"]), true);
            assert!(
                d <= 1e-5,
                "{case} on {engine}: differs from scikit-learn by {d}"
            );
        }
        other => panic!("{case}: unknown task {other:?}"),
    }
}

fn expected(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected.json"))
        .expect("json")
}

/// The pure-Rust path: every case loads on the onnx-ml engine (or the tree engine, which
/// `auto` prefers for a graph of one tree ensemble) with no ONNX Runtime involved.
#[test]
fn every_sklearn_export_serves_without_onnx_runtime() {
    for dir in fixtures() {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        let file = dir.join("model.onnx");
        let backend =
            ballast_engine::open_file(&file, EngineChoice::OnnxMl, &OpenOptions::default())
                .unwrap_or_else(|e| panic!("{case}: {e}"));
        check(&case, "onnx-ml", backend.as_ref(), &expected(&dir));
    }
}

#[test]
fn every_sklearn_export_serves_on_onnx_runtime_zipmap_included() {
    if !ort_ready() {
        return;
    }
    for dir in fixtures() {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        let file = dir.join("model.onnx");
        let backend =
            ballast_engine::open_file(&file, EngineChoice::OnnxRuntime, &OpenOptions::default())
                .unwrap_or_else(|e| panic!("{case}: {e}"));
        check(&case, "onnxruntime", backend.as_ref(), &expected(&dir));
    }
}

/// Where NaN means "missing" to the graph (it imputes, or it is a tree ensemble), the engine
/// says so and a model config need not; elsewhere NaN stays refused by default.
#[test]
fn imputing_graphs_accept_nan_by_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn");
    for (case, missing) in [
        ("imputer_scaler_logreg_zipmap", true),
        ("imputer_minmax_ridge", true),
        ("scaler_rf_regressor", true),
        ("scaler_logreg_tensor", false),
    ] {
        let file = root.join(case).join("model.onnx");
        let native =
            ballast_engine::open_file(&file, EngineChoice::OnnxMl, &OpenOptions::default())
                .unwrap();
        assert_eq!(native.nan_is_missing(), missing, "{case} on onnx-ml");
        assert_eq!(
            ballast_engine::graph::imputes_nan(&file),
            case.starts_with("imputer"),
            "{case}"
        );
        if ort_ready() {
            let ort = ballast_engine::open_file(
                &file,
                EngineChoice::OnnxRuntime,
                &OpenOptions::default(),
            )
            .unwrap();
            assert_eq!(
                ort.nan_is_missing(),
                case.starts_with("imputer"),
                "{case} on onnxruntime"
            );
        }
    }
}

/// tract, asked for explicitly, runs the exports made of standard operators only (an MLP
/// regressor) although skl2onnx leaves their batch dimension unnamed.
#[test]
fn tract_runs_standard_operator_exports_with_an_unnamed_batch_dimension() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn/mlp_regressor");
    let backend = ballast_engine::open_file(
        &dir.join("model.onnx"),
        EngineChoice::Tract,
        &OpenOptions::default(),
    )
    .unwrap_or_else(|e| panic!("mlp_regressor on tract: {e}"));
    check("mlp_regressor", "tract", backend.as_ref(), &expected(&dir));
}
