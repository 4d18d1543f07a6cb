//! A small CNN on ndarray with hand-written backward passes: convolution (1-D and 2-D, lowered to
//! one GEMM by im2col), ReLU, 2×2 max pooling, flatten, linear and softmax cross-entropy. Generic over the float type
//! so that the tests can check every backward pass in f64; the study trains in f32.

// Shared by the example and tests/study_model.rs, each of which uses a different subset.
#![allow(dead_code)]

use std::fmt::Debug;

use ndarray::{Array2, Array4, ArrayD, ArrayView2, ArrayView4, Axis, IxDyn, LinalgScalar};
use num_traits::Float;
use rand::Rng;

/// The float types the network runs in.
pub trait Real:
    LinalgScalar + Float + ndarray::ScalarOperand + Send + Sync + Debug + 'static
{
}
impl<T: LinalgScalar + Float + ndarray::ScalarOperand + Send + Sync + Debug + 'static> Real for T {}

fn real<A: Real>(x: f64) -> A {
    A::from(x).expect("finite f64 converts to the network's float type")
}

/// Kernel size, stride and zero padding of a convolution as (height, width); a 1-D convolution is
/// the 2-D one on inputs of height 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Geometry {
    /// Output height and width for an input of `height × width`.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let out = |n: usize, k: usize, s: usize, p: usize| {
            assert!(
                n + 2 * p >= k,
                "kernel {k} larger than padded input {}",
                n + 2 * p
            );
            (n + 2 * p - k) / s + 1
        };
        (
            out(height, self.kernel.0, self.stride.0, self.padding.0),
            out(width, self.kernel.1, self.stride.1, self.padding.1),
        )
    }
}

/// Visits every (row of the lowered matrix, column, flat input index) triple that is inside the
/// image; shared by [`im2col`] and [`col2im`] so that the two are exact adjoints.
fn for_each_tap(
    (batch, channels, height, width): (usize, usize, usize, usize),
    geometry: Geometry,
    mut visit: impl FnMut(usize, usize),
) {
    let (out_h, out_w) = geometry.output_size(height, width);
    let (kh, kw) = geometry.kernel;
    let row_len = channels * kh * kw;
    for b in 0..batch {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let row = ((b * out_h + oy) * out_w + ox) * row_len;
                for c in 0..channels {
                    for ky in 0..kh {
                        let iy =
                            (oy * geometry.stride.0 + ky) as isize - geometry.padding.0 as isize;
                        if iy < 0 || iy >= height as isize {
                            continue;
                        }
                        let input_row = ((b * channels + c) * height + iy as usize) * width;
                        for kx in 0..kw {
                            let ix = (ox * geometry.stride.1 + kx) as isize
                                - geometry.padding.1 as isize;
                            if ix < 0 || ix >= width as isize {
                                continue;
                            }
                            visit(row + (c * kh + ky) * kw + kx, input_row + ix as usize);
                        }
                    }
                }
            }
        }
    }
}

/// Unfolds `x` `[B, C, H, W]` into the matrix with rows `(b, oy, ox)` and columns `(c, ky, kx)`.
pub fn im2col<A: Real>(x: ArrayView4<'_, A>, geometry: Geometry) -> Array2<A> {
    let (batch, channels, height, width) = x.dim();
    let (out_h, out_w) = geometry.output_size(height, width);
    let (kh, kw) = geometry.kernel;
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout is contiguous");
    let mut cols = Array2::zeros((batch * out_h * out_w, channels * kh * kw));
    let cs = cols.as_slice_mut().expect("fresh array is contiguous");
    for_each_tap(x.dim(), geometry, |col, input| cs[col] = xs[input]);
    cols
}

/// The adjoint of [`im2col`]: sums each column entry back into the input position it came from.
pub fn col2im<A: Real>(
    cols: ArrayView2<'_, A>,
    shape: (usize, usize, usize, usize),
    geometry: Geometry,
) -> Array4<A> {
    let cols = cols.as_standard_layout();
    let cs = cols.as_slice().expect("standard layout is contiguous");
    let mut x = Array4::zeros(shape);
    let xs = x.as_slice_mut().expect("fresh array is contiguous");
    for_each_tap(shape, geometry, |col, input| {
        xs[input] = xs[input] + cs[col]
    });
    x
}

/// How many spatial axes a convolution slides over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spatial {
    /// Along one axis: inputs `[B, C, L]`.
    D1,
    /// Along two axes: inputs `[B, C, H, W]`.
    D2,
}

/// A convolution with weight `[C_out, C_in, k]` (1-D) or `[C_out, C_in, kH, kW]` (2-D) and a bias
/// `[C_out]`; output channels are axis 0, which is what `Direction::Output` smooths.
#[derive(Debug, Clone)]
pub struct Conv<A> {
    pub weight: ArrayD<A>,
    pub bias: ArrayD<A>,
    pub geometry: Geometry,
}

impl<A: Real> Conv<A> {
    /// A 1-D convolution (weight `[C_out, C_in, k]`) or a 2-D one with square kernels, strides
    /// and padding (weight `[C_out, C_in, k, k]`), initialised as [`Conv::init`] says.
    pub fn new(
        rng: &mut impl Rng,
        spatial: Spatial,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        match spatial {
            // a 1-D convolution is the 2-D one on inputs of height 1
            Spatial::D1 => Self::init(
                rng,
                &[out_channels, in_channels, kernel],
                Geometry {
                    kernel: (1, kernel),
                    stride: (1, stride),
                    padding: (0, padding),
                },
            ),
            Spatial::D2 => Self::init(
                rng,
                &[out_channels, in_channels, kernel, kernel],
                Geometry {
                    kernel: (kernel, kernel),
                    stride: (stride, stride),
                    padding: (padding, padding),
                },
            ),
        }
    }

    /// PyTorch's default initialisation: weight, then bias, uniform in ±1/√fan_in, where fan_in
    /// is the size of one output channel's weight.
    fn init(rng: &mut impl Rng, weight_shape: &[usize], geometry: Geometry) -> Self {
        let fan_in = weight_shape[1..].iter().product();
        Conv {
            weight: uniform(rng, weight_shape, fan_in),
            bias: uniform(rng, &weight_shape[..1], fan_in),
            geometry,
        }
    }

    fn is_1d(&self) -> bool {
        self.weight.ndim() == 3
    }

    fn weight_matrix(&self) -> ArrayView2<'_, A> {
        let out_channels = self.weight.shape()[0];
        self.weight
            .view()
            .into_shape_with_order((out_channels, self.weight.len() / out_channels))
            .expect("weights stay in standard layout")
    }

    /// `x` is `[B, C_in, L]` (1-D) or `[B, C_in, H, W]` (2-D); returns the output and the lowered input.
    pub fn forward(&self, x: &ArrayD<A>) -> (ArrayD<A>, Array2<A>, Vec<usize>) {
        let x4 = as_4d(x, self.is_1d());
        let (batch, _, height, width) = x4.dim();
        let (out_h, out_w) = self.geometry.output_size(height, width);
        let cols = im2col(x4.view(), self.geometry);
        let bias = self
            .bias
            .view()
            .into_dimensionality::<ndarray::Ix1>()
            .expect("bias is 1-D");
        let out = cols.dot(&self.weight_matrix().t()) + bias;
        let out_channels = bias.len();
        let out = out
            .into_shape_with_order((batch, out_h, out_w, out_channels))
            .expect("GEMM output is contiguous")
            .permuted_axes([0, 3, 1, 2])
            .as_standard_layout()
            .into_owned();
        let out = if self.is_1d() {
            out.into_shape_with_order(IxDyn(&[batch, out_channels, out_w]))
                .expect("contiguous")
        } else {
            out.into_dyn()
        };
        (out, cols, x.shape().to_vec())
    }

    /// Returns (input gradient, weight gradient, bias gradient).
    pub fn backward(
        &self,
        cols: &Array2<A>,
        input_shape: &[usize],
        grad_out: &ArrayD<A>,
    ) -> (ArrayD<A>, ArrayD<A>, ArrayD<A>) {
        let g4 = as_4d(grad_out, self.is_1d());
        let (batch, out_channels, out_h, out_w) = g4.dim();
        // rows (b, oy, ox), columns c_out: the layout of the forward GEMM's output
        let grad_rows = g4
            .permuted_axes([0, 2, 3, 1])
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((batch * out_h * out_w, out_channels))
            .expect("contiguous");
        let grad_weight = grad_rows
            .t()
            .dot(cols)
            .into_shape_with_order(self.weight.raw_dim())
            .expect("contiguous");
        let grad_bias = grad_rows.sum_axis(Axis(0)).into_dyn();
        let grad_cols = grad_rows.dot(&self.weight_matrix());
        let input4 = if self.is_1d() {
            (input_shape[0], input_shape[1], 1, input_shape[2])
        } else {
            (
                input_shape[0],
                input_shape[1],
                input_shape[2],
                input_shape[3],
            )
        };
        let grad_input = col2im(grad_cols.view(), input4, self.geometry)
            .into_shape_with_order(IxDyn(input_shape))
            .expect("contiguous");
        (grad_input, grad_weight, grad_bias)
    }
}

fn as_4d<A: Real>(x: &ArrayD<A>, one_d: bool) -> Array4<A> {
    let s = x.shape();
    let shape = if one_d {
        assert_eq!(s.len(), 3, "conv1d input must be [B, C, L], got {s:?}");
        (s[0], s[1], 1, s[2])
    } else {
        assert_eq!(s.len(), 4, "conv2d input must be [B, C, H, W], got {s:?}");
        (s[0], s[1], s[2], s[3])
    };
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order(shape)
        .expect("contiguous")
}

/// A fully connected layer `y = x Wᵀ + b` with weight `[out, in]`.
#[derive(Debug, Clone)]
pub struct Linear<A> {
    pub weight: ArrayD<A>,
    pub bias: ArrayD<A>,
}

impl<A: Real> Linear<A> {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√fan_in.
    pub fn new(rng: &mut impl Rng, inputs: usize, outputs: usize) -> Self {
        Linear {
            weight: uniform(rng, &[outputs, inputs], inputs),
            bias: uniform(rng, &[outputs], inputs),
        }
    }

    fn weight_matrix(&self) -> ArrayView2<'_, A> {
        self.weight
            .view()
            .into_dimensionality()
            .expect("linear weight is 2-D")
    }

    pub fn forward(&self, x: &Array2<A>) -> Array2<A> {
        let bias = self
            .bias
            .view()
            .into_dimensionality::<ndarray::Ix1>()
            .expect("bias is 1-D");
        x.dot(&self.weight_matrix().t()) + bias
    }

    /// Returns (input gradient, weight gradient, bias gradient).
    pub fn backward(
        &self,
        x: &Array2<A>,
        grad_out: &Array2<A>,
    ) -> (Array2<A>, ArrayD<A>, ArrayD<A>) {
        let grad_weight = grad_out.t().dot(x).into_dyn();
        let grad_bias = grad_out.sum_axis(Axis(0)).into_dyn();
        (grad_out.dot(&self.weight_matrix()), grad_weight, grad_bias)
    }
}

fn uniform<A: Real>(rng: &mut impl Rng, shape: &[usize], fan_in: usize) -> ArrayD<A> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    ArrayD::from_shape_simple_fn(IxDyn(shape), || real(rng.random_range(-bound..bound)))
}

/// ReLU forward.
pub fn relu<A: Real>(x: &ArrayD<A>) -> ArrayD<A> {
    x.mapv(|v| if v > A::zero() { v } else { A::zero() })
}

/// ReLU backward: passes the gradient where the input was positive.
pub fn relu_backward<A: Real>(input: &ArrayD<A>, grad_out: &ArrayD<A>) -> ArrayD<A> {
    let mut grad = grad_out.clone();
    ndarray::Zip::from(&mut grad).and(input).for_each(|g, &x| {
        if x <= A::zero() {
            *g = A::zero();
        }
    });
    grad
}

/// 2×2 max pooling with stride 2 of `x` `[B, C, H, W]` (H and W even): the output and, per output
/// entry, the flat index of the input entry it came from (the first maximum in row-major order).
pub fn max_pool2<A: Real>(x: &ArrayD<A>) -> (ArrayD<A>, Vec<usize>) {
    let s = x.shape();
    assert!(
        s.len() == 4 && s[2].is_multiple_of(2) && s[3].is_multiple_of(2),
        "max_pool2 needs [B, C, H, W] with even H and W, got {s:?}"
    );
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout is contiguous");
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(planes * oh * ow);
    let mut argmax = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let top_left = (p * h + 2 * oy) * w + 2 * ox;
                let best = [top_left, top_left + 1, top_left + w, top_left + w + 1]
                    .into_iter()
                    .fold(top_left, |best, i| if xs[i] > xs[best] { i } else { best });
                out.push(xs[best]);
                argmax.push(best);
            }
        }
    }
    let out = ArrayD::from_shape_vec(IxDyn(&[s[0], s[1], oh, ow]), out).expect("sizes match");
    (out, argmax)
}

/// The backward pass of [`max_pool2`]: each output gradient goes to the input entry it came from.
pub fn max_pool2_backward<A: Real>(
    input_shape: &[usize],
    argmax: &[usize],
    grad_out: &ArrayD<A>,
) -> ArrayD<A> {
    let mut grad = ArrayD::zeros(IxDyn(input_shape));
    let gs = grad.as_slice_mut().expect("fresh array is contiguous");
    for (&i, &g) in argmax.iter().zip(grad_out.iter()) {
        gs[i] = gs[i] + g;
    }
    grad
}

/// Mean softmax cross-entropy over the batch: returns (loss, gradient w.r.t. the logits, number of
/// correct arg-max predictions).
pub fn softmax_cross_entropy<A: Real>(logits: &Array2<A>, labels: &[u8]) -> (A, Array2<A>, usize) {
    let batch = logits.nrows();
    assert_eq!(batch, labels.len(), "one label per row");
    let scale = A::one() / real(batch as f64);
    let mut grad = logits.clone();
    let mut loss = A::zero();
    let mut correct = 0;
    for (mut row, &label) in grad.rows_mut().into_iter().zip(labels) {
        let label = usize::from(label);
        let (arg_max, max) =
            row.iter()
                .enumerate()
                .fold((0, A::neg_infinity()), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                });
        correct += usize::from(arg_max == label);
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        loss = loss + (sum.ln() - (row[label].ln())) * scale;
        row.mapv_inplace(|v| v / sum * scale);
        row[label] = row[label] - scale;
    }
    (loss, grad, correct)
}

/// One layer of a [`Network`].
#[derive(Debug, Clone)]
pub enum Layer<A> {
    Conv(Conv<A>),
    Relu,
    /// 2×2 max pooling, stride 2.
    MaxPool2,
    Flatten,
    Linear(Linear<A>),
}

/// What a layer keeps from the forward pass for its backward pass.
pub enum Cache<A> {
    Conv {
        cols: Array2<A>,
        input_shape: Vec<usize>,
    },
    Relu {
        input: ArrayD<A>,
    },
    MaxPool2 {
        input_shape: Vec<usize>,
        argmax: Vec<usize>,
    },
    Flatten {
        input_shape: Vec<usize>,
    },
    Linear {
        input: Array2<A>,
    },
}

/// A chain of named layers; the parameters of layer `name` are `name.weight` and `name.bias`.
#[derive(Debug, Clone)]
pub struct Network<A> {
    pub layers: Vec<(String, Layer<A>)>,
}

impl<A: Real> Network<A> {
    /// The MNIST-1D network of Greydanus (2020) with 32 channels: three strided conv1d + ReLU, then
    /// a linear head, for inputs `[B, 1, length]`.
    pub fn mnist1d(rng: &mut impl Rng, length: usize, channels: usize, classes: usize) -> Self {
        let conv1 = Conv::new(rng, Spatial::D1, 1, channels, 5, 2, 1);
        let conv2 = Conv::new(rng, Spatial::D1, channels, channels, 3, 2, 1);
        let conv3 = Conv::new(rng, Spatial::D1, channels, channels, 3, 2, 1);
        let out_len = [&conv1, &conv2, &conv3]
            .iter()
            .fold(length, |n, c| c.geometry.output_size(1, n).1);
        let fc = Linear::new(rng, channels * out_len, classes);
        Network::conv_net([(conv1, false), (conv2, false), (conv3, false)], fc)
    }

    /// A small 2-D CNN for `[B, 1, side, side]` images: 3×3 conv (16) + ReLU, 3×3 stride-2 conv
    /// (32) + ReLU, linear head.
    pub fn digits(rng: &mut impl Rng, side: usize, classes: usize) -> Self {
        let conv1 = Conv::new(rng, Spatial::D2, 1, 16, 3, 1, 1);
        let conv2 = Conv::new(rng, Spatial::D2, 16, 32, 3, 2, 1);
        let (h, w) = conv1.geometry.output_size(side, side);
        let (h, w) = conv2.geometry.output_size(h, w);
        let fc = Linear::new(rng, 32 * h * w, classes);
        Network::conv_net([(conv1, false), (conv2, false)], fc)
    }

    /// The MNIST network for `[B, 1, 28, 28]` images: 3×3 conv (16) + ReLU + 2×2 max pool, 3×3
    /// stride-2 conv (32) + ReLU, linear head (32·7·7 → classes). Pooling before the second conv
    /// keeps a training step cheap on a CPU.
    pub fn mnist(rng: &mut impl Rng, side: usize, classes: usize) -> Self {
        let conv1 = Conv::new(rng, Spatial::D2, 1, 16, 3, 1, 1);
        let conv2 = Conv::new(rng, Spatial::D2, 16, 32, 3, 2, 1);
        let (h, w) = conv1.geometry.output_size(side, side);
        let (h, w) = conv2.geometry.output_size(h / 2, w / 2);
        let fc = Linear::new(rng, 32 * h * w, classes);
        Network::conv_net([(conv1, true), (conv2, false)], fc)
    }

    /// Conv layer `k` (from 1), a ReLU and, where its flag says so, a 2×2 max pool, for each conv;
    /// then the linear head. Named `conv{k}`, `relu{k}`, `pool{k}`, `flatten`, `fc`.
    fn conv_net<const N: usize>(convs: [(Conv<A>, bool); N], fc: Linear<A>) -> Self {
        let mut layers = Vec::new();
        for (k, (conv, pool)) in (1..).zip(convs) {
            layers.push((format!("conv{k}"), Layer::Conv(conv)));
            layers.push((format!("relu{k}"), Layer::Relu));
            if pool {
                layers.push((format!("pool{k}"), Layer::MaxPool2));
            }
        }
        layers.push(("flatten".into(), Layer::Flatten));
        layers.push(("fc".into(), Layer::Linear(fc)));
        Network { layers }
    }

    /// Logits `[B, classes]` and the caches for [`Network::backward`].
    pub fn forward(&self, x: ArrayD<A>) -> (Array2<A>, Vec<Cache<A>>) {
        let mut caches = Vec::with_capacity(self.layers.len());
        let mut h = x;
        for (_, layer) in &self.layers {
            h = match layer {
                Layer::Conv(conv) => {
                    let (out, cols, input_shape) = conv.forward(&h);
                    caches.push(Cache::Conv { cols, input_shape });
                    out
                }
                Layer::Relu => {
                    let out = relu(&h);
                    caches.push(Cache::Relu { input: h });
                    out
                }
                Layer::MaxPool2 => {
                    let (out, argmax) = max_pool2(&h);
                    caches.push(Cache::MaxPool2 {
                        input_shape: h.shape().to_vec(),
                        argmax,
                    });
                    out
                }
                Layer::Flatten => {
                    let input_shape = h.shape().to_vec();
                    let rest = h.len() / input_shape[0];
                    caches.push(Cache::Flatten {
                        input_shape: input_shape.clone(),
                    });
                    h.as_standard_layout()
                        .into_owned()
                        .into_shape_with_order(IxDyn(&[input_shape[0], rest]))
                        .expect("contiguous")
                }
                Layer::Linear(linear) => {
                    let input: Array2<A> = h
                        .into_dimensionality()
                        .expect("linear input is [B, features]");
                    let out = linear.forward(&input);
                    caches.push(Cache::Linear { input });
                    out.into_dyn()
                }
            };
        }
        (
            h.into_dimensionality()
                .expect("the network ends in logits [B, classes]"),
            caches,
        )
    }

    /// Parameter gradients in the order of [`Network::params`], from the gradient w.r.t. the logits;
    /// also returns the gradient w.r.t. the input.
    pub fn backward(
        &self,
        caches: Vec<Cache<A>>,
        grad_logits: Array2<A>,
    ) -> (ArrayD<A>, Vec<ArrayD<A>>) {
        let mut per_layer: Vec<Vec<ArrayD<A>>> = vec![Vec::new(); self.layers.len()];
        let mut grad = grad_logits.into_dyn();
        for (i, ((_, layer), cache)) in self.layers.iter().zip(caches).enumerate().rev() {
            grad = match (layer, cache) {
                (Layer::Conv(conv), Cache::Conv { cols, input_shape }) => {
                    let (gx, gw, gb) = conv.backward(&cols, &input_shape, &grad);
                    per_layer[i] = vec![gw, gb];
                    gx
                }
                (Layer::Relu, Cache::Relu { input }) => relu_backward(&input, &grad),
                (
                    Layer::MaxPool2,
                    Cache::MaxPool2 {
                        input_shape,
                        argmax,
                    },
                ) => max_pool2_backward(&input_shape, &argmax, &grad),
                (Layer::Flatten, Cache::Flatten { input_shape }) => grad
                    .into_shape_with_order(IxDyn(&input_shape))
                    .expect("contiguous"),
                (Layer::Linear(linear), Cache::Linear { input }) => {
                    let g2: Array2<A> = grad.into_dimensionality().expect("[B, out]");
                    let (gx, gw, gb) = linear.backward(&input, &g2);
                    per_layer[i] = vec![gw, gb];
                    gx.into_dyn()
                }
                _ => unreachable!("caches come from forward on the same layers"),
            };
        }
        (grad, per_layer.into_iter().flatten().collect())
    }

    /// `(name, parameter)` in a fixed order: per layer, weight then bias.
    pub fn params(&self) -> Vec<(String, &ArrayD<A>)> {
        let mut out = Vec::new();
        for (name, layer) in &self.layers {
            if let Layer::Conv(Conv { weight, bias, .. }) | Layer::Linear(Linear { weight, bias }) =
                layer
            {
                out.push((format!("{name}.weight"), weight));
                out.push((format!("{name}.bias"), bias));
            }
        }
        out
    }

    /// Mutable [`Network::params`], same order.
    pub fn params_mut(&mut self) -> Vec<(String, &mut ArrayD<A>)> {
        let mut out = Vec::new();
        for (name, layer) in &mut self.layers {
            if let Layer::Conv(Conv { weight, bias, .. }) | Layer::Linear(Linear { weight, bias }) =
                layer
            {
                out.push((format!("{name}.weight"), weight));
                out.push((format!("{name}.bias"), bias));
            }
        }
        out
    }
}

/// Converts a network between float types (the tests check the f32 network against f64).
pub fn cast_network<A: Real, B: Real>(net: &Network<A>) -> Network<B> {
    let cast = |x: &ArrayD<A>| x.mapv(|v| B::from(v).expect("finite"));
    Network {
        layers: net
            .layers
            .iter()
            .map(|(name, layer)| {
                let layer = match layer {
                    Layer::Conv(c) => Layer::Conv(Conv {
                        weight: cast(&c.weight),
                        bias: cast(&c.bias),
                        geometry: c.geometry,
                    }),
                    Layer::Relu => Layer::Relu,
                    Layer::MaxPool2 => Layer::MaxPool2,
                    Layer::Flatten => Layer::Flatten,
                    Layer::Linear(l) => Layer::Linear(Linear {
                        weight: cast(&l.weight),
                        bias: cast(&l.bias),
                    }),
                };
                (name.clone(), layer)
            })
            .collect(),
    }
}
