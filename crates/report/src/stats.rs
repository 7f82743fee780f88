//! Bootstrap confidence intervals and paired tests.
//!
//! Percentile bootstrap over examples: `B` resamples of the examples (each example's score
//! averaged over trials first, or its statistics summed over trials for corpus metrics such as
//! BLEU), with counter-based randomness so the interval is a pure function of the data and the
//! seed. Comparisons against the verifier are paired: common random numbers make every
//! configuration decode the same examples with the same uniforms, so the difference is resampled
//! example by example ([`bootstrap_ci`] with a statistic of both), and 0/1 metrics get the exact
//! McNemar test on the (trial, example) pairs ([`mcnemar_exact`]).

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

/// Significance level of the paired comparisons (two-sided).
pub const LEVEL: f64 = 0.05;

/// (low, high) of a 95 % percentile interval of `values` (any order; NaNs dropped).
pub fn percentile_interval(mut values: Vec<f64>) -> (f64, f64) {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    (quantile(&values, 0.025), quantile(&values, 0.975))
}

/// The index resamples [`bootstrap_ci`] draws (`resamples` vectors of `n` indices).
pub fn resample_indices(n: usize, resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    (0..resamples)
        .map(|b| {
            (0..n)
                .map(|i| {
                    let u = uniform(seed, b as u64, i as u64, Purpose::Draft);
                    ((u * n as f64) as usize).min(n.saturating_sub(1))
                })
                .collect()
        })
        .collect()
}

/// Exact two-sided McNemar test of paired 0/1 outcomes: `b` pairs where only the first succeeded,
/// `c` where only the second did. p = min(1, 2 · P(X ≤ min(b, c))) with X ~ Binomial(b + c, ½);
/// 1 when there are no discordant pairs.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Σ_{i ≤ k} C(n, i) / 2^n in log space (n may be thousands).
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_c = 0.0; // ln C(n, 0)
    let mut terms = Vec::with_capacity(k as usize + 1);
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_c + ln_half_n);
    }
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = m.exp() * terms.iter().map(|t| (t - m).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// How a configuration's quality compares with the verifier's at level [`LEVEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not distinguishable from the verifier (the paired interval covers 0, or McNemar p ≥ 5 %).
    Indistinguishable,
    Better,
    Worse,
}

impl Verdict {
    /// From a paired interval of (configuration − verifier).
    pub fn from_interval(lo: f64, hi: f64) -> Option<Self> {
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        Some(if lo > 0.0 {
            Verdict::Better
        } else if hi < 0.0 {
            Verdict::Worse
        } else {
            Verdict::Indistinguishable
        })
    }
    /// From McNemar's discordant counts (`b`: only the configuration succeeded).
    pub fn from_mcnemar(b: u64, c: u64) -> Self {
        if mcnemar_exact(b, c) >= LEVEL {
            Verdict::Indistinguishable
        } else if b > c {
            Verdict::Better
        } else {
            Verdict::Worse
        }
    }
    /// Not significantly worse than the verifier (the second Table-2 reading).
    pub fn reaches_verifier(self) -> bool {
        self != Verdict::Worse
    }
}

/// A "nice" axis range covering `[lo, hi]`: from a round number below `lo` to one above `hi`,
/// on a step of 1, 2 or 5 × 10^k chosen so that the span has 4–10 steps.
pub fn nice_range(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let (lo, hi) = if hi - lo < 1e-12 { (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3)) } else { (lo, hi) };
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| (hi - lo) / s <= 8.0).unwrap_or(10.0 * mag);
    let a = (lo / step).floor() * step;
    let b = (hi / step).ceil() * step;
    // A value exactly on a step boundary still gets a little room.
    let a = if (lo - a).abs() < 1e-12 * step.max(1.0) { a - step } else { a };
    let b = if (b - hi).abs() < 1e-12 * step.max(1.0) { b + step } else { b };
    (a, b)
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
    fn mcnemar_matches_the_binomial_tail() {
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // b = 0, c = 6: p = 2 / 2^6 = 0.03125.
        assert!((mcnemar_exact(0, 6) - 0.03125).abs() < 1e-12);
        // b = 1, c = 9: 2 · (1 + 10) / 1024 = 0.021484375.
        assert!((mcnemar_exact(1, 9) - 0.021484375).abs() < 1e-12);
        assert!((mcnemar_exact(9, 1) - 0.021484375).abs() < 1e-12);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        // Large n stays finite: b = 480, c = 520 → p ≈ 0.22.
        let p = mcnemar_exact(480, 520);
        assert!(p > 0.15 && p < 0.3, "{p}");
        assert_eq!(Verdict::from_mcnemar(0, 6), Verdict::Worse);
        assert_eq!(Verdict::from_mcnemar(2, 3), Verdict::Indistinguishable);
        assert_eq!(Verdict::from_interval(-0.1, 0.2), Some(Verdict::Indistinguishable));
        assert_eq!(Verdict::from_interval(0.01, 0.2), Some(Verdict::Better));
    }

    #[test]
    fn nice_ranges_start_below_the_lowest_value() {
        let (a, b) = nice_range(0.43, 0.81);
        assert!((a - 0.4).abs() < 1e-9 && (b - 0.85).abs() < 1e-9, "{a} {b}");
        let (a, b) = nice_range(-1.66, -1.14);
        assert!((a - -1.7).abs() < 1e-9 && (b - -1.1).abs() < 1e-9, "{a} {b}");
        let (a, b) = nice_range(12.3, 12.4);
        assert!(a <= 12.3 && b >= 12.4 && b - a < 0.5, "{a} {b}");
    }

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.1), 1.4);
    }
}
