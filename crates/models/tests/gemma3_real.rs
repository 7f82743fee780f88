//! Gemma 3 270M (GGUF Q4_K_M, `speccascade models fetch gemma-3-270m`) against Hugging Face
//! transformers loading the same file (tests/py/gemma3_270m_reference.py, whose output is
//! committed as tests/fixtures/gemma3_270m_reference.json): the SentencePiece tokenizer built from
//! the GGUF vocabulary gives transformers' ids; at f32 every position's largest logits and
//! log-sum-exp agree; greedy tokens equal `generate()`'s, with their log-probabilities.
//!
//! Needs the fetched model (set SPECCASCADE_SKIP_MODEL_TESTS=1 to skip, with a printed notice,
//! when it is absent).

mod transformer_support;

use std::path::Path;

use speccascade_models::registry::ModelLocation;
use speccascade_models::tokenizer::Tokenizer;
use speccascade_models::transformer::{Precision, TransformerOptions, load_model};
use transformer_support::{argmax, cached_model};

#[test]
fn gemma3_270m_matches_transformers() {
    let Some(path) = cached_model("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf") else { return };
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3_270m_reference.json"))
            .unwrap(),
    )
    .unwrap();
    let loc = ModelLocation::Gguf { path: path.clone() };
    let tok = Tokenizer::from_location(&loc).unwrap();
    let opts = TransformerOptions { precision: Precision::F32, max_seq_len: 256, ..Default::default() };
    let model = load_model(&loc, &opts).unwrap().model;
    let vocab = model.vocab_size();
    assert_eq!(vocab, 262_144);
    let u32s = |v: &serde_json::Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
    let f64s = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    for (i, case) in reference["inputs"].as_array().unwrap().iter().enumerate() {
        let text = case["text"].as_str().unwrap();
        let ids = u32s(&case["ids"]);
        let generated = u32s(&case["generated"]);
        assert_eq!(tok.encode_prompt(text, false).unwrap(), ids, "prompt {i}: token ids differ from transformers'");

        // Every position: the first token alone, the rest as one block.
        let all: Vec<u32> = ids.iter().chain(&generated).copied().collect();
        let (mut s, first) = model.start(&all[..1]).unwrap();
        let mut rows = first;
        rows.extend(s.extend(&all[1..]).unwrap().into_vec());
        let lse_ref = f64s(&case["logsumexp"]);
        let mut worst = 0f64;
        for (p, (top_ids, top_logits)) in
            case["top_ids"].as_array().unwrap().iter().zip(case["top_logits"].as_array().unwrap()).enumerate()
        {
            let row = &rows[p * vocab..(p + 1) * vocab];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            let scale = lse_ref[p].abs().max(1.0);
            for (id, want) in u32s(top_ids).into_iter().zip(f64s(top_logits)) {
                worst = worst.max((row[id as usize] as f64 - want).abs() / scale);
            }
            worst = worst.max((lse - lse_ref[p]).abs() / scale);
        }
        eprintln!("gemma-3-270m: prompt {i}: {} positions, worst relative logit error {worst:.2e}", all.len());
        assert!(worst < 1e-3, "prompt {i}: logits differ from transformers by {worst} (relative)");

        // Greedy decoding from a prefill.
        let (mut s, mut logits) = model.start(&ids).unwrap();
        let mut got = Vec::new();
        for (j, want_lp) in f64s(&case["logprobs"]).into_iter().enumerate() {
            let t = argmax(&logits);
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let lp = logits[t as usize] as f64 - max - logits.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            assert!((lp - want_lp).abs() < 2e-3, "prompt {i}: step {j}: logprob {lp} vs transformers {want_lp}");
            got.push(t);
            logits = s.extend(&[t]).unwrap().into_vec();
        }
        assert_eq!(got, generated, "prompt {i}: greedy tokens differ from transformers' generate()");
    }
}
