//! How often the drift verdict fires when nothing drifted: 1,000 seeded pairs of samples from
//! the same distribution per regime, through the same `offline::feature` the command uses.
//! The rates are written in `docs/drift.md`; run with `--nocapture` to print them:
//!
//!     cargo test -p ballast-monitor --test offline_false_alarms -- --nocapture

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ballast_monitor::offline::read::{ColumnValues, Values};
use ballast_monitor::offline::{self, Kind};

const RUNS: usize = 1000;

/// SplitMix64: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Box–Muller.
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn numeric(rng: &mut Rng, n: usize) -> ColumnValues {
    ColumnValues {
        values: Values::Numeric((0..n).map(|_| rng.normal()).collect()),
        missing: 0,
    }
}

fn categorical(rng: &mut Rng, n: usize) -> ColumnValues {
    let shares = [0.4, 0.3, 0.2, 0.1];
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let u = rng.uniform();
        let mut acc = 0.0;
        let k = shares
            .iter()
            .position(|s| {
                acc += s;
                u < acc
            })
            .unwrap_or(3);
        *counts.entry(format!("c{k}")).or_insert(0u64) += 1;
    }
    ColumnValues {
        values: Values::Categorical(counts),
        missing: 0,
    }
}

/// Share of `RUNS` same-distribution pairs judged drifted.
fn false_alarm_rate(kind: Kind, n_ref: usize, n_cur: usize, seed: u64) -> (f64, &'static str) {
    let mut rng = Rng(seed);
    let mut alarms = 0;
    let mut test = "";
    for _ in 0..RUNS {
        let (r, c) = match kind {
            Kind::Numeric => (numeric(&mut rng, n_ref), numeric(&mut rng, n_cur)),
            Kind::Categorical => (categorical(&mut rng, n_ref), categorical(&mut rng, n_cur)),
        };
        let f = offline::feature("x", kind, r, c, n_cur as u64);
        test = f.verdict.as_ref().map_or("", |v| v.test);
        alarms += usize::from(f.drifted);
    }
    (alarms as f64 / RUNS as f64, test)
}

#[test]
fn same_distribution_pairs_rarely_drift() {
    let cases = [
        (Kind::Numeric, 500, 500, 0.075),
        (Kind::Numeric, 200, 50_000, 0.075),
        (Kind::Numeric, 5000, 5000, 0.01),
        (Kind::Numeric, 50_000, 2000, 0.01),
        (Kind::Categorical, 500, 500, 0.075),
        (Kind::Categorical, 5000, 5000, 0.01),
    ];
    for (i, (kind, n_ref, n_cur, bound)) in cases.into_iter().enumerate() {
        let (rate, test) = false_alarm_rate(kind, n_ref, n_cur, 35 + i as u64);
        eprintln!(
            "{kind:?} {n_ref} vs {n_cur} ({test}): false alarms {:.1}% of {RUNS}",
            rate * 100.0
        );
        assert!(rate <= bound, "{kind:?} {n_ref} vs {n_cur}: {rate}");
    }
}

/// What Evidently's rule (the reference's size alone picks the test) would do with a large
/// reference and a small current batch: the normed Wasserstein distance of 100 values.
#[test]
fn a_small_current_batch_is_judged_by_its_p_value() {
    let (rate, test) = false_alarm_rate(Kind::Numeric, 20_000, 100, 99);
    eprintln!(
        "Numeric 20000 vs 100 ({test}): false alarms {:.1}% of {RUNS}",
        rate * 100.0
    );
    assert_eq!(test, "ks_p_value");
    assert!(rate <= 0.075, "{rate}");
    // The same pairs judged by the distance alone.
    let mut rng = Rng(99);
    let mut over = 0;
    for _ in 0..RUNS {
        let (Values::Numeric(mut a), Values::Numeric(mut b)) = (
            numeric(&mut rng, 20_000).values,
            numeric(&mut rng, 100).values,
        ) else {
            unreachable!()
        };
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let w = offline::wasserstein::wasserstein(&a, &b).unwrap();
        let normed = w / offline::wasserstein::std_dev(&a);
        over += usize::from(normed >= offline::WASSERSTEIN_NORMED_THRESHOLD);
    }
    eprintln!(
        "Numeric 20000 vs 100 by normed Wasserstein >= 0.1 (Evidently's choice): {:.1}% of {RUNS}",
        over as f64 / RUNS as f64 * 100.0
    );
}
