//! SVG figures of the study (plotters): accuracy histograms over seeds (the paper's Fig 5), mean
//! train/test curves of SGD vs SGD + H1 (Figs 4, 8, 9), accuracy vs λ (Fig 6) and vs learning rate.
//! Their look (palette, line styles, legend beside the chart, atomic output) is shared with the
//! `chandir` command: `cli/src/figure.rs`, included here.

#[path = "../../cli/src/figure.rs"]
mod figure;

use std::path::Path;

use chandir::{Boundary, Direction};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::{
    find_sgd, h1, has_sweeps, lambda_sweep, lr_sweep, plain, sgd_lr, BoxError, DataKind, Dataset,
    Family, Summary, DEFAULT_LAMBDA,
};
use figure::{colour, tick_label, Curve, Dash, Entry, Marker, Sample, Style};

fn slug(data: &Dataset) -> &'static str {
    match data.kind {
        DataKind::Mnist1d => "mnist1d",
        DataKind::Digits => "digits",
    }
}

/// Writes every figure for every (data set, batch size) that was trained.
pub fn write_all(out: &Path, datasets: &[Dataset], summaries: &[Summary]) -> Result<(), BoxError> {
    for (d, data) in datasets.iter().enumerate() {
        let mut batches: Vec<usize> = summaries
            .iter()
            .filter(|s| s.config.dataset == d)
            .map(|s| s.config.batch)
            .collect();
        batches.dedup();
        for &batch in &batches {
            let main: Vec<&Summary> = summaries
                .iter()
                .filter(|s| {
                    s.config.dataset == d
                        && s.config.batch == batch
                        && s.config.family == Family::Main
                })
                .collect();
            let title = format!("{}, batch {batch}", data.name);
            histograms(
                &out.join(format!("hist_{}_b{batch}.svg", slug(data))),
                &title,
                &main,
            )?;
            let lr = sgd_lr(batch);
            let h1_output = h1(DEFAULT_LAMBDA, Boundary::Neumann, Direction::Output);
            if let (Some(sgd), Some(smoothed)) = (
                find_sgd(summaries, d, batch, plain(), lr),
                find_sgd(summaries, d, batch, h1_output, lr),
            ) {
                curves(
                    &out.join(format!("curves_{}_b{batch}.svg", slug(data))),
                    &title,
                    sgd,
                    smoothed,
                )?;
            }
            if has_sweeps(summaries, d, batch) {
                let sweep = lambda_sweep(summaries, d, batch);
                lambda_plot(
                    &out.join(format!("lambda_{}_b{batch}.svg", slug(data))),
                    &title,
                    &sweep,
                )?;
                let series = [
                    ("SGD", lr_sweep(summaries, d, batch, plain())),
                    (
                        "SGD + H1 output (λ = 1)",
                        lr_sweep(summaries, d, batch, h1_output),
                    ),
                ];
                lr_plot(
                    &out.join(format!("lr_{}_b{batch}.svg", slug(data))),
                    &title,
                    &series,
                )?;
            }
        }
    }
    Ok(())
}

fn accuracy_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = ((hi - lo) * 0.05).max(0.5);
    ((lo - pad).max(0.0), (hi + pad).min(100.0))
}

/// One histogram of final test accuracies over seeds per method, on a shared axis.
fn histograms(path: &Path, title: &str, methods: &[&Summary]) -> Result<(), BoxError> {
    let cols = 2;
    let rows = methods.len().div_ceil(cols).max(1);
    let (lo, hi) = accuracy_range(
        methods
            .iter()
            .flat_map(|s| s.accuracies.iter().map(|a| 100.0 * a)),
    );
    let bins = 20;
    let width = (hi - lo) / bins as f64;
    let count = |s: &Summary| -> Vec<f64> {
        let mut counts = vec![0.0; bins];
        for a in &s.accuracies {
            let bin = (((100.0 * a - lo) / width).max(0.0) as usize).min(bins - 1);
            counts[bin] += 1.0;
        }
        counts
    };
    let y_max = methods
        .iter()
        .flat_map(|s| count(s))
        .fold(1.0_f64, f64::max);
    let edges: Vec<f64> = (0..=bins).map(|b| lo + b as f64 * width).collect();
    let svg = figure::render(
        (1000, 220 * rows as u32 + 50),
        &format!("Test accuracy over seeds — {title}"),
        &[],
        |area| {
            for (i, (panel, summary)) in area
                .split_evenly((rows, cols))
                .iter()
                .zip(methods)
                .enumerate()
            {
                // Half a bin of margin on each side: the outermost bars are whole.
                let mut chart = ChartBuilder::on(panel)
                    .caption(
                        format!(
                            "{} — {:.1} ± {:.1} %",
                            summary.config.method.name,
                            100.0 * summary.mean,
                            100.0 * summary.std
                        ),
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
                figure::draw_bars(&mut chart, &edges, &count(summary), colour(i))?;
            }
            Ok(())
        },
    )?;
    figure::save(path, &svg)
}

/// Mean train (dashed) and test (solid) accuracy per epoch, SGD vs SGD + H1 output.
fn curves(path: &Path, title: &str, sgd: &Summary, smoothed: &Summary) -> Result<(), BoxError> {
    let epoch_count = sgd.mean_train_curve.len().max(1);
    let points = |curve: &[f64]| -> Vec<(f64, f64)> {
        curve
            .iter()
            .enumerate()
            .map(|(e, a)| ((e + 1) as f64, 100.0 * a))
            .collect()
    };
    let mut lines = Vec::new();
    for (index, summary) in [sgd, smoothed].into_iter().enumerate() {
        let name = &summary.config.method.name;
        let style = Style::nth(index).dashed(Dash::Solid);
        lines.push(Curve {
            label: format!("{name}: test"),
            points: points(&summary.mean_test_curve),
            style,
        });
        lines.push(Curve {
            label: format!("{name}: train (running, during the epoch)"),
            points: points(&summary.mean_train_curve),
            style: style.dashed(Dash::Dashed),
        });
    }
    let (lo, hi) = accuracy_range(lines.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
    let legend = figure::curve_legend(&lines);
    let svg = figure::render(
        (1000, 560),
        &format!(
            "Accuracy per epoch, mean over {} seeds — {title}",
            sgd.accuracies.len()
        ),
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
            figure::draw_curves(&mut chart, &lines)
        },
    )?;
    figure::save(path, &svg)
}

/// Mean ± std test accuracy vs λ (log axis, a tick at every λ trained) for SGD + H1 output; SGD
/// (λ = 0) as a horizontal band.
fn lambda_plot(path: &Path, title: &str, sweep: &[&Summary]) -> Result<(), BoxError> {
    let (baseline, points): (Vec<&Summary>, Vec<&Summary>) =
        sweep.iter().partition(|s| s.config.lambda() == 0.0);
    if points.is_empty() {
        return Ok(());
    }
    let (lo, hi) = accuracy_range(
        sweep
            .iter()
            .flat_map(|s| [100.0 * (s.mean - s.std), 100.0 * (s.mean + s.std)]),
    );
    let lambdas: Vec<f64> = points.iter().map(|s| s.config.lambda()).collect();
    let (l_lo, l_hi) = (
        lambdas.iter().copied().fold(f64::INFINITY, f64::min) / 1.5,
        lambdas.iter().copied().fold(0.0, f64::max) * 1.5,
    );
    let band = colour(0);
    let smoothed = Style::nth(1).dashed(Dash::Solid);
    let mut legend = Vec::new();
    if !baseline.is_empty() {
        legend.push(Entry::new(
            "SGD (λ = 0): mean",
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
        &format!("Test accuracy vs λ (SGD + H1 output) — {title}"),
        &legend,
        |area| {
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(
                    (l_lo..l_hi).log_scale().with_key_points(lambdas.clone()),
                    lo..hi,
                )?;
            chart
                .configure_mesh()
                .x_desc("λ")
                .x_label_formatter(&|v| tick_label(*v))
                .y_label_formatter(&|y| tick_label(*y))
                .y_desc("test accuracy % (mean ± std over seeds)")
                .draw()?;
            if let Some(sgd) = baseline.first() {
                let (m, s) = (100.0 * sgd.mean, 100.0 * sgd.std);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(l_lo, m - s), (l_hi, m + s)],
                    band.mix(0.15).filled(),
                )))?;
                chart.draw_series(LineSeries::new(
                    [(l_lo, m), (l_hi, m)],
                    band.stroke_width(2),
                ))?;
            }
            draw_errorbar_series(&mut chart, &points, |s| s.config.lambda(), smoothed)
        },
    )?;
    figure::save(path, &svg)
}

/// Mean ± std test accuracy vs learning rate (log axis, a tick at every rate trained), one
/// series per method.
fn lr_plot(path: &Path, title: &str, series: &[(&str, Vec<&Summary>)]) -> Result<(), BoxError> {
    let all: Vec<&Summary> = series.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let (lo, hi) = accuracy_range(
        all.iter()
            .flat_map(|s| [100.0 * (s.mean - s.std), 100.0 * (s.mean + s.std)]),
    );
    let mut lrs: Vec<f64> = all.iter().map(|s| s.config.lr).collect();
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    let (x_lo, x_hi) = (lrs[0] / 1.3, lrs[lrs.len() - 1] * 1.3);
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
        &format!("Test accuracy vs learning rate — {title}"),
        &legend,
        |area| {
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(
                    (x_lo..x_hi).log_scale().with_key_points(lrs.clone()),
                    lo..hi,
                )?;
            chart
                .configure_mesh()
                .x_desc("learning rate (SGD, momentum 0.9)")
                .x_label_formatter(&|v| tick_label(*v))
                .y_label_formatter(&|y| tick_label(*y))
                .y_desc("test accuracy % (mean ± std over seeds)")
                .draw()?;
            // Series side by side at each rate (2 % apart), so that error bars do not hide each other.
            let middle = (series.len() as f64 - 1.0) / 2.0;
            for (index, ((_, points), &style)) in series.iter().zip(&styles).enumerate() {
                let dodge = 1.0 + 0.02 * (index as f64 - middle);
                draw_errorbar_series(&mut chart, points, |s| s.config.lr * dodge, style)?;
            }
            Ok(())
        },
    )?;
    figure::save(path, &svg)
}

/// Means joined by a line, with ± std error bars and the style's markers (the legend's).
fn draw_errorbar_series<X>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    points: &[&Summary],
    x: impl Fn(&Summary) -> f64,
    style: Style,
) -> Result<(), figure::Error>
where
    X: Ranged<ValueType = f64>,
{
    let stroke = style.colour.stroke_width(2);
    for s in points {
        let (m, sd) = (100.0 * s.mean, 100.0 * s.std);
        let x = x(s);
        chart.draw_series(LineSeries::new([(x, m - sd), (x, m + sd)], stroke))?;
        let area = chart.plotting_area();
        for end in [m - sd, m + sd] {
            area.draw(
                &(EmptyElement::at((x, end)) + PathElement::new(vec![(-5, 0), (5, 0)], stroke)),
            )?;
        }
    }
    let xy: Vec<(f64, f64)> = points.iter().map(|s| (x(s), 100.0 * s.mean)).collect();
    figure::draw_curves(
        chart,
        &[Curve {
            label: String::new(),
            points: xy,
            style,
        }],
    )
}
