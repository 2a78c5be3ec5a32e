//! Engine hot path: the fraud MLP through tract at batch 1, 64 and 1024, single thread.
//! `ballast bench --in-process` reports the same as rows/s.

use std::hint::black_box;
use std::path::Path;

use ballast_core::{Tensor, TensorData};
use ballast_engine::Backend;
use ballast_engine::tract::TractBackend;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn engine(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud/2/model.onnx");
    let backend = TractBackend::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("tract_fraud_mlp");
    for batch in [1usize, 64, 1024] {
        let input = Tensor::new(
            "features",
            vec![batch, 12],
            TensorData::F32(
                (0..batch * 12)
                    .map(|i| (i % 17) as f32 * 0.3 - 2.0)
                    .collect(),
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
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

criterion_group!(benches, engine);
criterion_main!(benches);
