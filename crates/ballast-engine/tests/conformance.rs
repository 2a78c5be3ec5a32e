//! One conformance suite for every backend: signature discovery, every datatype the model
//! declares, batched result == rows alone, bad input → a typed error (never a panic), and
//! concurrent use from many threads giving the sequential results.
//!
//! Engines × models: tract and ONNX Runtime on the example ONNX models (FP32, FP64, INT32,
//! INT64, BOOL; ONNX Runtime also BYTES), the tree engine on XGBoost, LightGBM and ONNX-ML
//! files (FP32/FP64 in; FP32, FP64, INT64 out). ONNX Runtime comes from `find_library`; without
//! it its part is skipped with a message, unless BALLAST_REQUIRE_ORT=1 (set by `.ci/run`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast_core::{DataType, ErrorCode, ModelSignature, Tensor, TensorData};
use ballast_engine::onnxruntime::{OrtBackend, OrtOptions};
use ballast_engine::tract::TractBackend;
use ballast_engine::trees::TreeBackend;
use ballast_engine::{Backend, BackendError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(model: &str, version: u32) -> PathBuf {
    root().join(format!("examples/models/{model}/{version}/model.onnx"))
}

fn tree_fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/trees/{case}/{file}"))
}

/// Deterministic pseudo-random inputs for a signature: `batch` rows, other variable dims 4.
fn inputs(sig: &ModelSignature, batch: usize, seed: u64) -> Vec<Tensor> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    sig.inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(i, &d)| match (i, d) {
                    (0, -1) => batch,
                    (_, -1) => 4,
                    (_, d) => d as usize,
                })
                .collect();
            let n: usize = shape.iter().product();
            let data = match spec.dtype {
                DataType::F32 => {
                    TensorData::F32((0..n).map(|_| (next() * 8.0 - 4.0) as f32).collect())
                }
                DataType::F64 => TensorData::F64((0..n).map(|_| next() * 8.0 - 4.0).collect()),
                DataType::F16 => TensorData::F16(
                    (0..n)
                        .map(|_| ballast_core::tensor::f16::from_f64(next() * 8.0 - 4.0))
                        .collect(),
                ),
                DataType::U8 => TensorData::U8((0..n).map(|_| (next() * 255.0) as u8).collect()),
                DataType::I32 => {
                    TensorData::I32((0..n).map(|_| (next() * 200.0) as i32 - 100).collect())
                }
                DataType::I64 => {
                    TensorData::I64((0..n).map(|_| (next() * 200.0) as i64 - 100).collect())
                }
                DataType::Bool => TensorData::Bool((0..n).map(|_| next() > 0.5).collect()),
                DataType::Bytes => TensorData::Bytes(
                    (0..n)
                        .map(|_| format!("s{}", (next() * 1000.0) as u32).into_bytes())
                        .collect(),
                ),
            };
            Tensor::new(spec.name.clone(), shape, data).expect("valid tensor")
        })
        .collect()
}

fn rows_of(t: &Tensor, start: usize, end: usize) -> TensorData {
    let per = t.data.len() / t.rows().max(1);
    t.data.slice(start * per, end * per)
}

/// Equal, allowing floats one part in 1e6 apart (ONNX Runtime's reductions may round a row
/// differently by its memory alignment within a batch).
fn same(a: &TensorData, b: &TensorData) -> bool {
    match (a, b) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| p == q || (p - q).abs() <= 1e-6 * p.abs().max(q.abs()))
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| p == q || (p - q).abs() <= 1e-12 * p.abs().max(q.abs()))
        }
        _ => a == b,
    }
}

fn conform(name: &str, backend: Arc<dyn Backend>) {
    let sig = backend.signature().clone();
    // Signature discovery.
    assert!(!sig.inputs.is_empty(), "{name}: no inputs discovered");
    assert!(!sig.outputs.is_empty(), "{name}: no outputs discovered");
    for spec in sig.inputs.iter().chain(&sig.outputs) {
        assert!(!spec.name.is_empty(), "{name}: unnamed tensor");
        assert_eq!(
            spec.shape.first(),
            Some(&-1),
            "{name}: {} has no batch dim",
            spec.name
        );
    }

    // Every declared datatype goes through; outputs match the signature.
    let batch = 5;
    let full_in = inputs(&sig, batch, 7);
    let full = backend
        .infer(full_in.clone())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(full.len(), sig.outputs.len(), "{name}: output count");
    for (out, spec) in full.iter().zip(&sig.outputs) {
        assert_eq!(out.name, spec.name, "{name}: output order");
        assert_eq!(out.dtype(), spec.dtype, "{name}/{}: dtype", out.name);
        assert_eq!(
            out.shape.len(),
            spec.shape.len(),
            "{name}/{}: rank",
            out.name
        );
        assert_eq!(out.rows(), batch, "{name}/{}: rows", out.name);
    }

    // Batched == each row alone.
    for r in 0..batch {
        let row_in: Vec<Tensor> = full_in
            .iter()
            .map(|t| {
                let mut shape = t.shape.clone();
                shape[0] = 1;
                Tensor::new(t.name.clone(), shape, rows_of(t, r, r + 1)).expect("row")
            })
            .collect();
        let alone = backend
            .infer(row_in)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (a, b) in alone.iter().zip(&full) {
            assert!(
                same(&a.data, &rows_of(b, r, r + 1)),
                "{name}/{}: row {r} alone {:?} differs from batched {:?}",
                a.name,
                a.data,
                rows_of(b, r, r + 1)
            );
        }
    }

    // Bad input: a typed error, never a panic.
    let mut wrong_type = full_in.clone();
    wrong_type[0] = Tensor::new(
        wrong_type[0].name.clone(),
        wrong_type[0].shape.clone(),
        TensorData::Bytes(vec![b"x".to_vec(); wrong_type[0].data.len()]),
    )
    .expect("tensor");
    if sig.inputs[0].dtype != DataType::Bytes {
        expect_typed_error(name, "wrong datatype", backend.infer(wrong_type));
    }
    let mut wrong_shape = full_in.clone();
    let first = &wrong_shape[0];
    let n = first.data.len();
    wrong_shape[0] = Tensor::new(first.name.clone(), vec![n], first.data.clone()).expect("tensor");
    if sig.inputs[0].shape.len() > 1 {
        expect_typed_error(name, "wrong rank", backend.infer(wrong_shape));
    }
    expect_typed_error(name, "no inputs", backend.infer(Vec::new()));

    // Concurrent use gives the sequential results.
    let expected: Vec<Vec<Tensor>> = (0..8)
        .map(|s| backend.infer(inputs(&sig, 3, s)).expect("sequential"))
        .collect();
    std::thread::scope(|scope| {
        for (s, want) in expected.iter().enumerate() {
            let backend = backend.clone();
            let sig = &sig;
            scope.spawn(move || {
                for _ in 0..20 {
                    let got = backend.infer(inputs(sig, 3, s as u64)).expect("concurrent");
                    for (g, w) in got.iter().zip(want) {
                        assert!(same(&g.data, &w.data), "{name}: concurrent result differs");
                    }
                }
            });
        }
    });
}

fn expect_typed_error(name: &str, what: &str, r: Result<Vec<Tensor>, BackendError>) {
    match r {
        Ok(_) => panic!("{name}: {what} was accepted"),
        Err(e) => assert!(
            matches!(e.code(), ErrorCode::InvalidArgument | ErrorCode::Internal),
            "{name}: {what}: {e}"
        ),
    }
}

/// The ONNX Runtime library, or None (skip) when absent and not required.
fn ort_library() -> Option<std::path::PathBuf> {
    match ballast_engine::onnxruntime::find_library(None) {
        Ok(lib) => Some(lib),
        Err(e) if std::env::var("BALLAST_REQUIRE_ORT").as_deref() == Ok("1") => {
            panic!("BALLAST_REQUIRE_ORT=1 but ONNX Runtime was not found: {e}")
        }
        Err(e) => {
            eprintln!("skipping ONNX Runtime checks: library not found ({e})");
            None
        }
    }
}

fn ort(path: &Path) -> Option<Arc<dyn Backend>> {
    let library = ort_library()?;
    let opts = OrtOptions {
        library: Some(library),
        intra_op_threads: 1,
        sessions: 2,
    };
    Some(Arc::new(
        OrtBackend::load(path, &opts).unwrap_or_else(|e| panic!("{e}")),
    ))
}

#[test]
fn tract_conforms() {
    for (model, version) in [("fraud", 1), ("fraud", 2), ("dtypes", 1), ("seqmean", 1)] {
        let b = TractBackend::load(&example(model, version)).unwrap_or_else(|e| panic!("{e}"));
        conform(&format!("tract/{model}"), Arc::new(b));
    }
}

#[test]
fn onnxruntime_conforms() {
    let strings = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/strings.onnx");
    for path in [
        example("fraud", 2),
        example("dtypes", 1),
        example("seqmean", 1),
        strings,
    ] {
        if let Some(b) = ort(&path) {
            conform(&format!("onnxruntime/{}", path.display()), b);
        }
    }
}

#[test]
fn trees_conform() {
    for (case, file, load) in [
        (
            "xgb_binary",
            "model.json",
            TreeBackend::load_xgboost as fn(&Path, usize) -> _,
        ),
        ("xgb_multiclass", "model.json", TreeBackend::load_xgboost),
        ("xgb_categorical", "model.json", TreeBackend::load_xgboost),
        ("lgb_regression", "model.txt", TreeBackend::load_lightgbm),
        ("lgb_categorical", "model.txt", TreeBackend::load_lightgbm),
        ("skl_rf_classifier", "model.onnx", TreeBackend::load_onnx),
        ("skl_gb_regressor", "model.onnx", TreeBackend::load_onnx),
    ] {
        let b = load(&tree_fixture(case, file), 1).unwrap_or_else(|e| panic!("{case}: {e}"));
        conform(&format!("trees/{case}"), Arc::new(b));
    }
}

#[test]
fn auto_selection_picks_the_engine_the_file_calls_for() {
    use ballast_core::EngineChoice;
    use ballast_engine::{OpenOptions, open_with};
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |from: &Path, to: &str| {
        let d = dir.path().join(to);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::copy(from, d.join(from.file_name().expect("name"))).expect("copy");
        d
    };
    let xgb = copy(&tree_fixture("xgb_binary", "model.json"), "xgb");
    let lgb = copy(&tree_fixture("lgb_binary", "model.txt"), "lgb");
    let skl = copy(&tree_fixture("skl_rf_classifier", "model.onnx"), "skl");
    let mlp = copy(&example("fraud", 2), "mlp");
    let auto = OpenOptions::default();
    assert_eq!(open_with(&xgb, &auto).expect("xgb").engine(), "trees");
    assert_eq!(open_with(&lgb, &auto).expect("lgb").engine(), "trees");
    assert_eq!(open_with(&skl, &auto).expect("skl").engine(), "trees");
    let tract = OpenOptions {
        backend: EngineChoice::Tract,
        ..OpenOptions::default()
    };
    assert_eq!(open_with(&mlp, &tract).expect("mlp").engine(), "tract");
    // A tree file cannot run on an ONNX engine: a clear error, not a fallback.
    let Err(err) = open_with(&xgb, &tract) else {
        panic!("tract accepted an XGBoost file")
    };
    assert!(err.to_string().contains("tree engine"), "{err}");
    let Err(err) = open_with(dir.path(), &auto) else {
        panic!("an empty directory loaded")
    };
    assert!(
        err.to_string()
            .contains("model.onnx, model.json, model.ubj, model.txt"),
        "{err}"
    );
    // A file named in config, its format from the extension or stated.
    let named = dir.path().join("named");
    std::fs::create_dir_all(&named).expect("mkdir");
    std::fs::copy(
        tree_fixture("lgb_binary", "model.txt"),
        named.join("booster.bin"),
    )
    .expect("copy");
    let lgb_named = OpenOptions {
        model_file: Some("booster.bin".into()),
        format: Some(ballast_core::ModelFormat::Lightgbm),
        ..OpenOptions::default()
    };
    let b = open_with(&named, &lgb_named).expect("named lightgbm file");
    assert_eq!(b.signature().outputs[0].name, "probability");
    let unknown = OpenOptions {
        model_file: Some("booster.bin".into()),
        ..OpenOptions::default()
    };
    let Err(err) = open_with(&named, &unknown) else {
        panic!("a .bin file loaded without a format")
    };
    assert!(err.to_string().contains("set format"), "{err}");
    if ort_library().is_none() {
        assert_eq!(open_with(&mlp, &auto).expect("mlp").engine(), "tract");
        return;
    }
    // With the library present, auto runs plain ONNX graphs on ONNX Runtime.
    assert_eq!(open_with(&mlp, &auto).expect("mlp").engine(), "onnxruntime");
}
