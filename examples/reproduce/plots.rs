//! SVG figures of the study (plotters): paired differences with their confidence intervals,
//! accuracy histograms over seeds (the paper's Fig 5), train loss and validation accuracy per
//! epoch (Figs 4, 8, 9), validation accuracy vs λ (Fig 6) and vs learning rate. Each file is
//! rendered in memory and written atomically.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::{BoxError, DataKind};
use crate::protocol::{Method, Tuned};
use crate::report::Study;
use crate::stats;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One point of an error-bar series: mean ± std of accuracies (fractions) at `x`.
struct Point {
    x: f64,
    mean: f64,
    std: f64,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Renders one figure into memory and writes it atomically to `out/file`; returns the file name.
fn svg(
    out: &Path,
    file: String,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), BoxError>,
) -> Result<String, BoxError> {
    let mut buffer = String::new();
    {
        let root = SVGBackend::with_string(&mut buffer, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    crate::write_atomic(&out.join(&file), buffer)?;
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
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 100.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.5);
    ((lo - pad).max(0.0), (hi + pad).min(100.0))
}

/// Paired difference of test accuracy from the plain optimizer, with the 95 % t interval, for
/// every method and batch size of one data set.
fn diffs(out: &Path, study: &Study, d: DataKind) -> Result<String, BoxError> {
    let mut rows: Vec<(String, stats::Interval, usize)> = Vec::new();
    for (i, &(data, batch)) in study.cells().iter().enumerate() {
        if data != d {
            continue;
        }
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
                    i,
                ));
            }
        }
    }
    let file = format!("diffs_{}.svg", d.slug());
    let n = rows.len().max(1);
    svg(out, file, (1000, 60 * n as u32 + 120), |root| {
        let finite = rows
            .iter()
            .flat_map(|(_, i, _)| [i.low, i.high, i.estimate])
            .filter(|v| v.is_finite())
            .map(|v| 100.0 * v);
        let (lo, hi) = finite.fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.08).max(0.2);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: test accuracy minus the plain optimizer's, same seeds (mean, 95 % CI)",
                    d.name()
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(300)
            .build_cartesian_2d((lo - pad)..(hi + pad), -0.5..(n as f64 - 0.5))?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .x_desc("difference, percentage points")
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
        for (k, (_, interval, cell)) in rows.iter().enumerate() {
            let y = (n - 1 - k) as f64;
            let color = PALETTE[cell % PALETTE.len()];
            if interval.low.is_finite() {
                chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                    y,
                    100.0 * interval.low,
                    100.0 * interval.estimate,
                    100.0 * interval.high,
                    color.stroke_width(2),
                    12,
                )))?;
            }
            chart.draw_series(std::iter::once(Circle::new(
                (100.0 * interval.estimate, y),
                5,
                color.filled(),
            )))?;
        }
        Ok(())
    })
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
    let file = format!("hist_{slug}.svg");
    svg(out, file, (1000, 220 * rows as u32 + 40), |root| {
        let root = root.titled(
            &format!("Test accuracy over seeds — {title}"),
            ("sans-serif", 22),
        )?;
        let (lo, hi) = accuracy_range(
            methods
                .iter()
                .flat_map(|(_, accs)| accs.iter().map(|a| 100.0 * a)),
        );
        let bins = 20;
        let width = (hi - lo) / bins as f64;
        let count = |accs: &[f64]| -> Vec<usize> {
            let mut counts = vec![0; bins];
            for a in accs {
                let bin = (((100.0 * a - lo) / width).max(0.0) as usize).min(bins - 1);
                counts[bin] += 1;
            }
            counts
        };
        let y_max = methods
            .iter()
            .flat_map(|(_, accs)| count(accs))
            .max()
            .unwrap_or(1)
            .max(1) as u32;
        for (i, (area, (name, accs))) in root
            .split_evenly((rows, cols))
            .iter()
            .zip(methods)
            .enumerate()
        {
            let (mean, std) = stats::mean_std(accs);
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{name} — {:.1} ± {:.1} %", 100.0 * mean, 100.0 * std),
                    ("sans-serif", 15),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(35)
                .build_cartesian_2d(lo..hi, 0u32..y_max + 1)?;
            chart
                .configure_mesh()
                .x_desc("test accuracy %")
                .y_desc("seeds")
                .disable_x_mesh()
                .draw()?;
            let color = PALETTE[i % PALETTE.len()];
            chart.draw_series(
                count(accs)
                    .into_iter()
                    .enumerate()
                    .filter(|(_, c)| *c > 0)
                    .map(|(b, c)| {
                        let x0 = lo + b as f64 * width;
                        Rectangle::new([(x0, 0), (x0 + width, c as u32)], color.mix(0.7).filled())
                    }),
            )?;
        }
        Ok(())
    })
}

/// The mean validation curve of the chosen (lr, λ) of a tuning.
fn chosen_curve(t: &Tuned) -> Option<&Vec<f64>> {
    t.candidates
        .iter()
        .find(|(c, ..)| c.lr == t.chosen.lr && c.lambda == t.chosen.lambda)
        .map(|(_, mean, ..)| mean)
}

/// Validation accuracy (solid) and training accuracy (dashed) per epoch at each method's chosen
/// (lr, λ), mean over the tuning seeds; a dot marks the chosen number of epochs.
fn curves(out: &Path, slug: &str, title: &str, methods: &[&Tuned]) -> Result<String, BoxError> {
    let file = format!("curves_{slug}.svg");
    svg(out, file, (900, 560), |root| {
        let epochs = methods
            .iter()
            .map(|t| t.train_accuracy.len())
            .max()
            .unwrap_or(1)
            .max(2);
        let (lo, hi) = accuracy_range(
            methods
                .iter()
                .flat_map(|t| {
                    t.train_accuracy
                        .iter()
                        .chain(chosen_curve(t).into_iter().flatten())
                        .copied()
                        .collect::<Vec<_>>()
                })
                .map(|a| 100.0 * a),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Accuracy per epoch at the tuned settings (tuning seeds) — {title}"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(1f64..epochs as f64, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy %")
            .draw()?;
        for (i, t) in methods.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let name = t.method.name();
            let points = |curve: &[f64]| -> Vec<(f64, f64)> {
                curve
                    .iter()
                    .enumerate()
                    .map(|(e, a)| ((e + 1) as f64, 100.0 * a))
                    .collect()
            };
            if let Some(validation) = chosen_curve(t) {
                chart
                    .draw_series(LineSeries::new(points(validation), color.stroke_width(2)))?
                    .label(format!(
                        "{name}: validation (lr {}, λ {}, stop at {})",
                        t.chosen.lr, t.chosen.lambda, t.chosen.epochs
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                let e = t.chosen.epochs;
                chart.draw_series(std::iter::once(Circle::new(
                    (e as f64, 100.0 * validation[e - 1]),
                    5,
                    color.filled(),
                )))?;
            }
            chart
                .draw_series(DashedLineSeries::new(
                    points(&t.train_accuracy),
                    6,
                    4,
                    color.into(),
                ))?
                .label(format!("{name}: train (running, during the epoch)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
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

/// Validation accuracy vs λ (log axis) of SGD + H1 output at its tuned lr; SGD at the same lr as
/// a horizontal band.
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
    lambdas.dedup();
    let points: Vec<Point> = lambdas
        .iter()
        .filter_map(|&l| point_at(h1, lr, l, l))
        .collect();
    if points.len() < 2 {
        return Ok(None);
    }
    let baseline = point_at(sgd, lr, 0.0, 0.0);
    let file = format!("lambda_{slug}.svg");
    svg(out, file, (900, 560), |root| {
        let (lo, hi) = accuracy_range(
            points
                .iter()
                .chain(baseline.as_ref())
                .flat_map(|p| [100.0 * (p.mean - p.std), 100.0 * (p.mean + p.std)]),
        );
        let (l_lo, l_hi) = (
            lambdas.iter().copied().fold(f64::INFINITY, f64::min) / 1.5,
            lambdas.iter().copied().fold(0.0, f64::max) * 1.5,
        );
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Validation accuracy vs λ (SGD + H1 output, lr {lr}) — {title}"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((l_lo..l_hi).log_scale(), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("λ")
            .x_label_formatter(&|v| tick_label(*v))
            .y_desc("validation accuracy % (mean ± std, tuning seeds)")
            .draw()?;
        if let Some(p) = &baseline {
            let (m, s) = (100.0 * p.mean, 100.0 * p.std);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(l_lo, m - s), (l_hi, m + s)],
                PALETTE[0].mix(0.15).filled(),
            )))?;
            chart
                .draw_series(LineSeries::new(
                    [(l_lo, m), (l_hi, m)],
                    PALETTE[0].stroke_width(2),
                ))?
                .label(format!("SGD (λ = 0) at lr {lr}, mean ± std"))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[0].stroke_width(2))
                });
        }
        draw_errorbar_series(&mut chart, &points, PALETTE[1], "SGD + H1 output")?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
    .map(Some)
}

/// Validation accuracy vs learning rate (log axis): SGD, and SGD + H1 output at its tuned λ.
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
    let file = format!("lr_{slug}.svg");
    svg(out, file, (900, 560), |root| {
        let all: Vec<&Point> = series.iter().flat_map(|(_, p)| p).collect();
        let (lo, hi) = accuracy_range(
            all.iter()
                .flat_map(|p| [100.0 * (p.mean - p.std), 100.0 * (p.mean + p.std)]),
        );
        let (x_lo, x_hi) = (
            all.iter().map(|p| p.x).fold(f64::INFINITY, f64::min) / 1.3,
            all.iter().map(|p| p.x).fold(0.0, f64::max) * 1.3,
        );
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Validation accuracy vs learning rate — {title}"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("learning rate (SGD, momentum 0.9)")
            .x_label_formatter(&|v| tick_label(*v))
            .y_desc("validation accuracy % (mean ± std, tuning seeds)")
            .draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            draw_errorbar_series(&mut chart, points, PALETTE[i % PALETTE.len()], name)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// A log-axis tick without float noise (0.30000000000000004 → 0.3).
fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

type LogChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::combinators::LogCoord<f64>,
        plotters::coord::types::RangedCoordf64,
    >,
>;

fn draw_errorbar_series(
    chart: &mut LogChart<'_, '_>,
    points: &[Point],
    color: RGBColor,
    name: &str,
) -> Result<(), BoxError> {
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.x, 100.0 * p.mean)).collect();
    chart
        .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(points.iter().map(|p| {
        let (m, sd) = (100.0 * p.mean, 100.0 * p.std);
        ErrorBar::new_vertical(p.x, m - sd, m, m + sd, color.stroke_width(2), 10)
    }))?;
    chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    Ok(())
}
