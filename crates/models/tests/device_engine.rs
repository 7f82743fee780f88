//! The device engine (`speccascade_models::burn_lm`) against the host kernels: the same model
//! code on burn's flex CPU backend always, and on wgpu when the crate is built with `--features
//! wgpu` (CI runs it on Mesa's lavapipe). Checked per decoder family (llama, qwen2 with Q/K/V
//! biases, Gemma 1/2/3 with their norms, soft-caps and sliding windows, T5 and T5 v1.1 with relative
//! position biases and cross-attention):
//! - every position's logits (prefill, one at a time, in a block, after a rollback) within the
//!   dtype's tolerance of the host's f32 logits;
//! - greedy tokens equal to the host's, and to transformers' `generate()` for the paper fixtures;
//! - `spec_decode` at T = 0 on the device equal to the verifier's greedy output;
//! - the copy of logits to the host is timed and lands in the ledger.
//!
//! Needs no downloads: the llama/qwen2 checkpoints come from `tests/py/reference_forward.py
//! --make-tiny`, the Gemma and T5 ones are committed under tests/fixtures/paper.

mod transformer_support;

use std::path::{Path, PathBuf};

use burn::tensor::DType;
use speccascade_core::LanguageModel;
use speccascade_models::burn_lm::{DeviceChoice, TensorEngine};
use speccascade_models::registry::ModelLocation;
use speccascade_models::transformer::{Precision, TransformerOptions, load_model};
use transformer_support::{argmax, make_tiny, max_rel_err};

/// Engines under test: flex always; wgpu where built in. `SPECCASCADE_REQUIRE_WGPU=1` (CI) turns
/// a missing adapter into a failure instead of a skip.
fn engines(dtype: DType) -> Vec<TensorEngine> {
    let mut out = vec![TensorEngine::open(&DeviceChoice::Flex, dtype).unwrap()];
    match TensorEngine::open(&DeviceChoice::Wgpu, dtype) {
        Ok(e) => out.push(e),
        Err(e) if std::env::var("SPECCASCADE_REQUIRE_WGPU").as_deref() == Ok("1") => {
            panic!("SPECCASCADE_REQUIRE_WGPU=1 but {e}")
        }
        Err(e) => eprintln!("skipping the wgpu engine: {e}"),
    }
    out
}

fn load(dir: &Path, engine: Option<&TensorEngine>) -> Box<dyn LanguageModel> {
    // The tiny checkpoints have no tokenizer.json: name the files rather than resolve the directory.
    let loc = ModelLocation::HfDir {
        dir: dir.to_path_buf(),
        config: dir.join("config.json"),
        weights: vec![dir.join("model.safetensors")],
        tokenizer: dir.join("tokenizer.json"),
    };
    let opts = TransformerOptions { precision: Precision::F32, max_seq_len: 96, engine: engine.cloned(), ..Default::default() };
    load_model(&loc, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).model
}

/// Logits after the conditioning (a decoder-only prompt, or a T5 encoder input) and after each
/// continuation token, one token at a time; then the same rows again from one block after rolling
/// back to two continuation tokens (the rollback path of a rejected draft).
fn rows(m: &dyn LanguageModel, cond: &[u32], cont: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let (mut s, first) = m.start(cond).unwrap();
    let mut one = first;
    for &t in cont {
        one.extend(s.extend(&[t]).unwrap().into_vec());
    }
    s.truncate(2).unwrap();
    let mut block = one[..3 * m.vocab_size()].to_vec();
    block.extend(s.extend(&cont[2..]).unwrap().into_vec());
    (one, block)
}

fn greedy(m: &dyn LanguageModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let (mut s, mut last) = m.start(prompt).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(&last);
        out.push(t);
        last = s.extend(&[t]).unwrap().into_vec();
    }
    out
}

/// The tolerance of a dtype against f32, relative to the row's largest logit.
fn tolerance(dtype: DType) -> f32 {
    match dtype {
        DType::F32 => 1e-4,
        _ => 3e-2,
    }
}

/// `cond` conditions (prompt or encoder input); `cont` continues it; greedy decoding starts from
/// `prompt`.
fn check_family(label: &str, dir: &Path, cond: &[u32], cont: &[u32], prompt: &[u32]) {
    let host = load(dir, None);
    let vocab = host.vocab_size();
    let (want, _) = rows(host.as_ref(), cond, cont);
    let want_greedy = greedy(host.as_ref(), prompt, 24);
    for dtype in [DType::F32, DType::F16] {
        for e in engines(dtype) {
            let m = load(dir, Some(&e));
            let (one, block) = rows(m.as_ref(), cond, cont);
            let (err_one, err_block) = (max_rel_err(&one, &want, vocab), max_rel_err(&block, &want, vocab));
            // Reported, not required: burn picks reduction orders by shape (README, "GPUs").
            let same_bits = one == block;
            eprintln!("{label} on {} {dtype:?}: one at a time {err_one:.2e}, block {err_block:.2e}; block = steps bit for bit: {same_bits}", e.label);
            let tol = tolerance(dtype);
            assert!(err_one <= tol && err_block <= tol, "{label} on {} {dtype:?}: logits off by {err_one:.2e} / {err_block:.2e} (tolerance {tol:.0e})", e.label);
            if dtype == DType::F32 {
                assert_eq!(greedy(m.as_ref(), prompt, 24), want_greedy, "{label} on {}: greedy tokens differ from the host's", e.label);
            }
        }
    }
}

#[test]
fn the_llama_family_on_the_device_matches_the_host_kernels() {
    let seq: Vec<u32> = (0..40u32).map(|i| (i * 37 + 11) % 128).collect();
    for arch in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().unwrap();
        make_tiny(dir.path(), arch, "f32", 1, 5);
        check_family(&format!("tiny {arch}"), dir.path(), &seq[..1], &seq[1..], &seq[..7]);
    }
}

fn paper_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paper").join(name)
}

#[test]
fn gemma_1_2_3_and_t5_on_the_device_match_the_host_kernels_and_transformers() {
    for family in ["gemma", "gemma2", "gemma3", "t5", "t5_v1_1"] {
        let dir = paper_fixture(family);
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        let ids = |v: &serde_json::Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
        let case = &json["inputs"][0];
        let (prompt, generated) = (ids(&case["ids"]), ids(&case["generated"]));
        if family.starts_with("t5") {
            // The encoder input conditions; the decoder continues from its start token.
            check_family(family, &dir, &prompt, &generated, &prompt);
        } else {
            // Longer than the fixtures' sliding windows: local layers must mask.
            let seq: Vec<u32> = prompt.iter().chain(&generated).copied().collect();
            check_family(family, &dir, &seq[..1], &seq[1..], &prompt);
        }
        for e in engines(DType::F32) {
            let m = load(&dir, Some(&e));
            assert_eq!(greedy(m.as_ref(), &prompt, generated.len()), generated, "{family} on {}: greedy tokens differ from transformers' generate()", e.label);
        }
    }
}

#[test]
fn spec_decode_on_the_device_is_the_verifiers_greedy_output_and_times_the_copies() {
    use speccascade_decoding::{DecodeConfig, MethodSpec, decode};
    let (dd, vd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_tiny(dd.path(), "qwen2", "f32", 1, 11);
    make_tiny(vd.path(), "qwen2", "f32", 1, 12);
    let prompt: Vec<u32> = vec![3, 17, 42, 99, 5];
    for e in engines(DType::F32) {
        let (drafter, verifier) = (load(dd.path(), Some(&e)), load(vd.path(), Some(&e)));
        let run = |method: &str| {
            let mut cfg = DecodeConfig::new(MethodSpec::parse(method, None).unwrap());
            cfg.gamma = 4;
            cfg.max_new_tokens = 40;
            cfg.sampling = speccascade_core::Sampling::new(0.0, 1.0).unwrap();
            decode(drafter.as_ref(), verifier.as_ref(), &prompt, &cfg, None).unwrap()
        };
        let (alone, spec) = (run("verifier"), run("spec_decode"));
        assert_eq!(spec.tokens, alone.tokens, "spec_decode on {} differs from the verifier alone", e.label);
        assert!(spec.ledger.verifier_calls < alone.ledger.verifier_calls, "spec_decode accepted nothing on {}", e.label);
        let l = &spec.ledger;
        assert!(l.transfer_s > 0.0, "the copies of logits to the host were not timed on {}", e.label);
        assert!(l.overhead_s >= l.transfer_s * 0.999, "transfer {} s is not inside the overhead {} s", l.transfer_s, l.overhead_s);
        eprintln!("spec_decode on {}: {} tokens, {} verifier calls, transfer {:.2e} s", e.label, spec.tokens.len(), l.verifier_calls, l.transfer_s);
    }
}

#[test]
fn device_choices_and_dtypes_are_checked() {
    use speccascade_models::burn_lm::parse_dtype;
    assert_eq!("cuda:3".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(3));
    assert_eq!("cuda".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
    let e = "tpu".parse::<DeviceChoice>().unwrap_err();
    assert!(e.contains("cpu, flex, wgpu, cuda or cuda:N"), "{e}");
    assert!("cuda:x".parse::<DeviceChoice>().is_err());
    assert_eq!(parse_dtype("native", &DeviceChoice::Cuda(0)).unwrap(), DType::BF16);
    assert_eq!(parse_dtype("native", &DeviceChoice::Wgpu).unwrap(), DType::F16);
    let e = parse_dtype("bf16", &DeviceChoice::Wgpu).unwrap_err();
    assert!(e.contains("no bf16"), "{e}");
    let e = parse_dtype("q8", &DeviceChoice::Flex).unwrap_err();
    assert!(e.contains("f32, f16 or bf16"), "{e}");
}
