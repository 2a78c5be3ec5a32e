//! The rollout controller: judges each running rollout's current step on the figures since
//! the step began and advances, promotes or rolls back.
//!
//! - Any gate failing → rolled back at once (production never moved), with the gate's reason
//!   and figures in the event log.
//! - All gates passing, the step's `min_requests` candidate requests seen and its
//!   `min_duration_secs` elapsed → next step; after the last step the candidate is promoted
//!   to `production`.
//! - A step that cannot be judged within `step_timeout_secs` (too little traffic, a candidate
//!   that never loaded) → rolled back: not enough evidence is not a pass.

use std::time::Duration;

use ballast_core::traffic::{Inconclusive, StepMode};
use ballast_registry::store::{RolloutRecord, RolloutState};
use ballast_registry::{PRODUCTION, RegistryError};
use ballast_serve::traffic::StatsSnapshot;
use serde_json::json;
use tokio::time::Instant;

use crate::Deployer;
use crate::gates::{Evidence, Verdict};

/// The start of the window a step is judged on.
pub struct StepWindow {
    step: usize,
    started: Instant,
    /// Figures at the moment the step's traffic began (None until the candidate is serving).
    start: Option<StatsSnapshot>,
    /// Figures when the rollout's first step began: when a step leaves the baseline too
    /// little traffic to judge against (canary 100%), its figures over the whole rollout
    /// stand in.
    origin: Option<StatsSnapshot>,
    /// The step was reported inconclusive and is holding.
    held: bool,
}

enum Decision {
    Wait,
    Advance(serde_json::Value),
    Promote(serde_json::Value),
    RollBack(String, serde_json::Value),
    /// Inconclusive, and the plan says hold: reported once, then judging goes on.
    Hold(String, serde_json::Value),
}

impl Deployer {
    /// One pass over every running rollout.
    pub async fn judge_rollouts(&self) -> Result<(), RegistryError> {
        let running: Vec<RolloutRecord> = self
            .registry
            .store
            .list_rollouts(None)
            .await?
            .into_iter()
            .filter(|r| r.state == RolloutState::Running)
            .collect();
        {
            let mut windows = self.rollouts.lock();
            windows.retain(|id, _| running.iter().any(|r| r.id == *id));
        }
        for r in running {
            let decision = self.decide(&r);
            let decided = !matches!(decision, Decision::Wait | Decision::Hold(..));
            self.act(&r, decision).await?;
            if decided {
                // The registry now names a new policy (next step, promotion or rollback):
                // the reconcile loop applies it now rather than at its next poll.
                self.notify();
            }
        }
        Ok(())
    }

    fn decide(&self, r: &RolloutRecord) -> Decision {
        let Some(step) = r.plan.steps.get(r.step) else {
            return Decision::Promote(json!({ "step": r.step }));
        };
        // The figures, when the step's policy is what is serving.
        let entry = self.repository.entry(&r.model).ok();
        let live = entry.as_ref().and_then(|e| {
            let t = e.traffic.as_ref()?;
            let expected = r.plan.policy_at(r.step, r.candidate);
            (e.default == r.baseline && t.policy == expected && {
                let target = match step.mode {
                    StepMode::Shadow => &t.shadow,
                    StepMode::Canary => &t.canary,
                };
                target.as_ref().is_some_and(|v| v.version == r.candidate)
            })
            .then(|| t.stats.snapshot())
        });
        let mut windows = self.rollouts.lock();
        let window = windows.entry(r.id).or_insert_with(|| StepWindow {
            step: r.step,
            started: Instant::now(),
            start: None,
            origin: None,
            held: false,
        });
        if window.step != r.step {
            *window = StepWindow {
                step: r.step,
                started: Instant::now(),
                start: None,
                origin: window.origin.take(),
                held: false,
            };
        }
        let timeout = Duration::from_secs_f64(r.plan.step_timeout_secs);
        let timed_out = !timeout.is_zero() && window.started.elapsed() > timeout;
        let Some(now) = live else {
            if let Some(reason) = self.load_failure(&r.model, r.candidate) {
                return Decision::RollBack(
                    format!("candidate version {} failed to load: {reason}", r.candidate),
                    json!({ "step": r.step, "load_error": reason }),
                );
            }
            if timed_out {
                return Decision::RollBack(
                    format!(
                        "step {} ({} {}%) never started: the candidate is not serving (see load_failed events)",
                        r.step,
                        step.mode.as_str(),
                        step.percent
                    ),
                    json!({ "step": r.step }),
                );
            }
            return Decision::Wait;
        };
        let start = window.start.get_or_insert_with(|| {
            // The clock of a step starts when its traffic does.
            window.started = Instant::now();
            now.clone()
        });
        let mut w = now.since(start);
        let origin = window.origin.get_or_insert_with(|| start.clone());
        // A step that sends (nearly) everything to the candidate leaves its baseline a trickle
        // (requests pinned to a version, in flight at the switch): too little to judge
        // against, so the baseline's figures over the whole rollout stand in.
        if step.mode == StepMode::Canary && step.percent >= 100.0
            || w.baseline.requests < r.plan.gates.min_samples
        {
            w.baseline = now.since(origin).baseline;
        }
        let elapsed = window.started.elapsed();
        let mut figures = serde_json::Map::new();
        figures.insert("step".into(), json!(r.step));
        figures.insert("mode".into(), json!(step.mode.as_str()));
        figures.insert("percent".into(), json!(step.percent));
        figures.insert("elapsed_secs".into(), json!(elapsed.as_secs_f64()));
        let evidence = Evidence {
            window: &w,
            limits: &r.plan.gates,
            mode: step.mode,
            percent: step.percent,
            later_steps: r.step + 1 < r.plan.steps.len(),
            elapsed,
        };
        let mut waiting = Vec::new();
        for gate in &self.gates {
            match gate.judge(&evidence) {
                Verdict::Pass(f) => {
                    figures.insert(gate.name().into(), f);
                }
                Verdict::Wait(f) => {
                    waiting.push(gate.name());
                    figures.insert(gate.name().into(), f);
                }
                Verdict::Fail { reason, figures: f } => {
                    figures.insert(gate.name().into(), f);
                    return Decision::RollBack(
                        format!(
                            "{} gate failed at {}: {reason}",
                            gate.name(),
                            step_label(r, r.step)
                        ),
                        serde_json::Value::Object(figures),
                    );
                }
            }
        }
        let enough = w.candidate.requests >= step.min_requests
            && elapsed.as_secs_f64() >= step.min_duration_secs
            && waiting.is_empty();
        if enough {
            let figures = serde_json::Value::Object(figures);
            return if r.step + 1 >= r.plan.steps.len() {
                Decision::Promote(figures)
            } else {
                Decision::Advance(figures)
            };
        }
        if timed_out {
            let reason = if waiting.is_empty() {
                format!(
                    "{} saw {} of {} candidate requests in {:.0} s (step_timeout_secs): not enough evidence to proceed",
                    step_label(r, r.step),
                    w.candidate.requests,
                    step.min_requests,
                    elapsed.as_secs_f64()
                )
            } else {
                format!(
                    "{} inconclusive after {:.0} s (step_timeout_secs): the {} gate{} could not decide on {} candidate requests",
                    step_label(r, r.step),
                    elapsed.as_secs_f64(),
                    waiting.join(", "),
                    if waiting.len() > 1 { "s" } else { "" },
                    w.candidate.requests,
                )
            };
            let figures = serde_json::Value::Object(figures);
            return match r.plan.on_inconclusive {
                Inconclusive::RollBack => Decision::RollBack(reason, figures),
                Inconclusive::Hold if !window.held => {
                    window.held = true;
                    Decision::Hold(reason, figures)
                }
                Inconclusive::Hold => Decision::Wait,
            };
        }
        Decision::Wait
    }

    async fn act(&self, r: &RolloutRecord, decision: Decision) -> Result<(), RegistryError> {
        let store = &self.registry.store;
        let model = r.model.as_str();
        let kind = match &decision {
            Decision::Wait => {
                set_step_metrics(model, r);
                return Ok(());
            }
            Decision::Hold(reason, figures) => {
                self.registry
                    .event(
                        Some(model),
                        "rollout_inconclusive",
                        format!(
                            "{model}: rollout {} of version {} holds (on_inconclusive = \"hold\"): {reason}; it goes on judging until the evidence decides or `ballast rollout abort`",
                            r.id, r.candidate
                        ),
                        json!({ "rollout": r.id, "step": r.step, "reason": reason, "figures": figures }),
                    )
                    .await?;
                return Ok(());
            }
            Decision::Advance(figures) => {
                let next = store
                    .update_rollout(r.id, RolloutState::Running, r.step + 1, None)
                    .await?;
                self.registry
                    .event(
                        Some(model),
                        "rollout_step",
                        format!(
                            "{model}: rollout {} of version {} passed {}; now {}",
                            r.id,
                            r.candidate,
                            step_label(r, r.step),
                            step_label(&next, next.step)
                        ),
                        json!({ "rollout": r.id, "from_step": r.step, "to_step": next.step, "figures": figures }),
                    )
                    .await?;
                set_step_metrics(model, &next);
                "rollout_step"
            }
            Decision::Promote(figures) => {
                self.registry
                    .promote(
                        model,
                        r.candidate,
                        PRODUCTION,
                        "rollout",
                        &format!("rollout {} passed every step", r.id),
                    )
                    .await?;
                store
                    .update_rollout(
                        r.id,
                        RolloutState::Promoted,
                        r.step,
                        Some("passed every step"),
                    )
                    .await?;
                self.registry
                    .event(
                        Some(model),
                        "rollout_promoted",
                        format!(
                            "{model}: rollout {} promoted version {} to production (was {})",
                            r.id, r.candidate, r.baseline
                        ),
                        json!({ "rollout": r.id, "candidate": r.candidate, "baseline": r.baseline, "figures": figures }),
                    )
                    .await?;
                clear_step_metrics(model);
                "rollout_promoted"
            }
            Decision::RollBack(reason, figures) => {
                // Production never moved: the candidate stops taking traffic now, before the
                // registry write and whatever the reconcile loop is busy with.
                self.stop_candidate_traffic(model);
                store
                    .update_rollout(r.id, RolloutState::RolledBack, r.step, Some(reason))
                    .await?;
                self.registry
                    .event(
                        Some(model),
                        "rollout_rolled_back",
                        format!(
                            "{model}: rollout {} of version {} rolled back; production stays on {}: {reason}",
                            r.id, r.candidate, r.baseline
                        ),
                        json!({ "rollout": r.id, "candidate": r.candidate, "baseline": r.baseline, "reason": reason, "figures": figures }),
                    )
                    .await?;
                clear_step_metrics(model);
                "rollout_rolled_back"
            }
        };
        tracing::debug!(model, kind, "rollout decision");
        // The reconcile loop applies the new step (or the end of the rollout) now rather than
        // at its next poll; judging does not wait for it (it may be downloading an artifact).
        self.notify();
        Ok(())
    }

    /// Serves `model` from its baseline alone at once (a rollback's fast path).
    fn stop_candidate_traffic(&self, model: &str) {
        let Ok(entry) = self.repository.entry(model) else {
            return;
        };
        if entry.traffic.is_none() {
            return;
        }
        self.repository.install(ballast_serve::ModelEntry {
            name: entry.name.clone(),
            versions: entry.versions.clone(),
            aliases: entry.aliases.clone(),
            default: entry.default,
            traffic: None,
            unserved: entry.unserved.clone(),
        });
    }
}

/// "step 2/3 (canary 25%)": numbered from 1 as `ballast rollout status` shows them.
fn step_label(r: &RolloutRecord, index: usize) -> String {
    let n = r.plan.steps.len();
    match r.plan.steps.get(index) {
        Some(step) => format!(
            "step {}/{n} ({} {}%)",
            index + 1,
            step.mode.as_str(),
            step.percent
        ),
        None => format!("step {}/{n}", index + 1),
    }
}

fn set_step_metrics(model: &str, r: &RolloutRecord) {
    metrics::gauge!(ballast_serve::metrics::ROLLOUT_STEP, "model" => model.to_string())
        .set(r.step as f64);
    let percent = r.plan.steps.get(r.step).map_or(0.0, |s| s.percent);
    metrics::gauge!(ballast_serve::metrics::ROLLOUT_CANDIDATE_SHARE, "model" => model.to_string())
        .set(percent);
}

fn clear_step_metrics(model: &str) {
    metrics::gauge!(ballast_serve::metrics::ROLLOUT_STEP, "model" => model.to_string()).set(-1.0);
    metrics::gauge!(ballast_serve::metrics::ROLLOUT_CANDIDATE_SHARE, "model" => model.to_string())
        .set(0.0);
}
