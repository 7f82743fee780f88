//! End to end: `spec_decode` (γ = 5, T = 0) with the real pair against the verifier alone, on
//! HumanEval prompts, in one run. Also checks that the speculative output equals the verifier's
//! greedy output (it must at T = 0).
//!
//! `cargo bench -p speccascade-models --bench spec_decode_e2e -- --drafter D.gguf --verifier V.gguf
//!  --prompts humaneval.jsonl [--n 5] [--max-new-tokens 128] [--gamma 5] [--ignore-eos] [--precision q8|f16|f32]`
//! (`--prompts`: JSON lines with a "prompt" field, e.g. HumanEval.jsonl decompressed.)
//!
//! By default both sides stop at the models' end-of-sequence tokens, so a prompt whose answer
//! ends early is mostly prefill. `--ignore-eos` generates exactly `--max-new-tokens` on every
//! prompt (as `min_new_tokens` in transformers or `ignore_eos` in llama.cpp). Each line also
//! splits the time into prefill and decoding, so the decode-phase speed-up is visible apart from
//! the prompt's cost, which both sides pay (and spec_decode pays once more for the drafter).

use std::time::Instant;

use speccascade_core::{LanguageModel, Sampling};
use speccascade_decoding::{DecodeConfig, MethodSpec, decode};
use speccascade_models::gguf::GgufFile;
use speccascade_models::tokenizer::Tokenizer;
use speccascade_models::transformer::{Precision, Transformer, TransformerOptions, load_gguf_file};

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args().skip_while(|a| a != name);
    it.next()?;
    it.next()
}

fn load(path: &str, precision: Precision, ignore_eos: bool) -> (Transformer, Tokenizer) {
    let file = GgufFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    let opts = TransformerOptions { precision, max_seq_len: 2048, ..Default::default() };
    let name = std::path::Path::new(path).file_stem().unwrap().to_string_lossy().to_string();
    let mut m = load_gguf_file(&file, &name, &opts).unwrap_or_else(|e| panic!("{e}"));
    if ignore_eos {
        m = m.with_eos(Vec::new());
    }
    (m, Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{e}")))
}

/// Greedy tokens of one model and its prefill time in seconds.
fn greedy_alone(m: &Transformer, prompt: &[u32], n: usize) -> (Vec<u32>, f64) {
    let t0 = Instant::now();
    let (mut s, mut logits) = m.start(prompt).unwrap();
    let prefill = t0.elapsed().as_secs_f64();
    let mut out = Vec::new();
    for i in 0..n {
        let t = logits.iter().enumerate().fold(0, |b, (j, v)| if *v > logits[b] { j } else { b }) as u32;
        out.push(t);
        if m.eos_ids().contains(&t) || i + 1 == n {
            break;
        }
        logits = s.extend(&[t]).unwrap().into_vec();
    }
    (out, prefill)
}

fn main() {
    // As the speccascade binary does: keep freed 600 KB logit rows instead of unmapping them.
    speccascade_core::alloc::keep_freed_memory();
    let (Some(dp), Some(vp), Some(pp)) = (arg("--drafter"), arg("--verifier"), arg("--prompts")) else {
        eprintln!("spec_decode_e2e: pass --drafter D.gguf --verifier V.gguf --prompts FILE.jsonl; nothing to do");
        return;
    };
    let n: usize = arg("--n").map(|v| v.parse().unwrap()).unwrap_or(5);
    let max_new: usize = arg("--max-new-tokens").map(|v| v.parse().unwrap()).unwrap_or(128);
    let gamma: usize = arg("--gamma").map(|v| v.parse().unwrap()).unwrap_or(5);
    let ignore_eos = std::env::args().any(|a| a == "--ignore-eos");
    let precision: Precision = arg("--precision").map(|p| p.parse().unwrap()).unwrap_or(Precision::Q8);
    let (drafter, _) = load(&dp, precision, ignore_eos);
    let (verifier, tok) = load(&vp, precision, ignore_eos);
    let prompts: Vec<String> = std::fs::read_to_string(&pp)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["prompt"].as_str().unwrap().to_string())
        .collect();
    println!("precision {precision}, stop at EOS: {}", !ignore_eos);
    println!("cpu: {} | kernels: {}", speccascade_models::cpu::cpu_model(), speccascade_models::cpu::summary());
    println!("loadavg at start {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let mut cfg = DecodeConfig::new(MethodSpec::parse("spec_decode", None).unwrap());
    cfg.gamma = gamma;
    cfg.sampling = Sampling::greedy();
    cfg.max_new_tokens = max_new;
    let (mut t_alone, mut t_spec) = (0.0, 0.0);
    let (mut dec_alone, mut dec_spec) = (0.0, 0.0);
    let mut speedups = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let ids = tok.encode_prompt(p, true).unwrap();
        let t0 = Instant::now();
        let (alone, pre_a) = greedy_alone(&verifier, &ids, max_new);
        let a = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let g = decode(&drafter, &verifier, &ids, &cfg, None).unwrap();
        let s = t0.elapsed().as_secs_f64();
        let pre_s = g.ledger.drafter_prefill_s + g.ledger.verifier_prefill_s;
        t_alone += a;
        t_spec += s;
        dec_alone += a - pre_a;
        dec_spec += s - pre_s;
        speedups.push(a / s);
        let same = g.tokens == alone;
        println!(
            "prompt {i}: {} prompt tokens, {} new; verifier alone {a:.2}s (prefill {pre_a:.2}s), spec_decode {s:.2}s (prefill {:.2}s + drafter {:.2}s) = {:.2}x, decoding alone {:.2}x; mean accepted length {:.2}; outputs equal: {same}",
            ids.len(),
            g.tokens.len(),
            g.ledger.verifier_prefill_s,
            g.ledger.drafter_prefill_s,
            a / s,
            (a - pre_a) / (s - pre_s),
            g.ledger.mean_accept_length()
        );
    }
    speedups.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "total: verifier alone {t_alone:.1}s, spec_decode {t_spec:.1}s = {:.2}x (median per prompt {:.2}x); decoding alone (prefill excluded) {:.2}x; loadavg at end {}",
        t_alone / t_spec,
        speedups[speedups.len() / 2],
        dec_alone / dec_spec,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
}
