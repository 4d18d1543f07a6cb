//! The layers of the study's CNN (examples/reproduce/model.rs): forward passes against direct
//! loops, backward passes against central finite differences in f64, and the f32 network against
//! the f64 one.
//!
//! Tolerances: in f64 with ε = 1e-6, a central difference of a function that is linear in the
//! perturbed entry (convolution, linear layer, ReLU away from 0, with a linear read-out) has no
//! truncation error, only rounding ≈ 1e-16·|L|/ε ≈ 1e-10; through softmax and the whole network
//! the truncation error is O(ε²) ≈ 1e-12. So 1e-6 (relative to max(1, |g|)) is loose for a correct
//! backward pass, while a wrong index, transpose or missing term gives errors of order 1e-2..1
//! (`the_checker_catches_a_wrong_gradient` makes sure the check can fail).

#[path = "../examples/reproduce/model.rs"]
mod model;

use model::{
    col2im, im2col, max_pool2, max_pool2_backward, relu, relu_backward, softmax_cross_entropy,
    Conv, Geometry, Linear, Network, Spatial,
};
use ndarray::{Array2, Array4, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0..1.0))
}

/// A convolution (`spatial`, `[C_in, C_out, k, stride, padding]`) drawn from `rng`, then a random
/// input of `input_shape` for it.
fn conv_and_input(
    rng: &mut ChaCha8Rng,
    spatial: Spatial,
    [in_channels, out_channels, kernel, stride, padding]: [usize; 5],
    input_shape: &[usize],
) -> (Conv<f64>, ArrayD<f64>) {
    let conv = Conv::new(
        rng,
        spatial,
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
    );
    (conv, random(rng, input_shape))
}

/// Largest |finite difference − analytic| / max(1, |analytic|) over every entry of `x`.
fn max_fd_error(x: &ArrayD<f64>, analytic: &ArrayD<f64>, f: impl Fn(&ArrayD<f64>) -> f64) -> f64 {
    assert_eq!(x.shape(), analytic.shape());
    let mut worst: f64 = 0.0;
    for (i, &a) in analytic.iter().enumerate() {
        let mut plus = x.clone();
        plus.as_slice_mut().unwrap()[i] += EPS;
        let mut minus = x.clone();
        minus.as_slice_mut().unwrap()[i] -= EPS;
        let fd = (f(&plus) - f(&minus)) / (2.0 * EPS);
        worst = worst.max((fd - a).abs() / a.abs().max(1.0));
    }
    worst
}

/// Direct convolution: out[b, o, y, x] = bias[o] + Σ w[o, c, i, j] · in[b, c, y·s + i − p, x·s + j − p].
fn naive_conv(x: &Array4<f64>, w: &Array4<f64>, bias: &[f64], g: Geometry) -> Array4<f64> {
    let (batch, channels, h, wd) = x.dim();
    let (out_c, _, kh, kw) = w.dim();
    let (oh, ow) = g.output_size(h, wd);
    Array4::from_shape_fn((batch, out_c, oh, ow), |(b, o, oy, ox)| {
        let mut sum = bias[o];
        for c in 0..channels {
            for i in 0..kh {
                for j in 0..kw {
                    let y = (oy * g.stride.0 + i) as isize - g.padding.0 as isize;
                    let xx = (ox * g.stride.1 + j) as isize - g.padding.1 as isize;
                    if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < wd {
                        sum += w[[o, c, i, j]] * x[[b, c, y as usize, xx as usize]];
                    }
                }
            }
        }
        sum
    })
}

fn as4(x: &ArrayD<f64>) -> Array4<f64> {
    x.clone().into_dimensionality().unwrap()
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for g in [
        Geometry {
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
        },
        Geometry {
            kernel: (3, 2),
            stride: (2, 3),
            padding: (1, 0),
        },
        Geometry {
            kernel: (1, 5),
            stride: (1, 2),
            padding: (0, 1),
        },
    ] {
        let shape = (2, 3, 5, 7);
        let x = as4(&random(&mut rng, &[2, 3, 5, 7]));
        let cols = im2col(x.view(), g);
        let c: Array2<f64> = random(&mut rng, cols.shape())
            .into_dimensionality()
            .unwrap();
        let lhs = (&cols * &c).sum();
        let rhs = (&x * &col2im(c.view(), shape, g)).sum();
        assert!(
            (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
            "{g:?}: {lhs} vs {rhs}"
        );
    }
}

#[test]
fn conv2d_forward_matches_a_direct_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (conv, x) = conv_and_input(&mut rng, Spatial::D2, [3, 4, 3, 2, 1], &[2, 3, 5, 6]);
    let (out, _, _) = conv.forward(&x);
    let expected = naive_conv(
        &as4(&x),
        &as4(&conv.weight),
        conv.bias.as_slice().unwrap(),
        conv.geometry,
    );
    assert_eq!(out.shape(), &[2, 4, 3, 3]);
    assert!((&out - &expected.into_dyn())
        .iter()
        .all(|d| d.abs() < 1e-12));
}

#[test]
fn conv1d_forward_matches_a_direct_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (conv, x) = conv_and_input(&mut rng, Spatial::D1, [2, 5, 5, 2, 1], &[3, 2, 11]);
    let (out, _, _) = conv.forward(&x);
    let x4 = x
        .clone()
        .into_shape_with_order(IxDyn(&[3, 2, 1, 11]))
        .unwrap();
    let w4 = conv
        .weight
        .clone()
        .into_shape_with_order(IxDyn(&[5, 2, 1, 5]))
        .unwrap();
    let expected = naive_conv(
        &as4(&x4),
        &as4(&w4),
        conv.bias.as_slice().unwrap(),
        conv.geometry,
    );
    // (11 + 2 − 5) / 2 + 1 = 5 positions
    assert_eq!(out.shape(), &[3, 5, 5]);
    let expected = expected.into_shape_with_order(IxDyn(&[3, 5, 5])).unwrap();
    assert!((&out - &expected).iter().all(|d| d.abs() < 1e-12));
}

/// Checks the weight and bias gradients `[gw, gb]` of `layer` against finite differences of
/// `loss` (of a copy whose parameter `weight_and_bias` reaches is perturbed), together with
/// `err_x`, the error of the input gradient.
fn check_parameters<L: Clone>(
    layer: &L,
    weight_and_bias: fn(&mut L) -> [&mut ArrayD<f64>; 2],
    [gw, gb]: [&ArrayD<f64>; 2],
    loss: impl Fn(&L) -> f64,
    err_x: f64,
) {
    let [err_w, err_b] = [(0, gw), (1, gb)].map(|(which, analytic)| {
        let start = weight_and_bias(&mut layer.clone())[which].clone();
        max_fd_error(&start, analytic, |value| {
            let mut perturbed = layer.clone();
            *weight_and_bias(&mut perturbed)[which] = value.clone();
            loss(&perturbed)
        })
    });
    assert!(
        err_x < TOL && err_w < TOL && err_b < TOL,
        "input {err_x:e}, weight {err_w:e}, bias {err_b:e}"
    );
}

/// Checks the input, weight and bias gradients of `conv` on `x` for the read-out L = Σ out ⊙ R.
fn check_conv(conv: Conv<f64>, x: ArrayD<f64>, rng: &mut ChaCha8Rng) {
    let (out, cols, input_shape) = conv.forward(&x);
    let readout = random(rng, out.shape());
    let (gx, gw, gb) = conv.backward(&cols, &input_shape, &readout);
    let loss = |c: &Conv<f64>, x: &ArrayD<f64>| (&c.forward(x).0 * &readout).sum();
    let err_x = max_fd_error(&x, &gx, |x| loss(&conv, x));
    check_parameters(
        &conv,
        |c| [&mut c.weight, &mut c.bias],
        [&gw, &gb],
        |c| loss(c, &x),
        err_x,
    );
}

/// [`check_conv`] for each `(kernel, stride, padding)` of `geometries`, the convolutions (of
/// `[C_in, C_out]` channels) and their inputs drawn in turn from one rng seeded with `seed`.
fn check_conv_geometries(
    seed: u64,
    spatial: Spatial,
    [in_channels, out_channels]: [usize; 2],
    geometries: [(usize, usize, usize); 3],
    input_shape: &[usize],
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (k, stride, padding) in geometries {
        let shape = [in_channels, out_channels, k, stride, padding];
        let (conv, x) = conv_and_input(&mut rng, spatial, shape, input_shape);
        check_conv(conv, x, &mut rng);
    }
}

#[test]
fn conv1d_backward_matches_finite_differences() {
    let geometries = [(5, 2, 1), (3, 1, 1), (3, 2, 0)];
    check_conv_geometries(4, Spatial::D1, [3, 4], geometries, &[2, 3, 12]);
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let geometries = [(3, 1, 1), (3, 2, 1), (2, 2, 0)];
    check_conv_geometries(5, Spatial::D2, [2, 3], geometries, &[2, 2, 5, 6]);
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let layer = Linear::<f64>::new(&mut rng, 7, 4);
    let x: Array2<f64> = random(&mut rng, &[3, 7]).into_dimensionality().unwrap();
    let readout: Array2<f64> = random(&mut rng, &[3, 4]).into_dimensionality().unwrap();
    let (gx, gw, gb) = layer.backward(&x, &readout);
    let loss = |l: &Linear<f64>, x: &ArrayD<f64>| {
        let x: Array2<f64> = x.clone().into_dimensionality().unwrap();
        (&l.forward(&x) * &readout).sum()
    };
    let err_x = max_fd_error(&x.clone().into_dyn(), &gx.into_dyn(), |x| loss(&layer, x));
    check_parameters(
        &layer,
        |l| [&mut l.weight, &mut l.bias],
        [&gw, &gb],
        |l| loss(l, &x.clone().into_dyn()),
        err_x,
    );
}

#[test]
fn relu_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // entries at least 0.1 away from the kink, so that ±ε never crosses it
    let x = random(&mut rng, &[4, 6]).mapv(|v: f64| v.signum() * (0.1 + v.abs()));
    let readout = random(&mut rng, &[4, 6]);
    let grad = relu_backward(&x, &readout);
    assert!(x.iter().any(|&v| v < 0.0) && x.iter().any(|&v| v > 0.0));
    let err = max_fd_error(&x, &grad, |x| (&relu(x) * &readout).sum());
    assert!(err < TOL, "{err:e}");
}

#[test]
fn max_pool2_matches_a_direct_loop_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    // distinct values (no ties within ±ε), as after a ReLU of a generic input
    let x = random(&mut rng, &[2, 3, 4, 6]);
    let (out, argmax) = max_pool2(&x);
    assert_eq!(out.shape(), &[2, 3, 2, 3]);
    let x4 = as4(&x);
    for ((b, c, y, xx), &v) in as4(&out).indexed_iter() {
        let window = [
            x4[[b, c, 2 * y, 2 * xx]],
            x4[[b, c, 2 * y, 2 * xx + 1]],
            x4[[b, c, 2 * y + 1, 2 * xx]],
            x4[[b, c, 2 * y + 1, 2 * xx + 1]],
        ];
        assert_eq!(v, window.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }
    let readout = random(&mut rng, out.shape());
    let grad = max_pool2_backward(x.shape(), &argmax, &readout);
    let err = max_fd_error(&x, &grad, |x| (&max_pool2(x).0 * &readout).sum());
    assert!(err < TOL, "{err:e}");
    // exactly one input per window receives its output's gradient
    assert_eq!(grad.iter().filter(|g| **g != 0.0).count(), out.len());
}

#[test]
fn softmax_cross_entropy_value_and_gradient() {
    // uniform logits: loss ln(classes), one correct arg-max (ties go to the first class)
    let (loss, _, correct) = softmax_cross_entropy(&Array2::<f64>::zeros((2, 10)), &[0, 3]);
    assert!((loss - 10f64.ln()).abs() < 1e-14);
    assert_eq!(correct, 1);

    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let logits = random(&mut rng, &[5, 10]).mapv(|v| 4.0 * v);
    let labels = [3, 0, 9, 9, 1];
    let (_, grad, _) =
        softmax_cross_entropy(&logits.clone().into_dimensionality().unwrap(), &labels);
    let err = max_fd_error(&logits, &grad.into_dyn(), |z| {
        softmax_cross_entropy(&z.clone().into_dimensionality().unwrap(), &labels).0
    });
    assert!(err < TOL, "{err:e}");
    // large logits must not overflow
    let big = Array2::from_shape_vec((1, 3), vec![1000.0_f64, 0.0, -1000.0]).unwrap();
    let (loss, grad, _) = softmax_cross_entropy(&big, &[0]);
    assert!(loss.abs() < 1e-12 && grad.iter().all(|g| g.is_finite()));
}

/// Loss of `net` on `(x, labels)` and the analytic parameter gradients.
fn loss_and_grads(net: &Network<f64>, x: &ArrayD<f64>, labels: &[u8]) -> (f64, Vec<ArrayD<f64>>) {
    let (logits, caches) = net.forward(x.clone());
    let (loss, grad_logits, _) = softmax_cross_entropy(&logits, labels);
    (loss, net.backward(caches, grad_logits).1)
}

fn check_network(net: Network<f64>, x: ArrayD<f64>, labels: &[u8]) {
    let (_, grads) = loss_and_grads(&net, &x, labels);
    let names: Vec<String> = net.params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(grads.len(), names.len());
    for (i, name) in names.iter().enumerate() {
        let param = net.params()[i].1.clone();
        let err = max_fd_error(&param, &grads[i], |p| {
            let mut perturbed = net.clone();
            *perturbed.params_mut()[i].1 = p.clone();
            loss_and_grads(&perturbed, &x, labels).0
        });
        assert!(err < TOL, "{name}: {err:e}");
    }
}

#[test]
fn mnist1d_network_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    // 4 channels keep the check fast; the study uses 32 (same code path)
    let net = Network::<f64>::mnist1d(&mut rng, 40, 4, 10);
    let names: Vec<String> = net.params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "conv3.weight",
            "conv3.bias",
            "fc.weight",
            "fc.bias"
        ]
    );
    assert_eq!(net.params()[0].1.shape(), &[4, 1, 5]);
    assert_eq!(net.params()[6].1.shape(), &[10, 4 * 5]);
    let x = random(&mut rng, &[3, 1, 40]);
    check_network(net, x, &[1, 7, 4]);
}

#[test]
fn digits_network_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let net = Network::<f64>::digits(&mut rng, 8, 10);
    assert_eq!(net.params()[0].1.shape(), &[16, 1, 3, 3]);
    assert_eq!(net.params()[2].1.shape(), &[32, 16, 3, 3]);
    assert_eq!(net.params()[4].1.shape(), &[10, 32 * 4 * 4]);
    let x = random(&mut rng, &[2, 1, 8, 8]);
    check_network(net, x, &[5, 0]);
}

#[test]
fn mnist_network_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    // the study's shapes on 28×28 inputs
    let net = Network::<f64>::mnist(&mut rng, 28, 10);
    let shapes: Vec<Vec<usize>> = net
        .params()
        .iter()
        .map(|(_, p)| p.shape().to_vec())
        .collect();
    assert_eq!(shapes[0], [16, 1, 3, 3]);
    assert_eq!(shapes[2], [32, 16, 3, 3]);
    assert_eq!(shapes[4], [10, 32 * 7 * 7]);
    // the same layers on 8×8 inputs keep the finite-difference check fast
    let net = Network::<f64>::mnist(&mut rng, 8, 10);
    let x = random(&mut rng, &[2, 1, 8, 8]);
    check_network(net, x, &[2, 9]);
}

#[test]
fn the_checker_catches_a_wrong_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (conv, x) = conv_and_input(&mut rng, Spatial::D2, [2, 3, 3, 1, 1], &[2, 2, 4, 4]);
    let (out, cols, input_shape) = conv.forward(&x);
    let readout = random(&mut rng, out.shape());
    let (_, gw, _) = conv.backward(&cols, &input_shape, &readout);
    let loss = |w: &ArrayD<f64>| {
        let mut c = conv.clone();
        c.weight = w.clone();
        (&c.forward(&x).0 * &readout).sum()
    };
    assert!(max_fd_error(&conv.weight, &gw, loss) < TOL);
    // swapping two output channels of the gradient (the kind of bug a layout mix-up makes)
    let mut swapped = gw.clone();
    for rest in 0..18 {
        let (a, b) = (
            swapped.as_slice().unwrap()[rest],
            swapped.as_slice().unwrap()[18 + rest],
        );
        swapped.as_slice_mut().unwrap()[rest] = b;
        swapped.as_slice_mut().unwrap()[18 + rest] = a;
    }
    assert!(max_fd_error(&conv.weight, &swapped, loss) > 1e-2);
}

#[test]
fn the_f32_network_agrees_with_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let net64 = Network::<f64>::mnist1d(&mut rng, 40, 32, 10);
    let net32: Network<f32> = model::cast_network(&net64);
    let x = random(&mut rng, &[16, 1, 40]);
    let labels: Vec<u8> = (0..16).map(|i| (i % 10) as u8).collect();
    let (_, g64) = loss_and_grads(&net64, &x, &labels);
    let (logits, caches) = net32.forward(x.mapv(|v| v as f32));
    let (_, grad_logits, _) = softmax_cross_entropy(&logits, &labels);
    let (_, g32) = net32.backward(caches, grad_logits);
    for ((name, _), (a, b)) in net64.params().into_iter().zip(g64.iter().zip(&g32)) {
        let scale = a.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(b)
            .fold(0.0_f64, |m, (x, y)| m.max((x - f64::from(*y)).abs()));
        // f32 keeps ~7 digits; sums of a few hundred terms lose at most ~2 of them
        assert!(err <= 1e-4 * scale, "{name}: {err:e} vs scale {scale:e}");
    }
}
