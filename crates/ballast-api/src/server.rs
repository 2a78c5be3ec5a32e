//! Binding, serving and draining both front ends. The listeners bind before models load, so
//! liveness answers during a slow start while readiness stays off until every model is warm.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ballast_core::Error;
use ballast_monitor::Monitor;
use ballast_serve::overload::DEFAULT_FRONT_DOOR_TARGET;
use ballast_serve::{FrontDoor, ModelRepository};
use ballast_serve::{Lifecycle, Stage};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::listener::{DEFAULT_MAX_CONNECTIONS, LimitedListener};

/// 32 MiB: a 1,000-row batch of 4,096 FP64 features, with room for JSON's overhead.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Streams per gRPC connection decoded at once: with `max_request_bytes`, this bounds the memory
/// one connection can pin; 256 is far above what admission lets through per model.
pub const GRPC_MAX_CONCURRENT_STREAMS: u32 = 256;
/// 30 s: Kubernetes' default termination grace period.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Largest accepted request body (HTTP) or message (gRPC), enforced while streaming.
    pub max_request_bytes: usize,
    pub drain_grace: Duration,
    /// Open connections per listener; more wait in the accept backlog.
    pub max_connections: usize,
    /// The event-loop lag past which default-priority requests are refused at the door
    /// (`Duration::ZERO` turns the front door off).
    pub front_door_target: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8001)),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            drain_grace: DEFAULT_DRAIN_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            front_door_target: DEFAULT_FRONT_DOOR_TARGET,
        }
    }
}

/// Shared by every handler of both front ends.
#[derive(Clone)]
pub struct ApiState {
    repository: Arc<OnceLock<Arc<ModelRepository>>>,
    /// Drift and data quality of the served versions, when monitoring is on.
    monitor: Arc<OnceLock<Arc<Monitor>>>,
    /// Alert rules and their instances, when any rule is configured.
    alerts: Arc<OnceLock<Arc<ballast_monitor::alerts::Alerts>>>,
    pub config: Arc<ApiConfig>,
    /// Sheds when the event loop itself is the bottleneck (both front ends share it).
    pub door: Arc<FrontDoor>,
}

impl ApiState {
    /// The repository, or UNAVAILABLE while models are still loading.
    pub fn repository(&self) -> Result<&Arc<ModelRepository>, Error> {
        self.repository
            .get()
            .ok_or_else(|| Error::unavailable("models are still loading; the server is not ready"))
    }

    /// The monitor, when monitoring is on.
    pub fn monitor(&self) -> Option<&Arc<Monitor>> {
        self.monitor.get()
    }

    /// The alerts, when any rule is configured.
    pub fn alerts(&self) -> Option<&Arc<ballast_monitor::alerts::Alerts>> {
        self.alerts.get()
    }

    pub fn is_ready(&self) -> bool {
        self.repository.get().is_some_and(|r| r.is_ready())
    }

    pub fn is_draining(&self) -> bool {
        self.repository.get().is_some_and(|r| r.is_draining())
    }
}

pub struct Server {
    http: TcpListener,
    grpc: TcpListener,
    state: ApiState,
    /// Owns the front door's probe (task and thread).
    life: Lifecycle,
}

/// Addresses and controls of a running server.
#[derive(Clone)]
pub struct ServerHandle {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub state: ApiState,
    pub shutdown: CancellationToken,
}

impl ServerHandle {
    /// Serves the monitor's reports (`/v2/monitor`); set before the repository.
    pub fn set_monitor(&self, monitor: Arc<Monitor>) {
        if self.state.monitor.set(monitor).is_err() {
            tracing::warn!("a monitor was already set; keeping the first");
        }
    }

    /// Serves the alerts (`/v2/alerts`).
    pub fn set_alerts(&self, alerts: Arc<ballast_monitor::alerts::Alerts>) {
        if self.state.alerts.set(alerts).is_err() {
            tracing::warn!("alerts were already set; keeping the first");
        }
    }

    /// Makes the loaded models servable; readiness turns on.
    pub fn set_repository(&self, repo: Arc<ModelRepository>) {
        if self.state.repository.set(repo).is_err() {
            tracing::warn!("a model repository was already set; keeping the first");
        }
    }
}

impl Server {
    /// Binds both listeners; the server's own background work (the front door's probe) runs
    /// under `life`.
    pub async fn bind(config: ApiConfig, life: Lifecycle) -> std::io::Result<Self> {
        let http = TcpListener::bind(config.http_addr).await?;
        let grpc = TcpListener::bind(config.grpc_addr).await?;
        // Install the recorder before any model registers its metrics.
        crate::telemetry::prometheus();
        Ok(Self {
            http,
            grpc,
            state: ApiState {
                repository: Arc::new(OnceLock::new()),
                monitor: Arc::new(OnceLock::new()),
                alerts: Arc::new(OnceLock::new()),
                door: FrontDoor::new(config.front_door_target),
                config: Arc::new(config),
            },
            life,
        })
    }

    pub fn handle(&self, shutdown: CancellationToken) -> std::io::Result<ServerHandle> {
        Ok(ServerHandle {
            http_addr: self.http.local_addr()?,
            grpc_addr: self.grpc.local_addr()?,
            state: self.state.clone(),
            shutdown,
        })
    }

    /// Serves until `shutdown` fires, then drains: readiness off, listeners closed, in-flight
    /// requests finish within the grace period. Returns how many requests were still in flight
    /// when the grace period ended.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<usize> {
        let state = self.state.clone();
        let grace = state.config.drain_grace;
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<ballast_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer<crate::grpc::Inference>>()
            .await;

        let router = crate::http::router(state.clone());
        let http_stop = shutdown.clone();
        let max_connections = state.config.max_connections;
        let listener = LimitedListener::new(self.http, max_connections, "http");
        self.life.spawn(
            Stage::Front,
            state.door.clone().run_probe(self.life.clone()),
        );
        let http = axum::serve(listener, router).with_graceful_shutdown(async move {
            http_stop.cancelled().await;
        });

        let grpc_stop = shutdown.clone();
        let grpc = tonic::transport::Server::builder()
            // Bounds what one connection can make the server decode at once.
            .max_concurrent_streams(Some(GRPC_MAX_CONCURRENT_STREAMS))
            .add_service(health_service)
            .add_service(crate::grpc::service(state.clone()))
            .serve_with_incoming_shutdown(
                LimitedListener::new(self.grpc, max_connections, "grpc").into_incoming(),
                async move {
                    grpc_stop.cancelled().await;
                },
            );

        let drain_state = state.clone();
        let drain_stop = shutdown.clone();
        let reporter = health_reporter.clone();
        let drain_started = std::sync::OnceLock::new();
        let drain = async {
            drain_stop.cancelled().await;
            let _ = drain_started.set(tokio::time::Instant::now());
            tracing::info!("shutdown requested: readiness off, draining in-flight requests");
            if let Ok(repo) = drain_state.repository() {
                repo.start_draining();
            }
            reporter
                .set_not_serving::<ballast_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer<crate::grpc::Inference>>()
                .await;
        };

        let serve_all = async {
            let (http_result, grpc_result, ()) = tokio::join!(
                async { http.await },
                async { grpc.await.map_err(std::io::Error::other) },
                drain
            );
            http_result?;
            grpc_result
        };
        tokio::pin!(serve_all);
        tokio::select! {
            result = &mut serve_all => result?,
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "drain grace period over; closing remaining connections");
            }
        }
        // Connections are closed; what requests started off the response path (shadow
        // mirrors) may finish within what is left of the grace period.
        let left_of_grace = drain_started
            .get()
            .map_or(Duration::ZERO, |t| grace.saturating_sub(t.elapsed()));
        let left = match state.repository() {
            Ok(repo) => {
                repo.tasks().close();
                repo.wait_idle(left_of_grace).await
            }
            Err(_) => 0,
        };
        Ok(left)
    }
}
