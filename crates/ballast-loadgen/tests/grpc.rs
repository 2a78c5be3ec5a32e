//! The load generator against a minimal in-test tonic `GRPCInferenceService` on port 0, which
//! decodes every `ModelInferRequest` with the generated (prost) types and checks it.
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ballast_loadgen::{
    LiveStats, Mode, ModelMeta, Payloads, Protocol, Report, RunConfig, Target, TensorMeta,
    fetch_metadata_grpc, fp32_row_payloads, random_payloads, run,
};
use ballast_proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use ballast_proto::inference::*;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

#[derive(Clone, Copy)]
enum Behaviour {
    EveryFifthRejected,
    /// OK, RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL in turn.
    StatusCycle,
    Sleep(Duration),
}

struct Service {
    behaviour: Behaviour,
    version: &'static str,
    requests: AtomicU64,
    bad: AtomicU64,
}

/// The trait is foreign, so it is implemented on a local handle around the shared state.
struct Handle(Arc<Service>);

#[tonic::async_trait]
impl GrpcInferenceService for Handle {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }
    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }
    async fn model_ready(
        &self,
        _: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        Ok(Response::new(ModelReadyResponse { ready: true }))
    }
    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        if r.name != "m" {
            return Err(Status::not_found(format!("unknown model '{}'", r.name)));
        }
        let tensor =
            |name: &str, datatype: &str, shape: Vec<i64>| model_metadata_response::TensorMetadata {
                name: name.into(),
                datatype: datatype.into(),
                shape,
            };
        Ok(Response::new(ModelMetadataResponse {
            name: "m".into(),
            versions: vec![self.0.version.into()],
            platform: "test".into(),
            inputs: vec![
                tensor("x", "FP16", vec![-1, 4]),
                tensor("u", "UINT8", vec![-1]),
            ],
            outputs: vec![tensor("y", "FP32", vec![-1])],
        }))
    }
    async fn model_config(
        &self,
        _: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn model_statistics(
        &self,
        _: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn repository_index(
        &self,
        _: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn repository_model_load(
        &self,
        _: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn repository_model_unload(
        &self,
        _: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let s = &self.0;
        let has_timeout = request.metadata().get("grpc-timeout").is_some();
        let r = request.into_inner();
        let well_formed = r.model_name == "m"
            && r.model_version == s.version
            && !r.inputs.is_empty()
            && r.inputs.len() == r.raw_input_contents.len()
            && r.raw_input_contents.iter().all(|c| !c.is_empty())
            && has_timeout;
        if !well_formed {
            s.bad.fetch_add(1, Ordering::Relaxed);
            return Err(Status::invalid_argument(format!(
                "malformed request for {:?}",
                r.model_name
            )));
        }
        let n = s.requests.fetch_add(1, Ordering::Relaxed);
        let ok = || {
            Ok(Response::new(ModelInferResponse {
                model_name: "m".into(),
                outputs: vec![model_infer_response::InferOutputTensor {
                    name: "y".into(),
                    datatype: "FP32".into(),
                    shape: vec![1],
                    ..Default::default()
                }],
                raw_output_contents: vec![bytes::Bytes::from_static(&[0, 0, 128, 63])],
                ..Default::default()
            }))
        };
        match s.behaviour {
            Behaviour::EveryFifthRejected if n % 5 == 4 => {
                Err(Status::resource_exhausted("queue full"))
            }
            Behaviour::EveryFifthRejected => ok(),
            Behaviour::StatusCycle => match n % 5 {
                0 => ok(),
                1 => Err(Status::resource_exhausted("queue full")),
                2 => Err(Status::unavailable("draining")),
                3 => Err(Status::deadline_exceeded("too late")),
                _ => Err(Status::internal("boom")),
            },
            Behaviour::Sleep(d) => {
                tokio::time::sleep(d).await;
                ok()
            }
        }
    }
}

async fn serve(behaviour: Behaviour, version: &'static str) -> (Arc<Service>, Target) {
    let service = Arc::new(Service {
        behaviour,
        version,
        requests: AtomicU64::new(0),
        bad: AtomicU64::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Server::builder().add_service(GrpcInferenceServiceServer::new(Handle(
        Arc::clone(&service),
    )));
    tokio::spawn(async move {
        router
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    (service, target(addr))
}

fn target(addr: SocketAddr) -> Target {
    Target {
        http_url: format!("http://{addr}"),
        grpc_url: format!("http://{addr}"),
        model: "m".into(),
        version: None,
    }
}

#[tokio::test]
async fn metadata_is_read_over_grpc_without_an_http_endpoint() {
    let (_, mut target) = serve(Behaviour::Sleep(Duration::ZERO), "").await;
    // Nothing listens on port 9 of the HTTP side: only gRPC may be used.
    target.http_url = "http://127.0.0.1:9".into();
    let meta = fetch_metadata_grpc(&target).await.unwrap();
    assert_eq!(meta.name, "m");
    let inputs: Vec<(&str, &str, &[i64])> = meta
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str(), t.shape.as_slice()))
        .collect();
    assert_eq!(
        inputs,
        [("x", "FP16", &[-1i64, 4][..]), ("u", "UINT8", &[-1][..])]
    );
    // The payloads built from it carry the narrow types' raw sizes: 2 bytes and 1 byte.
    let payloads = random_payloads(&meta, 3, 2, true, 1).unwrap();
    let raw = &payloads.grpc[0].raw_input_contents;
    assert_eq!((raw[0].len(), raw[1].len()), (3 * 4 * 2, 3));
    target.model = "other".into();
    let e = fetch_metadata_grpc(&target).await.unwrap_err().to_string();
    assert!(
        e.contains("NotFound") && e.contains("unknown model 'other'"),
        "{e}"
    );
}

fn payloads() -> Payloads {
    let meta = ModelMeta {
        name: "ignored".into(),
        inputs: vec![
            TensorMeta {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 4],
            },
            TensorMeta {
                name: "b".into(),
                datatype: "BOOL".into(),
                shape: vec![-1],
            },
        ],
        outputs: vec![],
    };
    random_payloads(&meta, 2, 8, true, 5).unwrap()
}

fn config(mode: Mode, duration_ms: u64, connections: usize) -> RunConfig {
    RunConfig {
        protocol: Protocol::Grpc,
        mode,
        duration: Duration::from_millis(duration_ms),
        warmup: Duration::ZERO,
        request_timeout: Duration::from_secs(5),
        connections,
    }
}

async fn quiet_run(target: &Target, config: &RunConfig, payloads: &Payloads) -> Report {
    run(target, config, payloads, |_: &LiveStats| {})
        .await
        .unwrap()
}

fn assert_outcomes_add_up(r: &Report) {
    assert_eq!(
        r.sent,
        r.ok + r.rejected + r.unavailable + r.timeouts + r.errors,
        "{r:?}"
    );
    assert_eq!(r.latency_ok.count, r.ok, "{r:?}");
    assert_eq!(r.latency_rejected.count, r.rejected, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_ok_and_resource_exhausted_exactly() {
    let (service, target) = serve(Behaviour::EveryFifthRejected, "").await;
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 4 }, 1_000, 2),
        &payloads(),
    )
    .await;
    let served = service.requests.load(Ordering::Relaxed);
    assert_eq!(service.bad.load(Ordering::Relaxed), 0, "{r:?}");
    assert!(served > 20, "only {served} requests in a second");
    assert_eq!(r.sent, served);
    assert_eq!(r.rejected, served / 5, "{r:?}");
    assert_eq!(r.ok, served - served / 5);
    assert_eq!((r.unavailable, r.timeouts, r.errors), (0, 0, 0));
    assert_outcomes_add_up(&r);
    assert_eq!(r.protocol, "grpc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_payloads_and_versions_reach_the_server() {
    let (service, mut target) = serve(Behaviour::EveryFifthRejected, "3").await;
    target.version = Some("3".into());
    let rows: Vec<Vec<f32>> = (0..10).map(|i| vec![i as f32; 6]).collect();
    let p = fp32_row_payloads("x", &rows, 4, true).unwrap();
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 2 }, 300, 1),
        &p,
    )
    .await;
    assert_eq!(service.bad.load(Ordering::Relaxed), 0, "{r:?}");
    assert!(r.ok > 0 && r.errors == 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_rate_times_duration() {
    let (service, target) = serve(Behaviour::EveryFifthRejected, "").await;
    let r = quiet_run(
        &target,
        &config(Mode::Open { rate: 200.0 }, 2_000, 2),
        &payloads(),
    )
    .await;
    assert!((280..=520).contains(&r.sent), "{r:?}");
    assert_eq!(r.sent + r.client_dropped, 400, "{r:?}");
    assert_eq!(service.requests.load(Ordering::Relaxed), r.sent);
    assert_eq!(r.rejected, r.sent / 5);
    assert_outcomes_add_up(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_map_to_outcomes() {
    let (service, target) = serve(Behaviour::StatusCycle, "").await;
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 1 }, 500, 1),
        &payloads(),
    )
    .await;
    let t = service.requests.load(Ordering::Relaxed);
    let expect = |k: u64| (t + 4 - k) / 5;
    assert_eq!(r.sent, t);
    assert_eq!(
        (r.ok, r.rejected, r.unavailable, r.timeouts, r.errors),
        (expect(0), expect(1), expect(2), expect(3), expect(4)),
        "{r:?}"
    );
    let e = r.first_error.unwrap();
    assert!(e.contains("Internal") && e.contains("boom"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_counted_as_timeouts() {
    let (_service, target) = serve(Behaviour::Sleep(Duration::from_secs(30)), "").await;
    let mut c = config(Mode::Closed { concurrency: 2 }, 500, 1);
    c.request_timeout = Duration::from_millis(100);
    let started = Instant::now();
    let r = quiet_run(&target, &c, &payloads()).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        r.timeouts >= 4 && r.ok == 0 && r.timeouts == r.sent,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_gives_errors_not_a_failed_run() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = target(listener.local_addr().unwrap());
    drop(listener);
    let started = Instant::now();
    let r = quiet_run(
        &target,
        &config(Mode::Closed { concurrency: 2 }, 300, 2),
        &payloads(),
    )
    .await;
    assert!(r.errors > 0 && r.ok == 0 && r.sent == r.errors, "{r:?}");
    assert!(r.first_error.is_some());
    let r = quiet_run(
        &target,
        &config(Mode::Open { rate: 100.0 }, 300, 2),
        &payloads(),
    )
    .await;
    assert_eq!((r.sent, r.errors), (30, 30), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
