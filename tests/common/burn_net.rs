//! The small conv net the burn tests train: on flex (tests/burn.rs) and on a device
//! (tests/burn_gpu.rs).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Conv2d(3 → c, 3×3) → ReLU → flatten → Linear(c·4·4 → 5) on 6×6 inputs: rank-4, rank-2 and
/// rank-1 parameters.
#[derive(Module, Debug)]
pub struct Net {
    pub conv: Conv2d,
    pub linear: Linear,
}

impl Net {
    /// A net with `channels` conv output channels.
    pub fn new(device: &Device, channels: usize) -> Self {
        Net {
            conv: Conv2dConfig::new([3, channels], [3, 3]).init(device),
            linear: LinearConfig::new(channels * 4 * 4, 5).init(device),
        }
    }

    /// Mean squared error of the net's output against `target`.
    pub fn loss(&self, input: Tensor<4>, target: Tensor<2>) -> Tensor<1> {
        let hidden = burn::tensor::activation::relu(self.conv.forward(input));
        let output = self.linear.forward(hidden.flatten::<2>(1, 3));
        (output - target).powi_scalar(2).mean()
    }
}
