//! Shared model calls: one store of model outputs per example, keyed by token prefix.
//!
//! With common random numbers, the configurations of one example agree token for token until their
//! decisions differ, so most of what they ask a model has been asked before. [`SharedModel`] wraps a
//! real [`LanguageModel`] and answers from a prefix trie of logit rows:
//!
//! - the prefill runs once per example (the first `start` with a new conditioning resets the store);
//! - `extend` returns stored rows where it can; on a miss it brings the *one* real session of this
//!   model to the needed prefix (truncate to the common prefix, then one `extend` over everything
//!   missing, the catch-up and the call's own tokens together) and stores every row it computed;
//! - rows beyond the cap are evicted least recently used first; an evicted row is simply
//!   recomputed on a miss.
//!
//! This is exact when a position's logits are a pure function of its prefix (block invariance,
//! issue 10 item 0; the synthetic models are). Drafter and verifier positions alike are shared.
//!
//! Every call is logged twice. The *logical* calls (what the decoder asked for: positions k and
//! context depth) are kept per configuration ([`CallStats`]) so its latency can be replayed; the
//! *real* calls (what the model computed, with their wall-clock seconds) feed the cost table
//! ([`crate::latency::CostTable`]). With sharing off, every logical call is a real call (the
//! `--no-share` reference and the `--validate-latency` runs).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use speccascade_core::{CoreError, LanguageModel, Logits, ModelError, Sampling, Session, TokenDist, TokenId};

/// Default cap of each model's store (rows of logits), in bytes.
pub const DEFAULT_CAP_BYTES: usize = 1 << 30;

/// One timed real forward call.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Positions scored (tokens appended); for a prefill, the prompt length.
    pub k: usize,
    /// Tokens already in context before the call (conditioning included); 0 for a prefill.
    pub depth: usize,
    pub seconds: f64,
}

/// The logical calls of one configuration on one example, for one model: per positions-per-call k,
/// the number of calls and the sum of their context depths (sufficient statistics for a cost that
/// is affine in depth at fixed k), and the prefill's prompt length.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelCalls {
    /// Prompt tokens of the prefill (0: no prefill).
    pub prefill_tokens: usize,
    /// `k → [calls, Σ depth]`.
    pub by_k: BTreeMap<usize, [u64; 2]>,
}

impl ModelCalls {
    pub fn calls(&self) -> u64 {
        self.by_k.values().map(|v| v[0]).sum()
    }
    pub fn positions(&self) -> u64 {
        self.by_k.iter().map(|(k, v)| *k as u64 * v[0]).sum()
    }
    fn log(&mut self, k: usize, depth: usize) {
        let e = self.by_k.entry(k).or_default();
        e[0] += 1;
        e[1] += depth as u64;
    }
}

/// Both models' logical calls of one record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CallStats {
    pub drafter: ModelCalls,
    pub verifier: ModelCalls,
}

/// Positions asked for vs positions computed, over a sweep, for one model.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ShareCounts {
    /// Positions the configurations asked for (prefill rows not counted).
    pub logical_positions: u64,
    /// Positions the real model computed (catch-up included).
    pub computed_positions: u64,
    pub logical_prefills: u64,
    pub real_prefills: u64,
    /// Prompt tokens prefilled by the real model.
    pub real_prefill_tokens: u64,
    /// Seconds spent in real calls (prefill included) and in real prefills alone.
    pub real_seconds: f64,
    pub real_prefill_seconds: f64,
    /// Rows evicted because the store reached its cap.
    pub evicted_rows: u64,
    /// The largest the store grew (bytes of logits).
    pub peak_store_bytes: u64,
}

impl ShareCounts {
    /// Positions logically scored ÷ positions computed.
    pub fn factor(&self) -> f64 {
        if self.computed_positions == 0 { f64::NAN } else { self.logical_positions as f64 / self.computed_positions as f64 }
    }
    pub fn add(&mut self, o: &ShareCounts) {
        self.logical_positions += o.logical_positions;
        self.computed_positions += o.computed_positions;
        self.logical_prefills += o.logical_prefills;
        self.real_prefills += o.real_prefills;
        self.real_prefill_tokens += o.real_prefill_tokens;
        self.real_seconds += o.real_seconds;
        self.real_prefill_seconds += o.real_prefill_seconds;
        self.evicted_rows += o.evicted_rows;
        self.peak_store_bytes = self.peak_store_bytes.max(o.peak_store_bytes);
    }
}

struct Node {
    children: HashMap<TokenId, u32>,
    /// Logits of the token after this node's prefix (`None`: not computed yet, or evicted).
    row: Option<Arc<[f32]>>,
    /// The row's distributions at the samplings asked for so far (computed once, served to every
    /// configuration; each costs as much memory as the row). Dropped with the row.
    dists: Vec<TokenDist>,
    /// When the row was last stored or served (the eviction order).
    used: u64,
}

/// The per-example store: a trie over continuation tokens; the root is the conditioning.
///
/// Eviction is least recently used, kept lazily: every store or hit appends `(node, tick)` to a
/// queue, and eviction pops entries, skipping those whose node was used again since. The rows
/// every configuration needs (the prompt's first continuation positions) stay warm.
struct Trie {
    nodes: Vec<Node>,
    queue: VecDeque<(u32, u64)>,
    tick: u64,
    /// Vocabulary-sized vectors held: rows of logits plus their distributions.
    rows: usize,
}

impl Trie {
    fn new(first: Vec<f32>) -> Self {
        Self { nodes: vec![Node { children: HashMap::new(), row: Some(first.into()), dists: Vec::new(), used: 0 }], queue: VecDeque::new(), tick: 0, rows: 1 }
    }
    fn child(&mut self, node: u32, t: TokenId) -> u32 {
        if let Some(&c) = self.nodes[node as usize].children.get(&t) {
            return c;
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node { children: HashMap::new(), row: None, dists: Vec::new(), used: 0 });
        self.nodes[node as usize].children.insert(t, id);
        id
    }
    fn touch(&mut self, node: u32) {
        if node == 0 {
            return; // the root's row is never evicted
        }
        self.tick += 1;
        self.nodes[node as usize].used = self.tick;
        self.queue.push_back((node, self.tick));
    }
    fn put(&mut self, node: u32, row: &[f32]) {
        if self.nodes[node as usize].row.is_none() {
            self.nodes[node as usize].row = Some(row.into());
            self.rows += 1;
        }
        self.touch(node);
    }
    /// The distribution of a stored row at `sampling`, computed on first use and kept.
    fn dist(&mut self, node: u32, sampling: &Sampling) -> Result<TokenDist, CoreError> {
        let n = &mut self.nodes[node as usize];
        if let Some(d) = n.dists.iter().find(|d| d.sampling() == sampling) {
            return Ok(d.clone());
        }
        let row = n.row.clone().expect("dist of a stored row");
        let d = TokenDist::from_shared(row, sampling)?;
        n.dists.push(d.clone());
        self.rows += 1;
        Ok(d)
    }
    /// Evict the least recently used rows until at most `max_rows` remain; returns how many went.
    fn evict_to(&mut self, max_rows: usize) -> u64 {
        let mut n = 0;
        while self.rows > max_rows.max(1) {
            let Some((id, tick)) = self.queue.pop_front() else { break };
            let node = &mut self.nodes[id as usize];
            if node.used == tick && node.row.take().is_some() {
                self.rows -= 1 + node.dists.len();
                node.dists.clear();
                n += 1;
            }
        }
        // Entries superseded by later uses are dropped as they reach the front; keep the queue
        // from growing past a few times the rows it tracks.
        if self.queue.len() > 4 * self.rows + 1024 {
            let nodes = &self.nodes;
            self.queue.retain(|&(id, tick)| nodes[id as usize].used == tick && nodes[id as usize].row.is_some());
        }
        n
    }
}

struct State<'m> {
    /// Bumped at every new example: sessions of an earlier example refuse to run.
    epoch: u64,
    conditioning: Vec<TokenId>,
    trie: Option<Trie>,
    /// The model's one real session for this example and the continuation it holds.
    real: Option<(Box<dyn Session + 'm>, Vec<TokenId>)>,
    logical: ModelCalls,
    samples: Vec<Sample>,
    prefills: Vec<Sample>,
    counts: ShareCounts,
}

/// A [`LanguageModel`] that shares one example's model outputs among configurations (or, with
/// sharing off, passes through), logging logical and real calls.
pub struct SharedModel<'m> {
    inner: &'m dyn LanguageModel,
    share: bool,
    max_rows: usize,
    state: Mutex<State<'m>>,
}

impl<'m> SharedModel<'m> {
    /// Wrap `inner`; `cap_bytes` bounds the store (rows of `vocab × 4` bytes; at least one row).
    pub fn new(inner: &'m dyn LanguageModel, share: bool, cap_bytes: usize) -> Self {
        let row_bytes = inner.vocab_size().max(1) * std::mem::size_of::<f32>();
        Self {
            inner,
            share,
            max_rows: (cap_bytes / row_bytes).max(2),
            state: Mutex::new(State {
                epoch: 0,
                conditioning: Vec::new(),
                trie: None,
                real: None,
                logical: ModelCalls::default(),
                samples: Vec::new(),
                prefills: Vec::new(),
                counts: ShareCounts::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<'m>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The logical calls since the last `take_calls` (one configuration's record).
    pub fn take_calls(&self) -> ModelCalls {
        std::mem::take(&mut self.lock().logical)
    }

    /// The real calls timed since the last `take_samples`: (extend calls, prefills).
    pub fn take_samples(&self) -> (Vec<Sample>, Vec<Sample>) {
        let mut s = self.lock();
        (std::mem::take(&mut s.samples), std::mem::take(&mut s.prefills))
    }

    /// Counts over everything this wrapper served.
    pub fn counts(&self) -> ShareCounts {
        self.lock().counts.clone()
    }

    /// Does this wrapper share calls (or pass them through)?
    pub fn is_shared(&self) -> bool {
        self.share
    }

    /// Drop the store and the real session (the example is done; frees the memory).
    pub fn end_example(&self) {
        let mut s = self.lock();
        s.trie = None;
        s.real = None;
        s.conditioning.clear();
        s.epoch += 1;
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

impl LanguageModel for SharedModel<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn eos_ids(&self) -> &[TokenId] {
        self.inner.eos_ids()
    }
    fn start<'a>(&'a self, conditioning: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        let mut s = self.lock();
        s.logical.prefill_tokens = conditioning.len();
        s.counts.logical_prefills += 1;
        let reuse = self.share && s.trie.is_some() && s.conditioning == conditioning;
        if !reuse {
            let (r, secs) = timed(|| self.inner.start(conditioning));
            let (session, first) = r?;
            s.prefills.push(Sample { k: conditioning.len(), depth: 0, seconds: secs });
            s.counts.real_prefills += 1;
            s.counts.real_prefill_tokens += conditioning.len() as u64;
            s.counts.real_seconds += secs;
            s.counts.real_prefill_seconds += secs;
            if !self.share {
                return Ok((Box::new(Direct { model: self, inner: session, depth: conditioning.len() }), first));
            }
            s.epoch += 1;
            s.conditioning = conditioning.to_vec();
            s.trie = Some(Trie::new(first));
            s.real = Some((session, Vec::new()));
        }
        let first = s.trie.as_ref().and_then(|t| t.nodes[0].row.as_deref()).expect("the root row is never evicted").to_vec();
        Ok((Box::new(Shared { model: self, epoch: s.epoch, path: Vec::new(), tokens: Vec::new() }), first))
    }
}

/// A pass-through session (sharing off): every logical call is a real, timed call.
struct Direct<'a, 'm> {
    model: &'a SharedModel<'m>,
    inner: Box<dyn Session + 'm>,
    depth: usize,
}

impl Direct<'_, '_> {
    /// One real call of `k` positions, timed and logged as a logical and a real call alike.
    fn call<T, E>(&mut self, k: usize, f: impl FnOnce(&mut dyn Session) -> Result<T, E>) -> Result<T, E> {
        let depth = self.depth + self.inner.len();
        let (r, secs) = timed(|| f(self.inner.as_mut()));
        let out = r?;
        let mut s = self.model.lock();
        s.logical.log(k, depth);
        s.samples.push(Sample { k, depth, seconds: secs });
        s.counts.logical_positions += k as u64;
        s.counts.computed_positions += k as u64;
        s.counts.real_seconds += secs;
        Ok(out)
    }
}

impl Session for Direct<'_, '_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        self.call(tokens.len(), |s| s.extend(tokens))
    }
    /// Timed with the distributions, as the shared store's real calls are.
    fn extend_dists(&mut self, tokens: &[TokenId], sampling: &Sampling) -> Result<Vec<TokenDist>, CoreError> {
        self.call(tokens.len(), |s| s.extend_dists(tokens, sampling))
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.truncate(len)
    }
}

/// A session answered from the example's store.
struct Shared<'a, 'm> {
    model: &'a SharedModel<'m>,
    epoch: u64,
    /// `path[i]`: the trie node of the prefix holding `i + 1` continuation tokens.
    path: Vec<u32>,
    /// The continuation tokens along `path`.
    tokens: Vec<TokenId>,
}

impl Shared<'_, '_> {
    fn node(&self) -> u32 {
        self.path.last().copied().unwrap_or(0)
    }
}

impl Shared<'_, '_> {
    /// The stored rows after each of `tokens` appended to this session's prefix, computing the
    /// missing ones in one real call; the session then holds the longer prefix. Returns the nodes
    /// and their rows (held here, so eviction cannot lose them before they are served), and with
    /// `sampling` their distributions. A real call's timed sample includes the distributions of
    /// the rows it computed, as an unshared run pays for them in the same call.
    #[allow(clippy::type_complexity)]
    fn fetch(&mut self, s: &mut State<'_>, tokens: &[TokenId], sampling: Option<&Sampling>) -> Result<(Vec<(u32, Arc<[f32]>)>, Vec<TokenDist>), CoreError> {
        let model = self.model;
        if tokens.is_empty() {
            return Err(ModelError::Empty(format!("{}: extend", model.name())).into());
        }
        if s.epoch != self.epoch {
            return Err(ModelError::Other(format!("{}: a shared session outlived its example", model.name())).into());
        }
        let vocab = model.inner.vocab_size();
        let cond_len = s.conditioning.len();
        let depth = cond_len + self.path.len();
        s.logical.log(tokens.len(), depth);
        s.counts.logical_positions += tokens.len() as u64;
        let trie = s.trie.as_mut().expect("a shared session has a store");
        // Rows after each appended token: the row of the node of prefix ++ tokens[..=i].
        let mut nodes = Vec::with_capacity(tokens.len());
        let mut cur = self.node();
        for &t in tokens {
            if t as usize >= vocab {
                return Err(ModelError::TokenOutOfRange { model: model.name().to_string(), token: t, vocab }.into());
            }
            cur = trie.child(cur, t);
            nodes.push(cur);
        }
        if let Some(m) = nodes.iter().position(|&n| trie.nodes[n as usize].row.is_none()) {
            // The continuation whose logits are needed: this session's tokens, then `tokens`.
            let want: Vec<TokenId> = self.tokens.iter().chain(tokens).copied().collect();
            let (real, held) = s.real.as_mut().expect("a shared session has a real session");
            let common = held.iter().zip(&want).take_while(|(a, b)| a == b).count().min(self.path.len() + m);
            if common < held.len() {
                real.truncate(common)?;
                held.truncate(common);
            }
            let feed = &want[common..];
            let started = Instant::now();
            let logits = real.extend(feed)?;
            logits.validate(model.name(), feed.len(), vocab)?;
            held.extend_from_slice(feed);
            // Store every computed row: row i is the logits after want[common + i].
            let mut node = 0u32;
            for (j, &t) in want.iter().enumerate() {
                node = trie.child(node, t);
                if j >= common {
                    trie.put(node, logits.row(j - common));
                }
            }
            let dists = match sampling {
                Some(sm) => nodes.iter().map(|&n| trie.dist(n, sm)).collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            let secs = started.elapsed().as_secs_f64();
            s.samples.push(Sample { k: feed.len(), depth: cond_len + common, seconds: secs });
            s.counts.computed_positions += feed.len() as u64;
            s.counts.real_seconds += secs;
            return Ok((self.served(trie, &nodes, tokens), dists));
        }
        let dists = match sampling {
            Some(sm) => nodes.iter().map(|&n| trie.dist(n, sm)).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok((self.served(trie, &nodes, tokens), dists))
    }

    /// The rows of `nodes` (marked as used), after which the session holds `tokens` more.
    fn served(&mut self, trie: &mut Trie, nodes: &[u32], tokens: &[TokenId]) -> Vec<(u32, Arc<[f32]>)> {
        let rows = nodes
            .iter()
            .map(|&n| {
                trie.touch(n);
                (n, trie.nodes[n as usize].row.clone().expect("stored or just computed"))
            })
            .collect();
        self.path.extend_from_slice(nodes);
        self.tokens.extend_from_slice(tokens);
        rows
    }

    /// Evict down to the cap and note the store's peak.
    fn settle(&self, s: &mut State<'_>) {
        let vocab = self.model.inner.vocab_size();
        let trie = s.trie.as_mut().expect("a shared session has a store");
        s.counts.evicted_rows += trie.evict_to(self.model.max_rows);
        s.counts.peak_store_bytes = s.counts.peak_store_bytes.max((trie.rows * vocab * 4) as u64);
    }
}

impl Session for Shared<'_, '_> {
    fn len(&self) -> usize {
        self.path.len()
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        let model = self.model;
        let mut guard = model.lock();
        let (rows, _) = self.fetch(&mut guard, tokens, None).map_err(|e| match e {
            CoreError::Model(e) => e,
            e => ModelError::Other(e.to_string()),
        })?;
        self.settle(&mut guard);
        let vocab = model.inner.vocab_size();
        let mut data = Vec::with_capacity(tokens.len() * vocab);
        for (_, row) in &rows {
            data.extend_from_slice(row);
        }
        Logits::new(tokens.len(), vocab, data)
    }
    /// The stored rows' distributions, each computed once per sampling for all configurations.
    fn extend_dists(&mut self, tokens: &[TokenId], sampling: &Sampling) -> Result<Vec<TokenDist>, CoreError> {
        let model = self.model;
        let mut guard = model.lock();
        let (_, dists) = self.fetch(&mut guard, tokens, Some(sampling))?;
        self.settle(&mut guard);
        Ok(dists)
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.path.len() {
            return Err(ModelError::BadTruncate { len, held: self.path.len() });
        }
        self.path.truncate(len);
        self.tokens.truncate(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use speccascade_core::synthetic::SyntheticModel;

    /// Random extends and truncates of several sessions against one store give exactly the logits
    /// of the model's own sessions, with and without eviction.
    #[test]
    fn shared_sessions_return_the_models_own_logits() {
        let m = SyntheticModel::truth(50, 3);
        for cap_rows in [2usize, 5, 1_000_000] {
            let shared = SharedModel::new(&m, true, cap_rows * 50 * 4);
            let prompt = [3u32, 9, 4];
            let u = |i: u64| speccascade_core::rng::uniform(11, cap_rows as u64, i, speccascade_core::Purpose::Draft);
            let mut step = 0u64;
            let mut next = || {
                step += 1;
                u(step)
            };
            for _session in 0..6 {
                let (mut s, first) = shared.start(&prompt).unwrap();
                let (mut r, rfirst) = m.start(&prompt).unwrap();
                assert_eq!(first, rfirst);
                for _ in 0..12 {
                    if next() < 0.3 && s.len() > 0 {
                        let len = (next() * (s.len() + 1) as f64) as usize;
                        s.truncate(len.min(s.len())).unwrap();
                        r.truncate(len.min(r.len())).unwrap();
                    }
                    let k = 1 + (next() * 4.0) as usize;
                    // Few distinct tokens so the sessions revisit each other's prefixes.
                    let toks: Vec<TokenId> = (0..k).map(|_| 1 + (next() * 3.0) as TokenId).collect();
                    assert_eq!(s.extend(&toks).unwrap(), r.extend(&toks).unwrap(), "cap {cap_rows} rows");
                    assert_eq!(s.len(), r.len());
                }
            }
            let c = shared.counts();
            assert_eq!(c.real_prefills, 1, "one prefill per example");
            assert_eq!(c.logical_prefills, 6);
            if cap_rows > 1000 {
                assert!(c.computed_positions < c.logical_positions, "{c:?}");
                assert_eq!(c.evicted_rows, 0);
            } else {
                assert!(c.evicted_rows > 0, "{c:?}");
                assert!(c.peak_store_bytes <= (cap_rows.max(2) * 50 * 4) as u64 + 50 * 4 * 5, "{c:?}");
            }
            let calls = shared.take_calls();
            assert_eq!(calls.positions(), c.logical_positions);
        }
    }

    /// Distributions served from the store equal the model's own, at every sampling asked for,
    /// and a position asked again at the same sampling gets the very same (shared) distribution.
    #[test]
    fn shared_distributions_equal_the_models_own_and_are_computed_once() {
        let m = SyntheticModel::truth(40, 5);
        let shared = SharedModel::new(&m, true, DEFAULT_CAP_BYTES);
        let prompt = [2u32, 7];
        let samplings = [Sampling::greedy(), Sampling::default(), Sampling::new(0.5, 0.9).unwrap()];
        let mut seen: Vec<TokenDist> = Vec::new();
        for (i, sampling) in samplings.iter().cycle().take(6).enumerate() {
            let (mut s, _) = shared.start(&prompt).unwrap();
            let (mut r, _) = m.start(&prompt).unwrap();
            for toks in [&[1u32, 3][..], &[4], &[5, 6, 1]] {
                let got = s.extend_dists(toks, sampling).unwrap();
                let want = TokenDist::from_logits_matrix(r.extend(toks).unwrap(), sampling).unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.probs(), w.probs(), "sampling {sampling:?}");
                    assert_eq!(g.logits(), w.logits());
                    assert_eq!(g.sampling(), sampling);
                }
                if i >= samplings.len() {
                    // The second round at this sampling: the same allocations as the first.
                    assert!(got.iter().all(|g| seen.iter().any(|d| std::ptr::eq(d.probs(), g.probs()))));
                } else {
                    seen.extend(got);
                }
            }
        }
        let c = shared.counts();
        assert_eq!(c.computed_positions, 6, "every position computed once: {c:?}");
        // Six rows, each with three distributions.
        assert_eq!(c.peak_store_bytes, ((1 + 6) + 6 * 3) as u64 * 40 * 4, "{c:?}");
    }

    #[test]
    fn a_new_conditioning_starts_a_new_store_and_old_sessions_refuse() {
        let m = SyntheticModel::truth(30, 1);
        let shared = SharedModel::new(&m, true, DEFAULT_CAP_BYTES);
        let (mut a, _) = shared.start(&[1, 2]).unwrap();
        a.extend(&[3]).unwrap();
        let (mut b, _) = shared.start(&[1, 5]).unwrap();
        let (mut r, _) = m.start(&[1, 5]).unwrap();
        assert_eq!(b.extend(&[3, 4]).unwrap(), r.extend(&[3, 4]).unwrap());
        assert!(a.extend(&[4]).is_err());
        assert_eq!(shared.counts().real_prefills, 2);
    }
}
