//! Each gate driven with synthetic evidence, the noisy cases included: a machine that
//! stretches some requests, shadow latency that reads the server's load, retrained models
//! whose probabilities move a little, windows too small to say anything.

use std::time::Duration;

use ballast_core::traffic::{GateThresholds, StepMode};
use ballast_serve::traffic::{ArmSnapshot, Compared, ShadowSnapshot, StatsSnapshot};

use super::*;

/// xorshift64*: deterministic noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A service time around `ms`: mostly within ±20 %, one in twenty stretched 2–6× (the
    /// engine thread preempted on a shared core).
    fn service(&mut self, ms: f64) -> Duration {
        let base = ms * (0.8 + 0.4 * self.next());
        let stretched = if self.next() < 0.05 {
            base * (2.0 + 4.0 * self.next())
        } else {
            base
        };
        Duration::from_secs_f64(stretched / 1e3)
    }
}

fn evidence<'a>(w: &'a StatsSnapshot, limits: &'a GateThresholds, mode: StepMode) -> Evidence<'a> {
    Evidence {
        window: w,
        limits,
        mode,
        percent: if mode == StepMode::Shadow {
            100.0
        } else {
            50.0
        },
        later_steps: true,
        elapsed: Duration::from_secs(1),
    }
}

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

fn judge(gate: &dyn Gate, w: &StatsSnapshot, mode: StepMode) -> Verdict {
    gate.judge(&evidence(w, &GateThresholds::default(), mode))
}

fn reason(v: &Verdict) -> &str {
    match v {
        Verdict::Fail { reason, .. } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn is_pass(v: &Verdict) -> bool {
    matches!(v, Verdict::Pass(_))
}

fn is_wait(v: &Verdict) -> bool {
    matches!(v, Verdict::Wait(_))
}

fn is_fail(v: &Verdict) -> bool {
    matches!(v, Verdict::Fail { .. })
}

#[test]
fn error_rate_passes_an_equal_candidate_once_confident() {
    // Both arms fail 0.2% of requests (bad input the clients send): equal, and with 5,000
    // requests each confidently within +1 point.
    let v = judge(
        &ErrorRateGate,
        &window(arm(5000, 10, 0), arm(5000, 12, 0)),
        StepMode::Canary,
    );
    assert!(is_pass(&v), "{v:?}");
    // With 100 requests the same figures are not enough to be sure either way.
    let v = judge(
        &ErrorRateGate,
        &window(arm(100, 0, 0), arm(100, 1, 0)),
        StepMode::Canary,
    );
    assert!(is_wait(&v), "{v:?}");
}

#[test]
fn error_rate_ignores_what_the_server_refused() {
    // Under overload the candidate's arm had 9% of its requests refused for capacity (the
    // demo's false rollback): dropped, not errors.
    let v = judge(
        &ErrorRateGate,
        &window(arm(4000, 0, 0), arm(4000, 0, 363)),
        StepMode::Shadow,
    );
    assert!(is_pass(&v), "{v:?}");
}

#[test]
fn error_rate_fails_two_points_worse_with_enough_evidence() {
    let v = judge(
        &ErrorRateGate,
        &window(arm(5000, 0, 0), arm(5000, 150, 0)),
        StepMode::Canary,
    );
    assert!(reason(&v).contains("error rate 3.00%"), "{v:?}");
    // A single unlucky error burst in a small window is not enough.
    let v = judge(
        &ErrorRateGate,
        &window(arm(50, 0, 0), arm(50, 2, 0)),
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

/// Simulated rollouts judged the way the controller does (a growing window looked at every
/// 100 requests): an equal candidate is never failed, a +2-point one is always caught within
/// 20,000 requests per arm.
#[test]
fn error_rate_sequential_looks_hold_their_false_alarm_rate() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let limits = GateThresholds::default();
    let mut run = |p_base: f64, p_cand: f64| {
        let (mut eb, mut ec) = (0, 0);
        for n in 1..=20_000u64 {
            eb += u64::from(noise.next() < p_base);
            ec += u64::from(noise.next() < p_cand);
            if n % 100 == 0 {
                let w = window(arm(n, eb, 0), arm(n, ec, 0));
                match ErrorRateGate.judge(&evidence(&w, &limits, StepMode::Canary)) {
                    Verdict::Wait(_) => {}
                    other => return (is_fail(&other), n),
                }
            }
        }
        (false, 0)
    };
    let false_alarms = (0..200).filter(|_| run(0.01, 0.01).0).count();
    assert_eq!(false_alarms, 0, "equal candidates failed");
    let detected: Vec<u64> = (0..50)
        .filter_map(|_| {
            let (failed, at) = run(0.01, 0.03);
            failed.then_some(at)
        })
        .collect();
    assert_eq!(detected.len(), 50, "+2 points detected in 50 of 50");
    // Half are decided within ~4,000 requests per arm; the slowest need about 12,000.
    let mut sorted = detected.clone();
    sorted.sort_unstable();
    eprintln!("+2 points decided after {sorted:?} requests");
    assert!(sorted[25] <= 6000, "{sorted:?}");
}

fn timed(noise: &mut Noise, rows: usize, ms: f64, n: usize) -> ArmSnapshot {
    let times: Vec<Duration> = (0..n).map(|_| noise.service(ms)).collect();
    let mut a = ArmSnapshot::from_figures(n as u64, 0, 0, &[]);
    a.add_service(rows, &times);
    a
}

#[test]
fn latency_passes_equal_service_times_on_a_noisy_machine() {
    let mut noise = Noise(7);
    for _ in 0..200 {
        let w = window(
            timed(&mut noise, 1, 0.05, 400),
            timed(&mut noise, 1, 0.05, 400),
        );
        let v = judge(&LatencyGate, &w, StepMode::Canary);
        assert!(is_pass(&v), "{v:?}");
    }
}

#[test]
fn latency_fails_a_three_times_slower_candidate() {
    let mut noise = Noise(11);
    let mut b = timed(&mut noise, 1, 0.05, 300);
    b.add_service(8, &(0..300).map(|_| noise.service(0.2)).collect::<Vec<_>>());
    let mut c = timed(&mut noise, 1, 0.15, 100);
    c.add_service(8, &(0..60).map(|_| noise.service(0.6)).collect::<Vec<_>>());
    for mode in [StepMode::Shadow, StepMode::Canary] {
        let v = judge(&LatencyGate, &window(b.clone(), c.clone()), mode);
        let r = reason(&v);
        assert!(
            r.contains("service time") && r.contains("limit 2.00x"),
            "{r}"
        );
    }
}

#[test]
fn a_minority_canary_reports_latency_and_leaves_the_verdict_to_later_steps() {
    let mut noise = Noise(13);
    let b = timed(&mut noise, 1, 0.05, 400);
    let c = timed(&mut noise, 1, 0.15, 400);
    let w = window(b, c);
    let limits = GateThresholds::default();
    let at = |percent: f64, later_steps: bool| {
        LatencyGate.judge(&Evidence {
            percent,
            later_steps,
            ..evidence(&w, &limits, StepMode::Canary)
        })
    };
    // 20 %, with steps to come: passes, saying it did not judge.
    match at(20.0, true) {
        Verdict::Pass(f) => {
            assert_eq!(f["judged"], false, "{f}");
            assert!(f["service_ratio"].as_f64().unwrap() > 2.0, "{f}");
        }
        other => panic!("expected an unjudged pass, got {other:?}"),
    }
    // The same window judged: at 50 %, or at 20 % when no later step will judge.
    assert!(reason(&at(50.0, true)).contains("service time"));
    assert!(reason(&at(20.0, false)).contains("service time"));
}

/// An arm whose successful requests took `e2e` end to end in engine calls of `service`.
fn arm_timed(e2e: Duration, service: Duration, n: usize) -> ArmSnapshot {
    let mut a = ArmSnapshot::from_figures(n as u64, 0, 0, &[]);
    a.add_latency(&vec![e2e; n]);
    a.add_service(2, &vec![service; n]);
    a
}

#[test]
fn shadow_latency_is_not_failed_while_the_server_sheds_shadow_work() {
    let mut noise = Noise(29);
    let mut w = window(
        timed(&mut noise, 1, 0.05, 400),
        timed(&mut noise, 1, 0.15, 400),
    );
    assert!(is_fail(&judge(&LatencyGate, &w, StepMode::Shadow)));
    w.shadow.compared = 400;
    // A few shed (the candidate's own backlog): still judged.
    w.shadow.dropped = 3;
    assert!(is_fail(&judge(&LatencyGate, &w, StepMode::Shadow)));
    // More than 1 % shed: the server is out of CPU; waits.
    w.shadow.dropped = 20;
    assert!(is_wait(&judge(&LatencyGate, &w, StepMode::Shadow)));
    // Canary arms both answer clients: judged as ever.
    assert!(is_fail(&judge(&LatencyGate, &w, StepMode::Canary)));
}

#[test]
fn shadow_latency_that_reads_the_servers_load_is_not_the_candidates() {
    // The case: end to end the shadow read 26.6 ms against 1.15 ms, while its engine
    // calls took what the baseline's did.
    let service = Duration::from_micros(300);
    let w = window(
        arm_timed(Duration::from_micros(1150), service, 500),
        arm_timed(Duration::from_micros(26_600), service, 500),
    );
    assert!(is_pass(&judge(&LatencyGate, &w, StepMode::Shadow)));
    assert!(is_pass(&judge(&LatencyGate, &w, StepMode::Canary)));
    // End-to-end p99 is judged only when the plan asks, and then only in canary steps.
    let limits = GateThresholds {
        max_p99_ratio: Some(2.0),
        ..GateThresholds::default()
    };
    let v = LatencyGate.judge(&evidence(&w, &limits, StepMode::Shadow));
    assert!(is_pass(&v), "{v:?}");
    let v = LatencyGate.judge(&evidence(&w, &limits, StepMode::Canary));
    assert!(reason(&v).contains("p99 latency"), "{v:?}");
}

#[test]
fn latency_waits_without_a_batch_size_in_common() {
    let mut noise = Noise(5);
    let w = window(
        timed(&mut noise, 1, 0.05, 500),
        timed(&mut noise, 16, 0.5, 500),
    );
    assert!(is_wait(&judge(&LatencyGate, &w, StepMode::Shadow)));
    // And with too few samples.
    let w = window(
        timed(&mut noise, 1, 0.05, 500),
        timed(&mut noise, 1, 0.5, 5),
    );
    assert!(is_wait(&judge(&LatencyGate, &w, StepMode::Shadow)));
}

fn shadow_window(items: &[Compared]) -> StatsSnapshot {
    StatsSnapshot {
        shadow: ShadowSnapshot::from_comparisons(items),
        ..StatsSnapshot::default()
    }
}

/// `n` comparisons of a probability and a label: each request's difference drawn uniformly
/// in [0, 2 × `mean`], the label changed on `flips` of every 1,000.
fn comparisons(noise: &mut Noise, n: usize, mean: f64, flips: u32) -> Vec<Compared> {
    (0..n)
        .map(|i| {
            let d = 2.0 * mean * noise.next();
            Compared {
                max_diff: d,
                mean_diff: Some(d),
                labels_agree: Some((i % 1000) as u32 >= flips),
                elements: 1,
            }
        })
        .collect()
}

#[test]
fn a_retrained_model_whose_scores_move_a_little_passes() {
    // The retrained XGBoost: mean absolute difference 0.017, a label flipped on 1 in
    // 100 requests. Exact agreement would be 0 %.
    let mut noise = Noise(13);
    let w = shadow_window(&comparisons(&mut noise, 2000, 0.017, 10));
    let v = judge(&DivergenceGate, &w, StepMode::Shadow);
    let Verdict::Pass(f) = &v else {
        panic!("{v:?}")
    };
    assert!(
        f["max_diff_p50"]
            .as_f64()
            .is_some_and(|p| p > 0.005 && p < 0.03),
        "{f}"
    );
    assert!(
        f["label_agreement"].as_f64().is_some_and(|a| a > 0.98),
        "{f}"
    );
}

#[test]
fn divergent_outputs_fail_with_their_distribution() {
    let mut noise = Noise(17);
    let w = shadow_window(&comparisons(&mut noise, 500, 0.2, 0));
    let r = reason(&judge(&DivergenceGate, &w, StepMode::Shadow)).to_string();
    assert!(
        r.contains("mean absolute difference") && r.contains("p90"),
        "{r}"
    );
    // Flipped labels with scores that barely move: a threshold changed.
    let w = shadow_window(&comparisons(&mut noise, 1000, 0.001, 200));
    let r = reason(&judge(&DivergenceGate, &w, StepMode::Shadow)).to_string();
    assert!(r.contains("labels agree on 80.0%"), "{r}");
    // Outputs that cannot be compared (renamed, reshaped) say so.
    let incomparable = Compared {
        max_diff: f64::INFINITY,
        mean_diff: None,
        labels_agree: Some(false),
        elements: 0,
    };
    let w = shadow_window(&[incomparable; 100]);
    let r = reason(&judge(&DivergenceGate, &w, StepMode::Shadow)).to_string();
    assert!(r.contains("names, shapes or types"), "{r}");
}

#[test]
fn divergence_near_its_limit_waits_rather_than_guess() {
    let mut noise = Noise(19);
    // Mean 0.048 against a limit of 0.05 over 100 requests: neither side is sure.
    let w = shadow_window(&comparisons(&mut noise, 100, 0.048, 0));
    let v = judge(&DivergenceGate, &w, StepMode::Shadow);
    assert!(is_wait(&v), "{v:?}");
    // Too few comparisons, and canary steps (which compare nothing).
    let w = shadow_window(&comparisons(&mut noise, 5, 0.3, 0));
    assert!(is_wait(&judge(&DivergenceGate, &w, StepMode::Shadow)));
    assert!(is_pass(&judge(&DivergenceGate, &w, StepMode::Canary)));
}

#[test]
fn agreement_within_a_tolerance_is_judged_when_the_plan_asks() {
    let mut noise = Noise(23);
    let w = shadow_window(&comparisons(&mut noise, 1000, 0.017, 0));
    let limits = GateThresholds {
        agreement_tolerance: 0.01,
        min_agreement: 0.9,
        ..GateThresholds::default()
    };
    let v = DivergenceGate.judge(&evidence(&w, &limits, StepMode::Shadow));
    assert!(reason(&v).contains("within 0.01"), "{v:?}");
    let loose = GateThresholds {
        agreement_tolerance: 0.1,
        min_agreement: 0.9,
        ..GateThresholds::default()
    };
    assert!(is_pass(&DivergenceGate.judge(&evidence(
        &w,
        &loose,
        StepMode::Shadow
    ))));
}

#[test]
fn wilson_bounds_hold_their_observed_share() {
    let (lo, hi) = wilson(95, 100, CONFIDENCE_Z);
    assert!(lo < 0.95 && 0.95 < hi && lo > 0.8, "{lo} {hi}");
    let (lo, hi) = wilson(0, 0, CONFIDENCE_Z);
    assert_eq!((lo, hi), (0.0, 1.0));
    assert!(wilson(300, 300, CONFIDENCE_Z).0 > 0.95);
}
