//! The paper's Table-2 numbers per curve (setting × method × γ × bonus; the setting is task, T,
//! top-p, seed, length and pair, see [`Setting`]), for wall-clock and modelled latency.
//!
//! **Interpolation rule.** A method's points are joined in order of α by straight lines, exactly
//! the curve of the quality-vs-latency figure. (a) *Speed-up at verifier quality* = 1 / L*, where
//! L* is the lowest relative latency on that curve at which quality ≥ the verifier-alone quality
//! Q_v: the candidates are every point with Q ≥ Q_v and, on every segment whose ends lie on both
//! sides of Q_v, the latency where the segment crosses Q_v (linear in both coordinates). If no
//! point reaches Q_v the speed-up is not reached (—). (b) *Best quality at relative latency ≤ 1* =
//! the highest quality among the method's measured points with relative latency ≤ 1 (no
//! interpolation); — if none.
//!
//! **Intervals.** (a) gets a 95 % percentile-bootstrap interval: the examples common to every point
//! and the verifier are resampled, every point's quality and latency and the verifier's quality are
//! recomputed on the resample, and the crossing is found again (a resample that never reaches the
//! verifier's quality counts as speed-up 0). **Second reading** (c): 1 / the lowest relative latency
//! among the measured points whose quality is *not significantly worse* than the verifier's on the
//! same examples (paired test at 5 %: McNemar for 0/1 metrics, else the paired-bootstrap interval).

use std::fmt::Write as _;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use speccascade_decoding::{Bonus, Method};

use crate::stats::{BOOTSTRAP_RESAMPLES, percentile_interval, resample_indices};
use crate::tables::{Row, Samples, Setting, num, opt, same_curve};

/// One Table-2 line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Table2Row {
    pub task: String,
    pub method: Method,
    pub temperature: f64,
    pub top_p: f64,
    pub gamma: Option<usize>,
    pub bonus: Option<Bonus>,
    pub drafter: String,
    pub verifier: String,
    pub hardware: String,
    pub max_new_tokens: usize,
    pub seed: u64,
    pub examples: usize,
    pub trials: usize,
    pub points: usize,
    pub verifier_quality: f64,
    pub speedup_wall: Option<f64>,
    pub speedup_modelled: Option<f64>,
    /// 95 % bootstrap intervals of the speed-ups (see the module doc).
    pub speedup_wall_lo: f64,
    pub speedup_wall_hi: f64,
    pub speedup_modelled_lo: f64,
    pub speedup_modelled_hi: f64,
    /// The second reading: 1 / the lowest latency among points not significantly worse than the
    /// verifier.
    pub speedup_indistinguishable_wall: Option<f64>,
    pub speedup_indistinguishable_modelled: Option<f64>,
    pub best_quality_wall: Option<f64>,
    pub best_quality_modelled: Option<f64>,
    /// Speed-up at verifier quality (the crossing rule) on the replayed latency and on the modelled
    /// cost with the block-cost curve b(k) (point estimates; — when a point lacks the number).
    #[serde(default)]
    pub speedup_replayed: Option<f64>,
    #[serde(default)]
    pub speedup_modelled_bk: Option<f64>,
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

/// The (wall, modelled) speed-up intervals of one curve: resample the examples common to every
/// point and the verifier, recompute the crossing on each resample.
fn speedup_intervals(pts: &[&Row], v: &Samples, seed: u64) -> [(f64, f64); 2] {
    // Examples common to every point and the verifier, as positions in each sample.
    let mut common: Vec<usize> = v.examples.clone();
    for p in pts {
        common.retain(|e| p.samples.examples.binary_search(e).is_ok());
    }
    if common.is_empty() {
        return [(f64::NAN, f64::NAN); 2];
    }
    let at = |s: &Samples| -> Vec<usize> { common.iter().map(|e| s.examples.binary_search(e).expect("common example")).collect() };
    let vpos = at(v);
    let ppos: Vec<Vec<usize>> = pts.iter().map(|p| at(&p.samples)).collect();
    let draws = resample_indices(common.len(), BOOTSTRAP_RESAMPLES, seed);
    let mut out = [(f64::NAN, f64::NAN); 2];
    for (slot, k) in [(0usize, 0usize), (1, 2)] {
        let values: Vec<f64> = draws
            .iter()
            .map(|d| {
                let vq = v.quality(&d.iter().map(|&i| vpos[i]).collect::<Vec<_>>());
                let curve: Vec<(f64, f64)> = pts
                    .iter()
                    .zip(&ppos)
                    .map(|(p, pp)| {
                        let idx: Vec<usize> = d.iter().map(|&i| pp[i]).collect();
                        (p.samples.rel_latency(&idx, k), p.samples.quality(&idx))
                    })
                    .collect();
                lowest_latency_at_quality(&curve, vq).map_or(0.0, |l| 1.0 / l)
            })
            .collect();
        out[slot] = percentile_interval(values);
    }
    out
}

/// Table-2 rows from the per-configuration rows (methods other than drafter and verifier), one per
/// curve, matched with the verifier of the same setting.
pub fn table2(rows: &[Row]) -> Vec<Table2Row> {
    let mut out: Vec<Table2Row> = Vec::new();
    let mut done: Vec<&Row> = Vec::new();
    for r in rows {
        if r.key.method == Method::Drafter || r.key.method == Method::Verifier {
            continue;
        }
        if done.iter().any(|d| same_curve(&d.key, &r.key)) {
            continue;
        }
        done.push(r);
        let Some(v) = rows.iter().find(|v| v.key.method == Method::Verifier && v.setting() == r.setting()) else {
            continue;
        };
        let mut pts: Vec<&Row> = rows.iter().filter(|p| same_curve(&p.key, &r.key)).collect();
        pts.sort_by(|a, b| a.key.alpha.unwrap_or(0.0).total_cmp(&b.key.alpha.unwrap_or(0.0)));
        let wall: Vec<(f64, f64)> = pts.iter().map(|p| (p.rel_latency_wall, p.quality)).collect();
        let modelled: Vec<(f64, f64)> = pts.iter().map(|p| (p.rel_latency_modelled, p.quality)).collect();
        let replayed: Vec<(f64, f64)> = pts.iter().map(|p| (p.rel_latency_replayed, p.quality)).collect();
        let modelled_bk: Vec<(f64, f64)> = pts.iter().map(|p| (p.rel_latency_modelled_bk, p.quality)).collect();
        // A curve with a missing number (records without replay) has no such speed-up.
        let complete = |c: &[(f64, f64)]| c.iter().all(|(l, _)| l.is_finite());
        let [(wlo, whi), (mlo, mhi)] = speedup_intervals(&pts, &v.samples, r.seed());
        let reaching = |lat: &dyn Fn(&Row) -> f64| {
            pts.iter()
                .filter(|p| p.vs_verifier.as_ref().is_some_and(|c| c.verdict.reaches_verifier()))
                .map(|p| lat(p))
                .filter(|l| l.is_finite() && *l > 0.0)
                .fold(None, |b: Option<f64>, l| Some(b.map_or(l, |b| b.min(l))))
                .map(|l| 1.0 / l)
        };
        out.push(Table2Row {
            task: r.key.task.clone(),
            method: r.key.method,
            temperature: r.key.temperature,
            top_p: r.key.top_p,
            gamma: r.key.gamma,
            bonus: r.key.bonus,
            drafter: r.key.drafter.clone(),
            verifier: r.key.verifier.clone(),
            hardware: r.key.hardware.clone(),
            max_new_tokens: r.key.max_new_tokens,
            seed: r.key.seed,
            examples: r.examples,
            trials: r.trials,
            points: pts.len(),
            verifier_quality: v.quality,
            speedup_wall: lowest_latency_at_quality(&wall, v.quality).map(|l| 1.0 / l),
            speedup_modelled: lowest_latency_at_quality(&modelled, v.quality).map(|l| 1.0 / l),
            speedup_wall_lo: wlo,
            speedup_wall_hi: whi,
            speedup_modelled_lo: mlo,
            speedup_modelled_hi: mhi,
            speedup_indistinguishable_wall: reaching(&|p| p.rel_latency_wall),
            speedup_indistinguishable_modelled: reaching(&|p| p.rel_latency_modelled),
            best_quality_wall: best_quality_within(&wall, 1.0),
            best_quality_modelled: best_quality_within(&modelled, 1.0),
            speedup_replayed: if complete(&replayed) { lowest_latency_at_quality(&replayed, v.quality).map(|l| 1.0 / l) } else { None },
            speedup_modelled_bk: if complete(&modelled_bk) {
                lowest_latency_at_quality(&modelled_bk, v.quality).map(|l| 1.0 / l)
            } else {
                None
            },
        });
    }
    out
}

impl Table2Row {
    /// The setting of this line (what its figure groups share).
    pub fn setting(&self) -> Setting {
        Setting {
            task: self.task.clone(),
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            max_new_tokens: self.max_new_tokens,
            drafter: self.drafter.clone(),
            verifier: self.verifier.clone(),
        }
    }
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
            col!("method", |r| r.method.name().to_string()),
            col!("temperature", |r| r.temperature),
            col!("top_p", |r| r.top_p),
            col!("gamma", |r| r.gamma.map(|g| g as u64)),
            col!("bonus", |r| r.bonus.map(|b| b.name().to_string())),
            col!("seed", |r| r.seed),
            col!("trials", |r| r.trials as u64),
            col!("points", |r| r.points as u64),
            col!("verifier_quality", |r| r.verifier_quality),
            col!("speedup_wall", |r| r.speedup_wall),
            col!("speedup_wall_ci_low", |r| r.speedup_wall_lo),
            col!("speedup_wall_ci_high", |r| r.speedup_wall_hi),
            col!("speedup_modelled", |r| r.speedup_modelled),
            col!("speedup_modelled_ci_low", |r| r.speedup_modelled_lo),
            col!("speedup_modelled_ci_high", |r| r.speedup_modelled_hi),
            col!("speedup_indistinguishable_wall", |r| r.speedup_indistinguishable_wall),
            col!("speedup_indistinguishable_modelled", |r| r.speedup_indistinguishable_modelled),
            col!("best_quality_wall", |r| r.best_quality_wall),
            col!("best_quality_modelled", |r| r.best_quality_modelled),
            col!("speedup_replayed", |r| r.speedup_replayed),
            col!("speedup_modelled_bk", |r| r.speedup_modelled_bk),
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
         segments); — = never reached; [95 % bootstrap interval over examples of the crossing, a resample that never reaches \
         the verifier counting as 0]. ≈ speed-up = 1 / the lowest relative latency among measured points whose quality is not \
         significantly worse than the verifier's on the same examples (paired test at 5 %). Best quality = the highest quality \
         among measured points with relative latency ≤ 1; — = none. Wall = measured wall clock (for records that shared model calls: replayed from the cost table); modelled = c · drafter steps + \
         verifier calls; replayed = each record's logical calls at the cost table's measured seconds; modelled b(k) = every call \
         charged the block-cost curve (measured, or fixed in the experiment). n = examples, trials per example and seed in each line.\n\n",
    );
    let _ = writeln!(s, "| task | method | T | top-p | γ | bonus | n × trials (seed) | verifier quality | speed-up (wall) | speed-up (modelled) | speed-up (replayed) | speed-up (modelled b(k)) | ≈ speed-up (wall) | ≈ speed-up (modelled) | best quality, latency ≤ 1 (wall) | best quality, latency ≤ 1 (modelled) |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let x = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "—".into());
    let xi = |v: Option<f64>, lo: f64, hi: f64| format!("{} [{}, {}]", x(v), num(lo, 2), num(hi, 2));
    let q = |v: Option<f64>| v.map(|v| num(v, 3)).unwrap_or_else(|| "—".into());
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} × {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.task,
            r.method.label(),
            r.temperature,
            r.top_p,
            opt(r.gamma),
            opt(r.bonus),
            r.examples,
            r.trials,
            r.seed,
            num(r.verifier_quality, 3),
            xi(r.speedup_wall, r.speedup_wall_lo, r.speedup_wall_hi),
            xi(r.speedup_modelled, r.speedup_modelled_lo, r.speedup_modelled_hi),
            x(r.speedup_replayed),
            x(r.speedup_modelled_bk),
            x(r.speedup_indistinguishable_wall),
            x(r.speedup_indistinguishable_modelled),
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
