//! ballast-serve: everything between a decoded request and the engine.
//!
//! - [`repository`]: finds models on disk, loads and warms them, answers "which version".
//! - [`model`]: one served model version — validation, admission, deadlines, output selection.
//! - [`scheduler`]: per-version adaptive admission limit, bounded queue, dynamic batcher and the
//!   dedicated engine threads.
//! - [`context`]: [`RequestContext`] — id, trace, arrival, deadline, priority, route.
//! - [`entry`]: the one request path every front end calls (front door → route → admit →
//!   decode → deadline → infer).
//! - [`overload`]: the front door, which sheds when the event loop itself lags.
//! - [`observe`]: the observation tap — finished requests handed to observers (monitor)
//!   through bounded channels, never waited for.
//! - [`capture`]: the prediction log's side of the request path — not lossy: a place is
//!   reserved before admission and a durable model's answer waits for its record's fsync.
//! - [`metrics`]: every metric name, help text and bucket layout, in one place.
//!
//! Wire formats live in `ballast-api`; this crate never parses bytes off a socket.

pub mod capture;
pub mod context;
pub mod entry;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod overload;
pub mod repository;
pub mod request;
pub mod scheduler;
pub mod traffic;
pub mod watch;

pub use context::{Priority, Protocol, RequestContext, RequestId};
pub use lifecycle::{Lifecycle, Stage};
pub use model::{Admission, ModelVersion};
pub use overload::FrontDoor;
pub use repository::{ModelEntry, ModelRepository, ModelSpec, RepositoryOptions};
pub use request::{InferRequest, InferResponse};
pub use traffic::Routed;
