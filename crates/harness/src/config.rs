//! The experiment file: what to sweep, on which models and tasks, and where to write.
//!
//! Parsing is strict: unknown keys are rejected, and every error — a YAML syntax error, a wrong
//! type, a missing field, an α outside a method's range — names the file, line and column and what
//! was expected. `experiments/README.md` documents every key with an annotated example.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use speccascade_decoding::{Bonus, Method};

use crate::locate::{Seg, locate, path_string};

/// A configuration error located in its file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; absent only for errors that have no place (file unreadable).
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the offending field (`methods.bild.alpha[1]`), when known.
    pub path: String,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if self.path.is_empty() { write!(f, ": {}", self.msg) } else { write!(f, ": {}: {}", self.path, self.msg) }
    }
}

/// One experiment: a grid of (task × temperature × top-p × method × γ × α) configurations, run
/// `trials` times.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// A short name, used in titles and the Slurm job name.
    pub name: String,
    /// Output directory (relative paths are relative to the current directory).
    pub output: PathBuf,
    /// Hardware tag written into every summary; `check` compares only like-for-like tags.
    /// `auto` = the CPU model and core count of the machine that runs.
    #[serde(default = "auto")]
    pub hardware: String,
    pub models: ModelsSpec,
    pub tasks: Vec<TaskSpec>,
    /// Method name → its α values. `drafter` and `verifier` are added if absent (every relative
    /// latency is measured against the verifier on the same examples).
    pub methods: BTreeMap<String, Option<MethodEntry>>,
    /// Draft block lengths γ (speculative methods only).
    #[serde(default = "default_gamma", deserialize_with = "one_or_many")]
    pub gamma: Vec<usize>,
    /// Sampling temperatures (0 = greedy).
    #[serde(default = "default_temperature", deserialize_with = "one_or_many")]
    pub temperature: Vec<f64>,
    /// Nucleus sampling masses (1 keeps all tokens): a grid axis like temperature and γ.
    #[serde(default = "default_top_p", deserialize_with = "one_or_many")]
    pub top_p: Vec<f64>,
    /// Independent repeats of every (configuration, example); trial t decodes with seed `seed + t`.
    #[serde(default = "one_usize")]
    pub trials: usize,
    /// Decoding seed (common random numbers across methods).
    #[serde(default)]
    pub seed: u64,
    /// Cost model for the modelled latency: `measured` or a fixed c (drafter step / verifier step).
    #[serde(default)]
    pub cost: CostModel,
    /// What follows a fully accepted block: `free`, `exact` or `none` (methods.md, step 4).
    /// Absent = each method's default: `free` for `spec_decode`, `exact` for every other
    /// speculative method (so that every emitted token follows its target π).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus: Option<Bonus>,
    /// Record the per-position decoding trace in every record (large).
    #[serde(default)]
    pub trace: bool,
    /// Examples decoded at once: their model calls meet in one forward pass per model
    /// (`LanguageModel::extend_batch`), which reads the weights once for all of them. For
    /// throughput on a device where latency is modelled; records equal batch 1's, timing aside.
    /// Needs a fixed `cost`: a batched call is timed for the pass, not for one sequence, so no
    /// prices are measured ([`crate::batch`]).
    #[serde(default = "one_usize", skip_serializing_if = "is_one")]
    pub batch: usize,
}

/// The most examples one run decodes at once (`batch`).
pub const BATCH_LIMIT: usize = 256;

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn auto() -> String {
    "auto".into()
}
fn default_gamma() -> Vec<usize> {
    vec![5]
}
fn default_temperature() -> Vec<f64> {
    vec![1.0]
}
fn default_top_p() -> Vec<f64> {
    vec![1.0]
}
fn one_usize() -> usize {
    1
}

/// The model pair: either two real models or the core's synthetic pair.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelsSpec {
    /// A cached model name, a local path (GGUF file or HF directory) or a hub id.
    #[serde(default)]
    pub drafter: Option<String>,
    #[serde(default)]
    pub verifier: Option<String>,
    /// The synthetic pair instead of real models (no weights).
    #[serde(default)]
    pub synthetic: Option<SyntheticSpec>,
    /// `cpu` (the host kernels), `flex` (burn's CPU backend through the device engine), `wgpu`,
    /// `cuda` or `cuda:N` (speccascade_models::burn_lm::DEVICES; checked again when loading).
    #[serde(default = "cpu")]
    pub device: String,
    /// Weight precision: `native` (the loader's default), `q8` (8-bit blocks), `q4k` (a GGUF file's Q4_K
    /// blocks natively, the rest at q8), `f32`, `f16` or `bf16`
    /// (which of them a loader supports is its business; unsupported ones are refused at load).
    #[serde(default = "native")]
    pub precision: String,
}

fn cpu() -> String {
    "cpu".into()
}
fn native() -> String {
    "native".into()
}

impl ModelsSpec {
    /// Short names for titles: (drafter, verifier).
    pub fn names(&self) -> (String, String) {
        match &self.synthetic {
            Some(s) => (format!("synthetic drafter (noise {})", s.drafter_noise), format!("synthetic verifier (noise {})", s.verifier_noise)),
            None => (short(self.drafter.as_deref().unwrap_or("?")), short(self.verifier.as_deref().unwrap_or("?"))),
        }
    }
}

fn short(s: &str) -> String {
    let base = s.rsplit(['/', '\\']).next().unwrap_or(s);
    base.trim_end_matches(".gguf").to_string()
}

/// The synthetic pair of `speccascade_core::synthetic`, with optional simulated step times so that
/// wall-clock latency behaves like a real pair's (a sleep per forward call).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Vocabulary size, 8 … 200 000.
    pub vocab: usize,
    #[serde(default)]
    pub seed: u64,
    /// Noise scale of the drafter's view of the ground truth (larger = worse drafter).
    #[serde(default = "drafter_noise")]
    pub drafter_noise: f32,
    #[serde(default = "verifier_noise")]
    pub verifier_noise: f32,
    /// Logit bias on EOS (token 0); higher = shorter outputs.
    #[serde(default)]
    pub eos_bias: f32,
    /// Simulated milliseconds per drafter / verifier forward call (0 = none).
    #[serde(default)]
    pub drafter_step_ms: f64,
    #[serde(default)]
    pub verifier_step_ms: f64,
}

fn drafter_noise() -> f32 {
    1.2
}
fn verifier_noise() -> f32 {
    0.3
}

/// One task of the sweep.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// A task of the registry (`speccascade tasks list`) or `synthetic`.
    pub name: String,
    /// Number of examples to run.
    pub examples: usize,
    /// Sampling seed for choosing the examples; absent = the first `examples` examples.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Few-shot examples in the prompt (absent = the task's default).
    #[serde(default)]
    pub shots: Option<usize>,
    /// Maximum generated tokens per example.
    pub max_new_tokens: usize,
    /// A local data file in the upstream schema instead of the fetched cache (real tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_file: Option<PathBuf>,
    /// Wrap the prompt in the model's chat template (instruct models). Off by default: the
    /// tasks' prompts and stop strings are written for plain continuation (lm-eval style).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chat: bool,
    /// How the prompt is built: `t5` (the zero-shot task prefix, `translate English to German: …`,
    /// for T5), `few_shot` (the paper's few-shot prompt; the default) or `chat` (the few-shot prompt
    /// as a user turn of the model's chat template, like `chat: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_style: Option<PromptStyle>,
    /// Hold the prompt (a T5 encoder input, or a decoder-only prompt) to this many tokens by
    /// cutting the example's input text (the article, document, source sentence or question),
    /// keeping the rest of the prompt whole. Absent: the paper's limit for T5-style prompts (WMT
    /// 80, XSum 1024, CNN/DM 2048 tokens), none otherwise. Records note a cut prompt's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<usize>,
}

/// The prompt styles a task can use (see [`TaskSpec::prompt_style`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    T5,
    FewShot,
    Chat,
}

/// α values of one method.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MethodEntry {
    #[serde(default)]
    pub alpha: Option<AlphaSpec>,
}

/// A list of α values, one value, or an evenly spaced range `{start, stop, num}` (stop included).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum AlphaSpec {
    List(Vec<f64>),
    Range { start: f64, stop: f64, num: usize },
}

impl AlphaSpec {
    pub fn values(&self) -> Vec<f64> {
        match self {
            AlphaSpec::List(v) => v.clone(),
            AlphaSpec::Range { start, stop, num } => {
                if *num == 1 {
                    return vec![*start];
                }
                (0..*num).map(|i| start + (stop - start) * i as f64 / (*num - 1) as f64).map(tidy).collect()
            }
        }
    }
}

/// Round away binary noise from a range (0.1 + 0.2 → 0.3) so hashes and labels stay readable.
fn tidy(x: f64) -> f64 {
    let r = (x * 1e12).round() / 1e12;
    if r == 0.0 { 0.0 } else { r }
}

impl<'de> Deserialize<'de> for AlphaSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AlphaSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a list of numbers, or a range {start, stop, num}")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AlphaSpec, E> {
                Ok(AlphaSpec::List(vec![v]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AlphaSpec, E> {
                Ok(AlphaSpec::List(vec![v as f64]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AlphaSpec, E> {
                Ok(AlphaSpec::List(vec![v as f64]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AlphaSpec, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<f64>()? {
                    v.push(x);
                }
                Ok(AlphaSpec::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AlphaSpec, A::Error> {
                #[derive(Deserialize)]
                #[serde(field_identifier, rename_all = "lowercase")]
                enum F {
                    Start,
                    Stop,
                    Num,
                }
                let (mut start, mut stop, mut num) = (None, None, None);
                while let Some(k) = map.next_key::<F>()? {
                    match k {
                        F::Start => start = Some(map.next_value::<f64>()?),
                        F::Stop => stop = Some(map.next_value::<f64>()?),
                        F::Num => num = Some(map.next_value::<usize>()?),
                    }
                }
                let start = start.ok_or_else(|| de::Error::missing_field("start"))?;
                let stop = stop.ok_or_else(|| de::Error::missing_field("stop"))?;
                let num = num.ok_or_else(|| de::Error::missing_field("num"))?;
                Ok(AlphaSpec::Range { start, stop, num })
            }
        }
        d.deserialize_any(V)
    }
}

/// How the modelled latency's c (and, optionally, the block-cost curve b(k)) is obtained.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum CostModel {
    /// c = (drafter-alone seconds per drafter step) / (verifier-alone seconds per verifier call),
    /// measured on the run's own records; b(k) from the cost table ([`crate::latency`]).
    #[default]
    Measured,
    /// A fixed c; b(k) measured from the cost table.
    Fixed(f64),
    /// A fixed c and a fixed block-cost curve (`cost: {c: 0.3, block: [1.0, 1.2, …]}`): every
    /// modelled number is then a pure function of the token and call counts, identical on every
    /// machine (the CI regression slice uses it).
    FixedBlock { c: f64, block: BlockCurve },
}

impl CostModel {
    /// The fixed c, if the experiment fixes one.
    pub fn fixed_c(&self) -> Option<f64> {
        match self {
            CostModel::Measured => None,
            CostModel::Fixed(c) | CostModel::FixedBlock { c, .. } => Some(*c),
        }
    }
    /// The fixed block-cost curve, if the experiment fixes one.
    pub fn block(&self) -> Option<&BlockCurve> {
        match self {
            CostModel::FixedBlock { block, .. } => Some(block),
            _ => None,
        }
    }
}

/// A fixed block-cost curve: `b(k)` = the cost of one call scoring k positions in single-step
/// units of the same model, `values[k − 1]` for k = 1 … len (b(1) = 1); beyond the list, the
/// straight line through the last two values (a call never costs less than the last listed one).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct BlockCurve(Vec<f64>);

impl BlockCurve {
    /// Check and wrap `values` (b(1) = 1, every value finite and ≥ 1, non-decreasing).
    pub fn new(values: Vec<f64>) -> Result<Self, String> {
        if values.first() != Some(&1.0) {
            return Err(format!("expected block: [1.0, b(2), …] starting with b(1) = 1, got {values:?}"));
        }
        if values.len() > 4096 {
            return Err(format!("expected at most 4096 block costs, got {}", values.len()));
        }
        for w in values.windows(2) {
            if !(w[1].is_finite() && w[1] >= w[0]) {
                return Err(format!("expected finite, non-decreasing block costs, got {} after {}", w[1], w[0]));
            }
        }
        Ok(Self(values))
    }
    pub fn values(&self) -> &[f64] {
        &self.0
    }
    /// b(k) (k ≥ 1; k = 0 costs 0).
    pub fn at(&self, k: usize) -> f64 {
        let v = &self.0;
        match k {
            0 => 0.0,
            k if k <= v.len() => v[k - 1],
            _ if v.len() == 1 => v[0],
            k => {
                let (a, b) = (v[v.len() - 2], v[v.len() - 1]);
                b + (b - a) * (k - v.len()) as f64
            }
        }
    }
}

impl Serialize for CostModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            CostModel::Measured => s.serialize_str("measured"),
            CostModel::Fixed(c) => s.serialize_f64(*c),
            CostModel::FixedBlock { c, block } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("c", c)?;
                m.serialize_entry("block", block)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for CostModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CostModel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`measured` or a number c > 0 (drafter step time / verifier step time), or {c: C, block: [1.0, b(2), …]} (a fixed c and block-cost curve)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CostModel, E> {
                if v == "measured" { Ok(CostModel::Measured) } else { Err(E::invalid_value(de::Unexpected::Str(v), &self)) }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CostModel, E> {
                if v.is_finite() && v > 0.0 { Ok(CostModel::Fixed(v)) } else { Err(E::invalid_value(de::Unexpected::Float(v), &self)) }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CostModel, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CostModel, E> {
                self.visit_f64(v as f64)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CostModel, A::Error> {
                #[derive(Deserialize)]
                #[serde(field_identifier, rename_all = "lowercase")]
                enum F {
                    C,
                    Block,
                }
                let (mut c, mut block) = (None, None);
                while let Some(k) = map.next_key::<F>()? {
                    match k {
                        F::C => c = Some(map.next_value::<f64>()?),
                        F::Block => block = Some(map.next_value::<Vec<f64>>()?),
                    }
                }
                let c = c.ok_or_else(|| de::Error::missing_field("c"))?;
                if !(c.is_finite() && c > 0.0) {
                    return Err(de::Error::invalid_value(de::Unexpected::Float(c), &"c > 0"));
                }
                match block {
                    None => Ok(CostModel::Fixed(c)),
                    Some(b) => Ok(CostModel::FixedBlock { c, block: BlockCurve::new(b).map_err(de::Error::custom)? }),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A value or a list of values.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a list of numbers")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut v = Vec::new();
            while let Some(x) = seq.next_element()? {
                v.push(x);
            }
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }
    }
    d.deserialize_any(V(PhantomData))
}

impl Experiment {
    /// Read, parse and validate an experiment file.
    pub fn from_file(path: &Path) -> Result<(Self, String), ConfigError> {
        let (file, src) = read_experiment(path)?;
        Ok((Self::from_str_named(&src, &file)?, src))
    }

    /// [`Experiment::from_file`] with `key.path=value` overrides (`run --set`) applied to the YAML
    /// before it is parsed, so an override is validated exactly like the file. Returns the
    /// experiment and the YAML text it was read from (overrides included).
    pub fn from_file_with_sets(path: &Path, sets: &[String]) -> Result<(Self, String), ConfigError> {
        if sets.is_empty() {
            return Self::from_file(path);
        }
        let (file, src) = read_experiment(path)?;
        let src = apply_sets(&src, sets, &file)?;
        let named = format!("{file} (with --set)");
        Ok((Self::from_str_named(&src, &named)?, src))
    }

    /// Parse and validate YAML text; `file` names it in errors.
    pub fn from_str_named(src: &str, file: &str) -> Result<Self, ConfigError> {
        let exp: Experiment = serde_yaml::from_str(src).map_err(|e| yaml_error(e, file))?;
        exp.validate().map_err(|(segs, msg)| {
            let loc = locate(src, &segs);
            ConfigError { file: file.to_string(), line: loc.map(|l| l.0), column: loc.map(|l| l.1), path: path_string(&segs), msg }
        })?;
        Ok(exp)
    }

    /// Checks that serde cannot express; each failure names the offending path.
    fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let k = |s: &str| Seg::Key(s.to_string());
        if self.name.trim().is_empty() {
            return Err((vec![k("name")], "expected a non-empty name".into()));
        }
        let m = &self.models;
        let mk = |f: &str| vec![k("models"), k(f)];
        match (&m.synthetic, &m.drafter, &m.verifier) {
            (Some(s), None, None) => {
                if !(8..=200_000).contains(&s.vocab) {
                    return Err((vec![k("models"), k("synthetic"), k("vocab")], format!("expected a vocabulary size in 8..=200000, got {}", s.vocab)));
                }
                for (f, v) in [("drafter_noise", s.drafter_noise as f64), ("verifier_noise", s.verifier_noise as f64), ("drafter_step_ms", s.drafter_step_ms), ("verifier_step_ms", s.verifier_step_ms)] {
                    if !(v.is_finite() && v >= 0.0) {
                        return Err((vec![k("models"), k("synthetic"), k(f)], format!("expected a finite number ≥ 0, got {v}")));
                    }
                }
            }
            (Some(_), _, _) => return Err((mk("synthetic"), "expected either `synthetic` or `drafter` + `verifier`, not both".into())),
            (None, Some(_), Some(_)) => {}
            (None, None, _) => return Err((vec![k("models")], "expected `drafter` (a cached name, local path or hub id) and `verifier`, or `synthetic`".into())),
            (None, Some(_), None) => return Err((vec![k("models")], "expected `verifier` beside `drafter`".into())),
        }
        let dev = m.device.as_str();
        let dev_ok = ["cpu", "flex", "wgpu", "cuda"].contains(&dev) || dev.strip_prefix("cuda:").is_some_and(|n| n.parse::<u32>().is_ok());
        if !dev_ok {
            return Err((mk("device"), format!("expected cpu, flex, wgpu, cuda or cuda:N, got {dev:?}")));
        }
        if !["native", "q8", "q4k", "f32", "f16", "bf16"].contains(&m.precision.as_str()) {
            return Err((mk("precision"), format!("expected native, q8, q4k, f32, f16 or bf16, got {:?}", m.precision)));
        }
        if self.tasks.is_empty() {
            return Err((vec![k("tasks")], "expected at least one task".into()));
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let at = |f: &str| vec![k("tasks"), Seg::Index(i), k(f)];
            if t.examples == 0 {
                return Err((at("examples"), "expected at least 1 example".into()));
            }
            if t.max_new_tokens == 0 || t.max_new_tokens > MAX_NEW_TOKENS_LIMIT {
                return Err((at("max_new_tokens"), format!("expected 1..={MAX_NEW_TOKENS_LIMIT} tokens, got {}", t.max_new_tokens)));
            }
            if t.examples > EXAMPLES_LIMIT {
                return Err((at("examples"), format!("expected at most {EXAMPLES_LIMIT} examples, got {}", t.examples)));
            }
            let synthetic_task = t.name == "synthetic";
            if synthetic_task && m.synthetic.is_none() {
                return Err((at("name"), "the synthetic task scores outputs under the synthetic ground truth: it needs `models.synthetic`".into()));
            }
            if synthetic_task && t.data_file.is_some() {
                return Err((at("data_file"), "the synthetic task makes its own prompts: remove `data_file`".into()));
            }
            if synthetic_task && t.max_input_tokens.is_some() {
                return Err((at("max_input_tokens"), "the synthetic task makes its own prompts: remove `max_input_tokens`".into()));
            }
            if let Some(n) = t.max_input_tokens
                && !(1..=MAX_NEW_TOKENS_LIMIT).contains(&n)
            {
                return Err((at("max_input_tokens"), format!("expected 1..={MAX_NEW_TOKENS_LIMIT} tokens, got {n}")));
            }
            if !synthetic_task && m.synthetic.is_some() {
                return Err((at("name"), format!("task {:?} needs real models with a tokenizer; the synthetic pair has none (use task `synthetic`)", t.name)));
            }
            if self.tasks[..i].iter().any(|u| u.name == t.name) {
                return Err((at("name"), format!("task {:?} is listed twice", t.name)));
            }
        }
        if self.methods.is_empty() {
            return Err((vec![k("methods")], "expected at least one method".into()));
        }
        for (name, entry) in &self.methods {
            let at = vec![k("methods"), k(name)];
            let Ok(method) = Method::from_name(name) else {
                return Err((at, format!("unknown method {name:?}; expected one of {}", Method::names().join(", "))));
            };
            let info = method.info();
            let alpha = entry.as_ref().and_then(|e| e.alpha.as_ref());
            match (info.alpha, alpha) {
                (None, Some(_)) => return Err((vec![k("methods"), k(name), k("alpha")], format!("method {name} takes no α; remove `alpha`"))),
                (Some(range), None) => return Err((at, format!("method {name} needs `alpha` (values in {range})"))),
                (Some(_), Some(spec)) => {
                    let ap = vec![k("methods"), k(name), k("alpha")];
                    let check = |a: f64| info.check_alpha(Some(a)).map_err(|e| e.to_string());
                    if let AlphaSpec::Range { start, stop, num } = spec {
                        if *num == 0 {
                            return Err((ap, "expected num ≥ 1 in the range".into()));
                        }
                        for (f, v) in [("start", start), ("stop", stop)] {
                            if let Err(e) = check(*v) {
                                let mut p = ap.clone();
                                p.push(k(f));
                                return Err((p, e));
                            }
                        }
                    }
                    let values = spec.values();
                    if values.is_empty() {
                        return Err((ap, "expected at least one α value".into()));
                    }
                    for (j, a) in values.iter().enumerate() {
                        if let Err(e) = check(*a) {
                            let mut p = ap.clone();
                            if matches!(spec, AlphaSpec::List(v) if v.len() > 1) {
                                p.push(Seg::Index(j));
                            }
                            return Err((p, e));
                        }
                        if values[..j].contains(a) {
                            return Err((ap, format!("α = {a} is listed twice")));
                        }
                    }
                }
                (None, None) => {}
            }
        }
        if self.gamma.is_empty() {
            return Err((vec![k("gamma")], "expected at least one γ".into()));
        }
        for (i, g) in self.gamma.iter().enumerate() {
            if *g == 0 || *g > 64 {
                return Err((vec![k("gamma"), Seg::Index(i)], format!("expected a draft length γ in 1..=64, got {g}")));
            }
        }
        if self.temperature.is_empty() {
            return Err((vec![k("temperature")], "expected at least one temperature".into()));
        }
        for (i, t) in self.temperature.iter().enumerate() {
            if !(t.is_finite() && *t >= 0.0) {
                return Err((vec![k("temperature"), Seg::Index(i)], format!("expected a temperature ≥ 0 (0 = greedy), got {t}")));
            }
        }
        if self.top_p.is_empty() {
            return Err((vec![k("top_p")], "expected at least one top_p".into()));
        }
        for (i, p) in self.top_p.iter().enumerate() {
            let at = if self.top_p.len() == 1 { vec![k("top_p")] } else { vec![k("top_p"), Seg::Index(i)] };
            if !(*p > 0.0 && *p <= 1.0) {
                return Err((at, format!("expected top_p in (0, 1], got {p}")));
            }
            if self.top_p[..i].contains(p) {
                return Err((at, format!("top_p = {p} is listed twice")));
            }
        }
        if self.trials == 0 {
            return Err((vec![k("trials")], "expected at least 1 trial".into()));
        }
        if !(1..=BATCH_LIMIT).contains(&self.batch) {
            return Err((vec![k("batch")], format!("expected 1 to {BATCH_LIMIT} examples at once, got {}", self.batch)));
        }
        if self.batch > 1 && self.cost.fixed_c().is_none() {
            return Err((
                vec![k("batch")],
                format!(
                    "decoding {} examples at once needs a fixed cost (`cost: C`, or `cost: {{c: C, block: [1.0, b(2), …]}}`): a batched call \
                     is timed for the whole pass, not for one sequence, so no prices can be measured",
                    self.batch
                ),
            ));
        }
        Ok(())
    }
}

/// The text of an experiment file, and its name for errors.
fn read_experiment(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => Ok((file, src)),
        Err(e) => Err(ConfigError { file, line: None, column: None, path: String::new(), msg: format!("cannot read the experiment file: {e}") }),
    }
}

/// The longest generation a task may ask for (a model's context caps it further at run time).
pub const MAX_NEW_TOKENS_LIMIT: usize = 1 << 20;
/// The most examples one task may name (data sets are capped in size when read, too).
pub const EXAMPLES_LIMIT: usize = 10_000_000;

/// Apply `key.path=value` overrides to YAML text: `models.drafter=DIR`, `tasks[0].examples=4`,
/// `methods.spec_decoding.alpha=[0.1, 0.2]`. The value is read as YAML (a number, a string, a
/// list); missing mapping keys are created, list indices must exist. Errors name the override.
pub fn apply_sets(src: &str, sets: &[String], file: &str) -> Result<String, ConfigError> {
    use serde_yaml::Value;
    let err = |set: &str, msg: String| ConfigError {
        file: file.to_string(),
        line: None,
        column: None,
        path: String::new(),
        msg: format!("--set {set}: {msg}"),
    };
    let mut doc: Value = serde_yaml::from_str(src).map_err(|e| yaml_error(e, file))?;
    for set in sets {
        let (path, raw) = set.split_once('=').ok_or_else(|| err(set, "expected key.path=value".into()))?;
        let value: Value = serde_yaml::from_str(raw).map_err(|e| err(set, format!("the value is not YAML: {e}")))?;
        // `a.b[2].c` → keys and indices.
        let mut segs: Vec<Seg> = Vec::new();
        for part in path.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() && segs.is_empty() {
                return Err(err(set, format!("empty key in `{path}`")));
            }
            if !key.is_empty() {
                segs.push(Seg::Key(key.to_string()));
            }
            while let Some(r) = rest.strip_prefix('[') {
                let (idx, after) = r.split_once(']').ok_or_else(|| err(set, format!("unclosed `[` in `{path}`")))?;
                let i: usize = idx.parse().map_err(|_| err(set, format!("`[{idx}]` is not a list index")))?;
                segs.push(Seg::Index(i));
                rest = after;
            }
            if !rest.is_empty() {
                return Err(err(set, format!("unexpected `{rest}` in `{path}`")));
            }
        }
        let mut node = &mut doc;
        for (n, seg) in segs.iter().enumerate() {
            let here = path_string(&segs[..n]);
            node = match seg {
                Seg::Key(k) => {
                    if node.is_null() {
                        *node = Value::Mapping(Default::default());
                    }
                    let map = node
                        .as_mapping_mut()
                        .ok_or_else(|| err(set, format!("`{}` is not a mapping", if here.is_empty() { "." } else { &here })))?;
                    map.entry(Value::String(k.clone())).or_insert(Value::Null)
                }
                Seg::Index(i) => {
                    let list = node.as_sequence_mut().ok_or_else(|| err(set, format!("`{here}` is not a list")))?;
                    let len = list.len();
                    list.get_mut(*i).ok_or_else(|| err(set, format!("`{here}` has {len} entries, no index {i}")))?
                }
            };
        }
        *node = value;
    }
    serde_yaml::to_string(&doc).map_err(|e| err(&sets.join(" "), format!("cannot write the YAML back: {e}")))
}

/// A serde_yaml error as a located [`ConfigError`]: its message without the trailing
/// "at line L column C" (which we print as `file:L:C`) and with the field path split off.
fn yaml_error(e: serde_yaml::Error, file: &str) -> ConfigError {
    let loc = e.location();
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let mut path = String::new();
    // serde_yaml prefixes "path.to.field: " when the error is below the root.
    if let Some((p, rest)) = msg.split_once(": ")
        && !p.contains(' ')
        && !p.is_empty()
        && p != "."
    {
        path = p.to_string();
        msg = rest.to_string();
    }
    ConfigError { file: file.to_string(), line: loc.as_ref().map(|l| l.line()), column: loc.as_ref().map(|l| l.column()), path, msg }
}
