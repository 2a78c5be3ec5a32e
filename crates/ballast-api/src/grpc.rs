//! The OIP v2 gRPC front end (`inference.GRPCInferenceService`). `grpc.health.v1` is served
//! beside it by tonic-health (see `server`).

use std::time::Duration;

use ballast_proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use ballast_proto::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
    model_metadata_response,
};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::Poll;

use ballast_core::{Error, ErrorCode};
use ballast_serve::context::PRIORITY_HEADER;
use ballast_serve::entry::{self, Call, Decoded};
use ballast_serve::{FrontDoor, Priority, Protocol, RequestContext};
use futures::future::Either;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::codec::grpc::{decode_request, encode_response};
use crate::error::to_status;
use crate::server::ApiState;

pub struct Inference {
    state: ApiState,
}

use ballast_proto::inference as pb;

/// Triton's `DataType` enum for a ballast datatype.
fn triton_dtype(d: ballast_core::DataType) -> i32 {
    use ballast_core::DataType as D;
    (match d {
        D::Bool => pb::DataType::TypeBool,
        D::U8 => pb::DataType::TypeUint8,
        D::F16 => pb::DataType::TypeFp16,
        D::I32 => pb::DataType::TypeInt32,
        D::I64 => pb::DataType::TypeInt64,
        D::F32 => pb::DataType::TypeFp32,
        D::F64 => pb::DataType::TypeFp64,
        D::Bytes => pb::DataType::TypeString,
    }) as i32
}

/// A version's configuration in Triton's `ModelConfig` form (what `tritonclient`'s
/// `get_model_config()` reads): dims without the batch dimension when the model batches.
fn model_config(mv: &ballast_serve::ModelVersion) -> pb::ModelConfig {
    let batch = mv.config.max_batch_size > 0;
    let dims = |shape: &[i64]| -> Vec<i64> {
        if batch {
            shape.iter().skip(1).copied().collect()
        } else {
            shape.to_vec()
        }
    };
    pb::ModelConfig {
        name: mv.name.to_string(),
        platform: crate::http::metadata::platform(mv).to_string(),
        backend: mv.engine.to_string(),
        max_batch_size: i32::try_from(mv.config.max_batch_size).unwrap_or(i32::MAX),
        input: mv
            .signature
            .inputs
            .iter()
            .map(|s| pb::ModelInput {
                name: s.name.clone(),
                data_type: triton_dtype(s.dtype),
                dims: dims(&s.shape),
            })
            .collect(),
        output: mv
            .signature
            .outputs
            .iter()
            .map(|s| pb::ModelOutput {
                name: s.name.clone(),
                data_type: triton_dtype(s.dtype),
                dims: dims(&s.shape),
            })
            .collect(),
        instance_group: vec![pb::ModelInstanceGroup {
            name: format!("{}_0", mv.name),
            count: i32::try_from(mv.config.instances).unwrap_or(i32::MAX),
            kind: pb::model_instance_group::Kind::Cpu as i32,
        }],
        default_model_filename: mv.config.model_file.clone().unwrap_or_default(),
        dynamic_batching: batch.then(|| pb::ModelDynamicBatching {
            preferred_batch_size: Vec::new(),
            max_queue_delay_microseconds: u64::try_from(mv.config.max_queue_delay.as_micros())
                .unwrap_or(u64::MAX),
        }),
    }
}

fn model_statistics(mv: &ballast_serve::ModelVersion) -> pb::ModelStatistics {
    use std::sync::atomic::Ordering::Relaxed;
    let s = mv.stats();
    let d = |(count, ns): (u64, u64)| Some(pb::StatisticDuration { count, ns });
    let (compute_count, _) = s.compute_infer.get();
    pb::ModelStatistics {
        name: mv.name.to_string(),
        version: mv.version_label.to_string(),
        last_inference: s.last_inference_ms.load(Relaxed),
        inference_count: s.inference_count.load(Relaxed),
        execution_count: s.execution_count.load(Relaxed),
        inference_stats: Some(pb::InferStatistics {
            success: d(s.success.get()),
            fail: d(s.fail.get()),
            queue: d(s.queue.get()),
            compute_input: d((compute_count, 0)),
            compute_infer: d(s.compute_infer.get()),
            compute_output: d((compute_count, 0)),
            cache_hit: d((0, 0)),
            cache_miss: d((0, 0)),
        }),
        batch_stats: s
            .batch_stats()
            .into_iter()
            .map(|(batch_size, count, ns)| pb::InferBatchStatistics {
                batch_size,
                compute_input: d((count, 0)),
                compute_infer: d((count, ns)),
                compute_output: d((count, 0)),
            })
            .collect(),
    }
}

const SERVICE_PREFIX: &str = "/inference.GRPCInferenceService/";

/// The `GRPCInferenceService` methods this server implements.
const IMPLEMENTED: &[&str] = &[
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "ModelConfig",
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
];

/// The full method path of `ModelInfer`, which the front door guards before decoding.
pub const MODEL_INFER_PATH: &str = "/inference.GRPCInferenceService/ModelInfer";

pub fn service(state: ApiState) -> FrontDoorService<GrpcInferenceServiceServer<Inference>> {
    let limit = state.config.max_request_bytes;
    let door = state.door.clone();
    FrontDoorService {
        inner: GrpcInferenceServiceServer::new(Inference { state })
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
        door,
    }
}

/// Refuses `ModelInfer` calls at the front door from their path and headers alone, before
/// tonic reads or decodes the message: an overloaded server spends on a refusal only what
/// HTTP/2 framing and one header lookup cost.
#[derive(Clone)]
pub struct FrontDoorService<S> {
    inner: S,
    door: Arc<FrontDoor>,
}

impl<S: NamedService> NamedService for FrontDoorService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for FrontDoorService<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Self::Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(method) = req.uri().path().strip_prefix(SERVICE_PREFIX)
            && !IMPLEMENTED.contains(&method)
        {
            // tonic answers an unknown method with an empty message; say what is served.
            let status = Status::unimplemented(format!(
                "ballast does not implement GRPCInferenceService/{method} (Triton's streaming, \
                 shared-memory, trace and logging calls); it serves: {}",
                IMPLEMENTED.join(", ")
            ));
            return Either::Left(ready(Ok(status.into_http())));
        }
        if req.uri().path() == MODEL_INFER_PATH {
            let priority = req
                .headers()
                .get(PRIORITY_HEADER)
                .map(|v| {
                    v.to_str()
                        .map_err(|_| {
                            Error::invalid(format!("header {PRIORITY_HEADER} must be ASCII text"))
                        })
                        .and_then(|v| Priority::parse_name(v, "header x-ballast-priority"))
                })
                .transpose();
            let refused = match priority {
                Ok(p) => self.door.check(p.unwrap_or_default()).err(),
                Err(e) => Some(e),
            };
            if let Some(e) = refused {
                return Either::Left(ready(Ok(to_status(e).into_http())));
            }
        }
        Either::Right(self.inner.call(req))
    }
}

/// Parses the `grpc-timeout` header (`<digits><unit>`, units H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn spec_metadata(
    specs: &[ballast_core::TensorSpec],
) -> Vec<model_metadata_response::TensorMetadata> {
    specs
        .iter()
        .map(|s| model_metadata_response::TensorMetadata {
            name: s.name.clone(),
            datatype: s.dtype.as_str().to_string(),
            shape: s.shape.clone(),
        })
        .collect()
}

fn version_arg(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
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
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        req: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        let version = version_arg(&req.version);
        let mv = match repo.get(&req.name, version) {
            Ok(mv) => mv,
            // As Triton: a model that failed to load, was unloaded or is not (yet) in the
            // repository is not ready — `ready: false`, not an error, so a client polling
            // tritonclient's is_model_ready() sees False. The reason is in ModelMetadata's
            // error.
            Err(e) if e.code == ErrorCode::NotFound || e.code == ErrorCode::Unavailable => {
                return Ok(Response::new(ModelReadyResponse { ready: false }));
            }
            Err(e) => return Err(to_status(e)),
        };
        Ok(Response::new(ModelReadyResponse {
            ready: mv.is_ready(),
        }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "ballast".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: crate::http::metadata::EXTENSIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        let mv = repo
            .get(&req.name, version_arg(&req.version))
            .map_err(to_status)?;
        let versions = match version_arg(&req.version) {
            Some(_) => vec![mv.version_label.to_string()],
            None => repo
                .entry(&req.name)
                .map_err(to_status)?
                .versions
                .keys()
                .map(u64::to_string)
                .collect(),
        };
        Ok(Response::new(ModelMetadataResponse {
            name: mv.name.to_string(),
            versions,
            platform: crate::http::metadata::platform(&mv).to_string(),
            inputs: spec_metadata(&mv.signature.inputs),
            outputs: spec_metadata(&mv.signature.outputs),
        }))
    }

    async fn model_config(
        &self,
        req: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        let mv = repo
            .get(&req.name, version_arg(&req.version))
            .map_err(to_status)?;
        Ok(Response::new(pb::ModelConfigResponse {
            config: Some(model_config(&mv)),
        }))
    }

    async fn model_statistics(
        &self,
        req: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        let versions = crate::http::stats::versions_for(
            repo,
            Some(req.name.as_str()),
            version_arg(&req.version),
        )
        .map_err(to_status)?;
        Ok(Response::new(pb::ModelStatisticsResponse {
            model_stats: versions.iter().map(|mv| model_statistics(mv)).collect(),
        }))
    }

    async fn repository_index(
        &self,
        req: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        let models = crate::http::stats::index(repo, req.ready)
            .into_iter()
            .map(
                |(name, version, state, reason)| pb::repository_index_response::ModelIndex {
                    name,
                    version,
                    state: state.to_string(),
                    reason,
                },
            )
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        req: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        crate::http::stats::control(repo, &req.model_name, true)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        req: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        let req = req.into_inner();
        let repo = self.state.repository().map_err(to_status)?;
        crate::http::stats::control(repo, &req.model_name, false)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let (metadata, _, message) = req.into_parts();
        let lookup = |name: &str| metadata.get(name).map(|v| v.as_bytes());
        let mut ctx = RequestContext::from_headers(Protocol::Grpc, lookup).map_err(to_status)?;
        if let Some(t) = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
        {
            ctx.tighten_deadline(t);
        }
        let repo = self.state.repository().map_err(to_status)?;
        let (model, version) = (message.model_name.clone(), message.model_version.clone());
        let rows = message
            .inputs
            .first()
            .and_then(|i| i.shape.first())
            .and_then(|&d| usize::try_from(d).ok())
            // Only an estimate until decode checks it: a bogus shape must fail as bad input,
            // not reserve the queue.
            .filter(|&r| r <= 65_536);
        // tonic has decoded the protobuf already; the tensors are converted after admission.
        let decode = async move {
            let d = decode_request(message)?;
            Ok(Decoded {
                request: d.request,
                timeout: d.timeout,
                priority: d.priority,
                render: (),
                parameters: d.parameters,
            })
        };
        let call = Call {
            model: &model,
            version: version_arg(&version),
            rows,
        };
        let served = entry::serve(repo, &self.state.door, &mut ctx, call, lookup, decode)
            .await
            .map_err(to_status)?;
        let mut response = Response::new(encode_response(served.response));
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(ctx.id.to_string()) {
            response
                .metadata_mut()
                .insert(ballast_serve::context::REQUEST_ID_HEADER, v);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("10q"), None);
    }
}
