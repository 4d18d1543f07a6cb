//! SVG figures of the study (plotters): paired differences with their confidence intervals,
//! accuracy histograms over seeds (the paper's Fig 5), training and validation accuracy per epoch
//! at the tuned settings (Figs 4, 8, 9), validation accuracy vs λ (Fig 6) and vs learning rate.
//! Their look (palette, line styles, legend beside the chart, atomic output) is shared with the
//! `chandir` command: `chandir_cli::figure` (`cli/src/figure.rs`).

use std::ops::Range;
use std::path::Path;

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::data::{BoxError, DataKind};
use crate::protocol::{Method, Tuned};
use crate::report::Study;
use crate::stats;
use chandir_cli::figure::{self, colour, tick_label, Curve, Dash, Entry, Marker, Sample, Style};

/// A chart with a log x axis ticked at chosen values and a linear y axis.
type LogXChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<WithKeyPoints<LogCoord<f64>>, RangedCoordf64>>;

/// One point of an error-bar series: mean ± std of accuracies (fractions) at `x`.
struct Point {
    x: f64,
    mean: f64,
    std: f64,
}

/// Renders nothing itself: writes `svg` to `out/file` atomically and returns the file name.
fn save(out: &Path, file: String, svg: &str) -> Result<String, BoxError> {
    figure::save(&out.join(&file), svg)?;
    Ok(file)
}

/// Writes every figure the study has data for; returns the file names.
pub fn write_all(out: &Path, study: &Study) -> Result<Vec<String>, BoxError> {
    let mut files = Vec::new();
    let cells = study.cells();
    let mut kinds: Vec<DataKind> = cells.iter().map(|c| c.0).collect();
    kinds.dedup();
    for &d in &kinds {
        files.push(diffs(out, study, d)?);
    }
    for &(d, batch) in &cells {
        let title = format!("{}, batch {batch}", d.name());
        let slug = format!("{}_b{batch}", d.slug());
        let methods: Vec<(String, Vec<f64>)> = study
            .evaluated
            .iter()
            .filter(|e| e.data == d && e.batch == batch)
            .map(|e| (e.method.name().to_owned(), e.test.clone()))
            .collect();
        files.push(histograms(out, &slug, &title, &methods)?);
        let tuned = |m: Method| {
            study.tuned.iter().find(|t| {
                t.data == d && t.batch == batch && t.method == m && !t.candidates.is_empty()
            })
        };
        let with_curves: Vec<&Tuned> = [
            Method::Sgd,
            Method::SgdH1Output,
            Method::Adam,
            Method::AdamH1Output,
        ]
        .into_iter()
        .filter_map(tuned)
        .collect();
        if !with_curves.is_empty() {
            files.push(curves(out, &slug, &title, &with_curves)?);
        }
        if let (Some(sgd), Some(h1)) = (tuned(Method::Sgd), tuned(Method::SgdH1Output)) {
            if let Some(f) = lambda_plot(out, &slug, &title, sgd, h1)? {
                files.push(f);
            }
            files.push(lr_plot(out, &slug, &title, &[sgd, h1])?);
        }
    }
    Ok(files)
}

fn accuracy_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 100.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.5);
    ((lo - pad).max(0.0), (hi + pad).min(100.0))
}

/// Paired difference of test accuracy from the plain optimizer, with the 95 % t interval, for
/// every method and batch size of one data set (one colour per batch size).
fn diffs(out: &Path, study: &Study, d: DataKind) -> Result<String, BoxError> {
    let batches: Vec<usize> = study
        .cells()
        .into_iter()
        .filter(|c| c.0 == d)
        .map(|c| c.1)
        .collect();
    let mut rows: Vec<(String, stats::Interval, usize)> = Vec::new();
    for (k, &batch) in batches.iter().enumerate() {
        for e in study
            .evaluated
            .iter()
            .filter(|e| e.data == d && e.batch == batch)
        {
            if e.method == e.method.baseline() {
                continue;
            }
            if let Some(base) = study.find(d, batch, e.method.baseline()) {
                rows.push((
                    format!("{}, b{batch}", e.method.name()),
                    stats::paired_difference(&e.test, &base.test),
                    k,
                ));
            }
        }
    }
    let n = rows.len().max(1);
    let (lo, hi) = rows
        .iter()
        .flat_map(|(_, i, _)| [i.low, i.high, i.estimate])
        .filter(|v| v.is_finite())
        .map(|v| 100.0 * v)
        .fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.08).max(0.2);
    let legend: Vec<Entry> = batches
        .iter()
        .enumerate()
        .map(|(k, b)| {
            Entry::new(
                format!("batch {b}: mean, 95 % CI"),
                Sample::Point(Style {
                    marker: Marker::Circle,
                    ..Style::nth(k)
                }),
            )
        })
        .chain(std::iter::once(Entry::new(
            "left of 0: worse than the plain optimizer",
            Sample::Note,
        )))
        .collect();
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let svg = figure::render(
        (1100, 48 * n as u32 + 130),
        &format!(
            "{}: test accuracy minus SGD's / Adam's, same seeds (percentage points)",
            d.name()
        ),
        &legend,
        |area| {
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(300)
                .build_cartesian_2d((lo - pad)..(hi + pad), -0.5..(n as f64 - 0.5))?;
            chart
                .configure_mesh()
                .x_desc("difference, percentage points")
                .x_label_formatter(&|x| tick_label(*x))
                .y_labels(n)
                .y_label_formatter(&|y| {
                    let i = y.round();
                    if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                        labels[n - 1 - i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .disable_y_mesh()
                .draw()?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
                BLACK.stroke_width(1),
            )))?;
            for (k, (_, interval, batch)) in rows.iter().enumerate() {
                let y = (n - 1 - k) as f64;
                let c = colour(*batch);
                if interval.low.is_finite() {
                    chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                        y,
                        100.0 * interval.low,
                        100.0 * interval.estimate,
                        100.0 * interval.high,
                        c.stroke_width(2),
                        12,
                    )))?;
                }
                chart.draw_series(std::iter::once(Circle::new(
                    (100.0 * interval.estimate, y),
                    5,
                    c.filled(),
                )))?;
            }
            Ok(())
        },
    )?;
    save(out, format!("diffs_{}.svg", d.slug()), &svg)
}

/// One histogram of final test accuracies over seeds per method, on a shared axis.
fn histograms(
    out: &Path,
    slug: &str,
    title: &str,
    methods: &[(String, Vec<f64>)],
) -> Result<String, BoxError> {
    let cols = 2;
    let rows = methods.len().div_ceil(cols).max(1);
    let (lo, hi) = accuracy_range(
        methods
            .iter()
            .flat_map(|(_, accs)| accs.iter().map(|a| 100.0 * a)),
    );
    let bins = 20;
    let width = (hi - lo) / bins as f64;
    let count = |accs: &[f64]| -> Vec<f64> {
        let mut counts = vec![0.0; bins];
        for a in accs {
            let bin = (((100.0 * a - lo) / width).max(0.0) as usize).min(bins - 1);
            counts[bin] += 1.0;
        }
        counts
    };
    let y_max = methods
        .iter()
        .flat_map(|(_, accs)| count(accs))
        .fold(1.0_f64, f64::max);
    let edges: Vec<f64> = (0..=bins).map(|b| lo + b as f64 * width).collect();
    let svg = figure::render(
        (1000, 220 * rows as u32 + 50),
        &format!("Test accuracy over seeds — {title}"),
        &[],
        |area| {
            for (i, (panel, (name, accs))) in area
                .split_evenly((rows, cols))
                .iter()
                .zip(methods)
                .enumerate()
            {
                let (mean, std) = stats::mean_std(accs);
                // Half a bin of margin on each side: the outermost bars are whole.
                let mut chart = ChartBuilder::on(panel)
                    .caption(
                        format!("{name} — {:.1} ± {:.1} %", 100.0 * mean, 100.0 * std),
                        ("sans-serif", 15),
                    )
                    .margin(10)
                    .margin_right(20)
                    .x_label_area_size(30)
                    .y_label_area_size(35)
                    .build_cartesian_2d(lo - width / 2.0..hi + width / 2.0, 0.0..y_max + 0.5)?;
                chart
                    .configure_mesh()
                    .x_desc("test accuracy %")
                    .y_desc("seeds")
                    .x_label_formatter(&|x| tick_label(*x))
                    .y_label_formatter(&|y| tick_label(*y))
                    .y_labels((y_max as usize + 1).min(10))
                    .disable_x_mesh()
                    .draw()?;
                figure::draw_bars(&mut chart, &edges, &count(accs), colour(i))?;
            }
            Ok(())
        },
    )?;
    save(out, format!("hist_{slug}.svg"), &svg)
}

/// The mean validation curve of the chosen (lr, λ) of a tuning.
fn chosen_curve(t: &Tuned) -> Option<&Vec<f64>> {
    t.candidates
        .iter()
        .find(|(c, ..)| c.lr == t.chosen.lr && c.lambda == t.chosen.lambda)
        .map(|(_, mean, ..)| mean)
}

/// Validation accuracy (solid) and training accuracy (dashed) per epoch at each method's chosen
/// (lr, λ), mean over the tuning seeds, up to the longest training; a dot marks the chosen
/// number of epochs.
fn curves(out: &Path, slug: &str, title: &str, methods: &[&Tuned]) -> Result<String, BoxError> {
    let points = |curve: &[f64]| -> Vec<(f64, f64)> {
        curve
            .iter()
            .enumerate()
            .map(|(e, a)| ((e + 1) as f64, 100.0 * a))
            .collect()
    };
    let mut lines = Vec::new();
    let mut stops = Vec::new();
    for (index, t) in methods.iter().enumerate() {
        let name = t.method.name();
        let style = Style::nth(index).dashed(Dash::Solid);
        if let Some(validation) = chosen_curve(t) {
            lines.push(Curve {
                label: format!(
                    "{name}: validation (lr {}, λ {}, stops at {})",
                    t.chosen.lr, t.chosen.lambda, t.chosen.epochs
                ),
                points: points(validation),
                style,
            });
            let e = t.chosen.epochs;
            stops.push(((e as f64, 100.0 * validation[e - 1]), style));
        }
        lines.push(Curve {
            label: format!("{name}: train (running, during the epoch)"),
            points: points(&t.train_accuracy),
            style: style.dashed(Dash::Dashed),
        });
    }
    let epoch_count = methods
        .iter()
        .map(|t| t.train_accuracy.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let (lo, hi) = accuracy_range(lines.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
    let mut legend = figure::curve_legend(&lines);
    legend.push(Entry::new(
        "large dot: the epoch chosen on validation",
        Sample::Note,
    ));
    let svg = figure::render(
        (1100, 560),
        &format!("Accuracy per epoch at the tuned settings, mean over tuning seeds — {title}"),
        &legend,
        |area| {
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0.8..epoch_count as f64 + 0.2, lo..hi)?;
            chart
                .configure_mesh()
                .x_labels(epoch_count.min(12))
                .x_desc("epoch")
                .y_desc("accuracy %")
                .x_label_formatter(&|x| tick_label(*x))
                .y_label_formatter(&|y| tick_label(*y))
                .draw()?;
            figure::draw_curves(&mut chart, &lines)?;
            for (at, style) in &stops {
                chart.draw_series(std::iter::once(Circle::new(*at, 7, style.colour.filled())))?;
            }
            Ok(())
        },
    )?;
    save(out, format!("curves_{slug}.svg"), &svg)
}

/// Validation accuracy (at the chosen epochs) of a candidate, mean ± std over tuning seeds.
fn point_at(t: &Tuned, lr: f64, lambda: f64, x: f64) -> Option<Point> {
    let e = t.chosen.epochs;
    t.candidates
        .iter()
        .find(|(c, ..)| c.lr == lr && c.lambda == lambda)
        .map(|(_, mean, std, _)| Point {
            x,
            mean: mean[e - 1],
            std: std[e - 1],
        })
}

/// Validation accuracy vs λ (log axis, a tick at every λ of the grid) of SGD + H1 output at its
/// tuned lr; SGD at the same lr as a horizontal band.
fn lambda_plot(
    out: &Path,
    slug: &str,
    title: &str,
    sgd: &Tuned,
    h1: &Tuned,
) -> Result<Option<String>, BoxError> {
    let lr = h1.chosen.lr;
    let mut lambdas: Vec<f64> = h1
        .candidates
        .iter()
        .filter(|(c, ..)| c.lr == lr)
        .map(|(c, ..)| c.lambda)
        .collect();
    lambdas.sort_by(f64::total_cmp);
    lambdas.dedup();
    let points: Vec<Point> = lambdas
        .iter()
        .filter_map(|&l| point_at(h1, lr, l, l))
        .collect();
    if points.len() < 2 {
        return Ok(None);
    }
    let baseline = point_at(sgd, lr, 0.0, 0.0);
    let (lo, hi) = accuracy_range(
        points
            .iter()
            .chain(baseline.as_ref())
            .flat_map(|p| [100.0 * (p.mean - p.std), 100.0 * (p.mean + p.std)]),
    );
    let (l_lo, l_hi) = (lambdas[0] / 1.5, lambdas[lambdas.len() - 1] * 1.5);
    let band = colour(0);
    let smoothed = Style::nth(1).dashed(Dash::Solid);
    let mut legend = Vec::new();
    if baseline.is_some() {
        legend.push(Entry::new(
            format!("SGD (λ = 0) at lr {lr}: mean"),
            Sample::Line(Style {
                marker: Marker::None,
                ..Style::nth(0)
            }),
        ));
        legend.push(Entry::new("SGD (λ = 0): ± std", Sample::Fill(band)));
    }
    legend.push(Entry::new(
        "SGD + H1 output: mean ± std",
        Sample::Line(smoothed),
    ));
    let svg = figure::render(
        (1000, 560),
        &format!("Validation accuracy vs λ (SGD + H1 output, lr {lr}) — {title}"),
        &legend,
        |area| {
            let mut chart = log_x_chart(area, l_lo..l_hi, &lambdas, lo..hi, "λ")?;
            if let Some(p) = &baseline {
                let (m, s) = (100.0 * p.mean, 100.0 * p.std);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(l_lo, m - s), (l_hi, m + s)],
                    band.mix(0.15).filled(),
                )))?;
                chart.draw_series(LineSeries::new(
                    [(l_lo, m), (l_hi, m)],
                    band.stroke_width(2),
                ))?;
            }
            draw_errorbar_series(&mut chart, &points, 1.0, smoothed)
        },
    )?;
    save(out, format!("lambda_{slug}.svg"), &svg).map(Some)
}

/// Validation accuracy vs learning rate (log axis, a tick at every rate of the grid): SGD, and
/// SGD + H1 output at its tuned λ.
fn lr_plot(out: &Path, slug: &str, title: &str, methods: &[&Tuned]) -> Result<String, BoxError> {
    let series: Vec<(String, Vec<Point>)> = methods
        .iter()
        .map(|t| {
            let mut lrs: Vec<f64> = t.candidates.iter().map(|(c, ..)| c.lr).collect();
            lrs.dedup();
            let points = lrs
                .iter()
                .filter_map(|&lr| point_at(t, lr, t.chosen.lambda, lr))
                .collect();
            let name = if t.method.smooths() {
                format!("{} (λ = {})", t.method.name(), t.chosen.lambda)
            } else {
                t.method.name().to_owned()
            };
            (name, points)
        })
        .collect();
    let all: Vec<&Point> = series.iter().flat_map(|(_, p)| p).collect();
    let (lo, hi) = accuracy_range(
        all.iter()
            .flat_map(|p| [100.0 * (p.mean - p.std), 100.0 * (p.mean + p.std)]),
    );
    let mut lrs: Vec<f64> = all.iter().map(|p| p.x).collect();
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    let (x_lo, x_hi) = (
        lrs.first().copied().unwrap_or(0.01) / 1.3,
        lrs.last().copied().unwrap_or(1.0) * 1.3,
    );
    let styles: Vec<Style> = (0..series.len())
        .map(|i| Style::nth(i).dashed(Dash::Solid))
        .collect();
    let legend: Vec<Entry> = series
        .iter()
        .zip(&styles)
        .map(|((name, _), &style)| Entry::new(format!("{name}: mean ± std"), Sample::Line(style)))
        .collect();
    let svg = figure::render(
        (1000, 560),
        &format!("Validation accuracy vs learning rate — {title}"),
        &legend,
        |area| {
            let mut chart = log_x_chart(
                area,
                x_lo..x_hi,
                &lrs,
                lo..hi,
                "learning rate (SGD, momentum 0.9)",
            )?;
            // Series side by side at each rate (2 % apart), so that error bars do not hide each other.
            let middle = (series.len() as f64 - 1.0) / 2.0;
            for (index, ((_, points), &style)) in series.iter().zip(&styles).enumerate() {
                let dodge = 1.0 + 0.02 * (index as f64 - middle);
                draw_errorbar_series(&mut chart, points, dodge, style)?;
            }
            Ok(())
        },
    )?;
    save(out, format!("lr_{slug}.svg"), &svg)
}

/// The chart of validation accuracy (mean ± std over the tuning seeds) against a grid
/// parameter: log x axis with a tick at every value of `grid`.
fn log_x_chart<'a, 'b>(
    area: &'a figure::Area<'b>,
    x: Range<f64>,
    grid: &[f64],
    y: Range<f64>,
    x_desc: &str,
) -> Result<LogXChart<'a, 'b>, figure::Error> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x.log_scale().with_key_points(grid.to_vec()), y)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|y| tick_label(*y))
        .y_desc("validation accuracy % (mean ± std, tuning seeds)")
        .draw()?;
    Ok(chart)
}

/// Means joined by a line, with ± std error bars and the style's markers (the legend's); each x
/// is multiplied by `dodge`.
fn draw_errorbar_series<X>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    points: &[Point],
    dodge: f64,
    style: Style,
) -> Result<(), figure::Error>
where
    X: Ranged<ValueType = f64>,
{
    let stroke = style.colour.stroke_width(2);
    for p in points {
        let (m, sd) = (100.0 * p.mean, 100.0 * p.std);
        let x = p.x * dodge;
        chart.draw_series(LineSeries::new([(x, m - sd), (x, m + sd)], stroke))?;
        let area = chart.plotting_area();
        for end in [m - sd, m + sd] {
            area.draw(
                &(EmptyElement::at((x, end)) + PathElement::new(vec![(-5, 0), (5, 0)], stroke)),
            )?;
        }
    }
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.x * dodge, 100.0 * p.mean))
        .collect();
    figure::draw_curves(
        chart,
        &[Curve {
            label: String::new(),
            points: xy,
            style,
        }],
    )
}
