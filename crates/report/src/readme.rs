//! The reproduction's README (`speccascade report DIR… --readme FILE`): what ran (against what
//! was planned), the claims table with verdicts, and our Table 2 beside the paper's reported
//! figures — generated from the records only, so it can say nothing they do not support, and the
//! lead regenerates it as the runs finish.

use std::fmt::Write as _;

use speccascade_decoding::Method;

use crate::ReportOutput;
use crate::claims::{self, Cost};
use crate::tables::{num, opt};

/// Each `speccascade run` appends its figures of merit here, in the store's root (one JSON line
/// per invocation: a resumed sweep has one per sitting).
pub const RUNS_FILE: &str = "runs.jsonl";

/// The figures of merit of a store's runs, summed over its `runs.jsonl` (a line that does not
/// parse is skipped and counted).
fn figures_of_merit(reports: &[ReportOutput]) -> String {
    let mut s = String::from(
        "| store | runs (sittings) | records written | wall time of the runs | model seconds (prefill) | sharing factor drafter / verifier | grid cost (verifier passes, per run) | peak RSS | machine | kernels |\n\
         |---|---:|---:|---:|---:|---|---|---:|---|---|\n",
    );
    for r in reports {
        let store = r.dir.parent().unwrap_or(&r.dir);
        let text = std::fs::read_to_string(store.join(RUNS_FILE)).unwrap_or_default();
        let (mut lines, mut bad) = (Vec::new(), 0);
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) => lines.push(v),
                Err(_) => bad += 1,
            }
        }
        if lines.is_empty() {
            let _ = writeln!(s, "| {} | not recorded (no {RUNS_FILE}: runs before this version did not log them) | | | | | | | | |", r.experiment.name);
            continue;
        }
        let f = |v: &serde_json::Value, path: &[&str]| path.iter().fold(Some(v), |v, k| v.and_then(|v| v.get(*k))).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let sum = |path: &[&str]| lines.iter().map(|v| f(v, path)).sum::<f64>();
        let factor = |m: &str| {
            let (l, c) = (sum(&["merit", m, "logical_positions"]), sum(&["merit", m, "computed_positions"]));
            if c > 0.0 { format!("{:.2}", l / c) } else { "—".into() }
        };
        let passes: Vec<String> = lines.iter().map(|v| num(f(v, &["merit", "verifier_pass_equivalents"]), 2)).collect();
        let peak = lines.iter().map(|v| f(v, &["merit", "peak_rss_bytes"])).fold(0.0, f64::max);
        let distinct = |key: &str| {
            let mut v: Vec<String> = lines
                .iter()
                .filter_map(|x| x.get(key))
                .map(|x| match x.as_str() {
                    Some(s) => s.to_string(),
                    // The kernels object: the CPU and the paths the kernels took.
                    None => {
                        let g = |p: &[&str]| p.iter().fold(Some(x), |v, k| v.and_then(|v| v.get(*k))).map_or("?".to_string(), |v| v.as_str().map_or(v.to_string(), str::to_string));
                        format!("{}, {} CPUs: q8 {}, f16 {}", g(&["cpu_model"]), g(&["logical_cpus"]), g(&["q8", "path"]), g(&["f16", "path"]))
                    }
                })
                .collect();
            v.sort();
            v.dedup();
            v.join("; ")
        };
        let secs = sum(&["elapsed_s"]);
        let wall = if secs >= 3600.0 { format!("{:.2} h", secs / 3600.0) } else { format!("{:.1} min", secs / 60.0) };
        let _ = writeln!(
            s,
            "| {} | {}{} | {} | {wall} | {:.0} s ({:.0} s) | {} / {} | {} | {:.0} MiB | {} | {} |",
            r.experiment.name,
            lines.len(),
            if bad > 0 { format!(" ({bad} unreadable lines skipped)") } else { String::new() },
            sum(&["records_written"]) as u64,
            sum(&["merit", "model_s"]),
            sum(&["merit", "prefill_s"]),
            factor("drafter"),
            factor("verifier"),
            passes.join(", "),
            peak / (1024.0 * 1024.0),
            distinct("hardware"),
            distinct("kernels").replace('|', "/")
        );
    }
    s
}

/// The paper's reported Table-2 figure for a method, as far as this repository's docs record it
/// (`shared/docs/methods.md`, "The paper's settings"); everything else is a marked placeholder.
pub fn paper_figure(m: Method) -> &'static str {
    match m {
        Method::SpecCascadeTokenV3 => {
            "≈ 1.9–2.0× (token-specific cascade, T5 small → large, T = 1, γ = 5; ≈ 2.6× small → XL) — as methods.md records it"
        }
        _ => "not transcribed: see Table 2 of arXiv 2405.19261 (T5 small → large, γ = 5, T = 1)",
    }
}

/// One line per store: what ran against what was planned.
fn what_ran(reports: &[ReportOutput]) -> String {
    let mut s = String::from(
        "| store | task | examples planned (selection) | examples with records (complete) | T | γ | trials | configurations with records / planned (complete) | records / planned | drafter → verifier | precision | hardware | c |\n\
         |---|---|---|---|---|---|---:|---|---|---|---|---|---:|\n",
    );
    for r in reports {
        let e = &r.experiment;
        let cv = &r.coverage;
        let hw: Vec<&str> = {
            let mut v: Vec<&str> = r.rows.iter().map(|x| x.key.hardware.as_str()).collect();
            v.sort();
            v.dedup();
            v
        };
        let c = r.rows.first().map_or(f64::NAN, |x| x.c);
        let (d, v) = e.models.names();
        for t in &cv.tasks {
            let _ = writeln!(
                s,
                "| {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} / {} ({}) | {} / {} | {d} → {v} | {} | {} | {} |",
                e.name,
                t.task,
                t.planned_examples,
                t.selection,
                t.examples_with_records,
                t.examples_complete,
                e.temperature.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
                e.gamma.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
                e.trials,
                cv.configs_with_records,
                cv.planned_configs,
                cv.complete_configs,
                cv.records,
                cv.planned_records,
                e.models.precision,
                if hw.is_empty() { "—".to_string() } else { hw.join(" + ") },
                num(c, 3)
            );
        }
    }
    s
}

/// The claims of every store on `cost`, one row per claim and group.
fn claims_table(reports: &[ReportOutput], cost: Cost) -> String {
    let mut s = String::from("| store | claim | task | T | γ | evidence | verdict | why |\n|---|---|---|---:|---:|---|---|---|\n");
    for r in reports {
        for c in r.claims.iter().filter(|c| c.cost == cost && c.verdict != claims::ClaimVerdict::NotEvaluable) {
            let _ = writeln!(
                s,
                "| {} | ({}) {} | {} | {} | {} | {} | **{}** | {} |",
                r.experiment.name,
                c.id,
                c.statement,
                c.task,
                c.temperature,
                opt(c.gamma),
                if c.evidence.is_empty() { "—" } else { &c.evidence },
                c.verdict.text(),
                c.reason
            );
        }
    }
    for r in reports {
        s.push_str(&claims::not_evaluable(&r.claims, cost, Some(&r.experiment.name)));
    }
    s
}

/// Our Table 2 beside the paper's figures.
fn table2(reports: &[ReportOutput]) -> String {
    let mut s = String::from(
        "| store | task | T | γ | method | n | verifier quality | speed-up at verifier quality, modelled [95 % CI] | replayed | modelled b(k) | ≈ speed-up (modelled) | best quality at latency ≤ 1 (modelled) | the paper's Table 2 (a different pair, task and hardware) |\n\
         |---|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---|\n",
    );
    let x = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "—".into());
    for r in reports {
        for t in &r.table2 {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} [{}, {}] | {} | {} | {} | {} | {} |",
                r.experiment.name,
                t.task,
                t.temperature,
                opt(t.gamma),
                t.method.label(),
                t.examples,
                num(t.verifier_quality, 3),
                x(t.speedup_modelled),
                num(t.speedup_modelled_lo, 2),
                num(t.speedup_modelled_hi, 2),
                x(t.speedup_replayed),
                x(t.speedup_modelled_bk),
                x(t.speedup_indistinguishable_modelled),
                t.best_quality_modelled.map(|q| num(q, 3)).unwrap_or_else(|| "—".into()),
                paper_figure(t.method)
            );
        }
    }
    s
}

/// The README of a reproduction made of `reports` (one per store), regenerated by `command`.
pub fn readme(reports: &[ReportOutput], command: &str) -> String {
    let mut s = String::new();
    let pairs: Vec<String> = {
        let mut v: Vec<String> = reports
            .iter()
            .map(|r| {
                let (d, v) = r.experiment.models.names();
                format!("{d} → {v} ({})", r.experiment.models.precision)
            })
            .collect();
        v.dedup();
        v
    };
    let _ = writeln!(s, "# Reproduction: {} — the paper's claims, tested\n", pairs.join("; "));
    let _ = writeln!(
        s,
        "Generated from the records by `{command}`; regenerate it when the runs grow, never edit it by hand. \
         Every number is computed from the stores listed below, and only from the records they hold.\n"
    );
    let partial: Vec<&ReportOutput> = reports.iter().filter(|r| !r.coverage.complete).collect();
    if !partial.is_empty() {
        let _ = writeln!(
            s,
            "> **Warning: {} of {} stores are incomplete.** The planned grids have not finished; the verdicts below are those \
             of the records there are, at their n, and may change when the runs complete.\n",
            partial.len(),
            reports.len()
        );
        for r in &partial {
            s.push_str(&r.coverage.banner());
        }
    }
    s.push_str("## What ran\n\n");
    s.push_str(&what_ran(reports));
    s.push_str("\nThe runs' figures of merit (from each store's runs.jsonl, one line per `speccascade run`; wall time = each run's elapsed seconds, summed over sittings):\n\n");
    s.push_str(&figures_of_merit(reports));
    s.push_str(
        "\nExamples \"complete\" have a record for every planned configuration and trial; claims pair configurations on the \
         examples they have in common (n in each comparison).\n\n## The paper's claims\n\n\
         One row per claim, store, task, temperature and γ. Verdicts come from these rules, applied by the report (never by hand):\n\n",
    );
    s.push_str(claims::RULES_MD);
    for cost in Cost::ALL {
        let _ = writeln!(s, "\n### On the {}\n", cost.text());
        s.push_str(&claims_table(reports, cost));
    }
    s.push_str(
        "\n## Table 2: ours beside the paper's\n\n\
         **Not like for like.** Ours: the pair, task and machine above (CPU; modelled latency with the c above; replayed = \
         the logical calls at this machine's measured seconds; b(k) = the block-cost curve). The paper's: T5 v1.1 small → large \
         (and Gemma) on WMT / XSum / CNN-DM and others, on accelerators. Speed-up at verifier quality = 1 / the lowest relative \
         latency on the α-ordered curve at which quality reaches the verifier's (linear crossings counted); ≈ speed-up = 1 / the \
         lowest relative latency among configurations not significantly worse than the verifier (paired test at 5 %).\n\n",
    );
    s.push_str(&table2(reports));
    s.push_str(
        "\nThe paper's column holds only what this repository's docs record of the paper (shared/docs/methods.md); the other \
         figures are in the paper's Table 2 and are not transcribed here rather than guessed.\n",
    );
    s
}
