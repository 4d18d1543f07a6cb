//! `chandir`: weight-correlation analysis of stored CNN weights, impulse responses of the metrics,
//! and channel-directed smoothing of stored tensors (Lao et al., arXiv 2008.10766).

#[cfg(test)]
mod fuzz;
mod plots;
mod tensors;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chandir::analysis::{
    impulse_response, output_vs_input, slice_moments, AxisCorrelation, LayerCorrelation,
};
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use chandir_cli::figure;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand, ValueEnum};

use figure::{Curve, Style};
use tensors::{Tensor, TensorFile};

/// The longest fiber `kernel` accepts: its table has one row per channel.
const MAX_KERNEL_N: u32 = 1 << 20;

#[derive(Parser)]
#[command(
    name = "chandir",
    version,
    about = "Channel-directed gradients: weight analysis, metric kernels, smoothing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Correlation between weight slices along the output (axis 0) and input (axis 1) channels.
    Correlation(CorrelationArgs),
    /// Impulse responses (columns of A⁻¹) of every metric, side by side.
    Kernel(KernelArgs),
    /// Apply a channel-directed preconditioner to a stored .npy tensor, keeping its dtype.
    Smooth(SmoothArgs),
}

#[derive(clap::Args)]
struct CorrelationArgs {
    /// A .safetensors or .npy file.
    file: PathBuf,
    /// Analyse this tensor (repeatable); default: every tensor of rank >= 3 (a .npy array of rank >= 2).
    #[arg(long = "tensor", value_name = "NAME")]
    tensors: Vec<String>,
    /// Largest channel distance d for the means and plots (the table shows d = 1, 2, 4).
    #[arg(long, value_name = "D", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    max_distance: u32,
    /// Write mean correlation against d, output vs input, as SVG.
    #[arg(long, value_name = "SVG")]
    plot: Option<PathBuf>,
    /// Write per-output-channel mean against standard deviation, one colour per tensor, as SVG.
    #[arg(long, value_name = "SVG")]
    scatter: Option<PathBuf>,
    /// Write histograms of all pairwise correlations (d <= D), output vs input, as SVG.
    #[arg(long, value_name = "SVG")]
    hist: Option<PathBuf>,
}

#[derive(clap::Args)]
struct KernelArgs {
    /// Fiber length (number of channels).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    n: u32,
    /// Metric strength λ >= 0.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    lambda: f64,
    /// Channel of the unit impulse; default n / 2.
    #[arg(long, value_name = "C")]
    channel: Option<usize>,
    /// Write the responses as SVG.
    #[arg(long, value_name = "SVG")]
    plot: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SmoothArgs {
    /// Input .npy (float32 or float64).
    input: PathBuf,
    /// Output .npy, same dtype and shape: a file is replaced atomically (a link's target, the link
    /// kept), a FIFO or character device written into, a directory, socket or block device refused.
    output: PathBuf,
    #[arg(long, value_enum, default_value_t = MetricName::H1)]
    metric: MetricName,
    /// Metric strength λ >= 0 (ignored by h0).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    lambda: f64,
    /// Boundary of the H1 metric.
    #[arg(long, value_enum, default_value_t = BoundaryName::Neumann)]
    boundary: BoundaryName,
    /// output | input | flattened | an axis number.
    #[arg(long, default_value = "output", value_parser = parse_direction)]
    direction: Direction,
}

#[derive(Clone, Copy, ValueEnum)]
enum MetricName {
    H0,
    ReweightedH0,
    H1,
}

#[derive(Clone, Copy, ValueEnum)]
enum BoundaryName {
    Neumann,
    Periodic,
    Dirichlet,
}

impl From<BoundaryName> for Boundary {
    fn from(name: BoundaryName) -> Self {
        match name {
            BoundaryName::Neumann => Boundary::Neumann,
            BoundaryName::Periodic => Boundary::Periodic,
            BoundaryName::Dirichlet => Boundary::Dirichlet,
        }
    }
}

fn parse_direction(text: &str) -> Result<Direction, String> {
    match text.to_ascii_lowercase().as_str() {
        "output" => Ok(Direction::Output),
        "input" => Ok(Direction::Input),
        "flattened" => Ok(Direction::Flattened),
        other => other.parse::<usize>().map(Direction::Axis).map_err(|_| {
            format!("expected output, input, flattened or an axis number, got {text:?}")
        }),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let outcome = match cli.command {
        Command::Correlation(args) => correlation(&args),
        Command::Kernel(args) => kernel(&args),
        Command::Smooth(args) => smooth(&args),
    };
    match outcome {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chandir: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap prints them; a usage error becomes one line on stderr,
/// like every other error, with clap's exit code.
fn usage_error(error: clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let rendered = error.render().to_string();
    let first = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("chandir: error: {message} (see chandir --help)");
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
}

/// The context chain joined by ": ", on one line. A cause whose text its parent already quotes
/// (ndarray-npy and safetensors errors print their source) is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message.replace('\n', " ")
}

/// One analysed tensor.
struct Layer {
    name: String,
    shape: Vec<usize>,
    correlation: LayerCorrelation,
    /// (mean, std) of every output channel.
    channel_moments: Vec<(f64, f64)>,
}

fn analyse(name: &str, tensor: &Tensor, max_distance: usize) -> Result<Layer> {
    let shape = tensor.shape().to_vec();
    if shape.len() < 2 {
        bail!(
            "tensor {name:?} has shape {shape:?}: rank {} is too low (>= 2 needed)",
            shape.len()
        );
    }
    if shape.contains(&0) {
        bail!("tensor {name:?} has shape {shape:?}: it holds no values");
    }
    let (correlation, moments) = match tensor {
        Tensor::F32(array) => (
            output_vs_input(array, max_distance)?,
            slice_moments(array, 0)?,
        ),
        Tensor::F64(array) => (
            output_vs_input(array, max_distance)?,
            slice_moments(array, 0)?,
        ),
    };
    Ok(Layer {
        name: name.to_owned(),
        shape,
        correlation,
        channel_moments: moments.iter().map(|m| (m.mean, m.std)).collect(),
    })
}

fn correlation(args: &CorrelationArgs) -> Result<String> {
    let file = TensorFile::open(&args.file)?;
    let names: Vec<String> = if args.tensors.is_empty() {
        let single_array = matches!(file, TensorFile::Npy { .. });
        let min_rank = if single_array { 2 } else { 3 };
        let picked: Vec<String> = file
            .headers()
            .into_iter()
            .filter(|header| header.shape.len() >= min_rank)
            .map(|header| header.name.clone())
            .collect();
        if picked.is_empty() {
            bail!(
                "{} holds no tensor of rank >= {min_rank} (name one with --tensor)",
                args.file.display()
            );
        }
        picked
    } else {
        args.tensors.clone()
    };
    // The table always shows d = 1, 2, 4.
    let max_distance = (args.max_distance as usize).max(4);
    let mut layers = Vec::with_capacity(names.len());
    for name in &names {
        let tensor = file.load(name)?;
        layers.push(analyse(name, &tensor, max_distance)?);
    }

    let report = table(&layers, max_distance);
    let plot_distance = args.max_distance as usize;
    if let Some(path) = &args.plot {
        plot_correlation_by_distance(path, &layers, plot_distance)?;
    }
    if let Some(path) = &args.scatter {
        let clouds: Vec<(String, Vec<(f64, f64)>)> = layers
            .iter()
            .map(|layer| (layer.name.clone(), layer.channel_moments.clone()))
            .collect();
        plots::scatter(
            path,
            "Output channels: mean vs standard deviation",
            "mean",
            "standard deviation",
            &clouds,
        )?;
    }
    if let Some(path) = &args.hist {
        let pooled = |pick: fn(&LayerCorrelation) -> &AxisCorrelation| -> Vec<f64> {
            layers
                .iter()
                .flat_map(|layer| pick(&layer.correlation).pairs.iter())
                .filter(|pair| pair.distance() <= plot_distance)
                .map(|pair| pair.correlation)
                .collect()
        };
        let samples = [
            ("output channels".to_owned(), pooled(|c| &c.output)),
            ("input channels".to_owned(), pooled(|c| &c.input)),
        ];
        let title = format!("Pairwise correlation of weight slices, d <= {plot_distance}");
        plots::histograms(path, &title, "Pearson correlation", &samples, 40)?;
    }
    Ok(report)
}

fn format_mean(correlation: &AxisCorrelation, distance: usize) -> String {
    correlation
        .mean_at(distance)
        .map_or_else(|| "-".to_owned(), |mean| format!("{mean:+.3}"))
}

fn table(layers: &[Layer], max_distance: usize) -> String {
    let name_width = layers
        .iter()
        .map(|layer| layer.name.len())
        .max()
        .unwrap_or(0)
        .max("tensor".len());
    // `8x6x3x3`: no spaces, so that each table row splits into columns on whitespace.
    let shapes: Vec<String> = layers
        .iter()
        .map(|layer| {
            layer
                .shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("x")
        })
        .collect();
    let shape_width = shapes
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("shape".len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<name_width$}  {:<shape_width$}  {:>7} {:>7} {:>7} {:>8}  {:>7} {:>7} {:>7} {:>8}",
        "tensor",
        "shape",
        "out d=1",
        "out d=2",
        "out d=4",
        "out excl",
        "in d=1",
        "in d=2",
        "in d=4",
        "in excl"
    );
    for (layer, shape) in layers.iter().zip(&shapes) {
        let (output, input) = (&layer.correlation.output, &layer.correlation.input);
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<shape_width$}  {:>7} {:>7} {:>7} {:>8}  {:>7} {:>7} {:>7} {:>8}",
            layer.name,
            shape,
            format_mean(output, 1),
            format_mean(output, 2),
            format_mean(output, 4),
            output.excluded_pairs(),
            format_mean(input, 1),
            format_mean(input, 2),
            format_mean(input, 4),
            input.excluded_pairs(),
        );
    }
    let _ = writeln!(
        out,
        "mean Pearson correlation of slices at channel distance d; excl = pairs left out (constant or non-finite slice) for d <= {max_distance}"
    );
    out
}

fn plot_correlation_by_distance(path: &Path, layers: &[Layer], max_distance: usize) -> Result<()> {
    let points = |correlation: &AxisCorrelation| -> Vec<(f64, f64)> {
        correlation
            .by_distance
            .iter()
            .filter(|entry| entry.distance <= max_distance)
            .filter_map(|entry| entry.mean.map(|mean| (entry.distance as f64, mean)))
            .collect()
    };
    // One colour and marker per tensor: solid along the output channels, dashed along the inputs.
    let mut curves = Vec::with_capacity(2 * layers.len());
    for (index, layer) in layers.iter().enumerate() {
        let style = Style::nth(index).dashed(figure::Dash::Solid);
        curves.push(Curve {
            label: format!("{} output", layer.name),
            points: points(&layer.correlation.output),
            style,
        });
        curves.push(Curve {
            label: format!("{} input", layer.name),
            points: points(&layer.correlation.input),
            style: style.dashed(figure::Dash::Dashed),
        });
    }
    plots::lines(
        path,
        "Mean correlation of weight slices at channel distance d",
        "channel distance d",
        "mean Pearson correlation (solid: output, dashed: input channels)",
        curves,
    )
}

/// Each metric's table column and legend label.
fn kernel_metrics(lambda: f64) -> Vec<(&'static str, &'static str, Metric)> {
    let h1 = |boundary| Metric::SobolevH1 { lambda, boundary };
    vec![
        ("H0", "H0 (identity)", Metric::H0),
        (
            "reweighted-H0",
            "re-weighted H0",
            Metric::ReweightedH0 { lambda },
        ),
        ("H1-neumann", "H1 Neumann", h1(Boundary::Neumann)),
        ("H1-periodic", "H1 periodic", h1(Boundary::Periodic)),
        ("H1-dirichlet", "H1 Dirichlet", h1(Boundary::Dirichlet)),
    ]
}

fn kernel(args: &KernelArgs) -> Result<String> {
    if args.n > MAX_KERNEL_N {
        bail!(
            "--n {} is too large: at most {MAX_KERNEL_N} (the table has one row per channel)",
            args.n
        );
    }
    let n = args.n as usize;
    let channel = args.channel.unwrap_or(n / 2);
    if channel >= n {
        bail!("--channel {channel} is out of range for --n {n}");
    }
    Metric::ReweightedH0 {
        lambda: args.lambda,
    }
    .validate()
    .context("--lambda")?;
    let metrics = kernel_metrics(args.lambda);
    let mut responses = Vec::with_capacity(metrics.len());
    for (index, &(_, label, metric)) in metrics.iter().enumerate() {
        let response =
            impulse_response(metric, n, channel).with_context(|| format!("metric {label}"))?;
        responses.push(Curve {
            label: label.to_owned(),
            points: response
                .iter()
                .enumerate()
                .map(|(k, &v)| (k as f64, v))
                .collect(),
            style: Style::nth(index),
        });
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "impulse responses x = A⁻¹ e_c of every metric: n = {n}, λ = {}, c = {channel}; 9 decimals",
        args.lambda
    );
    let _ = write!(out, "{:>7}", "k");
    for (column, _, _) in &metrics {
        let _ = write!(out, " {column:>13}");
    }
    let _ = writeln!(out);
    for k in 0..n {
        let _ = write!(out, "{k:>7}");
        for curve in &responses {
            let _ = write!(out, " {:>13}", decimal(curve.points[k].1));
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "{:>7}", "sum");
    for curve in &responses {
        let _ = write!(
            out,
            " {:>13}",
            decimal(curve.points.iter().map(|p| p.1).sum::<f64>())
        );
    }
    let _ = writeln!(out);

    if let Some(path) = &args.plot {
        let title = format!(
            "Impulse responses x = A⁻¹ e_c of the metrics, n = {n}, λ = {}, c = {channel}",
            args.lambda
        );
        plots::lines(path, &title, "channel k", "x_k", responses)?;
    }
    Ok(out)
}

/// A value of an impulse response in plain decimals, 9 after the point (they lie in [−1, 1]).
fn decimal(value: f64) -> String {
    let text = format!("{value:.9}");
    // −0.000000000 reads as a negative value; it is zero to the digits shown.
    if text
        .trim_start_matches('-')
        .bytes()
        .all(|b| b == b'0' || b == b'.')
    {
        text.trim_start_matches('-').to_owned()
    } else {
        text
    }
}

/// `H1 (Neumann, λ = 1)`: the metric as a reader names it.
fn describe_metric(metric: &Metric) -> String {
    match *metric {
        Metric::H0 => "H0 (identity)".to_owned(),
        Metric::ReweightedH0 { lambda } => format!("re-weighted H0 (λ = {lambda})"),
        Metric::SobolevH1 { lambda, boundary } => {
            let boundary = match boundary {
                Boundary::Neumann => "Neumann",
                Boundary::Periodic => "periodic",
                Boundary::Dirichlet => "Dirichlet",
            };
            format!("H1 ({boundary}, λ = {lambda})")
        }
    }
}

/// `axis 0 (output)`: which fibers are smoothed.
fn describe_direction(direction: Direction) -> String {
    match direction {
        Direction::Output => "axis 0 (output)".to_owned(),
        Direction::Input => "axis 1 (input)".to_owned(),
        Direction::Axis(axis) => format!("axis {axis}"),
        Direction::Flattened => "the whole tensor as one fiber (flattened)".to_owned(),
    }
}

fn smooth(args: &SmoothArgs) -> Result<String> {
    let metric = match args.metric {
        MetricName::H0 => Metric::H0,
        MetricName::ReweightedH0 => Metric::ReweightedH0 {
            lambda: args.lambda,
        },
        MetricName::H1 => Metric::SobolevH1 {
            lambda: args.lambda,
            boundary: args.boundary.into(),
        },
    };
    let preconditioner = ChannelDirected::new(metric, args.direction);
    // Checked before reading, so that a bad λ is reported as such whatever the file.
    Metric::ReweightedH0 {
        lambda: args.lambda,
    }
    .validate()
    .context("--lambda")?;
    let file = TensorFile::open(&args.input)?;
    let TensorFile::Npy { header, tensor } = file else {
        bail!(
            "{} is not a .npy file (smooth reads and writes .npy)",
            args.input.display()
        );
    };
    let mut tensor = tensor;
    match &mut tensor {
        Tensor::F32(array) => preconditioner.apply(array),
        Tensor::F64(array) => preconditioner.apply(array),
    }
    .with_context(|| {
        format!(
            "cannot smooth {} (shape {:?})",
            args.input.display(),
            header.shape
        )
    })?;
    tensors::write_npy(&args.output, &tensor)?;
    let shape: Vec<String> = header.shape.iter().map(usize::to_string).collect();
    Ok(format!(
        "wrote {} ({}, {}): {} along {}\n",
        args.output.display(),
        header.dtype,
        shape.join("×"),
        describe_metric(&metric),
        describe_direction(args.direction)
    ))
}
