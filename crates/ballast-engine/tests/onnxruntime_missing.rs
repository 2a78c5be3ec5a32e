//! ONNX Runtime initialisation when the library is missing or is not ONNX Runtime: errors that
//! name the path, never a panic. Initialisation is process-global, so this is its own test
//! binary (own process), and everything that calls `init` runs in one test, in order.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

use ballast_engine::BackendError;
use ballast_engine::onnxruntime::{self, OrtBackend, OrtOptions};

fn load_error(result: Result<(), BackendError>) -> (String, String) {
    match result {
        Err(BackendError::Load { path, reason }) => (path, reason),
        other => panic!("expected BackendError::Load, got {other:?}"),
    }
}

#[test]
fn find_library_names_a_configured_path_that_does_not_exist() {
    let missing = Path::new("/nonexistent/ballast/libonnxruntime.so.1.32.0");
    let err = onnxruntime::find_library(Some(missing)).unwrap_err();
    assert!(
        err.contains("/nonexistent/ballast/libonnxruntime.so.1.32.0"),
        "{err}"
    );
    let err = onnxruntime::available(Some(missing)).unwrap_err();
    assert!(err.contains("/nonexistent/ballast"), "{err}");
}

#[test]
fn init_failures_are_errors_and_the_real_library_still_loads_afterwards() {
    // 1. A path that does not exist.
    let missing = Path::new("/nonexistent/ballast/libonnxruntime.so");
    let (path, reason) = load_error(onnxruntime::init(missing));
    assert_eq!(path, missing.display().to_string());
    assert!(reason.contains("does not exist"), "{reason}");

    // 2. A file that is not a shared library: ort would panic in `dlopen`'s caller.
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("libonnxruntime.so");
    std::fs::write(&text, "just some text, not an ELF file\n").unwrap();
    let (path, reason) = load_error(onnxruntime::init(&text));
    assert_eq!(path, text.display().to_string());
    assert!(reason.contains("cannot load ONNX Runtime"), "{reason}");

    // 3. A real shared library that is not ONNX Runtime (no `OrtGetApiBase`), where present.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file());
    if let Some(libm) = libm {
        let (path, reason) = load_error(onnxruntime::init(&libm));
        assert_eq!(path, libm.display().to_string());
        assert!(reason.contains("OrtGetApiBase"), "{reason}");
    }

    // 4. A model load naming a bad library fails the same way.
    let opts = OrtOptions {
        library: Some(text.clone()),
        ..OrtOptions::default()
    };
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud/2/model.onnx");
    match OrtBackend::load(&model, &opts) {
        Err(BackendError::Load { path, reason }) => {
            assert!(path.ends_with("model.onnx"), "{path}");
            assert!(reason.contains(&text.display().to_string()), "{reason}");
        }
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("loaded a model with a bogus library"),
    }

    // 5. None of that poisoned the process: the real library loads and runs a model.
    let lib = match onnxruntime::find_library(None) {
        Ok(lib) => lib,
        Err(e) if std::env::var("BALLAST_REQUIRE_ORT").as_deref() == Ok("1") => {
            panic!("BALLAST_REQUIRE_ORT=1 but ONNX Runtime was not found: {e}")
        }
        Err(e) => {
            eprintln!("skipping the real-library step: ONNX Runtime not found ({e})");
            return;
        }
    };
    onnxruntime::init(&lib).unwrap_or_else(|e| panic!("{e}"));
    OrtBackend::load(&model, &OrtOptions::default()).unwrap_or_else(|e| panic!("{e}"));
}
