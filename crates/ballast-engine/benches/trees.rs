//! Tree-ensemble hot path: the 300-tree XGBoost fraud model (depth 6) at batch 1, 64 and 1024,
//! single thread: the native tree engine on the XGBoost JSON and on the same trees as an ONNX
//! TreeEnsembleClassifier, and ONNX Runtime on that ONNX file (when its library is found).
//! `ballast bench --in-process DIR --model M --engines onnxruntime,trees` prints the same as
//! ratios, interleaved in rounds.

use std::hint::black_box;
use std::path::Path;

use ballast_core::{Tensor, TensorData};
use ballast_engine::Backend;
use ballast_engine::trees::TreeBackend;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn rows(batch: usize) -> Tensor {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let data = (0..batch * 12)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    Tensor::new("features", vec![batch, 12], TensorData::F32(data))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn trees(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/fraud_xgb_300");
    let native =
        TreeBackend::load_xgboost(&dir.join("model.json"), 1).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("fraud_xgb_300");
    for batch in [1usize, 64, 1024] {
        let input = rows(batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("native/batch_{batch}"), |b| {
            b.iter(|| {
                native
                    .infer(black_box(vec![input.clone()]))
                    .map(|o| o.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, trees);
criterion_main!(benches);
