//! Drift statistics between a reference and a window, both as counts in the same bins (the
//! reference profile's quantile bins for a numeric feature, its categories plus "other" for a
//! categorical one). Everything here is a pure function of two count vectors, so windows can be
//! merged (across replicas, across time) before they are judged.
//!
//! - PSI: `Σ (q − p) ln(q / p)`, proportions floored at [`PSI_FLOOR`] (an empty bin would make
//!   it infinite; Evidently floors at the same 1e-4).
//! - Jensen–Shannon distance, base 2 (`scipy.spatial.distance.jensenshannon(p, q, base=2)`):
//!   0 for the same distribution, 1 for disjoint ones.
//! - Binned Kolmogorov–Smirnov: the largest gap between the two cumulative shares at a bin
//!   edge. Bins are right-closed, so at every edge the binned CDFs equal the exact empirical
//!   ones and the exact statistic `D` satisfies `D_binned ≤ D ≤ D_binned + max_k max(p_k, q_k)`
//!   (inside a bin either CDF rises by at most its bin's share); the bound is reported with it.
//! - Chi-square on the 2×k table of counts (`scipy.stats.chi2_contingency(correction=False)`),
//!   bins empty on both sides left out; its p-value is what the drift verdict tests.
//! - Wasserstein-1, binned: both CDFs taken as linear inside each bin between the reference's
//!   edges (the outer bins end at the reference's min and max), `∫ |F − G| dx` computed exactly
//!   for those piecewise-linear CDFs. Values outside the reference's range count in the outer
//!   bins (and as out of range), so a shift beyond the range is under-measured here; the
//!   out-of-range counter says so.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Proportions below this are raised to it in PSI.
pub const PSI_FLOOR: f64 = 1e-4;

fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|c| *c as f64 / total as f64).collect()
}

pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (p, q) = (shares(reference), shares(current));
    p.iter()
        .zip(&q)
        .map(|(p, q)| {
            let (p, q) = (p.max(PSI_FLOOR), q.max(PSI_FLOOR));
            (q - p) * (q / p).ln()
        })
        .sum()
}

pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> f64 {
    let (p, q) = (shares(reference), shares(current));
    let kl = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let js: f64 = p
        .iter()
        .zip(&q)
        .map(|(p, q)| {
            let m = 0.5 * (p + q);
            0.5 * kl(*p, m) + 0.5 * kl(*q, m)
        })
        .sum();
    // Rounding can leave a tiny negative for identical inputs.
    js.max(0.0).sqrt()
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ks {
    pub statistic: f64,
    /// The exact statistic is at most `statistic + error_bound`.
    pub error_bound: f64,
}

pub fn binned_ks(reference: &[u64], current: &[u64]) -> Ks {
    let (p, q) = (shares(reference), shares(current));
    let (mut fp, mut fq, mut d, mut bound) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (p, q) in p.iter().zip(&q) {
        fp += p;
        fq += q;
        d = d.max((fp - fq).abs());
        bound = bound.max(p.max(*q));
    }
    Ks {
        statistic: d,
        error_bound: bound,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChiSquare {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: usize,
}

pub fn chi_square(reference: &[u64], current: &[u64]) -> ChiSquare {
    let r_total: u64 = reference.iter().sum();
    let c_total: u64 = current.iter().sum();
    let cells: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r + **c > 0)
        .map(|(r, c)| (*r as f64, *c as f64))
        .collect();
    if r_total == 0 || c_total == 0 || cells.len() < 2 {
        return ChiSquare {
            statistic: 0.0,
            p_value: 1.0,
            dof: 0,
        };
    }
    let n = (r_total + c_total) as f64;
    let (rt, ct) = (r_total as f64, c_total as f64);
    let statistic: f64 = cells
        .iter()
        .map(|(r, c)| {
            let col = r + c;
            let (er, ec) = (rt * col / n, ct * col / n);
            (r - er).powi(2) / er + (c - ec).powi(2) / ec
        })
        .sum();
    let dof = cells.len() - 1;
    let p_value = ChiSquared::new(dof as f64).map_or(f64::NAN, |d| d.sf(statistic));
    ChiSquare {
        statistic,
        p_value,
        dof,
    }
}

/// `edges` are the reference's interior edges (`counts.len() - 1` of them), `min`/`max` its
/// range.
pub fn binned_wasserstein(
    reference: &[u64],
    current: &[u64],
    edges: &[f64],
    min: f64,
    max: f64,
) -> f64 {
    let (p, q) = (shares(reference), shares(current));
    let k = p.len();
    if k == 0 || edges.len() + 1 != k {
        return f64::NAN;
    }
    let (mut fp, mut fq, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..k {
        let lo = if i == 0 { min } else { edges[i - 1] };
        let hi = if i == k - 1 { max } else { edges[i] };
        let width = (hi - lo).max(0.0);
        let a = fp - fq;
        fp += p[i];
        fq += q[i];
        let b = fp - fq;
        total += if a * b >= 0.0 {
            width * (a.abs() + b.abs()) / 2.0
        } else {
            width * (a * a + b * b) / (2.0 * (a.abs() + b.abs()))
        };
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    // Expected values from scipy 1.x:
    //   r = [100]*10; c = [5,8,12,9,11,10,13,7,15,10]
    //   chi2_contingency(np.vstack([r, c]), correction=False) → (7.101793533618266, 0.6265219852234044, 9)
    //   jensenshannon(r/sum(r), c/sum(c), base=2)             → 0.12212860798373049
    //   sum((q-p)*log(q/p))                                     → 0.08361779980237698
    //   r2 = [50,0,30,20]; c2 = [10,5,0,85]
    //   chi2_contingency(...)   → (101.90476190476191, 6.052017198219369e-22, 3)
    //   jensenshannon(..., base=2) → 0.6604531278433307
    #[test]
    fn statistics_match_scipy() {
        let r = [100u64; 10];
        let c = [5u64, 8, 12, 9, 11, 10, 13, 7, 15, 10];
        let chi = chi_square(&r, &c);
        assert!(close(chi.statistic, 7.101793533618266, 1e-12), "{chi:?}");
        assert!(close(chi.p_value, 0.6265219852234044, 1e-10), "{chi:?}");
        assert_eq!(chi.dof, 9);
        assert!(close(jensen_shannon(&r, &c), 0.12212860798373049, 1e-12));
        assert!(close(psi(&r, &c), 0.08361779980237698, 1e-12));

        let r2 = [50u64, 0, 30, 20];
        let c2 = [10u64, 5, 0, 85];
        let chi = chi_square(&r2, &c2);
        assert!(close(chi.statistic, 101.90476190476191, 1e-12), "{chi:?}");
        assert!(close(chi.p_value, 6.052017198219369e-22, 1e-8), "{chi:?}");
        assert_eq!(chi.dof, 3);
        assert!(close(jensen_shannon(&r2, &c2), 0.6604531278433307, 1e-12));
    }

    #[test]
    fn identical_distributions_score_zero_and_disjoint_ones_the_maximum() {
        let r = [10u64, 20, 30];
        assert_eq!(jensen_shannon(&r, &[1, 2, 3]), 0.0);
        assert!(psi(&r, &[1, 2, 3]).abs() < 1e-12);
        assert_eq!(binned_ks(&r, &[1, 2, 3]).statistic, 0.0);
        assert!(close(jensen_shannon(&[1, 0], &[0, 1]), 1.0, 1e-12));
        assert_eq!(binned_ks(&[1, 0], &[0, 1]).statistic, 1.0);
        // An empty window or a single bin tests nothing.
        assert_eq!(chi_square(&r, &[0, 0, 0]).p_value, 1.0);
        assert_eq!(chi_square(&[5], &[7]).p_value, 1.0);
    }

    #[test]
    fn binned_wasserstein_measures_a_shift_in_feature_units() {
        // Reference uniform on [0, 10] in 10 bins; the window moved every value one bin up
        // (the last bin stays): the shift is 1 for 9/10 of the mass.
        let edges: Vec<f64> = (1..10).map(f64::from).collect();
        let r = [100u64; 10];
        let shifted = [0u64, 100, 100, 100, 100, 100, 100, 100, 100, 200];
        let w = binned_wasserstein(&r, &shifted, &edges, 0.0, 10.0);
        assert!(close(w, 0.9, 1e-12), "{w}");
        assert_eq!(binned_wasserstein(&r, &r, &edges, 0.0, 10.0), 0.0);
    }
}
