//! Registry-backed serving under sustained load: alias flips and rollbacks fail no request,
//! tampered artifacts are refused while the running version keeps serving, and automated
//! rollouts roll back faulty candidates and promote a good one. Each test drives a second
//! `Registry` handle on the same data directory, as the CLI would, so changes reach the
//! server through the store, not through memory.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use ballast_core::RolloutPlan;
use ballast_core::traffic::{GateThresholds, Inconclusive, RolloutStep, StepMode};
use ballast_registry::PRODUCTION;
use ballast_registry::store::{EventFilter, RolloutState};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_alias_flips_and_rollbacks_under_load_fail_no_request() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = registry_at(dir.path()).await;
    let src = tempfile::tempdir().unwrap();
    let v1 = push(
        &cli,
        &version_dir(src.path(), "a", &xgb_model(FEATURES, 20, 1, 0), &[]),
        "flip",
    )
    .await;
    let v2 = push(
        &cli,
        &version_dir(src.path(), "b", &xgb_model(FEATURES, 20, 2, 0), &[]),
        "flip",
    )
    .await;
    cli.promote("flip", v1, PRODUCTION, "test", "initial")
        .await
        .unwrap();
    let stack = start(dir).await;
    let load = Load::start(&stack.http, "flip", 4);
    let last = load.last_version.clone();
    wait_for(Duration::from_secs(10), || *last.lock() == v1.to_string())
        .await
        .expect("serving v1");

    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let target = if i % 2 == 0 { v2 } else { v1 };
        let before = load.ok();
        cli.promote("flip", target, PRODUCTION, "test", &format!("flip {i}"))
            .await
            .unwrap();
        // Applied when responses come from the new version.
        let took = wait_for(Duration::from_secs(5), || {
            *last.lock() == target.to_string()
        })
        .await
        .unwrap_or_else(|| panic!("flip {i} to v{target} not applied within 5 s"));
        slowest = slowest.max(took);
        wait_for(Duration::from_secs(5), || load.ok() > before + 20)
            .await
            .expect("traffic keeps flowing");
    }
    // Production is v1 after 20 flips; two rollbacks walk back v1 → v2 → v1.
    for expected in [v2, v1] {
        cli.rollback("flip", PRODUCTION, "test", "drill")
            .await
            .unwrap();
        wait_for(Duration::from_secs(5), || {
            *last.lock() == expected.to_string()
        })
        .await
        .unwrap_or_else(|| panic!("rollback to v{expected} not applied"));
    }
    let (ok, failures) = load.finish().await;
    eprintln!("flips: {ok} requests answered, slowest flip applied in {slowest:?}");
    assert!(
        failures.is_empty(),
        "failed requests during flips: {failures:?}"
    );
    assert!(ok > 500, "too little load to mean anything: {ok}");
    assert!(
        slowest < Duration::from_secs(2),
        "a flip took {slowest:?} (poll 100 ms + load + warm-up)"
    );
    let events = stack
        .registry
        .events(&EventFilter {
            model: Some("flip".into()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "promoted").count(), 21);
    assert_eq!(events.iter().filter(|e| e.kind == "rolled_back").count(), 2);
    drop(stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_artifact_is_refused_and_the_running_version_keeps_serving() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = registry_at(dir.path()).await;
    let src = tempfile::tempdir().unwrap();
    let v1 = push(
        &cli,
        &version_dir(src.path(), "a", &xgb_model(FEATURES, 10, 1, 0), &[]),
        "tamper",
    )
    .await;
    let good = xgb_model(FEATURES, 10, 2, 0);
    let v2 = push(&cli, &version_dir(src.path(), "b", &good, &[]), "tamper").await;
    cli.promote("tamper", v1, PRODUCTION, "test", "initial")
        .await
        .unwrap();
    let stack = start(dir).await;
    let load = Load::start(&stack.http, "tamper", 2);
    let last = load.last_version.clone();
    wait_for(Duration::from_secs(10), || *last.lock() == v1.to_string())
        .await
        .expect("serving v1");

    // Change one byte of v2's stored model file.
    let record = cli.resolve(&format!("tamper@{v2}")).await.unwrap();
    let hex = record.files[0]
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    let blob = stack
        .dir
        .path()
        .join("artifacts/blobs/sha256")
        .join(&hex[..2])
        .join(&hex);
    let tampered = good.replacen("5E-1", "9E-1", 1);
    assert_eq!(tampered.len(), good.len());
    std::fs::write(&blob, tampered).unwrap();

    cli.promote("tamper", v2, PRODUCTION, "test", "deploy tampered")
        .await
        .unwrap();
    let registry = stack.registry.clone();
    let mut refused = None;
    for _ in 0..500 {
        let events = registry
            .events(&EventFilter {
                kind: Some("load_failed".into()),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        if let Some(e) = events.into_iter().next() {
            refused = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a load_failed event for the tampered version");
    assert!(
        refused.message.contains(&record.files[0].digest) && refused.message.contains("tampered"),
        "the event names the artifact and digests: {}",
        refused.message
    );
    // Still answering from v1 and only v1.
    let before = load.ok();
    wait_for(Duration::from_secs(5), || load.ok() > before + 50)
        .await
        .expect("traffic keeps flowing");
    assert_eq!(*last.lock(), v1.to_string());
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/v2/models/tamper/versions/{v2}", stack.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the tampered version is not served");

    // Restore the blob: the periodic retry loads v2 without any registry change.
    std::fs::write(&blob, &good).unwrap();
    wait_for(Duration::from_secs(10), || *last.lock() == v2.to_string())
        .await
        .expect("v2 serves once its artifact is intact again");
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 50);
}

fn plan() -> RolloutPlan {
    let step = |mode, percent| RolloutStep {
        mode,
        percent,
        min_requests: 60,
        min_duration_secs: 0.3,
    };
    RolloutPlan {
        steps: vec![
            step(StepMode::Shadow, 50.0),
            step(StepMode::Canary, 20.0),
            step(StepMode::Canary, 100.0),
        ],
        gates: GateThresholds {
            min_samples: 30,
            ..GateThresholds::default()
        },
        sticky_header: Some("x-user".into()),
        step_timeout_secs: 30.0,
        on_inconclusive: Default::default(),
    }
}

/// Runs one rollout to its end; returns (state, reason).
async fn roll_out(stack: &Stack, model: &str, candidate: u64) -> (RolloutState, String) {
    let r = stack
        .registry
        .start_rollout(model, candidate, &plan(), "test")
        .await
        .unwrap();
    stack.deployer.notify();
    let done = decided(stack, r.id, Duration::from_secs(60)).await;
    (done.state, done.reason.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_candidates_roll_back_and_a_good_one_is_promoted() {
    // No serial lock and no latency slack: the verdicts must hold while other tests load
    // the same two cores.
    let dir = tempfile::tempdir().unwrap();
    let cli = registry_at(dir.path()).await;
    let src = tempfile::tempdir().unwrap();
    let base_model = xgb_model(FEATURES, 20, 1, 0);
    let v1 = push(
        &cli,
        &version_dir(src.path(), "base", &base_model, &[]),
        "canary",
    )
    .await;
    // A real model that expects one more feature: every request it gets is refused.
    let wrong_shape = push(
        &cli,
        &version_dir(src.path(), "wide", &xgb_model(FEATURES + 1, 20, 1, 0), &[]),
        "canary",
    )
    .await;
    let erroring = push(
        &cli,
        &version_dir(src.path(), "err", &base_model, &[("FAULT", "error")]),
        "canary",
    )
    .await;
    let broken = push(
        &cli,
        &version_dir(src.path(), "broken", &base_model, &[("FAULT", "broken")]),
        "canary",
    )
    .await;
    let slow = push(
        &cli,
        &version_dir(src.path(), "slow", &base_model, &[("FAULT", "slow")]),
        "canary",
    )
    .await;
    // A harmless retrain: probabilities a few hundredths away, the same work.
    let good = push(
        &cli,
        &version_dir(src.path(), "good", &retrained(&base_model, 1.05), &[]),
        "canary",
    )
    .await;
    cli.promote("canary", v1, PRODUCTION, "test", "initial")
        .await
        .unwrap();
    let stack = start(dir).await;
    let load = Load::start(&stack.http, "canary", 4);
    let last = load.last_version.clone();
    wait_for(Duration::from_secs(10), || *last.lock() == v1.to_string())
        .await
        .expect("serving v1");

    // A 10× slower candidate shows in its engine calls' service time, already in the shadow
    // step (requests refused once its queue overflows are the server's doing: reported as
    // dropped, not judged as errors).
    for (candidate, expect) in [
        (wrong_shape, &["error_rate"][..]),
        (erroring, &["error_rate"]),
        (broken, &["failed to load"]),
        (slow, &["latency gate"]),
    ] {
        let (state, reason) = roll_out(&stack, "canary", candidate).await;
        eprintln!("candidate {candidate}: {state:?}: {reason}");
        assert_eq!(
            state,
            RolloutState::RolledBack,
            "candidate {candidate}: {reason}"
        );
        assert!(
            expect.iter().any(|e| reason.contains(e)),
            "candidate {candidate} rolled back for {expect:?}: {reason}"
        );
        let production = cli
            .store
            .get_alias("canary", PRODUCTION)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(production.version, v1, "production never moved");
    }
    let (state, reason) = roll_out(&stack, "canary", good).await;
    assert_eq!(state, RolloutState::Promoted, "good candidate: {reason}");
    let production = cli
        .store
        .get_alias("canary", PRODUCTION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(production.version, good);
    wait_for(Duration::from_secs(5), || *last.lock() == good.to_string())
        .await
        .expect("the promoted version serves all traffic");
    let (ok, failures) = load.finish().await;
    eprintln!("rollouts: {ok} answered, failures {failures:?}");

    let events = stack
        .registry
        .events(&EventFilter {
            model: Some("canary".into()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "rollout_rolled_back")
            .count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "rollout_promoted").count(),
        1,
        "{kinds:?}"
    );
    // Steps passed: the good candidate's two; every faulty one failed in its shadow step.
    assert_eq!(
        kinds.iter().filter(|k| **k == "rollout_step").count(),
        2,
        "{kinds:?}"
    );
    let rolled = events
        .iter()
        .find(|e| e.kind == "rollout_rolled_back")
        .unwrap();
    assert!(
        rolled.details["figures"]["error_rate"]["candidate_requests"].as_u64() > Some(0),
        "the figures behind the decision are kept: {}",
        rolled.details
    );
    // Only candidates ever failed requests: the baseline answered everything it took.
    assert!(
        failures
            .keys()
            .all(|k| !k.contains(&format!("version {v1}"))),
        "{failures:?}"
    );
}

/// The gate experiment of `cargo bench -p ballast-deploy --bench gate_trials`, shortened:
/// two rollouts of each kind (an equivalent retrain under a 2× overload burst, +2 points of
/// error rate, 3× slower, divergent outputs), default thresholds, no serial lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_trials_shortened() {
    let summary = trials::run(2, true, trials::Placement::Shared, 400).await;
    eprintln!("{}", trials::table(&summary));
    let wrong: Vec<String> = summary
        .outcomes
        .iter()
        .filter(|o| !o.correct())
        .map(|o| format!("{}: {:?}: {}", o.kind.label(), o.state, o.reason))
        .collect();
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:#?}");
    assert_eq!(summary.outcomes.len(), 8);
}

/// A step the gates cannot decide within its time is inconclusive: `hold` keeps it running
/// (reported once in the event log) until an operator acts; `rollback` rolls back saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconclusive_steps_follow_the_plan_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cli = registry_at(dir.path()).await;
    let src = tempfile::tempdir().unwrap();
    let base = xgb_model(FEATURES, 20, 1, 0);
    let v1 = push(
        &cli,
        &version_dir(src.path(), "base", &base, &[]),
        "undecided",
    )
    .await;
    let v2 = push(
        &cli,
        &version_dir(src.path(), "retrain", &retrained(&base, 1.02), &[]),
        "undecided",
    )
    .await;
    cli.promote("undecided", v1, PRODUCTION, "test", "initial")
        .await
        .unwrap();
    let stack = start(dir).await;
    let load = Load::start(&stack.http, "undecided", 2);
    let undecidable = |policy| RolloutPlan {
        steps: vec![RolloutStep {
            mode: StepMode::Shadow,
            percent: 100.0,
            min_requests: 10,
            min_duration_secs: 0.0,
        }],
        gates: GateThresholds {
            // More samples than the step will see: every gate waits.
            min_samples: 1_000_000_000,
            ..GateThresholds::default()
        },
        sticky_header: None,
        step_timeout_secs: 1.0,
        on_inconclusive: policy,
    };
    let r = stack
        .registry
        .start_rollout("undecided", v2, &undecidable(Inconclusive::Hold), "test")
        .await
        .unwrap();
    stack.deployer.notify();
    let events = || async {
        stack
            .registry
            .events(&EventFilter {
                model: Some("undecided".into()),
                ..EventFilter::default()
            })
            .await
            .unwrap()
    };
    let mut held = None;
    for _ in 0..200 {
        held = events()
            .await
            .into_iter()
            .find(|e| e.kind == "rollout_inconclusive");
        if held.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = held.expect("an inconclusive event within 10 s");
    assert!(held.message.contains("inconclusive"), "{}", held.message);
    // Still running a while later, reported once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let now = stack
        .registry
        .store
        .get_rollout(r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.state, RolloutState::Running);
    let count = events()
        .await
        .iter()
        .filter(|e| e.kind == "rollout_inconclusive")
        .count();
    assert_eq!(count, 1);
    stack
        .registry
        .cancel_rollout("undecided", "test")
        .await
        .unwrap();

    let r = stack
        .registry
        .start_rollout(
            "undecided",
            v2,
            &undecidable(Inconclusive::RollBack),
            "test",
        )
        .await
        .unwrap();
    stack.deployer.notify();
    let last = decided(&stack, r.id, Duration::from_secs(10)).await;
    assert_eq!(last.state, RolloutState::RolledBack);
    let reason = last.reason.unwrap_or_default();
    assert!(
        reason.contains("inconclusive") && reason.contains("gate"),
        "{reason}"
    );
    let (ok, failures) = load.finish().await;
    assert!(ok > 0 && failures.is_empty(), "{ok} {failures:?}");
}
