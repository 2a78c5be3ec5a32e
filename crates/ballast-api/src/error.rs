//! Rendering a classified [`Error`] at the edge: HTTP status + `{"error": ...}` body, or a gRPC
//! status. Overload answers carry `Retry-After`.

use axum::response::{IntoResponse, Response};
use ballast_core::{Error, ErrorCode};
use http::{HeaderValue, StatusCode, header};

/// Seconds a refused client should wait: one second is the smallest value `Retry-After` can say.
pub const RETRY_AFTER_SECS: &str = "1";
/// The same advice for gRPC clients (gRFC A6 retry pushback), in milliseconds.
pub const RETRY_PUSHBACK_MS: &str = "1000";

/// An error leaving the HTTP front end.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.0.message }).to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(
            self.0.code,
            ErrorCode::ResourceExhausted | ErrorCode::Unavailable
        ) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// The gRPC status for an error; overload carries `grpc-retry-pushback-ms` (what gRPC retry
/// policies read) and `retry-after`.
pub fn to_status(e: Error) -> tonic::Status {
    let mut status = tonic::Status::new(tonic::Code::from_i32(e.code.grpc_code()), e.message);
    if e.code == ErrorCode::ResourceExhausted {
        let md = status.metadata_mut();
        md.insert(
            "retry-after",
            tonic::metadata::MetadataValue::from_static(RETRY_AFTER_SECS),
        );
        md.insert(
            "grpc-retry-pushback-ms",
            tonic::metadata::MetadataValue::from_static(RETRY_PUSHBACK_MS),
        );
    }
    status
}
