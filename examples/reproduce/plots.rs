//! SVG figures of the study (plotters): accuracy histograms over seeds (the paper's Fig 5), mean
//! train/test curves of SGD vs SGD + H1 (Figs 4, 8, 9), accuracy vs λ (Fig 6) and vs learning rate.

use std::path::Path;

use chandir::{Boundary, Direction};
use plotters::prelude::*;

use crate::{
    find_sgd, h1, has_sweeps, lambda_sweep, lr_sweep, plain, sgd_lr, BoxError, DataKind, Dataset,
    Family, Summary, DEFAULT_LAMBDA,
};

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
    let root = SVGBackend::new(path, (1000, 220 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("Test accuracy over seeds — {title}"),
        ("sans-serif", 22),
    )?;
    let (lo, hi) = accuracy_range(
        methods
            .iter()
            .flat_map(|s| s.accuracies.iter().map(|a| 100.0 * a)),
    );
    let bins = 20;
    let width = (hi - lo) / bins as f64;
    let count = |s: &Summary| -> Vec<usize> {
        let mut counts = vec![0; bins];
        for a in &s.accuracies {
            let bin = (((100.0 * a - lo) / width) as usize).min(bins - 1);
            counts[bin] += 1;
        }
        counts
    };
    let y_max = methods
        .iter()
        .flat_map(|s| count(s))
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    for (i, (area, summary)) in root
        .split_evenly((rows, cols))
        .iter()
        .zip(methods)
        .enumerate()
    {
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{} — {:.1} ± {:.1} %",
                    summary.config.method.name,
                    100.0 * summary.mean,
                    100.0 * summary.std
                ),
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
            count(summary)
                .into_iter()
                .enumerate()
                .filter(|(_, c)| *c > 0)
                .map(|(b, c)| {
                    let x0 = lo + b as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, c as u32)], color.mix(0.7).filled())
                }),
        )?;
    }
    root.present()?;
    Ok(())
}

/// Mean train (dashed) and test (solid) accuracy per epoch, SGD vs SGD + H1 output.
fn curves(path: &Path, title: &str, sgd: &Summary, smoothed: &Summary) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let epochs = sgd.mean_train_curve.len().max(1);
    let all = [sgd, smoothed]
        .iter()
        .flat_map(|s| {
            s.mean_train_curve
                .iter()
                .chain(&s.mean_test_curve)
                .map(|a| 100.0 * a)
        })
        .collect::<Vec<_>>();
    let (lo, hi) = accuracy_range(all.into_iter());
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Accuracy per epoch, mean over {} seeds — {title}",
                sgd.accuracies.len()
            ),
            ("sans-serif", 20),
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
    for (summary, color) in [(sgd, PALETTE[0]), (smoothed, PALETTE[1])] {
        let name = &summary.config.method.name;
        let points = |curve: &[f64]| -> Vec<(f64, f64)> {
            curve
                .iter()
                .enumerate()
                .map(|(e, a)| ((e + 1) as f64, 100.0 * a))
                .collect()
        };
        chart
            .draw_series(LineSeries::new(
                points(&summary.mean_test_curve),
                color.stroke_width(2),
            ))?
            .label(format!("{name}: test"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                points(&summary.mean_train_curve),
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
    root.present()?;
    Ok(())
}

/// Mean ± std test accuracy vs λ (log axis) for SGD + H1 output; SGD (λ = 0) as a horizontal band.
fn lambda_plot(path: &Path, title: &str, sweep: &[&Summary]) -> Result<(), BoxError> {
    let (baseline, points): (Vec<&Summary>, Vec<&Summary>) =
        sweep.iter().partition(|s| s.config.lambda() == 0.0);
    if points.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
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
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Test accuracy vs λ (SGD + H1 output) — {title}"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((l_lo..l_hi).log_scale(), lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("λ")
        .x_label_formatter(&|v| tick_label(*v))
        .y_desc("test accuracy % (mean ± std over seeds)")
        .draw()?;
    if let Some(sgd) = baseline.first() {
        let (m, s) = (100.0 * sgd.mean, 100.0 * sgd.std);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(l_lo, m - s), (l_hi, m + s)],
            PALETTE[0].mix(0.15).filled(),
        )))?;
        chart
            .draw_series(LineSeries::new(
                [(l_lo, m), (l_hi, m)],
                PALETTE[0].stroke_width(2),
            ))?
            .label("SGD (λ = 0), mean ± std")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[0].stroke_width(2))
            });
    }
    draw_errorbar_series(
        &mut chart,
        &points,
        |s| s.config.lambda(),
        PALETTE[1],
        "SGD + H1 output",
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Mean ± std test accuracy vs learning rate (log axis), one series per method.
fn lr_plot(path: &Path, title: &str, series: &[(&str, Vec<&Summary>)]) -> Result<(), BoxError> {
    let all: Vec<&Summary> = series.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = accuracy_range(
        all.iter()
            .flat_map(|s| [100.0 * (s.mean - s.std), 100.0 * (s.mean + s.std)]),
    );
    let lrs: Vec<f64> = all.iter().map(|s| s.config.lr).collect();
    let (x_lo, x_hi) = (
        lrs.iter().copied().fold(f64::INFINITY, f64::min) / 1.3,
        lrs.iter().copied().fold(0.0, f64::max) * 1.3,
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Test accuracy vs learning rate — {title}"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("learning rate (SGD, momentum 0.9)")
        .x_label_formatter(&|v| tick_label(*v))
        .y_desc("test accuracy % (mean ± std over seeds)")
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        draw_errorbar_series(
            &mut chart,
            points,
            |s| s.config.lr,
            PALETTE[i % PALETTE.len()],
            name,
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
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
    points: &[&Summary],
    x: impl Fn(&Summary) -> f64,
    color: RGBColor,
    name: &str,
) -> Result<(), BoxError> {
    let xy: Vec<(f64, f64)> = points.iter().map(|s| (x(s), 100.0 * s.mean)).collect();
    chart
        .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(points.iter().map(|s| {
        let (m, sd) = (100.0 * s.mean, 100.0 * s.std);
        ErrorBar::new_vertical(x(s), m - sd, m, m + sd, color.stroke_width(2), 10)
    }))?;
    chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    Ok(())
}
