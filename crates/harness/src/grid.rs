//! Grid expansion: an [`Experiment`] becomes an ordered list of [`RunConfig`]s, each keyed by a
//! hash of its canonical JSON.
//!
//! Order (also the order of execution and of merged records): task → temperature → top-p → method
//! (the catalogue's order, that of methods.md) → γ → α. `drafter` and `verifier` are added when
//! absent. Parameters that do not apply are collapsed, not multiplied: methods without speculation
//! have no γ and no bonus mode, methods without a trade-off have no α. The number of examples is
//! not part of the hash, so growing a sweep's `examples` reuses the records already written.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use speccascade_decoding::{Bonus, Method};

use crate::config::{Experiment, ModelsSpec, TaskSpec};

/// One configuration of the sweep: everything that determines an example's output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    pub task: TaskSpec,
    pub method: Method,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// What follows a fully accepted block (speculative methods; `None` for the others).
    pub bonus: Option<Bonus>,
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
    pub fn baseline(&self, method: Method) -> RunConfig {
        RunConfig { method, alpha: None, gamma: None, bonus: None, ..self.clone() }
    }

    /// `method α=0.3 γ=5`, for progress bars and tables (the bonus when it is not the default).
    pub fn label(&self) -> String {
        let mut s = self.method.name().to_string();
        if let Some(a) = self.alpha {
            s.push_str(&format!(" α={a}"));
        }
        if let Some(g) = self.gamma {
            s.push_str(&format!(" γ={g}"));
        }
        if let Some(b) = self.bonus.filter(|&b| b != self.method.default_bonus()) {
            s.push_str(&format!(" bonus={b}"));
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
                for &top_p in &exp.top_p {
                    for method in Method::ALL {
                        let entry = match exp.methods.get(method.name()) {
                            Some(e) => e.clone(),
                            None if method == Method::Drafter || method == Method::Verifier => None,
                            None => continue,
                        };
                        let alphas: Vec<Option<f64>> = match (method.alpha_range(), entry.and_then(|e| e.alpha)) {
                            (Some(_), Some(spec)) => spec.values().into_iter().map(Some).collect(),
                            _ => vec![None],
                        };
                        let speculative = method.is_speculative();
                        let gammas: Vec<Option<usize>> =
                            if speculative { exp.gamma.iter().copied().map(Some).collect() } else { vec![None] };
                        let bonus = speculative.then(|| exp.bonus.unwrap_or(method.default_bonus()));
                        for &gamma in &gammas {
                            for &alpha in &alphas {
                                configs.push(RunConfig {
                                    task: task.clone(),
                                    method,
                                    alpha,
                                    gamma,
                                    temperature,
                                    top_p,
                                    seed: exp.seed,
                                    bonus,
                                    models: exp.models.clone(),
                                });
                            }
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
    fn bonus_collapses_for_sequential_methods_and_defaults_per_method() {
        let exp = Experiment::from_str_named(SRC, "t.yaml").unwrap();
        let g = Grid::expand(&exp);
        let by = |m: Method| g.configs.iter().find(|c| c.method == m).unwrap().bonus;
        assert_eq!(by(Method::Drafter), None);
        assert_eq!(by(Method::SpecDecode), Some(Bonus::Free));
        assert_eq!(by(Method::SpecCascadeChow), Some(Bonus::Exact));
        let none = Experiment::from_str_named(&format!("{SRC}bonus: none\ntop_p: [1, 0.9]\n"), "t.yaml").unwrap();
        let g = Grid::expand(&none);
        assert!(g.configs.iter().filter(|c| c.method.is_speculative()).all(|c| c.bonus == Some(Bonus::None)));
        assert_eq!(g.len(), 2 * 2 * (1 + 1 + 2 + 6), "top_p is a grid axis");
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
