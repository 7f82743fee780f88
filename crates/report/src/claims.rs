//! The paper's claims, put to a test on a sweep's records: one verdict per claim and setting,
//! decided by a stated rule on paired bootstrap intervals — never by hand.
//!
//! A *group* is one setting ([`Setting`]: task, T, top-p, seed, length, pair) and one γ; the
//! sequential methods (no γ) belong to every γ of their setting. Every comparison is paired: the
//! configurations decode the same examples with common random numbers, so the examples common to
//! every configuration involved are resampled together ([`BOOTSTRAP_RESAMPLES`] percentile-bootstrap
//! resamples, seeded from the configurations' hashes, so a verdict is a pure function of the records).
//!
//! **Curves.** A method's curve (its α points at one γ) is read as its upper envelope: the points not
//! dominated by a cheaper, better one, joined by straight lines (a mixture of two configurations over
//! the examples attains the segment), flat beyond the last. Two curves A and B are compared by
//! Δ(A, B) = the mean over the common cost range [max of the two cheapest, min of the two dearest
//! points] of Q_A(L) − Q_B(L) — the area between the curves divided by the range's width, in quality
//! units; the difference at that cost when the range is one cost — and, for dominance, by
//! Q_A(L) − Q_B(L) at five evenly spaced costs of that range. Every
//! resample recomputes each point's quality and relative latency, the envelopes and the range.
//!
//! **Cost.** Each claim is evaluated on two latencies relative to the verifier: modelled
//! (c · drafter steps + verifier calls, the paper's model) and wall (the records' replayed seconds
//! for shared runs, the clock otherwise).
//!
//! **Rules** (level 5 % two-sided unless said):
//! - (a) *Token > OPT > Diff > Chow* (spec_cascade_token_v3, _opt, _diff, _chow): each adjacent pair
//!   is confirmed when the 95 % interval of Δ lies above 0 and contradicted when it lies below 0.
//!   The chain is confirmed when all three pairs are, contradicted when any pair is.
//! - (b) *Speculative cascades vs lossy speculative decoding* (Token v3 vs spec_decode_lossy). At
//!   T > 0, "dominate": contradicted when the interval of Δ lies below 0 or the Bonferroni-adjusted
//!   (99 %, five costs) interval at any of the five costs lies below 0; else confirmed when the
//!   interval of Δ lies above 0. At T = 0, "close": confirmed when the interval of Δ lies inside
//!   ±[`CLOSE_MARGIN`] × |verifier quality − drafter quality|, contradicted when it lies wholly outside.
//! - (c) *Cascades can exceed the verifier's quality* (every configuration of spec_cascade_*, bild,
//!   token_cascade_chow and seq_cascade_chow; not the oracle): confirmed when some configuration is
//!   significantly better than the verifier after a Bonferroni correction over the m configurations
//!   (exact McNemar p · m < 5 % for 0/1 metrics, else the (1 − 5 %/m) paired-bootstrap interval above
//!   0); contradicted when no configuration's 95 % paired upper bound exceeds 0.
//! - (d) *Speed-up at verifier quality* (Table 2): Token v3's speed-up at verifier quality (the
//!   crossing rule of [`crate::table2`]) and its cheapest configuration not significantly worse than
//!   the verifier, against lossless speculative decoding. Confirmed when the crossing speed-up's 95 %
//!   interval lies above 1 and the paired cost ratio (that configuration ÷ spec_decode, same examples)
//!   lies below 1; contradicted when the crossing interval lies below 1 or the ratio's above 1.
//!
//! Anything else is *inconclusive at this n*; a claim whose methods have no records (or no examples or
//! costs in common) is *not evaluable*.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use speccascade_decoding::Method;

use crate::ReportError;
use crate::coverage::Coverage;
use crate::stats::{BOOTSTRAP_RESAMPLES, LEVEL, mcnemar_exact, quantile, resample_indices};
use crate::table2::Table2Row;
use crate::tables::{Row, Samples, Setting, num};

/// (b) at T = 0: "close" means |Δ| within this fraction of the verifier–drafter quality gap.
pub const CLOSE_MARGIN: f64 = 0.2;
/// Costs at which (b) tests dominance point by point.
pub const DOMINANCE_POINTS: usize = 5;

/// The outcome of one claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimVerdict {
    Confirmed,
    Contradicted,
    /// Neither rule fired: the intervals are too wide at this n.
    Inconclusive,
    /// The methods the claim needs have no records here, or no examples or costs in common.
    NotEvaluable,
}

impl ClaimVerdict {
    pub fn text(self) -> &'static str {
        match self {
            ClaimVerdict::Confirmed => "confirmed",
            ClaimVerdict::Contradicted => "contradicted",
            ClaimVerdict::Inconclusive => "inconclusive at this n",
            ClaimVerdict::NotEvaluable => "not evaluable",
        }
    }
    /// Confirmed above 0, contradicted below, inconclusive across (or not finite).
    fn of_interval(lo: f64, hi: f64) -> Self {
        if lo > 0.0 {
            ClaimVerdict::Confirmed
        } else if hi < 0.0 {
            ClaimVerdict::Contradicted
        } else {
            ClaimVerdict::Inconclusive
        }
    }
}

/// The relative latency a claim is read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cost {
    /// c · drafter steps + verifier calls, relative to the verifier.
    Modelled,
    /// Wall clock (replayed seconds for records that shared model calls), relative to the verifier.
    Wall,
}

impl Cost {
    pub const ALL: [Cost; 2] = [Cost::Modelled, Cost::Wall];
    /// The column of [`Samples::rel_latency`].
    fn column(self) -> usize {
        match self {
            Cost::Modelled => 2,
            Cost::Wall => 0,
        }
    }
    pub fn text(self) -> &'static str {
        match self {
            Cost::Modelled => "modelled latency (c · drafter steps + verifier calls)",
            Cost::Wall => "wall-clock latency (replayed for shared records)",
        }
    }
}

/// Q_A − Q_B at one cost.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PointDiff {
    pub cost: f64,
    pub diff: f64,
    /// Bonferroni-adjusted interval over the [`DOMINANCE_POINTS`] costs.
    pub lo: f64,
    pub hi: f64,
}

/// Two curves compared (see the module doc).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CurveComparison {
    pub a: Method,
    pub b: Method,
    /// Examples common to every point of both curves (and resampled).
    pub examples: usize,
    pub points_a: usize,
    pub points_b: usize,
    /// The common cost range of the full sample.
    pub cost_lo: f64,
    pub cost_hi: f64,
    /// Mean over the common cost range of Q_A − Q_B, and its 95 % paired-bootstrap interval.
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
    pub pointwise: Vec<PointDiff>,
    pub verdict: ClaimVerdict,
}

/// One configuration against the verifier (claim c).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VsVerifier {
    pub method: Method,
    pub alpha: Option<f64>,
    pub gamma: Option<usize>,
    pub examples: usize,
    pub diff: f64,
    /// 95 % paired interval, and the Bonferroni-adjusted one (level 1 − 5 %/m).
    pub lo: f64,
    pub hi: f64,
    pub bonferroni_lo: f64,
    pub bonferroni_hi: f64,
    /// Exact McNemar p (0/1 metrics) and the discordant pairs (only this right, only the verifier).
    pub mcnemar_p: Option<f64>,
    pub discordant: Option<(u64, u64)>,
    pub significantly_better: bool,
    pub rel_latency: f64,
}

/// Claim c's evidence.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExceedEvidence {
    /// Configurations tested (the Bonferroni m).
    pub tested: usize,
    pub significantly_better: usize,
    /// The configuration with the largest Δ (ties: the cheapest).
    pub best: Option<VsVerifier>,
    /// The largest 95 % upper bound of Δ over the configurations.
    pub max_upper: f64,
}

/// Claim d's evidence.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SpeedupEvidence {
    /// Token v3's speed-up at verifier quality by the crossing rule, with its 95 % interval.
    pub crossing: Option<f64>,
    pub crossing_lo: f64,
    pub crossing_hi: f64,
    /// Token v3's cheapest configuration not significantly worse than the verifier: α and the
    /// speed-up (1 / its relative latency) on this cost, on the replayed latency and on b(k).
    pub alpha: Option<f64>,
    pub speedup: Option<f64>,
    pub speedup_replayed: Option<f64>,
    pub speedup_modelled_bk: Option<f64>,
    /// Lossless speculative decoding's speed-up.
    pub spec_decode: Option<f64>,
    /// The cheapest configuration of any method (not the oracle) not significantly worse than the
    /// verifier: method, α and speed-up.
    pub fastest: Option<(Method, Option<f64>, f64)>,
    /// That configuration's cost ÷ spec_decode's on the same examples, and its 95 % interval.
    pub ratio: f64,
    pub ratio_lo: f64,
    pub ratio_hi: f64,
    pub examples: usize,
}

/// One claim in one group, on one cost.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Claim {
    /// `a`, `b`, `c`, `d`.
    pub id: &'static str,
    pub statement: String,
    pub task: String,
    pub temperature: f64,
    pub top_p: f64,
    pub gamma: Option<usize>,
    pub drafter: String,
    pub verifier: String,
    pub cost: Cost,
    pub verdict: ClaimVerdict,
    /// Why: which rule fired (or did not).
    pub reason: String,
    /// The evidence in one line of markdown.
    pub evidence: String,
    pub comparisons: Vec<CurveComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exceed: Option<ExceedEvidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<SpeedupEvidence>,
}

const RULE_ORDER: [(Method, Method); 3] = [
    (Method::SpecCascadeTokenV3, Method::SpecCascadeOpt),
    (Method::SpecCascadeOpt, Method::SpecCascadeDiff),
    (Method::SpecCascadeDiff, Method::SpecCascadeChow),
];

fn is_cascade(m: Method) -> bool {
    matches!(
        m,
        Method::SpecCascadeChow
            | Method::SpecCascadeDiff
            | Method::SpecCascadeOpt
            | Method::SpecCascadeTokenV1
            | Method::SpecCascadeTokenV2
            | Method::SpecCascadeTokenV3
            | Method::Bild
            | Method::TokenCascadeChow
            | Method::SeqCascadeChow
    )
}

/// One setting and γ: the rows that belong to it, by method (each method at its default bonus
/// mode when several were run), α ascending.
struct Group<'r> {
    setting: Setting,
    gamma: Option<usize>,
    by_method: BTreeMap<Method, Vec<&'r Row>>,
}

impl<'r> Group<'r> {
    fn curve(&self, m: Method) -> &[&'r Row] {
        self.by_method.get(&m).map(Vec::as_slice).unwrap_or(&[])
    }
    fn one(&self, m: Method) -> Option<&'r Row> {
        self.curve(m).first().copied()
    }
}

fn groups(rows: &[Row]) -> Vec<Group<'_>> {
    let mut keys: Vec<Setting> = Vec::new();
    for r in rows {
        let s = r.setting();
        if !keys.contains(&s) {
            keys.push(s);
        }
    }
    let mut out = Vec::new();
    for setting in keys {
        let here: Vec<&Row> = rows.iter().filter(|r| r.setting() == setting).collect();
        let mut gammas: Vec<usize> = here.iter().filter_map(|r| r.key.gamma).collect();
        gammas.sort_unstable();
        gammas.dedup();
        let gammas: Vec<Option<usize>> = if gammas.is_empty() { vec![None] } else { gammas.into_iter().map(Some).collect() };
        for g in gammas {
            let mut by_method: BTreeMap<Method, Vec<&Row>> = BTreeMap::new();
            for r in here.iter().copied().filter(|r| r.key.gamma.is_none() || r.key.gamma == g) {
                by_method.entry(r.key.method).or_default().push(r);
            }
            for (m, v) in by_method.iter_mut() {
                let default = m.is_speculative().then(|| m.default_bonus());
                let keep = if v.iter().any(|r| r.key.bonus == default) { default } else { v[0].key.bonus };
                v.retain(|r| r.key.bonus == keep);
                v.sort_by(|a, b| a.key.alpha.unwrap_or(0.0).total_cmp(&b.key.alpha.unwrap_or(0.0)));
            }
            out.push(Group { setting: setting.clone(), gamma: g, by_method });
        }
    }
    out
}

/// The upper envelope of (cost, quality) points: breakpoints with strictly increasing cost and
/// quality (non-finite points dropped).
fn envelope(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = points.iter().copied().filter(|(l, q)| l.is_finite() && q.is_finite()).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (l, q) in p {
        if out.last().is_none_or(|&(_, best)| q > best) {
            out.push((l, q));
        }
    }
    out
}

/// Q(L) on an envelope: linear between breakpoints, flat beyond the last, `None` below the first.
fn at(env: &[(f64, f64)], l: f64) -> Option<f64> {
    let first = env.first()?;
    if l < first.0 {
        return None;
    }
    for w in env.windows(2) {
        if l <= w[1].0 {
            let t = (l - w[0].0) / (w[1].0 - w[0].0);
            return Some(w[0].1 + t * (w[1].1 - w[0].1));
        }
    }
    env.last().map(|p| p.1)
}

/// The common cost range of two point sets: [max of the cheapest, min of the dearest]. It may be a
/// single cost: a curve whose points all cost the same (lossy speculative decoding at T = 0, where
/// every α < 1 decodes alike) is compared with the other curve at that cost.
fn common_range(a: &[(f64, f64)], b: &[(f64, f64)]) -> Option<(f64, f64)> {
    let lo = |p: &[(f64, f64)]| p.iter().map(|x| x.0).filter(|l| l.is_finite()).fold(f64::INFINITY, f64::min);
    let hi = |p: &[(f64, f64)]| p.iter().map(|x| x.0).filter(|l| l.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let (l, h) = (lo(a).max(lo(b)), hi(a).min(hi(b)));
    (l.is_finite() && h.is_finite() && h >= l).then_some((l, h))
}

/// Mean over `[lo, hi]` of Q_A − Q_B (exact: both are linear between the merged breakpoints);
/// the difference at `lo` when the range is one cost.
fn mean_diff(ea: &[(f64, f64)], eb: &[(f64, f64)], lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return match (at(ea, lo), at(eb, lo)) {
            (Some(a), Some(b)) => a - b,
            _ => f64::NAN,
        };
    }
    let mut xs: Vec<f64> = vec![lo, hi];
    xs.extend(ea.iter().chain(eb).map(|p| p.0).filter(|&l| l > lo && l < hi));
    xs.sort_by(f64::total_cmp);
    let d = |l: f64| match (at(ea, l), at(eb, l)) {
        (Some(a), Some(b)) => a - b,
        _ => f64::NAN,
    };
    let area: f64 = xs.windows(2).map(|w| 0.5 * (d(w[0]) + d(w[1])) * (w[1] - w[0])).sum();
    area / (hi - lo)
}

/// The α `level` interval (two-sided) of `values`, NaNs dropped.
fn interval(mut values: Vec<f64>, level: f64) -> (f64, f64) {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    (quantile(&values, level / 2.0), quantile(&values, 1.0 - level / 2.0))
}

/// Examples common to every row, and each row's positions of them.
fn common_positions(rows: &[&Row]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut common: Vec<usize> = rows.first().map(|r| r.samples.examples.clone()).unwrap_or_default();
    for r in rows {
        common.retain(|e| r.samples.examples.binary_search(e).is_ok());
    }
    let pos = rows
        .iter()
        .map(|r| common.iter().map(|e| r.samples.examples.binary_search(e).expect("common example")).collect())
        .collect();
    (common, pos)
}

/// The (cost, quality) points of `rows` on the resample `draw` (indices into the common examples).
fn points(rows: &[&Row], pos: &[Vec<usize>], draw: &[usize], col: usize) -> Vec<(f64, f64)> {
    rows.iter()
        .zip(pos)
        .map(|(r, p)| {
            let idx: Vec<usize> = draw.iter().map(|&i| p[i]).collect();
            (r.samples.rel_latency(&idx, col), r.samples.quality(&idx))
        })
        .collect()
}

fn seed_of(rows: &[&Row]) -> u64 {
    rows.iter().fold(0x5eed_c1a1_u64, |h, r| {
        let x = u64::from_str_radix(&r.key.config[..r.key.config.len().min(15)], 16).unwrap_or(0);
        (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    })
}

/// Compare curve `a` with curve `b` on `cost` (see the module doc); `None` without a common range.
pub fn compare_curves(a: &[&Row], b: &[&Row], cost: Cost) -> Option<CurveComparison> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let all: Vec<&Row> = a.iter().chain(b).copied().collect();
    let (common, pos) = common_positions(&all);
    let n = common.len();
    if n == 0 {
        return None;
    }
    let col = cost.column();
    let (pa, pb) = pos.split_at(a.len());
    let full: Vec<usize> = (0..n).collect();
    let stat = |draw: &[usize], fixed: &[f64]| -> (f64, Vec<f64>) {
        let (xa, xb) = (points(a, pa, draw, col), points(b, pb, draw, col));
        let (ea, eb) = (envelope(&xa), envelope(&xb));
        let mean = common_range(&xa, &xb).map_or(f64::NAN, |(lo, hi)| mean_diff(&ea, &eb, lo, hi));
        let pts = fixed
            .iter()
            .map(|&l| match (at(&ea, l), at(&eb, l)) {
                (Some(x), Some(y)) => x - y,
                _ => f64::NAN,
            })
            .collect();
        (mean, pts)
    };
    let (xa, xb) = (points(a, pa, &full, col), points(b, pb, &full, col));
    let (lo, hi) = common_range(&xa, &xb)?;
    let fixed: Vec<f64> = (0..DOMINANCE_POINTS).map(|j| lo + (j as f64 + 0.5) / DOMINANCE_POINTS as f64 * (hi - lo)).collect();
    let (diff, point_diffs) = stat(&full, &fixed);
    let draws = resample_indices(n, BOOTSTRAP_RESAMPLES, seed_of(&all));
    let boot: Vec<(f64, Vec<f64>)> = draws.iter().map(|d| stat(d, &fixed)).collect();
    let (dlo, dhi) = if n > 1 { interval(boot.iter().map(|b| b.0).collect(), LEVEL) } else { (diff, diff) };
    let pointwise = fixed
        .iter()
        .enumerate()
        .map(|(j, &l)| {
            let (plo, phi) = if n > 1 {
                interval(boot.iter().map(|b| b.1[j]).collect(), LEVEL / DOMINANCE_POINTS as f64)
            } else {
                (point_diffs[j], point_diffs[j])
            };
            PointDiff { cost: l, diff: point_diffs[j], lo: plo, hi: phi }
        })
        .collect();
    Some(CurveComparison {
        a: a[0].key.method,
        b: b[0].key.method,
        examples: n,
        points_a: a.len(),
        points_b: b.len(),
        cost_lo: lo,
        cost_hi: hi,
        diff,
        lo: dlo,
        hi: dhi,
        pointwise,
        verdict: ClaimVerdict::of_interval(dlo, dhi),
    })
}

fn sign(x: f64, d: usize) -> String {
    if x.is_finite() { format!("{x:+.d$}") } else { "—".into() }
}

fn cmp_text(c: &CurveComparison) -> String {
    format!(
        "{} − {}: Δ = {} [{}, {}] (n = {}, {}+{} points, cost {}–{})",
        c.a.label(),
        c.b.label(),
        sign(c.diff, 3),
        sign(c.lo, 3),
        sign(c.hi, 3),
        c.examples,
        c.points_a,
        c.points_b,
        num(c.cost_lo, 2),
        num(c.cost_hi, 2)
    )
}

fn claim(g: &Group, id: &'static str, statement: &str, cost: Cost) -> Claim {
    Claim {
        id,
        statement: statement.to_string(),
        task: g.setting.task.clone(),
        temperature: g.setting.temperature,
        top_p: g.setting.top_p,
        gamma: g.gamma,
        drafter: g.setting.drafter.clone(),
        verifier: g.setting.verifier.clone(),
        cost,
        verdict: ClaimVerdict::NotEvaluable,
        reason: String::new(),
        evidence: String::new(),
        comparisons: Vec::new(),
        exceed: None,
        speedup: None,
    }
}

fn missing(g: &Group, methods: &[Method]) -> Vec<&'static str> {
    methods.iter().filter(|m| g.curve(**m).is_empty()).map(|m| m.name()).collect()
}

/// (a) Token > OPT > Diff > Chow.
fn rule_order(g: &Group, cost: Cost) -> Claim {
    let mut c = claim(g, "a", "the token-specific rule beats OPT, which beats Diff, which beats Chow (speculative cascades)", cost);
    let gone = missing(g, &[Method::SpecCascadeTokenV3, Method::SpecCascadeOpt, Method::SpecCascadeDiff, Method::SpecCascadeChow]);
    if !gone.is_empty() {
        c.reason = format!("no records of {}", gone.join(", "));
        return c;
    }
    let mut texts = Vec::new();
    for (x, y) in RULE_ORDER {
        match compare_curves(g.curve(x), g.curve(y), cost) {
            Some(k) => {
                texts.push(format!("{} → {}", cmp_text(&k), k.verdict.text()));
                c.comparisons.push(k);
            }
            None => texts.push(format!("{} vs {}: no common examples or cost range", x.label(), y.label())),
        }
    }
    let v: Vec<ClaimVerdict> = c.comparisons.iter().map(|k| k.verdict).collect();
    c.verdict = if v.contains(&ClaimVerdict::Contradicted) {
        ClaimVerdict::Contradicted
    } else if v.len() == RULE_ORDER.len() && v.iter().all(|x| *x == ClaimVerdict::Confirmed) {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Inconclusive
    };
    c.reason = match c.verdict {
        ClaimVerdict::Confirmed => "every adjacent pair's 95 % interval of Δ lies above 0".into(),
        ClaimVerdict::Contradicted => "some adjacent pair's 95 % interval of Δ lies below 0".into(),
        _ => "not every pair's interval lies above 0, none lies below".into(),
    };
    c.evidence = texts.join("; ");
    c
}

/// (b) Speculative cascades vs lossy speculative decoding.
fn vs_lossy(g: &Group, cost: Cost) -> Claim {
    let t0 = g.setting.temperature == 0.0;
    let statement = if t0 {
        "at T = 0, speculative cascades (Token v3) and lossy speculative decoding are close"
    } else {
        "at T > 0, speculative cascades (Token v3) dominate lossy speculative decoding (the paper: at T = 1)"
    };
    let mut c = claim(g, "b", statement, cost);
    let gone = missing(g, &[Method::SpecCascadeTokenV3, Method::SpecDecodeLossy]);
    if !gone.is_empty() {
        c.reason = format!("no records of {}", gone.join(", "));
        return c;
    }
    let Some(k) = compare_curves(g.curve(Method::SpecCascadeTokenV3), g.curve(Method::SpecDecodeLossy), cost) else {
        c.reason = "no common examples or cost range".into();
        return c;
    };
    let mut ev = cmp_text(&k);
    if t0 {
        let gap = match (g.one(Method::Verifier), g.one(Method::Drafter)) {
            (Some(v), Some(d)) => (v.quality - d.quality).abs(),
            _ => f64::NAN,
        };
        let m = CLOSE_MARGIN * gap;
        let _ = write!(ev, "; margin ±{} ({CLOSE_MARGIN} × |verifier − drafter| = {CLOSE_MARGIN} × {})", num(m, 3), num(gap, 3));
        (c.verdict, c.reason) = if !(m.is_finite() && m > 0.0 && k.lo.is_finite()) {
            (ClaimVerdict::Inconclusive, "no margin: the drafter's and verifier's qualities are missing or equal".into())
        } else if k.lo >= -m && k.hi <= m {
            (ClaimVerdict::Confirmed, "the 95 % interval of Δ lies inside the margin".into())
        } else if k.lo > m || k.hi < -m {
            (ClaimVerdict::Contradicted, "the 95 % interval of Δ lies outside the margin".into())
        } else {
            (ClaimVerdict::Inconclusive, "the 95 % interval of Δ straddles the margin".into())
        };
    } else {
        let below: Vec<&PointDiff> = k.pointwise.iter().filter(|p| p.hi < 0.0).collect();
        let worst = k.pointwise.iter().filter(|p| p.diff.is_finite()).min_by(|a, b| a.diff.total_cmp(&b.diff));
        if let Some(w) = worst {
            let _ = write!(ev, "; least Δ of {DOMINANCE_POINTS} costs: {} [{}, {}] at {} (99 %)", sign(w.diff, 3), sign(w.lo, 3), sign(w.hi, 3), num(w.cost, 2));
        }
        (c.verdict, c.reason) = if k.hi < 0.0 {
            (ClaimVerdict::Contradicted, "the 95 % interval of Δ lies below 0".into())
        } else if !below.is_empty() {
            (ClaimVerdict::Contradicted, format!("lossy SD is significantly better at {} of {DOMINANCE_POINTS} costs", below.len()))
        } else if k.lo > 0.0 {
            (ClaimVerdict::Confirmed, "the 95 % interval of Δ lies above 0 and no cost favours lossy SD significantly".into())
        } else {
            (ClaimVerdict::Inconclusive, "the 95 % interval of Δ covers 0".into())
        };
    }
    c.evidence = ev;
    c.comparisons.push(k);
    c
}

/// One configuration's paired comparison with the verifier, Bonferroni-adjusted over `m`.
fn against_verifier(r: &Row, v: &Row, m: usize, col: usize) -> Option<VsVerifier> {
    let p = r.vs_verifier.as_ref()?;
    let (ia, ib) = r.samples.common(&v.samples);
    let n = ia.len();
    let level = LEVEL / m.max(1) as f64;
    let (blo, bhi) = if n > 1 {
        let draws = resample_indices(n, BOOTSTRAP_RESAMPLES, seed_of(&[r, v]) ^ 0xc0ffee);
        let d = |s: &Samples, pos: &[usize], draw: &[usize]| s.quality(&draw.iter().map(|&i| pos[i]).collect::<Vec<_>>());
        interval(draws.iter().map(|draw| d(&r.samples, &ia, draw) - d(&v.samples, &ib, draw)).collect(), level)
    } else {
        (p.diff, p.diff)
    };
    let better = match p.discordant {
        Some((b, c)) => b > c && mcnemar_exact(b, c) * (m as f64) < LEVEL,
        None => blo > 0.0,
    };
    let all: Vec<usize> = (0..r.samples.examples.len()).collect();
    Some(VsVerifier {
        method: r.key.method,
        alpha: r.key.alpha,
        gamma: r.key.gamma,
        examples: p.examples,
        diff: p.diff,
        lo: p.diff_lo,
        hi: p.diff_hi,
        bonferroni_lo: blo,
        bonferroni_hi: bhi,
        mcnemar_p: p.mcnemar_p,
        discordant: p.discordant,
        significantly_better: better,
        rel_latency: r.samples.rel_latency(&all, col),
    })
}

fn config_label(m: Method, alpha: Option<f64>, gamma: Option<usize>) -> String {
    let mut s = m.label().to_string();
    if let Some(a) = alpha {
        let _ = write!(s, " α = {a}");
    }
    if let Some(g) = gamma {
        let _ = write!(s, " γ = {g}");
    }
    s
}

/// (c) Cascades can exceed the verifier's quality.
fn exceeds_verifier(g: &Group, cost: Cost) -> Claim {
    let mut c = claim(g, "c", "cascades can exceed the verifier's quality", cost);
    let Some(v) = g.one(Method::Verifier) else {
        c.reason = "no records of verifier".into();
        return c;
    };
    let cands: Vec<&Row> = g.by_method.iter().filter(|(m, _)| is_cascade(**m)).flat_map(|(_, rs)| rs.iter().copied()).collect();
    if cands.is_empty() {
        c.reason = "no records of any cascade".into();
        return c;
    }
    let m = cands.len();
    let tested: Vec<VsVerifier> = cands.iter().filter_map(|r| against_verifier(r, v, m, cost.column())).collect();
    let better = tested.iter().filter(|t| t.significantly_better).count();
    let max_upper = tested.iter().map(|t| t.hi).filter(|h| h.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let best = tested
        .iter()
        .filter(|t| t.diff.is_finite())
        .max_by(|a, b| a.diff.total_cmp(&b.diff).then(b.rel_latency.total_cmp(&a.rel_latency)))
        .cloned();
    (c.verdict, c.reason) = if better > 0 {
        (ClaimVerdict::Confirmed, format!("{better} configuration(s) significantly better after Bonferroni over m = {m}"))
    } else if tested.is_empty() {
        (ClaimVerdict::NotEvaluable, "no configuration shares examples with the verifier".into())
    } else if max_upper <= 0.0 {
        (ClaimVerdict::Contradicted, format!("no configuration's 95 % upper bound of Δ exceeds 0 (m = {m})"))
    } else {
        (ClaimVerdict::Inconclusive, format!("none significantly better after Bonferroni over m = {m}; some upper bounds exceed 0"))
    };
    if let Some(b) = &best {
        let mut e = format!(
            "best: {}: Δ = {} [{}, {}], Bonferroni [{}, {}]",
            config_label(b.method, b.alpha, b.gamma),
            sign(b.diff, 3),
            sign(b.lo, 3),
            sign(b.hi, 3),
            sign(b.bonferroni_lo, 3),
            sign(b.bonferroni_hi, 3)
        );
        if let (Some(p), Some((x, y))) = (b.mcnemar_p, b.discordant) {
            let _ = write!(e, ", McNemar p = {} ({x}/{y}), p · m = {}", num(p, 3), num((p * m as f64).min(1.0), 3));
        }
        let _ = write!(e, ", rel. latency {}, n = {}; {better} of {m} significantly better", num(b.rel_latency, 2), b.examples);
        c.evidence = e;
    }
    c.exceed = Some(ExceedEvidence { tested: tested.len(), significantly_better: better, best, max_upper });
    c
}

/// (d) Table 2's speed-up at verifier quality.
fn speedup(g: &Group, t2: &[Table2Row], cost: Cost) -> Claim {
    let mut c = claim(
        g,
        "d",
        "at verifier quality the token-specific speculative cascade is faster than the verifier and than lossless speculative \
         decoding (the paper, T5 small → large, T = 1, γ = 5: about 1.9–2.0× the verifier's speed)",
        cost,
    );
    let gone = missing(g, &[Method::SpecCascadeTokenV3, Method::SpecDecode, Method::Verifier]);
    if !gone.is_empty() {
        c.reason = format!("no records of {}", gone.join(", "));
        return c;
    }
    let tok = g.curve(Method::SpecCascadeTokenV3);
    let sd = g.one(Method::SpecDecode).expect("checked");
    let col = cost.column();
    let t = t2.iter().find(|t| {
        t.method == Method::SpecCascadeTokenV3 && t.gamma == tok[0].key.gamma && t.bonus == tok[0].key.bonus && t.setting() == g.setting
    });
    let (crossing, clo, chi) = match (t, cost) {
        (Some(t), Cost::Modelled) => (t.speedup_modelled, t.speedup_modelled_lo, t.speedup_modelled_hi),
        (Some(t), Cost::Wall) => (t.speedup_wall, t.speedup_wall_lo, t.speedup_wall_hi),
        (None, _) => (None, f64::NAN, f64::NAN),
    };
    let full = |r: &Row, k: usize| r.samples.rel_latency(&(0..r.samples.examples.len()).collect::<Vec<_>>(), k);
    let chosen = tok
        .iter()
        .filter(|r| r.vs_verifier.as_ref().is_some_and(|p| p.verdict.reaches_verifier()))
        .filter(|r| full(r, col).is_finite())
        .min_by(|a, b| full(a, col).total_cmp(&full(b, col)));
    let inv = |x: f64| (x.is_finite() && x > 0.0).then(|| 1.0 / x);
    let sd_speedup = inv(full(sd, col));
    let (mut ratio, mut rlo, mut rhi, mut n) = (f64::NAN, f64::NAN, f64::NAN, 0);
    if let Some(ch) = chosen {
        let pair = [*ch, sd];
        let (common, pos) = common_positions(&pair);
        n = common.len();
        let r_of = |draw: &[usize]| {
            let a: Vec<usize> = draw.iter().map(|&i| pos[0][i]).collect();
            let b: Vec<usize> = draw.iter().map(|&i| pos[1][i]).collect();
            ch.samples.rel_latency(&a, col) / sd.samples.rel_latency(&b, col)
        };
        if n > 0 {
            ratio = r_of(&(0..n).collect::<Vec<_>>());
            (rlo, rhi) = if n > 1 {
                interval(resample_indices(n, BOOTSTRAP_RESAMPLES, seed_of(&pair)).iter().map(|d| r_of(d)).collect(), LEVEL)
            } else {
                (ratio, ratio)
            };
        }
    }
    let fastest = g
        .by_method
        .iter()
        .filter(|(m, _)| !matches!(m, Method::Drafter | Method::Verifier | Method::OracleCascadeDiff))
        .flat_map(|(_, rs)| rs.iter())
        .filter(|r| r.vs_verifier.as_ref().is_some_and(|p| p.verdict.reaches_verifier()))
        .map(|r| (r, full(r, col)))
        .filter(|(_, l)| l.is_finite() && *l > 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(r, l)| (r.key.method, r.key.alpha, 1.0 / l));
    let ev = SpeedupEvidence {
        fastest,
        crossing,
        crossing_lo: clo,
        crossing_hi: chi,
        alpha: chosen.and_then(|r| r.key.alpha),
        speedup: chosen.and_then(|r| inv(full(r, col))),
        speedup_replayed: chosen.and_then(|r| inv(r.rel_latency_replayed)),
        speedup_modelled_bk: chosen.and_then(|r| inv(r.rel_latency_modelled_bk)),
        spec_decode: sd_speedup,
        ratio,
        ratio_lo: rlo,
        ratio_hi: rhi,
        examples: n,
    };
    let x = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "—".into());
    c.evidence = format!(
        "Token v3 crossing speed-up {} [{}, {}]; cheapest config not significantly worse: {} → {} (replayed {}, modelled b(k) {}); \
         SpecDecode {}; cost ratio Token v3 ÷ SpecDecode = {} [{}, {}] (n = {}); fastest not significantly worse than the \
         verifier: {}",
        x(crossing),
        num(clo, 2),
        num(chi, 2),
        ev.alpha.map(|a| format!("α = {a}")).unwrap_or_else(|| "none".into()),
        x(ev.speedup),
        x(ev.speedup_replayed),
        x(ev.speedup_modelled_bk),
        x(sd_speedup),
        num(ratio, 3),
        num(rlo, 3),
        num(rhi, 3),
        n,
        fastest.map_or("none".into(), |(m, a, x)| format!("{} → {x:.2}×", config_label(m, a, None)))
    );
    (c.verdict, c.reason) = if chi < 1.0 || rlo > 1.0 {
        (ClaimVerdict::Contradicted, "the crossing speed-up's interval lies below 1, or the cost ratio's above 1".into())
    } else if clo > 1.0 && rhi < 1.0 {
        (ClaimVerdict::Confirmed, "the crossing speed-up's interval lies above 1 and the cost ratio's below 1".into())
    } else {
        (ClaimVerdict::Inconclusive, "the intervals cover 1".into())
    };
    c.speedup = Some(ev);
    c
}

/// Every claim for every group of `rows`, on both costs.
pub fn evaluate(rows: &[Row], t2: &[Table2Row]) -> Vec<Claim> {
    let mut out = Vec::new();
    for g in groups(rows) {
        if g.one(Method::Verifier).is_none() {
            continue;
        }
        for cost in Cost::ALL {
            out.push(rule_order(&g, cost));
            out.push(vs_lossy(&g, cost));
            out.push(exceeds_verifier(&g, cost));
            out.push(speedup(&g, t2, cost));
        }
    }
    out
}

/// The decision rules, as the markdown states them (one source: the module doc's list).
pub const RULES_MD: &str = "\
- **(a) Token > OPT > Diff > Chow** — Δ(A, B) = mean over the common cost range of Q_A(L) − Q_B(L) (the difference at that \
cost when the range is one cost), each curve read as its upper envelope (undominated points joined by straight lines, flat beyond \
the last). Each adjacent pair (Token v3 − OPT, \
OPT − Diff, Diff − Chow; speculative cascades) is confirmed when the 95 % paired-bootstrap interval of Δ lies above 0 and \
contradicted when it lies below 0. The chain: confirmed when all three are, contradicted when any is, else inconclusive.
- **(b) vs lossy speculative decoding** (Token v3 − Lossy SD). T > 0, *dominate*: contradicted when the interval of Δ lies below 0, \
or when at any of 5 evenly spaced costs the Bonferroni-adjusted (99 %) interval of Q_Token − Q_Lossy lies below 0; else confirmed \
when the interval of Δ lies above 0. T = 0, *close*: confirmed when the interval of Δ lies inside ±0.2 × |verifier − drafter \
quality|, contradicted when it lies wholly outside.
- **(c) cascades exceed the verifier** (every configuration of the speculative cascades, BiLD*, TokenCascade, SeqCascade; not \
the oracle): confirmed when some configuration is significantly better after a Bonferroni correction over the m configurations \
(exact McNemar p · m < 0.05 for 0/1 metrics, else the (1 − 0.05/m) paired interval above 0); contradicted when no \
configuration's 95 % paired upper bound exceeds 0.
- **(d) speed-up at verifier quality**: Token v3's crossing speed-up (Table 2's rule) and its cheapest configuration not \
significantly worse than the verifier, against lossless speculative decoding. Confirmed when the crossing speed-up's 95 % \
interval lies above 1 and the paired cost ratio (that configuration ÷ SpecDecode) lies below 1; contradicted when the crossing \
interval lies below 1 or the ratio's above 1.
- Anything else is *inconclusive at this n*. Intervals: 2000 percentile-bootstrap resamples of the examples common to every \
configuration involved (paired: common random numbers), seeded from the configurations' hashes.
";

/// One line naming the claims that could not be evaluated (their methods have no records), or
/// nothing.
pub fn not_evaluable(claims: &[Claim], cost: Cost, store: Option<&str>) -> String {
    let v: Vec<String> = claims
        .iter()
        .filter(|c| c.cost == cost && c.verdict == ClaimVerdict::NotEvaluable)
        .map(|c| {
            let at = store.map(|s| format!("{s} ")).unwrap_or_default();
            format!("({}) {at}{} T = {} γ = {}: {}", c.id, c.task, c.temperature, c.gamma.map_or("—".into(), |g| g.to_string()), c.reason)
        })
        .collect();
    if v.is_empty() { String::new() } else { format!("\nNot evaluable here (the methods a claim needs have no records, or no examples or costs in common): {}.\n", v.join("; ")) }
}

/// The claims as a markdown table: one row per claim and group, on `cost` (the not-evaluable ones
/// in a line below, [`not_evaluable`]).
pub fn table(claims: &[Claim], cost: Cost) -> String {
    let mut s = String::from("| claim | task | T | γ | evidence | verdict | why |\n|---|---|---:|---:|---|---|---|\n");
    for c in claims.iter().filter(|c| c.cost == cost && c.verdict != ClaimVerdict::NotEvaluable) {
        let _ = writeln!(
            s,
            "| ({}) {} | {} | {} | {} | {} | **{}** | {} |",
            c.id,
            c.statement,
            c.task,
            c.temperature,
            c.gamma.map(|g| g.to_string()).unwrap_or_else(|| "—".into()),
            if c.evidence.is_empty() { "—" } else { &c.evidence },
            c.verdict.text(),
            c.reason
        );
    }
    s.push_str(&not_evaluable(claims, cost, None));
    s
}

/// `claims.md` of one store (the coverage warning first when the grid is incomplete).
pub fn markdown(claims: &[Claim], coverage: &Coverage, title: &str) -> String {
    let mut s = format!("# {title} — the paper's claims\n\n");
    s.push_str(&coverage.banner());
    if claims.is_empty() {
        s.push_str("No setting has a verifier baseline: nothing to evaluate.\n");
        return s;
    }
    s.push_str("Decision rules (applied by `speccascade report`, never by hand):\n\n");
    s.push_str(RULES_MD);
    for cost in Cost::ALL {
        let _ = writeln!(s, "\n## On the {}\n", cost.text());
        s.push_str(&table(claims, cost));
    }
    s
}

/// Write `claims.md` and `claims.json` into `out`.
pub fn write(out: &Path, claims: &[Claim], coverage: &Coverage, title: &str) -> Result<Vec<PathBuf>, ReportError> {
    let md = out.join("claims.md");
    crate::tables::write_text(&md, &markdown(claims, coverage, title))?;
    let js = out.join("claims.json");
    let json = serde_json::json!({"coverage": coverage, "claims": claims});
    crate::tables::write_text(&js, &(serde_json::to_string_pretty(&json).expect("claims serialise") + "\n"))?;
    Ok(vec![md, js])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_mean_difference() {
        // A dominated point (0.6, 0.5) drops out; the envelope rises, then stays flat.
        let e = envelope(&[(0.5, 0.6), (0.6, 0.5), (1.0, 0.8), (f64::NAN, 1.0)]);
        assert_eq!(e, vec![(0.5, 0.6), (1.0, 0.8)]);
        assert_eq!(at(&e, 0.4), None);
        assert!((at(&e, 0.75).unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(at(&e, 2.0), Some(0.8));
        // B is A shifted down by 0.1 everywhere: Δ = 0.1 over any range.
        let f = envelope(&[(0.5, 0.5), (1.0, 0.7)]);
        assert!((mean_diff(&e, &f, 0.5, 1.0) - 0.1).abs() < 1e-12);
        // Crossing lines: A from 0.6 to 0.8, B from 0.8 to 0.6 → Δ = 0 on average.
        let g = envelope(&[(0.5, 0.8)]);
        assert!((mean_diff(&e, &g, 0.5, 1.0) - (-0.1)).abs() < 1e-12);
        assert_eq!(common_range(&[(0.2, 0.0), (0.9, 0.0)], &[(0.5, 0.0), (1.3, 0.0)]), Some((0.5, 0.9)));
        assert_eq!(common_range(&[(0.2, 0.0)], &[(0.5, 0.0)]), None);
        // One curve at a single cost inside the other's range: compared at that cost.
        assert_eq!(common_range(&[(0.2, 0.0), (0.9, 0.0)], &[(0.5, 0.0), (0.5, 0.1)]), Some((0.5, 0.5)));
        assert!((mean_diff(&e, &envelope(&[(0.75, 0.5)]), 0.75, 0.75) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn intervals_at_a_level() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(interval(v.clone(), 0.1), (5.0, 95.0));
        assert_eq!(interval(vec![f64::NAN, 1.0], 0.05), (1.0, 1.0));
        assert_eq!(ClaimVerdict::of_interval(0.1, 0.2), ClaimVerdict::Confirmed);
        assert_eq!(ClaimVerdict::of_interval(-0.1, 0.2), ClaimVerdict::Inconclusive);
        assert_eq!(ClaimVerdict::of_interval(-0.3, -0.2), ClaimVerdict::Contradicted);
    }
}
