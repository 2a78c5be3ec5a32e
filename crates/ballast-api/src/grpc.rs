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
use tonic::{Request, Response, Status};

use crate::codec::grpc::{decode_request, encode_response};
use crate::error::to_status;
use crate::server::ApiState;

pub struct Inference {
    state: ApiState,
}

pub fn service(state: ApiState) -> GrpcInferenceServiceServer<Inference> {
    let limit = state.config.max_request_bytes;
    GrpcInferenceServiceServer::new(Inference { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
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
        let mv = repo
            .get(&req.name, version_arg(&req.version))
            .map_err(to_status)?;
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
        let grpc_timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let (metadata, _, message) = req.into_parts();
        let repo = self.state.repository().map_err(to_status)?;
        let routed = repo
            .route(
                &message.model_name,
                version_arg(&message.model_version),
                |name| metadata.get(name).map(|v| v.as_bytes()),
            )
            .map_err(to_status)?;
        let admission = routed.admit().map_err(to_status)?;
        let mut decoded = match decode_request(message) {
            Ok(d) => d,
            Err(e) => return Err(to_status(routed.reject_admitted(admission, e))),
        };
        let timeout = match (decoded.timeout, grpc_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        decoded.request.deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let response = routed
            .infer(admission, decoded.request)
            .await
            .map_err(to_status)?;
        Ok(Response::new(encode_response(response)))
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
