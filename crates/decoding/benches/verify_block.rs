//! Criterion bench: verifying one block (vocabulary 151 936, γ = 5) for every speculative method.
//!
//! `verify/<method>`: from the verifier's γ + 1 logit rows to the emitted tokens — building the
//! verifier's distributions (softmax, untransformed normaliser), the rule's target at each position
//! and the accept / residual / bonus draws. `block/<method>`: the same plus the drafter's γ
//! distributions (built while drafting in a real run): the driver's whole per-block overhead.
//!
//! Run: `cargo bench -p speccascade-decoding --bench verify_block`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use speccascade_core::synthetic::SyntheticPair;
use speccascade_core::{Block, Sampling, Stream, TokenDist, TokenId, sample, verify_block, Purpose};
use speccascade_decoding::{Method, MethodSpec};

const VOCAB: usize = 151_936;
const GAMMA: usize = 5;

fn alpha_for(m: Method) -> Option<f64> {
    m.alpha_range().map(|r| if r.lo.is_finite() { (r.lo.max(0.0) + r.hi.min(1.0)) / 2.0 } else { 0.5 })
}

fn bench(c: &mut Criterion) {
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

    let mut group = c.benchmark_group("verify");
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

    let mut group = c.benchmark_group("block");
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
criterion_main!(benches);
