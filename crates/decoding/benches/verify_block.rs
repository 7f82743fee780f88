//! Criterion bench: verifying one block (vocabulary 151 936, γ = 5) for every speculative method.
//!
//! `verify/<method>`: from the verifier's γ + 1 logit rows to the emitted tokens — building the
//! verifier's distributions (softmax, untransformed normaliser), the rule's target at each position
//! and the accept / residual / bonus draws. `block/<method>`: the same plus the drafter's γ
//! distributions (built while drafting in a real run): the driver's whole per-block overhead.
//!
//! Both are measured twice: in wall-clock time, and in CPU time of the whole process (all
//! threads; `cpu/...`). These machines are shared and often oversubscribed: wall time then
//! measures the neighbours, while CPU time stays close to the work itself. With the rows spread
//! over 2 threads, an idle machine's wall time is about half the CPU time.
//!
//! Run: `cargo bench -p speccascade-decoding --bench verify_block`

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use speccascade_core::synthetic::SyntheticPair;
use speccascade_core::{Block, Sampling, Stream, TokenDist, TokenId, sample, verify_block, Purpose};
use speccascade_decoding::{Method, MethodSpec};

const VOCAB: usize = 151_936;
const GAMMA: usize = 5;

fn alpha_for(m: Method) -> Option<f64> {
    m.alpha_range().map(|r| if r.lo.is_finite() { (r.lo.max(0.0) + r.hi.min(1.0)) / 2.0 } else { 0.5 })
}

/// CPU time consumed by the whole process (every thread), from `CLOCK_PROCESS_CPUTIME_ID`.
struct ProcessCpuTime;

fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ProcessCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        process_cpu()
    }
    fn end(&self, i: Duration) -> Duration {
        process_cpu() - i
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;
impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical >= 1e6 { (1e6, "ms cpu") } else { (1e3, "µs cpu") };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _t: f64, _th: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|_| {});
        "elements"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns cpu"
    }
}

fn bench(c: &mut Criterion) {
    speccascade_core::alloc::keep_freed_memory();
    bench_with(c, "");
}

fn bench_cpu(c: &mut Criterion<ProcessCpuTime>) {
    bench_with(c, "cpu/");
}

fn bench_with<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let pair = SyntheticPair::default_with_vocab(VOCAB, 1);
    let sampling = Sampling::default();
    let stream = Stream::new(0, 0);
    let prompt: Vec<TokenId> = vec![11, 22, 33];
    // Drafts sampled from the drafter; logits for both models at every position.
    let mut seq = prompt.clone();
    let mut drafts = Vec::new();
    let mut q_logits = Vec::new();
    for j in 0..GAMMA {
        let l = pair.drafter.logits(&seq);
        let q = TokenDist::from_logits(&l, &sampling).unwrap();
        let x = sample(q.probs(), stream.uniform(j as u64, Purpose::Draft));
        q_logits.push(l);
        drafts.push(x);
        seq.push(x);
    }
    let p_logits: Vec<Vec<f32>> = (0..=GAMMA).map(|j| pair.verifier.logits(&seq[..prompt.len() + j])).collect();
    let qs: Vec<TokenDist> = q_logits.iter().map(|l| TokenDist::from_logits(l, &sampling).unwrap()).collect();

    let mut group = c.benchmark_group(format!("{prefix}verify"));
    group.sample_size(30);
    for m in Method::ALL.into_iter().filter(|m| m.is_speculative()) {
        let spec = MethodSpec::new(m, alpha_for(m)).unwrap();
        let rule = spec.rule().unwrap().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(m.name()), &m, |b, _| {
            b.iter(|| {
                let ps = TokenDist::from_rows(p_logits.clone(), &sampling).unwrap();
                verify_block(&Block { drafts: &drafts, q: &qs, p: &ps, first_position: 0 }, rule.as_ref(), &stream)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("{prefix}block"));
    group.sample_size(20);
    for m in Method::ALL.into_iter().filter(|m| m.is_speculative()) {
        let spec = MethodSpec::new(m, alpha_for(m)).unwrap();
        let rule = spec.rule().unwrap().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(m.name()), &m, |b, _| {
            b.iter(|| {
                let qs = TokenDist::from_rows(q_logits.clone(), &sampling).unwrap();
                let ps = TokenDist::from_rows(p_logits.clone(), &sampling).unwrap();
                verify_block(&Block { drafts: &drafts, q: &qs, p: &ps, first_position: 0 }, rule.as_ref(), &stream)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ProcessCpuTime);
    targets = bench_cpu
}
criterion_main!(benches, cpu_benches);
