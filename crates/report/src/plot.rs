//! The figures, each as PNG and SVG:
//!
//! per panel (a setting — task, T, top-p, seed, length, pair — and a γ; the sequential methods
//! appear in every γ's panel of their setting):
//! - quality vs relative latency, modelled and wall clock (the paper's Fig. 2);
//! - quality vs rejection rate (the Gemma figure's cost axis);
//! - quality vs deferral rate in the layout of the paper's motivating figure: token cascade
//!   [Chow], oracle [Diff], speculative decoding as the reference;
//! - quality vs verifier calls per token;
//! - per-position acceptance curves, and accept-length histograms;
//!
//! per sweep: speed-up at verifier quality vs temperature and vs γ, one line per method (from the
//! Table-2 lines of sweeps over T and γ).
//!
//! Every quality point has its 95 % bootstrap interval (vertical bar), latencies theirs
//! (horizontal bar). A filled marker is a configuration statistically indistinguishable from the
//! verifier on the same examples at 5 % (paired test: McNemar for 0/1 metrics, else the paired
//! bootstrap); a hollow one differs significantly. Titles carry n, trials and the seed. Quality
//! axes run between round numbers around the intervals, not a zoom onto two values.
//!
//! Text is drawn with DejaVu Sans, compiled into the binary (`assets/DejaVuSans.ttf`, Bitstream Vera
//! licence beside it), so figures render the same on a machine without fonts. SVG text names the
//! family `sans-serif`.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use speccascade_decoding::{Bonus, Method};

use crate::ReportError;
use crate::load::Sweep;
use crate::stats::nice_range;
use crate::table2::Table2Row;
use crate::tables::{Row, Setting};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Register the embedded font (idempotent).
pub fn register() {
    REGISTER.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
        let _ = register_font("sans-serif", FontStyle::Bold, FONT);
    });
}

const W: u32 = 1100;
const H: u32 = 800;

/// Colour-blind-friendly qualitative palette (Okabe–Ito, then Tableau), indexed by the method's
/// position in the catalogue ([`Method::rank`]).
fn colour(method: Method) -> RGBColor {
    const P: [RGBColor; 14] = [
        RGBColor(0, 0, 0),
        RGBColor(0, 0, 0),
        RGBColor(90, 90, 90),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(213, 94, 0),
        RGBColor(0, 114, 178),
        RGBColor(188, 189, 34),
        RGBColor(214, 39, 40),
        RGBColor(23, 190, 207),
    ];
    P[method.rank() % P.len()]
}

/// The legend label of a curve: the catalogue's label, and the bonus mode when it is not the
/// method's default.
fn label(method: Method, bonus: Option<Bonus>) -> String {
    match bonus.filter(|&b| b != method.default_bonus()) {
        Some(b) => format!("{} (bonus {b})", method.label()),
        None => method.label().to_string(),
    }
}

/// One figure's worth of rows: a setting and a γ, plus the setting's baselines.
struct Panel<'a> {
    setting: Setting,
    gamma: Option<usize>,
    rows: Vec<&'a Row>,
    drafter: Option<&'a Row>,
    verifier: Option<&'a Row>,
    metric: String,
    foreign: usize,
    examples: usize,
    trials: usize,
}

/// A method's curve in a panel: its points ordered by α.
struct Curve<'a> {
    method: Method,
    bonus: Option<Bonus>,
    pts: Vec<&'a Row>,
}

fn settings_line(s: &Setting, gamma: Option<usize>, examples: usize, trials: usize) -> String {
    let g = gamma.map(|g| format!(", γ = {g}")).unwrap_or_default();
    let p = if s.top_p < 1.0 { format!(", top-p = {}", s.top_p) } else { String::new() };
    format!(
        "{} → {}   (T = {}{p}{g}; n = {examples} examples × {trials} trial(s), seed {}, ≤ {} tokens)",
        s.drafter, s.verifier, s.temperature, s.seed, s.max_new_tokens
    )
}

impl<'a> Panel<'a> {
    /// Two title lines: what is plotted for which task; the model pair and settings.
    fn title(&self, what: &str) -> (String, String) {
        (format!("{}: {what}", self.setting.task), settings_line(&self.setting, self.gamma, self.examples, self.trials))
    }
    fn stem(&self) -> String {
        let s = &self.setting;
        let mut stem = format!("{}_T{}", s.task, s.temperature);
        if s.top_p < 1.0 {
            stem.push_str(&format!("_p{}", s.top_p));
        }
        if let Some(g) = self.gamma {
            stem.push_str(&format!("_g{g}"));
        }
        stem
    }
    /// Curves in legend order (catalogue order), points ordered by α; baselines excluded.
    fn curves(&self) -> Vec<Curve<'a>> {
        let mut keys: Vec<(Method, Option<Bonus>)> = Vec::new();
        for r in &self.rows {
            let k = (r.key.method, r.key.bonus);
            if r.key.method != Method::Drafter && r.key.method != Method::Verifier && !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys.sort_by_key(|k| (k.0.rank(), k.1.map(|b| b.name())));
        keys.into_iter()
            .map(|(method, bonus)| {
                let mut pts: Vec<&Row> = self.rows.iter().copied().filter(|r| r.key.method == method && r.key.bonus == bonus).collect();
                pts.sort_by(|a, b| a.key.alpha.unwrap_or(0.0).total_cmp(&b.key.alpha.unwrap_or(0.0)));
                Curve { method, bonus, pts }
            })
            .collect()
    }
}

fn panels<'a>(sweep: &Sweep, rows: &'a [Row]) -> Vec<Panel<'a>> {
    // One figure per (setting, γ); methods without γ (sequential cascades) appear in each.
    let mut keys: Vec<(Setting, Option<usize>)> = Vec::new();
    for r in rows.iter().filter(|r| r.key.gamma.is_some()) {
        let k = (r.setting(), r.key.gamma);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for r in rows {
        if !keys.iter().any(|k| k.0 == r.setting()) {
            keys.push((r.setting(), None));
        }
    }
    keys.into_iter()
        .map(|(setting, g)| {
            let slice: Vec<&Row> =
                rows.iter().filter(|r| r.setting() == setting && (r.key.gamma == g || r.key.gamma.is_none())).collect();
            let base = |m: Method| slice.iter().copied().find(|r| r.key.method == m);
            let foreign = slice.iter().map(|r| r.foreign_load_records).sum();
            let examples = slice.iter().map(|r| r.examples).max().unwrap_or(0);
            let trials = slice.iter().map(|r| r.trials).max().unwrap_or(0);
            Panel {
                metric: sweep.metric.get(&setting.task).cloned().unwrap_or_else(|| "quality".into()),
                drafter: base(Method::Drafter),
                verifier: base(Method::Verifier),
                setting,
                gamma: g,
                rows: slice,
                foreign,
                examples,
                trials,
            }
        })
        .collect()
}

/// Which figure to draw.
#[derive(Clone, Copy)]
enum Figure {
    Latency { modelled: bool },
    Rejection,
    Deferral,
    Calls,
    Acceptance,
    AcceptHist,
}

/// What a figure is drawn from.
enum Job<'p, 'a> {
    Panel(&'p Panel<'a>, Figure),
    Speedup(&'p SpeedupFigure<'a>),
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, job: &Job<'_, '_>) -> DrawResult {
    match job {
        Job::Panel(p, Figure::Latency { modelled }) => render_xy(root, &latency_figure(p, *modelled)),
        Job::Panel(p, Figure::Rejection) => render_xy(root, &rejection_figure(p)),
        Job::Panel(p, Figure::Deferral) => render_xy(root, &deferral_figure(p)),
        Job::Panel(p, Figure::Calls) => render_xy(root, &calls_figure(p)),
        Job::Panel(p, Figure::Acceptance) => acceptance_curves(root, p),
        Job::Panel(p, Figure::AcceptHist) => accept_hist(root, p),
        Job::Speedup(f) => render_xy(root, &speedup_xy(f)),
    }
}

/// Write every figure; returns the files written.
pub fn all(out: &Path, sweep: &Sweep, rows: &[Row], t2: &[Table2Row]) -> Result<Vec<PathBuf>, ReportError> {
    register();
    let mut files = Vec::new();
    for p in panels(sweep, rows) {
        let stem = p.stem();
        let mut figs: Vec<(String, Figure)> = vec![
            (format!("quality_vs_latency_modelled_{stem}"), Figure::Latency { modelled: true }),
            (format!("quality_vs_latency_wall_{stem}"), Figure::Latency { modelled: false }),
        ];
        let curves = p.curves();
        if curves.iter().any(|c| c.method.is_speculative()) {
            figs.push((format!("quality_vs_rejection_{stem}"), Figure::Rejection));
        }
        if curves.iter().any(|c| MOTIVATING.contains(&c.method)) {
            figs.push((format!("quality_vs_deferral_{stem}"), Figure::Deferral));
        }
        figs.push((format!("quality_vs_calls_{stem}"), Figure::Calls));
        if p.gamma.is_some() && p.rows.iter().any(|r| r.position_acceptance.iter().any(|a| a.is_finite())) {
            figs.push((format!("acceptance_by_position_{stem}"), Figure::Acceptance));
        }
        if p.gamma.is_some() && p.rows.iter().any(|r| r.accept_length_hist.iter().sum::<u64>() > 0) {
            figs.push((format!("accept_length_{stem}"), Figure::AcceptHist));
        }
        for (name, fig) in figs {
            files.extend(both(out, &name, &Job::Panel(&p, fig))?);
        }
    }
    for f in speedup_figures(sweep, t2) {
        files.extend(both(out, &f.stem(), &Job::Speedup(&f))?);
    }
    Ok(files)
}

type DrawResult = Result<(), String>;

/// Render one figure to `<stem>.png` and `<stem>.svg`.
fn both(out: &Path, stem: &str, job: &Job<'_, '_>) -> Result<Vec<PathBuf>, ReportError> {
    let png = out.join(format!("{stem}.png"));
    let svg = out.join(format!("{stem}.svg"));
    let perr = |path: &Path, msg: String| ReportError::Plot { path: path.display().to_string(), msg };
    // Both files are drawn under temporary names and renamed into place (atomic replacement).
    let tmp = speccascade_files::AtomicFile::create(&png).map_err(|e| ReportError::io(&png, e))?;
    {
        let root = BitMapBackend::new(tmp.temp_path(), (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&png, e.to_string()))?;
        draw(&root, job).map_err(|m| perr(&png, m))?;
        root.present().map_err(|e| perr(&png, e.to_string()))?;
    }
    tmp.commit().map_err(|e| ReportError::io(&png, e))?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&svg, e.to_string()))?;
        draw(&root, job).map_err(|m| perr(&svg, m))?;
        root.present().map_err(|e| perr(&svg, e.to_string()))?;
    }
    crate::tables::write_text(&svg, &text)?;
    Ok(vec![png, svg])
}

// ---------------------------------------------------------------------------------------------
// The generic XY figure: curves with interval bars, reference lines, baseline markers.

/// One plotted point with its 95 % intervals.
#[derive(Clone, Copy)]
struct Pt {
    x: f64,
    y: f64,
    x_ci: Option<(f64, f64)>,
    y_ci: Option<(f64, f64)>,
    /// Filled marker: indistinguishable from the verifier.
    filled: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Marker {
    Circle,
    Triangle,
    Cross,
    Square,
}

struct Series {
    label: String,
    colour: RGBColor,
    dashed: bool,
    /// Joined by a line (a curve) or not (a single reference point).
    line: bool,
    marker: Marker,
    pts: Vec<Pt>,
}

struct HLine {
    label: String,
    y: f64,
    colour: RGBColor,
}

struct XyFigure {
    title: (String, String),
    xdesc: String,
    ydesc: String,
    /// Fixed x range; `None` = a round range around the data (from 0 when `x_from_zero`).
    x_range: Option<(f64, f64)>,
    x_from_zero: bool,
    /// The y axis from 0 (rates, speed-ups) rather than around the data (quality).
    y_from_zero: bool,
    series: Vec<Series>,
    hlines: Vec<HLine>,
    /// A third title line explaining bars and markers.
    note: &'static str,
}

const QUALITY_NOTE: &str = "error bars: 95 % bootstrap intervals over examples; filled marker = indistinguishable from the verifier at 5 % (paired test), hollow = significantly different";

fn row_pt(r: &Row, x: f64, x_ci: Option<(f64, f64)>) -> Pt {
    Pt {
        x,
        y: r.quality,
        x_ci: x_ci.filter(|(a, b)| a.is_finite() && b.is_finite()),
        y_ci: Some((r.quality_lo, r.quality_hi)).filter(|(a, b)| a.is_finite() && b.is_finite()),
        filled: r.key.method == Method::Verifier || r.indistinguishable(),
    }
}

fn curve_series(c: &Curve<'_>, pt: impl Fn(&Row) -> Option<Pt>) -> Series {
    Series {
        label: label(c.method, c.bonus),
        colour: colour(c.method),
        dashed: c.method.is_oracle(),
        line: true,
        marker: Marker::Circle,
        pts: c.pts.iter().filter_map(|r| pt(r)).filter(|p| p.x.is_finite() && p.y.is_finite()).collect(),
    }
}

fn baseline_series(p: &Panel<'_>, pt: impl Fn(&Row) -> Option<Pt>) -> Vec<Series> {
    let mut out = Vec::new();
    for (r, name, marker) in [(p.drafter, "drafter alone", Marker::Triangle), (p.verifier, "verifier alone", Marker::Cross)] {
        if let Some(pt) = r.and_then(&pt).filter(|q| q.x.is_finite() && q.y.is_finite()) {
            out.push(Series { label: name.into(), colour: BLACK, dashed: false, line: false, marker, pts: vec![pt] });
        }
    }
    out
}

fn verifier_line(p: &Panel<'_>) -> Vec<HLine> {
    p.verifier
        .map(|v| HLine { label: format!("verifier quality ({:.3})", v.quality), y: v.quality, colour: BLACK })
        .into_iter()
        .collect()
}

fn latency_figure(p: &Panel<'_>, modelled: bool) -> XyFigure {
    let lat = |r: &Row| {
        if modelled {
            (r.rel_latency_modelled, (r.rel_latency_modelled_lo, r.rel_latency_modelled_hi))
        } else {
            (r.rel_latency_wall, (r.rel_latency_wall_lo, r.rel_latency_wall_hi))
        }
    };
    let pt = |r: &Row| {
        let (x, ci) = lat(r);
        Some(row_pt(r, x, Some(ci)))
    };
    let mut series: Vec<Series> = p.curves().iter().map(|c| curve_series(c, pt)).collect();
    series.extend(baseline_series(p, pt));
    let what = if modelled { "quality vs modelled latency" } else { "quality vs wall-clock latency" };
    let mut title = p.title(what);
    if !modelled && p.foreign > 0 {
        title.1.push_str(&format!("   [{} records timed under foreign load]", p.foreign));
    }
    let xdesc = if modelled {
        format!("relative latency, modelled (c = {:.3}; 1.0 = verifier alone)", p.rows.first().map(|r| r.c).unwrap_or(f64::NAN))
    } else {
        "relative latency, wall clock (1.0 = verifier alone; oracle charged as modelled)".to_string()
    };
    XyFigure {
        title,
        xdesc,
        ydesc: p.metric.clone(),
        x_range: None,
        x_from_zero: true,
        y_from_zero: false,
        series,
        hlines: verifier_line(p),
        note: QUALITY_NOTE,
    }
}

fn rejection_figure(p: &Panel<'_>) -> XyFigure {
    let curves = p.curves();
    let series: Vec<Series> = curves
        .iter()
        .filter(|c| c.method.is_speculative())
        .map(|c| curve_series(c, |r| Some(row_pt(r, r.rejection_rate, None))))
        .collect();
    let mut hlines = verifier_line(p);
    hlines.extend(p.drafter.map(|d| HLine { label: format!("drafter quality ({:.3})", d.quality), y: d.quality, colour: RGBColor(120, 120, 120) }));
    XyFigure {
        title: p.title("quality vs rejection rate"),
        xdesc: "rejection rate (rejected ÷ examined draft positions)".into(),
        ydesc: p.metric.clone(),
        x_range: None,
        x_from_zero: true,
        y_from_zero: false,
        series,
        hlines,
        note: QUALITY_NOTE,
    }
}

/// The methods of the paper's motivating figure (quality vs deferral rate).
const MOTIVATING: [Method; 3] = [Method::TokenCascadeChow, Method::OracleCascadeDiff, Method::SpecDecode];

fn deferral_figure(p: &Panel<'_>) -> XyFigure {
    let curves = p.curves();
    let mut series: Vec<Series> = Vec::new();
    for c in curves.iter().filter(|c| MOTIVATING.contains(&c.method)) {
        let mut s = curve_series(c, |r| Some(row_pt(r, r.deferral_rate, None)));
        if c.method == Method::SpecDecode {
            // Speculative decoding is the reference: the verifier's quality at its deferral rate.
            s.label = format!("{} (reference)", s.label);
            s.line = false;
            s.marker = Marker::Square;
        }
        series.push(s);
    }
    let mut hlines = verifier_line(p);
    hlines.extend(p.drafter.map(|d| HLine { label: format!("drafter quality ({:.3})", d.quality), y: d.quality, colour: RGBColor(120, 120, 120) }));
    XyFigure {
        title: p.title("quality vs deferral rate"),
        xdesc: "deferral rate (deferrals ÷ emitted tokens)".into(),
        ydesc: p.metric.clone(),
        x_range: Some((0.0, 1.0)),
        x_from_zero: true,
        y_from_zero: false,
        series,
        hlines,
        note: QUALITY_NOTE,
    }
}

fn calls_figure(p: &Panel<'_>) -> XyFigure {
    let pt = |r: &Row| Some(row_pt(r, r.verifier_calls_per_token, None));
    let mut series: Vec<Series> = p.curves().iter().map(|c| curve_series(c, pt)).collect();
    series.extend(baseline_series(p, pt));
    XyFigure {
        title: p.title("quality vs verifier calls per token"),
        xdesc: "verifier calls per emitted token (charged)".into(),
        ydesc: p.metric.clone(),
        x_range: None,
        x_from_zero: true,
        y_from_zero: false,
        series,
        hlines: verifier_line(p),
        note: QUALITY_NOTE,
    }
}

// ---------------------------------------------------------------------------------------------
// Speed-up at verifier quality vs temperature and vs γ.

/// One speed-up figure: a group of Table-2 lines sharing everything but the x parameter.
struct SpeedupFigure<'a> {
    /// `T` or `γ`.
    over_gamma: bool,
    modelled: bool,
    lines: Vec<&'a Table2Row>,
    setting: Setting,
    gamma: Option<usize>,
}

impl SpeedupFigure<'_> {
    fn stem(&self) -> String {
        let s = &self.setting;
        let kind = if self.modelled { "modelled" } else { "wall" };
        let mut stem = if self.over_gamma {
            format!("speedup_vs_gamma_{kind}_{}_T{}", s.task, s.temperature)
        } else {
            format!("speedup_vs_temperature_{kind}_{}", s.task)
        };
        if s.top_p < 1.0 {
            stem.push_str(&format!("_p{}", s.top_p));
        }
        if let (false, Some(g)) = (self.over_gamma, self.gamma) {
            stem.push_str(&format!("_g{g}"));
        }
        stem
    }
}

fn speedup_figures<'a>(sweep: &Sweep, t2: &'a [Table2Row]) -> Vec<SpeedupFigure<'a>> {
    let _ = sweep;
    let mut out = Vec::new();
    // vs T: group by the setting without T, and γ (sequential methods join every γ's group).
    let strip_t = |s: &Setting| Setting { temperature: 0.0, ..s.clone() };
    let mut groups: Vec<(Setting, Option<usize>)> = Vec::new();
    for t in t2.iter().filter(|t| t.gamma.is_some()) {
        let k = (strip_t(&t.setting()), t.gamma);
        if !groups.contains(&k) {
            groups.push(k);
        }
    }
    for (s, g) in &groups {
        let lines: Vec<&Table2Row> =
            t2.iter().filter(|t| strip_t(&t.setting()) == *s && (t.gamma == *g || t.gamma.is_none())).collect();
        let mut ts: Vec<f64> = lines.iter().map(|t| t.temperature).collect();
        ts.sort_by(f64::total_cmp);
        ts.dedup();
        if ts.len() >= 2 {
            for modelled in [true, false] {
                out.push(SpeedupFigure { over_gamma: false, modelled, lines: lines.clone(), setting: s.clone(), gamma: *g });
            }
        }
    }
    // vs γ: group by setting; speculative methods only.
    let mut settings: Vec<Setting> = Vec::new();
    for t in t2.iter().filter(|t| t.gamma.is_some()) {
        if !settings.contains(&t.setting()) {
            settings.push(t.setting());
        }
    }
    for s in settings {
        let lines: Vec<&Table2Row> = t2.iter().filter(|t| t.setting() == s && t.gamma.is_some()).collect();
        let mut gs: Vec<usize> = lines.iter().filter_map(|t| t.gamma).collect();
        gs.sort();
        gs.dedup();
        if gs.len() >= 2 {
            for modelled in [true, false] {
                out.push(SpeedupFigure { over_gamma: true, modelled, lines: lines.clone(), setting: s.clone(), gamma: None });
            }
        }
    }
    out
}

fn speedup_xy(f: &SpeedupFigure<'_>) -> XyFigure {
    let mut keys: Vec<(Method, Option<Bonus>)> = Vec::new();
    for t in &f.lines {
        if !keys.contains(&(t.method, t.bonus)) {
            keys.push((t.method, t.bonus));
        }
    }
    keys.sort_by_key(|k| (k.0.rank(), k.1.map(|b| b.name())));
    // Dodge the methods sideways a little so that their interval bars do not hide each other.
    let xs: Vec<f64> = f.lines.iter().filter_map(|t| if f.over_gamma { t.gamma.map(|g| g as f64) } else { Some(t.temperature) }).collect();
    let (xmin, xmax) = finite(xs);
    let dodge = if xmax > xmin { 0.012 * (xmax - xmin) } else { 0.0 };
    let centre = (keys.len() as f64 - 1.0) / 2.0;
    let series = keys
        .into_iter()
        .enumerate()
        .map(|(i, (m, b))| {
            let shift = (i as f64 - centre) * dodge;
            let mut pts: Vec<Pt> = f
                .lines
                .iter()
                .filter(|t| t.method == m && t.bonus == b)
                .filter_map(|t| {
                    let (v, lo, hi) = if f.modelled {
                        (t.speedup_modelled, t.speedup_modelled_lo, t.speedup_modelled_hi)
                    } else {
                        (t.speedup_wall, t.speedup_wall_lo, t.speedup_wall_hi)
                    };
                    let x = if f.over_gamma { t.gamma? as f64 } else { t.temperature } + shift;
                    // Not reached: drawn at 0 (hollow), with the resampled interval.
                    Some(Pt {
                        x,
                        y: v.unwrap_or(0.0),
                        x_ci: None,
                        y_ci: Some((lo, hi)).filter(|(a, b)| a.is_finite() && b.is_finite()),
                        filled: v.is_some(),
                    })
                })
                .collect();
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            Series { label: label(m, b), colour: colour(m), dashed: m.is_oracle(), line: true, marker: Marker::Circle, pts }
        })
        .collect();
    let first = f.lines.first();
    let (n, trials) = (first.map(|t| t.examples).unwrap_or(0), first.map(|t| t.trials).unwrap_or(0));
    let kind = if f.modelled { "modelled" } else { "wall clock" };
    let what = if f.over_gamma { "speed-up at verifier quality vs γ" } else { "speed-up at verifier quality vs temperature" };
    let mut sub = settings_line(&f.setting, f.gamma, n, trials);
    if !f.over_gamma {
        sub = sub.replacen(&format!("T = {}", f.setting.temperature), "T varies", 1);
    }
    XyFigure {
        title: (format!("{}: {what} ({kind})", f.setting.task), sub),
        xdesc: if f.over_gamma {
            "draft block length γ (methods dodged sideways)".into()
        } else {
            "temperature T (methods dodged sideways)".into()
        },
        ydesc: format!("speed-up at verifier quality (×, {kind})"),
        x_range: None,
        x_from_zero: false,
        y_from_zero: true,
        series,
        hlines: vec![HLine { label: "no speed-up (1×)".into(), y: 1.0, colour: BLACK }],
        note: "error bars: 95 % bootstrap intervals over examples (a resample that never reaches the verifier's quality counts as 0); hollow marker at 0 = not reached",
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

fn e2s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn finite(v: impl IntoIterator<Item = f64>) -> (f64, f64) {
    v.into_iter().filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)))
}

fn render_xy<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &XyFigure) -> DrawResult {
    let xs = f.series.iter().flat_map(|s| s.pts.iter().flat_map(|p| [Some(p.x), p.x_ci.map(|c| c.0), p.x_ci.map(|c| c.1)]).flatten());
    let ys = f
        .series
        .iter()
        .flat_map(|s| s.pts.iter().flat_map(|p| [Some(p.y), p.y_ci.map(|c| c.0), p.y_ci.map(|c| c.1)]).flatten())
        .chain(f.hlines.iter().map(|h| h.y));
    let (xlo, xhi) = finite(xs);
    let (ylo, yhi) = finite(ys);
    if !xlo.is_finite() || !ylo.is_finite() {
        return Err("no finite points to plot".into());
    }
    let (x0, x1) = match f.x_range {
        Some(r) => (r.0 - 0.03 * (r.1 - r.0), r.1 + 0.03 * (r.1 - r.0)),
        None if f.x_from_zero => (0.0, nice_range(0.0, xhi.max(1e-3)).1),
        None => {
            let pad = ((xhi - xlo) * 0.08).max(0.05);
            (xlo - pad, xhi + pad)
        }
    };
    let (y0, y1) = if f.y_from_zero { (0.0, nice_range(0.0, yhi.max(1.0)).1) } else { nice_range(ylo, yhi) };
    let mut title = f.title.clone();
    if !f.note.is_empty() {
        title.1.push('\n');
        title.1.push_str(f.note);
    }
    let body = titled(root, title)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(18)
        .margin_right(30)
        .x_label_area_size(64)
        .y_label_area_size(92)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc(f.xdesc.clone())
        .y_desc(f.ydesc.clone())
        .axis_desc_style(("sans-serif", 21))
        .label_style(("sans-serif", 17))
        .light_line_style(RGBColor(236, 236, 236))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_labels(10)
        .y_labels(8)
        .draw()
        .map_err(e2s)?;
    for h in &f.hlines {
        let c = h.colour;
        let dots = DashedLineSeries::new(vec![(x0, h.y), (x1, h.y)], 3, 6, c.stroke_width(2));
        chart.draw_series(dots).map_err(e2s)?.label(h.label.clone()).legend(move |(x, y)| dotted_sample(x, y, c));
    }
    for s in &f.series {
        let c = s.colour;
        let xy: Vec<(f64, f64)> = s.pts.iter().map(|p| (p.x, p.y)).collect();
        if s.line && xy.len() > 1 {
            if s.dashed {
                chart.draw_series(DashedLineSeries::new(xy.clone(), 10, 6, c.stroke_width(3))).map_err(e2s)?;
            } else {
                chart.draw_series(LineSeries::new(xy.clone(), c.stroke_width(3))).map_err(e2s)?;
            }
        }
        // Interval bars with caps (in pixels, so they look the same on every axis).
        for p in &s.pts {
            if let Some((lo, hi)) = p.y_ci {
                chart.draw_series(std::iter::once(PathElement::new(vec![(p.x, lo), (p.x, hi)], c.mix(0.7).stroke_width(2)))).map_err(e2s)?;
                for y in [lo, hi] {
                    chart
                        .draw_series(std::iter::once(EmptyElement::at((p.x, y)) + PathElement::new(vec![(-5, 0), (5, 0)], c.mix(0.7).stroke_width(2))))
                        .map_err(e2s)?;
                }
            }
            if let Some((lo, hi)) = p.x_ci {
                chart.draw_series(std::iter::once(PathElement::new(vec![(lo, p.y), (hi, p.y)], c.mix(0.5).stroke_width(1)))).map_err(e2s)?;
                for x in [lo, hi] {
                    chart
                        .draw_series(std::iter::once(EmptyElement::at((x, p.y)) + PathElement::new(vec![(0, -4), (0, 4)], c.mix(0.5).stroke_width(1))))
                        .map_err(e2s)?;
                }
            }
        }
        let marker = s.marker;
        let dashed = s.dashed;
        let line = s.line;
        chart
            .draw_series(s.pts.iter().map(move |p| EmptyElement::at((p.x, p.y)) + marker_px::<DB>((0, 0), marker, c, p.filled)))
            .map_err(e2s)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                // A line through the marker (dashed for the oracle); a bare marker for a point.
                let (a, b) = match (line, dashed) {
                    (false, _) => ((0, 0), (0, 0)),
                    (true, true) => ((-12, -4), (10, 18)),
                    (true, false) => ((-8, 3), (3, 14)),
                };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(a.0, 0), (a.1, 0)], c.stroke_width(3))
                    + PathElement::new(vec![(b.0, 0), (b.1, 0)], c.stroke_width(3))
                    + marker_px::<DB>((3, 0), marker, c, true)
            });
    }
    let curves: Vec<Vec<(f64, f64)>> = f.series.iter().map(|s| s.pts.iter().map(|p| (p.x, p.y)).collect()).collect();
    chart
        .configure_series_labels()
        .position(legend_corner(&curves, (x0, x1), (y0, y1)))
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .margin(10)
        .draw()
        .map_err(e2s)
}

/// A marker drawn at pixel offset `o` (filled or hollow).
fn marker_px<DB: DrawingBackend>(o: (i32, i32), m: Marker, c: RGBColor, filled: bool) -> DynElement<'static, DB, (i32, i32)> {
    let style = if filled { c.filled() } else { c.stroke_width(2) };
    match m {
        Marker::Circle => Circle::new(o, 6, style).into_dyn(),
        Marker::Triangle => TriangleMarker::new(o, 11, style).into_dyn(),
        Marker::Cross => Cross::new(o, 8, c.stroke_width(3)).into_dyn(),
        Marker::Square => Rectangle::new([(o.0 - 6, o.1 - 6), (o.0 + 6, o.1 + 6)], style).into_dyn(),
    }
}

/// Draw a title at the top of `root` (the main line, then each line of `sub`); returns the area
/// below it.
fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, (main, sub): (String, String)) -> Result<DrawingArea<DB, Shift>, String> {
    let lines: Vec<&str> = sub.lines().collect();
    let (top, body) = root.split_vertically(54 + 26 * lines.len() as u32);
    let w = top.dim_in_pixel().0 as i32;
    let centre = |t: &str, size: u32, y: i32, style: FontStyle| -> DrawResult {
        let font = FontDesc::new(FontFamily::SansSerif, size as f64, style).color(&BLACK);
        let (tw, _) = top.estimate_text_size(t, &font).map_err(e2s)?;
        top.draw(&Text::new(t.to_string(), ((w - tw as i32) / 2, y), font)).map_err(e2s)
    };
    centre(&main, 26, 12, FontStyle::Bold)?;
    for (i, l) in lines.iter().enumerate() {
        centre(l, if i == 0 { 19 } else { 15 }, 48 + 26 * i as i32, FontStyle::Normal)?;
    }
    Ok(body)
}

/// A dotted legend sample.
fn dotted_sample(x: i32, y: i32, c: RGBColor) -> plotters::element::DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    plotters::element::DashedPathElement::new(vec![(x - 10, y), (x + 16, y)], 3, 3, c.stroke_width(2))
}

/// The legend corner that covers the fewest points (and segment midpoints) of `curves`, given
/// the axis ranges. The legend box is taken as 40 % of the width and 45 % of the height.
fn legend_corner(curves: &[Vec<(f64, f64)>], x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for c in curves {
        let norm: Vec<(f64, f64)> = c.iter().map(|&(a, b)| ((a - x.0) / (x.1 - x.0), (b - y.0) / (y.1 - y.0))).collect();
        pts.extend(&norm);
        for w in norm.windows(2) {
            for t in [0.25, 0.5, 0.75] {
                pts.push((w[0].0 + t * (w[1].0 - w[0].0), w[0].1 + t * (w[1].1 - w[0].1)));
            }
        }
    }
    let count = |right: bool, upper: bool| {
        pts.iter()
            .filter(|(a, _)| if right { *a > 0.58 } else { *a < 0.42 })
            .filter(|(_, b)| if upper { *b > 0.53 } else { *b < 0.47 })
            .count()
    };
    let options = [
        (SeriesLabelPosition::LowerRight, count(true, false)),
        (SeriesLabelPosition::UpperLeft, count(false, true)),
        (SeriesLabelPosition::UpperRight, count(true, true)),
        (SeriesLabelPosition::LowerLeft, count(false, false)),
    ];
    options.into_iter().min_by_key(|o| o.1).map(|o| o.0).unwrap_or(SeriesLabelPosition::LowerRight)
}


/// The axes of one small chart: integer x ticks `x.0 ..= x.1`, y from 0 to `y_max`.
struct Small {
    x: (usize, usize),
    y_max: f64,
    xdesc: &'static str,
    ydesc: &'static str,
}

/// `n` small charts in rows of up to three.
fn small_multiples<DB: DrawingBackend>(body: &DrawingArea<DB, Shift>, n: usize) -> Vec<DrawingArea<DB, Shift>> {
    let cols = if n <= 2 { n.max(1) } else { 3 };
    body.split_evenly((n.div_ceil(cols), cols))
}

type SmallChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// One small chart with its caption and mesh drawn.
fn small_chart<'a, DB: DrawingBackend>(area: &'a DrawingArea<DB, Shift>, caption: &str, a: &Small) -> Result<SmallChart<'a, DB>, String> {
    let (x0, x1) = (a.x.0 as f64 - 0.5, a.x.1 as f64 + 0.5);
    let first = a.x.0 as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(58)
        .build_cartesian_2d(x0..x1, 0f64..a.y_max)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc(a.xdesc)
        .y_desc(a.ydesc)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .x_labels(a.x.1 - a.x.0 + 3)
        .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 && *x >= first { format!("{}", x.round() as i64) } else { String::new() })
        .y_labels(6)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e2s)?;
    Ok(chart)
}

/// Sequential blues, light → dark, for α values within a panel.
fn shade(i: usize, n: usize) -> RGBColor {
    let t = if n <= 1 { 0.7 } else { 0.3 + 0.7 * i as f64 / (n - 1) as f64 };
    let lerp = |a: f64, b: f64| (a + (b - a) * t) as u8;
    RGBColor(lerp(198.0, 8.0), lerp(219.0, 48.0), lerp(239.0, 107.0))
}

fn accept_hist<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel<'_>) -> DrawResult {
    let curves: Vec<Curve<'_>> =
        p.curves().into_iter().filter(|c| c.pts.iter().any(|r| r.accept_length_hist.iter().sum::<u64>() > 0)).collect();
    let body = titled(root, p.title("accepted drafts per block (γ drafted; γ + 1 with the exact bonus)"))?;
    if curves.is_empty() {
        return Ok(());
    }
    let longest = p.rows.iter().map(|r| r.accept_length_hist.len()).max().unwrap_or(1);
    let gamma = longest.saturating_sub(1).max(p.gamma.unwrap_or(1));
    let axes = Small { x: (0, gamma), y_max: 1.0, xdesc: "accepted drafts per block", ydesc: "fraction of blocks" };
    for (cv, area) in curves.iter().zip(small_multiples(&body, curves.len())) {
        let pts = &cv.pts;
        let n = pts.len();
        let mut chart = small_chart(&area, &label(cv.method, cv.bonus), &axes)?;
        let width = 0.8 / n as f64;
        for (i, r) in pts.iter().enumerate() {
            let total: u64 = r.accept_length_hist.iter().sum();
            if total == 0 {
                continue;
            }
            let c = shade(i, n);
            let x_off = -0.4 + width * i as f64;
            let bars: Vec<Rectangle<(f64, f64)>> = r
                .accept_length_hist
                .iter()
                .enumerate()
                .map(|(k, &cnt)| {
                    let x = k as f64 + x_off;
                    Rectangle::new([(x, 0.0), (x + width * 0.92, cnt as f64 / total as f64)], c.filled())
                })
                .collect();
            let lab = r.key.alpha.map(|a| format!("α = {a}")).unwrap_or_else(|| "no α".into());
            chart
                .draw_series(bars)
                .map_err(e2s)?
                .label(format!("{lab} (mean {:.2})", r.mean_accept_length))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(e2s)?;
    }
    Ok(())
}

/// Per-position acceptance: one small chart per method, one line per α, acceptance rate at each
/// block offset with its 95 % bootstrap interval over examples.
fn acceptance_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel<'_>) -> DrawResult {
    let curves: Vec<Curve<'_>> =
        p.curves().into_iter().filter(|c| c.pts.iter().any(|r| r.position_acceptance.iter().any(|a| a.is_finite()))).collect();
    let body = titled(root, p.title("acceptance rate by position in the block (accepted ÷ examined; 95 % intervals)"))?;
    if curves.is_empty() {
        return Ok(());
    }
    let longest = p.rows.iter().map(|r| r.position_acceptance.len()).max().unwrap_or(1).max(1);
    let axes = Small { x: (1, longest), y_max: 1.05, xdesc: "position in the block", ydesc: "acceptance rate" };
    for (cv, area) in curves.iter().zip(small_multiples(&body, curves.len())) {
        let mut chart = small_chart(&area, &label(cv.method, cv.bonus), &axes)?;
        let n = cv.pts.len();
        for (i, r) in cv.pts.iter().enumerate() {
            let c = shade(i, n);
            let pts: Vec<(f64, f64, f64, f64)> = (0..r.position_acceptance.len())
                .filter(|&j| r.position_acceptance[j].is_finite())
                .map(|j| (j as f64 + 1.0, r.position_acceptance[j], r.position_acceptance_lo[j], r.position_acceptance_hi[j]))
                .collect();
            for &(x, _, lo, hi) in &pts {
                if lo.is_finite() && hi.is_finite() {
                    chart.draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(2)))).map_err(e2s)?;
                }
            }
            chart.draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2))).map_err(e2s)?;
            let lab = r.key.alpha.map(|a| format!("α = {a}")).unwrap_or_else(|| "no α".into());
            chart
                .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
                .map_err(e2s)?
                .label(lab)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(e2s)?;
    }
    Ok(())
}
