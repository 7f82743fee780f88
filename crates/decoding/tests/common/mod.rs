//! Shared helpers for the decoding tests: chi-square goodness of fit with a stated false-alarm rate.
#![allow(dead_code)]

/// Upper quantile of the chi-square distribution with `df` degrees of freedom at false-alarm rate
/// 1e-6 (Wilson–Hilferty approximation; z = 4.753 is the standard normal's 1 − 1e-6 quantile).
pub fn chi2_threshold_1e6(df: usize) -> f64 {
    let df = df.max(1) as f64;
    let z = 4.753_424;
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

/// Chi-square statistic of observed counts against expected counts, merging cells whose expected
/// count is below 5 into one pooled cell. Returns (statistic, degrees of freedom).
///
/// Observed mass in cells of zero expected probability is an immediate failure (returns +inf).
pub fn chi_square(observed: &[f64], expected: &[f64]) -> (f64, usize) {
    assert_eq!(observed.len(), expected.len());
    let mut stat = 0.0;
    let mut cells = 0usize;
    let (mut pool_o, mut pool_e) = (0.0, 0.0);
    for (&o, &e) in observed.iter().zip(expected) {
        if e <= 1e-12 {
            if o > 0.0 {
                return (f64::INFINITY, 1);
            }
            continue;
        }
        if e < 5.0 {
            pool_o += o;
            pool_e += e;
        } else {
            stat += (o - e).powi(2) / e;
            cells += 1;
        }
    }
    if pool_e > 0.0 {
        stat += (pool_o - pool_e).powi(2) / pool_e.max(1e-9);
        cells += 1;
    }
    (stat, cells.saturating_sub(1))
}

/// Assert that `observed` fits `expected` at false-alarm rate 1e-6.
pub fn assert_fits(what: &str, observed: &[f64], expected: &[f64]) {
    let (stat, df) = chi_square(observed, expected);
    let thr = chi2_threshold_1e6(df);
    assert!(stat <= thr, "{what}: chi-square {stat:.1} > {thr:.1} (df {df})");
}
