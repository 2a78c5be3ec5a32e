//! `POST /v2/models/{m}[/versions/{v}]/infer`: the context from the headers, then the shared
//! entry ([`ballast_serve::entry::serve`]) with a decoder that reads the body only after
//! admission (size-limited while streaming) and decodes it; the answer echoes `x-request-id`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use ballast_core::{Error, ErrorCode};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::{BodyExt, Limited};

use ballast_serve::context::REQUEST_ID_HEADER;
use ballast_serve::entry::{self, Call, Decoded};
use ballast_serve::{InferResponse, Protocol, RequestContext};

use crate::codec::http::{HEADER_CONTENT_LENGTH, OutputFormat, decode_request, encode_response};
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
    handle(state, model, None, headers, body).await
}

pub async fn infer_version(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, model, Some(version), headers, body).await
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

pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Error> {
    let too_large = |body: String| {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "{body} exceeds the limit of {limit} bytes (the setting max_request_bytes: --max-request-bytes, BALLAST_MAX_REQUEST_BYTES)"
            ),
        )
    };
    if let Some(len) = header_usize(headers, header::CONTENT_LENGTH.as_str())?
        && len > limit
    {
        return Err(too_large(format!("request body of {len} bytes")));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        // A body without Content-Length (chunked): refused once it passes the limit, so its
        // full size is never known.
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(
            "chunked request body (no Content-Length)".to_string(),
        )),
        Err(e) => Err(Error::invalid(format!("cannot read request body: {e}"))),
    }
}

async fn handle(
    state: ApiState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let lookup = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let mut ctx = match RequestContext::from_headers(Protocol::Http, lookup) {
        Ok(ctx) => ctx,
        Err(e) => return ApiError(e).into_response(),
    };
    let result = match state.repository() {
        Ok(repo) => {
            let decode = decode(&state, &headers, body);
            let call = Call {
                model: &model,
                version: version.as_deref(),
                rows: None,
            };
            entry::serve(repo, &state.door, &mut ctx, call, lookup, decode).await
        }
        Err(e) => Err(e),
    };
    let mut response = match result {
        Ok(served) => render(&served.response, &served.render),
        Err(e) => Err(ApiError(e)),
    }
    .unwrap_or_else(IntoResponse::into_response);
    echo_request_id(&mut response, &ctx);
    response
}

/// Every inference response, V1 and V2, carries the request's id.
pub(crate) fn echo_request_id(response: &mut Response, ctx: &RequestContext) {
    if let Ok(v) = HeaderValue::from_str(&ctx.id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
}

/// Reads and decodes the body: the step the shared entry runs only after admission.
async fn decode(
    state: &ApiState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Decoded<OutputFormat>, Error> {
    let header_len = header_usize(headers, HEADER_CONTENT_LENGTH)?;
    let bytes = read_body(body, headers, state.config.max_request_bytes).await?;
    let decoded = if bytes.len() > INLINE_DECODE_LIMIT {
        tokio::task::spawn_blocking(move || decode_request(&bytes, header_len))
            .await
            .map_err(|e| Error::internal(format!("decoder thread failed: {e}")))??
    } else {
        decode_request(&bytes, header_len)?
    };
    Ok(Decoded {
        request: decoded.request,
        timeout: decoded.timeout,
        priority: decoded.priority,
        render: decoded.format,
        parameters: decoded.parameters,
    })
}

fn render(response: &InferResponse, format: &OutputFormat) -> Result<Response, ApiError> {
    let encoded = encode_response(response, format)?;
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
