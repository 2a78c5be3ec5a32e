//! The rollout-gate experiment: one server under steady closed-loop load, and rollouts of an
//! equivalent candidate (each with a 2× open-loop overload burst at its start), one with +2
//! points of error rate, one three times slower and one whose outputs diverge, each repeated
//! `trials` times with default thresholds. Shared by the CI test (few trials) and the
//! benchmark (`cargo bench -p ballast-deploy --bench gate_trials`, 20 trials).
// Test clients and fixtures spawn freely; the server under test owns its own work.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ballast_core::RolloutPlan;
use ballast_core::traffic::{GateThresholds, RolloutStep, StepMode};
use ballast_loadgen::{Mode, Protocol, RunConfig, Target};
use ballast_registry::PRODUCTION;
use ballast_registry::store::RolloutState;

use super::*;

/// One kind of candidate and the verdict it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Equivalent,
    ErrorsPlusTwoPoints,
    ThreeTimesSlower,
    Divergent,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Equivalent,
        Kind::ErrorsPlusTwoPoints,
        Kind::ThreeTimesSlower,
        Kind::Divergent,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Equivalent => "equivalent retrain (+2x burst)",
            Kind::ErrorsPlusTwoPoints => "+2 points error rate",
            Kind::ThreeTimesSlower => "3x slower",
            Kind::Divergent => "divergent outputs",
        }
    }

    /// The gate whose failure is the right reason (`None`: must be promoted).
    pub fn expected_gate(self) -> Option<&'static str> {
        match self {
            Kind::Equivalent => None,
            Kind::ErrorsPlusTwoPoints => Some("error_rate gate"),
            Kind::ThreeTimesSlower => Some("latency gate"),
            Kind::Divergent => Some("outputs gate"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    pub state: RolloutState,
    pub reason: String,
    pub took: Duration,
    pub burst: Option<Burst>,
}

impl Outcome {
    /// Promoted when it should be, rolled back by the right gate when it should be.
    pub fn correct(&self) -> bool {
        match self.kind.expected_gate() {
            None => self.state == RolloutState::Promoted,
            Some(gate) => {
                self.state == RolloutState::RolledBack
                    && self.reason.contains(&format!("{gate} failed"))
            }
        }
    }
}

/// What the burst offered, measured over its own window.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    /// The open-loop rate asked of the burst generator, req/s.
    pub asked: f64,
    /// What the burst generator really sent, req/s.
    pub sent: f64,
    /// What the steady closed-loop load sent over the same window, req/s.
    pub steady_sent: f64,
    /// Burst requests answered 200, req/s.
    pub answered: f64,
    /// Steady throughput before the trials, req/s: the server's capacity on its core.
    pub capacity: f64,
}

impl Burst {
    /// Offered load over the burst window as a multiple of capacity.
    pub fn overload(&self) -> f64 {
        (self.sent + self.steady_sent) / self.capacity
    }
}

/// The plan every trial runs: shadow 100 % → canary 20 % → canary 100 %, default gates.
pub fn trial_plan() -> RolloutPlan {
    let step = |mode, percent| RolloutStep {
        mode,
        percent,
        min_requests: 200,
        min_duration_secs: 0.5,
    };
    RolloutPlan {
        steps: vec![
            step(StepMode::Shadow, 100.0),
            step(StepMode::Canary, 20.0),
            step(StepMode::Canary, 100.0),
        ],
        gates: GateThresholds::default(),
        sticky_header: None,
        step_timeout_secs: 30.0,
        on_inconclusive: Default::default(),
    }
}

pub struct Summary {
    pub capacity_per_s: f64,
    pub outcomes: Vec<Outcome>,
}

/// Where the clients run. `Pinned` is the benchmark's honest setup: the caller has pinned
/// the process (server, engines, registry) to one core; the steady load and the burst run on
/// `client`, so the generator can really offer its rate. `Shared` (CI): everything shares
/// the machine's cores, the burst is offered but not necessarily sent in full.
#[derive(Debug, Clone, Copy)]
pub enum Placement {
    Shared,
    Pinned { client: core_affinity::CoreId },
}

impl Placement {
    fn pin(self) {
        if let Placement::Pinned { client } = self {
            core_affinity::set_for_current(client);
        }
    }
}

/// Runs the experiment; `trials` rollouts of each kind, of a model of `trees` trees (depth 3;
/// about 10 ns a tree a row in a release build). The benchmark uses enough trees that the
/// engine, not HTTP, is most of a request's cost on the server: a generator on one core can
/// then offer twice what the server's core answers.
pub async fn run(trials: usize, verbose: bool, placement: Placement, trees: usize) -> Summary {
    let dir = tempfile::tempdir().unwrap();
    let cli = registry_at(dir.path()).await;
    let src = tempfile::tempdir().unwrap();
    let model = "gates";
    // The model dominates its engine call, so three times the model is nearly three times
    // the call.
    let base = xgb_model(FEATURES, trees, 1, 0);
    let v1 = push(&cli, &version_dir(src.path(), "base", &base, &[]), model).await;
    let mut candidates = BTreeMap::new();
    for (kind, dir_name, json, fault) in [
        (Kind::Equivalent, "retrain", retrained(&base, 1.02), None),
        (
            Kind::ErrorsPlusTwoPoints,
            "errors",
            base.clone(),
            Some("errors2"),
        ),
        (Kind::ThreeTimesSlower, "slow3", base.clone(), Some("slow3")),
        (
            Kind::Divergent,
            "other",
            xgb_model(FEATURES, trees, 2, 0),
            None,
        ),
    ] {
        let extra: Vec<(&str, &str)> = fault.map(|f| ("FAULT", f)).into_iter().collect();
        let v = push(
            &cli,
            &version_dir(src.path(), dir_name, &json, &extra),
            model,
        )
        .await;
        candidates.insert(kind, v);
    }
    cli.promote(model, v1, PRODUCTION, "trials", "initial")
        .await
        .unwrap();
    let stack = start(dir).await;
    // The clients' own runtime: their tasks must not queue in front of the server's.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || placement.pin())
        .enable_all()
        .build()
        .unwrap();
    let load = {
        let _on_clients = clients.enter();
        Load::start(&stack.http, model, 8)
    };
    let last = load.last_version.clone();
    wait_for(Duration::from_secs(10), || *last.lock() == v1.to_string())
        .await
        .expect("serving v1");
    // The steady load's throughput: the burst offers twice that on top of it.
    let before = load.ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let capacity = (load.ok() - before) as f64 / 2.0;
    if verbose {
        eprintln!("steady closed-loop load (8 connections): {capacity:.0} req/s answered");
    }
    let target = Target {
        http_url: stack.http.clone(),
        grpc_url: String::new(),
        model: model.into(),
        version: None,
    };
    let rows: Vec<Vec<f32>> = (0..512u64)
        .map(|i| {
            (0..FEATURES)
                .map(|f| ((i * 7919 + f as u64 * 104_729) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        })
        .collect();
    let payloads = ballast_loadgen::fp32_row_payloads("features", &rows, 1, false).unwrap();

    let mut outcomes = Vec::new();
    for trial in 0..trials {
        for kind in Kind::ALL {
            let candidate = candidates[&kind];
            let burst = (kind == Kind::Equivalent).then(|| {
                let (target, payloads) = (target.clone(), payloads.clone());
                let steady = load.sent.clone();
                let rate = (2.0 * capacity).max(200.0);
                // Its own thread and runtime, as a separate client would be.
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    placement.pin();
                    let config = RunConfig {
                        protocol: Protocol::Http,
                        mode: Mode::Open { rate },
                        duration: Duration::from_secs(3),
                        warmup: Duration::ZERO,
                        request_timeout: Duration::from_secs(2),
                        connections: 0,
                    };
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let steady_before = steady.load(Ordering::Relaxed);
                    let (report, steady_sent) = rt.block_on(async {
                        tokio::join!(
                            ballast_loadgen::run(&target, &config, &payloads, |_| {}),
                            async {
                                tokio::time::sleep(config.duration).await;
                                (steady.load(Ordering::Relaxed) - steady_before) as f64
                                    / config.duration.as_secs_f64()
                            }
                        )
                    });
                    let report = report.map(|r| Burst {
                        asked: rate,
                        sent: r.sent as f64 / r.duration_s,
                        steady_sent,
                        answered: r.throughput_ok_per_s,
                        capacity,
                    });
                    let _ = tx.send(report);
                });
                rx
            });
            let started = Instant::now();
            let r = stack
                .registry
                .start_rollout(model, candidate, &trial_plan(), "trials")
                .await
                .unwrap();
            stack.deployer.notify();
            let done = decided(&stack, r.id, Duration::from_secs(150)).await;
            let (state, reason) = (done.state, done.reason.unwrap_or_default());
            let took = started.elapsed();
            let steps = step_times(&stack, model, r.id).await;
            let burst = match burst {
                Some(rx) => Some(rx.await.unwrap().unwrap()),
                None => None,
            };
            if state == RolloutState::Promoted {
                // Back to v1 for the next trial: a pointer swap.
                stack
                    .registry
                    .rollback(model, PRODUCTION, "trials", "next trial")
                    .await
                    .unwrap();
                stack.deployer.notify();
                wait_for(Duration::from_secs(10), || *last.lock() == v1.to_string())
                    .await
                    .expect("v1 serves again");
            }
            let outcome = Outcome {
                kind,
                state,
                reason,
                took,
                burst,
            };
            if verbose || !outcome.correct() {
                eprintln!(
                    "trial {} {:<32} {:?} in {:.1} s (steps {steps}){}: {}",
                    trial + 1,
                    kind.label(),
                    outcome.state,
                    took.as_secs_f64(),
                    outcome
                        .burst
                        .map(|b| format!(
                            " (burst asked {:.0}/s, sent {:.0}/s, answered {:.0}/s; steady sent {:.0}/s; offered {:.2}x capacity)",
                            b.asked,
                            b.sent,
                            b.answered,
                            b.steady_sent,
                            b.overload()
                        ))
                        .unwrap_or_default(),
                    outcome.reason
                );
            }
            outcomes.push(outcome);
        }
    }
    let (ok, failures) = load.finish().await;
    clients.shutdown_background();
    if verbose {
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for (k, n) in &failures {
            *by_status
                .entry(k.split(' ').next().unwrap_or("").to_string())
                .or_default() += n;
        }
        eprintln!("steady load: {ok} answered, non-200 by status: {by_status:?}");
    }
    Summary {
        capacity_per_s: capacity,
        outcomes,
    }
}

/// "0.6 s, 1.2 s …": how long each decided step of rollout `id` took, with the latency
/// gate's service ratio.
async fn step_times(stack: &Stack, model: &str, id: i64) -> String {
    let events = stack
        .registry
        .events(&ballast_registry::store::EventFilter {
            model: Some(model.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    events
        .iter()
        .filter(|e| e.kind.starts_with("rollout_") && e.details["rollout"].as_i64() == Some(id))
        .filter_map(|e| {
            let f = &e.details["figures"];
            let secs = f["elapsed_secs"].as_f64()?;
            Some(format!(
                "{secs:.1} s, service x{:.2} [{:.2}, {:.2}] {:?}/{:?} ms, errors {}/{} vs {}/{} dropped {}+{}, mean diff {:.4}",
                f["latency"]["service_ratio"].as_f64().unwrap_or(f64::NAN),
                f["latency"]["service_ratio_low"].as_f64().unwrap_or(f64::NAN),
                f["latency"]["service_ratio_high"].as_f64().unwrap_or(f64::NAN),
                f["latency"]["baseline_service_median_ms"].as_f64(),
                f["latency"]["candidate_service_median_ms"].as_f64(),
                f["error_rate"]["candidate_errors"],
                f["error_rate"]["candidate_requests"],
                f["error_rate"]["baseline_errors"],
                f["error_rate"]["baseline_requests"],
                f["error_rate"]["candidate_dropped"],
                f["error_rate"]["shadow_dropped"],
                f["outputs"]["mean_abs_diff"].as_f64().unwrap_or(f64::NAN),
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// "offered 2.01x–2.20x capacity (median 2.10x)" over the bursts of the equivalent trials.
pub fn burst_range(summary: &Summary) -> Option<String> {
    let mut x: Vec<f64> = summary
        .outcomes
        .iter()
        .filter_map(|o| o.burst.map(|b| b.overload()))
        .collect();
    x.sort_by(f64::total_cmp);
    Some(format!(
        "bursts offered {:.2}x–{:.2}x capacity (median {:.2}x)",
        x.first()?,
        x.last()?,
        x[x.len() / 2]
    ))
}

/// The table for `docs/benchmarks.md`.
pub fn table(summary: &Summary) -> String {
    let mut out = String::from(
        "| candidate | rollouts | verdict as expected | promoted | rolled back by the right gate | rolled back otherwise (inconclusive, other gate) | time to decision p50 / max |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for kind in Kind::ALL {
        let of: Vec<&Outcome> = summary.outcomes.iter().filter(|o| o.kind == kind).collect();
        let mut times: Vec<f64> = of.iter().map(|o| o.took.as_secs_f64()).collect();
        times.sort_by(f64::total_cmp);
        let promoted = of
            .iter()
            .filter(|o| o.state == RolloutState::Promoted)
            .count();
        let right = of
            .iter()
            .filter(|o| {
                o.state == RolloutState::RolledBack
                    && kind
                        .expected_gate()
                        .is_some_and(|g| o.reason.contains(&format!("{g} failed")))
            })
            .count();
        let rolled = of
            .iter()
            .filter(|o| o.state == RolloutState::RolledBack)
            .count();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s / {:.1} s |\n",
            kind.label(),
            of.len(),
            of.iter().filter(|o| o.correct()).count(),
            promoted,
            right,
            rolled - right,
            times.get(times.len() / 2).copied().unwrap_or(0.0),
            times.last().copied().unwrap_or(0.0),
        ));
    }
    out
}
