//! The one place for the figures' look, shared by the `chandir` command (`cli/src/plots.rs`) and
//! the study (`examples/reproduce/plots.rs`): a palette without light colours, line styles that
//! keep coinciding curves apart (dashes, markers, draw order), a legend beside the chart instead
//! of on the data, axis helpers, and atomic output.
//!
//! It lives in the CLI crate because the CLI is what ships it; the study is not published.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// Errors of drawing and writing, with the path they concern in the message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A drawing area in pixels.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Okabe–Ito's colour-blind-safe palette without its yellow (invisible on white), then grey.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 0, 0),       // black
    RGBColor(128, 128, 128), // grey
];

/// The `index`-th colour of [`PALETTE`], cycling.
pub fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// How a curve's line is drawn. Sparser patterns are drawn later, over the solid lines they may
/// coincide with, so that every curve stays visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dash {
    /// An unbroken line.
    Solid,
    /// Long dashes, short gaps.
    Long,
    /// Medium dashes.
    Dashed,
    /// Dots.
    Dotted,
}

impl Dash {
    /// Dash and gap lengths in pixels, or `None` for a solid line.
    fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Long => Some((14, 5)),
            Dash::Dashed => Some((6, 4)),
            Dash::Dotted => Some((2, 4)),
        }
    }
}

/// The marker drawn on a curve's points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// No marker: the line alone.
    None,
    /// A filled circle.
    Circle,
    /// A filled triangle.
    Triangle,
    /// A filled square.
    Square,
    /// A filled diamond.
    Diamond,
    /// A cross.
    Cross,
}

const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
    Marker::Cross,
];
const DASHES: [Dash; 4] = [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::Long];

/// A curve's colour, line and marker.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// The colour of line and marker.
    pub colour: RGBColor,
    /// How the line is drawn.
    pub dash: Dash,
    /// The marker on each point.
    pub marker: Marker,
}

impl Style {
    /// The `index`-th of a set of curves: colour, dash and marker all differ from its neighbours'.
    pub fn nth(index: usize) -> Style {
        Style {
            colour: colour(index),
            dash: DASHES[index % DASHES.len()],
            marker: MARKERS[index % MARKERS.len()],
        }
    }

    /// The same style with another dash.
    pub fn dashed(self, dash: Dash) -> Style {
        Style { dash, ..self }
    }

    fn stroke(&self) -> ShapeStyle {
        self.colour.stroke_width(2)
    }
}

/// A named curve.
pub struct Curve {
    /// Its legend entry.
    pub label: String,
    /// The (x, y) points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub style: Style,
}

/// What a legend entry shows next to its label.
#[derive(Clone, Copy, Debug)]
pub enum Sample {
    /// A stretch of the curve's line with one marker.
    Line(Style),
    /// The marker alone (point clouds).
    Point(Style),
    /// A filled box (bars, bands).
    Fill(RGBColor),
    /// No sample: the label is a remark, in grey.
    Note,
}

/// One line of a legend.
pub struct Entry {
    /// The text.
    pub label: String,
    /// What is drawn before the text.
    pub sample: Sample,
}

impl Entry {
    /// A legend line of `label` after `sample`.
    pub fn new(label: impl Into<String>, sample: Sample) -> Entry {
        Entry {
            label: label.into(),
            sample,
        }
    }
}

const LEGEND_FONT: u32 = 14;
const LEGEND_ROW: i32 = 22;
const SAMPLE_WIDTH: i32 = 34;

/// An SVG figure of `size` pixels: `title` on top, the chart drawn by `draw` below it, and the
/// legend in a column to the right of the chart, never on the data.
pub fn render<F>(size: (u32, u32), title: &str, legend: &[Entry], draw: F) -> Result<String, Error>
where
    F: FnOnce(&Area<'_>) -> Result<(), Error>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, ("sans-serif", 20))?;
        if legend.is_empty() {
            draw(&body)?;
        } else {
            // Text width estimated at 0.55 em per character: plotters has no font metrics here.
            let longest = legend
                .iter()
                .map(|entry| entry.label.chars().count())
                .max()
                .unwrap_or(0);
            let wanted = SAMPLE_WIDTH as u32 + 24 + (longest as u32 * LEGEND_FONT * 11) / 20;
            let width = wanted.min(size.0 * 2 / 5);
            let (chart, side) = body.split_horizontally(size.0.saturating_sub(width));
            draw(&chart)?;
            draw_legend(&side, legend)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The legend's rows, from the top of `area`, vertically centred on the chart.
fn draw_legend(area: &Area<'_>, legend: &[Entry]) -> Result<(), Error> {
    let (_, height) = area.dim_in_pixel();
    let rows = legend.len() as i32;
    let top = ((height as i32 - rows * LEGEND_ROW) / 2).max(4);
    for (row, entry) in legend.iter().enumerate() {
        let y = top + row as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        let x = 6;
        match entry.sample {
            Sample::Line(style) => {
                let line = vec![(x, y), (x + SAMPLE_WIDTH, y)];
                match style.dash.pattern() {
                    None => area.draw(&PathElement::new(line, style.stroke()))?,
                    Some((dash, gap)) => {
                        area.draw(&DashedPathElement::new(line, dash, gap, style.stroke()))?
                    }
                }
                draw_marker(area, (x + SAMPLE_WIDTH / 2, y), style)?;
            }
            Sample::Point(style) => draw_marker(area, (x + SAMPLE_WIDTH / 2, y), style)?,
            Sample::Note => {}
            Sample::Fill(fill) => {
                area.draw(&Rectangle::new(
                    [(x + 4, y - 7), (x + SAMPLE_WIDTH - 4, y + 7)],
                    fill.mix(0.45).filled(),
                ))?;
                area.draw(&Rectangle::new(
                    [(x + 4, y - 7), (x + SAMPLE_WIDTH - 4, y + 7)],
                    fill.stroke_width(1),
                ))?;
            }
        }
        let (text_x, colour) = match entry.sample {
            Sample::Note => (x, RGBColor(100, 100, 100)),
            _ => (x + SAMPLE_WIDTH + 10, BLACK),
        };
        area.draw(&Text::new(
            entry.label.clone(),
            (text_x, y - LEGEND_FONT as i32 / 2),
            ("sans-serif", LEGEND_FONT).into_font().color(&colour),
        ))?;
    }
    Ok(())
}

/// Draws `style`'s marker centred at `at` (in the area's coordinates).
fn draw_marker<DB, CT>(area: &DrawingArea<DB, CT>, at: CT::From, style: Style) -> Result<(), Error>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    let filled = style.colour.filled();
    let outline = style.colour.stroke_width(2);
    match style.marker {
        Marker::None => {}
        Marker::Circle => area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), 4, filled)))?,
        Marker::Triangle => {
            area.draw(&(EmptyElement::at(at) + TriangleMarker::new((0, 0), 6, filled)))?
        }
        Marker::Square => {
            area.draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], filled)))?
        }
        Marker::Diamond => area.draw(
            &(EmptyElement::at(at) + Polygon::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0)], filled)),
        )?,
        Marker::Cross => area.draw(&(EmptyElement::at(at) + Cross::new((0, 0), 4, outline)))?,
    }
    Ok(())
}

/// Draws `curves` on `chart`: solid lines first, sparser dashes over them, and markers
/// staggered between curves that coincide so that each one's marker shows.
pub fn draw_curves<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    curves: &[Curve],
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let groups = coinciding_groups(curves);
    let mut order: Vec<usize> = (0..curves.len()).collect();
    order.sort_by_key(|&index| curves[index].style.dash);
    for index in order {
        let curve = &curves[index];
        let points = finite(&curve.points);
        let stroke = curve.style.stroke();
        match curve.style.dash.pattern() {
            None => chart.draw_series(LineSeries::new(points.clone(), stroke))?,
            Some((dash, gap)) => {
                chart.draw_series(DashedLineSeries::new(points.clone(), dash, gap, stroke))?
            }
        };
        // At most about 40 markers per curve; curves in one group of `size` take turns.
        let (rank, size) = groups[index];
        let stride = points.len().div_ceil(40).max(1) * size;
        let area = chart.plotting_area();
        for (at, point) in points.iter().enumerate() {
            if at % stride == rank * (stride / size) {
                draw_marker(area, *point, curve.style)?;
            }
        }
    }
    Ok(())
}

/// Draws one point with `style`'s marker (a circle if it has none).
pub fn draw_point<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Cartesian2d<X, Y>>,
    at: (f64, f64),
    style: Style,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = match style.marker {
        Marker::None => Style {
            marker: Marker::Circle,
            ..style
        },
        _ => style,
    };
    draw_marker(area, at, style)
}

/// A histogram: a translucent bar from 0 to `heights[i]` over `edges[i]..edges[i + 1]`, and the
/// step outline over all bars in the full colour, so that overlaid histograms stay readable.
pub fn draw_bars<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    edges: &[f64],
    heights: &[f64],
    colour: RGBColor,
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let fill = colour.mix(0.45).filled();
    chart.draw_series(
        heights
            .iter()
            .zip(edges.windows(2))
            .filter(|(&height, _)| height > 0.0)
            .map(|(&height, edge)| Rectangle::new([(edge[0], 0.0), (edge[1], height)], fill)),
    )?;
    let mut outline = Vec::with_capacity(2 * heights.len() + 2);
    outline.push((edges[0], 0.0));
    for (&height, edge) in heights.iter().zip(edges.windows(2)) {
        outline.push((edge[0], height));
        outline.push((edge[1], height));
    }
    outline.push((edges[heights.len()], 0.0));
    chart.draw_series(LineSeries::new(outline, colour.stroke_width(1)))?;
    Ok(())
}

/// For each curve, the first curve it coincides with (itself if none). Curves coincide when they
/// have the same x values and their y values differ by at most 0.4 % of the y range at every
/// point: closer than a line's width.
fn leaders(curves: &[Curve]) -> Vec<usize> {
    let (low, high) = curves
        .iter()
        .flat_map(|curve| curve.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    let tolerance = if high > low {
        0.004 * (high - low)
    } else {
        0.0
    };
    let same = |a: &Curve, b: &Curve| {
        !a.points.is_empty()
            && a.points.len() == b.points.len()
            && a.points
                .iter()
                .zip(&b.points)
                .all(|(p, q)| p.0 == q.0 && (p.1 == q.1 || (p.1 - q.1).abs() <= tolerance))
    };
    (0..curves.len())
        .map(|i| (0..i).find(|&j| same(&curves[j], &curves[i])).unwrap_or(i))
        .collect()
}

/// For each curve, its rank in its group of coinciding curves and the group's size.
fn coinciding_groups(curves: &[Curve]) -> Vec<(usize, usize)> {
    let leader = leaders(curves);
    (0..curves.len())
        .map(|i| {
            let rank = (0..i).filter(|&j| leader[j] == leader[i]).count();
            let size = leader.iter().filter(|&&l| l == leader[i]).count();
            (rank, size)
        })
        .collect()
}

/// For each curve, the label of an earlier curve it lies on (see [`draw_curves`]), so that a
/// legend can say which line hides which.
pub fn coincides_with(curves: &[Curve]) -> Vec<Option<String>> {
    leaders(curves)
        .into_iter()
        .enumerate()
        .map(|(i, leader)| (leader != i).then(|| curves[leader].label.clone()))
        .collect()
}

/// Legend entries for `curves`, noting the curves another one lies on.
pub fn curve_legend(curves: &[Curve]) -> Vec<Entry> {
    curves
        .iter()
        .zip(coincides_with(curves))
        .map(|(curve, under)| {
            let label = match under {
                Some(other) => format!("{} (on {other})", curve.label),
                None => curve.label.clone(),
            };
            Entry::new(label, Sample::Line(curve.style))
        })
        .collect()
}

/// The finite points of a curve.
pub fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// The smallest range holding every finite value, padded by `pad` of its width on each side;
/// `fallback` if there is none.
pub fn padded_range(
    values: impl Iterator<Item = f64>,
    pad: f64,
    fallback: Range<f64>,
) -> Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return fallback;
    }
    let margin = if high > low {
        pad * (high - low)
    } else {
        0.5 * low.abs().max(1.0)
    };
    low - margin..high + margin
}

/// A tick label in plain decimals without float noise: `3` for 3.0, `0.05`, `0.3` for
/// 0.30000000000000004, `-0.2`, and `0` for −0.0.
pub fn tick_label(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Writes `contents` to `path` the way `cp`, `sort -o` and cargo do, the one writer of every
/// output file (the CLI's tensors and plots, the study's files, `BENCHMARKS.md`):
///
/// - **A regular file, or a new one**: written atomically, into a temporary file in the same
///   directory, flushed to disk, then renamed over `path`. On any failure `path` is as it was and
///   the temporary file is removed. A new file gets the usual permissions (0666 less the umask), a
///   replaced one keeps its own; a read-only target is refused, as a plain write would be. The
///   temporary file is created exclusively under a fresh random name, so it never replaces an
///   existing file, the input included (`smooth x.npy x.npy` reads `x.npy` before writing).
/// - **A symbolic link**: followed (chains too, and a dangling link creates the file it names);
///   the file it points to is replaced atomically as above, in *its* directory, and the link is
///   left as it is.
/// - **A FIFO or a character device** (`/dev/null`, `/dev/stdout`, a terminal): written directly,
///   never renamed over or replaced by a regular file (a FIFO's write waits for a reader, as
///   `cp`'s does). A write that fails there (a full device, a closed pipe) is an error, and what
///   was already written cannot be taken back.
/// - **A directory, a socket or a block device**: refused with an error naming the path; nothing
///   is written.
pub fn write_atomically<F>(path: &Path, contents: F) -> Result<(), Error>
where
    F: FnOnce(&mut dyn Write) -> Result<(), Error>,
{
    let fail = |error: &dyn std::fmt::Display| -> Error {
        format!("cannot write {}: {error}", path.display()).into()
    };
    let target = match std::fs::metadata(path) {
        // `metadata` follows links (the kernel's own, `/proc/self/fd/*` included).
        Ok(meta) => match Kind::of(&meta) {
            Kind::Regular => {
                let real = std::fs::canonicalize(path).map_err(|e| fail(&e))?;
                return replace_file(&real, Some(meta), contents).map_err(|e| fail(&e));
            }
            Kind::Stream => return write_stream(path, contents).map_err(|e| fail(&e)),
            Kind::Refused(what) => {
                return Err(fail(&format_args!(
                    "it is {what}; only regular files, FIFOs and character devices are written"
                )))
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            resolve_dangling(path).map_err(|e| fail(&e))?
        }
        Err(error) => return Err(fail(&error)),
    };
    replace_file(&target, None, contents).map_err(|e| fail(&e))
}

/// What [`write_atomically`] does with an existing target.
enum Kind {
    /// Replace it atomically.
    Regular,
    /// Write into it directly.
    Stream,
    /// Refuse it, saying what it is.
    Refused(&'static str),
}

impl Kind {
    fn of(meta: &std::fs::Metadata) -> Kind {
        let kind = meta.file_type();
        if kind.is_file() {
            return Kind::Regular;
        }
        if kind.is_dir() {
            return Kind::Refused("a directory");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_fifo() || kind.is_char_device() {
                return Kind::Stream;
            }
            if kind.is_socket() {
                return Kind::Refused("a socket");
            }
            if kind.is_block_device() {
                return Kind::Refused("a block device");
            }
        }
        Kind::Refused("not a regular file")
    }
}

/// The path a missing `path` is to be created at: `path` itself, or the end of the chain of
/// symbolic links it starts (a dangling link creates the file it names, as a shell's `>` does).
fn resolve_dangling(path: &Path) -> Result<std::path::PathBuf, Error> {
    let mut target = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&target)?;
                target = match target.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            // Something appeared in the meantime: replace it only if it is a regular file.
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(format!("{} is not a regular file", target.display()).into())
            }
            _ => return Ok(target),
        }
    }
    Err("too many levels of symbolic links".into())
}

/// Writes into a FIFO or a device in place: no temporary file, no rename, no truncation.
fn write_stream<F>(path: &Path, contents: F) -> Result<(), Error>
where
    F: FnOnce(&mut dyn Write) -> Result<(), Error>,
{
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut writer = std::io::BufWriter::new(file);
    contents(&mut writer)?;
    writer.flush()?;
    Ok(())
}

/// Replaces the regular file (or creates the new one) at `path`, whose links are resolved, through
/// a temporary file in its directory; `meta` is the existing file's.
fn replace_file<F>(path: &Path, meta: Option<std::fs::Metadata>, contents: F) -> Result<(), Error>
where
    F: FnOnce(&mut dyn Write) -> Result<(), Error>,
{
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or("not a file name")?;
    let mut builder = tempfile::Builder::new();
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    builder.prefix(&prefix).suffix(".tmp");
    let permissions = meta.map(|meta| meta.permissions());
    // Renaming would replace a file its owner protected; writing in place would be refused.
    if permissions.as_ref().is_some_and(|p| p.readonly()) {
        return Err("the file is read-only".into());
    }
    #[cfg(unix)]
    let permissions = permissions.or_else(|| {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(0o666))
    });
    if let Some(permissions) = permissions {
        builder.permissions(permissions);
    }
    let mut file = builder.tempfile_in(directory)?;
    {
        let mut writer = std::io::BufWriter::new(file.as_file_mut());
        contents(&mut writer)?;
        writer.flush()?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes an SVG document atomically (see [`write_atomically`]).
pub fn save(path: &Path, svg: &str) -> Result<(), Error> {
    write_atomically(path, |out| Ok(out.write_all(svg.as_bytes())?))
}
