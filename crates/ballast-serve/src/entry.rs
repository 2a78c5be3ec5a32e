//! The one request path. Every front end (HTTP, gRPC, and whatever comes next) calls [`serve`]
//! with a [`RequestContext`] built from its headers and a future that decodes its body, so none
//! can skip or reorder a step:
//!
//! ```text
//! front door (event-loop lag vs priority budget) → route (version, alias, traffic arm)
//!   → admit (predicted queue wait vs budget and deadline; before the body is read)
//!   → decode (the front end's future) → merge id / timeout / priority from the body
//!   → validate, queue, batch, infer → account (per-arm stats, metrics, failure log)
//!   → observe (the version's observers, through the tap: `observe.rs`)
//!   → log (the prediction log, `capture.rs`: reserved before admission, and for a durable
//!     model the answer waits for the fsync of its record)
//! ```
//!
//! Everything after routing reads the context; later parts (monitoring, prediction logs,
//! tenants, cost) hang off the same context rather than off a front end.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_core::{Error, ErrorCode, Tensor};

use ballast_capture::record::Status;
use ballast_capture::redact::Redacted;

use crate::capture;
use crate::context::{Priority, RequestContext, RequestId, RouteTaken};
use crate::observe::{Finished, Observed};
use crate::overload::FrontDoor;
use crate::repository::ModelRepository;
use crate::request::{InferRequest, InferResponse, Timing};

/// What a front end's decoder produces.
pub struct Decoded<T> {
    pub request: InferRequest,
    /// The OIP `timeout` parameter, counted from arrival.
    pub timeout: Option<Duration>,
    /// The OIP `priority` parameter.
    pub priority: Option<Priority>,
    /// Whatever the front end needs to render the answer (its output format).
    pub render: T,
    /// Request parameters other than `id`, `timeout` and `priority`, as a JSON object, for
    /// the prediction log (redacted there); `None` when there were none.
    pub parameters: Option<String>,
}

/// Which model a request names, as the front end found it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub model: &'a str,
    pub version: Option<&'a str>,
    /// Rows, when the front end knows them before admission (else the recent mean is
    /// reserved and corrected after decode).
    pub rows: Option<usize>,
}

/// A served request and what its front end carried through.
pub struct Served<T> {
    pub response: InferResponse,
    pub render: T,
}

/// Runs one inference request through every step, in order. `header` looks up a request
/// header (routing uses it for sticky canaries). On error the context still says how far the
/// request got (`route` is set once routed).
pub async fn serve<'h, T, F>(
    repo: &ModelRepository,
    door: &FrontDoor,
    ctx: &mut RequestContext,
    call: Call<'_>,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    decode: F,
) -> Result<Served<T>, Error>
where
    F: Future<Output = Result<Decoded<T>, Error>>,
{
    let _active = door.enter();
    let result = serve_inner(repo, door, ctx, call, header, decode).await;
    match &result {
        Err(e) => log_failure(ctx, call.model, e),
        Ok(served) => tracing::debug!(
            request_id = %ctx.id.logged(),
            model = call.model,
            version = &*served.response.version,
            protocol = ctx.protocol.as_str(),
            queue_us = served.response.timing.queue.as_micros() as u64,
            compute_us = served.response.timing.compute.as_micros() as u64,
            batch_rows = served.response.timing.batch_rows,
            "request served"
        ),
    }
    result
}

async fn serve_inner<'h, T, F>(
    repo: &ModelRepository,
    door: &FrontDoor,
    ctx: &mut RequestContext,
    call: Call<'_>,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    decode: F,
) -> Result<Served<T>, Error>
where
    F: Future<Output = Result<Decoded<T>, Error>>,
{
    door.check(ctx.priority)?;
    let routed = repo.route(call.model, call.version, header).inspect_err(|e| {
        if e.code == ErrorCode::NotFound {
            metrics::counter!(crate::metrics::UNKNOWN_MODEL_TOTAL, "protocol" => ctx.protocol.as_str())
                .increment(1);
        }
    })?;
    ctx.route = Some(RouteTaken {
        model: routed.version.name.clone(),
        version: routed.version.version_label.clone(),
        requested: call.version.filter(|v| !v.is_empty()).map(Into::into),
        arm: routed.arm(),
        shadowed: routed.shadowed(),
    });
    // Observers of this version (monitor, logs): decided when it started, so nothing is
    // looked up here; `None` costs one branch.
    let observed = (!routed.version.observed.is_empty()).then(|| routed.version.observed.clone());
    // The prediction log: sampled, and for a durable model a place reserved in its queue,
    // before any work (a full log refuses here).
    let logging = match routed.version.logged.as_ref().map(|l| l.begin(call.model)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(l))) => Some(l),
        Some(Err(e)) => {
            routed.version.refused_for_log(ctx.protocol);
            observe(observed.as_ref(), ctx, None, Some(e.code), Vec::new(), &[]);
            return Err(e);
        }
    };
    let left = ctx.remaining(tokio::time::Instant::now());
    let admission = match routed.admit(ctx.protocol, ctx.priority, call.rows, left) {
        Ok(a) => a,
        Err(e) => {
            observe(observed.as_ref(), ctx, None, Some(e.code), Vec::new(), &[]);
            log_failed(logging, ctx, Status::Refused, &e, Vec::new(), None);
            return Err(e);
        }
    };
    let decoded = match decode.await.and_then(|d| merge(ctx, d)) {
        Ok(d) => d,
        Err(e) => {
            observe(observed.as_ref(), ctx, None, Some(e.code), Vec::new(), &[]);
            log_failed(logging, ctx, Status::Error, &e, Vec::new(), None);
            return Err(routed.reject_admitted(admission, e));
        }
    };
    let mut request = decoded.request;
    request.deadline = ctx.deadline;
    request.priority = ctx.priority;
    let inputs = match &observed {
        Some(o) if o.wants_tensors() => request.inputs.clone(),
        _ => Vec::new(),
    };
    let logged_inputs = match &logging {
        Some(_) => request.inputs.clone(),
        None => Vec::new(),
    };
    let result = routed.infer(admission, request, ctx, repo.tasks()).await;
    match &result {
        Ok(r) => observe(
            observed.as_ref(),
            ctx,
            Some(r.timing),
            None,
            inputs,
            &r.outputs,
        ),
        Err(e) => observe(observed.as_ref(), ctx, None, Some(e.code), inputs, &[]),
    }
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            log_failed(
                logging,
                ctx,
                Status::Error,
                &e,
                logged_inputs,
                decoded.parameters,
            );
            return Err(e);
        }
    };
    if let Some(logging) = logging {
        let record = capture::record(
            ctx,
            capture::Outcome {
                model: &response.model,
                version: &response.version,
                status: Status::Ok,
                code: None,
                timing: Some(response.timing),
                inputs: logged_inputs,
                outputs: response.outputs.clone(),
                parameters: decoded.parameters,
            },
        );
        // Durable: the answer waits for the fsync that covers its record; an error here means
        // the prediction is not acknowledged.
        logging.finish(record).await?;
    }
    Ok(Served {
        response,
        render: decoded.render,
    })
}

/// Logs a request that failed or was refused after its logging began (not waited for).
fn log_failed(
    logging: Option<capture::Logging>,
    ctx: &RequestContext,
    status: Status,
    e: &Error,
    inputs: Vec<Tensor>,
    parameters: Option<String>,
) {
    let (Some(logging), Some(route)) = (logging, &ctx.route) else {
        return;
    };
    let record = capture::record(
        ctx,
        capture::Outcome {
            model: &route.model,
            version: &route.version,
            status,
            code: Some(e.code),
            timing: None,
            inputs,
            outputs: Vec::new(),
            parameters,
        },
    );
    logging.failed(record);
}

/// Hands the finished request to the version's observers (when it has any).
fn observe(
    observed: Option<&Observed>,
    ctx: &RequestContext,
    timing: Option<Timing>,
    error: Option<ErrorCode>,
    inputs: Vec<Tensor>,
    outputs: &[Tensor],
) {
    let (Some(observed), Some(route)) = (observed, &ctx.route) else {
        return;
    };
    observed.emit(Finished {
        ctx,
        model: &route.model,
        version: &route.version,
        arm: route.arm,
        timing,
        error,
        inputs,
        outputs,
    });
}

/// Folds what only the body could say into the context: the OIP `id`, `timeout` and
/// `priority` (the body's timeout tightens a header deadline, never loosens it).
fn merge<T>(ctx: &mut RequestContext, d: Decoded<T>) -> Result<Decoded<T>, Error> {
    if let Some(id) = &d.request.id {
        ctx.id = RequestId::from_client(id, "id")?;
    }
    if let Some(t) = d.timeout {
        ctx.tighten_deadline(t);
    }
    if let Some(p) = d.priority {
        ctx.priority = p;
    }
    Ok(d)
}

/// Failed requests are logged with their id, model, status and reason: server faults (5xx)
/// at `warn`, client errors (4xx: bad input, unknown model) at `info`, together at most
/// [`WARN_PER_SECOND`] lines a second so that a failing engine or a misbehaving client cannot
/// flood the log. Overload refusals and missed deadlines go to `debug`: they are counted in
/// metrics, and logging each one would spend CPU exactly when there is none to spare.
/// Successful requests are logged at `debug` with queue and compute time in microseconds.
/// What the client wrote (its id, the model it named, a reason quoting its request) goes
/// through the PII scanner first, as it does before the prediction log.
fn log_failure(ctx: &RequestContext, model: &str, e: &Error) {
    let status = e.code.http_status();
    match e.code {
        ErrorCode::ResourceExhausted | ErrorCode::DeadlineExceeded => {
            tracing::debug!(request_id = %ctx.id.logged(), model = %Redacted(model), status, code = e.code.as_str(), protocol = ctx.protocol.as_str(), error = %Redacted(&e.message), "request refused");
        }
        ErrorCode::Internal | ErrorCode::Unavailable if warn_allowed() => {
            tracing::warn!(request_id = %ctx.id.logged(), model = %Redacted(model), status, code = e.code.as_str(), protocol = ctx.protocol.as_str(), error = %Redacted(&e.message), "request failed");
        }
        ErrorCode::Internal | ErrorCode::Unavailable => {}
        _ if warn_allowed() => {
            tracing::info!(request_id = %ctx.id.logged(), model = %Redacted(model), status, code = e.code.as_str(), protocol = ctx.protocol.as_str(), error = %Redacted(&e.message), "request failed");
        }
        _ => {}
    }
}

/// Server-fault log lines allowed per second.
pub const WARN_PER_SECOND: u64 = 20;

fn warn_allowed() -> bool {
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if WINDOW.swap(second, Ordering::Relaxed) != second {
        COUNT.store(0, Ordering::Relaxed);
    }
    COUNT.fetch_add(1, Ordering::Relaxed) < WARN_PER_SECOND
}
