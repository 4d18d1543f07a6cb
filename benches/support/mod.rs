//! Shared by the criterion benches and `examples/bench_table.rs`: the shapes, and the baselines the
//! crate is measured against (a plain copy, the naive per-fiber loop, the FFT method).
#![allow(dead_code)]

use std::sync::Arc;

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::{ArrayD, ArrayViewMutD, Axis, IxDyn};
use num_traits::Float;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// ResNet-56 convolutions.
pub const RESNET56: [[usize; 4]; 3] = [[16, 16, 3, 3], [32, 32, 3, 3], [64, 64, 3, 3]];

/// Single ResNet-50 convolutions named in the benchmark plan.
pub const RESNET50: [[usize; 4]; 5] = [
    [64, 64, 1, 1],
    [64, 64, 3, 3],
    [256, 64, 1, 1],
    [512, 512, 3, 3],
    [2048, 512, 1, 1],
];

/// Every convolution weight of the CIFAR ResNet-56 (He et al. 2016, option A shortcuts): 55
/// tensors, 0.85 M values, most of them small.
pub fn resnet56_convs() -> Vec<[usize; 4]> {
    let mut shapes = vec![[16, 3, 3, 3]];
    let mut in_channels = 16;
    for planes in [16, 32, 64] {
        for _ in 0..9 {
            shapes.push([planes, in_channels, 3, 3]);
            shapes.push([planes, planes, 3, 3]);
            in_channels = planes;
        }
    }
    shapes
}

/// Every convolution weight of torchvision's ResNet-50, in order (53 tensors, 23.5 M values).
pub fn resnet50_convs() -> Vec<[usize; 4]> {
    let mut shapes = vec![[64, 3, 7, 7]];
    let mut in_channels = 64;
    for (planes, blocks) in [(64, 3), (128, 4), (256, 6), (512, 3)] {
        for block in 0..blocks {
            shapes.push([planes, in_channels, 1, 1]);
            shapes.push([planes, planes, 3, 3]);
            shapes.push([planes * 4, planes, 1, 1]);
            if block == 0 {
                shapes.push([planes * 4, in_channels, 1, 1]);
            }
            in_channels = planes * 4;
        }
    }
    shapes
}

/// A deterministic gradient-like tensor with values in [−1, 1].
pub fn gradient<T: Float>(shape: &[usize], seed: u64) -> ArrayD<T> {
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        T::from((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).unwrap()
    })
}

/// The memory floor: copying the tensor into a preallocated buffer.
pub fn copy_into<T: Copy>(src: &ArrayD<T>, dst: &mut ArrayD<T>) {
    dst.as_slice_mut()
        .unwrap()
        .copy_from_slice(src.as_slice().unwrap());
}

/// One [`gradient`] per shape of a model, each seeded by its position.
pub fn gradients<T: Float>(shapes: &[[usize; 4]]) -> Vec<ArrayD<T>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| gradient(s, i as u64))
        .collect()
}

/// The memory floor of a model: [`copy_into`] for every tensor.
pub fn copy_all<T: Copy>(src: &[ArrayD<T>], dst: &mut [ArrayD<T>]) {
    src.iter().zip(dst).for_each(|(g, w)| copy_into(g, w))
}

/// The straightforward implementation: one Thomas solve per fiber over `lanes_mut`, factoring the
/// Neumann operator `I + λL` for each fiber.
pub fn naive_neumann<T: Float>(grad: &mut ArrayViewMutD<'_, T>, axis: usize, lambda: f64) {
    let n = grad.len_of(Axis(axis));
    let mut c = vec![0.0_f64; n];
    let mut y = vec![0.0_f64; n];
    for mut lane in grad.lanes_mut(Axis(axis)) {
        let diagonal = |i: usize| {
            1.0 + lambda
                * if n == 1 {
                    0.0
                } else if i == 0 || i == n - 1 {
                    1.0
                } else {
                    2.0
                }
        };
        let mut pivot = diagonal(0);
        c[0] = -lambda / pivot;
        y[0] = lane[0].to_f64().unwrap() / pivot;
        for i in 1..n {
            pivot = diagonal(i) + lambda * c[i - 1];
            c[i] = -lambda / pivot;
            y[i] = (lane[i].to_f64().unwrap() + lambda * y[i - 1]) / pivot;
        }
        for i in (0..n - 1).rev() {
            y[i] -= c[i] * y[i + 1];
        }
        for (g, &v) in lane.iter_mut().zip(&y) {
            *g = T::from(v).unwrap();
        }
    }
}

/// The FFT method of Laplacian-smoothing SGD for the periodic operator: per fiber, transform,
/// divide by the eigenvalues `1 + λ(2 − 2cos(2πk/n))`, transform back.
pub struct FftPeriodic {
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    inverse_eigenvalues: Vec<f64>,
    buffer: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl FftPeriodic {
    pub fn new(n: usize, lambda: f64) -> Self {
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let inverse_eigenvalues = (0..n)
            .map(|k| {
                let theta = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
                1.0 / ((1.0 + lambda * (2.0 - 2.0 * theta.cos())) * n as f64)
            })
            .collect();
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        FftPeriodic {
            forward,
            inverse,
            inverse_eigenvalues,
            buffer: vec![Complex::default(); n],
            scratch: vec![Complex::default(); scratch_len],
        }
    }

    pub fn apply<T: Float>(&mut self, grad: &mut ArrayViewMutD<'_, T>, axis: Option<usize>) {
        match axis {
            Some(axis) => {
                for mut lane in grad.lanes_mut(Axis(axis)) {
                    self.solve(lane.iter().map(|g| g.to_f64().unwrap()));
                    self.store(lane.iter_mut());
                }
            }
            None => {
                self.solve(grad.iter().map(|g| g.to_f64().unwrap()));
                self.store(grad.iter_mut());
            }
        }
    }

    fn solve(&mut self, fiber: impl Iterator<Item = f64>) {
        for (b, g) in self.buffer.iter_mut().zip(fiber) {
            *b = Complex::new(g, 0.0);
        }
        self.forward
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
        for (b, &s) in self.buffer.iter_mut().zip(&self.inverse_eigenvalues) {
            *b *= s;
        }
        self.inverse
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
    }

    fn store<'a, T: Float + 'a>(&self, fiber: impl Iterator<Item = &'a mut T>) {
        for (g, b) in fiber.zip(&self.buffer) {
            *g = T::from(b.re).unwrap();
        }
    }
}

/// Sobolev H1 with λ = 1 on `boundary` along `direction`: what the benchmarks time.
pub fn h1(boundary: Boundary, direction: Direction) -> ChannelDirected {
    ChannelDirected::new(
        Metric::SobolevH1 {
            lambda: 1.0,
            boundary,
        },
        direction,
    )
}
