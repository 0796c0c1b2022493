//! How the charts look, apart from what they show: the pens, told apart
//! by colour, lightness, dash and marker (so that a greyscale print or a
//! colour-blind reader still tells the lines apart); the legend, beside
//! the plot where it cannot cover a line; and tick labels written as a
//! person writes numbers (12,000 and 0.5, not 12000.0 and 0.50).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A drawing area of an SVG chart, in pixels.
pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The font of every label.
pub(super) const FONT: &str = "sans-serif";

/// A line's dash pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dash {
    Solid,
    Dashed,
    Dotted,
    Long,
}

impl Dash {
    /// Dash and gap, pixels; `None` for a solid line.
    fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((8, 5)),
            Dash::Dotted => Some((2, 4)),
            Dash::Long => Some((16, 6)),
        }
    }
}

/// The shape marking a line every few points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

/// How one line is drawn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pen {
    pub color: RGBColor,
    pub dash: Dash,
    pub marker: Marker,
}

/// The pens, in the order lines get them. The colours differ in hue and
/// in lightness (CIE L* about 34, 54, 0 and 71, see the test), and each
/// pen has its own dash and marker besides.
pub(super) const PENS: [Pen; 4] = [
    Pen {
        color: RGBColor(0x1f, 0x4e, 0x9a),
        dash: Dash::Solid,
        marker: Marker::Circle,
    },
    Pen {
        color: RGBColor(0xd5, 0x5e, 0x00),
        dash: Dash::Dashed,
        marker: Marker::Triangle,
    },
    Pen {
        color: RGBColor(0x00, 0x00, 0x00),
        dash: Dash::Dotted,
        marker: Marker::Square,
    },
    Pen {
        color: RGBColor(0xe6, 0x9f, 0x00),
        dash: Dash::Long,
        marker: Marker::Cross,
    },
];

/// The `n`th line's pen.
pub(super) fn pen(n: usize) -> Pen {
    PENS[n % PENS.len()]
}

/// Markers on a line at most: enough to tell the line by, few enough not
/// to hide its shape.
const MARKERS: usize = 12;

const LINE_WIDTH: u32 = 2;
const MARKER_SIZE: i32 = 4;

/// Draw the `n`th line through `points`: its pen's dashes, and a marker
/// every few points (shifted by `n`, so that two lines that meet do not
/// put their markers on the same points).
pub(super) fn draw_line<CT>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, CT>,
    points: &[(f64, f64)],
    n: usize,
) -> Result<(), String>
where
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let pen = pen(n);
    let stroke = pen.color.stroke_width(LINE_WIDTH);
    match pen.dash.pattern() {
        None => chart.draw_series(LineSeries::new(points.iter().copied(), stroke)),
        Some((dash, gap)) => chart.draw_series(DashedLineSeries::new(points.iter().copied(), dash, gap, stroke)),
    }
    .map_err(|e| err(&e))?;
    let step = points.len().div_ceil(MARKERS).max(1);
    let shift = (n % PENS.len()) * step / PENS.len();
    let at = points.iter().skip(shift).step_by(step).copied();
    let fill = pen.color.filled();
    match pen.marker {
        Marker::Circle => chart
            .draw_series(at.map(|p| Circle::new(p, MARKER_SIZE, fill)))
            .map(|_| ()),
        Marker::Triangle => chart
            .draw_series(at.map(|p| TriangleMarker::new(p, MARKER_SIZE + 1, fill)))
            .map(|_| ()),
        Marker::Square => chart
            .draw_series(at.map(|p| {
                let s = MARKER_SIZE - 1;
                EmptyElement::at(p) + Rectangle::new([(-s, -s), (s, s)], fill)
            }))
            .map(|_| ()),
        Marker::Cross => chart
            .draw_series(at.map(|p| Cross::new(p, MARKER_SIZE, stroke)))
            .map(|_| ()),
    }
    .map_err(|e| err(&e))
}

/// Pixels a legend row takes.
const ROW: i32 = 22;

/// The width a legend of `labels` needs: a pen's sample and the longest
/// label (about 7.5 px a character at 14 px).
pub(super) fn legend_width<'a>(labels: impl IntoIterator<Item = &'a str>) -> u32 {
    let chars = labels.into_iter().map(|l| l.chars().count()).max().unwrap_or(0);
    (56 + chars * 15 / 2) as u32
}

/// A legend in `area`, which is beside the plot (never over it): a row
/// from `top` down per `(label, n)`, the `n`th pen's sample line and marker
/// then the label.
pub(super) fn legend(area: &Area<'_>, top: i32, entries: &[(String, usize)]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let text = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, n)) in entries.iter().enumerate() {
        let y = top + ROW / 2 + i as i32 * ROW;
        let (x0, x1) = (10, 44);
        let pen = pen(*n);
        let stroke = pen.color.stroke_width(LINE_WIDTH);
        match pen.dash.pattern() {
            None => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], stroke)),
            Some((dash, gap)) => area.draw(&plotters::element::DashedPathElement::new(
                vec![(x0, y), (x1, y)],
                dash,
                gap,
                stroke,
            )),
        }
        .map_err(|e| err(&e))?;
        swatch_marker(area, pen, ((x0 + x1) / 2, y))?;
        area.draw(&Text::new(label.clone(), (x1 + 8, y), text.clone()))
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// A pen's marker at a pixel of `area`.
fn swatch_marker(area: &Area<'_>, pen: Pen, at: (i32, i32)) -> Result<(), String> {
    let fill = pen.color.filled();
    let s = MARKER_SIZE;
    match pen.marker {
        Marker::Circle => area.draw(&Circle::new(at, s, fill)),
        Marker::Triangle => area.draw(&TriangleMarker::new(at, s + 1, fill)),
        Marker::Square => area.draw(&Rectangle::new(
            [(at.0 - s + 1, at.1 - s + 1), (at.0 + s - 1, at.1 + s - 1)],
            fill,
        )),
        Marker::Cross => area.draw(&Cross::new(at, s, pen.color.stroke_width(LINE_WIDTH))),
    }
    .map_err(|e| e.to_string())
}

/// A filled swatch for a bar series' legend row, as [`legend`] lays out.
pub(super) fn bar_legend(area: &Area<'_>, top: i32, entries: &[(&str, RGBColor)]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let text = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = top + ROW / 2 + i as i32 * ROW;
        area.draw(&Rectangle::new([(18, y - 6), (36, y + 6)], color.filled()))
            .map_err(|e| err(&e))?;
        area.draw(&Text::new(label.to_string(), (52, y), text.clone()))
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// A number as a person writes it on an axis: about four significant
/// digits with no trailing zeros (2, 0.5, 0.125), thousands grouped
/// (12,000), millions as 1.2M.
pub(super) fn number(v: f64) -> String {
    let a = v.abs();
    if a < 1e-9 {
        return "0".into();
    }
    if a >= 1e6 {
        return format!("{}M", trim_zeros(format!("{:.1}", v / 1e6)));
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let text = trim_zeros(format!("{v:.decimals$}"));
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `2.500` is `2.5`, `2.000` is `2`.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_numbers_are_written() {
        for (v, text) in [
            (0.0, "0"),
            (12000.0, "12,000"),
            (2000.0, "2,000"),
            (999.0, "999"),
            (1_234_567.0, "1.2M"),
            (3_000_000.0, "3M"),
            (2.0, "2"),
            (0.5, "0.5"),
            (0.30000000000000004, "0.3"),
            (1.25, "1.25"),
            (0.001, "0.001"),
            (0.125, "0.125"),
            (12.5, "12.5"),
            (-1500.0, "-1,500"),
            (1e-12, "0"),
        ] {
            assert_eq!(number(v), text, "{v}");
        }
    }

    /// CIE L* of an sRGB colour: the lightness a greyscale print keeps.
    fn lightness(c: RGBColor) -> f64 {
        let lin = |u: u8| {
            let u = f64::from(u) / 255.0;
            if u <= 0.04045 {
                u / 12.92
            } else {
                ((u + 0.055) / 1.055).powf(2.4)
            }
        };
        let y = 0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2);
        if y > 0.008856 {
            116.0 * y.cbrt() - 16.0
        } else {
            903.3 * y
        }
    }

    /// In greyscale the lines still differ: in lightness by at least 15
    /// L* (a step a reader sees), and each in dash and marker too.
    #[test]
    fn the_pens_differ_in_lightness_dash_and_marker() {
        for (i, a) in PENS.iter().enumerate() {
            for b in &PENS[i + 1..] {
                let (la, lb) = (lightness(a.color), lightness(b.color));
                assert!((la - lb).abs() >= 15.0, "{a:?} L* {la:.0} against {b:?} L* {lb:.0}");
                assert_ne!(a.dash, b.dash);
                assert_ne!(a.marker, b.marker);
            }
            // And each is dark enough to see on white.
            assert!(lightness(a.color) < 75.0, "{a:?}");
        }
    }
}
