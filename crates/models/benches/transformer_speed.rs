//! Decode / block / prefill speed of the burn decoder on a real model, plus the machine's memory
//! read bandwidth measured in the same run (the ceiling of batch-1 decoding).
//!
//! `cargo bench --workspace --bench transformer_speed -- --model FILE.gguf [--precision q8|f16|f32] [--json]`
//! (several `--model` flags run one after the other). The kernel paths in use are printed first
//! (`SPECCASCADE_KERNEL=avx2|portable|avxvnni|avx512vnni` forces one). Prefill is split into the linear
//! layers' kernels (the model's matrix shapes timed alone at k = 512, random weights) and the rest
//! (attention over the prompt, norms, RoPE, SwiGLU, embedding: the difference).
//!
//! `--batch 1,2,4,8` instead times `LanguageModel::extend_batch`: N sessions of different prompts
//! extended together by k = 1 (decode) and k = 6 (a speculative block) tokens each, against the
//! same jobs run one session after another, as aggregate tokens per second.

use std::time::Instant;

use rayon::prelude::*;
use speccascade_core::LanguageModel;
use speccascade_models::transformer::{Acts, HeadShape, Precision, ScoreRule, Transformer, TransformerOptions, Visible, attend, load_gguf};
use speccascade_models::cpu;
use speccascade_models::transformer::f16::F16Matrix;
use speccascade_models::transformer::q8::Q8Matrix;

struct Args {
    models: Vec<String>,
    precision: Precision,
    json: bool,
    decode_steps: usize,
    /// Only the decode steps (for profiling).
    decode_only: bool,
    /// Time `extend_batch` at these numbers of sequences instead (`--batch 1,2,4,8`).
    batch: Vec<usize>,
}

fn parse() -> Args {
    let mut a = Args { models: Vec::new(), precision: Precision::Q8, json: false, decode_steps: 24, decode_only: false, batch: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--model" => a.models.push(it.next().expect("--model FILE")),
            "--precision" => a.precision = it.next().expect("--precision q8|f32").parse().expect("precision"),
            "--json" => a.json = true,
            "--decode-only" => a.decode_only = true,
            "--batch" => {
                a.batch = it.next().expect("--batch N,N,..").split(',').map(|n| n.trim().parse().expect("--batch: sequence counts")).collect()
            }
            "--steps" => a.decode_steps = it.next().expect("--steps N").parse().expect("steps"),
            _ => {} // cargo passes --bench
        }
    }
    if a.models.is_empty() {
        if let Ok(m) = std::env::var("SPECCASCADE_BENCH_MODEL") {
            a.models.push(m);
        }
    }
    a
}

/// GB/s of a parallel sum over a buffer much larger than the caches. The sum is over integers so
/// that it vectorises (an f32 sum is one dependent chain of adds and measured ~8.5 GB/s: the
/// adder's latency, not the memory).
fn bandwidth_gbs() -> f64 {
    let n = 1024 * 1024 * 1024 / 8;
    let buf: Vec<u64> = (0..n).into_par_iter().map(|i| (i % 7) as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let s: u64 = buf.par_chunks(1 << 17).map(|c| c.iter().fold(0u64, |a, &x| a.wrapping_add(x))).sum();
        std::hint::black_box(s);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (n * 8) as f64 / best / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn tokens(n: usize, vocab: usize, seed: u32) -> Vec<u32> {
    // Deterministic ids spread over the ordinary part of the vocabulary.
    (0..n as u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 7) % (vocab as u32 / 2) + 100).collect()
}

fn bench(model: &Transformer, steps: usize, decode_only: bool) -> serde_json::Value {
    let vocab = model.vocab_size();
    // Decode after 64 tokens of context.
    let (mut s, _) = model.start(&tokens(64, vocab, 1)).unwrap();
    let mut step = Vec::new();
    let next = tokens(steps + 3, vocab, 2);
    for (i, t) in next.iter().enumerate() {
        let t0 = Instant::now();
        s.extend(&[*t]).unwrap();
        if i >= 3 {
            step.push(t0.elapsed().as_secs_f64());
        }
    }
    let decode = median(step);
    if decode_only {
        return serde_json::json!({"decode_tok_s": 1.0 / decode, "decode_ms": decode * 1e3});
    }
    // A block of 6 positions at the same depth, rolled back each time.
    let base = s.len();
    let mut block = Vec::new();
    let mut single = Vec::new();
    for r in 0..8 {
        let b = tokens(6, vocab, 10 + r);
        let t0 = Instant::now();
        s.extend(&b).unwrap();
        block.push(t0.elapsed().as_secs_f64());
        s.truncate(base).unwrap();
        let t0 = Instant::now();
        s.extend(&b[..1]).unwrap();
        single.push(t0.elapsed().as_secs_f64());
        s.truncate(base).unwrap();
    }
    let (block, single) = (median(block), median(single));
    drop(s);
    // Prefill of 512 tokens.
    let mut pre = Vec::new();
    for r in 0..2 {
        let p = tokens(512, vocab, 100 + r);
        let t0 = Instant::now();
        let (s, _) = model.start(&p).unwrap();
        pre.push(t0.elapsed().as_secs_f64());
        drop(s);
    }
    let prefill = pre.iter().cloned().fold(f64::MAX, f64::min);
    let attention = attention_512_s(model);
    let kernels = prefill_kernel_seconds(model, 512);
    serde_json::json!({
        "prefill512_kernels_s": kernels,
        "prefill512_s": prefill,
        "prefill512_non_kernel_share": kernels.map(|k| 1.0 - k / prefill),
        "decode_tok_s": 1.0 / decode,
        "decode_ms": decode * 1e3,
        "block6_ms": block * 1e3,
        "single_ms": single * 1e3,
        "block6_over_step": block / single,
        "prefill512_tok_s": 512.0 / prefill,
        "prefill512_attention_s": attention,
        "prefill512_attention_share": attention / prefill,
        "weight_bytes_per_token": model.weight_bytes_per_token(),
    })
}

/// `n` sessions (prompts of 64 + 7 i tokens), each extended by `k` tokens: the median of 8
/// `extend_batch` calls against the median of the same jobs one session after another (each
/// rolled back after it runs, so every call is at the same depths).
fn batch_bench(model: &Transformer, n: usize, k: usize) -> serde_json::Value {
    let vocab = model.vocab_size();
    let mut sessions: Vec<_> = (0..n).map(|i| model.start(&tokens(64 + 7 * i, vocab, 1 + i as u32)).unwrap().0).collect();
    let (mut batched, mut alone) = (Vec::new(), Vec::new());
    for r in 0..8u32 {
        let jobs_tokens: Vec<Vec<u32>> = (0..n).map(|i| tokens(k, vocab, 1000 + 31 * r + i as u32)).collect();
        let mut jobs: Vec<_> = sessions.iter_mut().zip(&jobs_tokens).map(|(s, t)| (s.as_mut(), &t[..])).collect();
        let t0 = Instant::now();
        model.extend_batch(&mut jobs).unwrap();
        batched.push(t0.elapsed().as_secs_f64());
        drop(jobs);
        sessions.iter_mut().for_each(|s| s.truncate(0).unwrap());
        let t0 = Instant::now();
        for (s, t) in sessions.iter_mut().zip(&jobs_tokens) {
            s.extend(t).unwrap();
        }
        alone.push(t0.elapsed().as_secs_f64());
        sessions.iter_mut().for_each(|s| s.truncate(0).unwrap());
    }
    let (batched, alone) = (median(batched), median(alone));
    serde_json::json!({
        "sequences": n,
        "k": k,
        "batched_ms": batched * 1e3,
        "one_after_another_ms": alone * 1e3,
        "speedup": alone / batched,
        "batched_tok_s": (n * k) as f64 / batched,
        "one_after_another_tok_s": (n * k) as f64 / alone,
    })
}

/// Seconds the attention kernel alone takes in a 512-token prefill (two chunks of 256, every
/// layer), on random queries, keys and values of the model's shape: its share of the prefill.
fn attention_512_s(model: &Transformer) -> f64 {
    let c = model.config();
    let shape = HeadShape { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: c.head_dim };
    let fill = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3).collect() };
    let keys = fill(512 * shape.kv_dim());
    let values = fill(512 * shape.kv_dim() + 3)[3..].to_vec();
    let q = Acts::new(256, shape.q_dim(), fill(256 * shape.q_dim()));
    let mut best = f64::MAX;
    for _ in 0..2 {
        let t0 = Instant::now();
        for _ in 0..c.n_layers {
            for pos0 in [0, 256] {
                let n = (pos0 + 256) * shape.kv_dim();
                let out = attend(&q, &keys[..n], &values[..n], shape, ScoreRule::scaled(c.head_dim), Visible::Causal { pos0 }, None);
                std::hint::black_box(out);
            }
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    best
}

/// Seconds the linear layers of a `k`-token prefill take in the kernels alone: each of the model's
/// four matrix shapes (random weights of the same precision) at `k` columns, times the layer count,
/// plus the output head at one column (prefill keeps only the last position's logits). Best of 2.
fn prefill_kernel_seconds(model: &Transformer, k: usize) -> Option<f64> {
    let c = model.config();
    let (d, q, kv, f) = (c.d_model, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.ffn_dim);
    let shapes = [(q + 2 * kv, d, k), (d, q, k), (2 * f, d, k), (d, f, k)];
    let time = |rows: usize, cols: usize, k: usize| -> Option<f64> {
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
        let x: Vec<f32> = (0..k * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 48.0).collect();
        let mut out = vec![0f32; k * rows];
        let run: Box<dyn Fn(&mut [f32])> = match model.precision() {
            Precision::Q8 => {
                let m = Q8Matrix::from_f32(rows, cols, &w).ok()?;
                Box::new(move |o| m.matmul(&x, k, o))
            }
            Precision::F16 => {
                let m = F16Matrix::from_f32(rows, cols, &w).ok()?;
                Box::new(move |o| m.matmul(&x, k, o))
            }
            // f32 has no kernel of its own to time; q4k's matrices are a file's blocks, not
            // random values of one shape.
            Precision::F32 | Precision::Q4k => return None,
        };
        let mut best = f64::MAX;
        for _ in 0..2 {
            let t = Instant::now();
            run(&mut out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        Some(best)
    };
    let mut total = 0.0;
    for (rows, cols, k) in shapes {
        total += time(rows, cols, k)? * c.n_layers as f64;
    }
    Some(total + time(c.vocab_size, d, 1)?)
}

fn main() {
    // As the `speccascade` binary does: keep freed blocks in the heap, so each call's logit rows
    // (600 KB per position for a 150 000-token vocabulary) do not pay fresh-page faults.
    speccascade_core::alloc::keep_freed_memory();
    let args = parse();
    if args.models.is_empty() {
        eprintln!("transformer_speed: pass --model FILE.gguf (or set SPECCASCADE_BENCH_MODEL); nothing to do");
        return;
    }
    let kernels = cpu::describe();
    if !args.json {
        println!("cpu: {} | kernels: {}", cpu::cpu_model(), cpu::summary());
    }
    let bw = bandwidth_gbs();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows = Vec::new();
    for path in &args.models {
        let opts = TransformerOptions { precision: args.precision, max_seq_len: 2048, ..Default::default() };
        let t0 = Instant::now();
        let model = load_gguf(std::path::Path::new(path), path, &opts).unwrap_or_else(|e| panic!("{e}"));
        let load_s = t0.elapsed().as_secs_f64();
        if !args.batch.is_empty() {
            let runs: Vec<_> = [1, 6].iter().flat_map(|&k| args.batch.iter().map(move |&n| (n, k))).map(|(n, k)| batch_bench(&model, n, k)).collect();
            if !args.json {
                for b in &runs {
                    println!(
                        "{path}: {n} sequences × k = {k}: extend_batch {:.1} ms ({:.1} tok/s), one after another {:.1} ms ({:.1} tok/s): {:.2}×",
                        b["batched_ms"].as_f64().unwrap(),
                        b["batched_tok_s"].as_f64().unwrap(),
                        b["one_after_another_ms"].as_f64().unwrap(),
                        b["one_after_another_tok_s"].as_f64().unwrap(),
                        b["speedup"].as_f64().unwrap(),
                        n = b["sequences"],
                        k = b["k"],
                    );
                }
            }
            rows.push(serde_json::json!({"model": path, "precision": format!("{:?}", args.precision), "load_s": load_s, "batch": runs}));
            continue;
        }
        let mut r = bench(&model, args.decode_steps, args.decode_only);
        let bytes = model.weight_bytes_per_token() as f64;
        r["model"] = path.clone().into();
        r["precision"] = format!("{:?}", args.precision).into();
        r["load_s"] = load_s.into();
        r["ceiling_tok_s"] = (bw * 1e9 / bytes).into();
        rows.push(r);
    }
    let out = serde_json::json!({"kernels": kernels, "bandwidth_gbs": bw, "loadavg": load.trim(), "threads": rayon::current_num_threads(), "results": rows});
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        println!("memory read bandwidth {bw:.1} GB/s, loadavg {}", load.trim());
        if !args.batch.is_empty() {
            return;
        }
        if args.decode_only {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return;
    }
    for r in out["results"].as_array().unwrap() {
            println!(
                "{}: {} decode {:.1} tok/s ({:.1} ms), block6 {:.1} ms = {:.2}x step, prefill512 {:.0} tok/s \
                 (attention {:.0} %, {:.0} % outside the linear kernels), ceiling {:.1} tok/s, load {:.1}s",
                r["model"].as_str().unwrap(),
                r["precision"].as_str().unwrap(),
                r["decode_tok_s"].as_f64().unwrap(),
                r["decode_ms"].as_f64().unwrap(),
                r["block6_ms"].as_f64().unwrap(),
                r["block6_over_step"].as_f64().unwrap(),
                r["prefill512_tok_s"].as_f64().unwrap(),
                r["prefill512_attention_share"].as_f64().unwrap() * 100.0,
                r["prefill512_non_kernel_share"].as_f64().unwrap_or(f64::NAN) * 100.0,
                r["ceiling_tok_s"].as_f64().unwrap(),
                r["load_s"].as_f64().unwrap(),
            );
        }
    }
}
