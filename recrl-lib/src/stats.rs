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
