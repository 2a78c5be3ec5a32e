//! Shared test harness: a real server on 127.0.0.1:0 (HTTP and gRPC) over either the example
//! model repository or test engines.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail loudly by design
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ballast_api::{ApiConfig, Server, ServerHandle};
use ballast_core::{DataType, ModelConfig, ModelSignature, Tensor, TensorData, TensorSpec};
use ballast_engine::{Backend, BackendError};
use ballast_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use ballast_serve::repository::ModelSpec;
use ballast_serve::{ModelRepository, RepositoryOptions};
use tokio_util::sync::CancellationToken;

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

pub struct TestServer {
    pub handle: ServerHandle,
    pub http: String,
    pub grpc: String,
    pub task: tokio::task::JoinHandle<std::io::Result<usize>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn grpc_client(&self) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
        GrpcInferenceServiceClient::connect(self.grpc.clone())
            .await
            .expect("connect gRPC")
            .max_decoding_message_size(64 << 20)
    }

    /// Cancels and waits for the drain; returns requests left in flight.
    pub async fn stop(self) -> usize {
        self.handle.shutdown.cancel();
        self.task.await.expect("server task").expect("server io")
    }
}

pub fn api_config() -> ApiConfig {
    ApiConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        max_request_bytes: 256 * 1024,
        drain_grace: Duration::from_secs(5),
        ..ApiConfig::default()
    }
}

/// Serves `repo` on a bound server; the server must be bound before the repository loads so
/// the metrics recorder exists when models register their metrics.
fn launch(server: Server, repo: ModelRepository) -> TestServer {
    let token = CancellationToken::new();
    let handle = server.handle(token.clone()).expect("handle");
    handle.set_repository(Arc::new(repo));
    let task = tokio::spawn(server.run(token));
    TestServer {
        http: format!("http://{}", handle.http_addr),
        grpc: format!("http://{}", handle.grpc_addr),
        handle,
        task,
    }
}

pub async fn start_repo(dir: &Path) -> TestServer {
    // Bind first so the recorder exists before the models register their metrics.
    let server = Server::bind(api_config(), ballast_serve::Lifecycle::new())
        .await
        .expect("bind");
    let repo = ModelRepository::load(dir, &RepositoryOptions::default())
        .await
        .expect("load repository");
    launch(server, repo)
}

/// A test engine: y = 2·x on FP32 [-1, 1], sleeping `delay` per call, counting calls and rows.
pub struct SlowDoubler {
    pub delay: Duration,
    pub calls: AtomicUsize,
    pub rows: AtomicUsize,
    signature: ModelSignature,
}

impl SlowDoubler {
    pub fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            calls: AtomicUsize::new(0),
            rows: AtomicUsize::new(0),
            signature: ModelSignature {
                inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 1])],
                outputs: vec![TensorSpec::new("y", DataType::F32, vec![-1, 1])],
            },
        })
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Backend for SlowDoubler {
    fn engine(&self) -> &'static str {
        "test"
    }
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let x = &inputs[0];
        self.rows.fetch_add(x.rows(), Ordering::SeqCst);
        let TensorData::F32(v) = &x.data else {
            return Err(BackendError::InvalidInput("x must be FP32".into()));
        };
        Ok(vec![Tensor {
            name: "y".into(),
            shape: x.shape.clone(),
            data: TensorData::F32(v.iter().map(|a| a * 2.0).collect()),
        }])
    }
}

pub async fn start_slow(
    name: &str,
    backend: Arc<SlowDoubler>,
    config: ModelConfig,
    api: ApiConfig,
) -> TestServer {
    let server = Server::bind(api, ballast_serve::Lifecycle::new())
        .await
        .expect("bind");
    let repo = ModelRepository::from_specs(
        vec![ModelSpec {
            name: name.into(),
            version: 1,
            backend,
            config,
            dir: None,
        }],
        &RepositoryOptions {
            warmup: false,
            ..Default::default()
        },
    )
    .await
    .expect("repository");
    launch(server, repo)
}

/// Model names must differ between tests: metrics are process-wide.
pub fn slow_body(x: f32) -> String {
    format!(r#"{{"inputs":[{{"name":"x","shape":[1,1],"datatype":"FP32","data":[{x}]}}]}}"#)
}
