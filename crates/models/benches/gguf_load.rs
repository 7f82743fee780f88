//! GGUF + tokenizer loading speed on the cached real models: header parse (mmap), dequantization
//! throughput per ggml type (output GB/s of f32 and input MB/s of quantized bytes), tokenizer build
//! from GGUF metadata, and encode/decode throughput.
//!
//! `cargo bench -p speccascade-models --bench gguf_load`

use speccascade_models::gguf::GgufFile;
use speccascade_models::registry;
use speccascade_models::tokenizer::Tokenizer;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    println!("loadavg {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("rayon threads {}", rayon::current_num_threads());
    for name in ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"] {
        let spec = registry::find(name).unwrap();
        let path = spec.cached_path();
        if !path.is_file() {
            println!("{name}: not cached, skipped (speccascade models fetch {name})");
            continue;
        }
        let t = Instant::now();
        let f = GgufFile::open(&path).unwrap();
        let open_s = t.elapsed().as_secs_f64();
        // Warm the page cache so the numbers are decode speed, not disk speed.
        let mut touch = 0u64;
        for ti in f.tensors() {
            touch += f.tensor_data(&ti.name).unwrap().iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
        }
        let mut per_type: BTreeMap<&str, (u64, u64, f64)> = BTreeMap::new();
        let t_all = Instant::now();
        for ti in f.tensors() {
            let t = Instant::now();
            let x = f.dequantize(&ti.name).unwrap();
            let dt = t.elapsed().as_secs_f64();
            let e = per_type.entry(ti.ggml_type.name()).or_default();
            e.0 += ti.n_bytes();
            e.1 += x.len() as u64 * 4;
            e.2 += dt;
        }
        let all_s = t_all.elapsed().as_secs_f64();
        println!("{name}: open+parse {:.1} ms, dequantize all {} tensors {all_s:.2} s (touch {touch})", open_s * 1e3, f.tensors().len());
        for (ty, (inb, outb, s)) in per_type {
            println!("  {ty:>5}: {:>7.1} MB in -> {:>7.1} MB f32 in {s:.3} s: {:.2} GB/s out", inb as f64 / 1e6, outb as f64 / 1e6, outb as f64 / 1e9 / s);
        }
        let t = Instant::now();
        let tok = Tokenizer::from_gguf(&f).unwrap();
        let build_s = t.elapsed().as_secs_f64();
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/gguf/dequant.rs")).unwrap().repeat(20);
        let t = Instant::now();
        let ids = tok.encode(&text, true).unwrap();
        let enc_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let back = tok.decode(&ids, false);
        let dec_s = t.elapsed().as_secs_f64();
        assert_eq!(back.len(), text.len());
        println!(
            "  tokenizer: build {:.0} ms; encode {} tokens ({:.1} MB) at {:.0} k tokens/s; decode at {:.1} M tokens/s",
            build_s * 1e3,
            ids.len(),
            text.len() as f64 / 1e6,
            ids.len() as f64 / enc_s / 1e3,
            ids.len() as f64 / dec_s / 1e6
        );
    }
}
