//! The onnx-ml engine's hot path against ONNX Runtime in the same run: scikit-learn exports
//! from the test matrix (a scaler + logistic regression pipeline with ZipMap, an MLP
//! classifier, an imputer + scaler + ridge regressor) at batch 1, 64 and 1024, one thread.
//! Throughput is rows, so criterion reports rows/s; the ratio onnx-ml / ONNX Runtime is the
//! figure to read. ONNX Runtime is skipped, with a note, when its library cannot be found.

use std::hint::black_box;
use std::path::Path;

use ballast_core::{EngineChoice, Tensor, TensorData};
use ballast_engine::{Backend, OpenOptions, onnxruntime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCHES: [usize; 3] = [1, 64, 1024];
const CASES: [&str; 3] = [
    "scaler_logreg_zipmap",
    "mlp_classifier_tensor",
    "imputer_minmax_ridge",
];

fn input(name: &str, batch: usize) -> Tensor {
    Tensor::new(
        name,
        vec![batch, 8],
        TensorData::F32(
            (0..batch * 8)
                .map(|i| (i % 13) as f32 * 0.25 - 1.5)
                .collect(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn bench_backend(c: &mut Criterion, group: &str, backend: &dyn Backend) {
    let name = backend.signature().inputs[0].name.clone();
    let mut group = c.benchmark_group(group);
    for batch in BATCHES {
        let x = input(&name, batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| backend.infer(black_box(vec![x.clone()])).map(|o| o.len()))
        });
    }
    group.finish();
}

fn sklearn(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn");
    let ort = onnxruntime::available(None).is_ok();
    if !ort {
        eprintln!("ONNX Runtime not found: benchmarking the onnx-ml engine alone");
    }
    for case in CASES {
        let file = root.join(case).join("model.onnx");
        let opts = OpenOptions {
            threads: 1,
            concurrent_calls: 1,
            ..OpenOptions::default()
        };
        let native = ballast_engine::open_file(&file, EngineChoice::OnnxMl, &opts)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        bench_backend(c, &format!("onnx_ml/{case}"), native.as_ref());
        if ort {
            let backend = ballast_engine::open_file(&file, EngineChoice::OnnxRuntime, &opts)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            bench_backend(c, &format!("onnxruntime/{case}"), backend.as_ref());
        }
    }
}

criterion_group!(benches, sklearn);
criterion_main!(benches);
