//! The decoder on small random HF checkpoints written by the numpy reference: logits parity,
//! block vs single-token forwards, truncate/re-extend, loader errors. Needs no downloads.

mod transformer_support;

use std::path::Path;

use speccascade_core::{LanguageModel, ModelError};
use speccascade_models::safetensors_load::load_hf_dir;
use speccascade_models::transformer::{Precision, Transformer, TransformerOptions};
use transformer_support::{max_rel_err, reference, run_reference};

fn make_tiny(dir: &Path, arch: &str, dtype: &str, shards: usize) {
    run_reference(&[
        "--make-tiny",
        dir.to_str().unwrap(),
        "--arch",
        arch,
        "--dtype",
        dtype,
        "--shards",
        &shards.to_string(),
        "--seed",
        "3",
    ]);
}

fn opts(p: Precision) -> TransformerOptions {
    TransformerOptions { precision: p, max_seq_len: 64, ..Default::default() }
}

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![1, 17, 33, 4, 99, 127, 0, 5, 5, 60], vec![42], vec![7, 8, 9, 10, 11, 12, 13]]
}

fn check_parity(arch: &str, dtype: &str, shards: usize) {
    let dir = tempfile::tempdir().unwrap();
    make_tiny(dir.path(), arch, dtype, shards);
    let model = load_hf_dir(dir.path(), "tiny", &opts(Precision::F32)).unwrap();
    let reference = reference("--hf", dir.path(), &prompts(), 6);
    assert_eq!(model.vocab_size(), reference.vocab);
    for (i, p) in prompts().iter().enumerate() {
        let (mut s, last) = model.start(&p[..1]).unwrap();
        let mut got = last.clone();
        if p.len() > 1 {
            got.extend(s.extend(&p[1..]).unwrap().into_vec());
        }
        let err = max_rel_err(&got, &reference.logits[i], reference.vocab);
        assert!(err < 1e-3, "{arch}/{dtype}: prompt {i}: logits differ from the numpy reference by {err}");
        // Greedy continuation equals the reference's.
        let (mut s, mut logits) = model.start(p).unwrap();
        let mut generated = Vec::new();
        for _ in 0..6 {
            let t = transformer_support::argmax(&logits);
            generated.push(t);
            logits = s.extend(&[t]).unwrap().into_vec();
        }
        assert_eq!(generated, reference.greedy[i], "{arch}/{dtype}: greedy tokens of prompt {i}");
    }
}

#[test]
fn llama_f32_matches_numpy_reference() {
    check_parity("llama", "f32", 1);
}

#[test]
fn qwen2_bf16_sharded_matches_numpy_reference() {
    check_parity("qwen2", "bf16", 3);
}

#[test]
fn llama_f16_matches_numpy_reference() {
    check_parity("llama", "f16", 2);
}

fn tiny(p: Precision, arch: &str) -> (tempfile::TempDir, Transformer) {
    let dir = tempfile::tempdir().unwrap();
    make_tiny(dir.path(), arch, "f32", 1);
    let m = load_hf_dir(dir.path(), "tiny", &opts(p)).unwrap();
    (dir, m)
}

#[test]
fn block_forward_equals_single_token_forwards() {
    for p in [Precision::F32, Precision::Q8, Precision::F16] {
        for arch in ["llama", "qwen2"] {
            let (_d, m) = tiny(p, arch);
            let prompt = [3u32, 9, 27, 81];
            let block = [5u32, 6, 7, 8, 9, 10];
            let (mut a, _) = m.start(&prompt).unwrap();
            let together = a.extend(&block).unwrap();
            let (mut b, _) = m.start(&prompt).unwrap();
            let mut singles = Vec::new();
            for t in block {
                singles.extend(b.extend(&[t]).unwrap().into_vec());
            }
            let err = max_rel_err(together.as_slice(), &singles, m.vocab_size());
            assert!(err <= 1e-4, "{p:?}/{arch}: block vs singles differ by {err}");
            assert_eq!(together.rows(), block.len());
        }
    }
}

#[test]
fn truncate_and_reextend_equals_fresh_run() {
    for p in [Precision::F32, Precision::Q8, Precision::F16] {
        let (_d, m) = tiny(p, "qwen2");
        let (mut s, first) = m.start(&[1, 2, 3]).unwrap();
        assert_eq!(s.len(), 0, "a session holds the continuation only");
        let full = s.extend(&[10, 11, 12, 13, 14]).unwrap();
        assert_eq!(s.len(), 5);
        s.truncate(2).unwrap(); // keep 10 11, reject 12 13 14
        assert_eq!(s.len(), 2);
        let again = s.extend(&[50, 51]).unwrap();
        let (mut fresh, _) = m.start(&[1, 2, 3, 10, 11]).unwrap();
        let want = fresh.extend(&[50, 51]).unwrap();
        let err = max_rel_err(again.as_slice(), want.as_slice(), m.vocab_size());
        assert!(err <= 1e-5, "{p:?}: truncate + re-extend differs from a fresh run by {err}");
        // Rolling back to the end of the prompt: the prompt stays, the first row is the prefill's.
        s.truncate(0).unwrap();
        assert_eq!(s.len(), 0);
        let a = s.extend(&[10]).unwrap();
        assert!(max_rel_err(a.as_slice(), &full.as_slice()[..m.vocab_size()], m.vocab_size()) <= 1e-5);
        assert_eq!(first.len(), m.vocab_size());
        s.truncate(0).unwrap();
        s.extend(&[10, 11]).unwrap();
        assert!(matches!(s.truncate(3), Err(ModelError::BadTruncate { len: 3, held: 2 })));
    }
}

#[test]
fn q8_tracks_f32_closely() {
    let (_d, f) = tiny(Precision::F32, "llama");
    let (_e, q) = tiny(Precision::Q8, "llama");
    let prompt = [4u32, 8, 15, 16, 23, 42];
    let (_, a) = f.start(&prompt).unwrap();
    let (_, b) = q.start(&prompt).unwrap();
    let err = max_rel_err(&b, &a, f.vocab_size());
    assert!(err < 0.05, "8-bit logits drift from f32 by {err}");
}

#[test]
fn f16_tracks_f32_more_closely_than_q8() {
    let (_d, f) = tiny(Precision::F32, "qwen2");
    let (_e, h) = tiny(Precision::F16, "qwen2");
    let (_g, q) = tiny(Precision::Q8, "qwen2");
    let prompt = [4u32, 8, 15, 16, 23, 42];
    let (_, a) = f.start(&prompt).unwrap();
    let (_, b) = h.start(&prompt).unwrap();
    let (_, c) = q.start(&prompt).unwrap();
    let (eh, eq) = (max_rel_err(&b, &a, f.vocab_size()), max_rel_err(&c, &a, f.vocab_size()));
    // f16 rounds weights to 2⁻¹¹ and keeps activations in f32; q8 rounds both to 1/254 of a block.
    assert!(eh < 5e-3, "f16 logits drift from f32 by {eh}");
    assert!(eh < eq, "f16 ({eh}) should be closer to f32 than q8 ({eq})");
}

#[test]
fn bad_calls_are_errors() {
    let (_d, m) = tiny(Precision::F32, "llama");
    assert!(matches!(m.start(&[]), Err(ModelError::Empty(_))));
    assert!(matches!(m.start(&[128]), Err(ModelError::TokenOutOfRange { token: 128, vocab: 128, .. })));
    let (mut s, _) = m.start(&[1]).unwrap();
    assert!(matches!(s.extend(&[]), Err(ModelError::Empty(_))));
    let long = vec![1u32; 64];
    assert!(matches!(s.extend(&long), Err(ModelError::ContextOverflow { requested: 65, max: 64, .. })));
    // The failed calls left the session usable.
    assert_eq!(s.len(), 0, "a session holds the continuation only");
    s.extend(&[2, 3]).unwrap();
}

#[test]
fn corrupt_checkpoints_are_errors_not_panics() {
    let o = opts(Precision::F32);
    // Missing directory / config.
    let empty = tempfile::tempdir().unwrap();
    let e = load_hf_dir(empty.path(), "x", &o).err().expect("no config.json").to_string();
    assert!(e.contains("config.json"), "{e}");
    // Unknown architecture.
    let dir = tempfile::tempdir().unwrap();
    make_tiny(dir.path(), "llama", "f32", 1);
    let cfg_path = dir.path().join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, cfg.replace("\"llama\"", "\"gpt_neox\"").replace("LlamaForCausalLM", "GPTNeoXForCausalLM")).unwrap();
    let e = load_hf_dir(dir.path(), "x", &o).err().expect("unknown arch").to_string();
    assert!(e.contains("unsupported architecture 'gpt_neox'"), "{e}");
    // Features this decoder does not implement are refused, not ignored.
    std::fs::write(&cfg_path, cfg.replace("\"rms_norm_eps\"", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}, \"rms_norm_eps\"")).unwrap();
    let e = load_hf_dir(dir.path(), "x", &o).err().expect("rope scaling").to_string();
    assert!(e.contains("rope_scaling"), "{e}");
    std::fs::write(&cfg_path, cfg.replace("\"rms_norm_eps\"", "\"hidden_act\": \"gelu\", \"rms_norm_eps\"")).unwrap();
    let e = load_hf_dir(dir.path(), "x", &o).err().expect("gelu").to_string();
    assert!(e.contains("hidden_act 'gelu'"), "{e}");
    std::fs::write(&cfg_path, &cfg).unwrap();
    // Truncated weights.
    let st = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_hf_dir(dir.path(), "x", &o).err().expect("truncated safetensors").to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // Garbage header.
    std::fs::write(&st, b"not a safetensors file at all").unwrap();
    assert!(load_hf_dir(dir.path(), "x", &o).is_err());
    // A config that disagrees with the weights (wrong hidden size).
    std::fs::write(&st, &bytes).unwrap();
    std::fs::write(&cfg_path, cfg.replace("\"intermediate_size\": 96", "\"intermediate_size\": 80")).unwrap();
    assert!(load_hf_dir(dir.path(), "x", &o).is_err());
}
