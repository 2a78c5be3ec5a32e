//! Model metadata (`GET /v2/models/{m}[/versions/{v}]`), which tells the payload builders what
//! inputs to generate, and the URL scheme shared with the HTTP client.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::Target;

/// Timeout of the metadata request: it is one small GET, made before any load.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// One input or output tensor of a model, as its metadata describes it. `-1` marks a
/// variable dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorMeta {
    /// Tensor name.
    pub name: String,
    /// OIP data type (`FP32`, `INT64`, `BYTES`, ...).
    pub datatype: String,
    /// Shape; `-1` for a variable dimension.
    pub shape: Vec<i64>,
}

/// The parts of a model's metadata the load generator uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Model name.
    pub name: String,
    /// Inputs, in the model's order.
    #[serde(default)]
    pub inputs: Vec<TensorMeta>,
    /// Outputs, in the model's order.
    #[serde(default)]
    pub outputs: Vec<TensorMeta>,
}

/// `{base}/v2/models/{model}[/versions/{version}][/{suffix}]`, with each segment escaped.
pub(crate) fn model_url(
    base: &str,
    model: &str,
    version: Option<&str>,
    suffix: Option<&str>,
) -> anyhow::Result<Url> {
    let mut url = Url::parse(base).with_context(|| format!("invalid HTTP URL {base:?}"))?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| anyhow!("HTTP URL {base:?} cannot carry a path"))?;
        segments.pop_if_empty().extend(["v2", "models", model]);
        if let Some(version) = version {
            segments.extend(["versions", version]);
        }
        if let Some(suffix) = suffix {
            segments.push(suffix);
        }
    }
    Ok(url)
}

/// Fetches the metadata of `target`'s model over HTTP.
pub async fn fetch_metadata(target: &Target) -> anyhow::Result<ModelMeta> {
    let url = model_url(
        &target.http_url,
        &target.model,
        target.version.as_deref(),
        None,
    )?;
    let client = reqwest::Client::builder()
        .timeout(METADATA_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("GET {url}: reading the body"))?;
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}: {}", crate::client::prefix(&body));
    }
    serde_json::from_slice(&body).with_context(|| format!("GET {url}: not OIP v2 model metadata"))
}

/// Fetches the metadata of `target`'s model over gRPC (`ModelMetadata`), for runs that speak
/// only gRPC: no HTTP endpoint is needed.
pub async fn fetch_metadata_grpc(target: &Target) -> anyhow::Result<ModelMeta> {
    use ballast_proto::inference::ModelMetadataRequest;
    use ballast_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
    let url = &target.grpc_url;
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid gRPC URL {url:?}"))?
        .connect_timeout(METADATA_TIMEOUT)
        .timeout(METADATA_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to the gRPC endpoint {url}"))?;
    let request = ModelMetadataRequest {
        name: target.model.clone(),
        version: target.version.clone().unwrap_or_default(),
    };
    let response = GrpcInferenceServiceClient::new(channel)
        .model_metadata(request)
        .await
        .map_err(|s| {
            anyhow!(
                "ModelMetadata for '{}' at {url}: {:?}: {}",
                target.model,
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    let tensors = |v: Vec<ballast_proto::inference::model_metadata_response::TensorMetadata>| {
        v.into_iter()
            .map(|t| TensorMeta {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            })
            .collect()
    };
    Ok(ModelMeta {
        name: response.name,
        inputs: tensors(response.inputs),
        outputs: tensors(response.outputs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_url_escapes_segments_and_tolerates_a_trailing_slash() {
        let u = model_url("http://h:1/", "a b", Some("2"), Some("infer")).unwrap();
        assert_eq!(u.as_str(), "http://h:1/v2/models/a%20b/versions/2/infer");
        let u = model_url("http://h:1", "m", None, None).unwrap();
        assert_eq!(u.as_str(), "http://h:1/v2/models/m");
        let u = model_url("http://h:1/prefix", "m", None, Some("infer")).unwrap();
        assert_eq!(u.as_str(), "http://h:1/prefix/v2/models/m/infer");
    }

    #[test]
    fn model_url_rejects_garbage() {
        assert!(model_url("not a url", "m", None, None).is_err());
    }

    #[test]
    fn metadata_parses_oip_json_and_ignores_extra_fields() {
        let m: ModelMeta = serde_json::from_str(
            r#"{"name":"m","versions":["1"],"platform":"onnx","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1]}]}"#,
        )
        .unwrap();
        assert_eq!(m.inputs[0].shape, vec![-1, 4]);
        assert_eq!(m.outputs[0].name, "y");
    }
}
