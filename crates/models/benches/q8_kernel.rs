//! The 8-bit and f16 matmuls alone on the Qwen2.5 shapes: time per call and effective GB/s of
//! weight read, for 1 to 8 token columns (and 64 and 256, prefill chunks), on the kernel paths this
//! process chose (printed first; `SPECCASCADE_KERNEL=avx2|portable|avxvnni|avx512vnni|amx` forces one).
//!
//! `cargo bench --workspace --bench q8_kernel [-- SHAPE…]`: with names (substrings of the shape labels,
//! e.g. `"1.5B gate_up"`), only those shapes are timed, and `--q8-only` leaves out the f16 matmul (for
//! A/B rounds of a kernel change).

use std::time::Instant;

use speccascade_models::transformer::f16::F16Matrix;
use speccascade_models::transformer::q8::Q8Matrix;

/// One line of timings: `k=K: ms (GB/s)` for each token count.
fn time_line(label: String, bytes: usize, cols: usize, matmul: impl Fn(&[f32], usize, &mut [f32]), rows: usize) -> String {
    let mut line = label;
    for k in [1usize, 2, 4, 6, 8, 16, 64, 256] {
        if k == 256 && rows > 100_000 {
            continue; // the output head runs at one column in prefill
        }
        let x: Vec<f32> = (0..k * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 48.0).collect();
        let mut out = vec![0f32; k * rows];
        let reps = (2_000_000_000 / bytes.max(1)).clamp(3, 200);
        matmul(&x, k, &mut out);
        let t = Instant::now();
        for _ in 0..reps {
            matmul(&x, k, &mut out);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        let gmac = (rows * cols * k) as f64 / s / 1e9;
        line += &format!("  k={k}: {:.2} ms ({:.1} GB/s, {gmac:.1} GMAC/s)", s * 1e3, bytes as f64 / s / 1e9);
    }
    line
}

fn main() {
    // (rows, cols) of the fused layers of Qwen2.5-0.5B (d 896, ffn 4864) and 1.5B (d 1536, ffn 8960).
    // The first shape stays in the last-level cache between calls: its k ≥ 6 times are the
    // machine's compute roof for each kernel (multiply-adds per second), not its bandwidth.
    let shapes = [
        ("in-cache", 2048, 1536),
        ("0.5B qkv", 1152, 896),
        ("0.5B gate_up", 9728, 896),
        ("0.5B down", 896, 4864),
        ("1.5B gate_up", 17920, 1536),
        ("1.5B down", 1536, 8960),
        ("1.5B lm_head", 151936, 1536),
    ];
    println!("cpu: {} | kernels: {}", speccascade_models::cpu::cpu_model(), speccascade_models::cpu::summary());
    println!("loadavg {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    // `cargo bench` passes `--bench` to a harness-less bench; every other argument names shapes.
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let q8_only = std::env::args().any(|a| a == "--q8-only");
    let chosen = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()));
    for (name, rows, cols) in shapes {
        if chosen(name) {
            both_kernels(name, rows, cols, q8_only);
        }
    }
    // One core, weights in its own L2: the per-core compute roof of each inner loop.
    if chosen("1 thread, L2") {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
        one.install(|| both_kernels("1 thread, L2", 256, 1536, q8_only));
    }
}

/// Time the q8 and (unless `q8_only`) the f16 matmul on one `[rows, cols]` shape.
fn both_kernels(name: &str, rows: usize, cols: usize, q8_only: bool) {
    let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
    let m = Q8Matrix::from_f32(rows, cols, &w).unwrap();
    let label = format!("{name:>14} q8  [{rows}x{cols}] {:>6.1} MB:", m.byte_len() as f64 / 1e6);
    println!("{}", time_line(label, m.byte_len(), cols, |x, k, o| m.matmul(x, k, o), rows));
    drop(m);
    if q8_only {
        return;
    }
    let m = F16Matrix::from_f32(rows, cols, &w).unwrap();
    let label = format!("{name:>14} f16 [{rows}x{cols}] {:>6.1} MB:", m.byte_len() as f64 / 1e6);
    println!("{}", time_line(label, m.byte_len(), cols, |x, k, o| m.matmul(x, k, o), rows));
}
