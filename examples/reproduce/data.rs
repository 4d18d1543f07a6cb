//! The three data sets of the study, each split into train, validation and test.
//!
//! Every split is fixed by a seed that is independent of the run seeds. The validation split is
//! carved out of the training set (20 %), so tuning never needs the test split; every read of a
//! split is counted, so the tests can check that tuning never reads the test split.

// Shared by the example and tests/study_protocol.rs, each of which uses a different subset.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::Network;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The seed of the train/test split of the UCI digits (kept from the earlier study).
const DIGITS_SPLIT_SEED: u64 = 1998;
const DIGITS_TEST: usize = 450;
/// The seed of the train/test split of the MNIST subset.
const MNIST_SPLIT_SEED: u64 = 1989;
const MNIST_TEST: usize = 1000;
/// The seed of the train/validation split (the same for every data set).
pub const VALIDATION_SPLIT_SEED: u64 = 2020;
/// Share of the training set held out for validation.
pub const VALIDATION_SHARE: f64 = 0.2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataKind {
    Mnist1d,
    Digits,
    Mnist,
}

impl DataKind {
    pub const ALL: [DataKind; 3] = [DataKind::Mnist1d, DataKind::Digits, DataKind::Mnist];

    pub fn name(self) -> &'static str {
        match self {
            DataKind::Mnist1d => "MNIST-1D",
            DataKind::Digits => "UCI digits",
            DataKind::Mnist => "MNIST",
        }
    }

    /// File-name stem.
    pub fn slug(self) -> &'static str {
        match self {
            DataKind::Mnist1d => "mnist1d",
            DataKind::Digits => "digits",
            DataKind::Mnist => "mnist",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        DataKind::ALL.into_iter().find(|k| k.slug() == s)
    }
}

/// Samples (one row each) and labels; counts how often it was read.
pub struct Split {
    x: Array2<f32>,
    y: Vec<u8>,
    reads: AtomicUsize,
}

impl Split {
    pub fn new(x: Array2<f32>, y: Vec<u8>) -> Self {
        assert_eq!(x.nrows(), y.len(), "one label per sample");
        Split {
            x,
            y,
            reads: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// How many batches were read from this split.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    /// The samples `rows`, shaped `[rows, sample_shape...]`, and their labels.
    pub fn batch(&self, rows: &[usize], sample_shape: &[usize]) -> (ArrayD<f32>, Vec<u8>) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mut shape = vec![rows.len()];
        shape.extend_from_slice(sample_shape);
        let x = self
            .x
            .select(Axis(0), rows)
            .into_shape_with_order(IxDyn(&shape))
            .expect("selected rows are contiguous");
        (x, rows.iter().map(|&i| self.y[i]).collect())
    }

    fn rows(&self, rows: &[usize]) -> Split {
        Split::new(
            self.x.select(Axis(0), rows),
            rows.iter().map(|&i| self.y[i]).collect(),
        )
    }

    fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.x = self.x.slice(ndarray::s![..n, ..]).to_owned();
        self.y.truncate(n);
    }
}

pub struct Dataset {
    pub kind: DataKind,
    pub train: Split,
    pub validation: Split,
    pub test: Split,
    /// The shape of one sample as the network sees it: `[1, 40]`, `[1, 8, 8]` or `[1, 28, 28]`.
    pub sample_shape: Vec<usize>,
}

impl Dataset {
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Reads the `.npy` files of `kind` from `dir` and splits them.
    pub fn load(kind: DataKind, dir: &Path) -> Result<Self, BoxError> {
        let read_npy_f32 = |name: &str| -> Result<Array2<f32>, BoxError> {
            ndarray_npy::read_npy(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()).into())
        };
        let read_npy_u8 = |name: &str| -> Result<Array2<u8>, BoxError> {
            ndarray_npy::read_npy(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()).into())
        };
        let read_labels = |name: &str| -> Result<Vec<u8>, BoxError> {
            let y: Array1<u8> = ndarray_npy::read_npy(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
            Ok(y.to_vec())
        };
        // (training pool, test) before the validation split
        let (pool, test, sample_shape) = match kind {
            DataKind::Mnist1d => {
                let x = read_npy_f32("mnist1d_x_train.npy")?;
                let length = x.ncols();
                (
                    Split::new(x, read_labels("mnist1d_y_train.npy")?),
                    Split::new(
                        read_npy_f32("mnist1d_x_test.npy")?,
                        read_labels("mnist1d_y_test.npy")?,
                    ),
                    vec![1, length],
                )
            }
            DataKind::Digits | DataKind::Mnist => {
                let (stem, seed, test_size) = match kind {
                    DataKind::Digits => ("digits", DIGITS_SPLIT_SEED, DIGITS_TEST),
                    _ => ("mnist5k", MNIST_SPLIT_SEED, MNIST_TEST),
                };
                let x = read_npy_u8(&format!("{stem}_x.npy"))?.mapv(f32::from);
                let all = Split::new(x, read_labels(&format!("{stem}_y.npy"))?);
                let side = (all.x.ncols() as f64).sqrt() as usize;
                let (test_rows, pool_rows) = shuffled_split(all.len(), test_size, seed);
                (
                    all.rows(&pool_rows),
                    all.rows(&test_rows),
                    vec![1, side, side],
                )
            }
        };
        let validation_size = (pool.len() as f64 * VALIDATION_SHARE).round() as usize;
        let (validation_rows, train_rows) =
            shuffled_split(pool.len(), validation_size, VALIDATION_SPLIT_SEED);
        let mut data = Dataset {
            kind,
            train: pool.rows(&train_rows),
            validation: pool.rows(&validation_rows),
            test,
            sample_shape,
        };
        data.standardize();
        Ok(data)
    }

    /// One mean and one standard deviation for all values, from the training split only.
    fn standardize(&mut self) {
        let n = self.train.x.len() as f64;
        let mean = self.train.x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = self
            .train
            .x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let (mean, std) = (mean as f32, var.sqrt() as f32);
        for split in [&mut self.train, &mut self.validation, &mut self.test] {
            split.x.mapv_inplace(|v| (v - mean) / std);
        }
    }

    /// Keeps the first samples of each split (for `--quick`).
    pub fn truncate(&mut self, train: usize, validation: usize, test: usize) {
        self.train.truncate(train);
        self.validation.truncate(validation);
        self.test.truncate(test);
    }

    pub fn network(&self, rng: &mut ChaCha8Rng) -> Network<f32> {
        match self.kind {
            DataKind::Mnist1d => Network::mnist1d(rng, self.sample_shape[1], 32, 10),
            DataKind::Digits => Network::digits(rng, self.sample_shape[1], 10),
            DataKind::Mnist => Network::mnist(rng, self.sample_shape[1], 10),
        }
    }

    /// A copy whose test split is replaced (the tests use it to show that tuning ignores it).
    pub fn with_test(&self, x: Array2<f32>, y: Vec<u8>) -> Dataset {
        let copy = |s: &Split| Split::new(s.x.clone(), s.y.clone());
        Dataset {
            kind: self.kind,
            train: copy(&self.train),
            validation: copy(&self.validation),
            test: Split::new(x, y),
            sample_shape: self.sample_shape.clone(),
        }
    }

    pub fn test_shape(&self) -> (usize, usize) {
        self.test.x.dim()
    }
}

/// A seeded permutation of `0..n`, cut after `first` entries.
fn shuffled_split(n: usize, first: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let rest = order.split_off(first.min(n));
    (order, rest)
}

/// Fraction of `split` that `net` classifies correctly.
pub fn accuracy(net: &Network<f32>, split: &Split, sample_shape: &[usize]) -> f64 {
    const CHUNK: usize = 500;
    let rows: Vec<usize> = (0..split.len()).collect();
    let correct: usize = rows
        .chunks(CHUNK)
        .map(|chunk| {
            let (x, labels) = split.batch(chunk, sample_shape);
            let (logits, _) = net.forward(x);
            crate::model::softmax_cross_entropy(&logits, &labels).2
        })
        .sum();
    correct as f64 / split.len().max(1) as f64
}
