//! The charts, as SVG (plotters' SVG backend alone, so no font or system
//! libraries: text is left to the SVG viewer): the latency percentile
//! curve, and the run over time (throughput, p50 and p99, open connections
//! and errors, second by second), since a stall shows over time, not in a
//! percentile. How they look (pens, legends, tick labels) is `style`'s.

mod style;

use super::report::{Sample, Summary};
use super::Mode;
use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use style::{draw_line, legend, legend_width, number, Area, FONT};

/// Write the latency percentile chart to `path` and the over-time chart
/// beside it (`NAME-over-time.svg`); the paths written. Connect mode times
/// no message, so it has the over-time chart only.
pub fn write_svg(summary: &Summary, path: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    if summary.mode != Mode::Connect.name() {
        percentiles(summary, path)?;
        written.push(path.to_owned());
    }
    let stem = path
        .file_stem()
        .map_or("load".into(), |s| s.to_string_lossy().into_owned());
    let over_time = path.with_file_name(format!("{stem}-over-time.svg"));
    over_time_chart(summary, &over_time)?;
    written.push(over_time);
    Ok(written)
}

/// What a mode's charts call what they count and what they time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Words {
    /// The throughput's name: `echoes per second`.
    per_second: &'static str,
    /// What the latency is of: `round trip`.
    timed: &'static str,
}

/// The words for `mode` (a [`Mode::name`]); every plural spelled out, as
/// English builds no plural by adding an s (deliveries, echoes).
fn words(mode: &str) -> Words {
    let (per_second, timed) = match mode {
        m if m == Mode::Subscribe.name() => ("deliveries per second", "delivery"),
        m if m == Mode::Churn.name() => ("cycles per second", "cycle"),
        m if m == Mode::Connect.name() => ("connections per second", "connect"),
        _ => ("echoes per second", "round trip"),
    };
    Words { per_second, timed }
}

/// A line to draw: its label, its pen's index and its points.
struct Line {
    label: String,
    pen: usize,
    points: Vec<(f64, f64)>,
}

/// The axes of an x-y chart: their names and tick labels.
struct Axes<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    /// Ticks on x (`None`: plotters' choice).
    x_ticks: Option<usize>,
    x_label: &'a dyn Fn(&f64) -> String,
    /// Ticks on y (`None`: plotters' choice).
    y_ticks: Option<usize>,
}

/// Pixels between a chart's plot and its area's edges.
const MARGIN: i32 = 14;

/// An x-y chart of `lines` in `area`, their legend at the right of the
/// plot (`legend_px` wide), where no data is. The first line is drawn last,
/// so that no other line covers it.
fn xy_chart<Y>(
    area: &Area<'_>,
    x: Range<f64>,
    y: Y,
    axes: &Axes<'_>,
    lines: &[Line],
    legend_px: u32,
) -> Result<(), String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (w, _) = area.dim_in_pixel();
    let (plot, key) = area.split_horizontally(w.saturating_sub(legend_px));
    let mut chart = ChartBuilder::on(&plot)
        .margin(MARGIN as u32)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.15))
        .x_label_formatter(axes.x_label)
        .y_label_formatter(&|v| number(*v));
    if let Some(n) = axes.x_ticks {
        mesh.x_labels(n);
    }
    if let Some(n) = axes.y_ticks {
        mesh.y_labels(n);
    }
    mesh.draw().map_err(|e| err(&e))?;
    for line in lines.iter().rev() {
        draw_line(&mut chart, &line.points, line.pen)?;
    }
    let entries: Vec<(String, usize)> = lines.iter().map(|l| (l.label.clone(), l.pen)).collect();
    legend(&key, MARGIN, &entries)
}

/// The latency percentile chart: latency against percentile on a log scale
/// of 1/(1 - p), so the tail gets as much room as the median.
fn percentiles(summary: &Summary, path: &Path) -> Result<(), String> {
    let (latency, service) = &summary.histograms;
    if latency.is_empty() {
        return Err("no latency samples to plot".into());
    }
    let x_max = tail_nines(latency.len());
    let clip = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> { v.into_iter().map(|(x, y)| (x.min(x_max), y)).collect() };
    let timed = words(summary.mode).timed;
    let mut lines = vec![Line {
        label: format!("{timed} from {}", summary.latency_from),
        pen: 0,
        points: clip(percentile_points(latency)),
    }];
    if summary.latency_from == "schedule" && !service.is_empty() {
        let from = if summary.churn.is_some() { "connect" } else { "send" };
        lines.push(Line {
            label: format!("{timed} from {from}"),
            pen: 1,
            points: clip(percentile_points(service)),
        });
    }
    let y_max = (latency.max() as f64 / 1000.0 * 1.1).max(0.001);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!("{} {}: latency by percentile", summary.mode, summary.url);
    let root = root.titled(&title, (FONT, 20)).map_err(|e| err(&e))?;
    let axes = Axes {
        x_desc: "percentile",
        y_desc: "latency (ms)",
        x_ticks: Some(x_max as usize + 1),
        x_label: &nines_label,
        y_ticks: None,
    };
    let key = legend_width(lines.iter().map(|l| l.label.as_str()));
    xy_chart(&root, 0.0..x_max, 0.0..y_max, &axes, &lines, key)?;
    root.present().map_err(|e| err(&e))
}

/// x = -log10(1 - q): 1 is 90%, 2 is 99%, 3 is 99.9%...
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

/// The percentile an x of [`nines`] stands for, as an axis label: as many
/// decimals as its nines need (99.99%), and none to spare (90%, not 90.0%).
fn nines_label(x: &f64) -> String {
    let decimals = (x.round() as i64 - 2).clamp(0, 6) as usize;
    format!("{:.decimals$}%", 100.0 - 100.0 * 10f64.powf(-x))
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

/// Latencies whose largest is this many times their smallest go on a log
/// scale: on a linear one the smaller (a p50 under a p99 spike) would lie
/// along the axis, out of sight.
const LOG_SPREAD: f64 = 20.0;

/// A y axis's scale and range.
#[derive(Debug, Clone, PartialEq)]
enum Scale {
    Linear(Range<f64>),
    Log(Range<f64>),
}

/// The latency panel's scale: linear from 0, unless the largest latency is
/// [`LOG_SPREAD`] times the smallest or more.
fn latency_scale(lines: &[Line]) -> Scale {
    let values = || lines.iter().flat_map(|l| &l.points).map(|p| p.1);
    let (low, high) = (values().fold(f64::MAX, f64::min), values().fold(0.0, f64::max));
    if low > 0.0 && high / low >= LOG_SPREAD {
        Scale::Log((low / 1.5)..(high * 1.5))
    } else {
        Scale::Linear(0.0..(high * 1.1).max(0.001))
    }
}

/// The run second by second, in panels sharing the time axis: messages per
/// second; p50 and p99 (ms); open connections and errors. Connect mode
/// sends no message: it has the last panel only.
fn over_time_chart(summary: &Summary, path: &Path) -> Result<(), String> {
    let series = &summary.series;
    if series.is_empty() {
        return Err("no second of the run to plot".into());
    }
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let w = words(summary.mode);
    let points = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        series.iter().filter_map(|s| f(s).map(|v| (s.t_s, v))).collect()
    };
    let line = |label: &str, pen, f: &dyn Fn(&Sample) -> Option<f64>| Line {
        label: label.to_owned(),
        pen,
        points: points(f),
    };
    let messages = summary.mode != Mode::Connect.name();
    let throughput = [line(w.per_second, 0, &|s| Some(s.per_second))];
    let latency = [
        line(&format!("{} p50", w.timed), 0, &|s| s.p50_us.map(|v| v as f64 / 1000.0)),
        line(&format!("{} p99", w.timed), 1, &|s| s.p99_us.map(|v| v as f64 / 1000.0)),
    ];
    let errors: u64 = series.iter().map(|s| s.errors).sum();
    let counts = [
        line("open connections", 0, &|s| Some(s.open as f64)),
        line(
            if errors == 0 {
                "errors (none)"
            } else {
                "errors in the second"
            },
            1,
            &|s| Some(s.errors as f64),
        ),
    ];
    // One legend width for every panel, so that their time axes line up.
    let all = throughput.iter().chain(&latency).chain(&counts);
    let key = legend_width(all.map(|l| l.label.as_str()));

    let panels = if messages { 3 } else { 1 };
    let root = SVGBackend::new(path, (960, 40 + 240 * panels)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!("{} {}: over time", summary.mode, summary.url);
    let root = root.titled(&title, (FONT, 20)).map_err(|e| err(&e))?;
    let areas = root.split_evenly((panels as usize, 1));
    let t = 0.0..series.last().map_or(1.0, |s| s.t_s).max(1.0);
    // The time axis is named under the last panel only.
    let axes = |y_desc, last: bool| Axes {
        x_desc: if last { "seconds from the start" } else { "" },
        y_desc,
        x_ticks: None,
        x_label: &|v| number(*v),
        y_ticks: None,
    };
    let top = |lines: &[Line]| {
        let max = lines.iter().flat_map(|l| &l.points).map(|p| p.1).fold(0.0, f64::max);
        // Headroom, and a scale even when every value is 0.
        (max * 1.1).max(1.0)
    };
    if messages {
        xy_chart(
            &areas[0],
            t.clone(),
            0.0..top(&throughput),
            &axes(w.per_second, false),
            &throughput,
            key,
        )?;
        match latency_scale(&latency) {
            Scale::Log(range) => {
                let axes = axes("latency (ms, log scale)", false);
                xy_chart(&areas[1], t.clone(), range.log_scale(), &axes, &latency, key)?
            }
            Scale::Linear(range) => xy_chart(&areas[1], t.clone(), range, &axes("latency (ms)", false), &latency, key)?,
        }
    }
    let last = areas.last().ok_or("no panel")?;
    // Whole numbers: a tick a unit apart at most, never 1.5 connections.
    let counts_top = top(&counts).ceil();
    let count_axes = Axes {
        y_ticks: Some((counts_top as usize + 1).min(11)),
        ..axes("count", true)
    };
    xy_chart(last, t, 0.0..counts_top, &count_axes, &counts, key)?;
    root.present().map_err(|e| err(&e))
}

/// `load compare`'s chart: on the left each transport's delivery latency by
/// percentile (every round's deliveries together; a log scale of ms, as
/// short polls and WebSockets are orders of magnitude apart), on the right
/// its bytes on the wire per delivered message, in and out.
pub fn compare_svg(c: &super::compare::Comparison, path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut lines = Vec::new();
    let mut fewest = u64::MAX;
    let mut slowest = 1;
    for (pen, row) in c.rows.iter().enumerate() {
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
        fewest = fewest.min(merged.len());
        slowest = slowest.max(merged.max());
        // Above the log scale's floor.
        let points = percentile_points(&merged)
            .into_iter()
            .map(|(x, ms)| (x, ms.max(0.001)))
            .collect();
        lines.push(Line {
            label: row.transport.to_owned(),
            pen,
            points,
        });
    }
    if lines.is_empty() {
        return Err("no deliveries to plot".into());
    }
    let x_max = tail_nines(fewest);
    for line in &mut lines {
        for p in &mut line.points {
            p.0 = p.0.min(x_max);
        }
    }
    let y_max = slowest as f64 / 1000.0 * 2.0;
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
    let root = root.titled(&title, (FONT, 20)).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(740);
    let axes = Axes {
        x_desc: "percentile",
        y_desc: "publish to receive (ms, log scale)",
        x_ticks: Some(x_max as usize + 1),
        x_label: &nines_label,
        y_ticks: None,
    };
    let key = legend_width(lines.iter().map(|l| l.label.as_str()));
    // From the decade below the fastest delivery, so that no decade of
    // the plot is empty.
    let fastest = lines
        .iter()
        .flat_map(|l| &l.points)
        .map(|p| p.1)
        .fold(f64::MAX, f64::min);
    let y_min = 10f64.powf(fastest.log10().floor()).max(0.001);
    let y = (y_min..y_max.max(y_min * 10.0)).log_scale();
    xy_chart(&left, 0.0..x_max, y, &axes, &lines, key)?;
    bytes_chart(c, &right)?;
    root.present().map_err(|e| err(&e))
}

/// Bars: for transport i, "in" at [i, i + 0.4] and "out" at [i + 0.4,
/// i + 0.8], each with its figure above it; the legend at the right.
fn bytes_chart(c: &super::compare::Comparison, area: &Area<'_>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    // Colours a greyscale print keeps apart too (L* 34 and 71).
    let (to_client, to_server) = (style::PENS[0].color, style::PENS[3].color);
    let labels = ["server to client", "client to server"];
    let (w, _) = area.dim_in_pixel();
    let key_px = legend_width(labels);
    let (plot, key) = area.split_horizontally(w.saturating_sub(key_px));
    let n = c.rows.len() as f64;
    let b_max = c
        .rows
        .iter()
        .map(|r| r.bytes_in_per_delivery.max(r.bytes_out_per_delivery))
        .fold(1.0, f64::max)
        * 1.15;
    let names: Vec<&str> = c.rows.iter().map(|r| r.transport).collect();
    let mut bars = ChartBuilder::on(&plot)
        .margin(MARGIN as u32)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.1..n, 0.0..b_max)
        .map_err(|e| err(&e))?;
    bars.configure_mesh()
        .disable_x_mesh()
        .x_desc("bytes on the wire per delivered message")
        .y_desc("bytes")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.15))
        .x_labels(c.rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.4).round();
            match names.get(i as usize) {
                Some(name) if i >= 0.0 && (x - 0.4 - i).abs() < 0.26 => name.to_string(),
                _ => String::new(),
            }
        })
        .y_label_formatter(&|v| number(*v))
        .draw()
        .map_err(|e| err(&e))?;
    let figure = TextStyle::from((FONT, 12).into_font()).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Bottom,
    ));
    for (i, r) in c.rows.iter().enumerate() {
        let x = i as f64;
        for (x0, h, color) in [
            (x, r.bytes_in_per_delivery, to_client),
            (x + 0.4, r.bytes_out_per_delivery, to_server),
        ] {
            bars.draw_series([Rectangle::new([(x0, 0.0), (x0 + 0.4, h)], color.filled())])
                .map_err(|e| err(&e))?;
            bars.draw_series([Text::new(number(h.round()), (x0 + 0.2, h), figure.clone())])
                .map_err(|e| err(&e))?;
        }
    }
    style::bar_legend(&key, MARGIN, &[(labels[0], to_client), (labels[1], to_server)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_has_its_plural_spelled_out() {
        let per_second = |m: Mode| words(m.name()).per_second;
        assert_eq!(per_second(Mode::Echo), "echoes per second");
        assert_eq!(per_second(Mode::Subscribe), "deliveries per second");
        assert_eq!(per_second(Mode::Churn), "cycles per second");
        assert_eq!(per_second(Mode::Connect), "connections per second");
        assert_eq!(words(Mode::Echo.name()).timed, "round trip");
    }

    fn line(label: &str, pen: usize, ys: &[f64]) -> Line {
        Line {
            label: label.into(),
            pen,
            points: ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
        }
    }

    /// A p50 of 0.05 ms under a p99 spike of 30 ms would be a line along
    /// the axis on a linear scale; on a log scale it has a decade of room.
    #[test]
    fn the_latency_panel_goes_log_when_p99_dwarfs_p50() {
        let spike = [line("p50", 0, &[0.05, 0.06, 0.05]), line("p99", 1, &[0.3, 30.0, 0.4])];
        assert!(matches!(latency_scale(&spike), Scale::Log(r) if r.start < 0.05 && r.end > 30.0));
        let calm = [line("p50", 0, &[0.2, 0.25]), line("p99", 1, &[0.9, 1.1])];
        assert!(matches!(latency_scale(&calm), Scale::Linear(r) if r.start == 0.0 && r.end > 1.1));
    }

    /// The legend is beside the plot: no data line reaches its column.
    #[test]
    fn the_legend_is_drawn_beside_the_data_not_over_it() {
        let mut svg = String::new();
        let lines = [
            line("first line", 0, &[0.0, 5.0, 10.0]),
            line("second line", 1, &[10.0, 5.0, 0.0]),
        ];
        let key = legend_width(["first line", "second line"]);
        {
            let root = SVGBackend::with_string(&mut svg, (600, 300)).into_drawing_area();
            let axes = Axes {
                x_desc: "x",
                y_desc: "y",
                x_ticks: None,
                x_label: &|v| number(*v),
                y_ticks: None,
            };
            xy_chart(&root, 0.0..2.0, 0.0..10.0, &axes, &lines, key).unwrap();
            root.present().unwrap();
        }
        let column = (600 - key) as f64;
        let attr = |tag: &str, name: &str| -> Option<String> {
            let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            Some(tag[at..].split('"').next()?.to_owned())
        };
        let mut data_xs = Vec::new();
        for tag in svg.split('<').filter(|t| t.starts_with("polyline")) {
            let points: Vec<f64> = attr(tag, "points")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.split(',').next()?.parse().ok())
                .collect();
            // The data: the three-point lines (a legend sample has two).
            if points.len() >= 3 {
                data_xs.extend(points);
            }
        }
        assert!(!data_xs.is_empty(), "{svg}");
        assert!(data_xs.iter().all(|&x| x < column), "{data_xs:?} against {column}");
        for label in ["first line", "second line"] {
            let tag = svg
                .split('<')
                .find(|t| t.starts_with("text") && t.contains(label))
                .unwrap();
            let x: f64 = attr(tag, "x").unwrap().parse().unwrap();
            assert!(x > column, "{label} at {x}, the column at {column}");
        }
    }

    #[test]
    fn percentile_ticks_have_the_decimals_their_nines_need() {
        let labels: Vec<String> = (0..=5).map(|x| nines_label(&(x as f64))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }
}
