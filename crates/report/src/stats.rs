//! Bootstrap confidence intervals.
//!
//! Percentile bootstrap over examples: `B` resamples of the examples (each example's score
//! averaged over trials first, or its statistics summed over trials for corpus metrics such as
//! BLEU), with counter-based randomness so the interval is a pure function of the data and the
//! seed.

use speccascade_core::{Purpose, rng::uniform};

/// Resamples used by the report.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// (mean, low, high) of a 95 % percentile-bootstrap interval of the mean of `x`.
pub fn bootstrap_mean_ci(x: &[f64], resamples: usize, seed: u64) -> (f64, f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let (lo, hi) = bootstrap_ci(n, resamples, seed, |idx| idx.iter().map(|&i| x[i]).sum::<f64>() / n as f64);
    (mean, lo, hi)
}

/// (low, high) of a 95 % percentile-bootstrap interval of any statistic of `n` examples:
/// `stat` receives the example indices of one resample (drawn with replacement).
pub fn bootstrap_ci(n: usize, resamples: usize, seed: u64, mut stat: impl FnMut(&[usize]) -> f64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    if n == 1 {
        let v = stat(&[0]);
        return (v, v);
    }
    let mut idx = vec![0usize; n];
    let mut values: Vec<f64> = (0..resamples)
        .map(|b| {
            for (i, slot) in idx.iter_mut().enumerate() {
                let u = uniform(seed, b as u64, i as u64, Purpose::Draft);
                *slot = ((u * n as f64) as usize).min(n - 1);
            }
            stat(&idx)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    (quantile(&values, 0.025), quantile(&values, 0.975))
}

/// Linear-interpolated quantile of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_covers_the_mean_and_shrinks_with_n() {
        let small: Vec<f64> = (0..10).map(|i| (i % 2) as f64).collect();
        let big: Vec<f64> = (0..1000).map(|i| (i % 2) as f64).collect();
        let (m, lo, hi) = bootstrap_mean_ci(&small, 2000, 1);
        assert_eq!(m, 0.5);
        assert!(lo < 0.5 && hi > 0.5);
        // Bernoulli(0.5), n = 10: standard error 0.158, the 95 % interval ≈ ±0.31.
        assert!((hi - lo - 0.62).abs() < 0.12, "{lo} {hi}");
        let (_, lo2, hi2) = bootstrap_mean_ci(&big, 2000, 1);
        // n = 1000: ±1.96 · 0.0158 = ±0.031.
        assert!((hi2 - lo2 - 0.062).abs() < 0.01, "{lo2} {hi2}");
        assert_eq!(bootstrap_mean_ci(&[3.0], 100, 1), (3.0, 3.0, 3.0));
        assert_eq!(bootstrap_mean_ci(&small, 500, 9), bootstrap_mean_ci(&small, 500, 9));
    }

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.1), 1.4);
    }
}
