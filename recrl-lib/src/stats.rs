//! Small summary statistics shared by the steps: means and quantiles, one definition each.

/// The arithmetic mean; 0 for no values.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The arithmetic mean of an iterator's values; NaN for none.
pub fn mean_or_nan(values: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = values.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// The `q`-quantile of values sorted ascending, interpolating linearly between the two nearest
/// ranks (numpy's default, "linear"); NaN for no values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The `q`-quantile of `values` in any order (see [`quantile_sorted`]).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, q)
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom (`t.ppf(0.975, df)`),
/// to 3 decimals; the normal 1.960 above 30.
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.960,
    }
}

/// Mean of `values` and the half-width of its 95 % interval (`t95(n − 1) · sd / √n`, sample
/// sd); the half-width is `None` for one value, and everything is `None` for none.
pub fn interval(values: &[f64]) -> Option<(f64, Option<f64>)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some((mean, None));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((mean, Some(t95(n - 1) * (var / n as f64).sqrt())))
}

/// Mean of the paired differences `a[k] − b[k]` with its 95 % interval (see [`interval`]).
pub fn paired_interval(a: &[f64], b: &[f64]) -> Option<(f64, Option<f64>)> {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    interval(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_by_hand() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(mean_or_nan([1.0, 2.0].into_iter()), 1.5);
        assert!(mean_or_nan(std::iter::empty()).is_nan());
    }

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([4, 1, 3, 2], [0, 0.25, 0.5, 0.9, 1]) = [1, 1.75, 2.5, 3.7, 4]
        let v = [4.0, 1.0, 3.0, 2.0];
        for (q, want) in [(0.0, 1.0), (0.25, 1.75), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0)] {
            assert!((quantile(&v, q) - want).abs() < 1e-12, "q {q}");
        }
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(quantile_sorted(&[5.0], 0.3), 5.0);
    }
}
