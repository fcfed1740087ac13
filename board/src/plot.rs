//! Roofline charts as SVG: memory and compute roofs on log-log axes, with measured points.
//!
//! [`roofline_svg`] returns the whole document as a string. Text is laid out from a size
//! estimate, so no font has to be installed where the chart is made; the viewer's
//! `sans-serif` font draws it.

use std::f64::consts::FRAC_PI_2;
use std::fmt::Write as _;
use std::ops::Range;

use anyhow::{anyhow, bail, Result};
use ktune_core::probe::{at_threads, Level};
use ktune_core::ProbeResult;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A memory roof: a bandwidth in GB/s (1e9 bytes/s) with its name, e.g. "L1 read, 2 threads".
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRoof {
    /// What the roof is, shown along its line.
    pub name: String,
    /// The bandwidth in GB/s.
    pub gbs: f64,
}

/// A compute roof: a peak in GFLOP/s (or GOP/s) with its name, e.g. "fma avx512, 2 threads".
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeRoof {
    /// What the roof is, shown along its line.
    pub name: String,
    /// The peak in GFLOP/s.
    pub gflops: f64,
}

/// A measured result: arithmetic intensity in FLOP/byte, throughput in GFLOP/s, its label
/// (kernel and shape), and whether it is over its own ceiling (drawn distinctly, e.g. red).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The kernel and shape, shown next to the marker or in the key.
    pub label: String,
    /// Arithmetic intensity in FLOP/byte.
    pub intensity: f64,
    /// Throughput in GFLOP/s.
    pub gflops: f64,
    /// Whether the result is over its own ceiling (drawn as a red triangle).
    pub over: bool,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 650;
/// Width of the panel that lists numbered points, when there is one.
const KEY_WIDTH: u32 = 300;
/// Up to this many points, each with a short label, are labelled in place; more are numbered.
const MAX_DIRECT_LABELS: usize = 6;
const MAX_DIRECT_LABEL_CHARS: usize = 32;
const MAX_ROOF_LABEL_CHARS: usize = 56;
const MAX_KEY_LABEL_CHARS: usize = 44;
const LABEL_PX: f64 = 12.0;

const MEMORY_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(23, 190, 207),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];
const COMPUTE_COLORS: [RGBColor; 4] = [
    RGBColor(255, 127, 14),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(80, 80, 80),
];
const POINT_COLOR: RGBColor = RGBColor(30, 30, 30);
const OVER_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Renders the chart: log-log axes (x: arithmetic intensity FLOP/byte, y: GFLOP/s), each
/// memory roof as the diagonal line gflops = intensity * gbs clipped at the highest compute
/// roof, each compute roof as a horizontal line, every roof labelled with its name and
/// value, and the points as markers with their labels. Axis ranges are chosen from the data
/// (powers of ten around the roofs and points). Errors (an empty chart: no roofs, or a
/// non-finite / non-positive value) are returned as `anyhow::Error` with a clear message,
/// never a panic.
///
/// Up to six points with short labels are labelled next to their markers; more are
/// numbered, with a key of "number: label" to the right of the plot.
pub fn roofline_svg(
    title: &str,
    memory: &[MemoryRoof],
    compute: &[ComputeRoof],
    points: &[Point],
) -> Result<String> {
    validate(memory, compute, points)?;
    let (xr, yr) = axis_ranges(memory, compute, points);
    let numbered = points.len() > MAX_DIRECT_LABELS
        || points
            .iter()
            .any(|p| p.label.chars().count() > MAX_DIRECT_LABEL_CHARS);

    // A long key makes the chart taller (up to MAX_KEY_ROWS rows), not the labels fewer.
    let height = if numbered {
        let rows = points.len().min(MAX_KEY_ROWS) as f64 + 1.0;
        HEIGHT.max((KEY_CHROME_PX + rows * KEY_ROW_PX).ceil() as u32)
    } else {
        HEIGHT
    };
    let mut svg = String::new();
    let overlay = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(plot_err("filling the background"))?;
        let body = root
            .titled(&clean(title), font(18.0, &BLACK))
            .map_err(plot_err("drawing the title"))?;
        let (plot_area, key_area) = if numbered {
            let (plot, key) = body.split_horizontally(WIDTH - KEY_WIDTH);
            (plot, Some(key))
        } else {
            (body, None)
        };
        // Numbers are only drawn for the points the key has room for.
        let labelled = key_area
            .as_ref()
            .map_or(points.len(), |key| key_rows(key, points.len()));
        let overlay = draw_plot(
            &root, &plot_area, xr, yr, memory, compute, points, numbered, labelled,
        )?;
        if let Some(key) = key_area {
            draw_key(&key, points)?;
        }
        root.present().map_err(plot_err("finishing the SVG"))?;
        overlay
    };

    // The backend draws text only upright or at right angles, so the labels (which follow
    // the diagonals) are written here, just before the closing tag, and the markers after
    // them so that no label hides a point.
    let end = svg
        .rfind("</svg>")
        .ok_or_else(|| anyhow!("roofline chart: the SVG backend wrote no closing tag"))?;
    let mut extra = String::new();
    for label in &overlay.labels {
        label.write_svg(&mut extra);
    }
    for &(at, over) in &overlay.markers {
        write_marker(&mut extra, at, over);
    }
    svg.insert_str(end, &extra);
    Ok(svg)
}

fn validate(memory: &[MemoryRoof], compute: &[ComputeRoof], points: &[Point]) -> Result<()> {
    if memory.is_empty() && compute.is_empty() {
        bail!("roofline chart: no roofs to draw (give at least one memory or compute roof)");
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    for r in memory {
        if !positive(r.gbs) {
            bail!(
                "roofline chart: memory roof {:?} has bandwidth {} GB/s; it must be a positive finite number",
                r.name,
                r.gbs
            );
        }
    }
    for r in compute {
        if !positive(r.gflops) {
            bail!(
                "roofline chart: compute roof {:?} has peak {} GFLOP/s; it must be a positive finite number",
                r.name,
                r.gflops
            );
        }
    }
    for p in points {
        if !positive(p.intensity) || !positive(p.gflops) {
            bail!(
                "roofline chart: point {:?} has intensity {} FLOP/byte and throughput {} GFLOP/s; \
                 both must be positive finite numbers (log axes)",
                p.label,
                p.intensity,
                p.gflops
            );
        }
    }
    Ok(())
}

fn max_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.reduce(f64::max)
}

fn min_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.reduce(f64::min)
}

/// The axis ranges, in powers of ten: x covers every ridge (where a memory roof meets a
/// compute roof) and every point with at least half a decade to spare; y covers the roofs
/// over that x range and every point, with room above the top roof for its label.
fn axis_ranges(
    memory: &[MemoryRoof],
    compute: &[ComputeRoof],
    points: &[Point],
) -> (Range<f64>, Range<f64>) {
    let max_gbs = max_of(memory.iter().map(|r| r.gbs));
    let max_peak = max_of(compute.iter().map(|r| r.gflops));

    let mut xs: Vec<f64> = points.iter().map(|p| p.intensity).collect();
    if let Some(peak) = max_peak {
        xs.extend(memory.iter().map(|r| peak / r.gbs));
    }
    if let Some(gbs) = max_gbs {
        xs.extend(compute.iter().map(|r| r.gflops / gbs));
    }
    let lo = min_of(xs.iter().copied()).unwrap_or(1.0);
    let hi = max_of(xs.iter().copied()).unwrap_or(1.0);
    let x_lo = pow10((lo.log10() - 0.5).floor());
    let x_hi = pow10((hi.log10() + 0.5).ceil());

    let mut ys: Vec<f64> = points.iter().map(|p| p.gflops).collect();
    ys.extend(compute.iter().map(|r| r.gflops));
    for r in memory {
        let end = max_peak.map_or(x_hi, |peak| (peak / r.gbs).min(x_hi));
        ys.extend([r.gbs * x_lo, r.gbs * end]);
    }
    let lo = min_of(ys.iter().copied()).unwrap_or(1.0);
    let hi = max_of(ys.iter().copied()).unwrap_or(1.0);
    let y_lo = pow10(lo.log10().floor());
    let y_hi = pow10((hi.log10() + 0.3).ceil());
    // A hair wider than the decades, so that rounding in the axis code keeps the end ticks.
    let pad = |r: Range<f64>| r.start * (1.0 - 1e-6)..r.end * (1.0 + 1e-6);
    (pad(x_lo..x_hi), pad(y_lo..y_hi))
}

fn pow10(exp: f64) -> f64 {
    10f64.powf(exp)
}

/// A line in data coordinates with the label that names it.
struct Roof {
    text: String,
    color: RGBColor,
    from: (f64, f64),
    to: (f64, f64),
}

/// What is drawn over the plot once the backend is done: labels, then point markers, in
/// backend pixels.
struct Overlay {
    labels: Vec<Label>,
    markers: Vec<((f64, f64), bool)>,
}

/// Draws the axes, roofs and legend; returns the labels of roofs and points, placed, and
/// the markers.
#[allow(clippy::too_many_arguments)]
fn draw_plot(
    root: &DrawingArea<SVGBackend, Shift>,
    area: &DrawingArea<SVGBackend, Shift>,
    xr: Range<f64>,
    yr: Range<f64>,
    memory: &[MemoryRoof],
    compute: &[ComputeRoof],
    points: &[Point],
    numbered: bool,
    labelled: usize,
) -> Result<Overlay> {
    let (x_lo, x_hi) = (xr.start, xr.end);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(xr.log_scale(), yr.log_scale())
        .map_err(plot_err("setting up the axes"))?;
    chart
        .configure_mesh()
        .x_desc("Arithmetic intensity (FLOP/byte)")
        .y_desc("Performance (GFLOP/s)")
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style(font(12.0, &BLACK))
        .axis_desc_style(font(14.0, &BLACK))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .draw()
        .map_err(plot_err("drawing the axes"))?;

    let plot = chart.plotting_area();
    let (px, py) = plot.get_pixel_range();
    let mut placer = Placer::new(Rect {
        x0: f64::from(px.start),
        y0: f64::from(py.start),
        x1: f64::from(px.end),
        y1: f64::from(py.end),
    });
    let to_px = |(x, y): (f64, f64)| {
        let (a, b) = plot.map_coordinate(&(x, y));
        (f64::from(a), f64::from(b))
    };

    let max_gbs = max_of(memory.iter().map(|r| r.gbs));
    let max_peak = max_of(compute.iter().map(|r| r.gflops));
    let compute_roofs: Vec<Roof> = compute
        .iter()
        .zip(COMPUTE_COLORS.iter().cycle())
        .map(|(r, &color)| {
            let start = max_gbs.map_or(x_lo, |gbs| (r.gflops / gbs).max(x_lo));
            Roof {
                text: format!(
                    "{}: {} GFLOP/s",
                    abbreviate(&r.name, MAX_ROOF_LABEL_CHARS),
                    fmt_value(r.gflops)
                ),
                color,
                from: (start, r.gflops),
                to: (x_hi, r.gflops),
            }
        })
        .collect();
    let memory_roofs: Vec<Roof> = memory
        .iter()
        .zip(MEMORY_COLORS.iter().cycle())
        .map(|(r, &color)| {
            let end = max_peak.map_or(x_hi, |peak| (peak / r.gbs).min(x_hi));
            Roof {
                text: format!(
                    "{}: {} GB/s",
                    abbreviate(&r.name, MAX_ROOF_LABEL_CHARS),
                    fmt_value(r.gbs)
                ),
                color,
                from: (x_lo, r.gbs * x_lo),
                to: (end, r.gbs * end),
            }
        })
        .collect();

    // Everything is drawn, and is an obstacle, before any label is placed.
    for roof in compute_roofs.iter().chain(&memory_roofs) {
        plot.draw(&PathElement::new(
            vec![roof.from, roof.to],
            roof.color.stroke_width(2),
        ))
        .map_err(plot_err("drawing a roof"))?;
        placer.lines.push(vec![to_px(roof.from), to_px(roof.to)]);
    }
    let marker_px: Vec<(f64, f64)> = points
        .iter()
        .map(|p| to_px((p.intensity, p.gflops)))
        .collect();
    let mut markers: Vec<((f64, f64), bool)> = points
        .iter()
        .zip(&marker_px)
        .map(|(p, &at)| (at, p.over))
        .collect();
    for &((x, y), _) in &markers {
        placer.take(LabelBox::upright(x - 5.0, y - 5.0, 10.0, 10.0));
    }
    if !points.is_empty() {
        let any_over = points.iter().any(|p| p.over);
        markers.extend(draw_marker_legend(root, &mut placer, any_over)?);
    }

    let mut labels = Vec::new();
    let mut add = |placer: &mut Placer, text: String, color, candidates: Vec<LabelBox>| {
        let at = placer.place(&candidates);
        labels.push(Label { text, color, at });
    };
    for roof in compute_roofs {
        let (w, h) = text_size(&roof.text, LABEL_PX);
        let ((start, _), (right, y)) = (to_px(roof.from), to_px(roof.to));
        // At the right end, above the line or below it, then further left along it.
        let mut candidates = Vec::new();
        let mut left = right - 6.0 - w;
        while candidates.is_empty() || (left >= start && candidates.len() < 16) {
            candidates.push(LabelBox::upright(left, y - h - 2.0, w, h));
            candidates.push(LabelBox::upright(left, y + 3.0, w, h));
            left -= 60.0;
        }
        add(&mut placer, roof.text, roof.color, candidates);
    }
    for roof in memory_roofs {
        let (w, h) = text_size(&roof.text, LABEL_PX);
        let (a, b) = (to_px(roof.from), to_px(roof.to));
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy);
        let angle = dy.atan2(dx);
        // Along the line, just above it or just below it, from near its low end onwards.
        let room = (len - w - 8.0).max(0.0);
        let mut candidates = Vec::new();
        for k in [1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] {
            let s = 4.0 + room * k / 8.0;
            let on_line = (a.0 + s * dx / len, a.1 + s * dy / len);
            let above = LabelBox::along(on_line, angle, w, h).offset_normal(-(h + 3.0));
            let below = LabelBox::along(on_line, angle, w, h).offset_normal(3.0);
            candidates.extend([above, below]);
        }
        add(&mut placer, roof.text, roof.color, candidates);
    }
    for (i, (p, &(x, y))) in points.iter().zip(&marker_px).enumerate().take(labelled) {
        let text = if numbered {
            (i + 1).to_string()
        } else {
            clean(&p.label)
        };
        let (w, h) = text_size(&text, LABEL_PX);
        let candidates = [
            (x + 7.0, y - h / 2.0),
            (x - 7.0 - w, y - h / 2.0),
            (x - w / 2.0, y - h - 6.0),
            (x - w / 2.0, y + 6.0),
            (x + 7.0, y - 1.5 * h),
            (x + 7.0, y + 0.5 * h),
            (x - 7.0 - w, y - 1.5 * h),
            (x - 7.0 - w, y + 0.5 * h),
        ]
        .iter()
        .map(|&(x, y)| LabelBox::upright(x, y, w, h))
        .collect();
        let color = if p.over { OVER_COLOR } else { POINT_COLOR };
        add(&mut placer, text, color, candidates);
    }
    Ok(Overlay { labels, markers })
}

/// A small legend for the markers (the red one only when a point is over its ceiling),
/// placed where nothing else is: the top left of a roofline chart is usually empty.
fn draw_marker_legend(
    root: &DrawingArea<SVGBackend, Shift>,
    placer: &mut Placer,
    any_over: bool,
) -> Result<Vec<((f64, f64), bool)>> {
    let line_h = LABEL_PX * 1.5;
    let texts = if any_over {
        &["measured", "over its own ceiling"][..]
    } else {
        &["measured"][..]
    };
    let w = 16.0
        + texts
            .iter()
            .map(|t| text_size(t, LABEL_PX).0)
            .fold(0.0, f64::max);
    let h = line_h * texts.len() as f64;
    let b = placer.bounds;
    let candidates = [
        LabelBox::upright(b.x0 + 8.0, b.y0 + 8.0, w, h),
        LabelBox::upright(b.x0 + 8.0, b.y1 - h - 8.0, w, h),
        LabelBox::upright(b.x1 - w - 8.0, b.y1 - h - 8.0, w, h),
    ];
    let at = placer.place(&candidates);
    let (x, y) = (at.x, at.y);
    for (row, text) in texts.iter().enumerate() {
        let top = y + row as f64 * line_h + (line_h - LABEL_PX * 1.2) / 2.0;
        draw_text(root, text, &BLACK, (x + 16.0, top))?;
    }
    let center = |row: usize| (x + 5.0, y + (row as f64 + 0.5) * line_h);
    Ok((0..texts.len())
        .map(|row| (center(row), row == 1))
        .collect())
}

/// A point's marker: a dark dot, or a red triangle for a point over its own ceiling.
fn write_marker(out: &mut String, (x, y): (f64, f64), over: bool) {
    let _ = if over {
        let RGBColor(r, g, b) = OVER_COLOR;
        writeln!(
            out,
            "<polygon points=\"{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"#{r:02X}{g:02X}{b:02X}\"/>",
            y - 6.0,
            x + 5.5,
            y + 3.5,
            x - 5.5,
            y + 3.5
        )
    } else {
        let RGBColor(r, g, b) = POINT_COLOR;
        writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#{r:02X}{g:02X}{b:02X}\"/>"
        )
    };
}

const KEY_ROW_PX: f64 = LABEL_PX * 1.35;

/// The most rows a key grows the chart for.
const MAX_KEY_ROWS: usize = 80;

/// The key's pixels that are not rows: the title above it and the margins.
const KEY_CHROME_PX: f64 = 70.0;

/// The key's top and bottom, in backend pixels.
fn key_span(area: &DrawingArea<SVGBackend, Shift>) -> (f64, f64) {
    let (_, yr) = area.get_pixel_range();
    (f64::from(yr.start) + 16.0, f64::from(yr.end) - 12.0)
}

/// How many of `n` points the key lists (one row is kept for "... and N more").
fn key_rows(area: &DrawingArea<SVGBackend, Shift>, n: usize) -> usize {
    let (top, bottom) = key_span(area);
    let rows = ((bottom - top) / KEY_ROW_PX).floor().max(1.0) as usize;
    if n > rows {
        rows - 1
    } else {
        n
    }
}

/// The key of numbered points: "n: label", red for points over their ceiling.
fn draw_key(area: &DrawingArea<SVGBackend, Shift>, points: &[Point]) -> Result<()> {
    let x = f64::from(area.get_pixel_range().0.start) + 8.0;
    let (top, _) = key_span(area);
    let row_h = KEY_ROW_PX;
    let listed = key_rows(area, points.len());
    for (i, p) in points.iter().take(listed).enumerate() {
        let text = format!("{}: {}", i + 1, abbreviate(&p.label, MAX_KEY_LABEL_CHARS));
        let color = if p.over { OVER_COLOR } else { POINT_COLOR };
        draw_text(area, &text, &color, (x, top + i as f64 * row_h))?;
    }
    if listed < points.len() {
        let text = format!("... and {} more, not numbered", points.len() - listed);
        draw_text(area, &text, &BLACK, (x, top + listed as f64 * row_h))?;
    }
    Ok(())
}

/// Draws `text` with its top left corner at `(x, y)` in backend pixels.
fn draw_text(
    area: &DrawingArea<SVGBackend, Shift>,
    text: &str,
    color: &RGBColor,
    (x, y): (f64, f64),
) -> Result<()> {
    let (ax, ay) = area.get_base_pixel();
    let style = font(LABEL_PX, color).pos(Pos::new(HPos::Left, VPos::Top));
    area.draw(&Text::new(
        text.to_owned(),
        (x.round() as i32 - ax, y.round() as i32 - ay),
        style,
    ))
    .map_err(plot_err("drawing text"))
}

/// A text style whose SVG `font-size` is `px` (the backend divides the size by 1.24).
fn font<'a>(px: f64, color: &RGBColor) -> TextStyle<'a> {
    ("sans-serif", px * 1.24).into_font().color(color)
}

/// An estimate of the width and height of `text` in pixels at `px`, generous for a
/// typical sans-serif font.
fn text_size(text: &str, px: f64) -> (f64, f64) {
    (text.chars().count() as f64 * px * 0.6, px * 1.2)
}

fn plot_err<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("roofline chart: {what}: {e}")
}

/// Control characters are not allowed in XML text, even escaped.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` safe as SVG text: control characters (which XML cannot hold) as spaces, then the
/// pages' escaping.
fn xml_escape(s: &str) -> String {
    crate::pages::escape(&clean(s))
}

fn abbreviate(s: &str, max_chars: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max_chars {
        return s;
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('\u{2026}');
    out
}

/// A tick value: plain for 0.001..10000, else in exponent form ("1e6").
fn fmt_tick(v: f64) -> String {
    if (1e-3..1e5).contains(&v) {
        fmt_value(v)
    } else {
        format!("{v:.0e}")
    }
}

/// A value to three significant digits, without trailing zeros.
fn fmt_value(v: f64) -> String {
    if !(1e-3..1e7).contains(&v) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A placed label: its text (not yet escaped) in a box that may be rotated.
struct Label {
    text: String,
    color: RGBColor,
    at: LabelBox,
}

impl Label {
    /// A translucent white backing, then the text, both rotated about the top left corner.
    fn write_svg(&self, out: &mut String) {
        let LabelBox { x, y, w, h, angle } = self.at;
        let rotate = if angle == 0.0 {
            String::new()
        } else {
            format!(
                " transform=\"rotate({:.2} {x:.1} {y:.1})\"",
                angle.to_degrees()
            )
        };
        let RGBColor(r, g, b) = self.color;
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" \
             fill=\"#FFFFFF\" fill-opacity=\"0.8\"{rotate}/>",
            x - 1.0,
            w + 2.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" dy=\"0.76em\" font-family=\"sans-serif\" \
             font-size=\"{LABEL_PX}\" fill=\"#{r:02X}{g:02X}{b:02X}\"{rotate}>{}</text>",
            xml_escape(&self.text)
        );
    }
}

/// A label's box in pixels: top left corner, width and height, and a rotation (radians,
/// clockwise on screen) about that corner.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LabelBox {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    angle: f64,
}

impl LabelBox {
    fn upright(x: f64, y: f64, w: f64, h: f64) -> Self {
        LabelBox {
            x,
            y,
            w,
            h,
            angle: 0.0,
        }
    }

    /// A box whose top edge starts at `(x, y)` and runs along `angle`.
    fn along((x, y): (f64, f64), angle: f64, w: f64, h: f64) -> Self {
        LabelBox { x, y, w, h, angle }
    }

    /// Moved by `d` pixels across its own baseline (positive: down the text's "down").
    fn offset_normal(self, d: f64) -> Self {
        let (nx, ny) = (
            (self.angle + FRAC_PI_2).cos(),
            (self.angle + FRAC_PI_2).sin(),
        );
        LabelBox {
            x: self.x + d * nx,
            y: self.y + d * ny,
            ..self
        }
    }

    fn corners(&self) -> Vec<(f64, f64)> {
        let (c, s) = (self.angle.cos(), self.angle.sin());
        [(0.0, 0.0), (self.w, 0.0), (self.w, self.h), (0.0, self.h)]
            .iter()
            .map(|&(u, v)| (self.x + u * c - v * s, self.y + u * s + v * c))
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// Whether two convex polygons (a segment is a polygon of two points) overlap with some
/// area or length in common, by the separating axis test; touching does not count.
fn overlap(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    let project = |poly: &[(f64, f64)], (ax, ay): (f64, f64)| {
        poly.iter()
            .map(|&(x, y)| x * ax + y * ay)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    for poly in [a, b] {
        for (i, &(px, py)) in poly.iter().enumerate() {
            let (qx, qy) = poly[(i + 1) % poly.len()];
            let axis = (qy - py, px - qx);
            if axis == (0.0, 0.0) {
                continue;
            }
            let (a_lo, a_hi) = project(a, axis);
            let (b_lo, b_hi) = project(b, axis);
            if a_hi <= b_lo || b_hi <= a_lo {
                return false;
            }
        }
    }
    true
}

/// Greedy label placement. Candidates come best first; the one with the least cost wins,
/// the earliest among equals. Leaving the plot costs most, then covering a label or
/// marker already placed, then being pushed back inside, then crossing a line.
struct Placer {
    bounds: Rect,
    taken: Vec<Vec<(f64, f64)>>,
    /// Lines that labels avoid crossing where they can.
    lines: Vec<Vec<(f64, f64)>>,
}

impl Placer {
    fn new(bounds: Rect) -> Self {
        Placer {
            bounds,
            taken: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn take(&mut self, b: LabelBox) {
        self.taken.push(b.corners());
    }

    /// How far the box must move, in x and y, to lie inside the bounds (with a margin).
    fn excess(&self, b: &LabelBox) -> (f64, f64) {
        let corners = b.corners();
        let lo_x = min_of(corners.iter().map(|c| c.0)).unwrap_or(b.x);
        let hi_x = max_of(corners.iter().map(|c| c.0)).unwrap_or(b.x);
        let lo_y = min_of(corners.iter().map(|c| c.1)).unwrap_or(b.y);
        let hi_y = max_of(corners.iter().map(|c| c.1)).unwrap_or(b.y);
        let r = self.bounds;
        let shift = |lo: f64, hi: f64, min: f64, max: f64| {
            if lo < min + 2.0 {
                min + 2.0 - lo
            } else if hi > max - 2.0 {
                (max - 2.0 - hi).max(min + 2.0 - lo)
            } else {
                0.0
            }
        };
        (shift(lo_x, hi_x, r.x0, r.x1), shift(lo_y, hi_y, r.y0, r.y1))
    }

    fn clamp(&self, b: LabelBox) -> LabelBox {
        let (dx, dy) = self.excess(&b);
        LabelBox {
            x: b.x + dx,
            y: b.y + dy,
            ..b
        }
    }

    fn cost(&self, b: &LabelBox) -> usize {
        let c = b.corners();
        let outside = usize::from(self.excess(b) != (0.0, 0.0));
        let covered = self.taken.iter().filter(|t| overlap(t, &c)).count();
        let crossed = self.lines.iter().filter(|l| overlap(l, &c)).count();
        1000 * outside + 10 * covered + crossed
    }

    fn place(&mut self, candidates: &[LabelBox]) -> LabelBox {
        let pushed_in = candidates.iter().map(|&b| (self.clamp(b), 5));
        let chosen = candidates
            .iter()
            .map(|&b| (b, 0))
            .chain(pushed_in)
            .map(|(b, extra)| (self.cost(&b) + extra, b))
            .reduce(|best, next| if next.0 < best.0 { next } else { best })
            .map_or_else(
                || LabelBox::upright(self.bounds.x0, self.bounds.y0, 0.0, 0.0),
                |(_, b)| b,
            );
        self.take(chosen);
        chosen
    }
}

/// The roofs of `probe` at `threads`: memory levels nearest first, then the compute peaks.
pub fn roofs(probe: &ProbeResult, threads: usize) -> (Vec<MemoryRoof>, Vec<ComputeRoof>) {
    let t = format!("{threads} thread{}", if threads == 1 { "" } else { "s" });
    let memory = Level::ALL
        .iter()
        .filter_map(|&l| {
            let gbs = probe.read_level_gbs(l, threads)?;
            Some(MemoryRoof {
                name: format!("{l} read, {t}"),
                gbs,
            })
        })
        .collect();
    // The fastest backend; within 3% (the probe's noise) the one the kernels prefer.
    let fastest = |table: &std::collections::BTreeMap<String, ktune_core::PerThreads>| {
        let mut best: Option<(String, f64)> = None;
        for b in ktune_core::Backend::CPU_PREFERENCE {
            let Some(v) = table.get(b.name()).and_then(|per| at_threads(per, threads)) else {
                continue;
            };
            if best.as_ref().is_none_or(|(_, bv)| v > 1.03 * bv) {
                best = Some((b.name().to_string(), v));
            }
        }
        best
    };
    let mut compute = Vec::new();
    if let Some((b, v)) = fastest(&probe.fma_gflops) {
        compute.push(ComputeRoof {
            name: format!("fma {b}, {t}"),
            gflops: v,
        });
    }
    if let Some((b, v)) = fastest(&probe.int8_gops) {
        compute.push(ComputeRoof {
            name: format!("int8 {b}, {t}"),
            gflops: v,
        });
    }
    for (name, per) in &probe.other_gops {
        if let Some(v) = at_threads(per, threads) {
            compute.push(ComputeRoof {
                name: format!("{name}, {t}"),
                gflops: v,
            });
        }
    }
    (memory, compute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(name: &str, gbs: f64) -> MemoryRoof {
        MemoryRoof {
            name: name.into(),
            gbs,
        }
    }

    fn peak(name: &str, gflops: f64) -> ComputeRoof {
        ComputeRoof {
            name: name.into(),
            gflops,
        }
    }

    fn pt(label: &str, intensity: f64, gflops: f64, over: bool) -> Point {
        Point {
            label: label.into(),
            intensity,
            gflops,
            over,
        }
    }

    fn cpu_roofs() -> (Vec<MemoryRoof>, Vec<ComputeRoof>) {
        (
            vec![
                mem("L1 read, 2 threads", 1800.0),
                mem("L2 read, 2 threads", 700.0),
                mem("L3 read, 2 threads", 260.0),
                mem("DRAM read, 2 threads", 38.0),
            ],
            vec![
                peak("fma avx512, 2 threads", 620.0),
                peak("add avx2, 2 threads", 150.0),
            ],
        )
    }

    /// Every element opened is closed, in order.
    fn assert_balanced(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').expect("unterminated tag") + i;
            let tag = &rest[i + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            if tag.starts_with('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.as_str()),
                    "unbalanced </{name}>"
                );
            } else {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn assert_svg(svg: &str) {
        let t = svg.trim();
        assert!(t.starts_with("<svg"), "{}", &t[..t.len().min(80)]);
        assert!(t.ends_with("</svg>"));
        assert_balanced(t);
    }

    #[test]
    fn names_labels_and_values_are_drawn() {
        let (memory, compute) = cpu_roofs();
        let points = vec![
            pt("gemm 256x256", 20.0, 410.0, false),
            pt("axpy 1M", 0.083, 3.1, false),
            pt("dot 4K", 0.25, 900.0, true),
        ];
        let svg = roofline_svg("ktune roofline", &memory, &compute, &points).unwrap();
        assert_svg(&svg);
        for r in &memory {
            assert!(svg.contains(&r.name), "missing {}", r.name);
        }
        for r in &compute {
            assert!(svg.contains(&r.name), "missing {}", r.name);
        }
        for p in &points {
            assert!(svg.contains(&p.label), "missing {}", p.label);
        }
        assert!(svg.contains("1800 GB/s"));
        assert!(svg.contains("620 GFLOP/s"));
        assert!(svg.contains("ktune roofline"));
    }

    #[test]
    fn user_text_is_escaped() {
        let evil = r#"<script>alert(1)</script> & "q""#;
        let (memory, compute) = cpu_roofs();
        let points = vec![pt(evil, 1.0, 10.0, false)];
        let svg = roofline_svg(evil, &[mem(evil, 10.0)], &[peak(evil, 100.0)], &points).unwrap();
        assert!(!svg.contains("<script"));
        assert!(!svg.contains(r#"& "q""#));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
        assert_svg(&svg);

        // In the numbered key too, and with control characters.
        let many: Vec<Point> = (0..10)
            .map(|i| pt(&format!("{evil}\u{1}{i}"), 1.0 + f64::from(i), 5.0, false))
            .collect();
        let svg = roofline_svg("t", &memory, &compute, &many).unwrap();
        assert!(!svg.contains("<script"));
        assert!(!svg.contains('\u{1}'));
        assert_svg(&svg);
    }

    #[test]
    fn bad_input_is_an_error() {
        let none = roofline_svg("t", &[], &[], &[pt("p", 1.0, 1.0, false)]).unwrap_err();
        assert!(none.to_string().contains("no roofs"), "{none}");

        let nan = roofline_svg("t", &[mem("dram", f64::NAN)], &[], &[]).unwrap_err();
        assert!(nan.to_string().contains("\"dram\""), "{nan}");

        let negative = roofline_svg("t", &[], &[peak("fma", -3.0)], &[]).unwrap_err();
        assert!(negative.to_string().contains("\"fma\""), "{negative}");

        let (memory, compute) = cpu_roofs();
        for (i, g) in [
            (0.0, 1.0),
            (1.0, f64::INFINITY),
            (-1.0, 1.0),
            (1.0, f64::NAN),
        ] {
            let err = roofline_svg("t", &memory, &compute, &[pt("bad", i, g, false)]).unwrap_err();
            assert!(err.to_string().contains("\"bad\""), "{err}");
        }
    }

    #[test]
    fn one_roof_or_one_point_is_enough() {
        let svg = roofline_svg("t", &[mem("dram", 40.0)], &[], &[]).unwrap();
        assert_svg(&svg);
        assert!(svg.contains("dram: 40 GB/s"));

        let svg = roofline_svg(
            "t",
            &[],
            &[peak("fma", 100.0)],
            &[pt("p", 2.0, 50.0, false)],
        )
        .unwrap();
        assert_svg(&svg);
        assert!(svg.contains("fma: 100 GFLOP/s") && svg.contains(">p</text>"));

        let (memory, compute) = cpu_roofs();
        let svg = roofline_svg("t", &memory, &compute, &[pt("only", 4.0, 100.0, false)]).unwrap();
        assert_svg(&svg);
        assert!(svg.contains("only"));
    }

    #[test]
    fn axes_grow_to_include_far_points() {
        let (memory, compute) = cpu_roofs();
        let (x0, y0) = axis_ranges(&memory, &compute, &[]);
        let points = vec![pt("tiny", 1e-4, 1e-3, false), pt("huge", 1e5, 1e6, true)];
        let (x, y) = axis_ranges(&memory, &compute, &points);
        assert!(x.start < x0.start && x.end > x0.end && y.start < y0.start && y.end > y0.end);
        for p in &points {
            assert!(x.start <= p.intensity && p.intensity <= x.end, "{x:?}");
            assert!(y.start <= p.gflops && p.gflops <= y.end, "{y:?}");
        }
        // Every ridge is inside, and the ranges are powers of ten.
        for r in &memory {
            assert!(x.start < 620.0 / r.gbs && 620.0 / r.gbs < x.end);
        }
        for v in [x.start, x.end, y.start, y.end] {
            assert!((v.log10() - v.log10().round()).abs() < 1e-5, "{v}");
        }
        let svg = roofline_svg("t", &memory, &compute, &points).unwrap();
        assert_svg(&svg);
        assert!(svg.contains("1e-4") || svg.contains("0.0001") || svg.contains("1e-5"));
    }

    #[test]
    fn many_points_are_numbered_with_a_key() {
        let (memory, compute) = cpu_roofs();
        let points: Vec<Point> = (0..30)
            .map(|i| {
                let f = f64::from(i);
                pt(
                    &format!("gemm {}x{} tile {i}", 64 + 32 * i, 128),
                    0.05 * 1.3f64.powf(f),
                    2.0 * 1.25f64.powf(f),
                    i % 7 == 3,
                )
            })
            .collect();
        let svg = roofline_svg("many", &memory, &compute, &points).unwrap();
        assert_svg(&svg);
        for (i, p) in points.iter().enumerate() {
            assert!(
                svg.contains(&format!("{}: {}", i + 1, p.label)),
                "missing key for {}",
                p.label
            );
        }
    }

    #[test]
    fn too_many_points_for_the_key_are_counted() {
        let (memory, compute) = cpu_roofs();
        let points: Vec<Point> = (0..3000)
            .map(|i| {
                let f = f64::from(i);
                pt(&format!("p{i}"), 0.1 + f / 10.0, 1.0 + f / 5.0, false)
            })
            .collect();
        let svg = roofline_svg("lots", &memory, &compute, &points).unwrap();
        assert_svg(&svg);
        assert!(svg.contains("more"));
    }

    #[test]
    fn values_are_formatted_compactly() {
        assert_eq!(fmt_value(1800.0), "1800");
        assert_eq!(fmt_value(51.234), "51.2");
        assert_eq!(fmt_value(0.5), "0.5");
        assert_eq!(fmt_value(0.123456), "0.123");
        assert_eq!(fmt_value(2.0e9), "2.00e9");
        assert_eq!(fmt_tick(0.1), "0.1");
        assert_eq!(fmt_tick(1.0000000000000002), "1");
        assert_eq!(fmt_tick(1e6), "1e6");
        assert_eq!(abbreviate("abcdef", 4), "abc\u{2026}");
    }

    /// Writes a sample chart to the path in `KTUNE_ROOFLINE_SAMPLE`, to look at.
    #[test]
    fn sample_when_asked() {
        let Some(path) = std::env::var_os("KTUNE_ROOFLINE_SAMPLE") else {
            return;
        };
        let (memory, compute) = cpu_roofs();
        let few = std::env::var_os("KTUNE_ROOFLINE_FEW").is_some();
        let points: Vec<Point> = if few {
            vec![
                pt("gemm 256x256", 20.0, 410.0, false),
                pt("axpy 1M", 0.083, 3.1, false),
                pt("dot 4K", 0.25, 900.0, true),
                pt("stencil 512^2", 1.5, 120.0, false),
            ]
        } else {
            (0..24)
                .map(|i| {
                    let f = f64::from(i);
                    let intensity = 0.04 * 1.45f64.powf(f);
                    let roof = (intensity * 700.0).min(620.0);
                    pt(
                        &format!("gemm {}x{} <f32> & tile {i}", 64 + 32 * i, 128),
                        intensity,
                        roof * (0.3 + 0.03 * f),
                        i % 9 == 4,
                    )
                })
                .collect()
        };
        let svg =
            roofline_svg("ktune roofline: sample <host>", &memory, &compute, &points).unwrap();
        std::fs::write(path, svg).unwrap();
    }

    #[test]
    fn roofs_are_the_levels_and_the_fastest_peaks_at_the_thread_count() {
        let per = |a: f64, b: f64| std::collections::BTreeMap::from([(1, a), (2, b)]);
        let p = ProbeResult {
            schema: ktune_core::probe::PROBE_SCHEMA.into(),
            machine: ktune_core::Machine::detect(),
            fma_gflops: std::collections::BTreeMap::from([
                ("avx2".into(), per(50.0, 100.0)),
                ("scalar".into(), per(5.0, 10.0)),
            ]),
            int8_gops: std::collections::BTreeMap::from([("avx2".into(), per(150.0, 300.0))]),
            other_gops: std::collections::BTreeMap::from([(
                "bf16 avx512".into(),
                per(200.0, 400.0),
            )]),
            bandwidth_gbs: std::collections::BTreeMap::from([
                ("read".into(), per(10.0, 20.0)),
                ("read_l1".into(), per(100.0, 200.0)),
                ("triad".into(), per(9.0, 18.0)),
            ]),
            array_bytes: 0,
            read_reader: String::new(),
            spread: 0.0,
            load_before: 0.0,
            flagged: vec![],
            probe_version: ktune_core::probe::PROBE_VERSION,
            timestamp: 0,
            ktune_version: String::new(),
        };
        let (m, c) = roofs(&p, 2);
        let names: Vec<(&str, f64)> = m.iter().map(|r| (r.name.as_str(), r.gbs)).collect();
        assert_eq!(
            names,
            vec![
                ("L1 read, 2 threads", 200.0),
                ("DRAM read, 2 threads", 20.0)
            ]
        );
        let names: Vec<(&str, f64)> = c.iter().map(|r| (r.name.as_str(), r.gflops)).collect();
        assert_eq!(
            names,
            vec![
                ("fma avx2, 2 threads", 100.0),
                ("int8 avx2, 2 threads", 300.0),
                ("bf16 avx512, 2 threads", 400.0)
            ]
        );
    }
}
