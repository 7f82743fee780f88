//! The one place that calls `speccascade-decoding`: a [`RunConfig`] + prompt → a generation.

use speccascade_core::{LanguageModel, Ledger, Sampling};
use speccascade_decoding::{DecodeConfig, MethodSpec, StopReason, decode};

use crate::grid::RunConfig;
use crate::provider::Prompt;

/// A finished generation, as the runner records it.
pub struct Decoded {
    pub tokens: Vec<u32>,
    /// `eos`, `max_tokens` or `stop_string`.
    pub stop: String,
    /// The stop string that ended generation, if one did.
    pub stop_string: Option<String>,
    pub ledger: Ledger,
    pub trace: Option<serde_json::Value>,
}

/// Decode one example of one configuration, trial `trial` (seed = config seed + trial), with the
/// pair's models as `models` sees them (the shared-call wrappers of [`crate::share`]) and its
/// detokenizer `detok` (for stop strings).
pub fn run_one(detok: Option<&(dyn Fn(&[u32]) -> String + Send + Sync)>, models: (&dyn LanguageModel, &dyn LanguageModel), cfg: &RunConfig, trial: usize, example: usize, prompt: &Prompt, trace: bool) -> Result<Decoded, String> {
    let spec = MethodSpec::new(cfg.method, cfg.alpha).map_err(|e| e.to_string())?;
    let sampling = Sampling::new(cfg.temperature as f32, cfg.top_p as f32).map_err(|e| e.to_string())?;
    let dc = DecodeConfig {
        method: spec,
        gamma: cfg.gamma.unwrap_or(1),
        sampling,
        bonus: cfg.bonus.unwrap_or(cfg.method.default_bonus()),
        seed: cfg.seed.wrapping_add(trial as u64),
        example_id: example as u64,
        max_new_tokens: cfg.task.max_new_tokens,
        stop_strings: prompt.stop_strings.clone(),
        extra_eos: prompt.extra_eos.clone(),
        trace,
    };
    let g = decode(models.0, models.1, &prompt.tokens, &dc, detok.map(|d| d as &dyn Fn(&[u32]) -> String)).map_err(|e| e.to_string())?;
    let trace = g.trace.as_ref().map(|t| serde_json::to_value(t).unwrap_or(serde_json::Value::Null));
    let (stop, stop_string) = match g.stop {
        StopReason::Eos => ("eos", None),
        StopReason::MaxTokens => ("max_tokens", None),
        StopReason::StopString(s) => ("stop_string", Some(s)),
    };
    Ok(Decoded { tokens: g.tokens, stop: stop.to_string(), stop_string, ledger: g.ledger, trace })
}
