//! `POST /v2/models/{m}[/versions/{v}]/infer`: admission first (before the body is read), then
//! a size-limited streaming read, decode, deadline, and the shared serving path.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use ballast_core::{Error, ErrorCode};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::{BodyExt, Limited};

use super::TIMEOUT_HEADER;
use crate::codec::http::{HEADER_CONTENT_LENGTH, decode_request, encode_response};
use crate::error::ApiError;
use crate::server::ApiState;

/// Bodies above this size are decoded on a blocking thread so the async workers never stall.
const INLINE_DECODE_LIMIT: usize = 256 * 1024;

pub async fn infer(
    State(state): State<ApiState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, model, None, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn infer_version(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, model, Some(version), headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn header_usize(headers: &HeaderMap, name: &str) -> Result<Option<usize>, Error> {
    let Some(v) = headers.get(name) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(format!(
                "header {name} must be a non-negative integer, got {:?}",
                String::from_utf8_lossy(v.as_bytes())
            ))
        })
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Error> {
    let too_large = |size: String| {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "request body of {size} exceeds the limit of {limit} bytes (max_request_bytes)"
            ),
        )
    };
    if let Some(len) = header_usize(headers, header::CONTENT_LENGTH.as_str())?
        && len > limit
    {
        return Err(too_large(format!("{len} bytes")));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large("more bytes".to_string()))
        }
        Err(e) => Err(Error::invalid(format!("cannot read request body: {e}"))),
    }
}

async fn handle(
    state: ApiState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let repo = state.repository()?;
    let routed = repo.route(&model, version.as_deref(), |name| {
        headers.get(name).map(|v| v.as_bytes())
    })?;
    let admission = routed.admit()?;
    let decoded = async {
        let header_len = header_usize(&headers, HEADER_CONTENT_LENGTH)?;
        let header_timeout =
            header_usize(&headers, TIMEOUT_HEADER)?.map(|ms| Duration::from_millis(ms as u64));
        let bytes = read_body(body, &headers, state.config.max_request_bytes).await?;
        let mut decoded = if bytes.len() > INLINE_DECODE_LIMIT {
            tokio::task::spawn_blocking(move || decode_request(&bytes, header_len))
                .await
                .map_err(|e| Error::internal(format!("decoder thread failed: {e}")))??
        } else {
            decode_request(&bytes, header_len)?
        };
        let timeout = match (decoded.timeout, header_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        decoded.request.deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        Ok::<_, Error>(decoded)
    }
    .await;
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return Err(routed.reject_admitted(admission, e).into()),
    };
    let response = routed.infer(admission, decoded.request).await?;
    let encoded = encode_response(&response, &decoded.format)?;
    let mut out = Response::new(Body::from(encoded.body));
    let h = out.headers_mut();
    match encoded.header_len {
        Some(n) => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(HEADER_CONTENT_LENGTH, HeaderValue::from(n));
        }
        None => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(out)
}
