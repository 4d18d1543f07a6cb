//! SVG figures: correlation against distance (paper Fig 1), per-channel mean against standard
//! deviation (Fig 14), histograms of pairwise correlations (Fig 13) and metric kernels (Fig 2).

use std::ops::Range;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const SIZE: (u32, u32) = (900, 600);

/// One named curve or point cloud.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

fn colour(index: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(index).to_rgba().rgb();
    RGBColor(r, g, b)
}

/// The smallest range holding every finite value, padded by 5 %; `fallback` if there is none.
fn padded_range(values: impl Iterator<Item = f64>, fallback: Range<f64>) -> Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return fallback;
    }
    let pad = if high > low {
        0.05 * (high - low)
    } else {
        0.5 * low.abs().max(1.0)
    };
    low - pad..high + pad
}

fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// `3` rather than `3.0` on axes of distances and channels; fractional ticks keep one decimal.
fn integer_label(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Lines against a shared x axis: `solid` series drawn as solid lines with circles, `dashed` ones
/// dashed with the same colour as the solid series of the same index.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    solid: &[Series],
    dashed: &[Series],
) -> Result<()> {
    let all = solid
        .iter()
        .chain(dashed)
        .flat_map(|series| series.points.iter());
    let x_range = padded_range(all.clone().map(|p| p.0), 0.0..1.0);
    let y_range = padded_range(all.map(|p| p.1), -1.0..1.0);
    draw(path, || {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .x_label_formatter(&|x| integer_label(*x))
            .y_desc(y_label)
            .draw()?;
        for (index, series) in solid.iter().enumerate() {
            let style = colour(index).stroke_width(2);
            let points = finite(&series.points);
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(series.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, style.filled())),
            )?;
        }
        for (index, series) in dashed.iter().enumerate() {
            let style = colour(index).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(finite(&series.points), 6, 4, style))?
                .label(series.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// A scatter plot, one colour per series.
pub fn scatter(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    clouds: &[Series],
) -> Result<()> {
    let all = clouds.iter().flat_map(|series| series.points.iter());
    let x_range = padded_range(all.clone().map(|p| p.0), -1.0..1.0);
    let y_range = padded_range(all.map(|p| p.1), 0.0..1.0);
    draw(path, || {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()?;
        for (index, series) in clouds.iter().enumerate() {
            let style = colour(index).filled();
            chart
                .draw_series(
                    finite(&series.points)
                        .into_iter()
                        .map(|p| Circle::new(p, 3, style)),
                )?
                .label(series.label.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Overlaid histograms on `[−1, 1]`, each normalized to fractions of its own count so that samples
/// of different sizes compare.
pub fn histograms(
    path: &Path,
    title: &str,
    x_label: &str,
    samples: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<()> {
    let width = 2.0 / bins as f64;
    let fractions: Vec<Vec<f64>> = samples
        .iter()
        .map(|(_, values)| {
            let mut counts = vec![0usize; bins];
            for v in values.iter().filter(|v| v.is_finite()) {
                let bin = (((v + 1.0) / width) as usize).min(bins - 1);
                counts[bin] += 1;
            }
            let total = counts.iter().sum::<usize>().max(1) as f64;
            counts.into_iter().map(|c| c as f64 / total).collect()
        })
        .collect();
    let top = fractions
        .iter()
        .flatten()
        .fold(0.0_f64, |m, &f| m.max(f))
        .max(1e-3)
        * 1.1;
    draw(path, || {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(-1.0..1.0, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("fraction of pairs")
            .draw()?;
        for (index, ((label, values), fraction)) in samples.iter().zip(&fractions).enumerate() {
            let fill = colour(index).mix(0.35).filled();
            let edge = colour(index).stroke_width(1);
            let bars = fraction.iter().enumerate().map(move |(bin, &f)| {
                let left = -1.0 + bin as f64 * width;
                Rectangle::new([(left, 0.0), (left + width, f)], fill)
            });
            chart
                .draw_series(bars)?
                .label(format!("{label} ({} pairs)", values.len()))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], fill));
            let outline = fraction.iter().enumerate().flat_map(|(bin, &f)| {
                let left = -1.0 + bin as f64 * width;
                [(left, f), (left + width, f)]
            });
            chart.draw_series(LineSeries::new(outline, edge))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Runs a drawing and names the file in its error.
fn draw<F>(path: &Path, body: F) -> Result<()>
where
    F: FnOnce() -> std::result::Result<(), Box<dyn std::error::Error>>,
{
    body().map_err(|error| anyhow!("cannot draw {}: {error}", path.display()))
}
