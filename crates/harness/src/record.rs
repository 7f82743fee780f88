//! One record per (configuration, trial, example): one line of a JSONL file.

use serde::{Deserialize, Serialize};
use speccascade_core::Ledger;
use speccascade_decoding::Method;

use crate::latency::Replay;
use crate::provider::{InputLimit, MetricScore};
use crate::share::CallStats;

/// What one decoded example leaves behind. Everything but [`Record::timing`] and the ledger's
/// seconds is a deterministic function of the configuration, trial and example.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Hash of the configuration ([`crate::RunConfig::hash`]).
    pub config: String,
    pub task: String,
    /// The method (serialised as its catalogue name).
    pub method: Method,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    pub temperature: f64,
    pub trial: usize,
    /// Position of the (task, trial, example) unit in the sweep's execution order.
    pub unit: usize,
    /// Index of the example in the task's data set.
    pub example: usize,
    pub example_id: String,
    pub prompt_tokens: usize,
    /// The input limit the prompt was held to and, when it was cut, its length before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_limit: Option<InputLimit>,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Generated text (absent for models without a detokenizer).
    pub text: Option<String>,
    /// Why generation stopped: `eos`, `stop_string` or `max_tokens`.
    pub stop: String,
    /// The stop string that ended generation (the text is scored up to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_string: Option<String>,
    /// The task's metric on this example (higher is better).
    pub score: f64,
    /// Which metric, how it aggregates over examples, its corpus statistics (absent in records
    /// written before the score was typed: their metric is read from `score_inputs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricScore>,
    /// What the metric read (reference, extracted answer, test outcome, log-likelihoods …).
    pub score_inputs: serde_json::Value,
    pub ledger: Ledger,
    /// The model calls this configuration logically made (deterministic, like the ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<CallStats>,
    /// Those calls replayed at the cost table's prices ([`crate::latency`]); a timing field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<serde_json::Value>,
    pub timing: Timing,
}

impl Record {
    /// The key that makes a record unique in a store.
    pub fn key(&self) -> Key {
        Key { config: self.config.clone(), trial: self.trial, example: self.example }
    }

    /// This record with every timing field zeroed: what must be identical between an interrupted
    /// and an uninterrupted run.
    pub fn without_timing(&self) -> Record {
        let mut r = self.clone();
        r.timing = Timing::default();
        r.replay = None;
        let l = &mut r.ledger;
        l.drafter_prefill_s = 0.0;
        l.verifier_prefill_s = 0.0;
        l.drafter_decode_s = 0.0;
        l.verifier_decode_s = 0.0;
        l.overhead_s = 0.0;
        l.total_s = 0.0;
        l.uncharged_s = 0.0;
        r
    }
}

/// (configuration hash, trial, example index).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub config: String,
    pub trial: usize,
    pub example: usize,
}

/// How long a record took and what else the machine was doing meanwhile.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    /// Wall-clock seconds of the decode call (prefill included). With `shared`, what this
    /// configuration took against the shared store, not its latency: see [`Record::replay`].
    pub wall_s: f64,
    /// The record ran against the example's shared store of model outputs.
    #[serde(default)]
    pub shared: bool,
    /// CPU seconds this process used meanwhile.
    pub own_cpu_s: f64,
    /// CPU seconds all other processes used meanwhile (from /proc/stat; steal time included).
    pub foreign_cpu_s: f64,
    /// Foreign CPU time was high enough to distort this timing (see [`crate::sysstat`]).
    pub foreign_load: bool,
    /// Peak resident memory of the process during this record (bytes; 0 = unknown).
    pub peak_rss_bytes: u64,
    /// Seconds since the Unix epoch when the record started.
    pub started_unix_s: f64,
    /// The hardware tag of the machine that ran it (`hardware` of the experiment).
    #[serde(default)]
    pub hardware: String,
}
