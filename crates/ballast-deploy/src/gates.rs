//! Rollout gates: each judges a step's window of figures (baseline and candidate on the same
//! traffic) against the plan's thresholds. A gate says pass, wait (not enough samples yet) or
//! fail with a reason; one failure rolls the rollout back. New gates (drift, delayed-label
//! accuracy) implement [`Gate`] and join the list the deployer is built with.

use ballast_core::traffic::{GateThresholds, StepMode};
use ballast_serve::traffic::StatsSnapshot;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(serde_json::Value),
    /// Too few samples to judge.
    Wait(serde_json::Value),
    Fail {
        reason: String,
        figures: serde_json::Value,
    },
}

pub trait Gate: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn judge(&self, window: &StatsSnapshot, limits: &GateThresholds, mode: StepMode) -> Verdict;
}

/// The built-in gates: error rate, p99 latency, output divergence.
pub fn default_gates() -> Vec<Box<dyn Gate>> {
    vec![
        Box::new(ErrorRateGate),
        Box::new(LatencyGate),
        Box::new(DivergenceGate),
    ]
}

pub struct ErrorRateGate;

/// One-sided z for the error-rate bounds. The controller looks at a growing window many times
/// per step, so each look is held to a per-look false-alarm rate of about 5e-4; over the ~100
/// looks of a step (strongly correlated: each window contains the last) that stays well under
/// 5 % per rollout.
const ERROR_RATE_Z: f64 = 3.3;

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
    (pc - pb, ERROR_RATE_Z * (vc + vb).sqrt())
}

impl Gate for ErrorRateGate {
    fn name(&self) -> &'static str {
        "error_rate"
    }

    /// Judges the model's own errors only: requests the server refused, shed or ran out of
    /// time for are reported (`*_dropped`) and left out of both rates. Fails when the
    /// difference is over the limit with confidence, passes when it is under with confidence,
    /// waits otherwise (the step's timeout then decides, as its plan says).
    fn judge(&self, w: &StatsSnapshot, limits: &GateThresholds, _mode: StepMode) -> Verdict {
        let (b, c) = (&w.baseline, &w.candidate);
        let (diff, half) = error_rate_difference(c.errors, c.judged(), b.errors, b.judged());
        let figures = json!({
            "baseline_requests": b.judged(), "baseline_errors": b.errors,
            "baseline_dropped": b.dropped, "baseline_error_rate": b.error_rate(),
            "candidate_requests": c.judged(), "candidate_errors": c.errors,
            "candidate_dropped": c.dropped, "candidate_error_rate": c.error_rate(),
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

pub struct LatencyGate;

impl Gate for LatencyGate {
    fn name(&self) -> &'static str {
        "p99_latency"
    }

    /// Canary steps only: there both arms answer client traffic on equal terms. A shadow
    /// request runs after the client's answer at the lowest priority, behind everything the
    /// baseline serves, so its latency measures the server's load, not the candidate (it read
    /// 26.6 ms against 1.15 ms for a candidate that measured even in canary); shadow steps
    /// report it and pass.
    fn judge(&self, w: &StatsSnapshot, limits: &GateThresholds, mode: StepMode) -> Verdict {
        let (b, c) = (w.baseline.quantile_ms(0.99), w.candidate.quantile_ms(0.99));
        let ok = |s: &ballast_serve::traffic::ArmSnapshot| s.judged().saturating_sub(s.errors);
        let figures = json!({
            "baseline_p99_ms": b, "candidate_p99_ms": c,
            "baseline_samples": ok(&w.baseline), "candidate_samples": ok(&w.candidate),
            "judged": mode == StepMode::Canary,
        });
        if mode == StepMode::Shadow {
            return Verdict::Pass(figures);
        }
        let (Some(b), Some(c)) = (b, c) else {
            return Verdict::Wait(figures);
        };
        if ok(&w.candidate) < limits.min_samples || ok(&w.baseline) < limits.min_samples {
            return Verdict::Wait(figures);
        }
        if c > b * limits.max_p99_ratio && c - b > limits.p99_slack_ms {
            return Verdict::Fail {
                reason: format!(
                    "p99 latency {c:.2} ms vs baseline {b:.2} ms ({:.2}x, limit {:.2}x)",
                    c / b.max(1e-9),
                    limits.max_p99_ratio
                ),
                figures,
            };
        }
        Verdict::Pass(figures)
    }
}

pub struct DivergenceGate;

impl Gate for DivergenceGate {
    fn name(&self) -> &'static str {
        "output_divergence"
    }

    fn judge(&self, w: &StatsSnapshot, limits: &GateThresholds, mode: StepMode) -> Verdict {
        let s = &w.shadow;
        let figures = json!({
            "compared": s.compared, "agreement": s.agreement(),
            "mean_abs_diff": s.mean_abs_diff(), "latency_delta_ms": s.mean_latency_delta_ms(),
        });
        if s.compared < limits.min_samples {
            // Canary steps compare nothing; only shadow steps must wait for comparisons.
            return match mode {
                StepMode::Shadow => Verdict::Wait(figures),
                StepMode::Canary => Verdict::Pass(figures),
            };
        }
        match s.mean_abs_diff() {
            Some(d) if d > limits.max_mean_abs_diff => Verdict::Fail {
                reason: format!(
                    "outputs diverge from the baseline: mean absolute difference {d:.4} (limit {}), agreement {:.1}% over {} requests",
                    limits.max_mean_abs_diff,
                    s.agreement().unwrap_or(0.0) * 100.0,
                    s.compared
                ),
                figures,
            },
            _ => Verdict::Pass(figures),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ballast_serve::traffic::ArmSnapshot;

    use super::*;

    fn window(baseline: ArmSnapshot, candidate: ArmSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            baseline,
            candidate,
            ..StatsSnapshot::default()
        }
    }

    fn arm(requests: u64, errors: u64, dropped: u64) -> ArmSnapshot {
        ArmSnapshot::from_figures(requests, errors, dropped, &[])
    }

    fn is_fail(v: &Verdict) -> bool {
        matches!(v, Verdict::Fail { .. })
    }

    #[test]
    fn error_rate_passes_an_equal_candidate_once_confident() {
        let limits = GateThresholds::default();
        let gate = ErrorRateGate;
        // Both arms fail 0.2% of requests (bad input the clients send): equal, and with 5,000
        // requests each confidently within +1 point.
        let v = gate.judge(
            &window(arm(5000, 10, 0), arm(5000, 12, 0)),
            &limits,
            StepMode::Canary,
        );
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        // With 100 requests the same figures are not enough to be sure either way.
        let v = gate.judge(
            &window(arm(100, 0, 0), arm(100, 1, 0)),
            &limits,
            StepMode::Canary,
        );
        assert!(matches!(v, Verdict::Wait(_)), "{v:?}");
    }

    #[test]
    fn error_rate_ignores_what_the_server_refused() {
        // Under overload the candidate's arm had 9% of its requests refused for capacity (the
        // demo's false rollback): dropped, not errors.
        let limits = GateThresholds::default();
        let v = ErrorRateGate.judge(
            &window(arm(4000, 0, 0), arm(4000, 0, 363)),
            &limits,
            StepMode::Shadow,
        );
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    }

    #[test]
    fn error_rate_fails_two_points_worse_with_enough_evidence() {
        let limits = GateThresholds::default();
        let v = ErrorRateGate.judge(
            &window(arm(5000, 0, 0), arm(5000, 150, 0)),
            &limits,
            StepMode::Canary,
        );
        let Verdict::Fail { reason, .. } = &v else {
            panic!("expected a failure, got {v:?}")
        };
        assert!(reason.contains("error rate 3.00%"), "{reason}");
        // A single unlucky error burst in a small window is not enough.
        let v = ErrorRateGate.judge(
            &window(arm(50, 0, 0), arm(50, 2, 0)),
            &limits,
            StepMode::Canary,
        );
        assert!(!is_fail(&v), "{v:?}");
    }

    #[test]
    fn error_rate_bounds_contain_the_difference() {
        let (d, h) = error_rate_difference(30, 1000, 10, 1000);
        assert!(h > 0.0);
        assert!(d - h < 0.02 && 0.02 < d + h, "{d} ± {h}");
        // No errors observed still leaves an uncertainty.
        assert!(error_rate_difference(0, 10, 0, 10).1 > 0.0);
    }

    fn latencies(ms: f64, n: usize) -> Vec<Duration> {
        vec![Duration::from_secs_f64(ms / 1e3); n]
    }

    #[test]
    fn latency_is_judged_in_canary_steps_only() {
        let limits = GateThresholds::default();
        let slow = ArmSnapshot::from_figures(100, 0, 0, &latencies(26.6, 100));
        let fast = ArmSnapshot::from_figures(100, 0, 0, &latencies(1.15, 100));
        let w = window(fast, slow);
        // Shadow latency reads the server's load: reported, not judged.
        assert!(matches!(
            LatencyGate.judge(&w, &limits, StepMode::Shadow),
            Verdict::Pass(_)
        ));
        let v = LatencyGate.judge(&w, &limits, StepMode::Canary);
        let Verdict::Fail { reason, .. } = &v else {
            panic!("expected a failure, got {v:?}")
        };
        // The ratio is printed with the precision that shows it is over the limit.
        assert!(reason.contains("limit 2.00x"), "{reason}");
    }

    #[test]
    fn latency_within_slack_passes() {
        let limits = GateThresholds::default();
        let w = window(
            ArmSnapshot::from_figures(100, 0, 0, &latencies(0.5, 100)),
            ArmSnapshot::from_figures(100, 0, 0, &latencies(1.4, 100)),
        );
        assert!(matches!(
            LatencyGate.judge(&w, &limits, StepMode::Canary),
            Verdict::Pass(_)
        ));
    }
}
