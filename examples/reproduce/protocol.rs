//! The experiment: the methods, one training run, tuning on the validation split, and the choice
//! of each method's setting.
//!
//! A run trains on the training split and measures validation accuracy after every epoch; only
//! runs of the final evaluation (after tuning) read the test split, once, after their last epoch.
//! The same seed gives every method the same initial weights and the same batch order.

// Shared by the example and tests/study_protocol.rs, each of which uses a different subset.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use chandir::optim::{
    AdamConfig, ChannelDirectedOptimizer, DynOptimizer, Optimizer, ParamStates, SgdConfig,
};
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::ArrayD;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{accuracy, BoxError, DataKind, Dataset};
use crate::model::{self, Network};

pub const SGD_MOMENTUM: f64 = 0.9;
pub const SGD_WEIGHT_DECAY: f64 = 5e-4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

/// The methods compared: an optimizer and where (if at all) the gradient is smoothed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Sgd,
    SgdH1Output,
    SgdReweightedH0Output,
    SgdH1Input,
    SgdH1Flattened,
    SgdH1PeriodicOutput,
    Adam,
    AdamH1Output,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Sgd,
        Method::SgdH1Output,
        Method::SgdReweightedH0Output,
        Method::SgdH1Input,
        Method::SgdH1Flattened,
        Method::SgdH1PeriodicOutput,
        Method::Adam,
        Method::AdamH1Output,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Sgd => "SGD",
            Method::SgdH1Output => "SGD + H1 output",
            Method::SgdReweightedH0Output => "SGD + re-weighted H0 output",
            Method::SgdH1Input => "SGD + H1 input",
            Method::SgdH1Flattened => "SGD + H1 flattened (≈ LS-SGD)",
            Method::SgdH1PeriodicOutput => "SGD + H1 periodic output",
            Method::Adam => "Adam",
            Method::AdamH1Output => "Adam + H1 output",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::SgdH1Output => "sgd_h1_output",
            Method::SgdReweightedH0Output => "sgd_rh0_output",
            Method::SgdH1Input => "sgd_h1_input",
            Method::SgdH1Flattened => "sgd_h1_flattened",
            Method::SgdH1PeriodicOutput => "sgd_h1_periodic_output",
            Method::Adam => "adam",
            Method::AdamH1Output => "adam_h1_output",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Method::ALL.into_iter().find(|m| m.slug() == s)
    }

    pub fn optimizer(self) -> OptimizerKind {
        match self {
            Method::Adam | Method::AdamH1Output => OptimizerKind::Adam,
            _ => OptimizerKind::Sgd,
        }
    }

    /// Whether the method smooths gradients (and so has a λ to tune).
    pub fn smooths(self) -> bool {
        !matches!(self, Method::Sgd | Method::Adam)
    }

    /// The plain optimizer this method is compared with.
    pub fn baseline(self) -> Method {
        match self.optimizer() {
            OptimizerKind::Sgd => Method::Sgd,
            OptimizerKind::Adam => Method::Adam,
        }
    }

    /// The preconditioner at strength `lambda` (the plain gradient for SGD and Adam).
    pub fn preconditioner(self, lambda: f64) -> ChannelDirected {
        let h1 = |boundary, direction| {
            ChannelDirected::new(Metric::SobolevH1 { lambda, boundary }, direction)
        };
        match self {
            Method::Sgd | Method::Adam => ChannelDirected::new(Metric::H0, Direction::Output),
            Method::SgdH1Output | Method::AdamH1Output => h1(Boundary::Neumann, Direction::Output),
            Method::SgdReweightedH0Output => {
                ChannelDirected::new(Metric::ReweightedH0 { lambda }, Direction::Output)
            }
            Method::SgdH1Input => h1(Boundary::Neumann, Direction::Input),
            // Laplacian-smoothing SGD: the whole tensor as one periodic fiber
            Method::SgdH1Flattened => h1(Boundary::Periodic, Direction::Flattened),
            Method::SgdH1PeriodicOutput => h1(Boundary::Periodic, Direction::Output),
        }
    }
}

/// One training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpec {
    pub data: DataKind,
    pub batch: usize,
    pub method: Method,
    pub lr: f64,
    /// Strength of the smoothing (0 for SGD and Adam).
    pub lambda: f64,
    pub epochs: usize,
    pub seed: u64,
}

impl RunSpec {
    /// `method` on (data, batch) at `setting`, from `seed`.
    pub fn at(
        data: DataKind,
        batch: usize,
        method: Method,
        setting: Setting,
        seed: u64,
    ) -> RunSpec {
        RunSpec {
            data,
            batch,
            method,
            lr: setting.lr,
            lambda: setting.lambda,
            epochs: setting.epochs,
            seed,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per epoch: mean training loss and accuracy over the batches as they were seen.
    pub train_loss: Vec<f64>,
    pub train_accuracy: Vec<f64>,
    /// Per epoch: accuracy on the validation split after the epoch.
    pub validation_accuracy: Vec<f64>,
    /// Accuracy on the test split after the last epoch (final evaluation runs only).
    pub test_accuracy: Option<f64>,
    /// The loss became non-finite; training stopped there and the curves repeat the last value.
    pub diverged: bool,
    /// Time in the preconditioner and in whole training steps (forward, backward, smoothing,
    /// optimizer), summed over the run.
    pub precondition_time: Duration,
    pub step_time: Duration,
    pub steps: usize,
    /// The trained parameters, if asked for.
    pub params: Option<Vec<(String, ArrayD<f32>)>>,
}

/// Whether a run may read the test split after its last epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestSplit {
    Untouched,
    ReadOnceAtTheEnd,
}

/// Trains one network; see [`RunSpec`].
pub fn train(
    data: &Dataset,
    spec: &RunSpec,
    test: TestSplit,
    keep_params: bool,
) -> Result<Outcome, BoxError> {
    assert_eq!(data.kind, spec.data, "the run belongs to another data set");
    // one training loop for both optimizers: the boxed optimizer steps exactly as the typed one
    let inner: Box<dyn DynOptimizer<f32>> = match spec.method.optimizer() {
        OptimizerKind::Sgd => Box::new(
            SgdConfig {
                lr: spec.lr,
                momentum: SGD_MOMENTUM,
                weight_decay: SGD_WEIGHT_DECAY,
                ..Default::default()
            }
            .init()?,
        ),
        OptimizerKind::Adam => Box::new(
            AdamConfig {
                lr: spec.lr,
                ..Default::default()
            }
            .init()?,
        ),
    };
    let cd = spec.method.preconditioner(spec.lambda);
    train_with(
        data,
        spec,
        test,
        keep_params,
        ChannelDirectedOptimizer::new(inner, cd),
    )
}

/// The initial network and the batch-order generator of `seed`: the same for every method.
pub fn initial_state(data: &Dataset, seed: u64) -> (Network<f32>, ChaCha8Rng) {
    let net = data.network(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(seed);
    shuffle_rng.set_stream(1);
    (net, shuffle_rng)
}

fn train_with<O: Optimizer<f32>>(
    data: &Dataset,
    spec: &RunSpec,
    test: TestSplit,
    keep_params: bool,
    optimizer: ChannelDirectedOptimizer<O>,
) -> Result<Outcome, BoxError> {
    let (mut net, mut shuffle_rng) = initial_state(data, spec.seed);
    let mut states = ParamStates::default();
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let mut out = Outcome {
        train_loss: Vec::with_capacity(spec.epochs),
        train_accuracy: Vec::with_capacity(spec.epochs),
        validation_accuracy: Vec::with_capacity(spec.epochs),
        test_accuracy: None,
        diverged: false,
        precondition_time: Duration::ZERO,
        step_time: Duration::ZERO,
        steps: 0,
        params: None,
    };
    for _ in 0..spec.epochs {
        order.shuffle(&mut shuffle_rng);
        let (mut correct, mut loss_sum) = (0, 0.0);
        for rows in order.chunks(spec.batch) {
            let (x, labels) = data.train.batch(rows, &data.sample_shape);
            let step_start = Instant::now();
            let (logits, caches) = net.forward(x);
            let (loss, grad_logits, batch_correct) = model::softmax_cross_entropy(&logits, &labels);
            if !loss.is_finite() {
                out.diverged = true;
                break;
            }
            correct += batch_correct;
            loss_sum += f64::from(loss) * rows.len() as f64;
            let (_, grads) = net.backward(caches, grad_logits);
            for ((name, param), mut grad) in net.params_mut().into_iter().zip(grads) {
                // what ChannelDirectedOptimizer::step does (smooth per the rule, then the inner
                // step), split in two so that the smoothing can be timed on its own
                let smooth_start = Instant::now();
                if let Some(cd) = optimizer.preconditioner_for(&name, grad.ndim()) {
                    cd.apply(&mut grad)?;
                }
                out.precondition_time += smooth_start.elapsed();
                optimizer
                    .inner()
                    .step(param.view_mut(), grad.view(), states.slot(&name))?;
            }
            out.step_time += step_start.elapsed();
            out.steps += 1;
        }
        if out.diverged {
            break;
        }
        out.train_loss.push(loss_sum / order.len() as f64);
        out.train_accuracy.push(correct as f64 / order.len() as f64);
        out.validation_accuracy
            .push(accuracy(&net, &data.validation, &data.sample_shape));
    }
    if out.diverged {
        // the curves go on at the diverged network's values, so that every run has `epochs` points
        let validation = accuracy(&net, &data.validation, &data.sample_shape);
        out.train_loss.resize(spec.epochs, f64::INFINITY);
        out.train_accuracy.resize(
            spec.epochs,
            out.train_accuracy.last().copied().unwrap_or(0.0),
        );
        out.validation_accuracy.resize(spec.epochs, validation);
    }
    if test == TestSplit::ReadOnceAtTheEnd {
        out.test_accuracy = Some(accuracy(&net, &data.test, &data.sample_shape));
    }
    if keep_params {
        out.params = Some(
            net.params()
                .into_iter()
                .map(|(name, p)| (name, p.clone()))
                .collect(),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Tuning

/// A point of a method's grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub lr: f64,
    pub lambda: f64,
}

/// What a method is evaluated with: chosen on validation accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    pub lr: f64,
    pub lambda: f64,
    pub epochs: usize,
}

/// The grids of the study.
#[derive(Debug, Clone)]
pub struct Grid {
    /// Learning rates per (optimizer, batch size).
    pub sgd_lr: Vec<(usize, Vec<f64>)>,
    pub adam_lr: Vec<f64>,
    pub lambda: Vec<f64>,
    /// Longest training per (data set, batch size); the epochs are chosen among its quarters.
    pub max_epochs: Vec<((DataKind, usize), usize)>,
    pub tuning_seeds: Vec<u64>,
}

impl Grid {
    pub fn candidates(&self, method: Method, batch: usize) -> Vec<Candidate> {
        let lrs = match method.optimizer() {
            OptimizerKind::Sgd => self
                .sgd_lr
                .iter()
                .find(|(b, _)| *b == batch)
                .map(|(_, l)| l.clone())
                .unwrap_or_default(),
            OptimizerKind::Adam => self.adam_lr.clone(),
        };
        let lambdas = if method.smooths() {
            self.lambda.clone()
        } else {
            vec![0.0]
        };
        lrs.iter()
            .flat_map(|&lr| lambdas.iter().map(move |&lambda| Candidate { lr, lambda }))
            .collect()
    }

    pub fn max_epochs(&self, data: DataKind, batch: usize) -> usize {
        self.max_epochs
            .iter()
            .find(|(key, _)| *key == (data, batch))
            .map(|(_, e)| *e)
            .expect("every (data set, batch) of the plan has a number of epochs")
    }

    /// The epochs a method may stop at: the quarters of the longest training.
    pub fn epoch_choices(&self, data: DataKind, batch: usize) -> Vec<usize> {
        let max = self.max_epochs(data, batch);
        let mut choices: Vec<usize> = (1..=4).map(|q| (max * q).div_ceil(4).max(1)).collect();
        choices.dedup();
        choices
    }

    /// Everything that decides a tuning result, as one line (to tell whether stored tuning
    /// results were made with this protocol).
    pub fn fingerprint(&self) -> String {
        format!(
            "sgd_lr={:?}; adam_lr={:?}; lambda={:?}; max_epochs={:?}; tuning_seeds={:?}; \
             validation_share={}; validation_seed={}; momentum={SGD_MOMENTUM}; weight_decay={SGD_WEIGHT_DECAY}",
            self.sgd_lr,
            self.adam_lr,
            self.lambda,
            self.max_epochs,
            self.tuning_seeds,
            crate::data::VALIDATION_SHARE,
            crate::data::VALIDATION_SPLIT_SEED,
        )
    }
}

/// A method's tuning on one (data set, batch size).
#[derive(Debug, Clone)]
pub struct Tuned {
    pub data: DataKind,
    pub batch: usize,
    pub method: Method,
    /// Each candidate with its validation accuracy per epoch, mean and std over the tuning seeds,
    /// and how many tuning seeds diverged.
    pub candidates: Vec<(Candidate, Vec<f64>, Vec<f64>, usize)>,
    pub chosen: Setting,
    /// Mean validation accuracy at the chosen setting.
    pub validation: f64,
    /// Mean train loss and accuracy per epoch at the chosen (lr, λ), over the tuning seeds.
    pub train_loss: Vec<f64>,
    pub train_accuracy: Vec<f64>,
    /// Where the choice lies on the edge of the grid (lr low/high, longest training, λ low/high).
    pub at_edge: Vec<&'static str>,
}

/// The runs that tune `method` on (data, batch): every candidate on every tuning seed, each for
/// the longest training (validation accuracy is recorded after every epoch).
pub fn tuning_runs(grid: &Grid, data: DataKind, batch: usize, method: Method) -> Vec<RunSpec> {
    let epochs = grid.max_epochs(data, batch);
    grid.candidates(method, batch)
        .into_iter()
        .flat_map(|c| {
            let setting = Setting {
                lr: c.lr,
                lambda: c.lambda,
                epochs,
            };
            grid.tuning_seeds
                .iter()
                .map(move |&seed| RunSpec::at(data, batch, method, setting, seed))
        })
        .collect()
}

/// Picks the (lr, λ, epochs) with the highest mean validation accuracy over the tuning seeds
/// (ties: the earlier candidate, then the fewer epochs). `runs` are the outcomes of
/// [`tuning_runs`], in its order. Reads validation accuracies only.
pub fn choose(
    grid: &Grid,
    data: DataKind,
    batch: usize,
    method: Method,
    runs: &[Outcome],
) -> Tuned {
    let candidates = grid.candidates(method, batch);
    let seeds = grid.tuning_seeds.len();
    assert_eq!(runs.len(), candidates.len() * seeds, "one outcome per run");
    let choices = grid.epoch_choices(data, batch);
    let mut tuned = Tuned {
        data,
        batch,
        method,
        candidates: Vec::new(),
        chosen: Setting {
            lr: candidates[0].lr,
            lambda: candidates[0].lambda,
            epochs: choices[0],
        },
        validation: f64::NEG_INFINITY,
        train_loss: Vec::new(),
        train_accuracy: Vec::new(),
        at_edge: Vec::new(),
    };
    for (c, outcomes) in candidates.iter().zip(runs.chunks(seeds)) {
        let epochs = outcomes[0].validation_accuracy.len();
        let per_epoch = |curve: fn(&Outcome) -> &Vec<f64>| -> (Vec<f64>, Vec<f64>) {
            (0..epochs)
                .map(|e| {
                    crate::stats::mean_std(
                        &outcomes.iter().map(|o| curve(o)[e]).collect::<Vec<_>>(),
                    )
                })
                .unzip()
        };
        let (mean, std) = per_epoch(|o| &o.validation_accuracy);
        for &e in &choices {
            if mean[e - 1] > tuned.validation {
                tuned.validation = mean[e - 1];
                tuned.chosen = Setting {
                    lr: c.lr,
                    lambda: c.lambda,
                    epochs: e,
                };
                tuned.train_loss = per_epoch(|o| &o.train_loss).0;
                tuned.train_accuracy = per_epoch(|o| &o.train_accuracy).0;
            }
        }
        let diverged = outcomes.iter().filter(|o| o.diverged).count();
        tuned.candidates.push((*c, mean, std, diverged));
    }
    let lrs: Vec<f64> = candidates.iter().map(|c| c.lr).collect();
    let lambdas: Vec<f64> = candidates.iter().map(|c| c.lambda).collect();
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if min(&lrs) < max(&lrs) {
        if tuned.chosen.lr == min(&lrs) {
            tuned.at_edge.push("lowest lr");
        }
        if tuned.chosen.lr == max(&lrs) {
            tuned.at_edge.push("highest lr");
        }
    }
    if tuned.chosen.epochs == grid.max_epochs(data, batch) {
        // validation accuracy may still have been rising: more epochs might have helped
        tuned.at_edge.push("longest training");
    }
    if method.smooths() && min(&lambdas) < max(&lambdas) {
        if tuned.chosen.lambda == min(&lambdas) {
            tuned.at_edge.push("lowest λ");
        }
        if tuned.chosen.lambda == max(&lambdas) {
            tuned.at_edge.push("highest λ");
        }
    }
    tuned
}

/// A run "trains" if it did not diverge and its final validation accuracy is at least this.
pub const TRAINS_THRESHOLD: f64 = 0.5;

pub fn trains(outcome: &Outcome) -> bool {
    !outcome.diverged
        && outcome
            .validation_accuracy
            .last()
            .is_some_and(|&a| a >= TRAINS_THRESHOLD)
}

/// Whether two parameter lists are bitwise identical.
pub fn bitwise_equal(a: &[(String, ArrayD<f32>)], b: &[(String, ArrayD<f32>)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((na, pa), (nb, pb))| {
            na == nb
                && pa.shape() == pb.shape()
                && pa.iter().zip(pb).all(|(x, y)| x.to_bits() == y.to_bits())
        })
}
