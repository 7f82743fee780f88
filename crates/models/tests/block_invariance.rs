//! Block invariance on the tiny random checkpoints: a position's logits are the same bits whether
//! it is computed in the prefill, alone, or in a block of k, at every precision (issue 10.0).
//! Needs no downloads (the checkpoints come from `tests/py/reference_forward.py --make-tiny`).

mod transformer_support;

use std::path::Path;

use speccascade_models::safetensors_load::load_hf_dir;
use speccascade_models::transformer::{Precision, TransformerOptions};
use transformer_support::{assert_block_invariant, run_reference};

fn make_tiny(dir: &Path, arch: &str) {
    run_reference(&[
        "--make-tiny",
        dir.to_str().unwrap(),
        "--arch",
        arch,
        "--dtype",
        "f32",
        "--shards",
        "1",
        "--seed",
        "5",
    ]);
}

#[test]
fn tiny_logits_do_not_depend_on_batching_at_any_precision() {
    // 40 tokens: longer than the block sizes and than one 8-bit / f16 kernel pass of columns.
    let seq: Vec<u32> = (0..40u32).map(|i| (i * 37 + 11) % 128).collect();
    for arch in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().unwrap();
        make_tiny(dir.path(), arch);
        for p in [Precision::F32, Precision::F16, Precision::Q8] {
            let opts = TransformerOptions { precision: p, max_seq_len: 64, ..Default::default() };
            let m = load_hf_dir(dir.path(), "tiny", &opts).unwrap();
            assert_block_invariant(&m, &format!("tiny {arch} {p}"), &seq, 12, 12, 7);
        }
    }
}
