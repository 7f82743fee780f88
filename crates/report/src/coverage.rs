//! The planned grid against the records: how much of a sweep has run, so that a report on a
//! partial store says so prominently instead of passing a few examples off as the whole.
//!
//! Planned = every configuration of the experiment's grid × its trials × its task's `examples`
//! (the runner refuses more examples than the data set has, so `examples` is exact). A record
//! counts once per (configuration, trial, example).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::Sweep;

/// One task's coverage.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TaskCoverage {
    pub task: String,
    pub planned_examples: usize,
    /// How the examples are chosen: `the first N` or `N drawn with seed S`.
    pub selection: String,
    /// Examples with at least one record, and with every planned (configuration, trial).
    pub examples_with_records: usize,
    pub examples_complete: usize,
    /// The example indices that have records, as ranges (`0–39, 41`).
    pub example_indices: String,
}

/// A store's coverage.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Coverage {
    pub name: String,
    pub planned_configs: usize,
    pub configs_with_records: usize,
    pub complete_configs: usize,
    pub planned_records: usize,
    /// Distinct (configuration, trial, example) records of planned configurations.
    pub records: usize,
    /// Records of configurations that are not in the grid (an older experiment file).
    pub extra_records: usize,
    pub trials: usize,
    pub tasks: Vec<TaskCoverage>,
    /// Planned configurations without any record / with some but not all (labels, at most
    /// [`Coverage::LISTED`] each; the counts are complete).
    pub missing: Vec<String>,
    pub missing_count: usize,
    pub incomplete: Vec<String>,
    pub incomplete_count: usize,
    pub complete: bool,
}

impl Coverage {
    pub const LISTED: usize = 24;

    /// A prominent warning for a partial store (empty when complete).
    pub fn banner(&self) -> String {
        if self.complete {
            return String::new();
        }
        let mut s = format!(
            "> **PARTIAL GRID ({}).** {} of {} planned records ({:.1} %); {} of {} configurations have records, {} are complete. \
             Every number below uses only the records there are (n is given per comparison); they are not the planned experiment's results.\n",
            self.name,
            self.records,
            self.planned_records,
            100.0 * self.records as f64 / self.planned_records.max(1) as f64,
            self.configs_with_records,
            self.planned_configs,
            self.complete_configs
        );
        if self.extra_records > 0 {
            let _ = writeln!(s, "> - {} more records belong to configurations that are not in the experiment file (not counted, not planned).", self.extra_records);
        }
        for t in &self.tasks {
            let _ = writeln!(
                s,
                "> - {}: {} of {} planned examples have records ({} with every configuration): {}.",
                t.task, t.examples_with_records, t.planned_examples, t.examples_complete, t.example_indices
            );
        }
        if self.missing_count > 0 {
            let more = if self.missing_count > self.missing.len() { format!(" … and {} more", self.missing_count - self.missing.len()) } else { String::new() };
            let _ = writeln!(s, "> - no records yet ({}): {}{more}.", self.missing_count, self.missing.join("; "));
        }
        if self.incomplete_count > 0 {
            let more =
                if self.incomplete_count > self.incomplete.len() { format!(" … and {} more", self.incomplete_count - self.incomplete.len()) } else { String::new() };
            let _ = writeln!(s, "> - incomplete ({}): {}{more}.", self.incomplete_count, self.incomplete.join("; "));
        }
        s.push('\n');
        s
    }
}

/// `0–39, 41, 50–52`.
pub fn ranges(v: &BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = v.iter().copied().peekable();
    while let Some(a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&(b + 1)) {
            b = it.next().expect("peeked");
        }
        out.push(if a == b { a.to_string() } else { format!("{a}–{b}") });
    }
    if out.is_empty() { "none".into() } else { out.join(", ") }
}

/// The coverage of a loaded sweep.
pub fn coverage(sweep: &Sweep) -> Coverage {
    let exp = &sweep.experiment;
    let trials = exp.trials;
    // (configuration) → the (trial, example) units it has.
    let mut units: BTreeMap<&str, BTreeSet<(usize, usize)>> = BTreeMap::new();
    for r in &sweep.records {
        units.entry(r.config.as_str()).or_default().insert((r.trial, r.example));
    }
    let planned: BTreeSet<&str> = sweep.grid.hashes.iter().map(String::as_str).collect();
    let extra_records = units.iter().filter(|(h, _)| !planned.contains(*h)).map(|(_, u)| u.len()).sum();
    let (mut planned_records, mut records, mut with, mut complete) = (0, 0, 0, 0);
    let (mut missing, mut incomplete) = (Vec::new(), Vec::new());
    for (h, c) in sweep.grid.hashes.iter().zip(&sweep.grid.configs) {
        let want = trials * c.task.examples;
        planned_records += want;
        // A store grown past the file's `examples` counts only up to the plan.
        let have = units.get(h.as_str()).map_or(0, |u| u.iter().filter(|(t, _)| *t < trials).count()).min(want);
        records += have;
        let label = format!("{} T={} {}", c.task.name, c.temperature, c.label());
        if have > 0 {
            with += 1;
        } else {
            missing.push(label.clone());
        }
        if have >= want {
            complete += 1;
        } else if have > 0 {
            incomplete.push(format!("{label} ({have}/{want})"));
        }
    }
    let tasks = exp
        .tasks
        .iter()
        .map(|t| {
            let hashes: Vec<&str> =
                sweep.grid.hashes.iter().zip(&sweep.grid.configs).filter(|(_, c)| c.task.name == t.name).map(|(h, _)| h.as_str()).collect();
            let mut any: BTreeSet<usize> = BTreeSet::new();
            let mut per_example: BTreeMap<usize, usize> = BTreeMap::new();
            for h in &hashes {
                for &(tr, e) in units.get(h).into_iter().flatten() {
                    if tr < trials {
                        any.insert(e);
                        *per_example.entry(e).or_default() += 1;
                    }
                }
            }
            let full = hashes.len() * trials;
            TaskCoverage {
                task: t.name.clone(),
                planned_examples: t.examples,
                selection: match t.seed {
                    None => format!("the first {} examples of the data set", t.examples),
                    Some(s) => format!("{} examples drawn with seed {s}", t.examples),
                },
                examples_with_records: any.len(),
                examples_complete: per_example.values().filter(|&&n| n >= full).count(),
                example_indices: ranges(&any),
            }
        })
        .collect();
    let (missing_count, incomplete_count) = (missing.len(), incomplete.len());
    missing.truncate(Coverage::LISTED);
    incomplete.truncate(Coverage::LISTED);
    Coverage {
        name: exp.name.clone(),
        planned_configs: sweep.grid.len(),
        configs_with_records: with,
        complete_configs: complete,
        planned_records,
        records,
        extra_records,
        trials,
        tasks,
        missing,
        missing_count,
        incomplete,
        incomplete_count,
        complete: records >= planned_records && complete == sweep.grid.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges() {
        let s: BTreeSet<usize> = [0, 1, 2, 3, 5, 7, 8].into_iter().collect();
        assert_eq!(ranges(&s), "0–3, 5, 7–8");
        assert_eq!(ranges(&BTreeSet::new()), "none");
    }
}
