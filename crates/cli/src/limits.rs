//! Named limits on the numbers the command line takes. Each is checked before anything is sized
//! by it, and the error names the flag, the value and the limit (never an allocation failure).

use anyhow::{Result, bail};

/// The longest draft block: the paper's sweeps use γ ≤ 8; each block position costs a verifier
/// row and a drafter step, so beyond this a block is a typo, not an experiment.
pub const MAX_GAMMA: usize = 64;
/// The synthetic pair's largest vocabulary (every position holds a few vocabulary-sized rows).
pub const MAX_SYNTHETIC_VOCAB: usize = 1 << 20;
/// The longest synthetic generation (the synthetic models have no context limit of their own).
pub const MAX_SYNTHETIC_NEW_TOKENS: usize = 1 << 16;
/// The longest per-program timeout of `score` (one day).
pub const MAX_TIMEOUT_S: f64 = 86_400.0;
/// The most programs `score` runs at once.
pub const MAX_JOBS: usize = 1024;
/// The most array tasks of `slurm` (Slurm's own default MaxArraySize is 1001).
pub const MAX_SHARDS: usize = 10_000;

/// `flag`'s `value` must lie in `min..=max`; `why` says where the limit comes from.
pub fn in_range(flag: &str, value: usize, min: usize, max: usize, why: &str) -> Result<()> {
    if value < min || value > max {
        bail!("{flag} {value} is out of range: expected {min}..={max} ({why})");
    }
    Ok(())
}

/// A positive, finite number of seconds no larger than `max`.
pub fn seconds(flag: &str, value: f64, max: f64) -> Result<std::time::Duration> {
    if !(value > 0.0 && value <= max) {
        bail!("{flag} {value:?} is out of range: expected a number of seconds in (0, {max}]");
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_flag() {
        let e = in_range("--gamma", 1_000_000_000, 1, MAX_GAMMA, "draft block length").unwrap_err().to_string();
        assert!(e.contains("--gamma 1000000000") && e.contains("1..=64"), "{e}");
        for bad in [1e300, -0.5, 0.0, f64::NAN, f64::INFINITY] {
            let e = seconds("--timeout", bad, MAX_TIMEOUT_S).unwrap_err().to_string();
            assert!(e.contains("--timeout"), "{e}");
        }
        assert_eq!(seconds("--timeout", 2.5, MAX_TIMEOUT_S).unwrap().as_millis(), 2500);
    }
}
