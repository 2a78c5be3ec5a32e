//! Traffic policies and rollout plans: how requests to `/v2/models/{m}/infer` are split between
//! a model's baseline (its `production` alias) and a candidate version, and the steps and gates
//! an automated rollout follows. Plain data, stored as JSON by the registry and applied by the
//! serving layer; [`TrafficPolicy::problems`] and [`RolloutPlan::problems`] report every
//! mistake at once.

use serde::{Deserialize, Serialize};

/// How one model's unversioned traffic is split. The baseline is always the version behind the
/// `production` alias (or the newest version while no alias is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TrafficPolicy {
    /// A share of requests answered by the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// A share of requests also sent to the candidate, off the response path, and compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub version: u64,
    /// Percent of requests (0–100) the candidate answers.
    pub percent: f64,
    /// When set, requests carrying this header are split by a hash of its value, so one user
    /// always sees the same arm (A/B); requests without it are split at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    pub version: u64,
    /// Percent of requests (0–100) mirrored to the candidate.
    pub percent: f64,
}

impl TrafficPolicy {
    pub fn is_empty(&self) -> bool {
        self.canary.is_none() && self.shadow.is_none()
    }

    /// Versions this policy sends traffic to, besides the baseline.
    pub fn candidates(&self) -> impl Iterator<Item = u64> + '_ {
        self.canary
            .iter()
            .map(|c| c.version)
            .chain(self.shadow.iter().map(|s| s.version))
    }

    /// Every problem, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = &self.canary {
            check_percent(&mut out, "canary.percent", c.percent);
            if let Some(h) = &c.sticky_header
                && (h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            {
                out.push(format!(
                    "canary.sticky_header must be an HTTP header name (letters, digits, '-'), got {h:?}"
                ));
            }
        }
        if let Some(s) = &self.shadow {
            check_percent(&mut out, "shadow.percent", s.percent);
        }
        out
    }
}

fn check_percent(out: &mut Vec<String>, field: &str, v: f64) {
    if !(0.0..=100.0).contains(&v) {
        out.push(format!("{field} must be between 0 and 100, got {v}"));
    }
}

/// One step of a rollout: the candidate takes (canary) or mirrors (shadow) `percent` of traffic
/// until both minimums are met and every gate holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutStep {
    pub mode: StepMode,
    pub percent: f64,
    /// Candidate requests (answered or mirrored) this step needs before it can pass.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Seconds this step lasts at least.
    #[serde(default)]
    pub min_duration_secs: f64,
}

fn default_min_requests() -> u64 {
    100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepMode {
    Shadow,
    Canary,
}

impl StepMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StepMode::Shadow => "shadow",
            StepMode::Canary => "canary",
        }
    }
}

/// Thresholds relative to the baseline on the same traffic. Each gate decides with a
/// confidence bound, not a raw ratio: it fails only when the evidence says the limit is
/// breached, passes once it says the limit holds, and waits in between (see
/// [`RolloutPlan::on_inconclusive`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateThresholds {
    /// Candidate error rate may exceed the baseline's by at most this much (0.01 = 1 point).
    /// Requests the server refused, shed or ran out of time for are not errors.
    pub max_error_rate_increase: f64,
    /// The candidate's service time (its engine calls, compared at equal batch sizes) may be
    /// at most this multiple of the baseline's median. Judged in shadow and canary steps.
    pub max_latency_ratio: f64,
    /// When set, canary steps also judge end-to-end p99 latency: at most this multiple of the
    /// baseline's ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p99_ratio: Option<f64>,
    /// ... unless within this many milliseconds of it.
    pub p99_slack_ms: f64,
    /// Mean absolute difference of shadowed numeric outputs from the baseline's, at most.
    pub max_mean_abs_diff: f64,
    /// A shadowed request agrees when every numeric output is within this of the baseline's.
    pub agreement_tolerance: f64,
    /// Share of shadowed requests that must agree within `agreement_tolerance` (0 = report
    /// agreement without judging it: a retrained probability model rarely agrees closely on
    /// every request).
    pub min_agreement: f64,
    /// Share of shadowed requests whose label outputs (integer, boolean, string: class ids,
    /// flags) must equal the baseline's.
    pub min_label_agreement: f64,
    /// Samples (per arm) a gate needs before it judges.
    pub min_samples: u64,
}

impl Default for GateThresholds {
    fn default() -> Self {
        Self {
            max_error_rate_increase: 0.01,
            max_latency_ratio: 2.0,
            max_p99_ratio: None,
            p99_slack_ms: 2.0,
            max_mean_abs_diff: 0.05,
            agreement_tolerance: 0.01,
            min_agreement: 0.0,
            min_label_agreement: 0.95,
            min_samples: 20,
        }
    }
}

/// What a step that reaches `step_timeout_secs` without a verdict does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inconclusive {
    /// Roll back: not enough evidence is not a pass.
    #[default]
    #[serde(rename = "rollback")]
    RollBack,
    /// Stay on the step and keep judging until the evidence decides or an operator aborts
    /// (`ballast rollout abort`); the event log says the step is inconclusive.
    Hold,
}

/// An automated rollout: steps in order, then promotion of the candidate to `production`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    pub steps: Vec<RolloutStep>,
    #[serde(default)]
    pub gates: GateThresholds,
    /// Canary steps split sticky by this header when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    /// A step that has not passed after this many seconds rolls back (not enough traffic to
    /// judge is not a pass). 0 = no limit.
    #[serde(default = "default_step_timeout")]
    pub step_timeout_secs: f64,
    /// What a step that times out without a verdict does.
    #[serde(default)]
    pub on_inconclusive: Inconclusive,
}

fn default_step_timeout() -> f64 {
    600.0
}

impl Default for RolloutPlan {
    /// shadow 100% → canary 1% → 10% → 50% → 100%.
    fn default() -> Self {
        let step = |mode, percent| RolloutStep {
            mode,
            percent,
            min_requests: default_min_requests(),
            min_duration_secs: 30.0,
        };
        Self {
            steps: vec![
                step(StepMode::Shadow, 100.0),
                step(StepMode::Canary, 1.0),
                step(StepMode::Canary, 10.0),
                step(StepMode::Canary, 50.0),
                step(StepMode::Canary, 100.0),
            ],
            gates: GateThresholds::default(),
            sticky_header: None,
            step_timeout_secs: default_step_timeout(),
            on_inconclusive: Inconclusive::RollBack,
        }
    }
}

impl RolloutPlan {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.steps.is_empty() {
            out.push("steps: a rollout plan needs at least one step".to_string());
        }
        for (i, s) in self.steps.iter().enumerate() {
            check_percent(&mut out, &format!("steps[{i}].percent"), s.percent);
            if !(s.min_duration_secs.is_finite() && s.min_duration_secs >= 0.0) {
                out.push(format!(
                    "steps[{i}].min_duration_secs must be a non-negative number, got {}",
                    s.min_duration_secs
                ));
            }
        }
        let g = &self.gates;
        for (field, v) in [
            ("gates.max_error_rate_increase", g.max_error_rate_increase),
            ("gates.p99_slack_ms", g.p99_slack_ms),
            ("gates.max_mean_abs_diff", g.max_mean_abs_diff),
            ("gates.agreement_tolerance", g.agreement_tolerance),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                out.push(format!("{field} must be a non-negative number, got {v}"));
            }
        }
        for (field, v) in [
            ("gates.min_agreement", g.min_agreement),
            ("gates.min_label_agreement", g.min_label_agreement),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{field} must be between 0 and 1, got {v}"));
            }
        }
        for (field, v) in [
            ("gates.max_latency_ratio", Some(g.max_latency_ratio)),
            ("gates.max_p99_ratio", g.max_p99_ratio),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 1.0)
            {
                out.push(format!("{field} must be a number of at least 1, got {v}"));
            }
        }
        if !(self.step_timeout_secs.is_finite() && self.step_timeout_secs >= 0.0) {
            out.push(format!(
                "step_timeout_secs must be a non-negative number, got {}",
                self.step_timeout_secs
            ));
        }
        out
    }

    /// The policy in force during step `i` for `candidate`.
    pub fn policy_at(&self, i: usize, candidate: u64) -> TrafficPolicy {
        let Some(step) = self.steps.get(i) else {
            return TrafficPolicy::default();
        };
        match step.mode {
            StepMode::Shadow => TrafficPolicy {
                canary: None,
                shadow: Some(Shadow {
                    version: candidate,
                    percent: step.percent,
                }),
            },
            StepMode::Canary => TrafficPolicy {
                canary: Some(Canary {
                    version: candidate,
                    percent: step.percent,
                    sticky_header: self.sticky_header.clone(),
                }),
                shadow: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let plan = RolloutPlan {
            steps: vec![RolloutStep {
                mode: StepMode::Canary,
                percent: 120.0,
                min_requests: 1,
                min_duration_secs: -1.0,
            }],
            gates: GateThresholds {
                max_p99_ratio: Some(0.5),
                ..GateThresholds::default()
            },
            sticky_header: None,
            step_timeout_secs: 10.0,
            on_inconclusive: Inconclusive::RollBack,
        };
        let p = plan.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("steps[0].percent"));
        assert!(p[1].starts_with("steps[0].min_duration_secs"));
        assert!(p[2].starts_with("gates.max_p99_ratio"));
        assert!(RolloutPlan::default().problems().is_empty());
    }

    #[test]
    fn plans_parse_from_json_with_defaults() {
        let plan: RolloutPlan = serde_json::from_str(
            r#"{"steps": [{"mode": "shadow", "percent": 100}, {"mode": "canary", "percent": 10, "min_requests": 5}]}"#,
        )
        .expect("plan parses");
        assert_eq!(plan.steps[0].min_requests, 100);
        assert_eq!(plan.steps[1].min_requests, 5);
        assert_eq!(plan.gates, GateThresholds::default());
        let p = plan.policy_at(1, 7);
        assert_eq!(
            p.canary.as_ref().map(|c| (c.version, c.percent)),
            Some((7, 10.0))
        );
        assert!(plan.policy_at(2, 7).is_empty());
        let bad = serde_json::from_str::<RolloutPlan>(r#"{"steps": [], "typo": 1}"#);
        assert!(bad.is_err());
        // Plans stored before a threshold existed keep parsing; new ones name the policy.
        let plan: RolloutPlan = serde_json::from_str(
            r#"{"steps": [{"mode": "canary", "percent": 10}], "gates": {"max_p99_ratio": 2.0, "p99_slack_ms": 2.0}, "on_inconclusive": "hold"}"#,
        )
        .expect("plan parses");
        assert_eq!(plan.gates.max_p99_ratio, Some(2.0));
        assert_eq!(plan.on_inconclusive, Inconclusive::Hold);
        assert_eq!(plan.gates.min_label_agreement, 0.95);
    }
}
