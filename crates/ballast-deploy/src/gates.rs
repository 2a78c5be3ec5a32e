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

impl Gate for ErrorRateGate {
    fn name(&self) -> &'static str {
        "error_rate"
    }

    fn judge(&self, w: &StatsSnapshot, limits: &GateThresholds, _mode: StepMode) -> Verdict {
        let (b, c) = (&w.baseline, &w.candidate);
        let figures = json!({
            "baseline_requests": b.requests, "baseline_errors": b.errors,
            "baseline_error_rate": b.error_rate(),
            "candidate_requests": c.requests, "candidate_errors": c.errors,
            "candidate_error_rate": c.error_rate(),
        });
        if c.requests < limits.min_samples {
            return Verdict::Wait(figures);
        }
        let increase = c.error_rate() - b.error_rate();
        if increase > limits.max_error_rate_increase {
            return Verdict::Fail {
                reason: format!(
                    "error rate {:.2}% vs baseline {:.2}% (+{:.2} points, limit +{:.2}) over {} candidate requests",
                    c.error_rate() * 100.0,
                    b.error_rate() * 100.0,
                    increase * 100.0,
                    limits.max_error_rate_increase * 100.0,
                    c.requests
                ),
                figures,
            };
        }
        Verdict::Pass(figures)
    }
}

pub struct LatencyGate;

impl Gate for LatencyGate {
    fn name(&self) -> &'static str {
        "p99_latency"
    }

    fn judge(&self, w: &StatsSnapshot, limits: &GateThresholds, _mode: StepMode) -> Verdict {
        let (b, c) = (w.baseline.quantile_ms(0.99), w.candidate.quantile_ms(0.99));
        let ok = |s: &ballast_serve::traffic::ArmSnapshot| s.requests.saturating_sub(s.errors);
        let figures = json!({
            "baseline_p99_ms": b, "candidate_p99_ms": c,
            "baseline_samples": ok(&w.baseline), "candidate_samples": ok(&w.candidate),
        });
        let (Some(b), Some(c)) = (b, c) else {
            return Verdict::Wait(figures);
        };
        if ok(&w.candidate) < limits.min_samples || ok(&w.baseline) < limits.min_samples {
            return Verdict::Wait(figures);
        }
        if c > b * limits.max_p99_ratio && c - b > limits.p99_slack_ms {
            return Verdict::Fail {
                reason: format!(
                    "p99 latency {c:.2} ms vs baseline {b:.2} ms ({:.1}x, limit {:.1}x)",
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
