//! The decoder on the real GGUF models against the numpy reference (f32) and its greedy tokens.
//!
//! Needs the fetched models (`speccascade models fetch NAME`; set SPECCASCADE_SKIP_MODEL_TESTS=1 to
//! skip when they are absent) and the Python reference (`.ci/python-env.sh`, SPECCASCADE_PYTHON).
//! The 1.5B tests (parity, block invariance, spec_decode) are `#[ignore]`d, never silently passed:
//! `cargo test --release --workspace --test transformer_real -- --ignored`.

mod transformer_support;

use std::path::Path;

use speccascade_core::LanguageModel;
use speccascade_models::transformer::{Precision, Transformer, TransformerOptions, load_gguf};
use transformer_support::{argmax, assert_block_invariant, cached_model, max_rel_err, reference};

const SMOLLM: (&str, &str) = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
const QWEN_05: (&str, &str) = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
const QWEN_15: (&str, &str) = ("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");

fn load(path: &Path, p: Precision) -> Transformer {
    let opts = TransformerOptions { precision: p, max_seq_len: 1024, ..Default::default() };
    load_gguf(path, &path.display().to_string(), &opts).unwrap_or_else(|e| panic!("{e}"))
}

/// Every position's logits of `prompt`, the first token through `start`, the rest as one block.
fn all_logits(m: &Transformer, prompt: &[u32]) -> Vec<f32> {
    let (mut s, mut out) = m.start(&prompt[..1]).unwrap();
    out.extend(s.extend(&prompt[1..]).unwrap().into_vec());
    out
}

fn parity(model: (&str, &str), prompts: &[Vec<u32>]) {
    let Some(path) = cached_model(model.0, model.1) else { return };
    let m = load(&path, Precision::F32);
    let r = reference("--gguf", &path, prompts, 0);
    assert_eq!(m.vocab_size(), r.vocab);
    for (i, p) in prompts.iter().enumerate() {
        let got = all_logits(&m, p);
        let err = max_rel_err(&got, &r.logits[i], r.vocab);
        eprintln!("{}: prompt {i} ({} tokens): max relative logit error {err:.2e}", model.0, p.len());
        assert!(err < 1e-3, "{}: prompt {i}: logits differ from the numpy reference by {err}", model.0);
    }
}

#[test]
fn smollm2_logits_match_numpy_reference() {
    parity(
        SMOLLM,
        &[
            vec![1604, 3987, 46477, 24, 94, 727, 2367],
            vec![504, 3575, 282, 4649, 314],
            vec![1, 4093, 198, 19161, 253, 421, 30614, 563, 15744, 30, 2, 198, 1, 520, 9531, 198],
        ],
    );
}

#[test]
fn qwen05_logits_match_numpy_reference() {
    parity(
        QWEN_05,
        &[
            vec![750, 75698, 1445, 982, 257],
            vec![785, 6722, 315, 9625, 374],
            vec![151644, 872, 198, 7985, 264, 6386, 38242, 911, 23071, 13, 151645, 198, 151644, 77091, 198],
        ],
    );
}

#[test]
#[ignore = "opt-in (needs ~10 GB and the fetched 1.5B): cargo test --release --workspace --test transformer_real --test gguf_parity -- --ignored opt_in"]
fn qwen15_logits_match_numpy_reference_opt_in() {
    parity(QWEN_15, &[vec![750, 75698, 1445, 982, 257]]);
}

fn greedy(m: &Transformer, prompt: &[u32], n: usize) -> Vec<u32> {
    let (mut s, mut logits) = m.start(prompt).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(&logits);
        out.push(t);
        logits = s.extend(&[t]).unwrap().into_vec();
    }
    out
}

/// Token ids of three HumanEval prompts (HumanEval/2, /23, /53) for the Qwen2.5 tokenizer.
pub fn humaneval_prompt_ids() -> Vec<Vec<u32>> {
    include!("transformer_support/humaneval_qwen_ids.in")
}

#[test]
fn qwen05_greedy_humaneval_matches_reference_f32_q8_and_f16() {
    let Some(path) = cached_model(QWEN_05.0, QWEN_05.1) else { return };
    let prompts = humaneval_prompt_ids();
    let r = reference("--gguf", &path, &prompts, 16);
    let f32m = load(&path, Precision::F32);
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(greedy(&f32m, p, 16), r.greedy[i], "f32 greedy tokens of HumanEval prompt {i}");
    }
    drop(f32m);
    let q8 = load(&path, Precision::Q8);
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(greedy(&q8, p, 16), r.greedy[i], "8-bit greedy tokens of HumanEval prompt {i}");
    }
    drop(q8);
    let f16 = load(&path, Precision::F16);
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(greedy(&f16, p, 16), r.greedy[i], "f16 greedy tokens of HumanEval prompt {i}");
    }
}

/// A 48-token sequence from a HumanEval prompt (ordinary code tokens).
fn invariance_sequence() -> Vec<u32> {
    humaneval_prompt_ids()[0][..48].to_vec()
}

#[test]
fn qwen05_logits_do_not_depend_on_batching_at_any_precision() {
    let Some(path) = cached_model(QWEN_05.0, QWEN_05.1) else { return };
    let seq = invariance_sequence();
    for p in [Precision::Q8, Precision::F16, Precision::F32] {
        let m = load(&path, p);
        assert_block_invariant(&m, &format!("{} {p}", QWEN_05.0), &seq, 4, 8, 11);
    }
}

/// The 1.5B at q8 and f16 (f32 would need ~7 GB):
/// `cargo test --release --workspace --test transformer_real -- --ignored qwen15_logits_do_not_depend`.
#[test]
#[ignore = "loads the 1.5B (~2.5 GB at q8); run with -- --ignored"]
fn qwen15_logits_do_not_depend_on_batching_q8_f16() {
    let Some(path) = cached_model(QWEN_15.0, QWEN_15.1) else { return };
    let seq = invariance_sequence();
    for p in [Precision::Q8, Precision::F16] {
        let m = load(&path, p);
        assert_block_invariant(&m, &format!("{} {p}", QWEN_15.0), &seq, 3, 8, 13);
    }
}

/// Issue 10's near-tie: on this prompt the q8 1.5B alone used to emit 264 at position 16 where
/// `spec_decode` (γ = 1 or 4, T = 0, 0.5B drafter) emitted 293. With block-invariant kernels
/// the lossless method must reproduce the verifier's greedy tokens exactly.
/// `cargo test --release --workspace --test transformer_real -- --ignored spec_decode_equals`.
#[test]
#[ignore = "loads the 0.5B and the 1.5B at q8; run with -- --ignored"]
fn spec_decode_equals_verifier_greedy_on_the_q8_near_tie() {
    use speccascade_decoding::{DecodeConfig, MethodSpec, decode};
    let (Some(dp), Some(vp)) = (cached_model(QWEN_05.0, QWEN_05.1), cached_model(QWEN_15.0, QWEN_15.1)) else { return };
    let file = speccascade_models::gguf::GgufFile::open(&vp).unwrap();
    let tok = speccascade_models::tokenizer::Tokenizer::from_gguf(&file).unwrap();
    let prompt = tok
        .encode_prompt("def median_of_three(a, b, c):\n    \"\"\"Return the median of three numbers.\"\"\"\n", true)
        .unwrap();
    let (drafter, verifier) = (load(&dp, Precision::Q8), load(&vp, Precision::Q8));
    let n = 32;
    let alone = greedy(&verifier, &prompt, n);
    eprintln!("verifier alone: {alone:?}");
    for gamma in [1, 4] {
        let mut cfg = DecodeConfig::new(MethodSpec::parse("spec_decode", None).unwrap());
        cfg.gamma = gamma;
        cfg.max_new_tokens = n;
        cfg.sampling = speccascade_core::Sampling::new(0.0, 1.0).unwrap();
        let g = decode(&drafter, &verifier, &prompt, &cfg, None).unwrap();
        eprintln!("spec_decode gamma {gamma}: {:?}", g.tokens);
        let common = g.tokens.len().min(alone.len());
        assert!(common > 16, "too few tokens to reach the near-tie at position 16");
        assert_eq!(g.tokens[..common], alone[..common], "spec_decode (gamma {gamma}) differs from the verifier alone");
    }
}
