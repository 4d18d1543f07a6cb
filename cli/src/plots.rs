//! SVG figures: correlation against distance (paper Fig 1), per-channel mean against standard
//! deviation (Fig 14), histograms of pairwise correlations (Fig 13) and metric kernels (Fig 2).
//! Their look (palette, line styles, legend beside the chart) comes from [`crate::figure`].

use std::ops::Range;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::figure::{
    self, colour, curve_legend, padded_range, tick_label, Curve, Entry, Sample, Style,
};

const SIZE: (u32, u32) = (1000, 600);

/// Renders and writes a figure atomically; errors name the path.
fn write(path: &Path, svg: std::result::Result<String, figure::Error>) -> Result<()> {
    let svg = svg.map_err(|error| anyhow!("cannot draw {}: {error}", path.display()))?;
    figure::save(path, &svg).map_err(|error| anyhow!(error))
}

/// A chart on linear axes.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Every figure's frame: margins, label areas, and both axes described and ticked by
/// [`tick_label`].
fn chart<'a, 'b>(
    area: &'a figure::Area<'b>,
    x: Range<f64>,
    y: Range<f64>,
    x_label: &str,
    y_label: &str,
) -> std::result::Result<Chart<'a, 'b>, figure::Error> {
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| tick_label(*x))
        .y_label_formatter(&|y| tick_label(*y))
        .draw()?;
    Ok(chart)
}

/// Curves against a shared x axis, the legend beside the chart. Curves with no finite point are
/// not drawn and are listed under the legend as having no data.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: Vec<Curve>,
) -> Result<()> {
    let (drawn, empty): (Vec<Curve>, Vec<Curve>) = curves
        .into_iter()
        .partition(|curve| !figure::finite(&curve.points).is_empty());
    let all = drawn.iter().flat_map(|curve| curve.points.iter());
    let x_range = padded_range(all.clone().map(|p| p.0), 0.03, 0.0..1.0);
    let y_range = padded_range(all.map(|p| p.1), 0.05, -1.0..1.0);
    let mut legend = curve_legend(&drawn);
    legend.extend(
        empty
            .iter()
            .map(|curve| Entry::new(format!("no data: {}", curve.label), Sample::Note)),
    );
    let svg = figure::render(SIZE, title, &legend, |area| {
        let mut chart = chart(area, x_range, y_range, x_label, y_label)?;
        figure::draw_curves(&mut chart, &drawn)
    });
    write(path, svg)
}

/// A scatter plot, one colour and marker per cloud.
pub fn scatter(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    clouds: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let all = clouds.iter().flat_map(|(_, points)| points.iter());
    let x_range = padded_range(all.clone().map(|p| p.0), 0.05, -1.0..1.0);
    let y_range = padded_range(all.map(|p| p.1), 0.05, 0.0..1.0);
    let legend: Vec<Entry> = clouds
        .iter()
        .enumerate()
        .map(|(index, (label, _))| Entry::new(label.clone(), Sample::Point(Style::nth(index))))
        .collect();
    let svg = figure::render(SIZE, title, &legend, |area| {
        let chart = chart(area, x_range, y_range, x_label, y_label)?;
        for (index, (_, points)) in clouds.iter().enumerate() {
            let style = Style::nth(index);
            for &point in &figure::finite(points) {
                figure::draw_point(chart.plotting_area(), point, style)?;
            }
        }
        Ok(())
    });
    write(path, svg)
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
                let bin = (((v + 1.0) / width).max(0.0) as usize).min(bins - 1);
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
    let legend: Vec<Entry> = samples
        .iter()
        .enumerate()
        .map(|(index, (label, values))| {
            let counted = values.iter().filter(|v| v.is_finite()).count();
            Entry::new(
                format!("{label} ({counted} pairs)"),
                Sample::Fill(colour(index)),
            )
        })
        .collect();
    let svg = figure::render(SIZE, title, &legend, |area| {
        // A margin around [−1, 1], so that the outermost bars and their outlines are not cut.
        let mut chart = chart(area, -1.08..1.08, 0.0..top, x_label, "fraction of pairs")?;
        for (index, fraction) in fractions.iter().enumerate() {
            let edges: Vec<f64> = (0..=bins).map(|bin| -1.0 + bin as f64 * width).collect();
            figure::draw_bars(&mut chart, &edges, fraction, colour(index))?;
        }
        Ok(())
    });
    write(path, svg)
}
