//! Wasserstein-1 distance between two samples, exactly as `scipy.stats.wasserstein_distance`
//! without weights: `∫ |F_u(x) − F_v(x)| dx` over the pooled sorted values, each CDF taken as
//! `count(values <= x) / n` on every gap between consecutive pooled values. Computed on the
//! samples themselves (not binned), by one merge of the two sorted samples.

/// The distance between two **sorted**, non-empty samples without NaN; `None` if either is
/// empty.
pub fn wasserstein(u: &[f64], v: &[f64]) -> Option<f64> {
    if u.is_empty() || v.is_empty() {
        return None;
    }
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0f64;
    loop {
        let x = match (u.get(i), v.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        let next = match (u.get(i), v.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        total += (i as f64 / nu - j as f64 / nv).abs() * (next - x);
    }
    Some(total)
}

/// Population standard deviation (`np.std`, `ddof=0`), two-pass.
pub fn std_dev(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    // scipy: wasserstein_distance([0, 1, 3], [5, 6, 8]) → 5.0
    #[test]
    fn shifted_samples_are_their_shift_apart() {
        assert_eq!(wasserstein(&[0., 1., 3.], &[5., 6., 8.]), Some(5.0));
        assert_eq!(wasserstein(&[1., 2.], &[1., 2.]), Some(0.0));
        // scipy.stats.wasserstein_distance([3.4, 3.9, 7.5, 7.8], [4.5, 1.4]) → 2.7
        let w = wasserstein(&[3.4, 3.9, 7.5, 7.8], &[1.4, 4.5]).unwrap_or(f64::NAN);
        assert!((w - 2.7).abs() < 1e-12, "{w}");
        assert_eq!(wasserstein(&[], &[1.0]), None);
    }
}
