//! Synthetic language models: deterministic functions of the prefix, for tests and benchmarks.
//!
//! The logits of token `v` after a prefix are hashed from (seed, last `order` tokens, v) and shaped
//! into an approximately Gaussian value, so a model is defined by a handful of numbers, costs no
//! weights, and works at any vocabulary size (8 … 150 000+). A [`SyntheticPair`] shares one
//! ground-truth function between a drafter and a verifier that see it through different amounts of
//! noise: the noise scales set the quality gap, and the ground truth gives a well-defined quality
//! measure (the log-likelihood of an output under it).

use crate::model::{LanguageModel, Logits, ModelError, Session, TokenId};

/// A hashed n-gram model: `logit(v | prefix) = sharpness · g(seed, ctx, v) + noise · g(noise_seed, ctx, v)`
/// plus a boost of `ln V + b_i` on `peaks` candidate tokens hashed from the context (so that, as in
/// a real LM, a few tokens hold most of the mass at any vocabulary size), plus `eos_bias` on EOS;
/// `g` ≈ N(0, 1) and `ctx` is the last `order` tokens.
#[derive(Clone, Debug)]
pub struct SyntheticModel {
    pub name: String,
    pub vocab: usize,
    pub order: usize,
    pub seed: u64,
    pub sharpness: f32,
    /// Number of boosted candidate tokens per context.
    pub peaks: usize,
    pub noise: f32,
    pub noise_seed: u64,
    /// EOS ids (default `[0]`; empty for a model that never ends by itself).
    pub eos: Vec<TokenId>,
    pub eos_bias: f32,
}

impl SyntheticModel {
    /// The noise-free ground truth for `seed`.
    pub fn truth(vocab: usize, seed: u64) -> Self {
        Self {
            name: format!("synthetic-truth-v{vocab}"),
            vocab,
            order: 2,
            seed,
            sharpness: 1.0,
            peaks: 4,
            noise: 0.0,
            noise_seed: seed ^ 0x5eed,
            eos: vec![0],
            eos_bias: 0.0,
        }
    }

    /// This model seen through extra noise of scale `noise` (a different noise stream per `tag`).
    pub fn noisy(&self, name: &str, noise: f32, tag: u64) -> Self {
        Self {
            name: name.to_string(),
            noise,
            noise_seed: self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ tag,
            ..self.clone()
        }
    }

    /// Hash of the last `order` tokens of `prefix` (the n-gram context).
    fn context_hash(&self, prefix: &[TokenId]) -> u64 {
        let start = prefix.len().saturating_sub(self.order);
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ (prefix.len().min(self.order) as u64);
        for &t in &prefix[start..] {
            h = mix(h ^ t as u64);
        }
        h
    }

    /// Logits for the token after `prefix`, written into `out` (`out.len() == vocab`).
    pub fn logits_into(&self, prefix: &[TokenId], out: &mut [f32]) {
        let ctx = self.context_hash(prefix);
        let base = mix(ctx ^ self.seed);
        let noise = mix(ctx ^ self.noise_seed);
        for (v, o) in out.iter_mut().enumerate() {
            let mut l = self.sharpness * gaussian(mix(base ^ (v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            if self.noise != 0.0 {
                l += self.noise * gaussian(mix(noise ^ (v as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)));
            }
            *o = l;
        }
        // Candidate tokens and their boosts depend on the context and the ground-truth seed only:
        // the drafter and the verifier agree on them and differ through the noise.
        let ln_v = (self.vocab as f32).ln();
        for i in 0..self.peaks {
            let h = mix(base ^ 0xa076_1d64_78bd_642f ^ i as u64);
            let v = (h % self.vocab as u64) as usize;
            out[v] += self.sharpness * (ln_v + 1.5 * gaussian(mix(h)) + 2.0 - i as f32);
        }
        for &e in &self.eos {
            if (e as usize) < out.len() {
                out[e as usize] += self.eos_bias;
            }
        }
    }

    pub fn logits(&self, prefix: &[TokenId]) -> Vec<f32> {
        let mut out = vec![0.0; self.vocab];
        self.logits_into(prefix, &mut out);
        out
    }

    /// Log-probability (untransformed softmax) of `token` after `prefix`.
    pub fn log_prob(&self, prefix: &[TokenId], token: TokenId) -> f64 {
        let l = self.logits(prefix);
        let max = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        l[token as usize] as f64 - lse
    }
}

/// A drafter and a verifier that see one ground truth through different noise.
#[derive(Clone, Debug)]
pub struct SyntheticPair {
    pub truth: SyntheticModel,
    pub drafter: SyntheticModel,
    pub verifier: SyntheticModel,
}

impl SyntheticPair {
    /// `drafter_noise > verifier_noise` makes the verifier the better model.
    pub fn new(vocab: usize, seed: u64, drafter_noise: f32, verifier_noise: f32) -> Self {
        let truth = SyntheticModel::truth(vocab, seed);
        let drafter = truth.noisy(&format!("synthetic-drafter-v{vocab}"), drafter_noise, 1);
        let verifier = truth.noisy(&format!("synthetic-verifier-v{vocab}"), verifier_noise, 2);
        Self { truth, drafter, verifier }
    }

    /// The default pair of the demos and tests: a realistic gap (acceptance ≈ 0.7–0.9).
    pub fn default_with_vocab(vocab: usize, seed: u64) -> Self {
        Self::new(vocab, seed, 1.2, 0.3)
    }

    /// Set the EOS bias of all three models.
    pub fn with_eos_bias(mut self, bias: f32) -> Self {
        for m in [&mut self.truth, &mut self.drafter, &mut self.verifier] {
            m.eos_bias = bias;
        }
        self
    }

    /// Drop the EOS ids of all three models (generations then end only at the length limit).
    pub fn without_eos(mut self) -> Self {
        for m in [&mut self.truth, &mut self.drafter, &mut self.verifier] {
            m.eos.clear();
        }
        self
    }

    /// Mean per-token log-likelihood of `output` after `prompt` under the ground truth: the
    /// synthetic task's quality measure (higher is better).
    pub fn quality(&self, prompt: &[TokenId], output: &[TokenId]) -> f64 {
        if output.is_empty() {
            return 0.0;
        }
        let mut seq = prompt.to_vec();
        let mut total = 0.0;
        for &t in output {
            total += self.truth.log_prob(&seq, t);
            seq.push(t);
        }
        total / output.len() as f64
    }
}

/// Text of synthetic tokens: `t<id>` words separated by spaces.
pub fn detokenize(tokens: &[TokenId]) -> String {
    tokens.iter().map(|t| format!("t{t}")).collect::<Vec<_>>().join(" ")
}

impl LanguageModel for SyntheticModel {
    fn name(&self) -> &str {
        &self.name
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn eos_ids(&self) -> &[TokenId] {
        &self.eos
    }
    fn start<'a>(&'a self, prompt: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::Empty(format!("{}: the prompt", self.name)));
        }
        let mut s = SyntheticSession { model: self, tokens: Vec::new(), conditioning: 0 };
        let logits = s.extend(prompt)?;
        s.conditioning = prompt.len();
        Ok((Box::new(s), logits.last().to_vec()))
    }
}

struct SyntheticSession<'a> {
    model: &'a SyntheticModel,
    /// The prompt, then the continuation.
    tokens: Vec<TokenId>,
    /// Prompt tokens at the front of `tokens`.
    conditioning: usize,
}

impl Session for SyntheticSession<'_> {
    fn len(&self) -> usize {
        self.tokens.len() - self.conditioning
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::Empty("extend".into()));
        }
        let v = self.model.vocab;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= v) {
            return Err(ModelError::TokenOutOfRange { model: self.model.name.clone(), token: t, vocab: v });
        }
        // Only the last `order` tokens matter: skip computing rows nobody asked for is not
        // possible (every appended position gets a row), so compute each row from its context.
        let mut data = vec![0f32; tokens.len() * v];
        for (i, row) in data.chunks_mut(v).enumerate() {
            self.tokens.push(tokens[i]);
            self.model.logits_into(&self.tokens, row);
        }
        Logits::new(tokens.len(), v, data)
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.len() {
            return Err(ModelError::BadTruncate { len, held: self.len() });
        }
        self.tokens.truncate(self.conditioning + len);
        Ok(())
    }
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An approximately standard normal value from 64 hashed bits (Irwin–Hall with 4 terms).
#[inline]
fn gaussian(h: u64) -> f32 {
    let s = (h & 0xffff) + ((h >> 16) & 0xffff) + ((h >> 32) & 0xffff) + (h >> 48);
    // Sum of 4 U(0,1): mean 2, variance 1/3.
    ((s as f32 / 65536.0) - 2.0) * 1.732_050_8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_truncate_consistent() {
        let pair = SyntheticPair::default_with_vocab(50, 3);
        let (mut s, first) = pair.verifier.start(&[1, 2, 3]).unwrap();
        assert_eq!(s.len(), 0, "a session holds the continuation only");
        let a = s.extend(&[4, 5, 6]).unwrap();
        assert_eq!(s.len(), 3);
        s.truncate(1).unwrap();
        let b = s.extend(&[5, 6]).unwrap();
        assert_eq!(a.row(1), b.row(0));
        assert_eq!(a.row(2), b.row(1));
        assert_eq!(first, pair.verifier.logits(&[1, 2, 3]));
        assert!(s.truncate(99).is_err());
        // The prompt cannot be cut: truncating to 0 keeps it, and the first continuation row is
        // again the prefill's.
        s.truncate(0).unwrap();
        assert_eq!(s.extend(&[4]).unwrap().row(0), a.row(0));
        assert!(s.extend(&[50]).is_err());
    }

    #[test]
    fn verifier_is_closer_to_truth() {
        let pair = SyntheticPair::default_with_vocab(1000, 9);
        let (mut dq, mut vq) = (0.0, 0.0);
        for ctx in 0..50u32 {
            let prefix = [ctx, ctx + 1];
            let t = pair.truth.logits(&prefix);
            let tm = t.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
            dq += pair.drafter.log_prob(&prefix, tm);
            vq += pair.verifier.log_prob(&prefix, tm);
        }
        assert!(vq > dq, "verifier {vq} drafter {dq}");
    }
}
