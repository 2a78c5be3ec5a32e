//! Every metric ballast exports: names, help text, units and histogram buckets live here, and
//! the serving path records through the typed [`ModelMetrics`] handles created at model load.
//! Labels are bounded: model, version, outcome code or rejection reason — never request data.

use std::sync::atomic::{AtomicU64, Ordering};

use ballast_core::ErrorCode;
use metrics::{Counter, Gauge, Histogram, Unit};

use crate::context::{Priority, Protocol};

pub const REQUESTS_TOTAL: &str = "ballast_inference_requests_total";
pub const UNKNOWN_MODEL_TOTAL: &str = "ballast_unknown_model_requests_total";
pub const REQUEST_DURATION: &str = "ballast_inference_request_duration_seconds";
pub const QUEUE_DURATION: &str = "ballast_inference_queue_duration_seconds";
pub const COMPUTE_DURATION: &str = "ballast_inference_compute_duration_seconds";
pub const BATCH_SIZE: &str = "ballast_inference_batch_size";
pub const QUEUE_DEPTH: &str = "ballast_queue_depth";
pub const IN_FLIGHT: &str = "ballast_inflight_requests";
pub const CONCURRENCY_LIMIT: &str = "ballast_concurrency_limit";
pub const REJECTIONS_TOTAL: &str = "ballast_rejections_total";
pub const MODEL_READY: &str = "ballast_model_ready";
pub const BUILD_INFO: &str = "ballast_build_info";
pub const MODEL_INFO: &str = "ballast_model_info";
pub const SHADOW_REQUESTS_TOTAL: &str = "ballast_shadow_requests_total";
pub const SHADOW_AGREEMENT: &str = "ballast_shadow_agreement_ratio";
pub const SHADOW_ABS_DIFF: &str = "ballast_shadow_mean_abs_diff";
pub const SHADOW_LATENCY_DELTA: &str = "ballast_shadow_latency_delta_seconds";
pub const ALIAS_VERSION: &str = "ballast_alias_version";
pub const ROLLOUT_STEP: &str = "ballast_rollout_step";
pub const ROLLOUT_CANDIDATE_SHARE: &str = "ballast_rollout_candidate_percent";
pub const REGISTRY_EVENTS_TOTAL: &str = "ballast_registry_events_total";
pub const LOAD_FAILURES_TOTAL: &str = "ballast_model_load_failures_total";
pub const FRONT_DOOR_REFUSED_TOTAL: &str = "ballast_front_door_refused_total";
pub const FRONT_DOOR_LAG: &str = "ballast_front_door_lag_seconds";
pub const ADMISSION_REFUSED_TOTAL: &str = "ballast_admission_refused_total";
pub const CONNECTIONS: &str = "ballast_open_connections";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "ballast_connections_waiting_total";
pub const OBSERVER_DROPPED_TOTAL: &str = "ballast_observer_dropped_total";

/// Latency buckets from 50 µs to 10 s: the fast end resolves tabular models, the slow end
/// catches stalls.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Batch sizes in powers of two up to 1024 rows.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Histogram metric names and their buckets, for the exporter.
pub fn histogram_buckets() -> [(&'static str, &'static [f64]); 4] {
    [
        (REQUEST_DURATION, LATENCY_BUCKETS),
        (QUEUE_DURATION, LATENCY_BUCKETS),
        (COMPUTE_DURATION, LATENCY_BUCKETS),
        (BATCH_SIZE, BATCH_BUCKETS),
    ]
}

/// Registers help text and units so the exposition carries HELP and TYPE lines.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        "Inference requests by model, version and outcome (ok or an error code)."
    );
    metrics::describe_counter!(
        UNKNOWN_MODEL_TOTAL,
        "Inference requests for a model or version this server does not serve, by protocol (the requested name is not a label: clients choose it)."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from admission to response for inference requests."
    );
    metrics::describe_histogram!(
        QUEUE_DURATION,
        Unit::Seconds,
        "Time requests waited in the model queue before their batch started."
    );
    metrics::describe_histogram!(COMPUTE_DURATION, Unit::Seconds, "Engine time per batch.");
    metrics::describe_histogram!(BATCH_SIZE, "Rows per engine call.");
    metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting in the model queue.");
    metrics::describe_gauge!(IN_FLIGHT, "Requests admitted and not yet answered.");
    metrics::describe_gauge!(
        CONCURRENCY_LIMIT,
        "Hard bound on requests admitted at once per model version (max_concurrency)."
    );
    metrics::describe_counter!(
        REJECTIONS_TOTAL,
        "Requests refused without compute, by reason."
    );
    metrics::describe_counter!(
        OBSERVER_DROPPED_TOTAL,
        "Finished requests an observer (monitor, logs) did not see because it fell behind; serving never waits for one."
    );
    metrics::describe_gauge!(
        MODEL_READY,
        "1 when the model version is loaded, warm and serving."
    );
    metrics::describe_gauge!(BUILD_INFO, "Build information; the value is always 1.");
    metrics::describe_gauge!(
        MODEL_INFO,
        "The engine serving each model version (label engine); the value is always 1."
    );
    metrics::describe_counter!(
        SHADOW_REQUESTS_TOTAL,
        "Requests mirrored to a shadow version, by result: agree or disagree with the baseline's answer, or dropped (not run for capacity)."
    );
    metrics::describe_gauge!(
        SHADOW_AGREEMENT,
        "Share of shadowed requests whose outputs agree with the baseline's, since the policy began."
    );
    metrics::describe_gauge!(
        SHADOW_ABS_DIFF,
        "Mean absolute difference of shadowed outputs from the baseline's, since the policy began."
    );
    metrics::describe_gauge!(
        SHADOW_LATENCY_DELTA,
        Unit::Seconds,
        "Mean latency of the shadow version minus the baseline's on the same requests."
    );
    metrics::describe_gauge!(
        ALIAS_VERSION,
        "The version each alias of a served model points at."
    );
    metrics::describe_gauge!(
        ROLLOUT_STEP,
        "Index of the current step of a model's running rollout (-1 when none)."
    );
    metrics::describe_gauge!(
        ROLLOUT_CANDIDATE_SHARE,
        "Percent of traffic the rollout candidate answers (canary) or mirrors (shadow)."
    );
    metrics::describe_counter!(
        REGISTRY_EVENTS_TOTAL,
        "Registry and rollout decisions by kind (promoted, rolled_back, rollout_step, ...)."
    );
    metrics::describe_counter!(
        FRONT_DOOR_REFUSED_TOTAL,
        "Requests refused before they were routed because the event loop lagged past their priority's budget, by priority."
    );
    metrics::describe_gauge!(
        FRONT_DOOR_LAG,
        Unit::Seconds,
        "Event-loop lag last measured by the front-door probe: what a request arriving now waits before it is read."
    );
    metrics::describe_counter!(
        ADMISSION_REFUSED_TOTAL,
        "Requests refused by a model's admission (queue budget, deadline, in-flight bound), by priority."
    );
    metrics::describe_gauge!(CONNECTIONS, "Open client connections, by protocol.");
    metrics::describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Times a listener reached max_connections and left new connections waiting in the accept backlog, by protocol."
    );
    metrics::describe_counter!(
        LOAD_FAILURES_TOTAL,
        "Model versions that failed to load or verify; the version that was serving kept serving."
    );
}

/// Records one shadow comparison for `model`/`version` and the running figures
/// (agreement, mean absolute difference, mean latency delta in seconds).
pub fn shadow_compared(model: &str, version: &str, agree: bool, summary: (f64, f64, f64)) {
    let labels = [
        ("model", model.to_string()),
        ("version", version.to_string()),
    ];
    metrics::counter!(SHADOW_REQUESTS_TOTAL, "model" => model.to_string(), "version" => version.to_string(), "result" => if agree { "agree" } else { "disagree" }).increment(1);
    metrics::gauge!(SHADOW_AGREEMENT, &labels).set(summary.0);
    metrics::gauge!(SHADOW_ABS_DIFF, &labels).set(summary.1);
    metrics::gauge!(SHADOW_LATENCY_DELTA, &labels).set(summary.2);
}

/// Static per-priority handles for the process-wide front-door metrics.
fn priority_counters(name: &'static str) -> [Counter; 4] {
    Priority::ALL.map(|p| metrics::counter!(name, "priority" => p.as_str()))
}

/// One request refused at the front door.
pub fn front_door_refused(p: Priority) {
    static C: std::sync::OnceLock<[Counter; 4]> = std::sync::OnceLock::new();
    C.get_or_init(|| priority_counters(FRONT_DOOR_REFUSED_TOTAL))[p.index()].increment(1);
}

/// One request refused by a model's admission.
pub fn admission_refused(p: Priority) {
    static C: std::sync::OnceLock<[Counter; 4]> = std::sync::OnceLock::new();
    C.get_or_init(|| priority_counters(ADMISSION_REFUSED_TOTAL))[p.index()].increment(1);
}

/// The front-door probe's latest measurement.
pub fn front_door_lag(lag: std::time::Duration) {
    static G: std::sync::OnceLock<Gauge> = std::sync::OnceLock::new();
    G.get_or_init(|| metrics::gauge!(FRONT_DOOR_LAG))
        .set(lag.as_secs_f64());
}

/// Connection gauges and waits, by protocol.
pub fn connection_gauge(protocol: &'static str) -> Gauge {
    metrics::gauge!(CONNECTIONS, "protocol" => protocol)
}

pub fn connections_waiting(protocol: &'static str) -> Counter {
    metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "protocol" => protocol)
}

/// One mirrored request the server did not run for capacity.
pub fn shadow_dropped(model: &str, version: &str) {
    metrics::counter!(SHADOW_REQUESTS_TOTAL, "model" => model.to_string(), "version" => version.to_string(), "result" => "dropped").increment(1);
}

/// Why a request was refused before compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    ConcurrencyLimit,
    QueueFull,
    /// The predicted queue wait exceeded the priority's budget.
    QueueBudget,
    /// The request could not have finished before its deadline.
    DeadlineUnmeetable,
    DeadlineExpired,
    Cancelled,
    Draining,
    /// The prediction log's queue was full (or the log stopped): refused before any work,
    /// so that nothing is answered and then lost.
    PredictionLogFull,
}

impl Rejection {
    pub const ALL: [Rejection; 8] = [
        Rejection::ConcurrencyLimit,
        Rejection::QueueFull,
        Rejection::QueueBudget,
        Rejection::DeadlineUnmeetable,
        Rejection::DeadlineExpired,
        Rejection::Cancelled,
        Rejection::Draining,
        Rejection::PredictionLogFull,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Rejection::ConcurrencyLimit => "concurrency_limit",
            Rejection::QueueFull => "queue_full",
            Rejection::QueueBudget => "queue_budget",
            Rejection::DeadlineUnmeetable => "deadline_unmeetable",
            Rejection::DeadlineExpired => "deadline_expired",
            Rejection::Cancelled => "cancelled",
            Rejection::Draining => "draining",
            Rejection::PredictionLogFull => "prediction_log_full",
        }
    }
}

/// Outcome labels are pre-registered so the hot path never formats a label.
const OUTCOMES: [Option<ErrorCode>; 11] = [
    None,
    Some(ErrorCode::InvalidArgument),
    Some(ErrorCode::NotFound),
    Some(ErrorCode::Unauthenticated),
    Some(ErrorCode::PermissionDenied),
    Some(ErrorCode::ResourceExhausted),
    Some(ErrorCode::Unavailable),
    Some(ErrorCode::DeadlineExceeded),
    Some(ErrorCode::Unimplemented),
    Some(ErrorCode::PayloadTooLarge),
    Some(ErrorCode::Internal),
];

/// Cumulative statistics of one model version, in the shape of Triton's statistics extension
/// (`/v2/models/{m}/stats`, gRPC `ModelStatistics`): counts and total nanoseconds. Warm-up
/// inferences are not counted.
#[derive(Debug, Default)]
pub struct ModelStats {
    pub success: Duration2,
    pub fail: Duration2,
    pub queue: Duration2,
    pub compute_infer: Duration2,
    /// Rows of successful requests (Triton counts each row of a batched request).
    pub inference_count: AtomicU64,
    /// Engine calls.
    pub execution_count: AtomicU64,
    /// Milliseconds since the Unix epoch of the last request.
    pub last_inference_ms: AtomicU64,
    /// Per batch size: engine calls and their total compute nanoseconds.
    batches: parking_lot::Mutex<std::collections::BTreeMap<u64, (u64, u64)>>,
}

/// A count and a total duration in nanoseconds.
#[derive(Debug, Default)]
pub struct Duration2 {
    pub count: AtomicU64,
    pub ns: AtomicU64,
}

impl Duration2 {
    pub fn add(&self, d: std::time::Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.ns.load(Ordering::Relaxed),
        )
    }

    fn clear(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.ns.store(0, Ordering::Relaxed);
    }
}

impl ModelStats {
    /// One finished request: its outcome, total time and (when it ran) queue and compute time.
    pub fn request(
        &self,
        ok: bool,
        total: std::time::Duration,
        timing: Option<(std::time::Duration, std::time::Duration, usize)>,
    ) {
        if ok {
            self.success.add(total);
        } else {
            self.fail.add(total);
        }
        if let Some((queue, compute, rows)) = timing {
            self.queue.add(queue);
            self.compute_infer.add(compute);
            self.inference_count
                .fetch_add(rows as u64, Ordering::Relaxed);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.store(now, Ordering::Relaxed);
    }

    /// One engine call of `rows` rows.
    pub fn execution(&self, rows: usize, compute: std::time::Duration) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(compute.as_nanos()).unwrap_or(u64::MAX);
        let mut b = self.batches.lock();
        let e = b.entry(rows as u64).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(ns);
    }

    /// `(batch size, calls, total compute ns)` in ascending batch size.
    pub fn batch_stats(&self) -> Vec<(u64, u64, u64)> {
        self.batches
            .lock()
            .iter()
            .map(|(&size, &(count, ns))| (size, count, ns))
            .collect()
    }

    /// Forgets everything (after warm-up).
    pub fn clear(&self) {
        for d in [&self.success, &self.fail, &self.queue, &self.compute_infer] {
            d.clear();
        }
        self.inference_count.store(0, Ordering::Relaxed);
        self.execution_count.store(0, Ordering::Relaxed);
        self.last_inference_ms.store(0, Ordering::Relaxed);
        self.batches.lock().clear();
    }
}

/// Metric handles for one model version.
#[derive(Clone)]
pub struct ModelMetrics {
    pub stats: std::sync::Arc<ModelStats>,
    /// False while the version warms up: warm-up inferences are not traffic, so request
    /// counters and latency histograms skip them.
    live: std::sync::Arc<std::sync::atomic::AtomicBool>,
    outcomes: Vec<Counter>,
    rejections: Vec<Counter>,
    pub request_duration: Histogram,
    pub queue_duration: Histogram,
    pub compute_duration: Histogram,
    pub batch_size: Histogram,
    pub queue_depth: Gauge,
    pub in_flight: Gauge,
    pub concurrency_limit: Gauge,
    pub ready: Gauge,
}

impl ModelMetrics {
    pub fn new(model: &str, version: &str, engine: &'static str) -> Self {
        metrics::gauge!(MODEL_INFO, "model" => model.to_string(), "version" => version.to_string(), "engine" => engine).set(1.0);
        let labels = [
            ("model", model.to_string()),
            ("version", version.to_string()),
        ];
        // One counter per (protocol, outcome), protocol-major: see `outcome`.
        let outcomes = Protocol::ALL
            .iter()
            .flat_map(|p| OUTCOMES.iter().map(move |o| (p.as_str(), o.map_or("ok", ErrorCode::as_str))))
            .map(|(protocol, outcome)| {
                metrics::counter!(REQUESTS_TOTAL, "model" => model.to_string(), "version" => version.to_string(), "protocol" => protocol, "outcome" => outcome)
            })
            .collect();
        let rejections = Rejection::ALL
            .iter()
            .map(|r| {
                metrics::counter!(REJECTIONS_TOTAL, "model" => model.to_string(), "version" => version.to_string(), "reason" => r.as_str())
            })
            .collect();
        Self {
            stats: std::sync::Arc::new(ModelStats::default()),
            live: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            outcomes,
            rejections,
            request_duration: metrics::histogram!(REQUEST_DURATION, &labels),
            queue_duration: metrics::histogram!(QUEUE_DURATION, &labels),
            compute_duration: metrics::histogram!(COMPUTE_DURATION, &labels),
            batch_size: metrics::histogram!(BATCH_SIZE, &labels),
            queue_depth: metrics::gauge!(QUEUE_DEPTH, &labels),
            in_flight: metrics::gauge!(IN_FLIGHT, &labels),
            concurrency_limit: metrics::gauge!(CONCURRENCY_LIMIT, &labels),
            ready: metrics::gauge!(MODEL_READY, &labels),
        }
    }

    /// From now on requests are traffic and are counted (called after warm-up).
    pub fn go_live(&self) {
        self.live.store(true, Ordering::Release);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub fn outcome(&self, protocol: Protocol, outcome: Option<ErrorCode>) {
        if !self.is_live() {
            return;
        }
        let o = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
        let p = Protocol::ALL
            .iter()
            .position(|p| *p == protocol)
            .unwrap_or(0);
        self.outcomes[p * OUTCOMES.len() + o].increment(1);
    }

    pub fn rejected(&self, reason: Rejection) {
        if !self.is_live() {
            return;
        }
        let idx = Rejection::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.rejections[idx].increment(1);
    }
}
