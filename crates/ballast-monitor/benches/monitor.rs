//! The monitor's work per observation, on its own thread: counting a request's rows into the
//! reference bins of its version's time and row windows (and the quality counters). The
//! reference is the demo's fraud sample (12 numeric features); requests of 1 and 16 rows.
//! `bench/monitor_cost.sh` measures the same work end to end, as the served throughput it
//! costs; this isolates it so a change to the counting shows as a ratio.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
use ballast_monitor::{Monitor, ProfileOptions, WindowOptions, online, profile_csv};
use ballast_serve::context::{Priority, Protocol, RequestContext};
use ballast_serve::observe::{Observation, Observer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn observations(rows: usize, n: usize) -> Vec<Observation> {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/fraud_sample.csv");
    let text = std::fs::read_to_string(reference).unwrap_or_else(|e| panic!("{e}"));
    let values: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .take(12)
                .map(|x| x.parse().unwrap_or(0.0))
                .collect()
        })
        .collect();
    let model: Arc<str> = Arc::from("fraud");
    let version: Arc<str> = Arc::from("1");
    (0..n)
        .map(|i| {
            let data: Vec<f32> = (0..rows)
                .flat_map(|r| values[(i * rows + r) % values.len()].clone())
                .collect();
            let input = Tensor::new("features", vec![rows, 12], TensorData::F32(data))
                .unwrap_or_else(|e| panic!("{e}"));
            let ctx = RequestContext::new(Protocol::Http);
            Observation {
                id: ctx.id.clone(),
                trace: None,
                finished: SystemTime::now(),
                elapsed: Duration::from_micros(50),
                protocol: Protocol::Http,
                priority: Priority::Default,
                model: model.clone(),
                version: version.clone(),
                arm: None,
                timing: None,
                error: None,
                inputs: Arc::from(vec![input]),
                outputs: Arc::from(Vec::new()),
            }
        })
        .collect()
}

fn monitor(c: &mut Criterion) {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/fraud_sample.csv");
    let profile =
        profile_csv(&reference, &ProfileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let signature = ModelSignature {
        inputs: vec![TensorSpec::new("features", DataType::F32, vec![-1, 12])],
        outputs: vec![TensorSpec::new("probability", DataType::F32, vec![-1, 1])],
    };
    let features = online::features(&profile, &signature).unwrap_or_else(|e| panic!("{e}"));
    let m = Monitor::new(WindowOptions {
        window: Duration::from_secs(3600),
        rows: 1_000_000,
        ..WindowOptions::default()
    });
    m.watch("fraud", "1", 0, &reference, features, profile.rows);
    let mut group = c.benchmark_group("monitor_observe");
    for rows in [1usize, 16] {
        let batch = observations(rows, 256);
        group.throughput(Throughput::Elements((rows * 256) as u64));
        group.bench_function(format!("256_requests_of_{rows}_rows"), |b| {
            b.iter(|| m.observe(black_box(&batch)))
        });
    }
    group.finish();
}

criterion_group!(benches, monitor);
criterion_main!(benches);
