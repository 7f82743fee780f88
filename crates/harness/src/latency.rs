//! Replayed latency: what a configuration's calls would have cost had it run alone.
//!
//! Sharing model calls breaks per-configuration wall-clock timing, so the harness times every real
//! call ([`crate::share::Sample`]) and keeps a per-model, per-machine [`CostTable`]; each record is
//! then charged the calls it *logically* made ([`CallStats`]) at the table's costs.
//!
//! The cost model of one call scoring k positions at context depth d is `a(k) + s · d`:
//! - `s` (seconds per context token: attention over the cache) is one slope per model, the pooled
//!   least-squares slope within each k;
//! - `a(k)` is, per k, the median of `t − s · d` over the calls that scored k positions (the median
//!   shrugs off calls slowed by a neighbour); a k never measured is interpolated linearly between
//!   the nearest measured ones (extrapolated from the last two beyond them).
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
    /// Seconds per token of context depth.
    pub slope_s: f64,
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
        // Pooled within-k slope.
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for v in by_k.values() {
            let n = v.len() as f64;
            let md = v.iter().map(|c| c.depth as f64).sum::<f64>() / n;
            let mt = v.iter().map(|c| c.seconds).sum::<f64>() / n;
            for c in v {
                sxy += (c.depth as f64 - md) * (c.seconds - mt);
                sxx += (c.depth as f64 - md).powi(2);
            }
        }
        let slope_s = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
        let intercept_s = by_k
            .iter()
            .map(|(&k, v)| (k, median(v.iter().map(|c| c.seconds - slope_s * c.depth as f64).collect())))
            .collect();
        let mean_depth = if s.calls.is_empty() { 0.0 } else { s.calls.iter().map(|c| c.depth as f64).sum::<f64>() / s.calls.len() as f64 };
        let mut by_len: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for p in &s.prefills {
            by_len.entry(p.k).or_default().push(p.seconds);
        }
        let prefill_exact: BTreeMap<usize, f64> = by_len.into_iter().map(|(l, v)| (l, median(v))).collect();
        let (p0, p1) = theil_sen(prefill_exact.iter().map(|(&l, &t)| (l as f64, t)).collect());
        Some(Self { slope_s, intercept_s, mean_depth, prefill_p0: p0, prefill_p1: p1, prefill_exact, calls: s.calls.len() })
    }

    /// `a(k)`: measured, interpolated or extrapolated (never below 0).
    pub fn intercept(&self, k: usize) -> f64 {
        if let Some(&a) = self.intercept_s.get(&k) {
            // A median of `t − s · d` can fall below 0 when calls take microseconds (synthetic
            // models) and the slope absorbs them; a call never costs less than nothing.
            return a.max(0.0);
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
        a.max(0.0)
    }

    /// Seconds of one call scoring `k` positions after `depth` tokens of context.
    pub fn call(&self, k: usize, depth: f64) -> f64 {
        self.intercept(k) + self.slope_s * depth
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
        let decode = calls.by_k.iter().map(|(&k, &[n, sd])| n as f64 * self.intercept(k) + self.slope_s * sd as f64).sum();
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

    #[test]
    fn median_resists_one_slow_call() {
        let mut calls: Vec<Sample> = (0..9).map(|i| s(1, 10 + i, 0.1)).collect();
        calls.push(s(1, 12, 5.0));
        let f = CostFit::new(&ModelSamples { calls, prefills: vec![] }).unwrap();
        assert!((f.call(1, 12.0) - 0.1).abs() < 0.05, "{}", f.call(1, 12.0));
    }
}
