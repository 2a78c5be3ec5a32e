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

use ballast_core::Error;
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
            // A model that failed to load is known and not ready (tritonclient's
            // is_model_ready() answers False); its reason is in ModelMetadata's error.
            Err(_)
                if repo
                    .failure(&req.name, version.and_then(|v| v.parse().ok()))
                    .is_some() =>
            {
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
