//! Each method emits exactly its target π (methods.md): statistical tests over 20 000 seeds.
//!
//! For a fixed prompt we decode two tokens per seed and compare the joint law of (y₁, y₂) with
//! π₁(y₁)·π₂(y₂ | y₁), computed from the same models' distributions by the core's `Target::pi`.
//! y₂ lies inside the first block after an acceptance, or opens a new block after a rejection; the
//! second case is also tested on its own (conditioning on a rejection at position 1). Chi-square
//! with cells of expected count < 5 pooled; the false-alarm rate of each assertion is 1e-6.

mod common;

use common::assert_fits;
use speccascade_core::synthetic::SyntheticPair;
use speccascade_core::{LanguageModel, Sampling, TokenDist, TokenId};
use speccascade_decoding::{DecodeConfig, Method, MethodSpec, Source, decode};

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
    exact_bonus: bool,
}

fn run_case(pair: &SyntheticPair, prompt: &[TokenId], case: &Case) {
    let label = format!(
        "{} γ={} T={} top_p={} exact_bonus={} prompt={prompt:?}",
        case.spec.label(),
        case.gamma,
        case.sampling.temperature,
        case.sampling.top_p,
        case.exact_bonus
    );
    let mut joint = vec![0f64; V * V];
    let mut after_reject = vec![0f64; V * V];
    let mut first_rejected = vec![0f64; V];
    for seed in 0..SEEDS {
        let mut cfg = DecodeConfig::new(case.spec);
        cfg.gamma = case.gamma;
        cfg.sampling = case.sampling;
        cfg.exact_bonus = case.exact_bonus;
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
    assert_fits(&format!("{label}: joint law of (y1, y2)"), &joint, &expected);
    let rejected: f64 = first_rejected.iter().sum();
    if rejected >= 200.0 {
        assert_fits(&format!("{label}: y2 after a rejection at y1"), &after_reject, &expected_after_reject);
    }
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
        s("bild", Some(0.2)),
        s("bild", Some(0.5)),
    ]
}

/// Several prompts, so that each rule meets both of its decisions at the tested positions.
const PROMPTS: [&[TokenId]; 3] = [&[1, 2], &[3, 5], &[7, 4, 6]];

#[test]
fn speculative_methods_emit_their_target_gamma3() {
    let pair = pair();
    for spec in specs() {
        for prompt in PROMPTS {
            let case = Case { spec, gamma: 3, sampling: Sampling::default(), exact_bonus: true };
            run_case(&pair, prompt, &case);
        }
    }
}

/// γ = 1: the second token is the bonus position. With the exact bonus it is verified like the
/// others, so it follows π for every rule; lossless decoding also with the free bonus.
#[test]
fn bonus_position_gamma1() {
    let pair = pair();
    for spec in specs() {
        let case = Case { spec, gamma: 1, sampling: Sampling::default(), exact_bonus: true };
        run_case(&pair, PROMPTS[0], &case);
    }
    let case = Case { spec: MethodSpec::parse("spec_decode", None).unwrap(), gamma: 1, sampling: Sampling::default(), exact_bonus: false };
    run_case(&pair, PROMPTS[1], &case);
}

#[test]
fn temperature_and_top_p() {
    let pair = pair();
    for (t, top_p) in [(0.6f32, 1.0f32), (1.3, 0.85)] {
        for spec in [specs()[0], specs()[4], specs()[7], specs()[10], specs()[14]] {
            let case = Case { spec, gamma: 2, sampling: Sampling::new(t, top_p).unwrap(), exact_bonus: true };
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
            let case = Case { spec, gamma: 1, sampling: Sampling::default(), exact_bonus: false };
            run_case(&pair, prompt, &case);
        }
    }
}

/// The rejection probability at the first position is TV(q, π).
#[test]
fn rejection_rate_is_tv_q_pi() {
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
    let _ = pair.verifier.vocab_size();
}
