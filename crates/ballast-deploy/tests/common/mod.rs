//! Harness for registry-backed serving: a registry in a temp data dir, a real server on
//! 127.0.0.1:0 fed by a deployer, generated XGBoost models, and a closed-loop HTTP load that
//! counts every status it gets.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail loudly by design
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ballast_api::{ApiConfig, Server, ServerHandle};
use ballast_core::{ModelConfig, ModelSignature, Tensor};
use ballast_deploy::{DeployOptions, Deployer, EngineLoader, Loader};
use ballast_engine::{Backend, BackendError};
use ballast_registry::store::ModelCard;
use ballast_registry::{PushRequest, Registry, RegistryOptions};
use ballast_serve::ModelRepository;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub const FEATURES: usize = 8;

pub fn card() -> ModelCard {
    ModelCard {
        owner: Some("risk-team".into()),
        description: Some("test model".into()),
        intended_use: Some("tests".into()),
        trained_on: Some("s3://data/fraud@2026-11-01".into()),
        metrics: [("auc".to_string(), 0.91)].into(),
    }
}

/// An XGBoost JSON model (binary:logistic): `trees` complete trees of depth 3 over
/// `features` inputs; leaf values depend on `seed`; `padding` more trees with zero leaves
/// (same outputs, more work).
pub fn xgb_model(features: usize, trees: usize, seed: u32, padding: usize) -> String {
    let mut out = Vec::new();
    for t in 0..trees + padding {
        let depth = 3;
        let n = (1 << (depth + 1)) - 1;
        let (mut left, mut right, mut idx, mut cond, mut dl) =
            (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..n {
            if i < (1 << depth) - 1 {
                left.push(2 * i as i64 + 1);
                right.push(2 * i as i64 + 2);
                idx.push((t + i) % features);
                cond.push(((i * 7 + t) % 10) as f32 / 10.0 - 0.5);
            } else {
                left.push(-1);
                right.push(-1);
                idx.push(0);
                let v = if t < trees {
                    (((i as u32 * 31 + t as u32 * 17 + seed * 13) % 21) as f32 - 10.0) / 50.0
                } else {
                    0.0
                };
                cond.push(v);
            }
            dl.push(i64::from(i % 2 == 0));
        }
        out.push(serde_json::json!({
            "left_children": left, "right_children": right, "split_indices": idx,
            "split_conditions": cond, "default_left": dl,
            "tree_param": {"num_nodes": n.to_string(), "size_leaf_vector": "1"}
        }));
    }
    serde_json::json!({"learner": {
        "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": features.to_string()},
        "objective": {"name": "binary:logistic"},
        "gradient_booster": {"name": "gbtree", "model": {"trees": out, "tree_info": vec![0; trees + padding]}}
    }})
    .to_string()
}

/// A retrain of `model_json`: every leaf scaled by `factor`, so its probabilities move a
/// little (a few hundredths) and its work is the same.
pub fn retrained(model_json: &str, factor: f64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(model_json).unwrap();
    let trees = v["learner"]["gradient_booster"]["model"]["trees"]
        .as_array_mut()
        .unwrap();
    for tree in trees {
        let left: Vec<i64> = tree["left_children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let cond = tree["split_conditions"].as_array_mut().unwrap();
        for (i, c) in cond.iter_mut().enumerate() {
            if left[i] == -1 {
                *c = serde_json::json!(c.as_f64().unwrap() * factor);
            }
        }
    }
    v.to_string()
}

/// Writes a version directory holding `model.json` (and optional extra files).
pub fn version_dir(root: &Path, name: &str, model_json: &str, extra: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.json"), model_json).unwrap();
    for (f, text) in extra {
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}

pub async fn push(registry: &Registry, dir: &Path, model: &str) -> u64 {
    registry
        .push(
            dir,
            PushRequest {
                name: model.into(),
                card: card(),
                actor: "test".into(),
                config_toml: Some("max_batch_size = 64\n".into()),
                // The tests set production themselves (a first version would otherwise take
                // it, and stay warm as the previous production after their promote).
                no_promote: true,
            },
        )
        .await
        .unwrap()
        .version
        .version
}

/// The real engines, except that a version directory holding a `FAULT` file gets its engine
/// wrapped: `broken` fails every call (so its warm-up fails), `error` fails every call with
/// real data (all-zero warm-up rows pass), `errors2` fails one call in 50 with real data (+2
/// points of error rate), `slow` makes every call 10× slower (at least 30 ms), `slow3` runs
/// the model three times per call (3× the CPU, as a model three times as big). This stands
/// in for a candidate that is broken in ways a file cannot show at load time.
pub struct FaultLoader(pub EngineLoader);

impl Loader for FaultLoader {
    fn load(
        &self,
        dir: &Path,
        config: &ModelConfig,
    ) -> Result<Arc<dyn Backend>, ballast_core::Error> {
        let inner = self.0.load(dir, config)?;
        match std::fs::read_to_string(dir.join("FAULT"))
            .ok()
            .as_deref()
            .map(str::trim)
        {
            Some(fault) => {
                let mode = match fault {
                    "broken" => Fault::Broken,
                    "error" => Fault::Error,
                    "errors2" => Fault::OneInFifty,
                    "slow" => Fault::Slow,
                    "slow3" => Fault::ThreeTimes,
                    other => panic!("unknown FAULT {other:?}"),
                };
                Ok(Arc::new(Faulty {
                    inner,
                    mode,
                    calls: AtomicU64::new(0),
                }))
            }
            None => Ok(inner),
        }
    }
}

#[derive(PartialEq)]
enum Fault {
    Broken,
    Error,
    OneInFifty,
    Slow,
    ThreeTimes,
}

struct Faulty {
    inner: Arc<dyn Backend>,
    mode: Fault,
    calls: AtomicU64,
}

impl Backend for Faulty {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    fn signature(&self) -> &ModelSignature {
        self.inner.signature()
    }
    fn nan_is_missing(&self) -> bool {
        self.inner.nan_is_missing()
    }
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let real_data = inputs.iter().any(|t| match &t.data {
            ballast_core::TensorData::F32(v) => v.iter().any(|x| *x != 0.0),
            _ => true,
        });
        let nth = self.calls.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            Fault::Broken => return Err(BackendError::Compute("injected failure".into())),
            Fault::Error if real_data => {
                return Err(BackendError::Compute("injected failure".into()));
            }
            Fault::OneInFifty if real_data && nth % 50 == 49 => {
                return Err(BackendError::Compute(
                    "injected failure (1 call in 50)".into(),
                ));
            }
            Fault::Slow => {
                let started = std::time::Instant::now();
                let out = self.inner.infer(inputs)?;
                std::thread::sleep((started.elapsed() * 9).max(Duration::from_millis(30)));
                return Ok(out);
            }
            Fault::ThreeTimes => {
                self.inner.infer(inputs.clone())?;
                self.inner.infer(inputs.clone())?;
            }
            _ => {}
        }
        self.inner.infer(inputs)
    }
}

/// Tests in one binary run in parallel, each with its own load; the alias-flip tests hold this
/// lock so that their flip-time bound measures the flip, not three loads on two cores. The
/// rollout gate tests do not: their verdicts must hold on a busy machine.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub registry: Arc<Registry>,
    pub deployer: Arc<Deployer>,
    pub handle: ServerHandle,
    pub http: String,
    pub task: tokio::task::JoinHandle<std::io::Result<usize>>,
}

pub async fn registry_at(dir: &Path) -> Registry {
    Registry::open(RegistryOptions::new(dir)).await.unwrap()
}

/// A server fed by a deployer over the registry in `dir` (its own `Registry` handle, as a
/// separate `ballast serve` process would have).
pub async fn start(dir: tempfile::TempDir) -> Stack {
    let api = ApiConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        max_request_bytes: 1 << 20,
        drain_grace: Duration::from_secs(5),
        ..ApiConfig::default()
    };
    let server = Server::bind(api, ballast_serve::Lifecycle::new())
        .await
        .unwrap();
    let token = CancellationToken::new();
    let handle = server.handle(token.clone()).unwrap();
    let registry = Arc::new(registry_at(dir.path()).await);
    let repo = Arc::new(ModelRepository::empty());
    let deployer = Arc::new(Deployer::new(
        registry.clone(),
        repo.clone(),
        Arc::new(FaultLoader(EngineLoader {
            onnxruntime_library: None,
        })),
        DeployOptions {
            poll_interval: Duration::from_millis(100),
            warmup: true,
            load_retry: Duration::from_millis(300),
        },
    ));
    deployer.reconcile().await.unwrap();
    handle.set_repository(repo);
    tokio::spawn(deployer.clone().run(token.clone()));
    let task = tokio::spawn(server.run(token));
    Stack {
        http: format!("http://{}", handle.http_addr),
        dir,
        registry,
        deployer,
        handle,
        task,
    }
}

pub fn body(features: usize, seed: u64) -> String {
    let data: Vec<f32> = (0..features)
        .map(|i| ((seed * 7919 + i as u64 * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    serde_json::json!({"inputs": [{"name": "features", "shape": [1, features], "datatype": "FP32", "data": data}]})
        .to_string()
}

/// Closed-loop load: `workers` clients posting to `/v2/models/{model}/infer` until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    /// Requests sent (answered or not).
    pub sent: Arc<AtomicU64>,
    /// Status (or "transport") → count, for every non-200.
    pub failures: Arc<Mutex<BTreeMap<String, u64>>>,
    /// model_version of the latest response.
    pub last_version: Arc<Mutex<String>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(http: &str, model: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let sent_total = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(BTreeMap::new()));
        let last_version = Arc::new(Mutex::new(String::new()));
        let url = format!("{http}/v2/models/{model}/infer");
        let tasks = (0..workers)
            .map(|w| {
                let (stop, ok, sent_total, failures, last, url) = (
                    stop.clone(),
                    ok.clone(),
                    sent_total.clone(),
                    failures.clone(),
                    last_version.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut i = w as u64 * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        sent_total.fetch_add(1, Ordering::Relaxed);
                        let sent = client
                            .post(&url)
                            .header("x-user", format!("user-{}", i % 97))
                            .body(body(FEATURES, i))
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == 200 => {
                                let v: serde_json::Value = r.json().await.unwrap_or_default();
                                ok.fetch_add(1, Ordering::Relaxed);
                                if let Some(version) = v["model_version"].as_str() {
                                    *last.lock() = version.to_string();
                                }
                            }
                            Ok(r) => {
                                let status = r.status().as_u16().to_string();
                                let text = r.text().await.unwrap_or_default();
                                *failures
                                    .lock()
                                    .entry(format!("{status} {text}"))
                                    .or_default() += 1;
                            }
                            Err(e) => {
                                *failures.lock().entry(format!("transport {e}")).or_default() += 1;
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            sent: sent_total,
            failures,
            last_version,
            tasks,
        }
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub async fn finish(self) -> (u64, BTreeMap<String, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let failures = self.failures.lock().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// Waits until `cond` holds, polling every 10 ms; returns the time it took.
/// Polls rollout `id` until it is no longer running; panics after `limit`.
pub async fn decided(
    stack: &Stack,
    id: i64,
    limit: Duration,
) -> ballast_registry::store::RolloutRecord {
    let start = std::time::Instant::now();
    loop {
        let now = stack.registry.store.get_rollout(id).await.unwrap().unwrap();
        if now.state != ballast_registry::store::RolloutState::Running {
            return now;
        }
        assert!(
            start.elapsed() < limit,
            "rollout {id} undecided after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

pub mod trials;
