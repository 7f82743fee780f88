//! The figures: quality vs relative latency in the style of the paper's Fig. 2, quality vs deferral
//! rate, and accept-length histograms — each as PNG and SVG, one set per (task, T, γ).
//!
//! Text is drawn with DejaVu Sans, compiled into the binary (`assets/DejaVuSans.ttf`, Bitstream Vera
//! licence beside it), so figures render the same on a machine without fonts. SVG text names the
//! family `sans-serif`.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use speccascade_harness::grid::methods;

use crate::ReportError;
use crate::load::Sweep;
use crate::tables::Row;

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
const H: u32 = 760;

/// Colour-blind-friendly qualitative palette (Okabe–Ito, then Tableau), indexed by method rank.
fn colour(method: &str) -> RGBColor {
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
    P[methods::rank(method).min(P.len() - 1)]
}

fn label(method: &str) -> String {
    methods::info(method).map(|i| i.label.to_string()).unwrap_or_else(|| method.to_string())
}

/// One figure's worth of rows: a (task, T, γ) slice plus the baselines of (task, T).
struct Panel<'a> {
    task: String,
    temperature: f64,
    gamma: Option<usize>,
    rows: Vec<&'a Row>,
    drafter: Option<&'a Row>,
    verifier: Option<&'a Row>,
    metric: String,
    pair: String,
    foreign: usize,
}

impl Panel<'_> {
    /// Two title lines: what is plotted for which task; the model pair and settings.
    fn title(&self, what: &str) -> (String, String) {
        let g = self.gamma.map(|g| format!(", γ = {g}")).unwrap_or_default();
        (format!("{}: {what}", self.task), format!("{}   (T = {}{g})", self.pair, self.temperature))
    }
    fn stem(&self) -> String {
        let g = self.gamma.map(|g| format!("_g{g}")).unwrap_or_default();
        format!("{}_T{}{g}", self.task, self.temperature)
    }
    /// Methods in legend order with their points ordered by α.
    fn curves(&self) -> Vec<(String, Vec<&Row>)> {
        let mut names: Vec<&str> = self.rows.iter().map(|r| r.key.method.as_str()).filter(|m| *m != "drafter" && *m != "verifier").collect();
        names.sort_by_key(|m| methods::rank(m));
        names.dedup();
        names
            .into_iter()
            .map(|m| {
                let mut pts: Vec<&Row> = self.rows.iter().copied().filter(|r| r.key.method == m).collect();
                pts.sort_by(|a, b| a.key.alpha.unwrap_or(0.0).total_cmp(&b.key.alpha.unwrap_or(0.0)));
                (m.to_string(), pts)
            })
            .collect()
    }
}

fn panels<'a>(sweep: &Sweep, rows: &'a [Row]) -> Vec<Panel<'a>> {
    // One figure per (task, T, γ); methods without γ (sequential cascades) appear in each.
    let mut keys: Vec<(String, f64, Option<usize>)> = Vec::new();
    for r in rows.iter().filter(|r| r.key.gamma.is_some()) {
        let k = (r.key.task.clone(), r.key.temperature, r.key.gamma);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for r in rows {
        if !keys.iter().any(|k| k.0 == r.key.task && k.1 == r.key.temperature) {
            keys.push((r.key.task.clone(), r.key.temperature, None));
        }
    }
    keys.into_iter()
        .map(|(task, t, g)| {
            let base = |m: &str| rows.iter().find(|r| r.key.task == task && r.key.temperature == t && r.key.method == m);
            let slice: Vec<&Row> = rows.iter().filter(|r| r.key.task == task && r.key.temperature == t && (r.key.gamma == g || r.key.gamma.is_none())).collect();
            let (d, v) = (base("drafter"), base("verifier"));
            let pair = rows.iter().find(|r| r.key.task == task).map(|r| format!("{} → {}", r.key.drafter, r.key.verifier)).unwrap_or_default();
            let foreign = slice.iter().map(|r| r.foreign_load_records).sum();
            Panel {
                metric: sweep.metric.get(&task).cloned().unwrap_or_else(|| "quality".into()),
                task,
                temperature: t,
                gamma: g,
                rows: slice,
                drafter: d,
                verifier: v,
                pair,
                foreign,
            }
        })
        .collect()
}

/// Which figure to draw.
#[derive(Clone, Copy)]
enum Figure {
    Latency { modelled: bool },
    Deferral,
    AcceptHist,
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel<'_>, fig: Figure) -> DrawResult {
    match fig {
        Figure::Latency { modelled } => quality_vs_latency(root, p, modelled),
        Figure::Deferral => quality_vs_deferral(root, p),
        Figure::AcceptHist => accept_hist(root, p),
    }
}

/// Write every figure; returns the files written.
pub fn all(out: &Path, sweep: &Sweep, rows: &[Row]) -> Result<Vec<PathBuf>, ReportError> {
    register();
    let mut files = Vec::new();
    for p in panels(sweep, rows) {
        for modelled in [true, false] {
            let kind = if modelled { "modelled" } else { "wall" };
            files.extend(both(out, &format!("quality_vs_latency_{kind}_{}", p.stem()), &p, Figure::Latency { modelled })?);
        }
        if p.rows.iter().any(|r| !r.key.method.starts_with("spec_decode") && r.decisions_made()) {
            files.extend(both(out, &format!("quality_vs_deferral_{}", p.stem()), &p, Figure::Deferral)?);
        }
        if p.gamma.is_some() && p.rows.iter().any(|r| r.accept_length_hist.iter().sum::<u64>() > 0) {
            files.extend(both(out, &format!("accept_length_{}", p.stem()), &p, Figure::AcceptHist)?);
        }
    }
    Ok(files)
}

type DrawResult = Result<(), String>;

/// Render one figure to `<stem>.png` and `<stem>.svg`.
fn both(out: &Path, stem: &str, p: &Panel<'_>, fig: Figure) -> Result<Vec<PathBuf>, ReportError> {
    let png = out.join(format!("{stem}.png"));
    let svg = out.join(format!("{stem}.svg"));
    let perr = |path: &Path, msg: String| ReportError::Plot { path: path.display().to_string(), msg };
    // Both files are drawn under temporary names and renamed into place (atomic replacement).
    let tmp = speccascade_files::AtomicFile::create(&png).map_err(|e| ReportError::io(&png, e))?;
    {
        let root = BitMapBackend::new(tmp.temp_path(), (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&png, e.to_string()))?;
        draw(&root, p, fig).map_err(|m| perr(&png, m))?;
        root.present().map_err(|e| perr(&png, e.to_string()))?;
    }
    tmp.commit().map_err(|e| ReportError::io(&png, e))?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&svg, e.to_string()))?;
        draw(&root, p, fig).map_err(|m| perr(&svg, m))?;
        root.present().map_err(|e| perr(&svg, e.to_string()))?;
    }
    crate::tables::write_text(&svg, &text)?;
    Ok(vec![png, svg])
}

/// Draw a two-line title at the top of `root`; returns the area below it.
fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, (main, sub): (String, String)) -> Result<DrawingArea<DB, Shift>, String> {
    let (top, body) = root.split_vertically(78);
    let w = top.dim_in_pixel().0 as i32;
    let centre = |t: &str, size: u32, y: i32, style: FontStyle| -> DrawResult {
        let font = FontDesc::new(FontFamily::SansSerif, size as f64, style).color(&BLACK);
        let (tw, _) = top.estimate_text_size(t, &font).map_err(e2s)?;
        top.draw(&Text::new(t.to_string(), ((w - tw as i32) / 2, y), font)).map_err(e2s)
    };
    centre(&main, 26, 12, FontStyle::Bold)?;
    centre(&sub, 19, 48, FontStyle::Normal)?;
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

/// A (lo, hi) range padded by 6 % (and widened when degenerate).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if (hi - lo).abs() < 1e-9 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let pad = (hi - lo) * 0.06;
    (lo - pad, hi + pad)
}

fn finite(v: impl IntoIterator<Item = f64>) -> (f64, f64) {
    v.into_iter().filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)))
}

/// One method's curve: a line through its points in α order (dashed for the oracle), a marker at
/// each point, and the legend entry.
fn draw_method_curve<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>,
    m: &str,
    c: RGBColor,
    xy: Vec<(f64, f64)>,
) -> Result<(), String> {
    let oracle = m.starts_with("oracle");
    if oracle {
        chart.draw_series(DashedLineSeries::new(xy.clone(), 10, 6, c.stroke_width(3))).map_err(e2s)?;
    } else {
        chart.draw_series(LineSeries::new(xy.clone(), c.stroke_width(3))).map_err(e2s)?;
    }
    chart
        .draw_series(xy.iter().map(|&(x, y)| Circle::new((x, y), 6, c.filled())))
        .map_err(e2s)?
        .label(label(m))
        .legend(move |(x, y)| {
            // Solid line through the marker; the oracle's is dashed.
            let (a, b) = if oracle { ((-12, -4), (10, 18)) } else { ((-8, 3), (3, 14)) };
            EmptyElement::at((x, y))
                + PathElement::new(vec![(a.0, 0), (a.1, 0)], c.stroke_width(3))
                + PathElement::new(vec![(b.0, 0), (b.1, 0)], c.stroke_width(3))
                + Circle::new((3, 0), 5, c.filled())
        });
    Ok(())
}

fn e2s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn quality_vs_latency<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel<'_>, modelled: bool) -> DrawResult {
    let lat = |r: &Row| if modelled { r.rel_latency_modelled } else { r.rel_latency_wall };
    let (xlo, xhi) = finite(p.rows.iter().map(|r| lat(r)).chain([1.0]));
    let (ylo, yhi) = finite(p.rows.iter().map(|r| r.quality));
    if !xlo.is_finite() || !ylo.is_finite() {
        return Err("no finite points to plot".into());
    }
    // The latency axis starts at 0 (and reaches 1 = the verifier).
    let (x0, x1) = padded(0.0, xhi);
    let (y0, y1) = padded(ylo, yhi);
    let what = if modelled { "quality vs modelled latency" } else { "quality vs wall-clock latency" };
    let mut title = p.title(what);
    if !modelled && p.foreign > 0 {
        title.1.push_str(&format!("   [{} records timed under foreign load]", p.foreign));
    }
    let body = titled(root, title)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(18)
        .margin_right(30)
        .x_label_area_size(64)
        .y_label_area_size(92)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e2s)?;
    let xdesc = if modelled {
        format!("relative latency, modelled (c = {:.3}; 1.0 = verifier alone)", p.rows.first().map(|r| r.c).unwrap_or(f64::NAN))
    } else {
        "relative latency, wall clock (1.0 = verifier alone)".to_string()
    };
    chart
        .configure_mesh()
        .x_desc(xdesc)
        .y_desc(p.metric.clone())
        .axis_desc_style(("sans-serif", 21))
        .label_style(("sans-serif", 17))
        .light_line_style(RGBColor(236, 236, 236))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_labels(10)
        .y_labels(8)
        .draw()
        .map_err(e2s)?;
    // Dotted line at verifier quality.
    if let Some(v) = p.verifier {
        let dots = DashedLineSeries::new(vec![(x0, v.quality), (x1, v.quality)], 3, 6, BLACK.stroke_width(2));
        chart.draw_series(dots).map_err(e2s)?.label(format!("verifier quality ({:.3})", v.quality)).legend(|(x, y)| {
            dotted_sample(x, y, BLACK)
        });
    }
    for (m, pts) in p.curves() {
        let c = colour(&m);
        let xy: Vec<(f64, f64)> = pts.iter().map(|r| (lat(r), r.quality)).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        draw_method_curve(&mut chart, &m, c, xy)?;
    }
    if let Some(d) = p.drafter {
        let (x, y) = (lat(d), d.quality);
        if x.is_finite() && y.is_finite() {
            chart
                .draw_series([TriangleMarker::new((x, y), 12, BLACK.filled())])
                .map_err(e2s)?
                .label("drafter alone")
                .legend(|(x, y)| TriangleMarker::new((x + 4, y), 8, BLACK.filled()));
        }
    }
    if let Some(v) = p.verifier {
        chart
            .draw_series([Cross::new((lat(v), v.quality), 9, BLACK.stroke_width(3))])
            .map_err(e2s)?
            .label("verifier alone")
            .legend(|(x, y)| Cross::new((x + 4, y), 6, BLACK.stroke_width(3)));
    }
    let mut all: Vec<Vec<(f64, f64)>> = p.curves().iter().map(|(_, pts)| pts.iter().map(|r| (lat(r), r.quality)).collect()).collect();
    all.extend(p.drafter.iter().chain(p.verifier.iter()).map(|r| vec![(lat(r), r.quality)]));
    chart
        .configure_series_labels()
        .position(legend_corner(&all, (x0, x1), (y0, y1)))
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .margin(10)
        .draw()
        .map_err(e2s)
}

fn quality_vs_deferral<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel<'_>) -> DrawResult {
    // Methods with a deferral rule; (lossy) speculative decoding has none.
    let curves: Vec<(String, Vec<&Row>)> = p
        .curves()
        .into_iter()
        .filter(|(m, pts)| !m.starts_with("spec_decode") && pts.iter().any(|r| r.decisions_made()))
        .collect();
    let (ylo, yhi) = finite(p.rows.iter().map(|r| r.quality));
    if !ylo.is_finite() {
        return Err("no finite points to plot".into());
    }
    let (y0, y1) = padded(ylo, yhi);
    let body = titled(root, p.title("quality vs deferral rate"))?;
    let mut chart = ChartBuilder::on(&body)
        .margin(18)
        .margin_right(30)
        .x_label_area_size(64)
        .y_label_area_size(92)
        .build_cartesian_2d(-0.03f64..1.03f64, y0..y1)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("deferral rate (fraction of positions deferred to the verifier)")
        .y_desc(p.metric.clone())
        .axis_desc_style(("sans-serif", 21))
        .label_style(("sans-serif", 17))
        .light_line_style(RGBColor(236, 236, 236))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(e2s)?;
    if let Some(v) = p.verifier {
        chart
            .draw_series(DashedLineSeries::new(vec![(-0.03, v.quality), (1.03, v.quality)], 3, 6, BLACK.stroke_width(2)))
            .map_err(e2s)?
            .label(format!("verifier quality ({:.3})", v.quality))
            .legend(|(x, y)| dotted_sample(x, y, BLACK));
    }
    if let Some(d) = p.drafter {
        chart
            .draw_series(DashedLineSeries::new(vec![(-0.03, d.quality), (1.03, d.quality)], 10, 6, RGBColor(120, 120, 120).stroke_width(2)))
            .map_err(e2s)?
            .label(format!("drafter quality ({:.3})", d.quality))
            .legend(|(x, y)| PathElement::new(vec![(x - 6, y), (x + 14, y)], RGBColor(120, 120, 120).stroke_width(2)));
    }
    let all: Vec<Vec<(f64, f64)>> = curves.iter().map(|(_, pts)| pts.iter().map(|r| (r.deferral_rate, r.quality)).collect()).collect();
    for (m, pts) in curves {
        let c = colour(&m);
        let xy: Vec<(f64, f64)> = pts.iter().map(|r| (r.deferral_rate, r.quality)).collect();
        draw_method_curve(&mut chart, &m, c, xy)?;
    }
    chart
        .configure_series_labels()
        .position(legend_corner(&all, (-0.03, 1.03), (y0, y1)))
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .margin(10)
        .draw()
        .map_err(e2s)
}

/// Sequential blues, light → dark, for α values within a panel.
fn shade(i: usize, n: usize) -> RGBColor {
    let t = if n <= 1 { 0.7 } else { 0.3 + 0.7 * i as f64 / (n - 1) as f64 };
    let lerp = |a: f64, b: f64| (a + (b - a) * t) as u8;
    RGBColor(lerp(198.0, 8.0), lerp(219.0, 48.0), lerp(239.0, 107.0))
}

fn accept_hist<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Panel<'_>) -> DrawResult {
    let curves: Vec<(String, Vec<&Row>)> =
        p.curves().into_iter().filter(|(_, pts)| pts.iter().any(|r| r.accept_length_hist.iter().sum::<u64>() > 0)).collect();
    let body = titled(root, p.title("accepted drafts per block (γ drafted)"))?;
    if curves.is_empty() {
        return Ok(());
    }
    let cols = if curves.len() <= 2 { curves.len() } else { 3 };
    let nrows = curves.len().div_ceil(cols);
    let areas = body.split_evenly((nrows, cols));
    let gamma = p.gamma.unwrap_or(1);
    for ((m, pts), area) in curves.iter().zip(areas.iter()) {
        let n = pts.len();
        let mut chart = ChartBuilder::on(area)
            .caption(label(m), ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(44)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5f64..(gamma as f64 + 0.5), 0f64..1.0f64)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .x_desc("accepted drafts per block")
            .y_desc("fraction of blocks")
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .x_labels(gamma + 2)
            .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 && *x >= 0.0 { format!("{}", x.round() as i64) } else { String::new() })
            .y_labels(6)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(e2s)?;
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
