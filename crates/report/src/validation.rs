//! The latency-validation figure: replayed (predicted) against clock-measured seconds of the
//! records `run --validate-latency N` ran again on their own, the y = x line, and the median and
//! max relative error in the legend (records whose every direct run was under foreign load or
//! found the machine's speed drifted are drawn hollow and excluded).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use speccascade_harness::runner::{Validation, read_validations, validation_errors};

use crate::ReportError;

const W: u32 = 900;
const H: u32 = 820;

/// Draw `latency_validation.{png,svg}` under `out` when `dir` holds validations; returns the files.
pub fn write(dir: &Path, out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let v = read_validations(dir)?;
    if v.is_empty() {
        return Ok(Vec::new());
    }
    crate::plot::register();
    let png = out.join("latency_validation.png");
    let svg = out.join("latency_validation.svg");
    let perr = |path: &Path, msg: String| ReportError::Plot { path: path.display().to_string(), msg };
    {
        let root = BitMapBackend::new(&png, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&png, e.to_string()))?;
        draw(&root, &v).map_err(|m| perr(&png, m))?;
        root.present().map_err(|e| perr(&png, e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&svg, e.to_string()))?;
        draw(&root, &v).map_err(|m| perr(&svg, m))?;
        root.present().map_err(|e| perr(&svg, e.to_string()))?;
    }
    Ok(vec![png, svg])
}

fn e2s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, v: &[Validation]) -> Result<(), String> {
    let (median, max, excluded) = validation_errors(v);
    let hi = v.iter().flat_map(|x| [x.predicted_s, x.measured_s]).filter(|x| x.is_finite()).fold(0.0f64, f64::max) * 1.08;
    let hi = if hi > 0.0 { hi } else { 1.0 };
    let hw: Vec<&str> = {
        let mut h: Vec<&str> = v.iter().map(|x| x.hardware.as_str()).collect();
        h.sort();
        h.dedup();
        h
    };
    let mismatched = v.iter().filter(|x| !x.tokens_match).count();
    let caption = format!("replayed vs measured latency (n = {}, {}; records drawn with the experiment's seed)", v.len(), hw.join(" + "));
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..hi, 0.0..hi)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("measured: the record run on its own, wall clock (s)")
        .y_desc("predicted: replayed from the cost table (s)")
        .axis_desc_style(("sans-serif", 19))
        .label_style(("sans-serif", 16))
        .light_line_style(RGBColor(236, 236, 236))
        .draw()
        .map_err(e2s)?;
    chart
        .draw_series(LineSeries::new(vec![(0.0, 0.0), (hi, hi)], BLACK.stroke_width(2)))
        .map_err(e2s)?
        .label("y = x")
        .legend(|(x, y)| PathElement::new(vec![(x - 10, y), (x + 16, y)], BLACK.stroke_width(2)));
    let blue = RGBColor(0, 114, 178);
    let idle: Vec<(f64, f64)> = v.iter().filter(|x| !x.foreign_load).map(|x| (x.measured_s, x.predicted_s)).collect();
    let loaded: Vec<(f64, f64)> = v.iter().filter(|x| x.foreign_load).map(|x| (x.measured_s, x.predicted_s)).collect();
    // The excluded records' own errors, so a loaded machine's figure still says something.
    let as_idle: Vec<Validation> = v.iter().filter(|x| x.foreign_load).cloned().map(|mut x| {
        x.foreign_load = false;
        x
    }).collect();
    let (loaded_median, loaded_max, _) = validation_errors(&as_idle);
    chart
        .draw_series(idle.iter().map(|&p| Circle::new(p, 6, blue.filled())))
        .map_err(e2s)?
        .label(if idle.is_empty() {
            "no record ran without foreign load or speed drift".to_string()
        } else {
            format!("{} records: median |error| {:.1} %, max {:.1} %", idle.len(), 100.0 * median, 100.0 * max)
        })
        .legend(move |(x, y)| Circle::new((x + 3, y), 6, blue.filled()));
    if !loaded.is_empty() {
        let red = RGBColor(213, 94, 0);
        chart
            .draw_series(loaded.iter().map(|&p| Circle::new(p, 6, red.stroke_width(2))))
            .map_err(e2s)?
            .label(format!(
                "{excluded} under foreign load or speed drift (excluded): median |error| {:.1} %, max {:.1} %",
                100.0 * loaded_median,
                100.0 * loaded_max
            ))
            .legend(move |(x, y)| Circle::new((x + 3, y), 6, red.stroke_width(2)));
    }
    if mismatched > 0 {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(e2s)?
            .label(format!("{mismatched} direct runs emitted other tokens than the shared record"))
            .legend(|(x, y)| EmptyElement::at((x, y)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(190, 190, 190))
        .draw()
        .map_err(e2s)?;
    Ok(())
}
