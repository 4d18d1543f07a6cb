//! A small CNN on the MNIST subset (data/mnist5k_*.npy) trained with burn-train's `Learner`:
//! shared by examples/burn_learner.rs and tests/burn_learner.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::optim::ModuleOptimizer;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, ExecutionStrategy, InferenceStep, Learner, SupervisedTraining,
    TrainOutput, TrainStep,
};
use ndarray::{Array1, Array2};

#[path = "cnn.rs"]
mod cnn;
pub use cnn::Cnn;

impl Cnn {
    /// Conv(1→8, 3×3) → ReLU → pool 2 → Conv(8→16, 3×3) → ReLU → pool 2 → Linear(16·7·7 → 10).
    pub fn for_mnist(device: &Device) -> Self {
        Cnn::new(device, [8, 16], 28, true)
    }

    pub fn classify(&self, batch: Batch) -> ClassificationOutput {
        let output = self.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&output.device())
            .forward(output.clone(), batch.targets.clone());
        ClassificationOutput {
            loss,
            output,
            targets: batch.targets,
        }
    }

    /// All weights, flattened, in a fixed order: for bitwise comparisons.
    pub fn weights(&self) -> Vec<f32> {
        let mut all = Vec::new();
        for t in [
            self.conv1.weight.val().flatten::<1>(0, 3),
            self.conv2.weight.val().flatten::<1>(0, 3),
            self.head.weight.val().flatten::<1>(0, 1),
        ] {
            all.extend(t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
        all
    }
}

impl TrainStep for Cnn {
    type Input = Batch;
    type Output = ClassificationOutput;

    fn step(&self, batch: Batch) -> TrainOutput<ClassificationOutput> {
        let out = self.classify(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for Cnn {
    type Input = Batch;
    type Output = ClassificationOutput;

    fn step(&self, batch: Batch) -> ClassificationOutput {
        self.classify(batch)
    }
}

/// One image (28·28 values, standardized) and its label.
#[derive(Clone, Debug)]
pub struct Item {
    pub image: Vec<f32>,
    pub label: i64,
}

#[derive(Clone, Debug)]
pub struct Batch {
    pub images: Tensor<4>,
    pub targets: Tensor<1, Int>,
}

pub struct MnistBatcher;

impl Batcher<Item, Batch> for MnistBatcher {
    fn batch(&self, items: Vec<Item>, device: &Device) -> Batch {
        let n = items.len();
        let values: Vec<f32> = items.iter().flat_map(|i| i.image.iter().copied()).collect();
        let labels: Vec<i64> = items.iter().map(|i| i.label).collect();
        Batch {
            images: Tensor::from_data(
                TensorData::new(values, [n, 1, 28, 28]),
                (device, DType::F32),
            ),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// `data/` of the crate, or `../shared/data` where the checkout has the shared copy.
pub fn data_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    if here.join("mnist5k_x.npy").exists() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
    }
}

/// `train` training and `valid` validation images of the MNIST subset: every tenth image from
/// position `k` of each class (the file is sorted by class), standardized with fixed constants.
pub fn mnist(train: usize, valid: usize) -> (Vec<Item>, Vec<Item>) {
    let dir = data_dir();
    let x: Array2<u8> = ndarray_npy::read_npy(dir.join("mnist5k_x.npy")).expect("mnist5k_x.npy");
    let y: Array1<u8> = ndarray_npy::read_npy(dir.join("mnist5k_y.npy")).expect("mnist5k_y.npy");
    // Interleave the classes: image r·10 + c of the order is image r of class c.
    let order: Vec<usize> = (0..500)
        .flat_map(|r| (0..10).map(move |c| c * 500 + r))
        .collect();
    let item = |i: usize| Item {
        image: x
            .row(i)
            .iter()
            .map(|&v| (f32::from(v) / 255.0 - 0.1307) / 0.3081)
            .collect(),
        label: i64::from(y[i]),
    };
    let train_items = order[..train].iter().map(|&i| item(i)).collect();
    let valid_items = order[train..train + valid]
        .iter()
        .map(|&i| item(i))
        .collect();
    (train_items, valid_items)
}

/// A loader over `items` on `device`, in order (`shuffle` seeds a shuffle).
pub fn loader(
    items: Vec<Item>,
    device: &Device,
    shuffle: Option<u64>,
) -> Arc<dyn DataLoader<Batch>> {
    let builder = DataLoaderBuilder::new(MnistBatcher)
        .batch_size(32)
        .set_device(device.clone());
    let builder = match shuffle {
        Some(seed) => builder.shuffle(seed),
        None => builder,
    };
    builder.build(InMemDataset::new(items))
}

/// Trains a fresh `Cnn` (seed `seed`) with `optim` on `(training, validation)` items for `epochs` epochs under `SupervisedTraining`
/// on `device` (an autodiff device), with burn-train's accuracy and loss metrics.
pub fn train(
    optim: ModuleOptimizer,
    data: (Vec<Item>, Vec<Item>),
    device: &Device,
    epochs: usize,
    seed: u64,
    directory: &Path,
    quiet: bool,
) -> Cnn {
    train_with(optim, data, device, None, epochs, seed, directory, quiet)
}

/// [`train`] under burn-train's `strategy` (`None`: one device, the learner's default).
#[allow(clippy::too_many_arguments)]
pub fn train_with(
    optim: ModuleOptimizer,
    (train, valid): (Vec<Item>, Vec<Item>),
    device: &Device,
    strategy: Option<ExecutionStrategy>,
    epochs: usize,
    seed: u64,
    directory: &Path,
    quiet: bool,
) -> Cnn {
    device.seed(seed);
    let model = Cnn::for_mnist(device);
    let learner = Learner::new(model, optim, ConstantLr::new(2e-3));
    let training = SupervisedTraining::new(
        directory,
        loader(train, device, Some(seed)),
        loader(valid, &device.clone().inner(), None),
    )
    .metric_train_numeric(AccuracyMetric::new())
    .metric_valid_numeric(AccuracyMetric::new())
    .metric_train_numeric(LossMetric::new())
    .metric_valid_numeric(LossMetric::new())
    .num_epochs(epochs);
    let training = match strategy {
        Some(strategy) => training.with_training_strategy(strategy.into()),
        None => training,
    };
    let training = if quiet {
        training
            .with_metric_logger(InMemoryMetricLogger::new())
            .with_application_logger(None)
    } else {
        // burn-train's summary of its metrics (from the files it logs under `directory`).
        training.summary()
    };
    training.launch(learner).model
}

/// Accuracy and mean cross-entropy of `model` on `items`.
pub fn evaluate(model: &Cnn, items: &[Item], device: &Device) -> (f64, f64) {
    let batch = MnistBatcher.batch(items.to_vec(), device);
    let out = model.classify(batch);
    let loss = out
        .loss
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .unwrap()[0];
    let labels: Vec<i64> = items.iter().map(|i| i.label).collect();
    (cnn::accuracy(out.output, &labels), loss)
}

/// How many CUDA devices this machine has, as `nvidia-smi -L` lists them (0 where there is no
/// driver): asked of the driver's own tool, so that a machine without one is told apart from a
/// failing device before any CUDA code loads.
pub fn cuda_devices() -> usize {
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or(0, |out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|line| line.starts_with("GPU "))
                .count()
        })
}

/// burn-train's data-parallel strategy over CUDA devices `0..count` (the gradients are averaged
/// across them by burn's all-reduce during backward, so every replica smooths the same gradient).
#[cfg(feature = "burn-cuda")]
pub fn ddp(count: usize) -> (Device, ExecutionStrategy) {
    use burn::tensor::distributed::{DistributedConfig, ReduceOperation};
    let devices: Vec<Device> = (0..count).map(|i| Device::cuda(i).autodiff()).collect();
    let config = DistributedConfig {
        all_reduce_op: ReduceOperation::Mean,
    };
    (devices[0].clone(), ExecutionStrategy::ddp(devices, config))
}
