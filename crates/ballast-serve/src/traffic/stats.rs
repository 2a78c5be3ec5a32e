//! The figures a rollout is judged on: per-arm counters and latency histograms (end to end,
//! and engine service time per batch-size class), and the shadow comparison of outputs.
//!
//! Counters only grow, lock-free on the request path; the rollout controller takes
//! [`RolloutStats::snapshot`]s and subtracts, so a step's window needs no reset. The shadow
//! comparison sits under a lock, taken on the shadow's own task after the client has its answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_core::{ErrorCode, Tensor, TensorData};
use parking_lot::Mutex;

use crate::request::Timing;

/// Latency histogram: exact below 16 µs, then 8 sub-buckets per power of two (≤ 12.5 % wide).
const SUB: usize = 8;
const BUCKETS: usize = 16 + (40 - 4) * SUB;

/// Batch-size classes of the service-time histograms: 1, 2–3, 4–7, … , 128 and more rows.
pub const BATCH_CLASSES: usize = 8;

/// The batch-size class of an engine call of `rows` rows.
pub fn batch_class(rows: usize) -> usize {
    ((usize::BITS - 1 - rows.max(1).leading_zeros()) as usize).min(BATCH_CLASSES - 1)
}

/// An engine call's time scaled to the smallest batch of its class (time × 2^class / rows):
/// within a class (a factor of two in rows) a call's time grows about linearly with its rows,
/// so the arms compare on equal terms even when one forms larger batches within the class
/// (a shadow queue that backs up does).
fn class_scaled(t: &Timing) -> Duration {
    let rows = t.batch_rows.max(1) as u128;
    let lower = 1u128 << batch_class(t.batch_rows);
    Duration::from_nanos((t.compute.as_nanos() * lower / rows).min(u64::MAX as u128) as u64)
}

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

/// The value (ms) at quantile `q` of a latency histogram: the upper bound of its bucket.
fn histogram_quantile_ms(h: &[u64], q: f64) -> Option<f64> {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_upper(i) as f64 / 1000.0);
        }
    }
    None
}

fn since_vec(now: &[u64], earlier: &[u64]) -> Vec<u64> {
    now.iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(earlier.get(i).copied().unwrap_or(0)))
        .collect()
}

fn load_all(h: &[AtomicU64]) -> Vec<u64> {
    h.iter().map(|b| b.load(Ordering::Relaxed)).collect()
}

pub struct ArmStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests the server did not run for capacity or time (refused, shed, out of time,
    /// draining): what the server did to the arm, never judged as the model's errors.
    dropped: AtomicU64,
    /// End-to-end latency of successful requests (admission to answer).
    latency: Box<[AtomicU64]>,
    /// Service time: the engine call that served each successful request, per batch-size
    /// class ([`BATCH_CLASSES`] histograms of [`BUCKETS`]). Queueing and the CPU the other
    /// arm holds are not in it, so the arms compare on equal terms at equal batch sizes (each
    /// call scaled to its class's smallest batch, [`class_scaled`]).
    service: Box<[AtomicU64]>,
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
            service: (0..BUCKETS * BATCH_CLASSES)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl ArmStats {
    /// Records one request: its end-to-end time, its error if it failed, and for a success
    /// the engine call that served it.
    pub fn record(&self, elapsed: Duration, error: Option<ErrorCode>, served: Option<&Timing>) {
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
                if let Some(t) = served {
                    let class = batch_class(t.batch_rows);
                    let i = class * BUCKETS + bucket_of_duration(class_scaled(t));
                    self.service[i].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ArmSnapshot {
        ArmSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            latency: load_all(&self.latency),
            service: load_all(&self.service),
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
    service: Vec<u64>,
}

impl ArmSnapshot {
    pub fn since(&self, earlier: &ArmSnapshot) -> ArmSnapshot {
        ArmSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            latency: since_vec(&self.latency, &earlier.latency),
            service: since_vec(&self.service, &earlier.service),
        }
    }

    /// An arm's window built from figures rather than traffic (gate tests, drills):
    /// `latencies` are the successful requests' latencies, also taken as their service time
    /// in engine calls of one row.
    pub fn from_figures(requests: u64, errors: u64, dropped: u64, latencies: &[Duration]) -> Self {
        let mut s = Self {
            requests,
            errors,
            dropped,
            latency: vec![0; BUCKETS],
            service: vec![0; BUCKETS * BATCH_CLASSES],
        };
        for l in latencies {
            s.latency[bucket_of_duration(*l)] += 1;
        }
        s.add_service(1, latencies);
        s
    }

    /// Adds end-to-end latencies of successful requests (gate tests, drills).
    pub fn add_latency(&mut self, times: &[Duration]) {
        for t in times {
            self.latency[bucket_of_duration(*t)] += 1;
        }
    }

    /// Adds service times of engine calls of `rows` rows (gate tests, drills).
    pub fn add_service(&mut self, rows: usize, times: &[Duration]) {
        if self.service.len() < BUCKETS * BATCH_CLASSES {
            self.service.resize(BUCKETS * BATCH_CLASSES, 0);
        }
        for t in times {
            self.service[batch_class(rows) * BUCKETS + bucket_of_duration(*t)] += 1;
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

    /// End-to-end latency quantile of successful requests, in milliseconds (bucket upper
    /// bound).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        histogram_quantile_ms(&self.latency, q)
    }

    fn service_class(&self, class: usize) -> &[u64] {
        self.service
            .get(class * BUCKETS..(class + 1) * BUCKETS)
            .unwrap_or(&[])
    }

    /// Successful requests served by engine calls of batch-size class `class`.
    pub fn service_count(&self, class: usize) -> u64 {
        self.service_class(class).iter().sum()
    }

    /// Service-time quantile (ms) of requests served by engine calls of class `class`.
    pub fn service_quantile_ms(&self, class: usize, q: f64) -> Option<f64> {
        histogram_quantile_ms(self.service_class(class), q)
    }
}

/// Per-request largest absolute difference, log histogram: bucket 0 holds exact agreement,
/// then [`DIFF_PER_DECADE`] buckets per decade from 1e-9 up to 1e3, then one for larger or
/// not comparable (a NaN against a number, a changed shape or type).
const DIFF_PER_DECADE: usize = 10;
const DIFF_LOW_EXP: i32 = -9;
const DIFF_DECADES: usize = 12;
pub const DIFF_BUCKETS: usize = DIFF_DECADES * DIFF_PER_DECADE + 2;

fn diff_bucket(d: f64) -> usize {
    if d == 0.0 {
        return 0;
    }
    if !d.is_finite() {
        return DIFF_BUCKETS - 1;
    }
    let pos = (d.log10() - f64::from(DIFF_LOW_EXP)) * DIFF_PER_DECADE as f64;
    if pos < 0.0 {
        return 1;
    }
    (pos.ceil() as usize).clamp(1, DIFF_BUCKETS - 1)
}

/// The upper bound of a difference bucket (infinite for the last).
fn diff_bucket_upper(i: usize) -> f64 {
    match i {
        0 => 0.0,
        i if i >= DIFF_BUCKETS - 1 => f64::INFINITY,
        i => 10f64.powf(f64::from(DIFF_LOW_EXP) + i as f64 / DIFF_PER_DECADE as f64),
    }
}

/// What one comparison of a candidate's outputs with the baseline's found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compared {
    /// Largest absolute difference over the numeric (floating-point) elements; infinite
    /// when the outputs cannot be compared (other names, shapes or types, NaN against a
    /// number).
    pub max_diff: f64,
    /// Mean absolute difference over the numeric elements (`None` when there are none or
    /// they cannot be compared).
    pub mean_diff: Option<f64>,
    /// Whether every label output (integer, boolean, string) is equal; `None` when there is
    /// no label output and the structure matched.
    pub labels_agree: Option<bool>,
    /// Numeric elements compared.
    pub elements: u64,
}

#[derive(Default)]
pub(super) struct Comparison {
    compared: u64,
    pub(super) failed: u64,
    pub(super) dropped: u64,
    max_diff: Vec<u64>,
    numeric: u64,
    mean_diff_sum: f64,
    mean_diff_sq_sum: f64,
    abs_diff_sum: f64,
    elements: u64,
    labels: u64,
    labels_agreed: u64,
    latency_delta_sum: f64,
}

impl Comparison {
    pub(super) fn add(&mut self, c: &Compared, latency_delta: f64) {
        if self.max_diff.is_empty() {
            self.max_diff = vec![0; DIFF_BUCKETS];
        }
        self.compared += 1;
        self.max_diff[diff_bucket(c.max_diff)] += 1;
        if let Some(m) = c.mean_diff {
            self.numeric += 1;
            self.mean_diff_sum += m;
            self.mean_diff_sq_sum += m * m;
            self.abs_diff_sum += m * c.elements as f64;
            self.elements += c.elements;
        }
        if let Some(agree) = c.labels_agree {
            self.labels += 1;
            self.labels_agreed += u64::from(agree);
        }
        self.latency_delta_sum += latency_delta;
    }

    fn snapshot(&self) -> ShadowSnapshot {
        ShadowSnapshot {
            compared: self.compared,
            failed: self.failed,
            dropped: self.dropped,
            max_diff: if self.max_diff.is_empty() {
                vec![0; DIFF_BUCKETS]
            } else {
                self.max_diff.clone()
            },
            numeric: self.numeric,
            mean_diff_sum: self.mean_diff_sum,
            mean_diff_sq_sum: self.mean_diff_sq_sum,
            abs_diff_sum: self.abs_diff_sum,
            elements: self.elements,
            labels: self.labels,
            labels_agreed: self.labels_agreed,
            latency_delta_sum: self.latency_delta_sum,
        }
    }
}

/// The shadow comparisons of a window: how far the candidate's outputs are from the
/// baseline's on the same requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowSnapshot {
    pub compared: u64,
    /// Shadow requests the candidate failed.
    pub failed: u64,
    /// Shadow requests the server did not run for capacity (refused below sheddable traffic,
    /// or out of time): not the candidate's fault, never judged as its errors.
    pub dropped: u64,
    /// Per-request largest absolute difference ([`DIFF_BUCKETS`] log buckets).
    max_diff: Vec<u64>,
    /// Requests with numeric outputs compared, and the sum (and sum of squares) of their
    /// per-request mean absolute difference.
    pub numeric: u64,
    pub mean_diff_sum: f64,
    pub mean_diff_sq_sum: f64,
    /// Sum of absolute differences over `elements` numeric elements.
    pub abs_diff_sum: f64,
    pub elements: u64,
    /// Requests with label outputs (or outputs that could not be compared), and those whose
    /// labels all matched.
    pub labels: u64,
    pub labels_agreed: u64,
    /// Sum over compared requests of candidate minus baseline latency, seconds.
    pub latency_delta_sum: f64,
}

impl ShadowSnapshot {
    pub fn since(&self, e: &ShadowSnapshot) -> ShadowSnapshot {
        ShadowSnapshot {
            compared: self.compared.saturating_sub(e.compared),
            failed: self.failed.saturating_sub(e.failed),
            dropped: self.dropped.saturating_sub(e.dropped),
            max_diff: since_vec(&self.max_diff, &e.max_diff),
            numeric: self.numeric.saturating_sub(e.numeric),
            mean_diff_sum: self.mean_diff_sum - e.mean_diff_sum,
            mean_diff_sq_sum: self.mean_diff_sq_sum - e.mean_diff_sq_sum,
            abs_diff_sum: self.abs_diff_sum - e.abs_diff_sum,
            elements: self.elements.saturating_sub(e.elements),
            labels: self.labels.saturating_sub(e.labels),
            labels_agreed: self.labels_agreed.saturating_sub(e.labels_agreed),
            latency_delta_sum: self.latency_delta_sum - e.latency_delta_sum,
        }
    }

    /// A window built from comparisons rather than traffic (gate tests, drills).
    pub fn from_comparisons(items: &[Compared]) -> Self {
        let mut c = Comparison::default();
        for i in items {
            c.add(i, 0.0);
        }
        c.snapshot()
    }

    /// Share of compared requests whose every numeric element is within `tolerance` of the
    /// baseline's. Counted from the difference histogram, so a request is counted as within
    /// only when its bucket lies wholly within (at most 26 % conservative).
    pub fn agreement(&self, tolerance: f64) -> Option<f64> {
        (self.compared > 0).then(|| self.agreeing(tolerance) as f64 / self.compared as f64)
    }

    /// Compared requests whose largest difference is within `tolerance`.
    pub fn agreeing(&self, tolerance: f64) -> u64 {
        self.max_diff
            .iter()
            .enumerate()
            .filter(|(i, _)| diff_bucket_upper(*i) <= tolerance)
            .map(|(_, n)| n)
            .sum()
    }

    /// Quantile of the per-request largest difference (bucket upper bound; infinite when
    /// that share of requests could not be compared).
    pub fn max_diff_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.max_diff.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.max_diff.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(diff_bucket_upper(i));
            }
        }
        None
    }

    /// Compared requests whose outputs could not be compared at all.
    pub fn incomparable(&self) -> u64 {
        self.max_diff.last().copied().unwrap_or(0)
    }

    /// Mean over requests of the per-request mean absolute difference, and its standard
    /// deviation across requests.
    pub fn mean_diff(&self) -> Option<(f64, f64)> {
        if self.numeric == 0 {
            return None;
        }
        let n = self.numeric as f64;
        let mean = self.mean_diff_sum / n;
        let var = (self.mean_diff_sq_sum / n - mean * mean).max(0.0);
        Some((mean, var.sqrt()))
    }

    /// Mean absolute difference over all numeric elements.
    pub fn mean_abs_diff(&self) -> Option<f64> {
        (self.elements > 0).then(|| self.abs_diff_sum / self.elements as f64)
    }

    pub fn label_agreement(&self) -> Option<f64> {
        (self.labels > 0).then(|| self.labels_agreed as f64 / self.labels as f64)
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
    pub(super) shadow: Mutex<Comparison>,
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
        let shadow = self.shadow.lock().snapshot();
        StatsSnapshot {
            baseline: self.baseline.snapshot(),
            candidate: self.candidate.snapshot(),
            shadow,
        }
    }
}

/// The tolerance behind the `agree`/`disagree` result of `ballast_shadow_requests_total` and
/// the agreement gauge; rollout gates use the tolerance of their plan.
pub const AGREEMENT_TOLERANCE: f64 = 1e-3;

/// The running figures for the metrics, read from the comparison in place (it is under the
/// lock; no copy of its histogram per shadow request).
pub(super) fn c_summary(c: &Comparison) -> (f64, f64, f64) {
    let n = c.compared.max(1) as f64;
    let agreeing: u64 = c
        .max_diff
        .iter()
        .enumerate()
        .filter(|(i, _)| diff_bucket_upper(*i) <= AGREEMENT_TOLERANCE)
        .map(|(_, k)| k)
        .sum();
    let mean = if c.elements > 0 {
        c.abs_diff_sum / c.elements as f64
    } else {
        0.0
    };
    (agreeing as f64 / n, mean, c.latency_delta_sum / n)
}

/// Compares a candidate's outputs with the baseline's for the same request. Floating-point
/// outputs are compared by absolute difference; integer, boolean and string outputs are
/// labels (class ids, flags, names) and must be equal.
pub fn compare(baseline: &[Tensor], candidate: &[Tensor]) -> Compared {
    let mut out = Compared {
        max_diff: 0.0,
        mean_diff: None,
        labels_agree: None,
        elements: 0,
    };
    let mut structural = baseline.len() == candidate.len();
    let mut sum = 0.0;
    let mut labels_agree = true;
    let mut has_labels = false;
    for (x, y) in baseline.iter().zip(candidate) {
        if x.shape != y.shape || x.name != y.name {
            structural = false;
            continue;
        }
        let float = |d: &TensorData| {
            matches!(
                d,
                TensorData::F16(_) | TensorData::F32(_) | TensorData::F64(_)
            )
        };
        match (&x.data, &y.data) {
            (p, q) if float(p) && float(q) => {
                let (Some(p), Some(q)) = (p.to_f64_vec(), q.to_f64_vec()) else {
                    structural = false;
                    continue;
                };
                for (a, b) in p.into_iter().zip(q) {
                    let d = if a == b || (a.is_nan() && b.is_nan()) {
                        0.0
                    } else {
                        (a - b).abs()
                    };
                    if d.is_nan() {
                        // A NaN against a number: not comparable.
                        out.max_diff = f64::INFINITY;
                        continue;
                    }
                    out.max_diff = out.max_diff.max(d);
                    if d.is_finite() {
                        sum += d;
                    }
                    out.elements += 1;
                }
            }
            (TensorData::Bytes(p), TensorData::Bytes(q)) => {
                has_labels = true;
                labels_agree &= p == q;
            }
            (p, q) if !float(p) && !float(q) => {
                has_labels = true;
                match (p.to_f64_vec(), q.to_f64_vec()) {
                    (Some(p), Some(q)) => labels_agree &= p == q,
                    _ => structural = false,
                }
            }
            _ => structural = false,
        }
    }
    if !structural || out.max_diff.is_infinite() {
        // Not comparable: as far from the baseline as can be, and a changed answer.
        out.max_diff = f64::INFINITY;
        out.labels_agree = Some(false);
        return out;
    }
    if out.elements > 0 && out.max_diff.is_finite() {
        out.mean_diff = Some(sum / out.elements as f64);
    }
    if has_labels {
        out.labels_agree = Some(labels_agree);
    }
    out
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
            arm.record(Duration::from_micros(1000), None, None);
        }
        arm.record(Duration::from_micros(50_000), None, None);
        arm.record(Duration::ZERO, Some(ErrorCode::Internal), None);
        arm.record(Duration::ZERO, Some(ErrorCode::InvalidArgument), None);
        let s = arm.snapshot();
        assert_eq!((s.requests, s.errors), (102, 2));
        let p50 = s.quantile_ms(0.5).expect("p50");
        assert!((1.0..1.2).contains(&p50), "{p50}");
        let p100 = s.quantile_ms(1.0).expect("max");
        assert!((50.0..57.0).contains(&p100), "{p100}");
        for _ in 0..10 {
            arm.record(Duration::from_micros(10_000), None, None);
        }
        let window = arm.snapshot().since(&s);
        assert_eq!(window.requests, 10);
        let p99 = window.quantile_ms(0.99).expect("p99");
        assert!((10.0..11.3).contains(&p99), "{p99}");
    }

    fn t(name: &str, data: TensorData) -> Tensor {
        let n = match &data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            _ => 1,
        };
        Tensor {
            name: name.into(),
            shape: vec![n],
            data,
        }
    }

    #[test]
    fn comparison_measures_differences_and_labels() {
        let p = |v: Vec<f32>| t("p", TensorData::F32(v));
        let same = compare(&[p(vec![0.25, 0.75])], &[p(vec![0.25, 0.75])]);
        assert_eq!(
            (same.max_diff, same.mean_diff, same.labels_agree),
            (0.0, Some(0.0), None)
        );
        let near = compare(&[p(vec![0.25, 0.75])], &[p(vec![0.27, 0.73])]);
        assert!((near.max_diff - 0.02).abs() < 1e-6, "{near:?}");
        assert!((near.mean_diff.unwrap() - 0.02).abs() < 1e-6);
        // A classifier: probabilities within 0.02, the same label.
        let label = |v: Vec<i64>| t("label", TensorData::I64(v));
        let c = compare(
            &[label(vec![1]), p(vec![0.4, 0.6])],
            &[label(vec![1]), p(vec![0.42, 0.58])],
        );
        assert_eq!(c.labels_agree, Some(true));
        let c = compare(
            &[label(vec![1]), p(vec![0.49, 0.51])],
            &[label(vec![0]), p(vec![0.51, 0.49])],
        );
        assert_eq!(c.labels_agree, Some(false));
        // Flags are labels too.
        let flag = |v: Vec<bool>| t("is_fraud", TensorData::Bool(v));
        assert_eq!(
            compare(&[flag(vec![true])], &[flag(vec![false])]).labels_agree,
            Some(false)
        );
        // A changed shape, name or type cannot be compared: infinitely far, labels disagree.
        for other in [p(vec![1.0]), t("q", TensorData::F32(vec![0.25, 0.75]))] {
            let c = compare(&[p(vec![0.25, 0.75])], &[other]);
            assert!(c.max_diff.is_infinite() && c.labels_agree == Some(false));
        }
        let nan = compare(&[p(vec![f32::NAN])], &[p(vec![0.5])]);
        assert!(nan.max_diff.is_infinite() && nan.labels_agree == Some(false));
        assert_eq!(
            compare(&[p(vec![f32::NAN])], &[p(vec![f32::NAN])]).max_diff,
            0.0
        );
    }

    #[test]
    fn agreement_and_difference_quantiles_come_from_the_histogram() {
        let item = |d: f64| Compared {
            max_diff: d,
            mean_diff: d.is_finite().then_some(d / 2.0),
            labels_agree: None,
            elements: 2,
        };
        let mut items: Vec<Compared> = (0..90).map(|i| item(1e-4 * f64::from(i % 10))).collect();
        items.extend((0..9).map(|_| item(0.2)));
        items.push(item(f64::INFINITY));
        let s = ShadowSnapshot::from_comparisons(&items);
        assert_eq!(s.compared, 100);
        assert_eq!(s.agreement(0.01), Some(0.9));
        assert_eq!(s.agreement(1.0), Some(0.99));
        assert_eq!(s.incomparable(), 1);
        let p50 = s.max_diff_quantile(0.5).unwrap();
        assert!((4e-4..=6.4e-4).contains(&p50), "{p50}");
        let p95 = s.max_diff_quantile(0.95).unwrap();
        assert!((0.2..=0.26).contains(&p95), "{p95}");
        assert!(s.max_diff_quantile(1.0).unwrap().is_infinite());
        let (mean, sd) = s.mean_diff().unwrap();
        assert_eq!(s.numeric, 99);
        assert!(mean > 0.0 && sd > 0.0);
        // Windows subtract.
        let later = ShadowSnapshot::from_comparisons(&[items.clone(), vec![item(0.3)]].concat());
        let w = later.since(&s);
        assert_eq!((w.compared, w.agreement(0.01)), (1, Some(0.0)));
    }

    #[test]
    fn service_time_is_kept_per_batch_class() {
        let arm = ArmStats::default();
        let timing = |rows, us| Timing {
            queue: Duration::ZERO,
            compute: Duration::from_micros(us),
            batch_rows: rows,
        };
        for _ in 0..10 {
            arm.record(Duration::from_millis(5), None, Some(&timing(1, 100)));
            arm.record(Duration::from_millis(5), None, Some(&timing(6, 400)));
        }
        let s = arm.snapshot();
        assert_eq!((s.service_count(0), s.service_count(2)), (10, 10));
        assert_eq!(s.service_count(1), 0);
        // 400 µs for 6 rows, scaled to the class's 4 rows.
        let q = s.service_quantile_ms(2, 0.5).unwrap();
        assert!((0.266..0.3).contains(&q), "{q}");
        assert_eq!(batch_class(1), 0);
        assert_eq!(batch_class(3), 1);
        assert_eq!(batch_class(64), 6);
        assert_eq!(batch_class(100_000), BATCH_CLASSES - 1);
    }
}
