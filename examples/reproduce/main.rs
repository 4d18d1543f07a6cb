//! The study: what channel-directed gradients (Lao et al., arXiv 2008.10766) do on real data.
//!
//! Trains small CNNs (hand-written forward/backward on ndarray, see `model.rs`) on MNIST-1D and the
//! UCI handwritten digits with SGD and Adam, with and without channel-directed preconditioning,
//! over many seeds, and writes a markdown table, SVG plots and two checkpoints per data set.
//!
//! ```text
//! cargo run --release --example reproduce                # the full study (< 30 min on 2 cores)
//! cargo run --release --example reproduce -- --quick     # smoke run (< 1 min)
//! cargo run --release --example reproduce -- --seeds 4 --epochs 10 --out /tmp/study
//! ```

mod model;
mod plots;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chandir::optim::{AdamConfig, ChannelDirectedOptimizer, Optimizer, ParamStates, SgdConfig};
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use model::Network;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SGD_MOMENTUM: f64 = 0.9;
const SGD_WEIGHT_DECAY: f64 = 5e-4;
const ADAM_LR: f64 = 1e-3;
/// λ of the smoothing methods, except in the λ sweep.
const DEFAULT_LAMBDA: f64 = 1.0;
const LAMBDA_SWEEP: [f64; 5] = [0.03, 0.1, 0.3, 1.0, 3.0];
const LR_SWEEP: [f64; 4] = [0.05, 0.1, 0.2, 0.4];
/// The seed of the fixed train/test split of the UCI digits (independent of the run seeds).
const DIGITS_SPLIT_SEED: u64 = 1998;
const DIGITS_TRAIN: usize = 1347;
const EVAL_CHUNK: usize = 500;

// ---------------------------------------------------------------------------------------------
// Data

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DataKind {
    Mnist1d,
    Digits,
}

struct Dataset {
    kind: DataKind,
    name: &'static str,
    train_x: Array2<f32>,
    train_y: Vec<u8>,
    test_x: Array2<f32>,
    test_y: Vec<u8>,
    /// The shape of one sample as the network sees it: `[1, 40]` or `[1, 8, 8]`.
    sample_shape: Vec<usize>,
}

impl Dataset {
    fn load(kind: DataKind, dir: &Path) -> Result<Self, BoxError> {
        let read_f32 = |name: &str| -> Result<Array2<f32>, BoxError> {
            Ok(ndarray_npy::read_npy(dir.join(name))?)
        };
        let read_labels = |name: &str| -> Result<Vec<u8>, BoxError> {
            let y: Array1<u8> = ndarray_npy::read_npy(dir.join(name))?;
            Ok(y.to_vec())
        };
        let (train_x, train_y, test_x, test_y, sample_shape, name) = match kind {
            DataKind::Mnist1d => {
                let train_x = read_f32("mnist1d_x_train.npy")?;
                let length = train_x.ncols();
                (
                    train_x,
                    read_labels("mnist1d_y_train.npy")?,
                    read_f32("mnist1d_x_test.npy")?,
                    read_labels("mnist1d_y_test.npy")?,
                    vec![1, length],
                    "MNIST-1D",
                )
            }
            DataKind::Digits => {
                let x: Array2<u8> = ndarray_npy::read_npy(dir.join("digits_x.npy"))?;
                let y = read_labels("digits_y.npy")?;
                let mut order: Vec<usize> = (0..x.nrows()).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(DIGITS_SPLIT_SEED));
                let (train, test) = order.split_at(DIGITS_TRAIN);
                let pick_x = |rows: &[usize]| x.select(Axis(0), rows).mapv(f32::from);
                let pick_y = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<_>>();
                let side = (x.ncols() as f64).sqrt() as usize;
                (
                    pick_x(train),
                    pick_y(train),
                    pick_x(test),
                    pick_y(test),
                    vec![1, side, side],
                    "UCI digits",
                )
            }
        };
        let mut data = Dataset {
            kind,
            name,
            train_x,
            train_y,
            test_x,
            test_y,
            sample_shape,
        };
        data.standardize();
        Ok(data)
    }

    /// One mean and one standard deviation for all pixels / positions, from the training split only.
    fn standardize(&mut self) {
        let n = self.train_x.len() as f64;
        let mean = self.train_x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = self
            .train_x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let (mean, std) = (mean as f32, var.sqrt() as f32);
        self.train_x.mapv_inplace(|v| (v - mean) / std);
        self.test_x.mapv_inplace(|v| (v - mean) / std);
    }

    /// Keeps the first `train` / `test` samples (for `--quick`).
    fn truncate(&mut self, train: usize, test: usize) {
        let train = train.min(self.train_y.len());
        let test = test.min(self.test_y.len());
        self.train_x = self.train_x.slice(ndarray::s![..train, ..]).to_owned();
        self.train_y.truncate(train);
        self.test_x = self.test_x.slice(ndarray::s![..test, ..]).to_owned();
        self.test_y.truncate(test);
    }

    fn batch(&self, x: &Array2<f32>, rows: &[usize]) -> ArrayD<f32> {
        let mut shape = vec![rows.len()];
        shape.extend_from_slice(&self.sample_shape);
        x.select(Axis(0), rows)
            .into_shape_with_order(IxDyn(&shape))
            .expect("selected rows are contiguous")
    }

    fn network(&self, rng: &mut ChaCha8Rng) -> Network<f32> {
        match self.kind {
            DataKind::Mnist1d => Network::mnist1d(rng, self.sample_shape[1], 32, 10),
            DataKind::Digits => Network::digits(rng, self.sample_shape[1], 10),
        }
    }

    fn test_accuracy(&self, net: &Network<f32>) -> f64 {
        let rows: Vec<usize> = (0..self.test_y.len()).collect();
        let correct: usize = rows
            .chunks(EVAL_CHUNK)
            .map(|chunk| {
                let (logits, _) = net.forward(self.batch(&self.test_x, chunk));
                let labels: Vec<u8> = chunk.iter().map(|&i| self.test_y[i]).collect();
                model::softmax_cross_entropy(&logits, &labels).2
            })
            .sum();
        correct as f64 / self.test_y.len() as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Methods and the grid

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptimizerKind {
    Sgd,
    Adam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// The method comparison at the default λ and learning rate.
    Main,
    LambdaSweep,
    LrSweep,
}

#[derive(Debug, Clone)]
struct Method {
    name: String,
    optimizer: OptimizerKind,
    preconditioner: ChannelDirected,
}

fn h1(lambda: f64, boundary: Boundary, direction: Direction) -> ChannelDirected {
    ChannelDirected::new(Metric::SobolevH1 { lambda, boundary }, direction)
}

fn plain() -> ChannelDirected {
    ChannelDirected::new(Metric::H0, Direction::Output)
}

fn main_methods() -> Vec<Method> {
    let sgd = |name: &str, preconditioner| Method {
        name: name.into(),
        optimizer: OptimizerKind::Sgd,
        preconditioner,
    };
    let adam = |name: &str, preconditioner| Method {
        name: name.into(),
        optimizer: OptimizerKind::Adam,
        preconditioner,
    };
    let l = DEFAULT_LAMBDA;
    vec![
        sgd("SGD", plain()),
        sgd(
            "SGD + H1 output",
            h1(l, Boundary::Neumann, Direction::Output),
        ),
        sgd(
            "SGD + re-weighted H0 output",
            ChannelDirected::new(Metric::ReweightedH0 { lambda: l }, Direction::Output),
        ),
        sgd("SGD + H1 input", h1(l, Boundary::Neumann, Direction::Input)),
        sgd(
            "SGD + H1 flattened (≈ LS-SGD)",
            h1(l, Boundary::Periodic, Direction::Flattened),
        ),
        sgd(
            "SGD + H1 periodic output (≈ LS-ChanDir)",
            h1(l, Boundary::Periodic, Direction::Output),
        ),
        adam("Adam", plain()),
        adam(
            "Adam + H1 output",
            h1(l, Boundary::Neumann, Direction::Output),
        ),
    ]
}

/// One cell of the grid: trained once per seed.
#[derive(Debug, Clone)]
struct Config {
    dataset: usize,
    batch: usize,
    method: Method,
    lr: f64,
    epochs: usize,
    family: Family,
}

impl Config {
    fn lambda(&self) -> f64 {
        self.method.preconditioner.metric.lambda()
    }
}

struct Plan {
    seeds: usize,
    /// (data set, batch size) → epochs.
    epochs: HashMap<(DataKind, usize), usize>,
    /// Batch sizes that get the λ and learning-rate sweeps (the others only the method comparison).
    sweep_batches: Vec<usize>,
    batches: Vec<usize>,
}

/// SGD learning rate per batch size: 0.05 at batch 64 (the PyTorch reference protocol); at batch 8
/// a step sees 8× fewer samples, so the rate is scaled by √(8/64) (rounded: 0.02) to keep the
/// step noise comparable.
fn sgd_lr(batch: usize) -> f64 {
    if batch >= 64 {
        0.05
    } else {
        0.02
    }
}

fn build_grid(datasets: &[Dataset], plan: &Plan) -> Vec<Config> {
    let mut grid: Vec<Config> = Vec::new();
    let mut push = |config: Config| {
        // the sweeps share their default point with the method comparison: train it once
        let duplicate = grid.iter().any(|c| {
            c.dataset == config.dataset
                && c.batch == config.batch
                && c.method.optimizer == config.method.optimizer
                && c.method.preconditioner == config.method.preconditioner
                && c.lr == config.lr
        });
        if !duplicate {
            grid.push(config);
        }
    };
    for (d, data) in datasets.iter().enumerate() {
        for &batch in &plan.batches {
            let epochs = plan.epochs[&(data.kind, batch)];
            let cell = |method: Method, lr: f64, family| Config {
                dataset: d,
                batch,
                method,
                lr,
                epochs,
                family,
            };
            for method in main_methods() {
                let lr = match method.optimizer {
                    OptimizerKind::Sgd => sgd_lr(batch),
                    OptimizerKind::Adam => ADAM_LR,
                };
                push(cell(method, lr, Family::Main));
            }
            if !plan.sweep_batches.contains(&batch) {
                continue;
            }
            for lambda in LAMBDA_SWEEP {
                let method = Method {
                    name: "SGD + H1 output".into(),
                    optimizer: OptimizerKind::Sgd,
                    preconditioner: h1(lambda, Boundary::Neumann, Direction::Output),
                };
                push(cell(method, sgd_lr(batch), Family::LambdaSweep));
            }
            for lr in LR_SWEEP {
                for (name, preconditioner) in [
                    ("SGD", plain()),
                    (
                        "SGD + H1 output",
                        h1(DEFAULT_LAMBDA, Boundary::Neumann, Direction::Output),
                    ),
                ] {
                    let method = Method {
                        name: name.into(),
                        optimizer: OptimizerKind::Sgd,
                        preconditioner,
                    };
                    push(cell(method, lr, Family::LrSweep));
                }
            }
        }
    }
    grid
}

// ---------------------------------------------------------------------------------------------
// Training

struct RunResult {
    test_accuracy: f64,
    /// Per epoch: accuracy on the training batches as they were seen, and test accuracy at the end.
    train_curve: Vec<f64>,
    test_curve: Vec<f64>,
    precondition_time: Duration,
    step_time: Duration,
    final_params: Option<Vec<(String, ArrayD<f32>)>>,
}

fn train(
    data: &Dataset,
    config: &Config,
    seed: u64,
    keep_params: bool,
) -> Result<RunResult, BoxError> {
    let cd = config.method.preconditioner;
    match config.method.optimizer {
        OptimizerKind::Sgd => {
            let sgd = SgdConfig {
                lr: config.lr,
                momentum: SGD_MOMENTUM,
                weight_decay: SGD_WEIGHT_DECAY,
                ..Default::default()
            }
            .init()?;
            train_with(
                data,
                config,
                seed,
                keep_params,
                ChannelDirectedOptimizer::new(sgd, cd),
            )
        }
        OptimizerKind::Adam => {
            let adam = AdamConfig {
                lr: config.lr,
                ..Default::default()
            }
            .init()?;
            train_with(
                data,
                config,
                seed,
                keep_params,
                ChannelDirectedOptimizer::new(adam, cd),
            )
        }
    }
}

fn train_with<O: Optimizer<f32>>(
    data: &Dataset,
    config: &Config,
    seed: u64,
    keep_params: bool,
    optimizer: ChannelDirectedOptimizer<O>,
) -> Result<RunResult, BoxError> {
    // the same seed gives every method the same initial weights and the same batch order
    let mut net = data.network(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(seed);
    shuffle_rng.set_stream(1);
    let mut states = ParamStates::default();
    let mut order: Vec<usize> = (0..data.train_y.len()).collect();
    let (mut precondition_time, mut step_time) = (Duration::ZERO, Duration::ZERO);
    let (mut train_curve, mut test_curve) = (Vec::new(), Vec::new());
    for _ in 0..config.epochs {
        order.shuffle(&mut shuffle_rng);
        let mut correct = 0;
        for rows in order.chunks(config.batch) {
            let x = data.batch(&data.train_x, rows);
            let labels: Vec<u8> = rows.iter().map(|&i| data.train_y[i]).collect();
            let step_start = Instant::now();
            let (logits, caches) = net.forward(x);
            let (_, grad_logits, batch_correct) = model::softmax_cross_entropy(&logits, &labels);
            correct += batch_correct;
            let (_, grads) = net.backward(caches, grad_logits);
            for ((name, param), mut grad) in net.params_mut().into_iter().zip(grads) {
                // what ChannelDirectedOptimizer::step does (smooth per the rule, then the inner
                // step), split in two so that the smoothing can be timed on its own
                let smooth_start = Instant::now();
                if let Some(cd) = optimizer.preconditioner_for(&name, grad.ndim()) {
                    cd.apply(&mut grad)?;
                }
                precondition_time += smooth_start.elapsed();
                optimizer
                    .inner()
                    .step(param.view_mut(), grad.view(), states.slot(&name))?;
            }
            step_time += step_start.elapsed();
        }
        train_curve.push(correct as f64 / order.len() as f64);
        test_curve.push(data.test_accuracy(&net));
    }
    let final_params = keep_params.then(|| {
        net.params()
            .into_iter()
            .map(|(name, p)| (name, p.clone()))
            .collect()
    });
    Ok(RunResult {
        test_accuracy: test_curve
            .last()
            .copied()
            .unwrap_or_else(|| data.test_accuracy(&net)),
        train_curve,
        test_curve,
        precondition_time,
        step_time,
        final_params,
    })
}

// ---------------------------------------------------------------------------------------------
// Summary

struct Summary {
    config: Config,
    accuracies: Vec<f64>,
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
    precondition_fraction: f64,
    /// Mean time in training steps per run (forward, backward, smoothing, optimizer), seconds.
    step_seconds: f64,
    mean_train_curve: Vec<f64>,
    mean_test_curve: Vec<f64>,
}

fn summarize(config: Config, runs: &[RunResult]) -> Summary {
    let accuracies: Vec<f64> = runs.iter().map(|r| r.test_accuracy).collect();
    let n = accuracies.len() as f64;
    let mean = accuracies.iter().sum::<f64>() / n;
    // sample standard deviation over seeds (0 for one seed)
    let std = if accuracies.len() > 1 {
        (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let precondition: Duration = runs.iter().map(|r| r.precondition_time).sum();
    let step: Duration = runs.iter().map(|r| r.step_time).sum();
    let mean_curve = |curve: fn(&RunResult) -> &Vec<f64>| -> Vec<f64> {
        (0..config.epochs)
            .map(|e| runs.iter().map(|r| curve(r)[e]).sum::<f64>() / n)
            .collect()
    };
    Summary {
        mean_train_curve: mean_curve(|r| &r.train_curve),
        mean_test_curve: mean_curve(|r| &r.test_curve),
        min: accuracies.iter().copied().fold(f64::INFINITY, f64::min),
        max: accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        precondition_fraction: precondition.as_secs_f64() / step.as_secs_f64().max(1e-12),
        step_seconds: step.as_secs_f64() / n,
        accuracies,
        mean,
        std,
        config,
    }
}

/// The summary of SGD with `preconditioner` at learning rate `lr`, if it was trained.
fn find_sgd(
    summaries: &[Summary],
    dataset: usize,
    batch: usize,
    preconditioner: ChannelDirected,
    lr: f64,
) -> Option<&Summary> {
    summaries.iter().find(|s| {
        let c = &s.config;
        c.dataset == dataset
            && c.batch == batch
            && c.method.optimizer == OptimizerKind::Sgd
            && c.method.preconditioner == preconditioner
            && c.lr == lr
    })
}

/// The λ sweep of one (data set, batch): SGD (λ = 0) then H1 output at each λ, at the default lr.
fn lambda_sweep(summaries: &[Summary], dataset: usize, batch: usize) -> Vec<&Summary> {
    let lr = sgd_lr(batch);
    std::iter::once(plain())
        .chain(
            LAMBDA_SWEEP
                .iter()
                .map(|&l| h1(l, Boundary::Neumann, Direction::Output)),
        )
        .filter_map(|p| find_sgd(summaries, dataset, batch, p, lr))
        .collect()
}

/// The learning-rate sweep of one (data set, batch) for `preconditioner`.
fn lr_sweep(
    summaries: &[Summary],
    dataset: usize,
    batch: usize,
    preconditioner: ChannelDirected,
) -> Vec<&Summary> {
    LR_SWEEP
        .iter()
        .filter_map(|&lr| find_sgd(summaries, dataset, batch, preconditioner, lr))
        .collect()
}

fn has_sweeps(summaries: &[Summary], dataset: usize, batch: usize) -> bool {
    summaries.iter().any(|s| {
        s.config.dataset == dataset && s.config.batch == batch && s.config.family != Family::Main
    })
}

fn markdown_table(datasets: &[Dataset], summaries: &[Summary]) -> String {
    let mut out = String::new();
    let mut section = |title: &str, rows: Vec<&Summary>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n### {title}\n");
        let _ = writeln!(
            out,
            "| data set | batch | method | λ | lr | epochs | seeds | test acc. % (mean ± std) | min | max | smoothing / step time | train s / run |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in rows {
            let c = &s.config;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {:.1} ± {:.1} | {:.1} | {:.1} | {:.1} % | {:.1} |",
                datasets[c.dataset].name,
                c.batch,
                c.method.name,
                c.lambda(),
                c.lr,
                c.epochs,
                s.accuracies.len(),
                100.0 * s.mean,
                100.0 * s.std,
                100.0 * s.min,
                100.0 * s.max,
                100.0 * s.precondition_fraction,
                s.step_seconds,
            );
        }
    };
    section(
        "Methods",
        summaries
            .iter()
            .filter(|s| s.config.family == Family::Main)
            .collect(),
    );
    let cells: Vec<(usize, usize)> = summaries
        .iter()
        .map(|s| (s.config.dataset, s.config.batch))
        .fold(Vec::new(), |mut v, k| {
            if !v.contains(&k) {
                v.push(k);
            }
            v
        });
    let sweeps: Vec<(usize, usize)> = cells
        .into_iter()
        .filter(|&(d, b)| has_sweeps(summaries, d, b))
        .collect();
    section(
        "λ sweep (SGD + H1 output; λ = 0 is SGD)",
        sweeps
            .iter()
            .flat_map(|&(d, b)| lambda_sweep(summaries, d, b))
            .collect(),
    );
    section(
        "Learning-rate sweep",
        sweeps
            .iter()
            .flat_map(|&(d, b)| {
                let mut rows = lr_sweep(summaries, d, b, plain());
                rows.extend(lr_sweep(
                    summaries,
                    d,
                    b,
                    h1(DEFAULT_LAMBDA, Boundary::Neumann, Direction::Output),
                ));
                rows
            })
            .collect(),
    );
    out
}

/// One line per training run: the raw numbers behind the table and the histograms.
fn runs_csv(datasets: &[Dataset], grid: &[Config], per_config: &[Vec<RunResult>]) -> String {
    let mut out = String::from(
        "dataset,batch,method,lambda,lr,epochs,seed,test_accuracy,last_epoch_train_accuracy\n",
    );
    for (config, runs) in grid.iter().zip(per_config) {
        for (seed, run) in runs.iter().enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{seed},{:.4},{:.4}",
                datasets[config.dataset].name,
                config.batch,
                config.method.name,
                config.lambda(),
                config.lr,
                config.epochs,
                run.test_accuracy,
                run.train_curve.last().copied().unwrap_or(f64::NAN),
            );
        }
    }
    out
}

fn save_checkpoint(
    path: &Path,
    params: &[(String, ArrayD<f32>)],
    info: HashMap<String, String>,
) -> Result<(), BoxError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, p)| {
            let data = p.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), p.shape().to_vec(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, Some(info), path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Args {
    quick: bool,
    seeds: Option<usize>,
    epochs: Option<usize>,
    out: Option<PathBuf>,
    data: PathBuf,
    /// Train only the configurations whose "data set / method" label contains this text.
    only: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        quick: false,
        seeds: None,
        epochs: None,
        out: None,
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--seeds" => args.seeds = Some(value("--seeds")?.parse()?),
            "--epochs" => args.epochs = Some(value("--epochs")?.parse()?),
            "--out" => args.out = Some(value("--out")?.into()),
            "--data" => args.data = value("--data")?.into(),
            "--only" => args.only = Some(value("--only")?),
            "-h" | "--help" => {
                println!(
                    "usage: reproduce [--quick] [--seeds N] [--epochs N] [--out DIR] [--data DIR] [--only TEXT]\n\
                     --quick   smoke run: 1 seed, 1 epoch, data subsets, output to a temp dir\n\
                     --only    train only configurations whose \"data set / method\" contains TEXT"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if args.seeds == Some(0) || args.epochs == Some(0) {
        return Err("--seeds and --epochs must be at least 1".into());
    }
    Ok(args)
}

fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let args = parse_args()?;
    let out_dir = args.out.clone().unwrap_or_else(|| {
        if args.quick {
            std::env::temp_dir().join("chandir-reproduce-quick")
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
        }
    });
    std::fs::create_dir_all(&out_dir)?;

    let mut datasets = vec![
        Dataset::load(DataKind::Mnist1d, &args.data)?,
        Dataset::load(DataKind::Digits, &args.data)?,
    ];
    if args.quick {
        for d in &mut datasets {
            d.truncate(640, 200);
        }
    }
    let default_epochs = |kind, batch| match (kind, batch, args.quick) {
        (_, _, true) => 1,
        (DataKind::Mnist1d, 64, _) => 40,
        (DataKind::Mnist1d, _, _) => 10,
        (DataKind::Digits, 64, _) => 30,
        (DataKind::Digits, _, _) => 10,
    };
    let batches = vec![64, 8];
    let plan = Plan {
        seeds: args.seeds.unwrap_or(if args.quick { 1 } else { 10 }),
        epochs: datasets
            .iter()
            .flat_map(|d| batches.iter().map(move |&b| (d.kind, b)))
            .map(|key| {
                (
                    key,
                    args.epochs.unwrap_or_else(|| default_epochs(key.0, key.1)),
                )
            })
            .collect(),
        sweep_batches: vec![64],
        batches,
    };
    let mut grid = build_grid(&datasets, &plan);
    if let Some(only) = &args.only {
        grid.retain(|c| {
            format!("{} / {}", datasets[c.dataset].name, c.method.name).contains(only.as_str())
        });
    }
    let jobs: Vec<(usize, u64)> = (0..grid.len())
        .flat_map(|c| (0..plan.seeds as u64).map(move |s| (c, s)))
        .collect();
    println!(
        "{} configurations × {} seeds = {} training runs on {} threads; output to {}",
        grid.len(),
        plan.seeds,
        jobs.len(),
        rayon::current_num_threads(),
        out_dir.display()
    );

    let progress = ProgressBar::new(jobs.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} runs, eta {eta}")?
            .progress_chars("=> "),
    );
    // checkpoints: seed 0 of SGD and SGD + H1 output at the default point of each data set
    let keeps_params = |c: &Config, seed: u64| {
        seed == 0
            && c.family == Family::Main
            && c.batch == 64
            && c.method.optimizer == OptimizerKind::Sgd
            && (c.method.preconditioner == plain()
                || c.method.preconditioner
                    == h1(DEFAULT_LAMBDA, Boundary::Neumann, Direction::Output))
    };
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let finished = AtomicUsize::new(0);
    let report_every = (jobs.len() / 20).max(1);
    // runs are independent and collected in job order, so the output does not depend on scheduling
    let results: Vec<RunResult> = jobs
        .par_iter()
        .map(|&(c, seed)| {
            let config = &grid[c];
            let result = train(
                &datasets[config.dataset],
                config,
                seed,
                keeps_params(config, seed),
            );
            progress.inc(1);
            // indicatif draws nothing when stderr is not a terminal (nohup, CI): log every ~5 %
            if !stderr_is_terminal {
                let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
                if done % report_every == 0 || done == jobs.len() {
                    eprintln!(
                        "{done}/{} runs, {:.0} s",
                        jobs.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            result
        })
        .collect::<Result<_, _>>()?;
    progress.finish_and_clear();

    let mut per_config: Vec<Vec<RunResult>> = (0..grid.len()).map(|_| Vec::new()).collect();
    for (&(c, _), result) in jobs.iter().zip(results) {
        per_config[c].push(result);
    }
    for (config, runs) in grid.iter().zip(&mut per_config) {
        for (seed, run) in runs.iter_mut().enumerate() {
            if let Some(params) = run.final_params.take() {
                let data = &datasets[config.dataset];
                let file = format!(
                    "{}_{}_seed{seed}.safetensors",
                    match data.kind {
                        DataKind::Mnist1d => "mnist1d",
                        DataKind::Digits => "digits",
                    },
                    if config.lambda() == 0.0 {
                        "sgd"
                    } else {
                        "sgd_h1_output"
                    }
                );
                // one metadata entry: safetensors writes a HashMap in random order, and the files
                // should be byte-identical from run to run
                let description = format!(
                    "dataset={}; method={}; lambda={}; lr={}; batch={}; epochs={}; seed={seed}; test_accuracy={:.4}",
                    data.name,
                    config.method.name,
                    config.lambda(),
                    config.lr,
                    config.batch,
                    config.epochs,
                    run.test_accuracy,
                );
                let info = HashMap::from([("chandir_study".to_owned(), description)]);
                save_checkpoint(&out_dir.join(file), &params, info)?;
            }
        }
    }
    std::fs::write(
        out_dir.join("runs.csv"),
        runs_csv(&datasets, &grid, &per_config),
    )?;
    let summaries: Vec<Summary> = grid
        .into_iter()
        .zip(&per_config)
        .map(|(config, runs)| summarize(config, runs))
        .collect();

    let table = markdown_table(&datasets, &summaries);
    let elapsed = started.elapsed();
    let header = format!(
        "# Channel-directed gradients: the study\n\n\
         `cargo run --release --example reproduce{}` — {} runs, wall time {:.1} s on {} threads.\n\
         Test accuracy after the last epoch over seeds 0..{}; SGD: momentum {SGD_MOMENTUM}, weight decay \
         {SGD_WEIGHT_DECAY}; Adam: lr {ADAM_LR}, no weight decay; λ = {DEFAULT_LAMBDA} unless stated. \
         Smoothing is applied to the conv weights (rank ≥ 3) only. Last column: time in the \
         preconditioner over the whole training step (forward, backward, smoothing, optimizer).\n\n",
        if args.quick { " -- --quick" } else { "" },
        jobs.len(),
        elapsed.as_secs_f64(),
        rayon::current_num_threads(),
        plan.seeds,
    );
    println!("\n{table}");
    std::fs::write(out_dir.join("results.md"), format!("{header}{table}"))?;
    plots::write_all(&out_dir, &datasets, &summaries)?;
    println!(
        "wrote {} ; total wall time {:.1} s",
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
