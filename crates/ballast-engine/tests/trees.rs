//! The native tree engine against the libraries' own predictions.
//!
//! Fixtures (`tests/fixtures/trees/<case>/`) come from `examples/make_trees.py`: a model file
//! written by XGBoost, LightGBM or skl2onnx/onnxmltools, 200 input rows (with NaN, unseen
//! categories, exact zeros and values exactly at split thresholds) and what xgboost, lightgbm or
//! onnxruntime predicted for them. Every output must match within 1e-6.

use std::path::{Path, PathBuf};

use ballast_core::{DataType, Tensor, TensorData};
use ballast_engine::Backend;
use ballast_engine::trees::TreeBackend;
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("data array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

fn tensor(name: &str, spec: &Value) -> Tensor {
    let data = numbers(&spec["data"]);
    let data = match spec["datatype"].as_str() {
        Some("FP32") => TensorData::F32(data.iter().map(|&x| x as f32).collect()),
        Some("FP64") => TensorData::F64(data),
        other => panic!("unexpected input datatype {other:?}"),
    };
    Tensor::new(name, shape(&spec["shape"]), data).expect("valid fixture tensor")
}

fn open(case: &str) -> (TreeBackend, Value) {
    let dir = fixtures().join(case);
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected.json"))
            .expect("json");
    let backend = match expected["kind"].as_str() {
        Some("xgboost") => TreeBackend::load_xgboost(&dir.join("model.json"), 1),
        Some("lightgbm") => TreeBackend::load_lightgbm(&dir.join("model.txt"), 1),
        Some("onnx") => TreeBackend::load_onnx(&dir.join("model.onnx"), 1),
        other => panic!("unknown kind {other:?}"),
    }
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    (backend, expected)
}

fn as_f64(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        other => panic!("unexpected output type {:?}", other.dtype()),
    }
}

fn check(case: &str) {
    let (backend, expected) = open(case);
    let sig = backend.signature().clone();
    let input_name = sig.inputs[0].name.clone();
    let input = tensor(&input_name, &expected["input"]);
    assert_eq!(
        sig.inputs[0].dtype.to_string(),
        expected["input"]["datatype"],
        "{case} input dtype"
    );
    let outputs = backend
        .infer(vec![input.clone()])
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let wanted = expected["outputs"].as_object().expect("outputs");
    assert_eq!(outputs.len(), wanted.len(), "{case}: output count");
    for out in &outputs {
        let want = &wanted[&out.name];
        assert!(!want.is_null(), "{case}: unexpected output {}", out.name);
        assert_eq!(
            out.dtype().to_string(),
            want["datatype"],
            "{case}/{} dtype",
            out.name
        );
        let want_shape = shape(&want["shape"]);
        let got_shape = out.shape.clone();
        assert_eq!(got_shape, want_shape, "{case}/{} shape", out.name);
        let (got, want) = (as_f64(&out.data), numbers(&want["data"]));
        let mut worst = (0.0f64, 0usize);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let d = (g - w).abs();
            if d > worst.0 || d.is_nan() {
                worst = (d, i);
            }
        }
        assert!(
            worst.0 <= TOLERANCE,
            "{case}/{}: element {} is {} but the library gave {} (|diff| {:e})",
            out.name,
            worst.1,
            got[worst.1],
            want[worst.1],
            worst.0
        );
    }

    // Batched == alone: each row on its own gives the same bytes as in the batch.
    let rows = input.rows();
    let width = input.row_len();
    for r in [0, rows / 2, rows - 1] {
        let row = Tensor::new(
            &input_name,
            vec![1, width],
            input.data.slice(r * width, (r + 1) * width),
        )
        .expect("row");
        let alone = backend.infer(vec![row]).expect("single row");
        for (a, b) in alone.iter().zip(&outputs) {
            let per_row = b.data.len() / rows;
            assert_eq!(
                a.data,
                b.data.slice(r * per_row, (r + 1) * per_row),
                "{case}/{}: row {r} alone differs from batched",
                a.name
            );
        }
    }
}

macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*
    };
}

fixture_tests!(
    xgb_binary,
    xgb_regression,
    xgb_multiclass,
    xgb_categorical,
    xgb_base_score,
    xgb_dart,
    lgb_binary,
    lgb_regression,
    lgb_multiclass,
    lgb_categorical,
    lgb_missing_zero,
    lgb_nan_as_missing_off,
    skl_rf_classifier,
    skl_gb_classifier,
    skl_gb_regressor,
    skl_rf_regressor,
    onnx_xgb_binary,
);

#[test]
fn every_fixture_directory_is_tested() {
    let listed = [
        "xgb_binary",
        "xgb_regression",
        "xgb_multiclass",
        "xgb_categorical",
        "xgb_base_score",
        "xgb_dart",
        "lgb_binary",
        "lgb_regression",
        "lgb_multiclass",
        "lgb_categorical",
        "lgb_missing_zero",
        "lgb_nan_as_missing_off",
        "skl_rf_classifier",
        "skl_gb_classifier",
        "skl_gb_regressor",
        "skl_rf_regressor",
        "onnx_xgb_binary",
    ];
    for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            listed.contains(&name.as_str()),
            "fixture {name} has no test"
        );
    }
}

#[test]
fn multithreaded_large_batches_equal_single_threaded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/fraud_xgb_300");
    let one = TreeBackend::load_xgboost(&dir.join("model.json"), 1).expect("load");
    let four = TreeBackend::load_xgboost(&dir.join("model.json"), 4).expect("load");
    let rows = 3000;
    let x: Vec<f32> = (0..rows * 12)
        .map(|i| {
            if i % 97 == 0 {
                f32::NAN
            } else {
                ((i * 7919) % 1000) as f32 / 250.0 - 2.0
            }
        })
        .collect();
    let input = Tensor::new("features", vec![rows, 12], TensorData::F32(x)).expect("tensor");
    let a = one.infer(vec![input.clone()]).expect("1 thread");
    let b = four.infer(vec![input]).expect("4 threads");
    assert_eq!(a, b);
    assert_eq!(a[0].shape, vec![rows]);
}

#[test]
fn bad_input_is_a_typed_error() {
    let (backend, _) = open("xgb_binary");
    let wrong_width =
        Tensor::new("features", vec![2, 5], TensorData::F32(vec![0.0; 10])).expect("t");
    let err = backend.infer(vec![wrong_width]).unwrap_err();
    assert_eq!(err.code(), ballast_core::ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("[-1,6]"), "{err}");
    let strings =
        Tensor::new("features", vec![1, 6], TensorData::Bytes(vec![vec![]; 6])).expect("t");
    let err = backend.infer(vec![strings]).unwrap_err();
    assert!(err.to_string().contains("FP32 or FP64"), "{err}");
    let err = backend.infer(vec![]).unwrap_err();
    assert!(err.to_string().contains("exactly one input"), "{err}");
}

#[test]
fn unsupported_graphs_and_files_fail_to_load_with_the_reason() {
    // An ONNX graph with ordinary ops is not a tree model.
    let mlp =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud/2/model.onnx");
    let err = TreeBackend::load_onnx(&mlp, 1).unwrap_err().to_string();
    assert!(
        err.contains("not supported by the native tree engine"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("model.json");
    std::fs::write(&junk, b"{\"not\": \"xgboost\"}").expect("write");
    let err = TreeBackend::load_xgboost(&junk, 1).unwrap_err().to_string();
    assert!(err.contains("not an XGBoost JSON model"), "{err}");
    let junk = dir.path().join("model.txt");
    std::fs::write(&junk, b"hello").expect("write");
    let err = TreeBackend::load_lightgbm(&junk, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a LightGBM text model"), "{err}");
}

#[test]
fn signatures_name_what_the_model_predicts() {
    let (b, _) = open("xgb_binary");
    let s = b.signature();
    assert_eq!(s.inputs[0].describe(), "features (FP32 [-1,6])");
    assert_eq!(s.outputs[0].describe(), "probability (FP32 [-1])");
    let (b, _) = open("lgb_multiclass");
    assert_eq!(
        b.signature().outputs[0].describe(),
        "probabilities (FP64 [-1,3])"
    );
    assert_eq!(b.signature().inputs[0].dtype, DataType::F64);
    let (b, _) = open("skl_rf_classifier");
    assert_eq!(b.signature().outputs[0].describe(), "label (INT64 [-1])");
    assert_eq!(b.engine(), "trees");
}

#[test]
fn tract_names_the_op_it_lacks_and_points_to_onnx_runtime() {
    // TreeEnsembleRegressor is an ONNX-ML op tract does not implement.
    let path = fixtures().join("skl_gb_regressor/model.onnx");
    let Err(err) = ballast_engine::tract::TractBackend::load(&path) else {
        panic!("tract loaded a TreeEnsembleRegressor graph");
    };
    let err = err.to_string();
    assert!(err.contains("TreeEnsembleRegressor"), "{err}");
    assert!(err.contains("ONNX Runtime backend"), "{err}");
}

/// XGBoost's UBJSON (`model.ubj`, its default since 2.1): every XGBoost fixture was also saved
/// as UBJSON by XGBoost itself; both files must give the same bytes, and a version directory
/// holding only `model.ubj` opens on the tree engine.
#[test]
fn ubjson_models_predict_exactly_as_their_json() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let dir = entry.expect("entry").path();
        let ubj = dir.join("model.ubj");
        if !ubj.is_file() {
            continue;
        }
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        let json = TreeBackend::load_xgboost(&dir.join("model.json"), 1).expect("json");
        let binary = TreeBackend::load_xgboost(&ubj, 1).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(json.signature(), binary.signature(), "{case}");
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let name = json.signature().inputs[0].name.clone();
        let input = tensor(&name, &expected["input"]);
        assert_eq!(
            json.infer(vec![input.clone()]).unwrap(),
            binary.infer(vec![input]).unwrap(),
            "{case}: UBJSON and JSON predictions differ"
        );
        seen += 1;

        let version = tempfile::tempdir().unwrap();
        std::fs::copy(&ubj, version.path().join("model.ubj")).unwrap();
        let opened = ballast_engine::open(version.path()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(opened.engine(), "trees");
    }
    assert!(seen >= 6, "only {seen} UBJSON fixtures");
}

/// A damaged UBJSON file says it was read as UBJSON and where it broke.
#[test]
fn truncated_ubjson_names_the_format() {
    let dir = fixtures().join("xgb_binary");
    let bytes = std::fs::read(dir.join("model.ubj")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.ubj");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = TreeBackend::load_xgboost(&path, 1).unwrap_err().to_string();
    assert!(err.contains("UBJSON"), "{err}");
}
