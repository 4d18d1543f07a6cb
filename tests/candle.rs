//! The candle wrapper against the ndarray path: a few real training steps of a small conv net, where
//! the wrapper's result must equal "smooth the same raw gradients with `ChannelDirected` on an
//! ndarray copy, then step the inner optimizer"; and in-place smoothing of strided tensors.
#![cfg(feature = "candle")]

mod common;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap, SGD};
use chandir::integrations::candle::{
    precondition_in_place, preconditioned, ChannelDirectedConfig, ChannelDirectedOptimizer,
    LINEAR_OUTPUT,
};
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::{ArrayD, IxDyn};

const STEPS: usize = 3;

/// Conv2d(3 → 6, 3×3) → ReLU → flatten → Linear(6·4·4 → 5): rank-4, rank-2 and rank-1 params.
struct Net {
    conv: candle_nn::Conv2d,
    linear: candle_nn::Linear,
}

impl Net {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Net {
            conv: candle_nn::conv2d(3, 6, 3, Default::default(), vb.pp("conv"))?,
            linear: candle_nn::linear(6 * 4 * 4, 5, vb.pp("linear"))?,
        })
    }

    fn loss(&self, input: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = self.conv.forward(input)?.relu()?.flatten_from(1)?;
        candle_nn::loss::mse(&self.linear.forward(&hidden)?, target)
    }
}

/// A net in a fresh `VarMap` whose variables start as copies of `source`'s (or at random).
fn net_in(source: Option<&VarMap>) -> (Net, VarMap) {
    let varmap = VarMap::new();
    if let Some(source) = source {
        let mut data = varmap.data().lock().unwrap();
        for (name, var) in source.data().lock().unwrap().iter() {
            data.insert(
                name.clone(),
                Var::from_tensor(&var.as_tensor().copy().unwrap()).unwrap(),
            );
        }
    }
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    (Net::new(vb).unwrap(), varmap)
}

/// A batch of random inputs `[4, 3, 6, 6]` and regression targets `[4, 5]`.
fn batch() -> (Tensor, Tensor) {
    (
        Tensor::randn(0f32, 1., (4, 3, 6, 6), &Device::Cpu).unwrap(),
        Tensor::randn(0f32, 1., (4, 5), &Device::Cpu).unwrap(),
    )
}

fn var(varmap: &VarMap, name: &str) -> Var {
    varmap.data().lock().unwrap()[name].clone()
}

fn to_ndarray(tensor: &Tensor) -> ArrayD<f32> {
    let values = tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    ArrayD::from_shape_vec(IxDyn(tensor.dims()), values).unwrap()
}

fn max_abs_difference(a: &Tensor, b: &Tensor) -> f32 {
    common::max_abs_diff(&to_ndarray(a), &to_ndarray(b))
}

const PARAMS: [&str; 4] = ["conv.weight", "conv.bias", "linear.weight", "linear.bias"];

/// For each name in [`PARAMS`], the largest difference between two nets' values.
type Differences = Vec<(&'static str, f32)>;

/// The [`Differences`] of two nets.
fn differences(a: &VarMap, b: &VarMap) -> Differences {
    PARAMS
        .iter()
        .map(|&name| {
            (
                name,
                max_abs_difference(var(a, name).as_tensor(), var(b, name).as_tensor()),
            )
        })
        .collect()
}

/// Trains three copies of one net for [`STEPS`] steps on the same batches: with the wrapper, with
/// the reference path (inner optimizer on gradients smoothed on ndarray copies, per `reference`:
/// parameter name → direction), and with the inner optimizer alone. Returns the per-parameter
/// differences (wrapper − reference, wrapper − plain).
fn train_three_ways<O: Optimizer>(
    inner: O::Config,
    config: ChannelDirectedConfig<O::Config>,
    reference: &[(&str, Direction)],
) -> (Differences, Differences)
where
    O::Config: Clone,
{
    let (wrapped_net, wrapped_vars) = net_in(None);
    let (reference_net, reference_vars) = net_in(Some(&wrapped_vars));
    let (plain_net, plain_vars) = net_in(Some(&wrapped_vars));
    let metric = config.policy.metric;

    let mut wrapped_optim =
        ChannelDirectedOptimizer::<O>::new(wrapped_vars.all_vars(), config).unwrap();
    let mut reference_optim = O::new(reference_vars.all_vars(), inner.clone()).unwrap();
    let mut plain_optim = O::new(plain_vars.all_vars(), inner).unwrap();

    for _ in 0..STEPS {
        let (input, target) = batch();

        wrapped_optim
            .backward_step(&wrapped_net.loss(&input, &target).unwrap())
            .unwrap();

        let mut grads = reference_net
            .loss(&input, &target)
            .unwrap()
            .backward()
            .unwrap();
        for &(name, direction) in reference {
            let param = var(&reference_vars, name);
            let raw = grads
                .remove(param.as_tensor())
                .expect("the parameter has a gradient");
            let mut array = to_ndarray(&raw);
            ChannelDirected::new(metric, direction)
                .apply(&mut array)
                .unwrap();
            let values: Vec<f32> = array.iter().copied().collect();
            grads.insert(
                param.as_tensor(),
                Tensor::from_vec(values, raw.dims(), &Device::Cpu).unwrap(),
            );
        }
        reference_optim.step(&grads).unwrap();

        plain_optim
            .backward_step(&plain_net.loss(&input, &target).unwrap())
            .unwrap();
    }
    (
        differences(&wrapped_vars, &reference_vars),
        differences(&wrapped_vars, &plain_vars),
    )
}

fn assert_all_below(name: &str, differences: &[(&str, f32)], tolerance: f32) {
    for (param, diff) in differences {
        assert!(
            *diff < tolerance,
            "{name}: {param} differs from the ndarray path by {diff}"
        );
    }
}

fn difference_of(differences: &[(&str, f32)], param: &str) -> f32 {
    differences
        .iter()
        .find(|(name, _)| *name == param)
        .unwrap()
        .1
}

/// What [`train_three_ways`] returned: the wrapper is the ndarray path (to 1e-6), and `smoothed`
/// moved differently from the plain optimizer.
fn assert_matches_and_smooths(
    name: &str,
    (vs_reference, vs_plain): (Differences, Differences),
    smoothed: &str,
) {
    assert_all_below(name, &vs_reference, 1e-6);
    assert!(
        difference_of(&vs_plain, smoothed) > 1e-4,
        "{name}: {smoothed} was not smoothed"
    );
}

#[test]
fn sgd_matches_the_ndarray_path() {
    let differences = train_three_ways::<SGD>(
        0.05,
        ChannelDirectedConfig::new().with_inner(0.05),
        &[("conv.weight", Direction::Output)],
    );
    assert_matches_and_smooths("sgd", differences, "conv.weight");
}

#[test]
fn adamw_matches_the_ndarray_path() {
    let params = ParamsAdamW {
        lr: 0.01,
        ..Default::default()
    };
    let metric = Metric::SobolevH1 {
        lambda: 3.0,
        boundary: Boundary::Dirichlet,
    };
    let differences = train_three_ways::<AdamW>(
        params.clone(),
        ChannelDirectedConfig::new()
            .with_inner(params)
            .with_metric(metric),
        &[("conv.weight", Direction::Output)],
    );
    assert_matches_and_smooths("adamw", differences, "conv.weight");
}

/// One SGD step from the same weights: only the conv weight (rank 4) moves differently from plain
/// SGD; the linear weight (rank 2) and both biases (rank 1) get their raw gradients.
#[test]
fn rank_two_and_below_are_left_unsmoothed_by_default() {
    let (wrapped_net, wrapped_vars) = net_in(None);
    let (plain_net, plain_vars) = net_in(Some(&wrapped_vars));
    let (input, target) = batch();

    let mut wrapped = ChannelDirectedOptimizer::<SGD>::new(
        wrapped_vars.all_vars(),
        ChannelDirectedConfig::new().with_inner(0.05),
    )
    .unwrap();
    wrapped
        .backward_step(&wrapped_net.loss(&input, &target).unwrap())
        .unwrap();
    let mut plain = SGD::new(plain_vars.all_vars(), 0.05).unwrap();
    plain
        .backward_step(&plain_net.loss(&input, &target).unwrap())
        .unwrap();

    let diffs = differences(&wrapped_vars, &plain_vars);
    assert!(
        difference_of(&diffs, "conv.weight") > 1e-4,
        "the conv weight was not smoothed"
    );
    for param in ["conv.bias", "linear.weight", "linear.bias"] {
        assert_eq!(difference_of(&diffs, param), 0.0, "{param} was changed");
    }
}

/// `LINEAR_OUTPUT` smooths candle's `Linear` weight `[out, in]` along `out`.
#[test]
fn linear_weights_opt_in_smooths_along_the_output_features() {
    let differences = train_three_ways::<SGD>(
        0.05,
        ChannelDirectedConfig::new()
            .with_inner(0.05)
            .with_metric(Metric::ReweightedH0 { lambda: 4.0 })
            .with_linear_direction(Some(LINEAR_OUTPUT)),
        &[
            ("conv.weight", Direction::Output),
            ("linear.weight", Direction::Output),
        ],
    );
    assert_matches_and_smooths("sgd + linear", differences, "linear.weight");
}

/// A transposed conv `[in, out, k, k]` routed through axis 1 with `set_direction_for`.
#[test]
fn transposed_conv_override_smooths_along_axis_one() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let deconv = candle_nn::conv_transpose2d(6, 4, 3, Default::default(), vb.pp("deconv")).unwrap();
    let weight = var(&varmap, "deconv.weight");
    let start = weight.as_tensor().copy().unwrap();

    let mut optim = ChannelDirectedOptimizer::<SGD>::new(
        varmap.all_vars(),
        ChannelDirectedConfig::new().with_inner(1.0),
    )
    .unwrap();
    optim
        .set_direction_for(&weight, Some(Direction::Axis(1)))
        .unwrap();
    let input = Tensor::randn(0f32, 1., (2, 6, 5, 5), &Device::Cpu).unwrap();
    let loss = deconv
        .forward(&input)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut expected_step = to_ndarray(grads.get(weight.as_tensor()).unwrap());
    ChannelDirected::new(Metric::default(), Direction::Axis(1))
        .apply(&mut expected_step)
        .unwrap();
    optim.step(&grads).unwrap();

    let actual_step = to_ndarray(&(start - weight.as_tensor()).unwrap()); // lr = 1
    let diff = common::max_abs_diff(&actual_step, &expected_step);
    assert!(diff < 1e-6, "the transposed-conv step differs by {diff}");

    assert!(optim
        .set_direction_for(&weight, Some(Direction::Axis(4)))
        .is_err());
    let stranger = Var::zeros((2, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(optim.set_direction_for(&stranger, None).is_err());
}

/// In place on a non-contiguous view with an offset: exactly the viewed elements change, as ndarray
/// would change them.
#[test]
fn in_place_smoothing_of_a_strided_view_writes_through_to_the_storage() {
    let whole = Tensor::randn(0f32, 1., (5, 8, 3), &Device::Cpu).unwrap();
    let mut expected = to_ndarray(&whole);
    // The view [3, 3, 5]: entries 2..5 of axis 1, permuted to the front: offset and non-contiguous.
    let view = whole.narrow(1, 2, 3).unwrap().permute((1, 2, 0)).unwrap();
    assert!(!view.is_contiguous());
    let cd = ChannelDirected::new(Metric::default(), Direction::Output);
    {
        let mut expected_view = expected
            .slice_mut(ndarray::s![.., 2..5, ..])
            .permuted_axes([1, 2, 0]);
        cd.apply(&mut expected_view).unwrap();
    }
    precondition_in_place(&view, &cd).unwrap();
    let diff = common::max_abs_diff(&to_ndarray(&whole), &expected);
    assert!(
        diff < 1e-6,
        "in-place smoothing differs from ndarray by {diff}"
    );
}

#[test]
fn f16_falls_back_to_an_f32_copy_and_f64_stays_f64() {
    let cd = ChannelDirected::sobolev(2.0);
    let grad32 = Tensor::randn(0f32, 1., (6, 4, 3), &Device::Cpu).unwrap();
    let mut expected = to_ndarray(&grad32);
    cd.apply(&mut expected).unwrap();

    let half = grad32.to_dtype(DType::F16).unwrap();
    precondition_in_place(&half, &cd).unwrap();
    assert_eq!(half.dtype(), DType::F16);
    let half_as_f32 = to_ndarray(&half.to_dtype(DType::F32).unwrap());
    let error = common::max_abs_diff(&half_as_f32, &expected);
    assert!(error < 1e-2, "f16 result off by {error}");
    assert!(
        max_abs_difference(&half.to_dtype(DType::F32).unwrap(), &grad32) > 1e-2,
        "the f16 tensor was not changed"
    );

    let double = grad32.to_dtype(DType::F64).unwrap();
    let smoothed = preconditioned(&double, &cd).unwrap();
    assert_eq!(smoothed.dtype(), DType::F64);
    assert!(
        max_abs_difference(
            &smoothed.to_dtype(DType::F32).unwrap(),
            &Tensor::from_vec(
                expected.iter().copied().collect::<Vec<_>>(),
                (6, 4, 3),
                &Device::Cpu
            )
            .unwrap()
        ) < 1e-6
    );
    // the copy left its input alone
    assert_eq!(
        max_abs_difference(&double.to_dtype(DType::F32).unwrap(), &grad32),
        0.0
    );
}

#[test]
fn bad_inputs_are_refused_before_writing() {
    let ints = Tensor::new(&[[1u32, 2], [3, 4]], &Device::Cpu).unwrap();
    assert!(precondition_in_place(&ints, &ChannelDirected::sobolev(1.0)).is_err());

    let grad = Tensor::ones((4, 3), DType::F32, &Device::Cpu).unwrap();
    let bad_lambda = ChannelDirected::sobolev(f64::NAN);
    assert!(precondition_in_place(&grad, &bad_lambda).is_err());
    let missing_axis = ChannelDirected::new(Metric::default(), Direction::Axis(2));
    assert!(precondition_in_place(&grad, &missing_axis).is_err());
    assert_eq!(grad.sum_all().unwrap().to_scalar::<f32>().unwrap(), 12.0);

    let config = ChannelDirectedConfig::new()
        .with_inner(0.1)
        .with_metric(Metric::ReweightedH0 { lambda: -1.0 });
    assert!(ChannelDirectedOptimizer::<SGD>::new(vec![], config).is_err());
    // An axis a rank-3 parameter lacks fails when the optimizer is made, not at a step.
    let hwio = ChannelDirectedConfig::new()
        .with_inner(0.1)
        .with_direction(Direction::Axis(3));
    let err = ChannelDirectedOptimizer::<SGD>::new(vec![], hwio).unwrap_err();
    assert!(
        err.to_string()
            .contains("axis 3 is out of range for a tensor of rank 3"),
        "{err}"
    );
}

/// One step smooths every gradient at once on rayon's pool (whole tensors balanced by size, the
/// largest still split inside): bitwise what smoothing them one by one with `preconditioned` and
/// stepping the inner optimizer gives, with 1, 2 and 4 threads.
#[test]
fn one_step_smooths_all_gradients_bitwise_as_one_by_one() {
    let shapes: [&[usize]; 6] = [
        &[256, 64, 3, 3],
        &[64, 32, 3, 3],
        &[16, 8, 3, 3],
        &[8, 4, 1, 1],
        &[33, 7, 5],
        &[10, 20],
    ];
    let tensor = |shape: &[usize], salt: usize| {
        let len: usize = shape.iter().product();
        let values: Vec<f32> = (0..len)
            .map(|i| (((i * 7919 + salt * 104_729) % 1_000) as f32 - 500.0) / 97.0)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    };
    let vars = || -> Vec<Var> {
        (0..shapes.len())
            .map(|i| Var::from_tensor(&tensor(shapes[i], i)).unwrap())
            .collect()
    };
    let mut grads = candle_core::backprop::GradStore::default();
    let wrapped_vars = vars();
    for (i, var) in wrapped_vars.iter().enumerate() {
        grads.insert(var.as_tensor(), tensor(shapes[i], i + 100));
    }
    let config = || {
        ChannelDirectedConfig::new()
            .with_inner(0.1)
            .with_linear_direction(Some(LINEAR_OUTPUT))
    };

    // Expected: each gradient smoothed on its own, then plain SGD.
    let plain_vars = vars();
    let reference = ChannelDirectedOptimizer::<SGD>::new(wrapped_vars.clone(), config()).unwrap();
    let mut plain = SGD::new(plain_vars.clone(), 0.1).unwrap();
    let mut one_by_one = candle_core::backprop::GradStore::default();
    for (wrapped, own) in wrapped_vars.iter().zip(&plain_vars) {
        let grad = grads.get(wrapped.as_tensor()).unwrap();
        let smoothed = match reference.preconditioner_for(wrapped) {
            Some(cd) => preconditioned(grad, &cd).unwrap(),
            None => grad.clone(),
        };
        one_by_one.insert(own.as_tensor(), smoothed);
    }
    plain.step(&one_by_one).unwrap();

    for threads in [1, 2, 4] {
        let start: Vec<Tensor> = wrapped_vars
            .iter()
            .map(|v| v.as_tensor().copy().unwrap())
            .collect();
        let mut optim =
            ChannelDirectedOptimizer::<SGD>::new(wrapped_vars.clone(), config()).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| optim.step(&grads)).unwrap();
        for ((wrapped, own), shape) in wrapped_vars.iter().zip(&plain_vars).zip(shapes) {
            let got = wrapped.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want = own.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{shape:?} with {threads} threads differs from smoothing one by one"
            );
        }
        for (var, start) in wrapped_vars.iter().zip(&start) {
            var.set(start).unwrap();
        }
    }
}
