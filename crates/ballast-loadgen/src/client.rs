//! One inference request over HTTP or gRPC, classified into an [`Outcome`]. Everything that
//! can be prepared is prepared once: URL, header values, and for gRPC the encoded request
//! message, which a raw codec copies into the frame as-is (no per-request protobuf encoding)
//! and whose response it skips without decoding. The server still decodes a normal
//! `ModelInferRequest`, and HTTP responses are read to the end, so both protocols do the work a
//! real client makes the server do, and the client does as little as it can.

use std::time::Duration;

use anyhow::Context;
use ballast_proto::inference::ModelInferRequest;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::metadata::model_url;
use crate::stats::{ErrorDetail, Outcome};
use crate::{Payloads, Protocol, RunConfig, Target};

/// Bytes of an unexpected response body kept in the first error message.
const ERROR_BODY_PREFIX: usize = 200;
const INFERENCE_HEADER_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");
const MODEL_INFER_PATH: &str = "/inference.GRPCInferenceService/ModelInfer";

/// The first [`ERROR_BODY_PREFIX`] bytes of `body` as text, for error messages.
pub(crate) fn prefix(body: &[u8]) -> String {
    let cut = body.len().min(ERROR_BODY_PREFIX);
    let mut text = String::from_utf8_lossy(&body[..cut]).trim().to_string();
    if cut < body.len() {
        text.push('…');
    }
    text
}

/// A prepared client for one run.
pub(crate) enum Client {
    Http(HttpClient),
    Grpc(GrpcClient),
    /// Answers `Ok` after `latency` (tokio time), one request at a time if `serial` is set:
    /// drives the loops in paused-time tests.
    #[cfg(test)]
    Fake {
        latency: Duration,
        serial: Option<tokio::sync::Mutex<()>>,
    },
}

impl Client {
    pub(crate) fn new(
        target: &Target,
        config: &RunConfig,
        payloads: &Payloads,
    ) -> anyhow::Result<Self> {
        Ok(match config.protocol {
            Protocol::Http => Client::Http(HttpClient::new(target, config, payloads)?),
            Protocol::Grpc => Client::Grpc(GrpcClient::new(target, config, payloads)?),
        })
    }

    /// Sends request number `idx` (which picks the payload and, for gRPC, the channel).
    /// Time limits are the caller's business.
    pub(crate) async fn send(&self, idx: u64) -> Outcome {
        match self {
            Client::Http(c) => c.send(idx).await,
            Client::Grpc(c) => c.send(idx).await,
            #[cfg(test)]
            Client::Fake { latency, serial } => {
                let _turn = match serial {
                    Some(m) => Some(m.lock().await),
                    None => None,
                };
                tokio::time::sleep(*latency).await;
                Outcome::Ok
            }
        }
    }
}

/// `items[idx mod len]`; `items` is never empty (checked when the client is built).
fn pick<T>(items: &[T], idx: u64) -> &T {
    // The remainder is below `items.len()`, so it fits a usize.
    &items[(idx % items.len() as u64) as usize]
}

struct HttpBody {
    body: Bytes,
    content_type: HeaderValue,
    header_len: Option<HeaderValue>,
}

pub(crate) struct HttpClient {
    client: reqwest::Client,
    url: Url,
    bodies: Vec<HttpBody>,
}

impl HttpClient {
    fn new(target: &Target, config: &RunConfig, payloads: &Payloads) -> anyhow::Result<Self> {
        anyhow::ensure!(!payloads.http.is_empty(), "no HTTP payloads to send");
        let url = model_url(
            &target.http_url,
            &target.model,
            target.version.as_deref(),
            Some("infer"),
        )?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .connect_timeout(config.request_timeout)
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        let bodies = payloads
            .http
            .iter()
            .map(|p| HttpBody {
                body: p.body.clone(),
                content_type: HeaderValue::from_static(if p.header_len.is_some() {
                    "application/octet-stream"
                } else {
                    "application/json"
                }),
                header_len: p.header_len.map(HeaderValue::from),
            })
            .collect();
        Ok(HttpClient {
            client,
            url,
            bodies,
        })
    }

    async fn send(&self, idx: u64) -> Outcome {
        let p = pick(&self.bodies, idx);
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, p.content_type.clone())
            .body(p.body.clone());
        if let Some(len) = &p.header_len {
            request = request.header(INFERENCE_HEADER_CONTENT_LENGTH, len.clone());
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return reqwest_failure(e),
        };
        match response.status().as_u16() {
            200 => match drain(&mut response).await {
                Ok(()) => Outcome::Ok,
                Err(e) => reqwest_failure(e),
            },
            status @ (429 | 503 | 504) => {
                // Read to the end so the connection can be reused; the status decides.
                let _ = drain(&mut response).await;
                match status {
                    429 => Outcome::Rejected,
                    503 => Outcome::Unavailable,
                    _ => Outcome::Timeout,
                }
            }
            status => {
                let body = read_prefix(&mut response).await;
                Outcome::Error(ErrorDetail::HttpStatus { status, body })
            }
        }
    }
}

fn reqwest_failure(e: reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::Error(ErrorDetail::Reqwest(e))
    }
}

/// Reads and discards the rest of the body.
async fn drain(response: &mut reqwest::Response) -> reqwest::Result<()> {
    while response.chunk().await?.is_some() {}
    Ok(())
}

/// Reads the whole body, keeping its first bytes.
async fn read_prefix(response: &mut reqwest::Response) -> Bytes {
    let mut kept = BytesMut::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = (ERROR_BODY_PREFIX + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    kept.freeze()
}

pub(crate) struct GrpcClient {
    channels: Vec<Grpc<Channel>>,
    /// Encoded `ModelInferRequest`s with the target's model name and version.
    messages: Vec<Bytes>,
    timeout: Duration,
}

impl GrpcClient {
    fn new(target: &Target, config: &RunConfig, payloads: &Payloads) -> anyhow::Result<Self> {
        anyhow::ensure!(!payloads.grpc.is_empty(), "no gRPC payloads to send");
        let endpoint = Endpoint::from_shared(target.grpc_url.clone())
            .with_context(|| format!("invalid gRPC URL {:?}", target.grpc_url))?
            .tcp_nodelay(true)
            .connect_timeout(config.request_timeout);
        // Lazy: a dead server shows up as failed requests, not as a failed run.
        let channels = (0..config.connections.max(1))
            .map(|_| {
                Grpc::new(endpoint.connect_lazy())
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX)
            })
            .collect();
        let messages = payloads
            .grpc
            .iter()
            .map(|request| {
                let request = ModelInferRequest {
                    model_name: target.model.clone(),
                    model_version: target.version.clone().unwrap_or_default(),
                    ..request.clone()
                };
                Bytes::from(request.encode_to_vec())
            })
            .collect();
        Ok(GrpcClient {
            channels,
            messages,
            timeout: config.request_timeout,
        })
    }

    async fn send(&self, idx: u64) -> Outcome {
        let mut grpc = pick(&self.channels, idx).clone();
        if let Err(e) = grpc.ready().await {
            return Outcome::Error(ErrorDetail::Transport(e));
        }
        let mut request = tonic::Request::new(pick(&self.messages, idx).clone());
        request.set_timeout(self.timeout);
        match grpc
            .unary(
                request,
                PathAndQuery::from_static(MODEL_INFER_PATH),
                RawCodec,
            )
            .await
        {
            Ok(_) => Outcome::Ok,
            Err(status) => classify_status(status),
        }
    }
}

/// Maps a failed call's status to an outcome. A status the client made up from a local
/// failure carries a source error (connection refused, reset stream, ...): those are errors,
/// not the server's verdict, except tonic's own expiry of the `grpc-timeout`.
fn classify_status(status: Status) -> Outcome {
    let mut source = std::error::Error::source(&status);
    let local = source.is_some();
    while let Some(s) = source {
        if s.is::<tonic::TimeoutExpired>() {
            return Outcome::Timeout;
        }
        source = s.source();
    }
    // tonic sometimes turns its own client timeout into `Cancelled("Timeout expired")` with
    // the source dropped (`Status::from_error` on a wrapped `TimeoutExpired`).
    if status.code() == Code::Cancelled && status.message() == tonic::TimeoutExpired(()).to_string()
    {
        return Outcome::Timeout;
    }
    if local {
        return Outcome::Error(ErrorDetail::Grpc(status));
    }
    match status.code() {
        Code::ResourceExhausted => Outcome::Rejected,
        Code::Unavailable => Outcome::Unavailable,
        Code::DeadlineExceeded => Outcome::Timeout,
        _ => Outcome::Error(ErrorDetail::Grpc(status)),
    }
}

/// Sends pre-encoded messages and skips over responses.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_statuses_map_to_outcomes() {
        let kind = |s: Status| std::mem::discriminant(&classify_status(s));
        let d = std::mem::discriminant;
        assert_eq!(
            kind(Status::resource_exhausted("full")),
            d(&Outcome::Rejected)
        );
        assert_eq!(kind(Status::unavailable("down")), d(&Outcome::Unavailable));
        assert_eq!(
            kind(Status::deadline_exceeded("late")),
            d(&Outcome::Timeout)
        );
        assert_eq!(
            kind(Status::internal("bug")),
            d(&Outcome::Error(ErrorDetail::Test("")))
        );
    }

    #[test]
    fn local_failures_are_errors_and_local_expiry_is_a_timeout() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(matches!(classify_status(status), Outcome::Error(_)));
        let expired = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert!(matches!(classify_status(expired), Outcome::Timeout));
    }

    #[test]
    fn error_prefix_is_bounded() {
        assert_eq!(prefix(b"  short \n"), "short");
        let long = vec![b'x'; 1000];
        assert_eq!(prefix(&long).chars().count(), ERROR_BODY_PREFIX + 1);
    }
}
