//! speccascade-harness: turns an experiment YAML into runs and runs into a result store.
//!
//! - [`config`]: the experiment file (serde, unknown keys rejected, errors with file:line:column).
//! - [`grid`]: expansion into [`grid::RunConfig`]s, invalid combinations refused up front, each
//!   configuration keyed by a hash of its canonical JSON.
//! - [`record`]: one JSONL line per (configuration, trial, example).
//! - [`store`]: the output directory: append-only records, resume, shards, merge.
//! - [`runner`]: the loop over examples with progress bars.
//! - [`share`]: one store of model outputs per example, shared by its configurations.
//! - [`batch`]: `batch: N`, several examples decoded at once, their model calls in one pass.
//! - [`latency`]: the per-machine cost table and each record's replayed latency.
//! - [`summary`]: per-configuration summaries (relative latency against the verifier on the same
//!   examples, rates, tokens/s) and their parquet files.
//! - [`sysstat`]: foreign CPU time from `/proc/stat`, peak memory from `/proc/self/status`.
//! - [`synthetic`]: the synthetic pair and task (no weights; quality = log-likelihood under truth).
//! - [`slurm`]: a Slurm job-array script for a sharded sweep.
//!
//! Models and real tasks come in through [`provider::Provider`], so this crate knows nothing of
//! burn or datasets: the binary plugs in `speccascade-models` and `speccascade-tasks`.

pub mod batch;
pub mod config;
mod decoder;
pub mod grid;
pub mod latency;
mod locate;
pub mod provider;
pub mod record;
pub mod replay;
pub mod runner;
pub mod share;
pub mod shard;
pub mod slurm;
pub mod store;
pub mod summary;
pub mod synthetic;
pub mod sysstat;

pub use config::{ConfigError, Experiment};
pub use grid::{Grid, RunConfig};
pub use provider::{Pair, Provider, Task};
pub use record::Record;
pub use shard::Shard;
pub use store::Store;

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: {msg}")]
    BadRecord { path: String, line: usize, msg: String },
    #[error("{0}")]
    Store(String),
    #[error("model: {0}")]
    Model(String),
    #[error("task {task}: {msg}")]
    Task { task: String, msg: String },
    #[error("decoding {config} example {example}: {msg}")]
    Decode { config: String, example: usize, msg: String },
    #[error("parquet {path}: {msg}")]
    Parquet { path: String, msg: String },
    #[error("interrupted")]
    Interrupted,
}

impl HarnessError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().display().to_string(), source }
    }
}
