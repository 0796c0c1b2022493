//! The latency percentile chart, as SVG (plotters' SVG backend alone, so
//! no font or system libraries: text is left to the SVG viewer).

use super::report::Summary;
use hdrhistogram::Histogram;
use std::path::Path;

/// Write the latency percentile chart as SVG: latency against percentile on
/// a log scale of 1/(1 - p), so the tail gets as much room as the median.
pub fn write_svg(summary: &Summary, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let (latency, service) = &summary.histograms;
    if latency.is_empty() {
        return Err("no latency samples to plot".into());
    }
    // x = -log10(1 - q): 1 is 90%, 2 is 99%, 3 is 99.9%...
    let nines = |q: f64| -(1.0 - q).max(1e-6).log10();
    let points = |h: &Histogram<u64>| -> Vec<(f64, f64)> {
        h.iter_quantiles(5)
            .map(|v| (nines(v.quantile_iterated_to()), v.value_iterated_to() as f64 / 1000.0))
            .collect()
    };
    // The tail a sample count can tell: 1,000 samples say nothing past 99.9%.
    // (Less a hair, so that 1e-5 rounding up past 5 does not add a decade.)
    let x_max = (nines(1.0 - 1.0 / latency.len() as f64) - 1e-6).ceil().clamp(1.0, 6.0);
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
        .x_label_formatter(&|x| format!("{}%", 100.0 - 100.0 * 10f64.powf(-x)))
        .draw()
        .map_err(|e| err(&e))?;
    let what = if summary.churn.is_some() { "cycle" } else { "round trip" };
    let label = format!("{what} from {}", summary.latency_from);
    chart
        .draw_series(LineSeries::new(lat, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label(label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if summary.latency_from == "schedule" && !service.is_empty() {
        chart
            .draw_series(LineSeries::new(clip(points(service)), RED.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(if summary.churn.is_some() {
                "cycle from connect"
            } else {
                "round trip from send"
            })
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
