//! PSI and Jensen–Shannon distance on reference-quantile bins (numeric) or on categories.
//!
//! **Numeric binning** (the same rule as `ballast profile`'s bins, so offline and online
//! numbers agree): with the reference's `n` non-missing values sorted, the candidate edge `j`
//! (`j = 1..10`) is the type-1 quantile `v[ceil(j·n/10) − 1]`, the smallest value with at least
//! `j/10` of the reference at or below it. An edge is kept only if it is greater than the
//! previous kept edge (ties between quantiles merge their bins) and below the reference maximum
//! (the last bin always ends at the maximum). Bins are right-closed: a value `x` falls in the bin
//! of the first edge `e` with `x <= e`, and values above the last edge fall in the last bin; so
//! current values below the reference minimum count in the first bin and values above its
//! maximum in the last. A constant reference column has one bin and scores 0.
//!
//! **Shares**: counts divided by each side's non-missing total. **PSI** `Σ (q − p) ln(q / p)`
//! with each share raised to at least `1e-4` ([`crate::stats::PSI_FLOOR`], as Evidently) so an
//! empty bin stays finite. **Jensen–Shannon** distance, base 2 (`0 ln 0 = 0`, no epsilon):
//! `scipy.spatial.distance.jensenshannon(p, q, base=2)`, 0 for the same shares, 1 for disjoint.

/// Ten reference-quantile bins.
pub const BINS: usize = 10;

/// Interior edges of a **sorted** non-empty reference.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let n = sorted.len();
    let Some(&max) = sorted.last() else {
        return Vec::new();
    };
    let mut edges: Vec<f64> = Vec::with_capacity(bins.saturating_sub(1));
    for j in 1..bins {
        let rank = (j * n).div_ceil(bins).max(1);
        let e = sorted[rank - 1];
        if e < max && edges.last().is_none_or(|last| *last < e) {
            edges.push(e);
        }
    }
    edges
}

/// Counts of a **sorted** sample in right-closed bins with these interior edges.
pub fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut below = 0usize;
    for e in edges {
        let at_or_below = sorted.partition_point(|x| x <= e);
        counts.push((at_or_below - below) as u64);
        below = at_or_below;
    }
    counts.push((sorted.len() - below) as u64);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_of_one_to_twenty_and_ties() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let e = quantile_edges(&v, 10);
        assert_eq!(e, vec![2., 4., 6., 8., 10., 12., 14., 16., 18.]);
        assert_eq!(bin_counts(&v, &e), vec![2; 10]);
        assert!(quantile_edges(&[3.0; 7], 10).is_empty());
        let e = quantile_edges(&[0., 0., 0., 0., 0., 0., 0., 0., 1., 2.], 10);
        assert_eq!(e, vec![0., 1.]);
        assert_eq!(bin_counts(&[-5., 0., 0.5, 1., 9.], &e), vec![2, 2, 1]);
    }
}
