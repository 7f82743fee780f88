//! The regression check: compare a sweep's speed-ups and qualities with a stored baseline of
//! like-for-like runs.
//!
//! Like-for-like = same task, method, α, γ, bonus mode, temperature, top-p, seed, max new tokens,
//! number of examples, drafter and verifier — and, for numbers that depend on the machine, the same hardware tag:
//! wall-clock speed-ups always, modelled ones when c is measured (a fixed c makes them a pure
//! function of the token counts). Checked, with a relative tolerance `tol`:
//! - Table-2 speed-ups (modelled; wall clock too, unless the current slice has records timed under
//!   foreign load): a regression is `current < baseline · (1 − tol)`, or no longer reached; the
//!   modelled speed-up with the block-cost curve b(k) likewise, on the same machine or anywhere
//!   when both runs fixed the curve (`cost: {c, block}`: then it is machine-free too);
//! - Table-2 best quality at relative latency ≤ 1 (modelled) and every configuration's quality:
//!   a regression is `current < baseline − tol · |baseline|`.
//!
//! A check that finds nothing to compare is an error, never a pass.

use std::path::Path;

use serde::{Deserialize, Serialize};
use speccascade_decoding::{Bonus, Method};

use crate::ReportError;
use crate::table2::{Table2Row, table2};
use crate::tables::{Row, rows};

/// What identifies a like-for-like number.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Key {
    pub task: String,
    pub method: Method,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    #[serde(default)]
    pub bonus: Option<Bonus>,
    pub temperature: f64,
    #[serde(default = "one")]
    pub top_p: f64,
    pub seed: u64,
    pub max_new_tokens: usize,
    pub examples: usize,
    pub drafter: String,
    pub verifier: String,
}

fn one() -> f64 {
    1.0
}

impl Key {
    fn of_row(r: &Row) -> Key {
        Key {
            task: r.key.task.clone(),
            method: r.key.method,
            alpha: r.key.alpha,
            gamma: r.key.gamma,
            bonus: r.key.bonus,
            temperature: r.key.temperature,
            top_p: r.key.top_p,
            seed: r.key.seed,
            max_new_tokens: r.key.max_new_tokens,
            examples: r.examples,
            drafter: r.key.drafter.clone(),
            verifier: r.key.verifier.clone(),
        }
    }
    fn of_t2(r: &Table2Row) -> Key {
        Key {
            task: r.task.clone(),
            method: r.method,
            alpha: None,
            gamma: r.gamma,
            bonus: r.bonus,
            temperature: r.temperature,
            top_p: r.top_p,
            seed: r.seed,
            max_new_tokens: r.max_new_tokens,
            examples: r.examples,
            drafter: r.drafter.clone(),
            verifier: r.verifier.clone(),
        }
    }
}

/// A configuration's stored quality.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QualityEntry {
    pub key: Key,
    pub quality: f64,
}

/// A (task, method, T, γ)'s stored Table-2 numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpeedupEntry {
    pub key: Key,
    /// The machine the speed-ups were measured on.
    pub hardware: String,
    /// c was fixed in the experiment (modelled speed-ups do not depend on the machine).
    pub c_fixed: bool,
    pub speedup_modelled: Option<f64>,
    pub speedup_wall: Option<f64>,
    pub best_quality_modelled: Option<f64>,
    /// The block-cost curve b(k) was fixed in the experiment too (`cost: {c, block}`): the
    /// b(k)-modelled speed-up is then machine-free as well.
    #[serde(default)]
    pub block_fixed: bool,
    #[serde(default)]
    pub speedup_modelled_bk: Option<f64>,
}

/// The baseline file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub version: u32,
    pub quality: Vec<QualityEntry>,
    pub table2: Vec<SpeedupEntry>,
}

/// One number that regressed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Offender {
    pub what: String,
    pub task: String,
    pub method: Method,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    pub temperature: f64,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
}

/// The outcome of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckOutcome {
    pub compared: usize,
    pub offenders: Vec<Offender>,
    /// Wall-clock speed-ups not compared because the current run was timed under foreign load.
    pub skipped_foreign_load: usize,
    /// Current numbers with no like-for-like baseline entry.
    pub not_in_baseline: usize,
    pub tolerance: f64,
    pub updated: bool,
}

impl CheckOutcome {
    pub fn passed(&self) -> bool {
        self.offenders.is_empty()
    }

    /// The offenders as a markdown table.
    pub fn table(&self) -> String {
        let mut s = String::from("| number | task | method | α | γ | T | baseline | current | change |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n");
        let f = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "not reached".into());
        for o in &self.offenders {
            let change = match (o.baseline, o.current) {
                (Some(b), Some(c)) if b != 0.0 => format!("{:+.1} %", (c - b) / b.abs() * 100.0),
                _ => "—".into(),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {change} |\n",
                o.what,
                o.task,
                o.method,
                o.alpha.map(|a| a.to_string()).unwrap_or_else(|| "—".into()),
                o.gamma.map(|g| g.to_string()).unwrap_or_else(|| "—".into()),
                o.temperature,
                f(o.baseline),
                f(o.current)
            ));
        }
        s
    }
}

pub fn read_baseline(path: &Path) -> Result<Baseline, ReportError> {
    let s = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| ReportError::Baseline {
        path: path.display().to_string(),
        msg: format!("line {} column {}: {e}", e.line(), e.column()),
    })
}

/// The current numbers as a baseline.
pub fn current(rows_: &[Row], t2: &[Table2Row], fixed: Fixed) -> Baseline {
    Baseline {
        version: 1,
        quality: rows_.iter().map(|r| QualityEntry { key: Key::of_row(r), quality: r.quality }).collect(),
        table2: t2
            .iter()
            .map(|t| SpeedupEntry {
                key: Key::of_t2(t),
                hardware: t.hardware.clone(),
                c_fixed: fixed.c,
                speedup_modelled: t.speedup_modelled,
                speedup_wall: t.speedup_wall,
                best_quality_modelled: t.best_quality_modelled,
                block_fixed: fixed.block,
                speedup_modelled_bk: t.speedup_modelled_bk,
            })
            .collect(),
    }
}

/// Which of the current run's cost-model numbers were fixed in its experiment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fixed {
    /// c (the constant-c modelled latency is machine-free).
    pub c: bool,
    /// c and the block-cost curve b(k) (the b(k)-modelled latency is machine-free).
    pub block: bool,
}

impl Fixed {
    pub fn of(cost: &speccascade_harness::config::CostModel) -> Fixed {
        Fixed { c: cost.fixed_c().is_some(), block: cost.block().is_some() }
    }
}

/// Compare `rows_` (and their Table-2 numbers) against `base`; `fixed` says which of the current
/// run's cost numbers were fixed.
pub fn compare(rows_: &[Row], base: &Baseline, tol: f64, fixed: Fixed) -> CheckOutcome {
    let c_fixed = fixed.c;
    let t2 = table2(rows_);
    let mut out = CheckOutcome { compared: 0, offenders: vec![], skipped_foreign_load: 0, not_in_baseline: 0, tolerance: tol, updated: false };
    let quality_drop = |b: f64, c: f64| c < b - tol * b.abs();
    let mut push = |what: &str, k: &Key, b: Option<f64>, c: Option<f64>| {
        out.offenders.push(Offender {
            what: what.into(),
            task: k.task.clone(),
            method: k.method,
            alpha: k.alpha,
            gamma: k.gamma,
            temperature: k.temperature,
            baseline: b,
            current: c,
        })
    };
    let (mut compared, mut not_in, mut skipped) = (0, 0, 0);
    for r in rows_ {
        let k = Key::of_row(r);
        match base.quality.iter().find(|e| e.key == k) {
            Some(e) => {
                compared += 1;
                if !r.quality.is_finite() || quality_drop(e.quality, r.quality) {
                    push("quality", &k, Some(e.quality), Some(r.quality));
                }
            }
            None => not_in += 1,
        }
    }
    for t in &t2 {
        let k = Key::of_t2(t);
        // Prefer an entry from this machine; another machine's serves only machine-free numbers.
        let same_hw = base.table2.iter().find(|e| e.key == k && e.hardware == t.hardware);
        let Some(e) = same_hw.or_else(|| base.table2.iter().find(|e| e.key == k)) else {
            not_in += 1;
            continue;
        };
        let same_machine = e.hardware == t.hardware;
        let modelled_comparable = same_machine || (c_fixed && e.c_fixed);
        if !modelled_comparable {
            not_in += 1;
            continue;
        }
        compared += 1;
        let slower = |b: Option<f64>, c: Option<f64>| match (b, c) {
            (Some(b), Some(c)) => c < b * (1.0 - tol),
            (Some(_), None) => true,
            _ => false,
        };
        if slower(e.speedup_modelled, t.speedup_modelled) {
            push("speed-up (modelled)", &k, e.speedup_modelled, t.speedup_modelled);
        }
        // The b(k)-modelled speed-up: like-for-like on the same machine, or anywhere when both
        // runs fixed the curve.
        if (same_machine || (fixed.block && e.block_fixed)) && slower(e.speedup_modelled_bk, t.speedup_modelled_bk) {
            push("speed-up (modelled b(k))", &k, e.speedup_modelled_bk, t.speedup_modelled_bk);
        }
        let foreign: usize = rows_
            .iter()
            .filter(|r| {
                r.setting() == t.setting()
                    && ((r.key.method == t.method && r.key.gamma == t.gamma && r.key.bonus == t.bonus) || r.key.method == Method::Verifier)
            })
            .map(|r| r.foreign_load_records)
            .sum();
        if foreign > 0 {
            skipped += 1;
        } else if same_machine && slower(e.speedup_wall, t.speedup_wall) {
            push("speed-up (wall)", &k, e.speedup_wall, t.speedup_wall);
        }
        let worse = match (e.best_quality_modelled, t.best_quality_modelled) {
            (Some(b), Some(c)) => quality_drop(b, c),
            (Some(_), None) => true,
            _ => false,
        };
        if worse {
            push("best quality at latency ≤ 1 (modelled)", &k, e.best_quality_modelled, t.best_quality_modelled);
        }
    }
    out.compared = compared;
    out.not_in_baseline = not_in;
    out.skipped_foreign_load = skipped;
    out
}

/// `speccascade check`: load the sweep at `dir`, compare with `baseline` (or, with `update`, write
/// the current numbers into it, replacing like-for-like entries and keeping the others).
pub fn check(dir: &Path, baseline: &Path, tol: f64, update: bool) -> Result<CheckOutcome, ReportError> {
    if !(0.0..1.0).contains(&tol) {
        return Err(ReportError::Baseline { path: baseline.display().to_string(), msg: format!("tolerance {tol} must be in [0, 1)") });
    }
    let sweep = crate::load::load(dir)?;
    let rows_ = rows(&sweep);
    let fixed = Fixed::of(&sweep.experiment.cost);
    if update {
        let mut base = if baseline.exists() { read_baseline(baseline)? } else { Baseline { version: 1, ..Default::default() } };
        let cur = current(&rows_, &table2(&rows_), fixed);
        base.quality.retain(|e| !cur.quality.iter().any(|c| c.key == e.key));
        base.table2.retain(|e| !cur.table2.iter().any(|c| c.key == e.key && c.hardware == e.hardware));
        base.quality.extend(cur.quality);
        base.table2.extend(cur.table2);
        let json = serde_json::to_string_pretty(&base).expect("baseline serialises");
        if let Some(parent) = baseline.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| ReportError::io(parent, e))?;
        }
        crate::tables::write_text(baseline, &(json + "\n"))?;
        let mut o = compare(&rows_, &base, tol, fixed);
        o.updated = true;
        return Ok(o);
    }
    let base = read_baseline(baseline)?;
    let o = compare(&rows_, &base, tol, fixed);
    if o.compared == 0 {
        let hw: Vec<&str> = base.table2.iter().map(|e| e.hardware.as_str()).collect();
        return Err(ReportError::Baseline {
            path: baseline.display().to_string(),
            msg: format!(
                "no like-for-like entries to compare (current hardware {:?}, models {} → {}; baseline hardware {:?}). \
                 Record one with --update on this machine.",
                rows_.first().map(|r| r.key.hardware.as_str()).unwrap_or(""),
                rows_.first().map(|r| r.key.drafter.as_str()).unwrap_or(""),
                rows_.first().map(|r| r.key.verifier.as_str()).unwrap_or(""),
                hw.first().copied().unwrap_or("none")
            ),
        });
    }
    Ok(o)
}
