//! Replayed latency: what a configuration's calls would have cost had it run alone.
//!
//! Sharing model calls breaks per-configuration wall-clock timing, so the harness times every real
//! call ([`crate::share::Sample`]) and keeps a per-model, per-machine [`CostTable`]; each record is
//! then charged the calls it *logically* made ([`CallStats`]) at the table's costs.
//!
//! The cost model of one call scoring k positions at context depth d is `a(k) + s(k) · d`:
//! - `s(k) = s0 + s1 · k` (seconds per context token: attention over the cache, read once per call
//!   and multiplied against k queries) is a line through the per-k depth slopes. Each k's slope is
//!   robust: the Theil–Sen slope through the medians of up to 16 equal-count depth bins, so a few
//!   calls slowed by a neighbour cannot tilt it. The line is the least-squares line through those
//!   slopes weighted by their calls, with s0, s1 ≥ 0 (one well-measured k: a constant slope).
//!   A slope pooled over every k (one `s` for all) was the earlier model, and it broke on real
//!   sweeps: a block of 6 reads 6 queries against the cache, so its depth slope is ~3× a step's,
//!   and the pooled slope (dominated by the blocks) pushed every `a(k)` below zero, flattening
//!   `b(k)` to 1 (GSM8K's 8-shot prompts, depths 714–1052: pooled 202 µs per token against 60 µs
//!   for k = 1 and 200 µs for k = 6);
//! - `a(k)` is, per k, the median of `t − s(k) · d` over the calls that scored k positions (the
//!   median shrugs off calls slowed by a neighbour); a k never measured is interpolated linearly
//!   between the nearest measured ones (extrapolated from the last two beyond them). An `a(k)` may
//!   be negative (the line extrapolated to depth 0); a call's cost is clamped at 0, not its parts.
//!
//! A prefill of L tokens costs `p0 + p1 · L` on the Theil–Sen line through the medians of the
//! measured prefills at each length (the median of pairwise slopes): a shared sweep prefills each
//! prompt once, so the one sample of a length is as noisy as a single call (±20 % seen idle), and
//! the robust line through all of them predicts a fresh run better than that sample does.
//!
//! The block-cost curve `b(k) = a(k) / a(1)` (at the mean depth) says what a call of k positions costs
//! in single-step units: the constant-c model charges 1 for every verifier call whatever its k.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::HarnessError;
use crate::share::{CallStats, ModelCalls, Sample};

/// The measured calls of one model on one machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelSamples {
    pub calls: Vec<Sample>,
    pub prefills: Vec<Sample>,
}

/// Every model's measured calls on one machine, persisted as `cost_table.json` in the output
/// directory (a resumed sweep keeps adding to it).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CostTable {
    pub hardware: String,
    /// Model name → samples.
    pub models: BTreeMap<String, ModelSamples>,
    /// Which model is which: `"drafter"` / `"verifier"` → model name (absent in tables written
    /// before it was kept).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

impl CostTable {
    pub const FILE: &'static str = "cost_table.json";

    /// Cost tables are small (≤ 24 000 samples per model); a bigger file is not one.
    pub const FILE_LIMIT: u64 = 256 << 20;

    /// Read a cost table file (any machine's).
    pub fn read(path: &Path) -> Result<Self, HarnessError> {
        let bytes = speccascade_files::read_capped(path, Self::FILE_LIMIT, "cost table").map_err(|e| HarnessError::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| HarnessError::BadRecord { path: path.display().to_string(), line: e.line(), msg: e.to_string() })
    }

    /// The model playing `role`: as recorded, else the one table model whose name is the
    /// configured name or starts with it followed by `-` (a registered name and its file stem,
    /// e.g. `qwen2.5-coder-0.5b-instruct` and `qwen2.5-coder-0.5b-instruct-q4_k_m`).
    pub fn role(&self, role: &str, configured: Option<&str>) -> Option<String> {
        if let Some(m) = self.roles.get(role) {
            return Some(m.clone());
        }
        let c = configured?;
        // A registered name, or a GGUF file / HF directory path (its last component, less `.gguf`).
        let base = c.trim_end_matches('/').rsplit('/').next().unwrap_or(c);
        let stem = base.strip_suffix(".gguf").unwrap_or(base);
        let mut hits = self.models.keys().filter(|m| *m == stem || m.starts_with(&format!("{stem}-")));
        let one = hits.next()?;
        hits.next().is_none().then(|| one.clone())
    }

    /// Read `dir/cost_table.json` if it was measured on `hardware` (else start empty).
    pub fn load(dir: &Path, hardware: &str) -> Result<Self, HarnessError> {
        let path = dir.join(Self::FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let t: CostTable = serde_json::from_slice(&bytes)
                    .map_err(|e| HarnessError::BadRecord { path: path.display().to_string(), line: e.line(), msg: e.to_string() })?;
                Ok(if t.hardware == hardware { t } else { CostTable { hardware: hardware.into(), ..Default::default() } })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CostTable { hardware: hardware.into(), ..Default::default() }),
            Err(e) => Err(HarnessError::io(&path, e)),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), HarnessError> {
        let bytes = serde_json::to_vec(self).expect("cost table serialises");
        crate::store::write_atomic(&dir.join(Self::FILE), &bytes)
    }

    /// Samples kept per model (the newest): enough for medians, small enough to rewrite the file
    /// after every example.
    pub const MAX_CALLS: usize = 20_000;
    pub const MAX_PREFILLS: usize = 4_000;

    pub fn add(&mut self, model: &str, calls: Vec<Sample>, prefills: Vec<Sample>) {
        let m = self.models.entry(model.to_string()).or_default();
        m.calls.extend(calls);
        m.prefills.extend(prefills);
        if m.calls.len() > Self::MAX_CALLS {
            m.calls.drain(..m.calls.len() - Self::MAX_CALLS);
        }
        if m.prefills.len() > Self::MAX_PREFILLS {
            m.prefills.drain(..m.prefills.len() - Self::MAX_PREFILLS);
        }
    }

    /// The fitted cost of `model` (`None` before any call of it was timed).
    pub fn fit(&self, model: &str) -> Option<CostFit> {
        self.models.get(model).and_then(CostFit::new)
    }
}

/// A model's fitted costs (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CostFit {
    /// Seconds per token of context depth of a call of k positions: `slope_s + slope_per_k_s · k`
    /// (never below 0; see [`CostFit::slope`]).
    pub slope_s: f64,
    #[serde(default)]
    pub slope_per_k_s: f64,
    /// `k → a(k)` seconds, for the k that were measured.
    pub intercept_s: BTreeMap<usize, f64>,
    /// Mean context depth of the measured calls (where `b(k)` is read).
    pub mean_depth: f64,
    /// Prefill line `p0 + p1 · L` and the medians at measured lengths.
    pub prefill_p0: f64,
    pub prefill_p1: f64,
    pub prefill_exact: BTreeMap<usize, f64>,
    pub calls: usize,
}

impl CostFit {
    pub fn new(s: &ModelSamples) -> Option<Self> {
        if s.calls.is_empty() && s.prefills.is_empty() {
            return None;
        }
        let mut by_k: BTreeMap<usize, Vec<&Sample>> = BTreeMap::new();
        for c in &s.calls {
            by_k.entry(c.k).or_default().push(c);
        }
        let (slope_s, slope_per_k_s) = depth_slope_line(&by_k);
        let intercept_s = by_k
            .iter()
            .map(|(&k, v)| {
                let s = slope_at(slope_s, slope_per_k_s, k);
                (k, median(v.iter().map(|c| c.seconds - s * c.depth as f64).collect()))
            })
            .collect();
        let mean_depth = if s.calls.is_empty() { 0.0 } else { s.calls.iter().map(|c| c.depth as f64).sum::<f64>() / s.calls.len() as f64 };
        let mut by_len: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for p in &s.prefills {
            by_len.entry(p.k).or_default().push(p.seconds);
        }
        let prefill_exact: BTreeMap<usize, f64> = by_len.into_iter().map(|(l, v)| (l, median(v))).collect();
        let (p0, p1) = theil_sen(prefill_exact.iter().map(|(&l, &t)| (l as f64, t)).collect());
        Some(Self { slope_s, slope_per_k_s, intercept_s, mean_depth, prefill_p0: p0, prefill_p1: p1, prefill_exact, calls: s.calls.len() })
    }

    /// The depth slope of a call of `k` positions, seconds per context token.
    pub fn slope(&self, k: usize) -> f64 {
        slope_at(self.slope_s, self.slope_per_k_s, k)
    }

    /// `a(k)`: measured, interpolated or extrapolated. It may be below 0 (the depth line run back to
    /// depth 0, where no call was measured); [`CostFit::call`] clamps the whole call.
    pub fn intercept(&self, k: usize) -> f64 {
        if let Some(&a) = self.intercept_s.get(&k) {
            return a;
        }
        let below = self.intercept_s.range(..k).next_back();
        let above = self.intercept_s.range(k..).next();
        let lerp = |(k0, a0): (&usize, &f64), (k1, a1): (&usize, &f64)| {
            a0 + (a1 - a0) * (k as f64 - *k0 as f64) / (*k1 as f64 - *k0 as f64)
        };
        let a = match (below, above) {
            (Some(b), Some(a)) => lerp(b, a),
            (Some(b), None) => match self.intercept_s.range(..*b.0).next_back() {
                Some(b0) => lerp(b0, b),
                None => *b.1,
            },
            (None, Some(a)) => match self.intercept_s.range(a.0 + 1..).next() {
                Some(a1) => lerp(a, a1),
                None => *a.1,
            },
            (None, None) => 0.0,
        };
        a
    }

    /// Seconds of one call scoring `k` positions after `depth` tokens of context (never below 0:
    /// a call never costs less than nothing, e.g. synthetic models' microsecond calls).
    pub fn call(&self, k: usize, depth: f64) -> f64 {
        (self.intercept(k) + self.slope(k) * depth).max(0.0)
    }

    /// Seconds of a prefill of `len` tokens.
    pub fn prefill(&self, len: usize) -> f64 {
        if len == 0 {
            return 0.0;
        }
        (self.prefill_p0 + self.prefill_p1 * len as f64).max(0.0)
    }

    /// Seconds of a record's logical calls of this model: (prefill, decode).
    pub fn replay(&self, calls: &ModelCalls) -> (f64, f64) {
        // Per k: n calls at Σ depth sd cost n · a(k) + s(k) · sd (each call clamped at 0 only
        // through the total: depths are not kept one by one).
        let decode = calls.by_k.iter().map(|(&k, &[n, sd])| (n as f64 * self.intercept(k) + self.slope(k) * sd as f64).max(0.0)).sum();
        (self.prefill(calls.prefill_tokens), decode)
    }

    /// The block-cost curve: `b(k)` = cost of k positions ÷ cost of one, at the mean depth.
    pub fn block_cost(&self, k: usize) -> f64 {
        let one = self.call(1, self.mean_depth);
        if one > 0.0 { self.call(k, self.mean_depth) / one } else { f64::NAN }
    }
}

/// JSON has no NaN: serde_json writes it as `null`; read `null` back as NaN.
pub(crate) fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A list of f64 written by serde_json, where NaN became `null`.
pub(crate) fn nan_vec_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// A record's replayed latency: its logical calls at the cost table's prices, plus the decoding
/// loop's own measured overhead (rules, sampling, stop checks: real work whether shared or not).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Replay {
    /// Total: prefill + decode + overhead.
    pub seconds: f64,
    /// Both models' prefills.
    pub prefill_s: f64,
    pub drafter_s: f64,
    pub verifier_s: f64,
    pub overhead_s: f64,
    /// Σ over the verifier's calls of b(k): the verifier's cost in single-step units (the
    /// constant-c model counts each call as 1).
    #[serde(deserialize_with = "nan_if_null")]
    pub verifier_block_units: f64,
    /// Σ over the drafter's calls of a_d(k) / a_v(1): the drafter's cost in verifier-step units
    /// (the constant-c model charges c per drafter step).
    #[serde(deserialize_with = "nan_if_null")]
    pub drafter_block_units: f64,
}

/// Replay `calls` against both models' fits. `None` when a model that was called has no fit.
pub fn replay(calls: &CallStats, overhead_s: f64, drafter: Option<&CostFit>, verifier: Option<&CostFit>) -> Option<Replay> {
    let zero = |c: &ModelCalls| c.prefill_tokens == 0 && c.by_k.is_empty();
    let part = |c: &ModelCalls, f: Option<&CostFit>| -> Option<(f64, f64)> { if zero(c) { Some((0.0, 0.0)) } else { f.map(|f| f.replay(c)) } };
    let (dp, dd) = part(&calls.drafter, drafter)?;
    let (vp, vd) = part(&calls.verifier, verifier)?;
    let unit = verifier.map(|v| v.call(1, v.mean_depth)).filter(|u| *u > 0.0);
    let units = |c: &ModelCalls, f: Option<&CostFit>| match (f, unit) {
        (Some(f), Some(u)) => c.by_k.iter().map(|(&k, &[n, _])| n as f64 * f.call(k, f.mean_depth) / u).sum(),
        _ => f64::NAN,
    };
    Some(Replay {
        seconds: dp + vp + dd + vd + overhead_s,
        prefill_s: dp + vp,
        drafter_s: dd,
        verifier_s: vd,
        overhead_s,
        verifier_block_units: units(&calls.verifier, verifier),
        drafter_block_units: units(&calls.drafter, drafter),
    })
}

/// `s0 + s1 · k`, never below 0.
fn slope_at(s0: f64, s1: f64, k: usize) -> f64 {
    (s0 + s1 * k as f64).max(0.0)
}

/// Calls of one k needed before its depth slope is estimated.
const MIN_CALLS_FOR_SLOPE: usize = 6;

/// The robust depth slope of one k's calls: sort by depth, cut into up to 16 equal-count bins (4 or
/// more calls each, 3 at the fewest), and take the Theil–Sen slope through the bins' (median depth,
/// median seconds). `None` below [`MIN_CALLS_FOR_SLOPE`] calls or where every bin sits at one depth.
fn depth_slope(calls: &[&Sample]) -> Option<f64> {
    if calls.len() < MIN_CALLS_FOR_SLOPE {
        return None;
    }
    let mut v: Vec<(f64, f64)> = calls.iter().map(|c| (c.depth as f64, c.seconds)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bins = (v.len() / 4).clamp(2, 16);
    let n = v.len();
    let pts: Vec<(f64, f64)> = (0..bins)
        .map(|b| {
            let chunk = &v[b * n / bins..(b + 1) * n / bins];
            (median(chunk.iter().map(|p| p.0).collect()), median(chunk.iter().map(|p| p.1).collect()))
        })
        .collect();
    // The bins' depths rise with the bin: they are all one depth iff the first and last are.
    (pts[0].0 != pts[bins - 1].0).then(|| theil_sen(pts).1)
}

/// The line `s(k) = s0 + s1 · k` through the per-k depth slopes, least squares weighted by each
/// k's calls, with `s0, s1 ≥ 0` (a query more never makes the cache cheaper to read; a drafter's
/// rare blocks have noisy slopes that would otherwise tilt the line below 0): `(s0, s1)`. One k with
/// a slope gives a constant; none gives 0.
fn depth_slope_line(by_k: &BTreeMap<usize, Vec<&Sample>>) -> (f64, f64) {
    let pts: Vec<(f64, f64, f64)> =
        by_k.iter().filter_map(|(&k, v)| depth_slope(v).map(|s| (k as f64, s, v.len() as f64))).collect();
    if pts.is_empty() {
        return (0.0, 0.0);
    }
    let w: f64 = pts.iter().map(|p| p.2).sum();
    let mk = pts.iter().map(|p| p.2 * p.0).sum::<f64>() / w;
    let ms = pts.iter().map(|p| p.2 * p.1).sum::<f64>() / w;
    let sxx: f64 = pts.iter().map(|p| p.2 * (p.0 - mk).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| p.2 * (p.0 - mk) * (p.1 - ms)).sum();
    let s1 = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    // The non-negative least-squares solution: the free line if it is non-negative, else the best
    // line with one coefficient at 0.
    if s1 < 0.0 {
        (ms.max(0.0), 0.0)
    } else if ms - s1 * mk < 0.0 {
        let skk: f64 = pts.iter().map(|p| p.2 * p.0 * p.0).sum();
        (0.0, (pts.iter().map(|p| p.2 * p.0 * p.1).sum::<f64>() / skk).max(0.0))
    } else {
        (ms - s1 * mk, s1)
    }
}

/// The median (NaN for none; the mean of the middle two for an even length).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// The Theil–Sen line through `pts` (distinct x): slope the median of pairwise slopes, intercept
/// the median of `y − slope · x`. One point gives a line through the origin; none, zero.
fn theil_sen(pts: Vec<(f64, f64)>) -> (f64, f64) {
    match pts.len() {
        0 => (0.0, 0.0),
        1 => (0.0, if pts[0].0 > 0.0 { pts[0].1 / pts[0].0 } else { 0.0 }),
        _ => {
            // Beyond 256 lengths, every n/256-th by length (the pairs grow as n²; a fit is read for
            // every record).
            let pts: Vec<(f64, f64)> = if pts.len() > 256 {
                let step = pts.len() as f64 / 256.0;
                (0..256).map(|i| pts[(i as f64 * step) as usize]).collect()
            } else {
                pts
            };
            let mut slopes = Vec::with_capacity(pts.len() * (pts.len() - 1) / 2);
            for (i, a) in pts.iter().enumerate() {
                for b in &pts[i + 1..] {
                    if b.0 != a.0 {
                        slopes.push((b.1 - a.1) / (b.0 - a.0));
                    }
                }
            }
            let slope = median(slopes);
            (median(pts.iter().map(|p| p.1 - slope * p.0).collect()), slope)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: usize, depth: usize, seconds: f64) -> Sample {
        Sample { k, depth, seconds }
    }

    #[test]
    fn fit_recovers_an_affine_cost_and_interpolates_k() {
        // t = 0.01 · k + 0.1 + 1e-4 · depth, for k ∈ {1, 3, 5} (k = 2, 4, 6 unseen).
        let cost = |k: usize, d: usize| 0.1 + 0.01 * k as f64 + 1e-4 * d as f64;
        let calls = [1usize, 3, 5].iter().flat_map(|&k| (0..6).map(move |i| s(k, 20 + 7 * i, cost(k, 20 + 7 * i)))).collect();
        let prefills = vec![s(10, 0, 0.5), s(20, 0, 0.9), s(20, 0, 1.1)];
        let f = CostFit::new(&ModelSamples { calls, prefills }).unwrap();
        assert!((f.slope_s - 1e-4).abs() < 1e-12, "{}", f.slope_s);
        for k in 1..=7 {
            assert!((f.call(k, 50.0) - cost(k, 50)).abs() < 1e-9, "k={k}: {} vs {}", f.call(k, 50.0), cost(k, 50));
        }
        assert_eq!(f.prefill(20), 1.0);
        assert!((f.prefill(15) - 0.75).abs() < 1e-9, "{}", f.prefill(15));
        assert!(f.block_cost(5) > f.block_cost(1));
        let mut mc = ModelCalls { prefill_tokens: 10, ..Default::default() };
        mc.by_k.insert(3, [2, 100]);
        let (p, d) = f.replay(&mc);
        assert_eq!(p, 0.5);
        assert!((d - (cost(3, 50) * 2.0)).abs() < 1e-9);
    }

    /// GSM8K's shape: deep, narrow depths (714–1052), many steps and blocks of 6 whose depth slope is
    /// ~3× a step's, and a tenth of the calls slowed 3× by a neighbour, more of them deep. A single
    /// pooled slope put every a(k) below 0 and b(k) at 1 on such data; the per-k line must recover
    /// each k's cost and b(6).
    #[test]
    fn per_k_depth_slopes_survive_narrow_depths_and_slow_neighbours() {
        let cost = |k: usize, d: usize| 0.040 + 0.004 * (k as f64 - 1.0) + (20e-6 + 20e-6 * k as f64) * d as f64;
        let mut calls = Vec::new();
        for i in 0..6000usize {
            let d = 714 + (i * 7919) % 339;
            for k in [1usize, 6] {
                let slowed = i % 10 == 0 && (d > 900 || i % 20 == 0);
                calls.push(s(k, d, cost(k, d) * if slowed { 3.0 } else { 1.0 }));
            }
        }
        for k in [2usize, 3, 4, 5, 7] {
            calls.extend((0..40).map(|i| s(k, 714 + 8 * i, cost(k, 714 + 8 * i))));
        }
        let f = CostFit::new(&ModelSamples { calls, prefills: vec![] }).unwrap();
        assert!((f.slope(1) - 40e-6).abs() < 2e-6 && (f.slope(6) - 140e-6).abs() < 6e-6, "s(1) {} s(6) {}", f.slope(1), f.slope(6));
        for k in 1..=7 {
            let rel = (f.call(k, 880.0) - cost(k, 880)) / cost(k, 880);
            assert!(rel.abs() < 0.03, "k={k}: {} vs {}", f.call(k, 880.0), cost(k, 880));
        }
        let truth = cost(6, f.mean_depth as usize) / cost(1, f.mean_depth as usize);
        assert!((f.block_cost(6) - truth).abs() < 0.05, "b(6) {} vs {truth}", f.block_cost(6));
    }

    #[test]
    fn median_resists_one_slow_call() {
        let mut calls: Vec<Sample> = (0..9).map(|i| s(1, 10 + i, 0.1)).collect();
        calls.push(s(1, 12, 5.0));
        let f = CostFit::new(&ModelSamples { calls, prefills: vec![] }).unwrap();
        assert!((f.call(1, 12.0) - 0.1).abs() < 0.05, "{}", f.call(1, 12.0));
    }
}
