//! Chi-square test of homogeneity on the 2×k table of category counts (reference row, current
//! row; categories = the union of both sides), as
//! `scipy.stats.chi2_contingency(observed, correction=False)`: expected counts from the
//! margins, `Σ (O − E)² / E`, `k − 1` degrees of freedom, p-value the chi-square survival
//! function. One category (k = 1) has no degrees of freedom: statistic 0, p-value 1, as scipy.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Chi2 {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: usize,
}

/// Counts of the same categories on both sides (every category non-zero on at least one).
pub fn chi2_contingency(reference: &[u64], current: &[u64]) -> Chi2 {
    let c = crate::stats::chi_square(reference, current);
    Chi2 {
        statistic: c.statistic,
        p_value: c.p_value,
        dof: c.dof,
    }
}
