//! Traffic policies in force: which version answers an unversioned request (baseline or
//! canary), which requests are mirrored to a shadow, and the per-arm figures a rollout is
//! judged on.
//!
//! Everything here is lock-free on the request path except the shadow comparison, which runs
//! on its own task after the client has its answer. Counters only grow; the rollout controller
//! takes [`RolloutStats::snapshot`]s and subtracts, so a step's window needs no reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_core::traffic::TrafficPolicy;
use ballast_core::{Error, ErrorCode, Tensor, TensorData};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::context::{Priority, Protocol};
use crate::model::{Admission, ModelVersion};
use crate::request::{InferRequest, InferResponse};

/// Outputs agree when every element is within this of the baseline's.
pub const AGREEMENT_TOLERANCE: f64 = 1e-4;

/// Latency histogram: exact below 16 µs, then 8 sub-buckets per power of two (≤ 12.5 % wide).
const SUB: usize = 8;
const BUCKETS: usize = 16 + (40 - 4) * SUB;

/// The histogram bucket of a latency.
fn bucket_of_duration(d: Duration) -> usize {
    bucket_of(d.as_micros().min(u64::MAX as u128) as u64)
}

fn bucket_of(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let b = 63 - us.leading_zeros() as usize; // ≥ 4
    let sub = ((us >> (b - 3)) & (SUB as u64 - 1)) as usize;
    (16 + (b - 4) * SUB + sub).min(BUCKETS - 1)
}

/// The upper bound (µs) of a bucket.
fn bucket_upper(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let b = (i - 16) / SUB + 4;
    let sub = ((i - 16) % SUB) as u64;
    ((SUB as u64 + sub + 1) << (b - 3)) - 1
}

pub struct ArmStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests the server did not run for capacity or time (refused, shed, out of time,
    /// draining): what the server did to the arm, never judged as the model's errors.
    dropped: AtomicU64,
    latency: Box<[AtomicU64]>,
}

/// Failures that are the server's doing (capacity, time, draining), not the model's.
pub fn is_capacity_failure(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ResourceExhausted | ErrorCode::DeadlineExceeded | ErrorCode::Unavailable
    )
}

impl Default for ArmStats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl ArmStats {
    pub fn record(&self, elapsed: Duration, error: Option<ErrorCode>) {
        // Every failure counts, client errors included: both arms see the same traffic, so
        // bad input raises both rates alike, while a candidate that refuses what the baseline
        // accepts (a changed signature) shows up as its own errors.
        match error {
            Some(code) if is_capacity_failure(code) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.latency[bucket_of_duration(elapsed)].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ArmSnapshot {
        ArmSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            latency: self
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmSnapshot {
    /// Every request routed to the arm, dropped ones included.
    pub requests: u64,
    /// Failures that count against the model (anything but [`is_capacity_failure`]).
    pub errors: u64,
    /// Requests the server refused or ran out of time for (see [`ArmStats`]).
    pub dropped: u64,
    latency: Vec<u64>,
}

impl ArmSnapshot {
    pub fn since(&self, earlier: &ArmSnapshot) -> ArmSnapshot {
        ArmSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            latency: self
                .latency
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.latency.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// An arm's window built from figures rather than traffic (gate tests, drills):
    /// `latencies` are the successful requests' latencies.
    pub fn from_figures(requests: u64, errors: u64, dropped: u64, latencies: &[Duration]) -> Self {
        let mut latency = vec![0; BUCKETS];
        for l in latencies {
            latency[bucket_of_duration(*l)] += 1;
        }
        Self {
            requests,
            errors,
            dropped,
            latency,
        }
    }

    /// Requests the model actually ran (or failed on its own): the error rate's denominator.
    pub fn judged(&self) -> u64 {
        self.requests.saturating_sub(self.dropped)
    }

    /// Model errors over the requests the model ran; dropped requests are in neither.
    pub fn error_rate(&self) -> f64 {
        let judged = self.judged();
        if judged == 0 {
            0.0
        } else {
            self.errors as f64 / judged as f64
        }
    }

    /// Latency quantile of successful requests, in milliseconds (bucket upper bound).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_upper(i) as f64 / 1000.0);
            }
        }
        None
    }
}

#[derive(Default)]
struct Comparison {
    compared: u64,
    agreed: u64,
    failed: u64,
    dropped: u64,
    abs_diff_sum: f64,
    elements: u64,
    latency_delta_sum: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowSnapshot {
    pub compared: u64,
    pub agreed: u64,
    /// Shadow requests the candidate failed.
    pub failed: u64,
    /// Shadow requests the server did not run for capacity (refused below sheddable traffic,
    /// or out of time): not the candidate's fault, never judged as its errors.
    pub dropped: u64,
    pub abs_diff_sum: f64,
    pub elements: u64,
    /// Sum over compared requests of candidate minus baseline latency, seconds.
    pub latency_delta_sum: f64,
}

impl ShadowSnapshot {
    pub fn since(&self, e: &ShadowSnapshot) -> ShadowSnapshot {
        ShadowSnapshot {
            compared: self.compared.saturating_sub(e.compared),
            agreed: self.agreed.saturating_sub(e.agreed),
            failed: self.failed.saturating_sub(e.failed),
            dropped: self.dropped.saturating_sub(e.dropped),
            abs_diff_sum: self.abs_diff_sum - e.abs_diff_sum,
            elements: self.elements.saturating_sub(e.elements),
            latency_delta_sum: self.latency_delta_sum - e.latency_delta_sum,
        }
    }

    pub fn agreement(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.agreed as f64 / self.compared as f64)
    }

    pub fn mean_abs_diff(&self) -> Option<f64> {
        (self.elements > 0).then(|| self.abs_diff_sum / self.elements as f64)
    }

    pub fn mean_latency_delta_ms(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.latency_delta_sum * 1000.0 / self.compared as f64)
    }
}

/// Figures for one baseline/candidate pair under a policy.
#[derive(Default)]
pub struct RolloutStats {
    pub baseline: ArmStats,
    pub candidate: ArmStats,
    shadow: Mutex<Comparison>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    pub baseline: ArmSnapshot,
    pub candidate: ArmSnapshot,
    pub shadow: ShadowSnapshot,
}

impl StatsSnapshot {
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            baseline: self.baseline.since(&earlier.baseline),
            candidate: self.candidate.since(&earlier.candidate),
            shadow: self.shadow.since(&earlier.shadow),
        }
    }
}

impl RolloutStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = self.shadow.lock();
        StatsSnapshot {
            baseline: self.baseline.snapshot(),
            candidate: self.candidate.snapshot(),
            shadow: ShadowSnapshot {
                compared: c.compared,
                agreed: c.agreed,
                failed: c.failed,
                dropped: c.dropped,
                abs_diff_sum: c.abs_diff_sum,
                elements: c.elements,
                latency_delta_sum: c.latency_delta_sum,
            },
        }
    }
}

/// A policy bound to loaded versions.
pub struct ActiveTraffic {
    pub policy: TrafficPolicy,
    pub baseline: Arc<ModelVersion>,
    pub canary: Option<Arc<ModelVersion>>,
    pub shadow: Option<Arc<ModelVersion>>,
    pub stats: Arc<RolloutStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Baseline,
    Candidate,
}

/// Where one request goes.
pub struct Routed {
    pub version: Arc<ModelVersion>,
    arm: Option<(Arc<RolloutStats>, Arm)>,
    shadow: Option<(Arc<ModelVersion>, Arc<RolloutStats>)>,
}

/// FNV-1a: stable across processes and replicas, so a user stays on one arm everywhere.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// True for `percent` % of draws.
fn chosen(percent: f64, draw: u64) -> bool {
    // 0.01 % resolution.
    ((draw % 10_000) as f64) < percent * 100.0
}

impl ActiveTraffic {
    /// Picks the arm for one request; `header` looks up a request header by name.
    pub fn route<'h>(&self, header: impl Fn(&str) -> Option<&'h [u8]>) -> Routed {
        let mut version = self.baseline.clone();
        let mut arm = Arm::Baseline;
        if let (Some(c), Some(candidate)) = (&self.policy.canary, &self.canary) {
            let draw = c
                .sticky_header
                .as_deref()
                .and_then(&header)
                .map_or_else(rand::random::<u64>, stable_hash);
            if chosen(c.percent, draw) {
                version = candidate.clone();
                arm = Arm::Candidate;
            }
        }
        let shadow = match (&self.policy.shadow, &self.shadow) {
            (Some(s), Some(target))
                if arm == Arm::Baseline && chosen(s.percent, rand::random::<u64>()) =>
            {
                Some((target.clone(), self.stats.clone()))
            }
            _ => None,
        };
        Routed {
            version,
            arm: Some((self.stats.clone(), arm)),
            shadow,
        }
    }
}

impl Routed {
    pub fn direct(version: Arc<ModelVersion>) -> Self {
        Self {
            version,
            arm: None,
            shadow: None,
        }
    }

    fn record(&self, elapsed: Duration, error: Option<ErrorCode>) {
        if let Some((stats, arm)) = &self.arm {
            match arm {
                Arm::Baseline => stats.baseline.record(elapsed, error),
                Arm::Candidate => stats.candidate.record(elapsed, error),
            }
        }
    }

    /// Admission on the chosen version; a refusal counts against its arm.
    pub fn admit(
        &self,
        protocol: Protocol,
        priority: Priority,
        rows: Option<usize>,
        left: Option<Duration>,
    ) -> Result<Admission, Error> {
        self.version
            .admit(protocol, priority, rows, left)
            .inspect_err(|e| {
                self.record(Duration::ZERO, Some(e.code));
            })
    }

    /// The arm this request was sent to, under a traffic policy.
    pub fn arm(&self) -> Option<Arm> {
        self.arm.as_ref().map(|(_, a)| *a)
    }

    /// True when the request will also be mirrored to a shadow candidate.
    pub fn shadowed(&self) -> bool {
        self.shadow.is_some()
    }

    /// Records a request that failed between admission and inference (a body that did not
    /// decode) and passes the error through.
    pub fn reject_admitted(&self, admission: Admission, err: Error) -> Error {
        self.version.reject_admitted(admission, err)
    }

    /// Runs the request on the chosen version; mirrors it to the shadow afterwards, off the
    /// response path, as a task on `tasks` (so shutdown can wait for it).
    pub async fn infer(
        self,
        admission: Admission,
        request: InferRequest,
        tasks: &TaskTracker,
    ) -> Result<InferResponse, Error> {
        let mirror = self.shadow.as_ref().map(|_| InferRequest {
            id: None,
            inputs: request.inputs.clone(),
            outputs: request.outputs.clone(),
            deadline: request.deadline,
            // Mirrored work runs below everything a client sent.
            priority: Priority::Shadow,
        });
        let started = Instant::now();
        let result = self.version.infer(admission, request).await;
        let elapsed = started.elapsed();
        self.record(elapsed, result.as_ref().err().map(|e| e.code));
        if let (Some((target, stats)), Some(mirror), Ok(response)) =
            (self.shadow, mirror, result.as_ref())
        {
            let primary = response.outputs.clone();
            tasks.spawn(shadow(target, stats, mirror, primary, elapsed));
        }
        result
    }
}

/// Runs the mirrored request on the candidate and compares. Never touches the client's
/// response; a candidate at its limit simply refuses (counted as a failure of the candidate).
async fn shadow(
    target: Arc<ModelVersion>,
    stats: Arc<RolloutStats>,
    request: InferRequest,
    primary: Vec<Tensor>,
    primary_elapsed: Duration,
) {
    let started = Instant::now();
    let rows = request.inputs.first().map(Tensor::rows);
    let result = match target.admit(Protocol::Internal, Priority::Shadow, rows, None) {
        Ok(admission) => target.infer(admission, request).await,
        Err(e) => Err(e),
    };
    let elapsed = started.elapsed();
    // Refused for capacity or out of time: the server's doing, not the candidate's.
    let dropped = result
        .as_ref()
        .err()
        .is_some_and(|e| is_capacity_failure(e.code));
    if dropped {
        stats.shadow.lock().dropped += 1;
        crate::metrics::shadow_dropped(&target.name, &target.version_label);
        return;
    }
    stats
        .candidate
        .record(elapsed, result.as_ref().err().map(|e| e.code));
    let mut c = stats.shadow.lock();
    match result {
        Ok(response) => {
            let (agree, diff, n) = compare(&primary, &response.outputs);
            c.compared += 1;
            c.agreed += u64::from(agree);
            c.abs_diff_sum += diff;
            c.elements += n;
            c.latency_delta_sum += elapsed.as_secs_f64() - primary_elapsed.as_secs_f64();
            crate::metrics::shadow_compared(
                &target.name,
                &target.version_label,
                agree,
                c_summary(&c),
            );
        }
        Err(_) => c.failed += 1,
    }
}

fn c_summary(c: &Comparison) -> (f64, f64, f64) {
    let n = c.compared.max(1) as f64;
    (
        c.agreed as f64 / n,
        if c.elements > 0 {
            c.abs_diff_sum / c.elements as f64
        } else {
            0.0
        },
        c.latency_delta_sum / n,
    )
}

/// (all outputs agree, sum of absolute differences, numeric elements compared).
pub fn compare(a: &[Tensor], b: &[Tensor]) -> (bool, f64, u64) {
    let mut agree = a.len() == b.len();
    let mut sum = 0.0;
    let mut n = 0u64;
    for (x, y) in a.iter().zip(b) {
        if x.shape != y.shape {
            agree = false;
            continue;
        }
        let pairs: Vec<(f64, f64)> = match (&x.data, &y.data) {
            (TensorData::Bytes(p), TensorData::Bytes(q)) => {
                agree &= p == q;
                continue;
            }
            (p, q) => match (p.to_f64_vec(), q.to_f64_vec()) {
                (Some(p), Some(q)) => p.into_iter().zip(q).collect(),
                _ => {
                    agree = false;
                    continue;
                }
            },
        };
        for (p, q) in pairs {
            let d = if p == q || (p.is_nan() && q.is_nan()) {
                0.0
            } else {
                (p - q).abs()
            };
            if d.is_nan() || d > AGREEMENT_TOLERANCE {
                agree = false;
            }
            if d.is_finite() {
                sum += d;
            }
            n += 1;
        }
    }
    (agree, sum, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for us in [
            0u64, 1, 15, 16, 17, 31, 32, 100, 1000, 12_345, 1_000_000, 60_000_000,
        ] {
            let b = bucket_of(us);
            assert!(b >= last, "bucket order at {us}");
            last = b;
            assert!(bucket_upper(b) >= us, "upper bound of {us}");
            assert!(
                bucket_upper(b) as f64 <= (us as f64) * 1.125 + 1.0,
                "resolution at {us}"
            );
        }
    }

    #[test]
    fn quantiles_and_windows() {
        let arm = ArmStats::default();
        for _ in 0..99 {
            arm.record(Duration::from_micros(1000), None);
        }
        arm.record(Duration::from_micros(50_000), None);
        arm.record(Duration::ZERO, Some(ErrorCode::Internal));
        arm.record(Duration::ZERO, Some(ErrorCode::InvalidArgument));
        let s = arm.snapshot();
        assert_eq!((s.requests, s.errors), (102, 2));
        let p50 = s.quantile_ms(0.5).expect("p50");
        assert!((1.0..1.2).contains(&p50), "{p50}");
        let p100 = s.quantile_ms(1.0).expect("max");
        assert!((50.0..57.0).contains(&p100), "{p100}");
        for _ in 0..10 {
            arm.record(Duration::from_micros(10_000), None);
        }
        let window = arm.snapshot().since(&s);
        assert_eq!(window.requests, 10);
        let p99 = window.quantile_ms(0.99).expect("p99");
        assert!((10.0..11.3).contains(&p99), "{p99}");
    }

    #[test]
    fn comparison_counts_differences() {
        let t = |v: Vec<f32>| Tensor {
            name: "y".into(),
            shape: vec![v.len()],
            data: TensorData::F32(v),
        };
        assert_eq!(
            compare(&[t(vec![1.0, 2.0])], &[t(vec![1.0, 2.0])]),
            (true, 0.0, 2)
        );
        let (agree, sum, n) = compare(&[t(vec![1.0, 2.0])], &[t(vec![1.5, 2.0])]);
        assert!(!agree && (sum - 0.5).abs() < 1e-9 && n == 2);
        assert!(!compare(&[t(vec![1.0])], &[t(vec![1.0, 2.0])]).0);
    }

    #[test]
    fn sticky_choice_is_stable_and_proportional() {
        let hits = (0..10_000u32)
            .filter(|i| chosen(10.0, stable_hash(format!("user-{i}").as_bytes())))
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(stable_hash(b"abc"), stable_hash(b"abc"));
        assert!(!chosen(0.0, 0));
        assert!(chosen(100.0, 9_999));
    }
}
