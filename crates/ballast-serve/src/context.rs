//! [`RequestContext`]: who a request is and what it is owed, built once by a front end and read
//! by everything after it — admission (priority, deadline), the engine queue, logs (request id,
//! trace), and the observers that later parts hang off the serving path (monitoring, prediction
//! logs, tenants, cost). Cheap to build: an id is generated without a syscall and formatted only
//! when someone reads it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_capture::redact::Redacted;
use ballast_core::Error;
use tokio::time::Instant;

/// The header a client may name its request with; echoed in every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// W3C Trace Context.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// `critical | default | sheddable`, for clients that cannot set the OIP `priority` parameter.
pub const PRIORITY_HEADER: &str = "x-ballast-priority";
/// A per-request timeout in milliseconds (for clients and proxies that cannot set `timeout`).
pub const TIMEOUT_HEADER: &str = "x-ballast-timeout-ms";
/// Client-supplied ids longer than this are refused: they end up in logs and responses.
pub const MAX_REQUEST_ID_LEN: usize = 256;

/// How much a request matters when there is not enough capacity for all of them (Google SRE's
/// criticality classes, less CRITICAL_PLUS). Ordered from most to least important: under
/// overload the last class is refused first. `Shadow` is never chosen by a client: mirrored
/// traffic of a rollout runs below everything a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    Critical,
    #[default]
    Default,
    Sheddable,
    Shadow,
}

impl Priority {
    pub const CLIENT_NAMES: &'static str = "critical, default, sheddable";
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::Default,
        Priority::Sheddable,
        Priority::Shadow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Default => "default",
            Priority::Sheddable => "sheddable",
            Priority::Shadow => "shadow",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// How much of a queue or lag budget this class gets, as a multiple of the target: under
    /// overload the class with the smallest budget is refused first.
    pub fn budget_factor(self) -> f64 {
        match self {
            Priority::Critical => 4.0,
            Priority::Default => 1.0,
            Priority::Sheddable => 0.5,
            Priority::Shadow => 0.25,
        }
    }

    /// Parses a client's class name (`field` names where it came from, for the error).
    pub fn parse_name(value: &str, field: &str) -> Result<Self, Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "critical" => Ok(Priority::Critical),
            "default" | "" => Ok(Priority::Default),
            "sheddable" => Ok(Priority::Sheddable),
            other => Err(Error::invalid(format!(
                "{field} must be one of {}, got '{other}'",
                Self::CLIENT_NAMES
            ))),
        }
    }

    /// Triton's integer priority (1 is the highest level, 0 means the model's default): 1 is
    /// critical, 0 and 2 default, 3 and above sheddable.
    pub fn from_level(level: i64, field: &str) -> Result<Self, Error> {
        match level {
            1 => Ok(Priority::Critical),
            0 | 2 => Ok(Priority::Default),
            l if l >= 3 => Ok(Priority::Sheddable),
            l => Err(Error::invalid(format!(
                "{field} must be a level >= 0 (1 = critical, 0 or 2 = default, >= 3 = sheddable) or one of {}, got {l}",
                Self::CLIENT_NAMES
            ))),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which front end a request came through; `Internal` for requests ballast makes itself
/// (shadow copies of a rollout, warm-up, in-process callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Grpc,
    Internal,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Http, Protocol::Grpc, Protocol::Internal];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Internal => "internal",
        }
    }
}

/// A request id: the client's (OIP `id`, else `x-request-id`) or one generated here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    Client(Arc<str>),
    /// Process-unique: a random per-process prefix and a counter, formatted as 32 hex digits.
    Generated(u64, u64),
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

fn process_prefix() -> u64 {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(rand::random::<u64>)
}

impl RequestId {
    pub fn generate() -> Self {
        RequestId::Generated(process_prefix(), ID_COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    /// A client-chosen id; refused when it is empty, too long or holds control characters
    /// (it is echoed in responses and written to logs).
    pub fn from_client(value: &str, field: &str) -> Result<Self, Error> {
        if value.is_empty() || value.len() > MAX_REQUEST_ID_LEN {
            return Err(Error::invalid(format!(
                "{field} must be 1 to {MAX_REQUEST_ID_LEN} characters, got {}",
                value.len()
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "{field} must not contain control characters"
            )));
        }
        Ok(RequestId::Client(Arc::from(value)))
    }

    /// The id for the server's log lines: a client's id is scanned for personal data like
    /// any string the prediction log writes (an id made of an e-mail address is written as
    /// `<EMAIL>`); a generated one is hex and written as it is. The scan runs only when a line
    /// is actually written (tracing formats a field only for an enabled event).
    pub fn logged(&self) -> LoggedId<'_> {
        LoggedId(self)
    }

    pub fn is_generated(&self) -> bool {
        matches!(self, RequestId::Generated(..))
    }
}

/// A request id as the server's own log lines write it: see [`RequestId::logged`].
pub struct LoggedId<'a>(&'a RequestId);

impl fmt::Display for LoggedId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            RequestId::Client(id) => fmt::Display::fmt(&Redacted(id), f),
            generated => fmt::Display::fmt(generated, f),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Client(s) => f.write_str(s),
            RequestId::Generated(prefix, n) => write!(f, "{prefix:016x}{n:016x}"),
        }
    }
}

/// A parsed W3C `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`. An invalid header is ignored (`None`), as the
    /// W3C spec asks: the trace restarts here rather than failing the request.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || trace.len() != 32 || parent.len() != 16 {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        u8::from_str_radix(version, 16).ok()?;
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        if flags.len() != 2 || trace_id == 0 || parent_id == 0 {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// Which model version served a request, and why it was that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTaken {
    pub model: Arc<str>,
    pub version: Arc<str>,
    /// The alias or version the client asked for, when it named one.
    pub requested: Option<Arc<str>>,
    /// Under a traffic policy: the arm the request was sent to.
    pub arm: Option<crate::traffic::Arm>,
    /// True when the request was also mirrored to a shadow candidate.
    pub shadowed: bool,
}

/// Everything known about one request besides its tensors.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: RequestId,
    pub trace: Option<TraceParent>,
    /// When the front end first saw the request (headers parsed).
    pub arrival: Instant,
    /// No inference starts after this instant.
    pub deadline: Option<Instant>,
    pub priority: Priority,
    pub protocol: Protocol,
    /// Filled in by routing.
    pub route: Option<RouteTaken>,
}

impl RequestContext {
    pub fn new(protocol: Protocol) -> Self {
        Self {
            id: RequestId::generate(),
            trace: None,
            arrival: Instant::now(),
            deadline: None,
            priority: Priority::Default,
            protocol,
            route: None,
        }
    }

    /// Builds the context from request headers (`header` looks one up by lowercase name):
    /// `x-request-id`, `traceparent`, `x-ballast-priority`, `x-ballast-timeout-ms`. Bad values
    /// of the ballast headers are errors naming the header; a bad traceparent is ignored.
    pub fn from_headers<'h>(
        protocol: Protocol,
        header: impl Fn(&str) -> Option<&'h [u8]>,
    ) -> Result<Self, Error> {
        let mut ctx = Self::new(protocol);
        let text = |name: &str| -> Result<Option<&'h str>, Error> {
            header(name)
                .map(|v| {
                    std::str::from_utf8(v)
                        .map_err(|_| Error::invalid(format!("header {name} must be ASCII text")))
                })
                .transpose()
        };
        if let Some(id) = text(REQUEST_ID_HEADER)? {
            ctx.id = RequestId::from_client(id.trim(), "header x-request-id")?;
        }
        if let Some(tp) = text(TRACEPARENT_HEADER)? {
            ctx.trace = TraceParent::parse(tp);
        }
        if let Some(p) = text(PRIORITY_HEADER)? {
            ctx.priority = Priority::parse_name(p, "header x-ballast-priority")?;
        }
        if let Some(ms) = text(TIMEOUT_HEADER)? {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                Error::invalid(format!(
                    "header {TIMEOUT_HEADER} must be a non-negative integer (milliseconds), got {ms:?}"
                ))
            })?;
            ctx.tighten_deadline(Duration::from_millis(ms));
        }
        Ok(ctx)
    }

    /// Applies a timeout counted from arrival, keeping the earlier of it and any deadline set.
    pub fn tighten_deadline(&mut self, timeout: Duration) {
        let d = self.arrival + timeout;
        self.deadline = Some(self.deadline.map_or(d, |old| old.min(d)));
    }

    /// Time left before the deadline (`None`: no deadline).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_32_hex_digits() {
        let a = RequestId::generate().to_string();
        let b = RequestId::generate().to_string();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn log_lines_write_client_ids_with_personal_data_redacted() {
        let id = RequestId::from_client("n5:jane.doe@example.com", "id").unwrap();
        assert_eq!(id.logged().to_string(), "n5:<EMAIL>");
        // The id itself (echoed to the client, redacted by the prediction log) is unchanged.
        assert_eq!(id.to_string(), "n5:jane.doe@example.com");
        let plain = RequestId::from_client("order-17", "id").unwrap();
        assert_eq!(plain.logged().to_string(), "order-17");
        let generated = RequestId::generate();
        assert_eq!(generated.logged().to_string(), generated.to_string());
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(RequestId::from_client("abc-123", "id").is_ok());
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        let err = RequestId::from_client(&long, "field id").unwrap_err();
        assert!(err.message.contains("field id"), "{}", err.message);
        assert!(RequestId::from_client("a\nb", "id").is_err());
        assert!(RequestId::from_client("", "id").is_err());
    }

    #[test]
    fn traceparent_round_trips_and_rejects_malformed() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(s).unwrap();
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), s);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn priorities_parse_from_names_and_triton_levels() {
        assert_eq!(
            Priority::parse_name("Sheddable", "h").unwrap(),
            Priority::Sheddable
        );
        assert!(
            Priority::parse_name("urgent", "header x")
                .unwrap_err()
                .message
                .contains("header x")
        );
        assert_eq!(Priority::from_level(1, "p").unwrap(), Priority::Critical);
        assert_eq!(Priority::from_level(0, "p").unwrap(), Priority::Default);
        assert_eq!(Priority::from_level(7, "p").unwrap(), Priority::Sheddable);
        assert!(Priority::from_level(-1, "p").is_err());
        assert!(Priority::Critical < Priority::Sheddable && Priority::Sheddable < Priority::Shadow);
    }

    #[test]
    fn headers_build_the_context() {
        let headers = [
            ("x-request-id", "req-7"),
            ("x-ballast-priority", "critical"),
            ("x-ballast-timeout-ms", "50"),
        ];
        let ctx = RequestContext::from_headers(Protocol::Http, |name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        })
        .unwrap();
        assert_eq!(ctx.id.to_string(), "req-7");
        assert_eq!(ctx.priority, Priority::Critical);
        let left = ctx.remaining(ctx.arrival).unwrap();
        assert_eq!(left, Duration::from_millis(50));
        let bad = RequestContext::from_headers(Protocol::Http, |name| {
            (name == "x-ballast-timeout-ms").then_some(b"soon".as_slice())
        })
        .unwrap_err();
        assert!(
            bad.message.contains("x-ballast-timeout-ms"),
            "{}",
            bad.message
        );
    }
}
