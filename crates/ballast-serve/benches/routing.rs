//! Per-request routing: resolving an unversioned request with no policy (one atomic load and a
//! map lookup), under a canary + shadow policy (plus a random draw), sticky by header (plus a
//! hash), and recording one arm's outcome. Compare the policy cases with `route_plain`: that
//! difference is what a traffic policy costs each request.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use ballast_core::traffic::{Canary, Shadow, TrafficPolicy};
use ballast_core::{DataType, ModelConfig, ModelSignature, Tensor, TensorSpec};
use ballast_engine::{Backend, BackendError};
use ballast_serve::traffic::{ActiveTraffic, ArmStats, RolloutStats};
use ballast_serve::{ModelEntry, ModelRepository, ModelSpec};
use criterion::{Criterion, criterion_group, criterion_main};

struct Echo(ModelSignature);

impl Backend for Echo {
    fn engine(&self) -> &'static str {
        "bench"
    }
    fn signature(&self) -> &ModelSignature {
        &self.0
    }
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        Ok(inputs)
    }
}

fn routing(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let repo = ModelRepository::empty();
    let signature = ModelSignature {
        inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 1])],
        outputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 1])],
    };
    let launch = |name: &str, version| {
        rt.block_on(repo.launch(
            ModelSpec {
                name: name.into(),
                version,
                backend: Arc::new(Echo(signature.clone())),
                config: ModelConfig::default(),
                dir: None,
            },
            false,
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (v1, v2) = (launch("m", 1), launch("m", 2));
    let versions: BTreeMap<u64, _> = [(1, v1.clone()), (2, v2.clone())].into();
    let _enter = rt.enter();
    repo.install(ModelEntry {
        name: "plain".into(),
        versions: versions.clone(),
        aliases: [("production".to_string(), 1)].into(),
        default: 1,
        traffic: None,
        unserved: Vec::new(),
    });
    let with_policy = |sticky: Option<&str>| ModelEntry {
        name: if sticky.is_some() { "sticky" } else { "canary" }.into(),
        versions: versions.clone(),
        aliases: BTreeMap::new(),
        default: 1,
        traffic: Some(Arc::new(ActiveTraffic {
            policy: TrafficPolicy {
                canary: Some(Canary {
                    version: 2,
                    percent: 10.0,
                    sticky_header: sticky.map(str::to_string),
                }),
                shadow: Some(Shadow {
                    version: 2,
                    percent: 1.0,
                }),
            },
            baseline: v1.clone(),
            canary: Some(v2.clone()),
            shadow: Some(v2.clone()),
            stats: Arc::new(RolloutStats::default()),
        })),
        unserved: Vec::new(),
    };
    repo.install(with_policy(None));
    repo.install(with_policy(Some("x-user")));
    let no_header = |_: &str| None;
    let header = |_: &str| Some(&b"user-12345"[..]);
    c.bench_function("route_plain", |b| {
        b.iter(|| black_box(repo.route(black_box("plain"), None, no_header)).is_ok())
    });
    c.bench_function("route_alias", |b| {
        b.iter(|| black_box(repo.route(black_box("plain"), Some("production"), no_header)).is_ok())
    });
    c.bench_function("route_canary_shadow", |b| {
        b.iter(|| black_box(repo.route(black_box("canary"), None, no_header)).is_ok())
    });
    c.bench_function("route_sticky", |b| {
        b.iter(|| black_box(repo.route(black_box("sticky"), None, header)).is_ok())
    });
    let arm = ArmStats::default();
    c.bench_function("arm_record", |b| {
        b.iter(|| arm.record(black_box(Duration::from_micros(850)), None, None))
    });
    // A success with its engine call: the service-time histogram the latency gate judges.
    let served = ballast_serve::request::Timing {
        queue: Duration::from_micros(40),
        compute: Duration::from_micros(120),
        batch_rows: 6,
    };
    c.bench_function("arm_record_served", |b| {
        b.iter(|| {
            arm.record(
                black_box(Duration::from_micros(850)),
                None,
                Some(black_box(&served)),
            )
        })
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
