//! Batching across examples (`batch: N`): N workers decode N examples at once, and their model
//! calls meet in one [`LanguageModel::extend_batch`] per model, which runs every sequence in one
//! forward pass (one read of the weights for all of them).
//!
//! The rendezvous: a worker that calls `extend` leaves its session and tokens in the model's queue
//! and waits. When no worker is left running (each is waiting in a queue or has finished), the
//! last one to stop runs the first non-empty queue (models in the order given: drafter, then
//! verifier) as one `extend_batch`, hands the sessions and results back and wakes those workers.
//! Workers waiting for a later model keep waiting until no one needs an earlier one: the workers
//! that drafted come to verify, and the verifier's pass holds them all, not only the ones that
//! happened to be there (running both queues at once left passes of 1.5 sessions at batch 4). A prefill (`start`) is not batched: it runs on its own,
//! while the others wait. Every result is what the session's own `extend` would return (the
//! models' `extend_batch` contract), so decoding, and every record, is the same as batch 1's.

use std::sync::{Condvar, Mutex, MutexGuard};

use speccascade_core::{LanguageModel, Logits, ModelError, Session, TokenId};

/// A session waiting in a queue, with the tokens to extend it by.
struct Job<'m> {
    ticket: u64,
    session: Box<dyn Session + 'm>,
    tokens: Vec<TokenId>,
}

/// What a waiting worker gets back: its session and the extend's result.
type Done<'m> = (Box<dyn Session + 'm>, Result<Logits, ModelError>);

struct State<'m> {
    /// Workers neither waiting in a queue nor finished.
    running: usize,
    /// Per model, the jobs waiting.
    queues: Vec<Vec<Job<'m>>>,
    /// Finished jobs by ticket, until their worker takes them.
    done: Vec<(u64, Done<'m>)>,
    next_ticket: u64,
    /// Passes run and the rows (jobs) in them, per model.
    passes: Vec<(u64, u64)>,
    /// A pass panicked: its sessions are gone, so the workers waiting for them panic too (the
    /// run fails with the panic rather than hanging).
    failed: bool,
}

/// The meeting point of `workers` workers over `models` (indexed as in [`Batcher::model`]).
pub struct Batcher<'m> {
    models: Vec<&'m dyn LanguageModel>,
    state: Mutex<State<'m>>,
    wake: Condvar,
}

impl<'m> Batcher<'m> {
    /// `models` in the order their queues are served (the drafter first: see the module's doc).
    pub fn new(models: Vec<&'m dyn LanguageModel>, workers: usize) -> Self {
        let n = models.len();
        let state = State { running: workers, queues: (0..n).map(|_| Vec::new()).collect(), done: Vec::new(), next_ticket: 0, passes: vec![(0, 0); n], failed: false };
        Self { models, state: Mutex::new(state), wake: Condvar::new() }
    }

    /// Model `i` as a worker sees it: its sessions' extends go through the queue.
    pub fn model(&self, i: usize) -> BatchedModel<'_, 'm> {
        BatchedModel { batcher: self, index: i }
    }

    /// A worker has finished for good (call once per worker; [`WorkerGuard`] does).
    pub fn leave(&self) {
        let mut st = self.lock();
        st.running -= 1;
        drop(self.run_if_idle(st));
    }

    /// Per model: (passes, jobs) so far — jobs ÷ passes is the batch the calls met in.
    pub fn passes(&self) -> Vec<(u64, u64)> {
        self.lock().passes.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State<'m>> {
        // A worker that panicked has already failed the run; the state is still consistent (every
        // change to it is made under the lock in one step).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(&self, model: usize, session: Box<dyn Session + 'm>, tokens: &[TokenId]) -> Done<'m> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queues[model].push(Job { ticket, session, tokens: tokens.to_vec() });
        st.running -= 1;
        let mut st = self.run_if_idle(st);
        loop {
            if let Some(i) = st.done.iter().position(|(t, _)| *t == ticket) {
                return st.done.swap_remove(i).1;
            }
            if st.failed {
                drop(st);
                panic!("a batched model call panicked on another worker");
            }
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// When no worker runs and jobs wait: run the first non-empty queue (outside the lock: nobody
    /// else can start one meanwhile, since nobody runs), then hand the results back and wake
    /// everyone (each waiter looks for its own ticket).
    fn run_if_idle<'g>(&'g self, mut st: MutexGuard<'g, State<'m>>) -> MutexGuard<'g, State<'m>> {
        if st.running > 0 {
            return st;
        }
        let Some(first) = st.queues.iter().position(|q| !q.is_empty()) else {
            return st;
        };
        let queues: Vec<Vec<Job<'m>>> = st.queues.iter_mut().enumerate().map(|(i, q)| if i == first { std::mem::take(q) } else { Vec::new() }).collect();
        let woken: usize = queues.iter().map(Vec::len).sum();
        // Counted as running now, so that no other worker (one that leaves meanwhile) starts a pass.
        st.running += woken;
        drop(st);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut finished = Vec::with_capacity(woken);
            let mut passes = Vec::new();
            for (i, jobs) in queues.into_iter().enumerate() {
                if !jobs.is_empty() {
                    passes.push((i, jobs.len()));
                    finished.extend(run_pass(self.models[i], jobs));
                }
            }
            (finished, passes)
        }));
        let mut st = self.lock();
        let (finished, passes) = match ran {
            Ok(r) => r,
            Err(panic) => {
                st.failed = true;
                self.wake.notify_all();
                drop(st);
                std::panic::resume_unwind(panic);
            }
        };
        for (i, n) in passes {
            st.passes[i].0 += 1;
            st.passes[i].1 += n as u64;
        }
        st.done.extend(finished);
        self.wake.notify_all();
        st
    }
}

/// One `extend_batch` over `jobs`. If it fails, each job is run again on its own (rolled back
/// first where the batch had already extended it), so that each gets its own result and error.
fn run_pass<'m>(model: &dyn LanguageModel, mut jobs: Vec<Job<'m>>) -> Vec<(u64, Done<'m>)> {
    let before: Vec<usize> = jobs.iter().map(|j| j.session.len()).collect();
    let batched = {
        let mut pairs: Vec<(&mut (dyn Session + '_), &[TokenId])> = jobs.iter_mut().map(|j| (j.session.as_mut() as &mut (dyn Session + '_), &j.tokens[..])).collect();
        model.extend_batch(&mut pairs)
    };
    match batched {
        Ok(results) if results.len() == jobs.len() => jobs.into_iter().zip(results).map(|(j, r)| (j.ticket, (j.session, Ok(r)))).collect(),
        _ => jobs
            .into_iter()
            .zip(before)
            .map(|(mut j, len)| {
                let r = if j.session.len() != len { j.session.truncate(len) } else { Ok(()) };
                let r = r.and_then(|()| j.session.extend(&j.tokens));
                (j.ticket, (j.session, r))
            })
            .collect(),
    }
}

/// Calls [`Batcher::leave`] when dropped: a worker that returns early (an error) or panics
/// still stops counting as running, so the others are not left waiting for it.
pub struct WorkerGuard<'b, 'm>(pub &'b Batcher<'m>);

impl Drop for WorkerGuard<'_, '_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// One of the batcher's models: `start` runs directly, every session's `extend` waits for its pass.
pub struct BatchedModel<'b, 'm> {
    batcher: &'b Batcher<'m>,
    index: usize,
}

impl<'b, 'm> BatchedModel<'b, 'm> {
    fn inner(&self) -> &'m dyn LanguageModel {
        self.batcher.models[self.index]
    }
}

impl LanguageModel for BatchedModel<'_, '_> {
    fn name(&self) -> &str {
        self.inner().name()
    }
    fn vocab_size(&self) -> usize {
        self.inner().vocab_size()
    }
    fn eos_ids(&self) -> &[TokenId] {
        self.inner().eos_ids()
    }
    fn start<'a>(&'a self, conditioning: &[TokenId]) -> Result<(Box<dyn Session + 'a>, Vec<f32>), ModelError> {
        let (session, first) = self.inner().start(conditioning)?;
        Ok((Box::new(BatchedSession { batcher: self.batcher, index: self.index, inner: Some(session) }), first))
    }
}

/// A session whose extends go through the batcher (it lends its inner session to the pass).
struct BatchedSession<'b, 'm> {
    batcher: &'b Batcher<'m>,
    index: usize,
    /// Always `Some` outside [`Session::extend`].
    inner: Option<Box<dyn Session + 'm>>,
}

impl BatchedSession<'_, '_> {
    fn inner(&self) -> &(dyn Session + '_) {
        self.inner.as_deref().expect("the session is back from its pass")
    }
}

impl Session for BatchedSession<'_, '_> {
    fn len(&self) -> usize {
        self.inner().len()
    }
    fn extend(&mut self, tokens: &[TokenId]) -> Result<Logits, ModelError> {
        let session = self.inner.take().expect("the session is back from its pass");
        let (session, result) = self.batcher.submit(self.index, session, tokens);
        self.inner = Some(session);
        result
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.as_deref_mut().expect("the session is back from its pass").truncate(len)
    }
    fn transfer_s(&self) -> f64 {
        self.inner().transfer_s()
    }
}
