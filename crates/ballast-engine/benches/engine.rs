//! Engine hot path: the fraud MLP at batch 1, 64 and 1024, single thread, through tract and
//! through ONNX Runtime (1 intra-op thread) in the same run. Throughput is rows, so criterion
//! reports rows/s. `ballast bench --in-process` reports the same for the serving engine.
//! ONNX Runtime is skipped, with a note, when its library cannot be found.

use std::hint::black_box;
use std::path::Path;

use ballast_core::{Tensor, TensorData};
use ballast_engine::Backend;
use ballast_engine::onnxruntime::{self, OrtBackend, OrtOptions};
use ballast_engine::tract::TractBackend;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCHES: [usize; 3] = [1, 64, 1024];

fn features(batch: usize) -> Tensor {
    Tensor::new(
        "features",
        vec![batch, 12],
        TensorData::F32(
            (0..batch * 12)
                .map(|i| (i % 17) as f32 * 0.3 - 2.0)
                .collect(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn bench_backend(c: &mut Criterion, group: &str, backend: &dyn Backend) {
    let mut group = c.benchmark_group(group);
    for batch in BATCHES {
        let input = features(batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| {
                backend
                    .infer(black_box(vec![input.clone()]))
                    .map(|o| o.len())
            })
        });
    }
    group.finish();
}

fn engine(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud/2/model.onnx");
    let tract = TractBackend::load(&path).unwrap_or_else(|e| panic!("{e}"));
    bench_backend(c, "tract_fraud_mlp", &tract);

    match onnxruntime::available(None) {
        Ok(_) => {
            let opts = OrtOptions {
                intra_op_threads: 1,
                ..OrtOptions::default()
            };
            let ort = OrtBackend::load(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
            bench_backend(c, "onnxruntime_fraud_mlp", &ort);
        }
        Err(e) => eprintln!("skipping onnxruntime_fraud_mlp: {e}"),
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
