//! The examples' small CNN for one-channel square images and ten classes: shared by
//! examples/burn_digits.rs and support/learner.rs (examples/burn_learner.rs and its test).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Conv(1→c₁, 3×3) → ReLU → (pool 2) → Conv(c₁→c₂, 3×3) → ReLU → pool 2 → Linear(→ 10), the
/// first pooling only where `pool_both`; the convolutions keep the image size (padding 1).
#[derive(Module, Debug)]
pub struct Cnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub pool: MaxPool2d,
    pub head: Linear,
    pub pool_both: bool,
}

impl Cnn {
    /// Convolutions of `channels` (c₁, c₂) on `side`×`side` images; the layers are initialised
    /// in the order conv1, conv2, head from `device`'s generator.
    pub fn new(device: &Device, channels: [usize; 2], side: usize, pool_both: bool) -> Self {
        let same = || PaddingConfig2d::Explicit(1, 1, 1, 1);
        let pooled = if pool_both { side / 4 } else { side / 2 };
        Cnn {
            conv1: Conv2dConfig::new([1, channels[0]], [3, 3])
                .with_padding(same())
                .init(device),
            conv2: Conv2dConfig::new(channels, [3, 3])
                .with_padding(same())
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head: LinearConfig::new(channels[1] * pooled * pooled, 10).init(device),
            pool_both,
        }
    }

    /// Logits of a batch of images `[batch, 1, side, side]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(images));
        let x = if self.pool_both {
            self.pool.forward(x)
        } else {
            x
        };
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        self.head.forward(x.flatten(1, 3))
    }
}

/// The fraction of rows of `logits` whose largest entry is at the row's label.
pub fn accuracy(logits: Tensor<2>, labels: &[i64]) -> f64 {
    let predicted = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let right = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    right as f64 / labels.len() as f64
}
