//! The paper's Table-2 numbers per (task, T, γ, method), for wall-clock and modelled latency.
//!
//! **Interpolation rule.** A method's points are joined in order of α by straight lines, exactly
//! the curve of the quality-vs-latency figure. (a) *Speed-up at verifier quality* = 1 / L*, where
//! L* is the lowest relative latency on that curve at which quality ≥ the verifier-alone quality
//! Q_v: the candidates are every point with Q ≥ Q_v and, on every segment whose ends lie on both
//! sides of Q_v, the latency where the segment crosses Q_v (linear in both coordinates). If no
//! point reaches Q_v the speed-up is not reached (—). (b) *Best quality at relative latency ≤ 1* =
//! the highest quality among the method's measured points with relative latency ≤ 1 (no
//! interpolation); — if none.

use std::fmt::Write as _;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use speccascade_harness::grid::methods;

use crate::tables::{Row, num, opt};

/// One Table-2 line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Table2Row {
    pub task: String,
    pub method: String,
    pub temperature: f64,
    pub gamma: Option<usize>,
    pub drafter: String,
    pub verifier: String,
    pub hardware: String,
    pub max_new_tokens: usize,
    pub seed: u64,
    pub examples: usize,
    pub points: usize,
    pub verifier_quality: f64,
    pub speedup_wall: Option<f64>,
    pub speedup_modelled: Option<f64>,
    pub best_quality_wall: Option<f64>,
    pub best_quality_modelled: Option<f64>,
}

/// The lowest latency on the α-ordered piecewise-linear curve `(latency, quality)` at which quality
/// reaches `target` (see the module doc). Points with a non-finite coordinate are dropped.
pub fn lowest_latency_at_quality(points: &[(f64, f64)], target: f64) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(l, q)| l.is_finite() && q.is_finite()).collect();
    let mut best: Option<f64> = None;
    let mut consider = |l: f64| best = Some(best.map_or(l, |b: f64| b.min(l)));
    for &(l, q) in &pts {
        if q >= target {
            consider(l);
        }
    }
    for w in pts.windows(2) {
        let ((l0, q0), (l1, q1)) = (w[0], w[1]);
        if (q0 < target) != (q1 < target) {
            let t = (target - q0) / (q1 - q0);
            consider(l0 + t * (l1 - l0));
        }
    }
    best
}

/// The best quality among points with latency ≤ `max_latency`.
pub fn best_quality_within(points: &[(f64, f64)], max_latency: f64) -> Option<f64> {
    points
        .iter()
        .filter(|(l, q)| l.is_finite() && q.is_finite() && *l <= max_latency + 1e-12)
        .map(|p| p.1)
        .fold(None, |b: Option<f64>, q| Some(b.map_or(q, |b| b.max(q))))
}

/// Table-2 rows from the per-configuration rows (methods other than drafter and verifier).
pub fn table2(rows: &[Row]) -> Vec<Table2Row> {
    let mut out: Vec<Table2Row> = Vec::new();
    for r in rows {
        if r.key.method == "drafter" || r.key.method == "verifier" {
            continue;
        }
        if out.iter().any(|t| t.task == r.key.task && t.method == r.key.method && t.temperature == r.key.temperature && t.gamma == r.key.gamma) {
            continue;
        }
        let Some(v) = rows.iter().find(|v| v.key.method == "verifier" && v.key.task == r.key.task && v.key.temperature == r.key.temperature) else {
            continue;
        };
        let mut pts: Vec<&Row> = rows
            .iter()
            .filter(|p| p.key.task == r.key.task && p.key.method == r.key.method && p.key.temperature == r.key.temperature && p.key.gamma == r.key.gamma)
            .collect();
        pts.sort_by(|a, b| a.key.alpha.unwrap_or(0.0).total_cmp(&b.key.alpha.unwrap_or(0.0)));
        let wall: Vec<(f64, f64)> = pts.iter().map(|p| (p.rel_latency_wall, p.quality)).collect();
        let modelled: Vec<(f64, f64)> = pts.iter().map(|p| (p.rel_latency_modelled, p.quality)).collect();
        out.push(Table2Row {
            task: r.key.task.clone(),
            method: r.key.method.clone(),
            temperature: r.key.temperature,
            gamma: r.key.gamma,
            drafter: r.key.drafter.clone(),
            verifier: r.key.verifier.clone(),
            hardware: r.key.hardware.clone(),
            max_new_tokens: r.key.max_new_tokens,
            seed: r.key.seed,
            examples: r.examples,
            points: pts.len(),
            verifier_quality: v.quality,
            speedup_wall: lowest_latency_at_quality(&wall, v.quality).map(|l| 1.0 / l),
            speedup_modelled: lowest_latency_at_quality(&modelled, v.quality).map(|l| 1.0 / l),
            best_quality_wall: best_quality_within(&wall, 1.0),
            best_quality_modelled: best_quality_within(&modelled, 1.0),
        });
    }
    out
}

pub fn frame(rows: &[Table2Row]) -> PolarsResult<DataFrame> {
    macro_rules! col {
        ($name:literal, $f:expr) => {
            Column::new($name.into(), rows.iter().map($f).collect::<Vec<_>>())
        };
    }
    DataFrame::new(
        rows.len(),
        vec![
            col!("task", |r| r.task.clone()),
            col!("method", |r| r.method.clone()),
            col!("temperature", |r| r.temperature),
            col!("gamma", |r| r.gamma.map(|g| g as u64)),
            col!("points", |r| r.points as u64),
            col!("verifier_quality", |r| r.verifier_quality),
            col!("speedup_wall", |r| r.speedup_wall),
            col!("speedup_modelled", |r| r.speedup_modelled),
            col!("best_quality_wall", |r| r.best_quality_wall),
            col!("best_quality_modelled", |r| r.best_quality_modelled),
            col!("examples", |r| r.examples as u64),
            col!("drafter", |r| r.drafter.clone()),
            col!("verifier", |r| r.verifier.clone()),
            col!("hardware", |r| r.hardware.clone()),
        ],
    )
}

pub fn markdown(rows: &[Table2Row]) -> String {
    let mut s = String::from("# Table 2: speed-up at verifier quality, best quality at relative latency ≤ 1\n\n");
    s.push_str(
        "Rule: a method's points are joined in α order by straight lines (the plotted curve). Speed-up = 1 / the lowest \
         relative latency on that curve at which quality ≥ the verifier's (points meeting it, and linear crossings of \
         segments); — = never reached. Best quality = the highest quality among measured points with relative latency ≤ 1; \
         — = none. Wall = measured wall clock (for records that shared model calls: replayed from the cost table); modelled = c · drafter steps + verifier calls.\n\n",
    );
    let _ = writeln!(s, "| task | method | T | γ | verifier quality | speed-up (wall) | speed-up (modelled) | best quality, latency ≤ 1 (wall) | best quality, latency ≤ 1 (modelled) |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let x = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "—".into());
    let q = |v: Option<f64>| v.map(|v| num(v, 3)).unwrap_or_else(|| "—".into());
    for r in rows {
        let label = methods::info(&r.method).map(|i| i.label).unwrap_or(&r.method);
        let _ = writeln!(
            s,
            "| {} | {label} | {} | {} | {} | {} | {} | {} | {} |",
            r.task,
            r.temperature,
            opt(r.gamma),
            num(r.verifier_quality, 3),
            x(r.speedup_wall),
            x(r.speedup_modelled),
            q(r.best_quality_wall),
            q(r.best_quality_modelled)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_the_crossing_on_the_alpha_ordered_curve() {
        // α-ordered: verifier-like (slow, good) → drafter-like (fast, poor).
        let pts = [(0.9, 0.80), (0.6, 0.76), (0.4, 0.60)];
        // Target 0.70 crosses the second segment at t = (0.70 − 0.76)/(0.60 − 0.76) = 0.375:
        // L = 0.6 + 0.375 · (0.4 − 0.6) = 0.525.
        let l = lowest_latency_at_quality(&pts, 0.70).unwrap();
        assert!((l - 0.525).abs() < 1e-12, "{l}");
        // A point exactly at the target counts.
        assert_eq!(lowest_latency_at_quality(&pts, 0.76), Some(0.6));
        // Never reached.
        assert_eq!(lowest_latency_at_quality(&pts, 0.81), None);
        // A non-monotone curve: the lowest latency wins, even from a later point.
        let wiggly = [(1.2, 0.9), (0.5, 0.5), (0.3, 0.85)];
        let l = lowest_latency_at_quality(&wiggly, 0.8).unwrap();
        assert!((l - 0.3).abs() < 1e-12, "{l}");
        // NaN points are skipped, not interpolated through.
        assert_eq!(lowest_latency_at_quality(&[(f64::NAN, 1.0), (0.7, 0.9)], 0.8), Some(0.7));
    }

    #[test]
    fn best_quality_only_from_points_within_budget() {
        let pts = [(1.3, 0.95), (1.0, 0.81), (0.5, 0.7)];
        assert_eq!(best_quality_within(&pts, 1.0), Some(0.81));
        assert_eq!(best_quality_within(&[(1.1, 0.9)], 1.0), None);
    }
}
