//! Deterministic behaviour of the drivers: lossless greedy equality, the coincidences of
//! methods.md, ledger invariants, stop conditions and bad models.

mod common;

use common::assert_fits;
use speccascade_core::synthetic::{SyntheticPair, detokenize};
use speccascade_core::{LanguageModel, Logits, ModelError, Sampling, Session, TokenDist, TokenId};
use speccascade_decoding::{Bonus, DecodeConfig, DecodeError, Method, MethodSpec, StopReason, decode};

fn spec(m: &str, a: Option<f64>) -> MethodSpec {
    MethodSpec::parse(m, a).unwrap()
}

fn cfg(s: MethodSpec, seed: u64, max: usize) -> DecodeConfig {
    let mut c = DecodeConfig::new(s);
    c.seed = seed;
    c.max_new_tokens = max;
    c
}

/// A pseudo-random prompt of length 1..=8 for prompt index `i`.
fn prompt(i: u64, vocab: usize) -> Vec<TokenId> {
    let n = 1 + (i % 8) as usize;
    (0..n).map(|j| ((i * 7919 + j as u64 * 104_729) % vocab as u64) as TokenId).collect()
}

#[test]
fn spec_decode_greedy_equals_verifier_greedy() {
    let pair = SyntheticPair::default_with_vocab(1000, 5).with_eos_bias(2.0);
    for i in 0..200 {
        let p = prompt(i, 1000);
        let mut vc = cfg(spec("verifier", None), i, 48);
        vc.sampling = Sampling::greedy();
        let want = decode(&pair.drafter, &pair.verifier, &p, &vc, None).unwrap();
        for gamma in [1, 3, 5, 8] {
            let mut c = cfg(spec("spec_decode", None), i, 48);
            c.sampling = Sampling::greedy();
            c.gamma = gamma;
            let got = decode(&pair.drafter, &pair.verifier, &p, &c, None).unwrap();
            assert_eq!(got.tokens, want.tokens, "prompt {i}, γ = {gamma}");
            assert_eq!(got.stop, want.stop);
        }
    }
}

/// At T = 1 the law of spec_decode's first three tokens is the verifier's.
#[test]
fn spec_decode_sequences_follow_verifier() {
    const V: usize = 5;
    let pair = SyntheticPair::new(V, 21, 1.5, 0.4).without_eos();
    let p0: Vec<TokenId> = vec![2, 1];
    let mut observed = vec![0f64; V * V * V];
    let n = 20_000u64;
    for seed in 0..n {
        let mut c = cfg(spec("spec_decode", None), seed, 3);
        c.gamma = 2;
        let g = decode(&pair.drafter, &pair.verifier, &p0, &c, None).unwrap();
        let t = &g.tokens;
        observed[(t[0] as usize * V + t[1] as usize) * V + t[2] as usize] += 1.0;
    }
    let mut expected = vec![0f64; V * V * V];
    let s = Sampling::default();
    let dist = |prefix: &[TokenId]| TokenDist::from_vec(pair.verifier.logits(prefix), &s).unwrap();
    for a in 0..V {
        let pa = dist(&p0).probs()[a] as f64;
        let pre_a = [&p0[..], &[a as TokenId]].concat();
        for b in 0..V {
            let pb = dist(&pre_a).probs()[b] as f64;
            let pre_b = [&pre_a[..], &[b as TokenId]].concat();
            for c in 0..V {
                expected[(a * V + b) * V + c] = n as f64 * pa * pb * dist(&pre_b).probs()[c] as f64;
            }
        }
    }
    assert_fits("spec_decode (y1, y2, y3) vs verifier", &observed, &expected);
}

#[test]
fn coincidences_token_for_token() {
    let pair = SyntheticPair::default_with_vocab(300, 8).with_eos_bias(1.5);
    for (t, top_p) in [(1.0f32, 1.0f32), (0.7, 0.9)] {
        let sampling = Sampling::new(t, top_p).unwrap();
        for seed in 0..150 {
            let p = prompt(seed, 300);
            let run = |s: MethodSpec, bonus: Bonus| {
                let mut c = cfg(s, seed, 40);
                c.sampling = sampling;
                c.gamma = 1 + (seed % 6) as usize;
                c.bonus = bonus;
                decode(&pair.drafter, &pair.verifier, &p, &c, None).unwrap().tokens
            };
            // Under each bonus mode, the rules whose decisions coincide with lossless decoding's
            // reproduce it token for token.
            for bonus in Bonus::ALL {
                let lossless = run(spec("spec_decode", None), bonus);
                assert_eq!(run(spec("spec_cascade_diff", Some(-1.0)), bonus), lossless, "diff α=-1, {bonus}, seed {seed}");
                assert_eq!(run(spec("spec_decode_lossy", Some(0.0)), bonus), lossless, "lossy α=0, {bonus}, seed {seed}");
            }
            // δ = 0 everywhere: with the exact bonus (the cascades' default) every token is the
            // drafter's.
            let drafter = run(spec("drafter", None), Bonus::Exact);
            assert_eq!(run(spec("spec_cascade_chow", Some(1.0)), Bonus::Exact), drafter, "chow α=1 exact bonus, seed {seed}");
            assert_eq!(cfg(spec("spec_cascade_chow", Some(1.0)), seed, 40).bonus, Bonus::Exact, "the cascades' default bonus is exact");
        }
    }
}

#[test]
fn ledger_invariants_hold_for_every_method() {
    let pair = SyntheticPair::default_with_vocab(500, 4).with_eos_bias(1.0);
    let alphas = |m: Method| -> Vec<Option<f64>> {
        match m.alpha_range() {
            None => vec![None],
            Some(r) => {
                let (lo, hi) = (r.lo.max(-2.0), if r.hi_open { 0.9 } else { r.hi.min(2.0) });
                (0..4).map(|i| Some(lo + (hi - lo) * i as f64 / 3.0)).collect()
            }
        }
    };
    for m in Method::ALL {
        for a in alphas(m) {
            for seed in 0..20 {
                for bonus in Bonus::ALL {
                    let mut c = cfg(MethodSpec::new(m, a).unwrap(), seed, 30);
                    c.gamma = 1 + (seed % 5) as usize;
                    c.bonus = bonus;
                    c.trace = true;
                    let p = prompt(seed, 500);
                    let g = decode(&pair.drafter, &pair.verifier, &p, &c, None).unwrap();
                    let l = &g.ledger;
                    let what = format!("{} seed {seed}", c.method.label());
                    l.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(l.emitted as usize, g.tokens.len(), "{what}");
                    assert_eq!(g.trace.as_ref().unwrap().len(), g.tokens.len(), "{what}");
                    assert!(g.tokens.len() <= 30);
                    match g.stop {
                        StopReason::Eos => assert!(pair.verifier.eos_ids().contains(g.tokens.last().unwrap())),
                        StopReason::MaxTokens => assert_eq!(g.tokens.len(), 30),
                        StopReason::StopString(_) => panic!("no stop strings configured"),
                    }
                    if m.is_speculative() {
                        if bonus == Bonus::None {
                            // Without a bonus the first block's first row is the prefill's: a
                            // one-draft first block needs no verifier call.
                            assert!(l.verifier_calls <= l.blocks && l.verifier_calls + 1 >= l.blocks, "{what}: {} calls, {} blocks", l.verifier_calls, l.blocks);
                        } else {
                            assert_eq!(l.verifier_calls, l.blocks, "{what}: one verifier call per block");
                        }
                        if bonus != Bonus::Free {
                            assert_eq!(l.bonus, 0, "{what}: only the free bonus samples from p outside verification");
                        }
                        assert!(l.drafter_steps >= l.drafted.saturating_sub(l.blocks), "{what}");
                        assert_eq!(l.drafter_direct + l.verifier_direct, 0);
                    }
                    if m == Method::Drafter {
                        assert_eq!(l.verifier_calls, 0);
                        assert_eq!(l.drafter_steps as usize, g.tokens.len() - 1, "{what}: first token from the prefill");
                    }
                    // One denominator for every method: deferrals ÷ emitted tokens.
                    assert_eq!(l.deferral_rate(), if l.emitted == 0 { 0.0 } else { l.deferrals as f64 / l.emitted as f64 }, "{what}");
                    if m == Method::SeqCascadeChow {
                        assert!(l.deferrals == 0 || l.deferrals == l.emitted, "{what}: a sequence deferral counts every emitted token");
                    }
                    if m == Method::OracleCascadeDiff {
                        assert!(l.verifier_calls_charged <= l.deferrals && l.verifier_calls_charged <= l.verifier_calls);
                    }
                    let cost = l.modelled_cost(0.25);
                    assert!((cost - (0.25 * l.drafter_steps as f64 + l.verifier_calls_charged as f64)).abs() < 1e-9);
                }
            }
        }
    }
}

#[test]
fn stop_strings_and_max_tokens() {
    let pair = SyntheticPair::default_with_vocab(50, 2);
    let det = |t: &[TokenId]| detokenize(t);
    let mut c = cfg(spec("spec_decode", None), 3, 200);
    let free = decode(&pair.drafter, &pair.verifier, &[1, 2, 3], &c, Some(&det)).unwrap();
    // Stop on the text of the 10th token: generation must end exactly there.
    let stop = format!("t{}", free.tokens[9]);
    let first = free.tokens.iter().position(|&t| det(&[t]).contains(&stop) || false).unwrap();
    c.stop_strings = vec![stop.clone()];
    let g = decode(&pair.drafter, &pair.verifier, &[1, 2, 3], &c, Some(&det)).unwrap();
    assert_eq!(g.stop, StopReason::StopString(stop.clone()));
    assert!(g.tokens.len() <= first + 1 && g.tokens[..] == free.tokens[..g.tokens.len()]);
    assert!(det(&g.tokens).contains(&stop) && !det(&g.tokens[..g.tokens.len() - 1]).contains(&stop));
    // Stop strings without a detokenizer are a configuration error.
    assert!(matches!(decode(&pair.drafter, &pair.verifier, &[1], &c, None), Err(DecodeError::Config(_))));
    let c0 = cfg(spec("spec_decode", None), 3, 0);
    assert!(decode(&pair.drafter, &pair.verifier, &[1], &c0, None).unwrap().tokens.is_empty());
}

#[test]
fn bad_method_and_alpha_are_clear_errors() {
    let e = MethodSpec::parse("spec_cascade_magic", Some(0.1)).unwrap_err().to_string();
    assert!(e.contains("spec_cascade_magic") && e.contains("spec_cascade_token_v3"), "{e}");
    let e = MethodSpec::parse("spec_cascade_chow", Some(1.5)).unwrap_err().to_string();
    assert!(e.contains("[0, 1]"), "{e}");
    let e = MethodSpec::parse("spec_decode_lossy", Some(1.0)).unwrap_err().to_string();
    assert!(e.contains("[0, 1)"), "{e}");
    assert!(MethodSpec::parse("spec_cascade_opt", Some(-40.0)).is_ok());
    assert!(MethodSpec::parse("spec_cascade_diff", None).is_err());
    assert!(MethodSpec::parse("spec_decode", Some(0.2)).is_err());
}

/// A model wrapper that misbehaves on its `n`-th extend call.
struct Faulty<'m> {
    inner: &'m dyn LanguageModel,
    fault: Fault,
}
#[derive(Clone, Copy)]
enum Fault {
    WrongLength,
    NaN,
    WrongRows,
}
struct FaultySession<'a> {
    inner: Box<dyn Session + 'a>,
    fault: Fault,
    calls: usize,
}
impl LanguageModel for Faulty<'_> {
    fn name(&self) -> &str {
        "faulty"
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn eos_ids(&self) -> &[TokenId] {
        self.inner.eos_ids()
    }
    fn start<'a>(&'a self, prompt: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        let (inner, last) = self.inner.start(prompt)?;
        Ok((Box::new(FaultySession { inner, fault: self.fault, calls: 0 }), last))
    }
}
impl Session for FaultySession<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        let l = self.inner.extend(tokens)?;
        self.calls += 1;
        if self.calls < 3 {
            return Ok(l);
        }
        let (rows, vocab) = (l.rows(), l.vocab());
        let mut data = l.into_vec();
        Ok(match self.fault {
            Fault::WrongLength => Logits::new(rows, vocab - 1, data[..rows * (vocab - 1)].to_vec())?,
            Fault::NaN => {
                data[rows * vocab / 2] = f32::NAN;
                Logits::new(rows, vocab, data)?
            }
            Fault::WrongRows => Logits::new(rows + 1, vocab, [data.clone(), data[..vocab].to_vec()].concat())?,
        })
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.truncate(len)
    }
}

#[test]
fn misbehaving_models_give_errors_not_panics() {
    let pair = SyntheticPair::default_with_vocab(64, 1);
    for fault in [Fault::WrongLength, Fault::NaN, Fault::WrongRows] {
        let bad = Faulty { inner: &pair.verifier, fault };
        for m in ["spec_decode", "verifier", "token_cascade_chow", "oracle_cascade_diff"] {
            let a = MethodSpec::new(Method::from_name(m).unwrap(), Method::from_name(m).unwrap().alpha_range().map(|_| 0.5)).unwrap();
            let c = cfg(a, 0, 40);
            let e = decode(&pair.drafter, &bad, &[1, 2], &c, None).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("faulty"), "{m}: {msg}");
        }
    }
    let other = SyntheticPair::default_with_vocab(65, 1);
    let e = decode(&pair.drafter, &other.verifier, &[1], &cfg(spec("spec_decode", None), 0, 4), None).unwrap_err();
    assert!(matches!(e, DecodeError::VocabMismatch { .. }), "{e}");
}
