//! Grid expansion: an [`Experiment`] becomes an ordered list of [`RunConfig`]s, each keyed by a
//! hash of its canonical JSON.
//!
//! Order (also the order of execution and of merged records): task → temperature → method (the
//! order of methods.md) → γ → α. `drafter` and `verifier` are added when absent. Parameters that do
//! not apply are collapsed, not multiplied: methods without speculation have no γ, methods without
//! a trade-off have no α. The number of examples is not part of the hash, so growing a sweep's
//! `examples` reuses the records already written.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Experiment, ModelsSpec, TaskSpec};

/// One configuration of the sweep: everything that determines an example's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    pub task: TaskSpec,
    pub method: String,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    pub exact_bonus: bool,
    pub models: ModelsSpec,
}

impl RunConfig {
    /// 16 hex digits of SHA-256 over the canonical JSON of the configuration, leaving out the
    /// number of examples (a record is keyed by its example index).
    pub fn hash(&self) -> String {
        let mut v = serde_json::to_value(self).expect("RunConfig serialises");
        v["task"].as_object_mut().expect("task is an object").remove("examples");
        let digest = Sha256::digest(serde_json::to_string(&v).expect("json").as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The verifier-alone configuration that this one's relative latency is measured against.
    pub fn baseline(&self, method: &str) -> RunConfig {
        RunConfig { method: method.to_string(), alpha: None, gamma: None, ..self.clone() }
    }

    /// `method α=0.3 γ=5`, for progress bars and tables.
    pub fn label(&self) -> String {
        let mut s = self.method.clone();
        if let Some(a) = self.alpha {
            s.push_str(&format!(" α={a}"));
        }
        if let Some(g) = self.gamma {
            s.push_str(&format!(" γ={g}"));
        }
        s
    }
}

/// The expanded sweep.
#[derive(Clone, Debug)]
pub struct Grid {
    pub configs: Vec<RunConfig>,
    pub hashes: Vec<String>,
}

impl Grid {
    /// Expand a validated experiment (see [`Experiment::from_file`]).
    pub fn expand(exp: &Experiment) -> Grid {
        let mut configs = Vec::new();
        for task in &exp.tasks {
            for &temperature in &exp.temperature {
                for info in methods::ALL {
                    let entry = match exp.methods.get(info.name) {
                        Some(e) => e.clone(),
                        None if info.name == "drafter" || info.name == "verifier" => None,
                        None => continue,
                    };
                    let alphas: Vec<Option<f64>> = match (&info.alpha, entry.and_then(|e| e.alpha)) {
                        (Some(_), Some(spec)) => spec.values().into_iter().map(Some).collect(),
                        _ => vec![None],
                    };
                    let gammas: Vec<Option<usize>> =
                        if info.speculative { exp.gamma.iter().copied().map(Some).collect() } else { vec![None] };
                    for &gamma in &gammas {
                        for &alpha in &alphas {
                            configs.push(RunConfig {
                                task: task.clone(),
                                method: info.name.to_string(),
                                alpha,
                                gamma,
                                temperature,
                                top_p: exp.top_p,
                                seed: exp.seed,
                                exact_bonus: exp.exact_bonus,
                                models: exp.models.clone(),
                            });
                        }
                    }
                }
            }
        }
        let hashes = configs.iter().map(RunConfig::hash).collect();
        Grid { configs, hashes }
    }

    pub fn len(&self) -> usize {
        self.configs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }
}

/// The methods of methods.md as the harness needs them: names, α ranges, whether γ applies.
pub mod methods {
    /// What the grid needs to know about a method.
    #[derive(Clone, Copy, Debug)]
    pub struct Info {
        pub name: &'static str,
        /// α range for display, `None` for methods without a trade-off parameter.
        pub alpha: Option<&'static str>,
        /// Drafts blocks of γ tokens (γ is a parameter).
        pub speculative: bool,
        /// Label in plots (the oracle is labelled as such).
        pub label: &'static str,
    }

    const fn m(name: &'static str, alpha: Option<&'static str>, speculative: bool, label: &'static str) -> Info {
        Info { name, alpha, speculative, label }
    }

    /// Every method, in the order of methods.md (the order of tables and legends).
    pub const ALL: &[Info] = &[
        m("drafter", None, false, "drafter alone"),
        m("verifier", None, false, "verifier alone"),
        m("spec_decode", None, true, "SpecDecode (lossless)"),
        m("spec_decode_lossy", Some("[0, 1)"), true, "Lossy SpecDecode"),
        m("spec_cascade_chow", Some("[0, 1]"), true, "SpecCascade [Chow]"),
        m("spec_cascade_diff", Some("[-1, 1]"), true, "SpecCascade [Diff]"),
        m("spec_cascade_opt", Some("(-inf, inf)"), true, "SpecCascade [OPT]"),
        m("spec_cascade_token_v1", Some("[-1, 1]"), true, "SpecCascade [Token v1]"),
        m("spec_cascade_token_v2", Some("[-1, 1]"), true, "SpecCascade [Token v2]"),
        m("spec_cascade_token_v3", Some("[0, 1]"), true, "SpecCascade [Token v3]"),
        m("bild", Some("[0, 1]"), true, "BiLD*"),
        m("token_cascade_chow", Some("[0, 1]"), false, "TokenCascade [Chow]"),
        m("oracle_cascade_diff", Some("[-1, 1]"), false, "Oracle cascade [Diff] (oracle)"),
        m("seq_cascade_chow", Some("[0, 1]"), false, "SeqCascade [Chow]"),
    ];

    pub const NAMES: &[&str] = &[
        "drafter",
        "verifier",
        "spec_decode",
        "spec_decode_lossy",
        "spec_cascade_chow",
        "spec_cascade_diff",
        "spec_cascade_opt",
        "spec_cascade_token_v1",
        "spec_cascade_token_v2",
        "spec_cascade_token_v3",
        "bild",
        "token_cascade_chow",
        "oracle_cascade_diff",
        "seq_cascade_chow",
    ];

    pub fn info(name: &str) -> Option<Info> {
        ALL.iter().copied().find(|i| i.name == name)
    }

    /// Position in [`ALL`] (for sorting); unknown names sort last.
    pub fn rank(name: &str) -> usize {
        ALL.iter().position(|i| i.name == name).unwrap_or(ALL.len())
    }

    /// Is `alpha` inside the method's range? The message says what was expected.
    pub fn check_alpha(name: &str, alpha: f64) -> Result<(), String> {
        crate::decoder::check_alpha(name, alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "name: t\noutput: out\nmodels: {synthetic: {vocab: 32}}\ntasks: [{name: synthetic, examples: 4, max_new_tokens: 8}]\nmethods:\n  spec_cascade_chow: {alpha: {start: 0, stop: 1, num: 3}}\n  spec_decode:\ngamma: [1, 3]\ntemperature: [0, 1]\n";

    #[test]
    fn expands_in_order_with_baselines_and_collapsed_parameters() {
        let exp = Experiment::from_str_named(SRC, "t.yaml").unwrap();
        let g = Grid::expand(&exp);
        // Per temperature: drafter, verifier (added), spec_decode × 2 γ, chow × 2 γ × 3 α.
        assert_eq!(g.len(), 2 * (1 + 1 + 2 + 6));
        let labels: Vec<String> = g.configs[..10].iter().map(RunConfig::label).collect();
        assert_eq!(labels[0], "drafter");
        assert_eq!(labels[1], "verifier");
        assert_eq!(labels[2], "spec_decode γ=1");
        assert_eq!(labels[4], "spec_cascade_chow α=0 γ=1");
        assert_eq!(labels[5], "spec_cascade_chow α=0.5 γ=1");
        let mut h = g.hashes.clone();
        h.sort();
        h.dedup();
        assert_eq!(h.len(), g.len(), "hashes are distinct");
    }

    #[test]
    fn method_table_agrees_with_the_decoding_crate() {
        use speccascade_decoding::Method;
        assert_eq!(methods::ALL.len(), Method::ALL.len());
        for (info, m) in methods::ALL.iter().zip(Method::ALL) {
            assert_eq!(info.name, m.name());
            assert_eq!(info.speculative, m.is_speculative(), "{}", info.name);
            assert_eq!(info.alpha.map(str::to_string), m.alpha_range().map(|r| r.to_string()), "{}", info.name);
            assert_eq!(info.label.contains("oracle"), m.is_oracle(), "{}", info.name);
        }
        assert_eq!(methods::NAMES, methods::ALL.iter().map(|i| i.name).collect::<Vec<_>>());
    }

    #[test]
    fn hash_ignores_example_count_but_not_settings() {
        let exp = Experiment::from_str_named(SRC, "t.yaml").unwrap();
        let a = Grid::expand(&exp).configs[3].clone();
        let mut b = a.clone();
        b.task.examples = 100;
        assert_eq!(a.hash(), b.hash());
        b.task.max_new_tokens = 9;
        assert_ne!(a.hash(), b.hash());
        let mut c = a.clone();
        c.seed = 1;
        assert_ne!(a.hash(), c.hash());
    }
}
