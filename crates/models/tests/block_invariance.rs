//! Block invariance on the tiny random checkpoints: a position's logits are the same bits whether
//! it is computed in the prefill, alone, or in a block of k, at every precision (issue 10.0).
//! Needs no downloads (the checkpoints come from `tests/py/reference_forward.py --make-tiny`).

mod transformer_support;

use speccascade_models::safetensors_load::load_hf_dir;
use speccascade_models::transformer::{Precision, TransformerOptions};
use transformer_support::{assert_batch_matches_alone, assert_block_invariant, make_tiny};

#[test]
fn tiny_logits_do_not_depend_on_batching_at_any_precision() {
    // 40 tokens: longer than the block sizes and than one 8-bit / f16 kernel pass of columns.
    let seq: Vec<u32> = (0..40u32).map(|i| (i * 37 + 11) % 128).collect();
    for arch in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().unwrap();
        make_tiny(dir.path(), arch, "f32", 1, 5);
        for p in [Precision::F32, Precision::F16, Precision::Q8] {
            let opts = TransformerOptions { precision: p, max_seq_len: 64, ..Default::default() };
            let m = load_hf_dir(dir.path(), "tiny", &opts).unwrap();
            assert_block_invariant(&m, &format!("tiny {arch} {p}"), &seq, 12, 12, 7);
        }
    }
}

/// `extend_batch`: sessions of different sequences (prompts of 1–40 tokens, one session of a
/// second instance of the model among them) extended together, k = 1 beside blocks of 3–6, 70
/// (passes of more than 256 rows split) and 260 (longer than a pass: run alone), with a
/// roll-back: every row is the same bits as the session's own `extend`.
#[test]
fn tiny_batched_sessions_equal_their_sessions_alone_at_any_precision() {
    let seqs: Vec<Vec<u32>> = (0..5u32).map(|s| (0..300u32).map(|i| (i * 37 + 11 + 5 * s) % 128).collect()).collect();
    for arch in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().unwrap();
        make_tiny(dir.path(), arch, "f32", 1, 5);
        // The tiny config holds 256 positions; a job longer than a pass needs more.
        let config = dir.path().join("config.json");
        let text = std::fs::read_to_string(&config).unwrap().replace("\"max_position_embeddings\": 256", "\"max_position_embeddings\": 320");
        std::fs::write(&config, text).unwrap();
        for p in [Precision::F32, Precision::F16, Precision::Q8] {
            let opts = TransformerOptions { precision: p, max_seq_len: 320, ..Default::default() };
            let m = load_hf_dir(dir.path(), "tiny", &opts).unwrap();
            let other = load_hf_dir(dir.path(), "tiny", &opts).unwrap();
            let label = format!("tiny {arch} {p}");
            assert_batch_matches_alone(&[&m, &other], &label, &seqs, &[3, 17, 1, 40, 9], &[1, 6, 1, 3, 70, 1, 260], true);
        }
    }
}
