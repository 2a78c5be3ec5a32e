//! Rollout gates: each judges the evidence of a step's window (baseline and candidate on the
//! same traffic) against its thresholds in the plan. A gate says pass, wait (the evidence
//! does not decide yet) or fail with a reason; one failure rolls the rollout back.
//!
//! Every gate decides with a confidence bound rather than a raw ratio, so a noisy window
//! waits instead of failing: it fails only when the bound says the limit is breached and
//! passes only when the bound says it holds. The controller looks at a growing window every
//! poll, so each look is held to a one-sided false-alarm rate of about 5e-4 ([`CONFIDENCE_Z`]);
//! successive looks share most of their data, which keeps the rate per rollout far below the
//! number of looks times that (measured: `docs/benchmarks.md`, "Rollout gates").
//!
//! New gates (drift, delayed-label accuracy) implement [`Gate`], read what they need from
//! [`Evidence`] and join the list the deployer is built with; the others are untouched.

use std::time::Duration;

use ballast_core::traffic::{GateThresholds, StepMode};
use ballast_serve::traffic::{ArmSnapshot, BATCH_CLASSES, StatsSnapshot};
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(serde_json::Value),
    /// The evidence does not decide yet.
    Wait(serde_json::Value),
    Fail {
        reason: String,
        figures: serde_json::Value,
    },
}

/// What a gate judges: the step's window of figures and the plan's thresholds.
pub struct Evidence<'a> {
    /// Per-arm counters, latency and service-time histograms, shadow comparisons.
    pub window: &'a StatsSnapshot,
    pub limits: &'a GateThresholds,
    pub mode: StepMode,
    /// The step's share of traffic, in percent.
    pub percent: f64,
    /// Whether a later step of the plan will judge again (false on the last step).
    pub later_steps: bool,
    /// Time since the step's traffic began.
    pub elapsed: Duration,
}

pub trait Gate: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn judge(&self, evidence: &Evidence<'_>) -> Verdict;
}

/// The built-in gates: error rate, latency, output divergence.
pub fn default_gates() -> Vec<Box<dyn Gate>> {
    vec![
        Box::new(ErrorRateGate),
        Box::new(LatencyGate),
        Box::new(DivergenceGate),
    ]
}

/// One-sided z of every bound: about 5e-4 per look.
pub const CONFIDENCE_Z: f64 = 3.3;

/// Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

pub struct ErrorRateGate;

/// Candidate minus baseline error rate with a confidence half-width (Agresti–Caffo: one error
/// and one success added to each arm, so zero observed errors still has an uncertainty).
pub fn error_rate_difference(
    candidate_errors: u64,
    candidate_n: u64,
    baseline_errors: u64,
    baseline_n: u64,
) -> (f64, f64) {
    let adjusted = |e: u64, n: u64| {
        let p = (e as f64 + 1.0) / (n as f64 + 2.0);
        (p, p * (1.0 - p) / (n as f64 + 2.0))
    };
    let (pc, vc) = adjusted(candidate_errors, candidate_n);
    let (pb, vb) = adjusted(baseline_errors, baseline_n);
    (pc - pb, CONFIDENCE_Z * (vc + vb).sqrt())
}

impl Gate for ErrorRateGate {
    fn name(&self) -> &'static str {
        "error_rate"
    }

    /// Judges the model's own errors only: requests the server refused, shed or ran out of
    /// time for are reported (`*_dropped`) and left out of both rates. In a shadow step the
    /// candidate only sees requests the baseline answered, so its errors are errors the
    /// baseline did not make on the same input.
    fn judge(&self, e: &Evidence<'_>) -> Verdict {
        let (w, limits) = (e.window, e.limits);
        let (b, c) = (&w.baseline, &w.candidate);
        let (diff, half) = error_rate_difference(c.errors, c.judged(), b.errors, b.judged());
        let figures = json!({
            "baseline_requests": b.judged(), "baseline_errors": b.errors,
            "baseline_dropped": b.dropped, "baseline_error_rate": b.error_rate(),
            "candidate_requests": c.judged(), "candidate_errors": c.errors,
            "candidate_dropped": c.dropped, "candidate_error_rate": c.error_rate(),
            "shadow_dropped": w.shadow.dropped,
            "difference_low": diff - half, "difference_high": diff + half,
        });
        if c.judged() < limits.min_samples || b.judged() < limits.min_samples {
            return Verdict::Wait(figures);
        }
        if diff - half > limits.max_error_rate_increase {
            return Verdict::Fail {
                reason: format!(
                    "error rate {:.2}% vs baseline {:.2}% (+{:.2} points, at least +{:.2} with confidence; limit +{:.2}) over {} candidate requests",
                    c.error_rate() * 100.0,
                    b.error_rate() * 100.0,
                    (c.error_rate() - b.error_rate()) * 100.0,
                    (diff - half) * 100.0,
                    limits.max_error_rate_increase * 100.0,
                    c.judged()
                ),
                figures,
            };
        }
        if diff + half <= limits.max_error_rate_increase {
            return Verdict::Pass(figures);
        }
        Verdict::Wait(figures)
    }
}

/// Judges latency on equal terms: the service time of each arm's engine calls, compared at
/// the same batch-size class. End-to-end latency mixes in what the server does to an arm —
/// a shadow request waits behind every client request for a CPU the baseline holds (it read
/// 26.6 ms against 1.15 ms for a candidate that measured even in canary), and a canary's
/// smaller share forms smaller batches — so it is reported, and judged only in canary steps
/// of plans that set `max_p99_ratio`.
pub struct LatencyGate;

/// Ratio bounds of the candidate's median service time to the baseline's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceRatio {
    pub low: f64,
    pub mid: f64,
    pub high: f64,
    /// Batch-size classes both arms had samples in.
    pub classes: usize,
    /// Median service times (ms) of the most used common class (baseline, candidate).
    pub medians_ms: (f64, f64),
}

/// Engine calls behind `n` requests of batch class `class`: requests of one call share its
/// time, so the bound is taken over calls, not requests (estimated at the class's middle).
fn calls(n: u64, class: usize) -> f64 {
    let rows = if class == 0 {
        1.0
    } else {
        1.5 * (1u64 << class) as f64
    };
    (n as f64 / rows).max(1.0)
}

/// The candidate's median service time over the baseline's, with distribution-free bounds
/// (order statistics of the median) per batch class, combined as a weighted geometric mean.
pub fn service_ratio(b: &ArmSnapshot, c: &ArmSnapshot, min_samples: u64) -> Option<ServiceRatio> {
    let floor = 0.001; // 1 µs: the histogram's resolution
    let (mut wsum, mut low, mut mid, mut high) = (0.0, 0.0, 0.0, 0.0);
    let (mut classes, mut best) = (0, (0.0, (0.0, 0.0)));
    for class in 0..BATCH_CLASSES {
        let (nb, nc) = (b.service_count(class), c.service_count(class));
        if nb < min_samples || nc < min_samples {
            continue;
        }
        let (kb, kc) = (calls(nb, class), calls(nc, class));
        let spread = |k: f64| CONFIDENCE_Z / (2.0 * k.sqrt());
        let q = |s: &ArmSnapshot, q: f64| s.service_quantile_ms(class, q).map(|v| v.max(floor));
        let (Some(b_lo), Some(b_mid), Some(b_hi)) =
            (q(b, 0.5 - spread(kb)), q(b, 0.5), q(b, 0.5 + spread(kb)))
        else {
            continue;
        };
        let (Some(c_lo), Some(c_mid), Some(c_hi)) =
            (q(c, 0.5 - spread(kc)), q(c, 0.5), q(c, 0.5 + spread(kc)))
        else {
            continue;
        };
        let weight = kb.min(kc);
        wsum += weight;
        low += weight * (c_lo / b_hi).ln();
        mid += weight * (c_mid / b_mid).ln();
        high += weight * (c_hi / b_lo).ln();
        classes += 1;
        if weight > best.0 {
            best = (weight, (b_mid, c_mid));
        }
    }
    (classes > 0).then(|| ServiceRatio {
        low: (low / wsum).exp(),
        mid: (mid / wsum).exp(),
        high: (high / wsum).exp(),
        classes,
        medians_ms: best.1,
    })
}

impl Gate for LatencyGate {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn judge(&self, e: &Evidence<'_>) -> Verdict {
        let (w, limits) = (e.window, e.limits);
        let (b, c) = (w.baseline.quantile_ms(0.99), w.candidate.quantile_ms(0.99));
        let ok = |s: &ArmSnapshot| s.judged().saturating_sub(s.errors);
        let ratio = service_ratio(&w.baseline, &w.candidate, limits.min_samples);
        let figures = json!({
            "service_ratio": ratio.map(|r| r.mid),
            "service_ratio_low": ratio.map(|r| r.low),
            "service_ratio_high": ratio.map(|r| r.high),
            "batch_classes_compared": ratio.map_or(0, |r| r.classes),
            "baseline_service_median_ms": ratio.map(|r| r.medians_ms.0),
            "candidate_service_median_ms": ratio.map(|r| r.medians_ms.1),
            "baseline_p99_ms": b, "candidate_p99_ms": c,
            "baseline_samples": ok(&w.baseline), "candidate_samples": ok(&w.candidate),
            "shadow_dropped": w.shadow.dropped,
        });
        let Some(ratio) = ratio else {
            return Verdict::Wait(figures);
        };
        // While the server sheds more than 1 % of the shadow work it is out of spare CPU, and
        // the shadow's engine calls are timed in the worst of it (preempted, cold caches): not
        // equal terms. Such a window can still pass; a slow candidate is then caught in its
        // canary steps, where both arms answer clients side by side. (A slow candidate's own
        // backlog sheds far less: 0.03–0.06 % in the gate experiment.)
        let s = &w.shadow;
        let shed =
            e.mode == StepMode::Shadow && s.dropped * 100 > s.compared + s.failed + s.dropped;
        // A canary arm with under half the calls runs colder than the baseline: between two of
        // its engine calls the baseline's (and everything else on the core) evict its model
        // from cache. Measured for an identical model: 1.3–2.3x the baseline's service time at
        // 20 %, more under CPU contention. Such a step reports its latency and leaves the
        // verdict to the steps that measure on equal terms (shadow, paired on the same
        // requests; canary at 50 % or more), unless no later step will judge.
        if e.mode == StepMode::Canary && e.percent < 50.0 && e.later_steps {
            let mut figures = figures;
            figures["judged"] = json!(false);
            figures["why_not_judged"] = json!(format!(
                "canary at {}% runs colder than the baseline; latency is judged in shadow and at canary 50% or more",
                e.percent
            ));
            return Verdict::Pass(figures);
        }
        if ratio.low > limits.max_latency_ratio && !shed {
            return Verdict::Fail {
                reason: format!(
                    "service time {:.3} ms vs baseline {:.3} ms at equal batch sizes ({:.2}x, at least {:.2}x with confidence; limit {:.2}x)",
                    ratio.medians_ms.1,
                    ratio.medians_ms.0,
                    ratio.mid,
                    ratio.low,
                    limits.max_latency_ratio
                ),
                figures,
            };
        }
        if let (Some(limit), StepMode::Canary, Some(b), Some(c)) =
            (limits.max_p99_ratio, e.mode, b, c)
            && ok(&w.candidate) >= limits.min_samples
            && ok(&w.baseline) >= limits.min_samples
            && c > b * limit
            && c - b > limits.p99_slack_ms
        {
            return Verdict::Fail {
                reason: format!(
                    "p99 latency {c:.2} ms vs baseline {b:.2} ms ({:.2}x, limit {limit:.2}x)",
                    c / b.max(1e-9),
                ),
                figures,
            };
        }
        if ratio.high <= limits.max_latency_ratio {
            Verdict::Pass(figures)
        } else {
            Verdict::Wait(figures)
        }
    }
}

/// Judges the shadow comparisons: how far the candidate's outputs are from the baseline's on
/// the same requests (mean absolute difference, label agreement, and agreement within a
/// tolerance when the plan asks for it). Canary steps compare nothing and pass.
pub struct DivergenceGate;

/// Where a judged share or mean stands against its limit.
#[derive(PartialEq)]
enum Standing {
    Within,
    Breached,
    Undecided,
}

/// Where a share with confidence bounds `(low, high)` stands against its minimum.
fn share_standing((low, high): (f64, f64), min: f64) -> Standing {
    if high < min {
        Standing::Breached
    } else if low >= min {
        Standing::Within
    } else {
        Standing::Undecided
    }
}

fn fmt_diff(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_infinite() => "incomparable".into(),
        Some(v) => format!("{v:.2e}"),
        None => "-".into(),
    }
}

impl Gate for DivergenceGate {
    fn name(&self) -> &'static str {
        "outputs"
    }

    fn judge(&self, e: &Evidence<'_>) -> Verdict {
        let (s, limits) = (&e.window.shadow, e.limits);
        let z = CONFIDENCE_Z;
        let mean = s.mean_diff();
        let mean_half = mean.map(|(_, sd)| z * sd / (s.numeric.max(1) as f64).sqrt());
        let labels = wilson(s.labels_agreed, s.labels, z);
        let agreeing = s.agreeing(limits.agreement_tolerance);
        let agreement = wilson(agreeing, s.compared, z);
        let quantile = |q| s.max_diff_quantile(q).filter(|v| v.is_finite());
        let figures = json!({
            "compared": s.compared, "failed": s.failed, "shadow_dropped": s.dropped,
            "mean_abs_diff": mean.map(|m| m.0),
            "mean_abs_diff_high": mean.zip(mean_half).map(|((m, _), h)| m + h),
            "max_diff_p50": quantile(0.5), "max_diff_p90": quantile(0.9),
            "max_diff_p99": quantile(0.99), "incomparable": s.incomparable(),
            "agreement_tolerance": limits.agreement_tolerance,
            "agreement": s.agreement(limits.agreement_tolerance),
            "label_requests": s.labels, "label_agreement": s.label_agreement(),
            "latency_delta_ms": s.mean_latency_delta_ms(),
        });
        if e.mode == StepMode::Canary {
            return Verdict::Pass(figures);
        }
        if s.compared < limits.min_samples {
            return Verdict::Wait(figures);
        }
        let mut standings = Vec::new();
        let mut breaches = Vec::new();
        if let (Some((m, _)), Some(h)) = (mean, mean_half)
            && s.numeric >= limits.min_samples
        {
            let st = if m - h > limits.max_mean_abs_diff {
                breaches.push(format!(
                    "mean absolute difference {m:.4} (at least {:.4} with confidence; limit {})",
                    m - h,
                    limits.max_mean_abs_diff
                ));
                Standing::Breached
            } else if m + h <= limits.max_mean_abs_diff {
                Standing::Within
            } else {
                Standing::Undecided
            };
            standings.push(st);
        }
        if s.labels >= limits.min_samples {
            let st = share_standing(labels, limits.min_label_agreement);
            if st == Standing::Breached {
                let what = if s.incomparable() * 2 > s.labels {
                    " (the outputs' names, shapes or types differ from the baseline's)"
                } else {
                    ""
                };
                breaches.push(format!(
                    "labels agree on {:.1}% of {} requests{what} (limit {:.1}%)",
                    s.label_agreement().unwrap_or(0.0) * 100.0,
                    s.labels,
                    limits.min_label_agreement * 100.0
                ));
            }
            standings.push(st);
        }
        if limits.min_agreement > 0.0 {
            let st = share_standing(agreement, limits.min_agreement);
            if st == Standing::Breached {
                breaches.push(format!(
                    "{:.1}% of requests within {} of the baseline (limit {:.1}%)",
                    s.agreement(limits.agreement_tolerance).unwrap_or(0.0) * 100.0,
                    limits.agreement_tolerance,
                    limits.min_agreement * 100.0
                ));
            }
            standings.push(st);
        }
        if !breaches.is_empty() {
            return Verdict::Fail {
                reason: format!(
                    "outputs diverge from the baseline over {} requests: {}; largest difference per request p50 {} p90 {} p99 {}",
                    s.compared,
                    breaches.join("; "),
                    fmt_diff(s.max_diff_quantile(0.5)),
                    fmt_diff(s.max_diff_quantile(0.9)),
                    fmt_diff(s.max_diff_quantile(0.99)),
                ),
                figures,
            };
        }
        if standings.iter().all(|s| *s == Standing::Within) {
            Verdict::Pass(figures)
        } else {
            Verdict::Wait(figures)
        }
    }
}

#[cfg(test)]
mod tests;
