//! Wire codecs: OIP v2 HTTP JSON with the binary tensor extension ([`http`]) and gRPC
//! ([`grpc`]). Decoders take untrusted bytes and never allocate by a client-declared size;
//! every error names the field, what was expected and what came.

pub mod grpc;
pub mod http;

use std::time::Duration;

/// The OIP request parameter that carries a per-request timeout, in microseconds (as Triton).
pub const TIMEOUT_PARAMETER: &str = "timeout";

/// Converts a client timeout in microseconds into a duration, rejecting nonsense.
pub fn timeout_from_micros(value: i64, field: &str) -> Result<Duration, ballast_core::Error> {
    if value <= 0 {
        return Err(ballast_core::Error::invalid(format!(
            "{field} must be a positive number of microseconds, got {value}"
        )));
    }
    Ok(Duration::from_micros(value as u64))
}

/// The OIP request parameter that carries a priority: Triton's integer level (1 highest) or a
/// class name (`critical`, `default`, `sheddable`).
pub const PRIORITY_PARAMETER: &str = "priority";
