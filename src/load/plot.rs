//! The charts, as SVG (plotters' SVG backend alone, so no font or system
//! libraries: text is left to the SVG viewer): the latency percentile
//! curve, and the run over time (throughput, p50 and p99, open connections
//! and errors, second by second), since a stall shows over time, not in a
//! percentile.

use super::report::{Sample, Summary};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};

/// Write the latency percentile chart to `path`, and the over-time chart
/// beside it (`NAME-over-time.svg`), whose path is returned.
pub fn write_svg(summary: &Summary, path: &Path) -> Result<PathBuf, String> {
    percentiles(summary, path)?;
    let stem = path
        .file_stem()
        .map_or("load".into(), |s| s.to_string_lossy().into_owned());
    let over_time = path.with_file_name(format!("{stem}-over-time.svg"));
    over_time_chart(summary, &over_time)?;
    Ok(over_time)
}

/// What the latency is of: a delivery (subscribe mode), a cycle (churn),
/// a round trip (echo).
fn measured(summary: &Summary) -> &'static str {
    match (&summary.subscribe, &summary.churn) {
        (Some(_), _) => "delivery",
        (_, Some(_)) => "cycle",
        _ => "round trip",
    }
}

/// The latency percentile chart: latency against percentile on a log scale
/// of 1/(1 - p), so the tail gets as much room as the median.
fn percentiles(summary: &Summary, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let (latency, service) = &summary.histograms;
    if latency.is_empty() {
        return Err("no latency samples to plot".into());
    }
    let points = percentile_points;
    let x_max = tail_nines(latency.len());
    let clip = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> { v.into_iter().map(|(x, y)| (x.min(x_max), y)).collect() };
    let lat = clip(points(latency));
    let y_max = (latency.max() as f64 / 1000.0 * 1.1).max(0.001);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!("{} {}: latency by percentile", summary.mode, summary.url);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&nines_label)
        .draw()
        .map_err(|e| err(&e))?;
    let label = format!("{} from {}", measured(summary), summary.latency_from);
    chart
        .draw_series(LineSeries::new(lat, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label(label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if summary.latency_from == "schedule" && !service.is_empty() {
        chart
            .draw_series(LineSeries::new(clip(points(service)), RED.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!(
                "{} from {}",
                measured(summary),
                if summary.churn.is_some() { "connect" } else { "send" }
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// x = -log10(1 - q): 1 is 90%, 2 is 99%, 3 is 99.9%...
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

/// The percentile an x of [`nines`] stands for, as an axis label.
fn nines_label(x: &f64) -> String {
    format!("{}%", 100.0 - 100.0 * 10f64.powf(-x))
}

/// A histogram's latency curve: (nines of the percentile, milliseconds).
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    h.iter_quantiles(5)
        .map(|v| (nines(v.quantile_iterated_to()), v.value_iterated_to() as f64 / 1000.0))
        .collect()
}

/// The x axis's end for `samples` samples: the tail they can tell (1,000
/// samples say nothing past 99.9%), less a hair, so that 1e-5 rounding up
/// past 5 does not add a decade.
fn tail_nines(samples: u64) -> f64 {
    (nines(1.0 - 1.0 / samples as f64) - 1e-6).ceil().clamp(1.0, 6.0)
}

/// A line of the over-time chart: its label, colour and value per second.
type Line<'a> = (&'a str, plotters::style::RGBColor, &'a dyn Fn(&Sample) -> Option<f64>);

/// The run second by second, in three panels sharing the time axis:
/// messages per second; p50 and p99 (ms); open connections and errors.
fn over_time_chart(summary: &Summary, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let series = &summary.series;
    if series.is_empty() {
        return Err("no second of the run to plot".into());
    }
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let t_max = series.last().map_or(1.0, |s| s.t_s).max(1.0);
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!("{} {}: over time", summary.mode, summary.url);
    let root = root.titled(&title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    let panels = root.split_evenly((3, 1));
    let max_of = |f: &dyn Fn(&Sample) -> f64| series.iter().map(f).fold(0.0, f64::max) * 1.1 + 1e-9;
    let line = |area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
                y_desc: &str,
                lines: &[Line<'_>]|
     -> Result<(), String> {
        let y_max = lines
            .iter()
            .map(|(_, _, f)| max_of(&|s| f(s).unwrap_or(0.0)))
            .fold(1e-9, f64::max);
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(&e))?;
        for (label, color, f) in lines {
            let points: Vec<(f64, f64)> = series.iter().filter_map(|s| f(s).map(|v| (s.t_s, v))).collect();
            let color = *color;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&e))
    };
    let what = measured(summary);
    let per_second = format!("{what}s per second");
    line(
        &panels[0],
        "per second",
        &[(per_second.as_str(), BLUE, &|s| Some(s.per_second))],
    )?;
    let p50 = format!("{what} p50 (ms)");
    let p99 = format!("{what} p99 (ms)");
    line(
        &panels[1],
        "latency (ms)",
        &[
            (p50.as_str(), GREEN, &|s| s.p50_us.map(|v| v as f64 / 1000.0)),
            (p99.as_str(), RED, &|s| s.p99_us.map(|v| v as f64 / 1000.0)),
        ],
    )?;
    line(
        &panels[2],
        "count",
        &[
            ("open connections", BLACK, &|s| Some(s.open as f64)),
            ("errors in the second", MAGENTA, &|s| Some(s.errors as f64)),
        ],
    )?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// `load compare`'s chart: on the left each transport's delivery latency by
/// percentile (every round's deliveries together; a log scale of ms, as
/// short polls and WebSockets are orders of magnitude apart), on the right
/// its bytes on the wire per delivered message, in and out.
pub fn compare_svg(c: &super::compare::Comparison, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let colors = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];
    let mut curves = Vec::new();
    for row in &c.rows {
        let mut merged = super::stats::histogram();
        for run in c.runs.iter().filter(|r| {
            r.subscribe
                .as_ref()
                .is_some_and(|s| s.transport.transport == row.transport)
        }) {
            let _ = merged.add(&run.histograms.0);
        }
        if merged.is_empty() {
            continue;
        }
        // Above the log scale's floor.
        let points: Vec<(f64, f64)> = percentile_points(&merged)
            .into_iter()
            .map(|(x, ms)| (x, ms.max(0.001)))
            .collect();
        curves.push((row.transport, merged.len(), merged.max(), points));
    }
    if curves.is_empty() {
        return Err("no deliveries to plot".into());
    }
    let fewest = curves.iter().map(|c| c.1).min().unwrap_or(1);
    let x_max = tail_nines(fewest);
    let y_max = curves.iter().map(|c| c.2).max().unwrap_or(1) as f64 / 1000.0 * 2.0;
    let root = SVGBackend::new(path, (1280, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "{} subscribers, {} msg/s of {} B {}: the transports compared ({})",
        c.subscribers,
        c.rate.map_or("unpaced".into(), |r| r.to_string()),
        c.size,
        c.kind,
        c.url
    );
    let root = root.titled(&title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(760);
    let mut chart = ChartBuilder::on(&left)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (0.001..y_max.max(0.01)).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("publish to receive (ms, log)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&nines_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, _, _, points)) in curves.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        let points: Vec<(f64, f64)> = points.into_iter().map(|(x, y)| (x.min(x_max), y)).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    // Bars: for transport i, "in" at [i, i + 0.4] and "out" at [i + 0.4, i + 0.8].
    let n = c.rows.len() as f64;
    let b_max = c
        .rows
        .iter()
        .map(|r| r.bytes_in_per_delivery.max(r.bytes_out_per_delivery))
        .fold(1.0, f64::max)
        * 1.15;
    let names: Vec<&str> = c.rows.iter().map(|r| r.transport).collect();
    let mut bars = ChartBuilder::on(&right)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.1..n, 0.0..b_max)
        .map_err(|e| err(&e))?;
    bars.configure_mesh()
        .disable_x_mesh()
        .x_desc("bytes on the wire per delivered message")
        .y_desc("bytes")
        .x_labels(c.rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.4).round();
            match names.get(i as usize) {
                Some(name) if i >= 0.0 && (x - 0.4 - i).abs() < 0.26 => name.to_string(),
                _ => String::new(),
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    let rect = |x0: f64, x1: f64, h: f64, color: RGBColor| Rectangle::new([(x0, 0.0), (x1, h)], color.filled());
    bars.draw_series(
        c.rows
            .iter()
            .enumerate()
            .map(|(i, r)| rect(i as f64, i as f64 + 0.4, r.bytes_in_per_delivery, BLUE)),
    )
    .map_err(|e| err(&e))?
    .label("server to client")
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BLUE.filled()));
    bars.draw_series(
        c.rows
            .iter()
            .enumerate()
            .map(|(i, r)| rect(i as f64 + 0.4, i as f64 + 0.8, r.bytes_out_per_delivery, RED)),
    )
    .map_err(|e| err(&e))?
    .label("client to server")
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RED.filled()));
    bars.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
