//! Helpers shared by the transformer tests: the Python reference, model paths, comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The interpreter holding the reference packages: `$SPECCASCADE_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("SPECCASCADE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/reference_forward.py")
}

/// Run the reference script; panic with setup instructions when numpy/gguf are missing.
pub fn run_reference(args: &[&str]) -> String {
    let out = Command::new(python()).arg(reference_script()).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {} ({e}): run `.ci/python-env.sh` and set SPECCASCADE_PYTHON", python())
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("ModuleNotFoundError") {
            panic!(
                "the Python reference needs numpy and gguf: run `.ci/python-env.sh` and set SPECCASCADE_PYTHON to the \
                 interpreter it prints\n{stderr}"
            );
        }
        panic!("reference_forward.py {args:?} failed:\n{stderr}");
    }
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Write a small random HF checkpoint (`--make-tiny`) of `arch` into `dir`.
pub fn make_tiny(dir: &Path, arch: &str, dtype: &str, shards: usize, seed: u64) {
    let (shards, seed) = (shards.to_string(), seed.to_string());
    let dir = dir.to_str().unwrap();
    run_reference(&["--make-tiny", dir, "--arch", arch, "--dtype", dtype, "--shards", &shards, "--seed", &seed]);
}

/// Every position's reference logits for each prompt, and greedy continuations.
pub struct Reference {
    pub vocab: usize,
    /// per prompt: [rows * vocab]
    pub logits: Vec<Vec<f32>>,
    pub greedy: Vec<Vec<u32>>,
}

pub fn reference(model_arg: &str, model: &Path, prompts: &[Vec<u32>], greedy: usize) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits.f32");
    let tokens = serde_json::to_string(prompts).unwrap();
    let stdout = run_reference(&[
        model_arg,
        model.to_str().unwrap(),
        "--tokens",
        &tokens,
        "--out",
        out.to_str().unwrap(),
        "--greedy",
        &greedy.to_string(),
    ]);
    let meta: serde_json::Value = serde_json::from_str(&stdout).expect("reference prints JSON");
    let vocab = meta["vocab"].as_u64().unwrap() as usize;
    let raw = std::fs::read(&out).unwrap();
    let all: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let mut logits = Vec::new();
    let mut off = 0;
    for p in prompts {
        logits.push(all[off..off + p.len() * vocab].to_vec());
        off += p.len() * vocab;
    }
    let greedy = meta["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect())
        .collect();
    Reference { vocab, logits, greedy }
}

/// Largest |a - b| relative to the row's largest |b| (at least 1), over rows of `vocab`.
pub fn max_rel_err(a: &[f32], b: &[f32], vocab: usize) -> f32 {
    assert_eq!(a.len(), b.len(), "logit counts differ");
    a.chunks(vocab)
        .zip(b.chunks(vocab))
        .map(|(ra, rb)| {
            let scale = rb.iter().fold(1f32, |m, v| m.max(v.abs()));
            ra.iter().zip(rb).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
        })
        .fold(0f32, f32::max)
}

pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Path of a fetched model in the cache, or `None` (with the skip variable set) / panic telling
/// how to fetch it.
pub fn cached_model(name: &str, file: &str) -> Option<PathBuf> {
    let cache = std::env::var("SPECCASCADE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/speccascade"));
    let path = cache.join("models").join(name).join(file);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("SPECCASCADE_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping: {} not fetched (SPECCASCADE_SKIP_MODEL_TESTS=1)", path.display());
        return None;
    }
    panic!(
        "{} is missing: run `speccascade models fetch {name}` (or set SPECCASCADE_SKIP_MODEL_TESTS=1)",
        path.display()
    );
}

/// Block invariance: the logits of every position of `seq` computed one token at a time (the
/// first through `start`) must equal, bit for bit, those of `splits` random splits into a prefill
/// and blocks of 1..=`max_block` tokens, with random truncate-and-re-extend steps in between.
/// Panics naming the split, the position and the largest difference on the first mismatch.
pub fn assert_block_invariant(
    m: &dyn speccascade_core::LanguageModel,
    label: &str,
    seq: &[u32],
    splits: usize,
    max_block: usize,
    seed: u64,
) {
    let vocab = m.vocab_size();
    let n = seq.len();
    assert!(n >= 2, "need at least two tokens");
    // Reference: position i's logits after token i, one token per call.
    let (mut s, first) = m.start(&seq[..1]).unwrap();
    let mut want = vec![first];
    for &t in &seq[1..] {
        want.push(s.extend(&[t]).unwrap().into_vec());
    }
    drop(s);
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |bound: usize| -> usize {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % bound as u64) as usize
    };
    let same = |got: &[f32], pos: usize, how: &str| {
        let w = &want[pos];
        assert_eq!(got.len(), vocab);
        if got.iter().zip(w).any(|(a, b)| a.to_bits() != b.to_bits()) {
            let diff = got.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            panic!("{label}: position {pos} ({how}) differs from the one-token-at-a-time logits (max |diff| {diff:e})");
        }
    };
    for split in 0..splits {
        let prompt = 1 + next(n - 1);
        let (mut s, last) = m.start(&seq[..prompt]).unwrap();
        same(&last, prompt - 1, &format!("split {split}: prefill of {prompt}"));
        let mut pos = prompt; // next position to compute
        while pos < n {
            let k = (1 + next(max_block)).min(n - pos);
            let rows = s.extend(&seq[pos..pos + k]).unwrap();
            for i in 0..k {
                same(rows.row(i), pos + i, &format!("split {split}: row {i} of a block of {k}"));
            }
            pos += k;
            // Sometimes roll back into the continuation and recompute from there.
            if next(3) == 0 && s.len() > 0 {
                let back = 1 + next(s.len());
                s.truncate(s.len() - back).unwrap();
                pos -= back;
            }
        }
    }
}

/// One sequence's schedule for [`assert_batch_matches_alone`]: per step, an optional roll-back
/// (the continuation's new length) and then the range of `seq` to extend by (may be empty).
fn batch_schedule(seq_len: usize, prompt: usize, sizes: &[usize], offset: usize) -> Vec<(Option<usize>, (usize, usize))> {
    let mut steps = Vec::new();
    let mut pos = prompt;
    let mut j = 0;
    while pos < seq_len {
        // On the third step, roll back two tokens of the continuation (when it has them) first.
        let back = if j == 2 && pos - prompt >= 2 { Some(pos - prompt - 2) } else { None };
        if back.is_some() {
            pos -= 2;
        }
        let k = sizes[(offset + j) % sizes.len()].min(seq_len - pos);
        steps.push((back, (pos, pos + k)));
        pos += k;
        j += 1;
    }
    steps
}

/// Batched extension across sequences: sessions of `seqs[i]` (prompt `prompts[i]`; owned by
/// `models[i % models.len()]`, so with two models some of the sessions are foreign to the first)
/// are extended step by step with `models[0].extend_batch`, chunk sizes cycling through `sizes`
/// (shifted per sequence, so one call mixes k = 1 with blocks), with a roll-back on the third step.
/// Every row must be the same bits as the same schedule run on each session alone with `extend`.
/// Then a batch holding one out-of-vocabulary token must fail, and with `checks_first` (a model
/// that packs the sessions and checks every job before it runs any) none of this model's
/// sessions may have been extended by it.
pub fn assert_batch_matches_alone(
    models: &[&dyn speccascade_core::LanguageModel],
    label: &str,
    seqs: &[Vec<u32>],
    prompts: &[usize],
    sizes: &[usize],
    checks_first: bool,
) {
    let owner = |i: usize| models[i % models.len()];
    let plans: Vec<_> = seqs.iter().zip(prompts).enumerate().map(|(i, (s, &p))| batch_schedule(s.len(), p, sizes, i)).collect();
    // Alone: each session on its own.
    let want: Vec<Vec<Vec<f32>>> = plans
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            let (mut s, _) = owner(i).start(&seqs[i][..prompts[i]]).unwrap();
            plan.iter()
                .map(|&(back, (a, b))| {
                    if let Some(len) = back {
                        s.truncate(len).unwrap();
                    }
                    s.extend(&seqs[i][a..b]).unwrap().into_vec()
                })
                .collect()
        })
        .collect();
    // Batched: every session's step j in one call.
    let mut sessions: Vec<_> = (0..seqs.len()).map(|i| owner(i).start(&seqs[i][..prompts[i]]).unwrap().0).collect();
    let steps = plans.iter().map(Vec::len).max().unwrap_or(0);
    for j in 0..steps {
        let mut who = Vec::new();
        let mut jobs: Vec<(&mut (dyn speccascade_core::Session + '_), &[u32])> = Vec::new();
        for (i, s) in sessions.iter_mut().enumerate() {
            if let Some(&(back, (a, b))) = plans[i].get(j) {
                if let Some(len) = back {
                    s.truncate(len).unwrap();
                }
                who.push(i);
                jobs.push((s.as_mut(), &seqs[i][a..b]));
            }
        }
        let rows: usize = jobs.iter().map(|j| j.1.len()).sum();
        let got = models[0].extend_batch(&mut jobs).unwrap();
        assert_eq!(got.len(), who.len(), "{label}: step {j}: one result per job");
        for (g, &i) in got.iter().zip(&who) {
            let w = &want[i][j];
            let (a, b) = plans[i][j].1;
            assert_eq!(g.as_slice().len(), w.len(), "{label}: step {j}, sequence {i}: rows");
            if g.as_slice().iter().zip(w).any(|(x, y)| x.to_bits() != y.to_bits()) {
                let diff = g.as_slice().iter().zip(w).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                panic!(
                    "{label}: step {j} ({} jobs, {rows} rows), sequence {i} (positions {a}..{b}) differs from its \
                     session alone (max |diff| {diff:e})",
                    who.len()
                );
            }
            assert_eq!(sessions[i].len(), b - prompts[i], "{label}: step {j}, sequence {i}: session length");
        }
    }
    // A bad token anywhere: nothing of this model's is extended.
    let vocab = models[0].vocab_size() as u32;
    let lens: Vec<usize> = sessions.iter().map(|s| s.len()).collect();
    let bad = [vocab];
    let good = [1u32];
    let mut jobs: Vec<(&mut (dyn speccascade_core::Session + '_), &[u32])> = sessions
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| i % models.len() == 0)
        .map(|(i, s)| (s.as_mut(), if i == 0 { &good[..] } else { &bad[..] }))
        .collect();
    if jobs.len() >= 2 {
        assert!(models[0].extend_batch(&mut jobs).is_err(), "{label}: an out-of-vocabulary token was accepted");
        drop(jobs);
        for (i, s) in sessions.iter().enumerate().filter(|(i, _)| checks_first && i % models.len() == 0) {
            assert_eq!(s.len(), lens[i], "{label}: sequence {i} was extended by a batch that failed");
        }
    }
}
