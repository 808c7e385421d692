//! Charts as inline SVG, drawn with `plotters`: lines or stacked areas over the recording's
//! time, bars for categories and histograms, dots for events. Each is wrapped in
//! `<figure class="chart" id="chart-{id}">` with a caption.
//!
//! plotters writes a standalone SVG; inline in HTML the `xmlns` attribute is unneeded (the
//! parser puts `<svg>` in the SVG namespace) and is removed, so no URL of any kind is left in
//! the page. Timelines longer than [`MAX_POINTS`] are downsampled first, keeping the busiest
//! point of each stretch, so a long recording does not make a heavy chart.

use std::fmt::Write as _;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::format::three_digits;
use super::html::text;
use super::ReportError;

/// Most points a timeline chart draws per series.
pub(crate) const MAX_POINTS: usize = 600;

/// Chart size in SVG pixels (the page scales it to its column).
const WIDTH: u32 = 960;
const HEIGHT: u32 = 300;
const FONT: &str = "sans-serif";

/// A colour, as the page's palette gives it.
pub(crate) type Colour = RGBColor;

/// One named series of `(seconds, value)` points.
pub(crate) struct Series {
    /// Its legend entry (plotters escapes it).
    pub(crate) name: String,
    /// Its colour.
    pub(crate) colour: Colour,
    /// Its points, in time order.
    pub(crate) points: Vec<(f64, f64)>,
}

/// How a value axis prints its ticks.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    /// Plain numbers.
    Count,
    /// Bytes, in binary units.
    Bytes,
    /// Nanoseconds, in human units.
    Nanoseconds,
}

impl Unit {
    /// The divisor and suffix that print values up to `max` as round numbers: bytes in the
    /// binary unit of `max`, nanoseconds in the time unit of `max`, so ticks read `2 MiB`,
    /// `4 MiB` rather than `1.91 MiB`.
    fn scale(self, max: f64) -> (f64, &'static str) {
        const BYTES: [(f64, &str); 4] = [
            (1.0, "B"),
            (1024.0, "KiB"),
            (1024.0 * 1024.0, "MiB"),
            (1024.0 * 1024.0 * 1024.0, "GiB"),
        ];
        const TIMES: [(f64, &str); 6] = [
            (1.0, "ns"),
            (1e3, "µs"),
            (1e6, "ms"),
            (1e9, "s"),
            (60e9, "min"),
            (3600e9, "h"),
        ];
        let table: &[(f64, &'static str)] = match self {
            Unit::Count => return (1.0, ""),
            Unit::Bytes => &BYTES,
            Unit::Nanoseconds => &TIMES,
        };
        table
            .iter()
            .rev()
            .find(|&&(divisor, _)| max >= divisor)
            .or(table.first())
            .copied()
            .unwrap_or((1.0, ""))
    }
}

/// The value axis: its top, in scaled units, and how ticks print.
struct Axis {
    divisor: f64,
    suffix: &'static str,
    max: f64,
}

impl Axis {
    /// The axis for values up to `max` in `unit`.
    fn new(unit: Unit, max: f64) -> Axis {
        let (divisor, suffix) = unit.scale(max);
        Axis {
            divisor,
            suffix,
            max: nice_max(max / divisor),
        }
    }

    fn tick(&self, value: f64) -> String {
        if self.suffix.is_empty() || value == 0.0 {
            three_digits(value)
        } else {
            format!("{} {}", three_digits(value), self.suffix)
        }
    }
}

/// A timeline chart of `series` (stacked areas when `stacked`, else lines), values in `unit`.
pub(crate) fn time_chart(
    id: &str,
    caption: &str,
    unit: Unit,
    mut series: Vec<Series>,
    stacked: bool,
) -> Result<String, ReportError> {
    downsample(&mut series, MAX_POINTS);
    if stacked {
        stack(&mut series);
    }
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let axis = Axis::new(
        unit,
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max),
    );
    for s in &mut series {
        for point in &mut s.points {
            point.1 /= axis.divisor;
        }
    }
    let svg = draw(id, |root| {
        let mut chart = time_frame(root, x_max, &axis)?;
        // Stacked areas are drawn top layer first, so each lower layer paints over it.
        let order: Vec<&Series> = if stacked {
            series.iter().rev().collect()
        } else {
            series.iter().collect()
        };
        for s in order {
            let colour = s.colour;
            if stacked {
                chart
                    .draw_series(
                        AreaSeries::new(s.points.iter().copied(), 0.0, colour.mix(0.85))
                            .border_style(colour.stroke_width(1)),
                    )?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        colour.stroke_width(2),
                    ))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 2), (x + 12, y + 2)], colour.filled())
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 204, 210))
            .draw()?;
        Ok(())
    })?;
    Ok(figure(id, caption, &svg))
}

/// A chart of dots at `(seconds, value)`: events such as GC pauses.
pub(crate) fn dot_chart(
    id: &str,
    caption: &str,
    unit: Unit,
    colour: Colour,
    x_max: f64,
    points: &[(f64, f64)],
) -> Result<String, ReportError> {
    let x_max = x_max.max(1e-3);
    let axis = Axis::new(unit, points.iter().map(|p| p.1).fold(0.0f64, f64::max));
    let svg = draw(id, |root| {
        let mut chart = time_frame(root, x_max, &axis)?;
        chart.draw_series(
            points
                .iter()
                .take(MAX_POINTS * 2)
                .map(|&(x, y)| Circle::new((x, y / axis.divisor), 3, colour.filled())),
        )?;
        Ok(())
    })?;
    Ok(figure(id, caption, &svg))
}

/// One bar of a [`bar_chart`].
pub(crate) struct Bar {
    /// Its label under the axis (plotters escapes it).
    pub(crate) label: String,
    /// Its height.
    pub(crate) value: f64,
    /// Its colour.
    pub(crate) colour: Colour,
}

/// A bar chart, one bar per category, values in `unit`.
pub(crate) fn bar_chart(
    id: &str,
    caption: &str,
    x_desc: &str,
    unit: Unit,
    bars: &[Bar],
) -> Result<String, ReportError> {
    let n = bars.len().max(1);
    let axis = Axis::new(unit, bars.iter().map(|b| b.value).fold(0.0f64, f64::max));
    let y_max = axis.max;
    // plotters' segments of `0..k` are k + 1 (its discrete ranges include their end), and a
    // range of one value draws a bar of negative width: one bar gets an empty neighbour.
    let last = if n > 1 { n - 1 } else { 1 };
    // Every label when they fit, else every other one.
    let step = if n > 14 { 2 } else { 1 };
    let svg = draw(id, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d((0..last).into_segmented(), 0.0..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(230, 232, 236))
            .axis_style(RGBColor(160, 165, 175))
            .label_style((FONT, 14))
            .x_desc(x_desc)
            .x_labels(n + 1)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if i % step == 0 => {
                    bars.get(*i).map(|b| b.label.clone()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .y_label_formatter(&|v| axis.tick(*v))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), bar.value / axis.divisor),
                ],
                bar.colour.filled(),
            );
            rect.set_margin(0, 0, 4, 4);
            rect
        }))?;
        Ok(())
    })?;
    Ok(figure(id, caption, &svg))
}

/// Runs `paint` on an SVG drawing area and returns the SVG without its `xmlns`.
/// The frame of a chart over the recording's time: seconds since the start across, `axis`
/// up, with the report's grid and labels.
fn time_frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    x_max: f64,
    axis: &Axis,
) -> Result<
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    DrawingAreaErrorKind<std::io::Error>,
> {
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_max, 0.0..axis.max)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(230, 232, 236))
        .axis_style(RGBColor(160, 165, 175))
        .label_style((FONT, 15))
        .x_desc("seconds since the start")
        .x_label_formatter(&|v| three_digits(*v))
        .y_label_formatter(&|v| axis.tick(*v))
        .draw()?;
    Ok(chart)
}

fn draw<F>(id: &str, paint: F) -> Result<String, ReportError>
where
    F: FnOnce(
        &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .and_then(|()| paint(&root))
            .and_then(|()| root.present());
        result.map_err(|error| ReportError::Chart {
            chart: id.to_string(),
            message: error.to_string(),
        })?;
    }
    Ok(strip_namespaces(&svg))
}

/// `svg` without `xmlns` / `xmlns:*` attributes (the only URLs plotters writes).
pub(crate) fn strip_namespaces(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(at) = rest.find(" xmlns") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        // Skip `xmlns...="..."`.
        let end = after
            .find('"')
            .and_then(|open| after[open + 1..].find('"').map(|close| open + close + 2));
        match end {
            Some(end) => rest = &after[end..],
            None => {
                rest = after;
                out.push(' ');
            }
        }
    }
    out.push_str(rest);
    out
}

/// The figure around a chart's SVG.
fn figure(id: &str, caption: &str, svg: &str) -> String {
    let mut out = String::with_capacity(svg.len() + 200);
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"chart-{}\">{}<figcaption>{}</figcaption></figure>",
        text(id),
        svg.trim(),
        text(caption)
    );
    out
}

/// Keeps at most `max` points in every series (all of the same length and times): of each
/// stretch of consecutive points, the one where the series sum is highest.
fn downsample(series: &mut [Series], max: usize) {
    let len = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    if len <= max || max == 0 {
        return;
    }
    let chunk = len.div_ceil(max);
    let mut keep = Vec::with_capacity(max);
    let mut start = 0;
    while start < len {
        let end = (start + chunk).min(len);
        let sum_at = |i: usize| -> f64 {
            series
                .iter()
                .map(|s| s.points.get(i).map_or(0.0, |p| p.1))
                .sum()
        };
        let best = (start..end)
            .max_by(|&a, &b| sum_at(a).total_cmp(&sum_at(b)))
            .unwrap_or(start);
        keep.push(best);
        start = end;
    }
    for s in series.iter_mut() {
        s.points = keep
            .iter()
            .filter_map(|&i| s.points.get(i).copied())
            .collect();
    }
}

/// Turns each series into the running sum of itself and those before it.
fn stack(series: &mut [Series]) {
    for i in 1..series.len() {
        let (below, rest) = series.split_at_mut(i);
        let previous = &below[i - 1].points;
        for (point, under) in rest[0].points.iter_mut().zip(previous) {
            point.1 += under.1;
        }
    }
}

/// A round upper bound a little above `max` (at least 1).
fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let padded = max * 1.08;
    let magnitude = 10f64.powf(padded.log10().floor());
    for step in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if step * magnitude >= padded {
            return step * magnitude;
        }
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_inline_svg_without_urls_and_downsampled() {
        let points: Vec<(f64, f64)> = (0..5000)
            .map(|i| (i as f64 * 0.01, (i % 97) as f64))
            .collect();
        let series = vec![
            Series {
                name: "a<b".to_string(),
                colour: RGBColor(10, 20, 30),
                points: points.clone(),
            },
            Series {
                name: "b".to_string(),
                colour: RGBColor(40, 50, 60),
                points,
            },
        ];
        let html = time_chart("t", "caption & more", Unit::Count, series, true)
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(
            html.starts_with("<figure class=\"chart\" id=\"chart-t\"><svg"),
            "{}",
            &html[..200]
        );
        assert!(!html.contains("http"), "a URL is left");
        assert!(!html.contains("xmlns"), "a namespace is left");
        assert!(html.contains("a&lt;b"), "legend text is escaped");
        assert!(html.contains("caption &amp; more"));
        assert!(html.len() < 60_000, "{} bytes", html.len());
    }

    #[test]
    fn namespaces_are_stripped_and_the_rest_kept() {
        assert_eq!(
            strip_namespaces(
                r#"<svg width="1" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" height="2">"#
            ),
            r#"<svg width="1" height="2">"#
        );
    }
}
