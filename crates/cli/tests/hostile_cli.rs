//! The binary under hostile input, as a user would meet it: each case must end in a clean error
//! (exit 1, "error: …" naming the file and field or the flag and its limit) — no panic, no abort
//! — and stay under 2 GB of peak memory (measured with wait4, like `/usr/bin/time -v`).

mod support;

use speccascade_models::gguf::{Array, GgufWriter, Value};
use support::sc;

const TWO_GB: u64 = 2 << 30;

fn gguf(dir: &std::path::Path, name: &str, edit: impl FnOnce(&mut GgufWriter)) -> String {
    let mut w = GgufWriter::tiny_llama();
    edit(&mut w);
    let p = dir.join(name);
    std::fs::write(&p, w.to_bytes()).unwrap();
    p.display().to_string()
}

#[test]
fn hostile_gguf_sizes_give_named_errors_within_memory() {
    let dir = tempfile::tempdir().unwrap();
    let base = gguf(dir.path(), "base.gguf", |_| {});
    let r = sc(&["generate", "--model", &base, "--prompt", "ab", "--max-new-tokens", "2", "--json"]);
    assert_eq!(r.code, Some(0), "the unmodified file generates: {r:?}");
    for (i, (key, value, needle)) in [
        ("llama.block_count", 1u64 << 62, "n_layers (block_count / num_hidden_layers) = 4611686018427387904 is over the architecture limit of 1024"),
        ("llama.block_count", u32::MAX as u64, "= 4294967295 is over the architecture limit of 1024"),
        ("llama.feed_forward_length", 1 << 36, "ffn_dim (feed_forward_length / intermediate_size) = 68719476736 is over the architecture limit of 1048576"),
        ("llama.attention.key_length", 1 << 40, "head_dim (attention.key_length / head_dim) = 1099511627776 is over the architecture limit of 1024"),
        ("tokenizer.ggml.eos_token_id", (1 << 40) + 5, "'tokenizer.ggml.eos_token_id' = 1099511627781 is outside the vocabulary of 256 tokens"),
    ]
    .into_iter()
    .enumerate()
    {
        let p = gguf(dir.path(), &format!("h{i}.gguf"), |w| {
            w.kv(key, Value::U64(value));
        });
        let r = sc(&["generate", "--model", &p, "--prompt", "ab", "--max-new-tokens", "2"]);
        r.assert_clean_error(key);
        assert!(r.stderr.contains(&p) && r.stderr.contains(needle), "{key} = {value}: {}", r.stderr);
        assert!(r.max_rss < TWO_GB, "{key}: peak RSS {} bytes", r.max_rss);
        eprintln!("{key} = {value}: clean error, peak RSS {} MB", r.max_rss >> 20);
    }
}

#[test]
fn an_80_mb_metadata_array_is_not_inflated() {
    let dir = tempfile::tempdir().unwrap();
    let p = gguf(dir.path(), "blob.gguf", |w| {
        w.kv("test.blob", Value::Array(Array::U8(vec![1u8; 80 << 20])));
    });
    let r = sc(&["tokenize", "--model", &p, "--text", "ab", "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    // Mapped file (80 MB) plus one packed copy (80 MB) plus the binary: far from 33×.
    assert!(r.max_rss < 600 << 20, "peak RSS {} MB", r.max_rss >> 20);
    eprintln!("80 MB u8 metadata array: peak RSS {} MB", r.max_rss >> 20);
}

#[test]
fn hostile_numbers_on_the_command_line_are_refused_with_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let base = gguf(dir.path(), "base.gguf", |_| {});
    for (args, needle) in [
        (vec!["demo", "--synthetic", "--gamma", "1000000000", "--max-new-tokens", "1000000000000"], "--gamma 1000000000 is out of range: expected 1..=64"),
        (vec!["demo", "--synthetic", "--max-new-tokens", "1000000000000"], "--max-new-tokens 1000000000000 is out of range: expected 1..=65536"),
        (vec!["demo", "--synthetic", "--vocab", "1000000000000"], "--vocab 1000000000000 is out of range: expected 8..=1048576"),
        (vec!["generate", "--model", &base, "--prompt", "ab", "--gamma", "1000000000"], "--gamma 1000000000 is out of range"),
        (vec!["generate", "--model", &base, "--prompt", "ab", "--max-new-tokens", "1000000000000"], "--max-new-tokens 1000000000000 is over the limit of 253"),
        (vec!["score", "--metric", "exact_match", "--predictions", "p", "--references", "r", "--timeout", "1e300"], "--timeout 1e300 is out of range"),
        (vec!["score", "--metric", "exact_match", "--predictions", "p", "--references", "r", "--timeout", "-0.5"], "--timeout -0.5 is out of range"),
        (vec!["score", "--metric", "pass_at_1", "--predictions", "p", "--references", "r", "--jobs", "100000000"], "--jobs 100000000 is out of range"),
        (vec!["slurm", "x.yaml", "--shards", "1000000000"], "--shards 1000000000 is out of range"),
    ] {
        let r = sc(&args);
        r.assert_clean_error(&format!("{args:?}"));
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(r.max_rss < TWO_GB, "{args:?}: peak RSS {}", r.max_rss);
        eprintln!("{args:?}: clean error, peak RSS {} MB", r.max_rss >> 20);
    }
}

#[test]
fn text_values_may_begin_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let base = gguf(dir.path(), "base.gguf", |_| {});
    let r = sc(&["tokenize", "--model", &base, "--text", "-> x", "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["count"], 4, "'-', '>', ' ', 'x' as single-byte tokens: {v}");
}

#[test]
fn endless_and_forged_data_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(support::BIN);
    c.args(["data", "fetch", "gsm8k", "--from", "/dev/zero"]).env("SPECCASCADE_CACHE", dir.path());
    let r = support::measure(c);
    r.assert_clean_error("--from /dev/zero");
    assert!(r.stderr.contains("/dev/zero") && r.stderr.contains("512 MiB"), "{}", r.stderr);
    assert!(r.max_rss < TWO_GB, "peak RSS {}", r.max_rss);
    eprintln!("data fetch --from /dev/zero: clean error, peak RSS {} MB", r.max_rss >> 20);
}
