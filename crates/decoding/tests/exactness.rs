//! Each method emits exactly its target π (methods.md): statistical tests over 20 000 seeds.
//!
//! For a fixed prompt we decode two tokens per seed and compare the joint law of (y₁, y₂) with
//! π₁(y₁)·π₂(y₂ | y₁), computed from the same models' distributions by the core's `Target::pi`.
//! y₂ lies inside the first block after an acceptance, or opens a new block after a rejection; the
//! second case is also tested on its own (conditioning on a rejection at position 1). Chi-square
//! with cells of expected count < 5 pooled; the false-alarm rate of each assertion is 1e-6.

mod common;

use common::{assert_fits, chi2_threshold_1e6, chi_square};
use speccascade_core::synthetic::SyntheticPair;
use speccascade_core::{LanguageModel, Sampling, TokenDist, TokenId};
use speccascade_decoding::{Bonus, DecodeConfig, Method, MethodSpec, Source, decode};

const SEEDS: u64 = 20_000;
const V: usize = 8;

fn pair() -> SyntheticPair {
    SyntheticPair::new(V, 11, 1.6, 0.3).without_eos()
}

/// π at the position after `prefix` for `spec`, as a dense vector.
fn pi(pair: &SyntheticPair, spec: MethodSpec, sampling: &Sampling, prefix: &[TokenId]) -> Vec<f64> {
    let q = TokenDist::from_vec(pair.drafter.logits(prefix), sampling).unwrap();
    let p = TokenDist::from_vec(pair.verifier.logits(prefix), sampling).unwrap();
    let q_only = || q.probs().iter().map(|&x| x as f64).collect::<Vec<_>>();
    let p_only = || p.probs().iter().map(|&x| x as f64).collect::<Vec<_>>();
    let a = spec.alpha.unwrap_or(0.0);
    match spec.method {
        Method::Drafter => q_only(),
        Method::Verifier => p_only(),
        Method::TokenCascadeChow => {
            if speccascade_core::ChowRule::new(a).unwrap().defers(&q) { p_only() } else { q_only() }
        }
        Method::OracleCascadeDiff => {
            if speccascade_core::DiffRule::new(a).unwrap().defers(&q, &p) { p_only() } else { q_only() }
        }
        _ => spec.rule().unwrap().unwrap().target(&q, &p).pi(&q, &p),
    }
}

struct Case {
    spec: MethodSpec,
    gamma: usize,
    sampling: Sampling,
    bonus: Bonus,
}

/// The joint counts of (y₁, y₂) over the seeds and their expectation under π₁(y₁)·π₂(y₂ | y₁);
/// likewise after a rejection at position 1 (with the number of such rejections).
struct Counts {
    label: String,
    joint: Vec<f64>,
    expected: Vec<f64>,
    after_reject: Vec<f64>,
    expected_after_reject: Vec<f64>,
    rejected: f64,
}

fn run_case(pair: &SyntheticPair, prompt: &[TokenId], case: &Case) {
    let c = count_case(pair, prompt, case);
    assert_fits(&format!("{}: joint law of (y1, y2)", c.label), &c.joint, &c.expected);
    if c.rejected >= 200.0 {
        assert_fits(&format!("{}: y2 after a rejection at y1", c.label), &c.after_reject, &c.expected_after_reject);
    }
}

fn count_case(pair: &SyntheticPair, prompt: &[TokenId], case: &Case) -> Counts {
    let label = format!(
        "{} γ={} T={} top_p={} bonus={} prompt={prompt:?}",
        case.spec.label(),
        case.gamma,
        case.sampling.temperature,
        case.sampling.top_p,
        case.bonus
    );
    let mut joint = vec![0f64; V * V];
    let mut after_reject = vec![0f64; V * V];
    let mut first_rejected = vec![0f64; V];
    for seed in 0..SEEDS {
        let mut cfg = DecodeConfig::new(case.spec);
        cfg.gamma = case.gamma;
        cfg.sampling = case.sampling;
        cfg.bonus = case.bonus;
        cfg.seed = seed;
        cfg.max_new_tokens = 2;
        cfg.trace = true;
        let g = decode(&pair.drafter, &pair.verifier, prompt, &cfg, None).unwrap();
        assert_eq!(g.tokens.len(), 2, "{label}: no EOS in this pair, two tokens expected");
        let (y1, y2) = (g.tokens[0] as usize, g.tokens[1] as usize);
        joint[y1 * V + y2] += 1.0;
        if g.trace.as_ref().unwrap()[0].source == Source::Residual {
            after_reject[y1 * V + y2] += 1.0;
            first_rejected[y1] += 1.0;
        }
    }
    let pi1 = pi(pair, case.spec, &case.sampling, prompt);
    let mut expected = vec![0f64; V * V];
    let mut expected_after_reject = vec![0f64; V * V];
    for y1 in 0..V {
        let mut prefix = prompt.to_vec();
        prefix.push(y1 as TokenId);
        let pi2 = pi(pair, case.spec, &case.sampling, &prefix);
        for y2 in 0..V {
            expected[y1 * V + y2] = SEEDS as f64 * pi1[y1] * pi2[y2];
            expected_after_reject[y1 * V + y2] = first_rejected[y1] * pi2[y2];
        }
    }
    let rejected: f64 = first_rejected.iter().sum();
    Counts { label, joint, expected, after_reject, expected_after_reject, rejected }
}

fn specs() -> Vec<MethodSpec> {
    let s = |m: &str, a: Option<f64>| MethodSpec::parse(m, a).unwrap();
    vec![
        s("spec_decode", None),
        s("spec_decode_lossy", Some(0.3)),
        s("spec_decode_lossy", Some(0.8)),
        s("spec_cascade_chow", Some(0.3)),
        s("spec_cascade_chow", Some(0.6)),
        s("spec_cascade_diff", Some(-0.1)),
        s("spec_cascade_diff", Some(0.15)),
        s("spec_cascade_opt", Some(0.5)),
        s("spec_cascade_opt", Some(3.0)),
        s("spec_cascade_token_v1", Some(0.1)),
        s("spec_cascade_token_v1", Some(0.4)),
        s("spec_cascade_token_v2", Some(0.1)),
        s("spec_cascade_token_v2", Some(0.4)),
        s("spec_cascade_token_v3", Some(0.3)),
        s("spec_cascade_token_v3", Some(0.8)),
        // BiLD*: D = −ln p̂(argmax q̂) ∈ [0.3, 1.6] on this pair; α beyond 1 is valid.
        s("bild", Some(0.5)),
        s("bild", Some(1.2)),
    ]
}

/// Several prompts, so that each rule meets both of its decisions at the tested positions.
const PROMPTS: [&[TokenId]; 3] = [&[1, 2], &[3, 5], &[7, 4, 6]];

#[test]
fn speculative_methods_emit_their_target_gamma3() {
    let pair = pair();
    for spec in specs() {
        for prompt in PROMPTS {
            let case = Case { spec, gamma: 3, sampling: Sampling::default(), bonus: Bonus::Exact };
            run_case(&pair, prompt, &case);
        }
    }
}

/// γ = 1: the second token is the bonus position (after an accepted first draft). With the exact
/// bonus it is verified like the others, so it follows π for every rule; with no bonus the second
/// token opens a new block, so it follows π too; the free bonus follows π for lossless decoding.
#[test]
fn bonus_modes_gamma1() {
    let pair = pair();
    for bonus in [Bonus::Exact, Bonus::None] {
        for spec in specs() {
            let case = Case { spec, gamma: 1, sampling: Sampling::default(), bonus };
            run_case(&pair, PROMPTS[0], &case);
        }
    }
    for prompt in PROMPTS {
        let case = Case { spec: MethodSpec::parse("spec_decode", None).unwrap(), gamma: 1, sampling: Sampling::default(), bonus: Bonus::Free };
        run_case(&pair, prompt, &case);
    }
}

/// The reason for the default: with the free bonus a cascade's second token at γ = 1 comes from p
/// after every accepted draft, not from π. The test detects it (a failure to detect would mean the
/// test has no power, or the free bonus was silently replaced).
#[test]
fn free_bonus_misses_a_cascade_target() {
    let pair = pair();
    let spec = MethodSpec::parse("spec_cascade_chow", Some(0.6)).unwrap();
    let case = Case { spec, gamma: 1, sampling: Sampling::default(), bonus: Bonus::Free };
    let c = count_case(&pair, PROMPTS[0], &case);
    let (stat, df) = chi_square(&c.joint, &c.expected);
    assert!(stat > 10.0 * chi2_threshold_1e6(df), "{}: chi-square {stat:.1} (df {df}) should reject π", c.label);
}

#[test]
fn temperature_and_top_p() {
    let pair = pair();
    for (t, top_p) in [(0.6f32, 1.0f32), (1.3, 0.85)] {
        for spec in [specs()[0], specs()[4], specs()[7], specs()[10], specs()[14]] {
            let case = Case { spec, gamma: 2, sampling: Sampling::new(t, top_p).unwrap(), bonus: Bonus::Exact };
            run_case(&pair, PROMPTS[2], &case);
        }
    }
}

#[test]
fn sequential_methods_emit_their_target() {
    let pair = pair();
    let s = |m: &str, a: Option<f64>| MethodSpec::parse(m, a).unwrap();
    for spec in [
        s("drafter", None),
        s("verifier", None),
        s("token_cascade_chow", Some(0.4)),
        s("token_cascade_chow", Some(0.7)),
        s("oracle_cascade_diff", Some(0.1)),
    ] {
        for prompt in PROMPTS {
            let case = Case { spec, gamma: 1, sampling: Sampling::default(), bonus: Bonus::Free };
            run_case(&pair, prompt, &case);
        }
    }
}

/// The rejection probability at the first position is TV(q, π).
#[test]
fn rejection_probability_is_tv_q_pi() {
    let pair = pair();
    let prompt: &[TokenId] = &[1, 2];
    for spec in specs() {
        let q = TokenDist::from_vec(pair.drafter.logits(prompt), &Sampling::default()).unwrap();
        let pi1 = pi(&pair, spec, &Sampling::default(), prompt);
        let tv: f64 = (0..V).map(|v| (q.probs()[v] as f64 - pi1[v]).max(0.0)).sum();
        let mut rejected = 0f64;
        for seed in 0..SEEDS {
            let mut cfg = DecodeConfig::new(spec);
            cfg.gamma = 1;
            cfg.seed = seed;
            cfg.max_new_tokens = 1;
            cfg.trace = true;
            let g = decode(&pair.drafter, &pair.verifier, prompt, &cfg, None).unwrap();
            if g.trace.unwrap()[0].accepted == Some(false) {
                rejected += 1.0;
            }
        }
        assert_fits(
            &format!("{}: rejection rate vs TV(q, π) = {tv:.4}", spec.label()),
            &[rejected, SEEDS as f64 - rejected],
            &[SEEDS as f64 * tv, SEEDS as f64 * (1.0 - tv)],
        );
    }
}

/// The ledger's rejection rate (rejected ÷ examined draft positions) estimates the mean TV(q, π)
/// over the examined positions: over whole decodes (γ = 3, 8 tokens, so blocks are cut by
/// rejections and drafts after a rejection are discarded unexamined), the rejections counted by
/// the ledger match Σ TV(q_j, π_j) over the positions it examined, within 5 standard deviations
/// (a sum of conditionally independent Bernoulli(TV) draws). The old denominator, drafted
/// positions, counts the discarded drafts too and is larger wherever a block was cut.
#[test]
fn ledger_rejection_rate_is_rejected_over_examined_and_tracks_tv() {
    let pair = pair();
    let s = Sampling::default();
    for spec in specs() {
        for bonus in [Bonus::Exact, Bonus::None] {
            let (mut rejected, mut examined, mut drafted, mut sum_tv, mut var) = (0u64, 0u64, 0u64, 0.0f64, 0.0f64);
            for seed in 0..4000 {
                let mut cfg = DecodeConfig::new(spec);
                cfg.gamma = 3;
                cfg.bonus = bonus;
                cfg.seed = seed;
                cfg.max_new_tokens = 8;
                cfg.trace = true;
                let prompt = PROMPTS[(seed % 3) as usize];
                let g = decode(&pair.drafter, &pair.verifier, prompt, &cfg, None).unwrap();
                let l = &g.ledger;
                let trace = g.trace.unwrap();
                let examined_here = trace.iter().filter(|r| r.accepted.is_some()).count() as u64;
                assert_eq!(l.examined(), examined_here, "{}: examined positions = trace rows with a verdict", spec.label());
                assert_eq!(l.rejected, trace.iter().filter(|r| r.accepted == Some(false)).count() as u64);
                for r in trace.iter().filter(|r| r.accepted.is_some()) {
                    let mut prefix = prompt.to_vec();
                    prefix.extend_from_slice(&g.tokens[..r.position as usize]);
                    let q = TokenDist::from_vec(pair.drafter.logits(&prefix), &s).unwrap();
                    let pi_t = pi(&pair, spec, &s, &prefix);
                    let tv: f64 = (0..V).map(|v| (q.probs()[v] as f64 - pi_t[v]).max(0.0)).sum();
                    sum_tv += tv;
                    var += tv * (1.0 - tv);
                }
                rejected += l.rejected;
                examined += l.examined();
                drafted += l.drafted;
            }
            let what = format!("{} bonus={bonus}", spec.label());
            let z = (rejected as f64 - sum_tv) / var.max(1e-9).sqrt();
            assert!(z.abs() < 5.0, "{what}: {rejected} rejections, Σ TV(q, π) = {sum_tv:.1} (z = {z:.2})");
            let mut total = speccascade_core::Ledger::default();
            total.rejected = rejected;
            total.position_attempts = vec![examined];
            assert_eq!(total.rejection_rate(), rejected as f64 / examined as f64);
            if rejected > 0 {
                assert!(drafted > examined, "{what}: rejections cut blocks, so some drafts go unexamined");
            }
        }
    }
    let _ = pair.verifier.vocab_size();
}
