//! Counter-based randomness: every uniform is a pure function of
//! (run seed, example id, position, purpose).
//!
//! There is no generator state to thread through the code. Two methods, or two values of α, decoding
//! the same example with the same seed read the *same* uniform for the same decision at the same
//! output position, so their outputs agree token for token until their decisions differ. This gives
//! common random numbers: paired comparisons between methods have lower variance, and equal
//! prefixes can later share model calls across a sweep.

use serde::{Deserialize, Serialize};

/// What a uniform is used for. Each purpose is an independent stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Purpose {
    /// Sampling a token from the drafter (speculative drafts, and drafter-only generation).
    Draft = 1,
    /// The accept/reject coin of a drafted token.
    Accept = 2,
    /// Sampling from the residual distribution after a rejection.
    Residual = 3,
    /// Sampling a token directly from the verifier: the free bonus token, and the verifier's own
    /// tokens in non-speculative methods.
    Bonus = 4,
}

/// The randomness of one example in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    pub seed: u64,
    pub example: u64,
}

impl Stream {
    pub fn new(seed: u64, example: u64) -> Self {
        Self { seed, example }
    }

    /// A uniform in [0, 1) for output position `position` (0 = first generated token).
    pub fn uniform(&self, position: u64, purpose: Purpose) -> f64 {
        uniform(self.seed, self.example, position, purpose)
    }
}

/// SplitMix64's finaliser: a bijective 64-bit mixer with full avalanche.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The uniform in [0, 1) for (seed, example, position, purpose), with 53 random bits.
pub fn uniform(seed: u64, example: u64, position: u64, purpose: Purpose) -> f64 {
    let mut h = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
    h = mix(h ^ example.wrapping_mul(0xd1b5_4a32_d192_ed03));
    h = mix(h ^ position.wrapping_mul(0xaef1_7502_108e_f2d9));
    h = mix(h ^ (purpose as u64).wrapping_mul(0xf1357aea2e62a9c5));
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_and_distinct() {
        let s = Stream::new(7, 3);
        assert_eq!(s.uniform(5, Purpose::Accept), s.uniform(5, Purpose::Accept));
        assert_ne!(s.uniform(5, Purpose::Accept), s.uniform(5, Purpose::Draft));
        assert_ne!(s.uniform(5, Purpose::Accept), s.uniform(6, Purpose::Accept));
        assert_ne!(s.uniform(5, Purpose::Accept), Stream::new(7, 4).uniform(5, Purpose::Accept));
        assert_ne!(s.uniform(5, Purpose::Accept), Stream::new(8, 3).uniform(5, Purpose::Accept));
    }

    #[test]
    fn roughly_uniform() {
        // 10 bins over 100 000 draws: chi-square with 9 df, threshold at p = 1e-6 (≈ 46.0).
        let mut bins = [0u32; 10];
        for i in 0..100_000u64 {
            let u = uniform(1, i / 100, i % 100, Purpose::Draft);
            assert!((0.0..1.0).contains(&u));
            bins[(u * 10.0) as usize] += 1;
        }
        let chi: f64 = bins.iter().map(|&b| (b as f64 - 10_000.0).powi(2) / 10_000.0).sum();
        assert!(chi < 46.0, "chi-square {chi} for {bins:?}");
    }
}
