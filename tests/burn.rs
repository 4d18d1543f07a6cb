//! The burn wrapper against the ndarray path: a few real training steps of a small conv net, where
//! the wrapper's result must equal "smooth the same raw gradients with `ChannelDirected` on an
//! ndarray copy, then step the inner optimizer".
#![cfg(feature = "burn")]

mod common;

use burn::module::{Module, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, Optimizer, SgdConfig,
};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use chandir::integrations::burn::{precondition_tensor, ChannelDirectedConfig, LINEAR_OUTPUT};
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use common::burn_net::Net;
use ndarray::{ArrayD, IxDyn};

const LEARNING_RATE: f64 = 0.05;
const STEPS: usize = 3;

/// A batch of random inputs `[4, 3, 6, 6]` and regression targets `[4, 5]`.
fn batch(device: &Device) -> (Tensor<4>, Tensor<2>) {
    (
        Tensor::random([4, 3, 6, 6], Distribution::Normal(0.0, 1.0), device),
        Tensor::random([4, 5], Distribution::Normal(0.0, 1.0), device),
    )
}

fn to_ndarray<const D: usize>(tensor: Tensor<D>) -> ArrayD<f32> {
    let shape = tensor.dims().to_vec();
    let values = tensor.into_data().try_to_vec::<f32>().unwrap();
    ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap()
}

fn from_ndarray<const D: usize>(array: ArrayD<f32>, device: &Device) -> Tensor<D> {
    let shape = array.shape().to_vec();
    let (values, _) = array.into_raw_vec_and_offset();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The reference path: the raw gradient of `id`, copied into an ndarray, smoothed there, put back.
fn smooth_on_ndarray<const D: usize>(
    grads: &mut GradientsParams,
    id: ParamId,
    preconditioner: ChannelDirected,
) {
    let raw = grads.remove::<D>(id).expect("the parameter has a gradient");
    let device = raw.device();
    let mut array = to_ndarray(raw);
    preconditioner.apply(&mut array).unwrap();
    grads.register(id, from_ndarray::<D>(array, &device));
}

fn max_abs_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    common::max_abs_diff(&to_ndarray(a), &to_ndarray(b))
}

/// The largest parameter difference between two nets, per parameter.
struct NetDifference {
    conv_weight: f32,
    conv_bias: f32,
    linear_weight: f32,
    linear_bias: f32,
}

fn difference(a: &Net, b: &Net) -> NetDifference {
    let bias = |module: &Option<burn::module::Param<Tensor<1>>>| module.as_ref().unwrap().val();
    NetDifference {
        conv_weight: max_abs_difference(a.conv.weight.val(), b.conv.weight.val()),
        conv_bias: max_abs_difference(bias(&a.conv.bias), bias(&b.conv.bias)),
        linear_weight: max_abs_difference(a.linear.weight.val(), b.linear.weight.val()),
        linear_bias: max_abs_difference(bias(&a.linear.bias), bias(&b.linear.bias)),
    }
}

/// Trains three copies of one net for [`STEPS`] steps on the same batches: with the wrapper, with
/// the reference path (which smooths what `reference_smoothing` smooths), and with `inner` alone.
/// Returns (wrapper − reference, wrapper − plain) after the last step.
fn train_three_ways<O: Optimizer>(
    inner: O,
    config: ChannelDirectedConfig,
    reference_smoothing: impl Fn(&Net, &mut GradientsParams),
) -> (NetDifference, NetDifference) {
    let device = Device::default().autodiff();
    device.seed(7);
    let mut wrapped_net = Net::new(&device, 6);
    let mut reference_net = wrapped_net.clone();
    let mut plain_net = wrapped_net.clone();

    let mut wrapped_optim = config.init(inner.clone()).unwrap();
    let mut reference_optim = ModuleOptimizer::from(inner.clone());
    let mut plain_optim = ModuleOptimizer::from(inner);

    for _ in 0..STEPS {
        let (input, target) = batch(&device);

        let loss = wrapped_net.loss(input.clone(), target.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &wrapped_net);
        wrapped_net = wrapped_optim.step(LEARNING_RATE, wrapped_net, grads);

        let loss = reference_net.loss(input.clone(), target.clone());
        let mut grads = GradientsParams::from_grads(loss.backward(), &reference_net);
        reference_smoothing(&reference_net, &mut grads);
        reference_net = reference_optim.step(LEARNING_RATE, reference_net, grads);

        let loss = plain_net.loss(input, target);
        let grads = GradientsParams::from_grads(loss.backward(), &plain_net);
        plain_net = plain_optim.step(LEARNING_RATE, plain_net, grads);
    }
    (
        difference(&wrapped_net, &reference_net),
        difference(&wrapped_net, &plain_net),
    )
}

fn assert_conv_only_smoothing_matches<O: Optimizer>(name: &str, inner: O) {
    let metric = Metric::default();
    let (vs_reference, vs_plain) = train_three_ways(
        inner,
        ChannelDirectedConfig::new().with_metric(metric),
        |net, grads| {
            smooth_on_ndarray::<4>(
                grads,
                net.conv.weight.id,
                ChannelDirected::new(metric, Direction::Output),
            )
        },
    );
    for (param, diff) in [
        ("conv.weight", vs_reference.conv_weight),
        ("conv.bias", vs_reference.conv_bias),
        ("linear.weight", vs_reference.linear_weight),
        ("linear.bias", vs_reference.linear_bias),
    ] {
        assert!(
            diff < 1e-6,
            "{name}: {param} differs from the ndarray path by {diff}"
        );
    }
    // The smoothing really changed the conv weight's trajectory, so the comparison is not vacuous.
    assert!(
        vs_plain.conv_weight > 1e-4,
        "{name}: conv.weight moved like the plain optimizer (max diff {})",
        vs_plain.conv_weight
    );
}

#[test]
fn sgd_with_momentum_matches_the_ndarray_path() {
    let sgd = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
        .build();
    assert_conv_only_smoothing_matches("sgd+momentum", sgd);
}

#[test]
fn adam_matches_the_ndarray_path() {
    assert_conv_only_smoothing_matches("adam", AdamConfig::new().build());
}

#[test]
fn adamw_matches_the_ndarray_path() {
    assert_conv_only_smoothing_matches("adamw", AdamWConfig::new().build());
}

/// One SGD step from the same weights: only the conv weight (rank 4) moves differently from plain
/// SGD; the linear weight (rank 2) and both biases (rank 1) get their raw gradients.
#[test]
fn rank_two_and_below_are_left_unsmoothed_by_default() {
    let device = Device::default().autodiff();
    device.seed(11);
    let net = Net::new(&device, 6);
    let (input, target) = batch(&device);
    let sgd = SgdConfig::new().build();

    let grads = GradientsParams::from_grads(
        net.clone().loss(input.clone(), target.clone()).backward(),
        &net,
    );
    let wrapped = ChannelDirectedConfig::new()
        .init(sgd.clone())
        .unwrap()
        .step(LEARNING_RATE, net.clone(), grads);
    let grads = GradientsParams::from_grads(net.clone().loss(input, target).backward(), &net);
    let plain = ModuleOptimizer::from(sgd).step(LEARNING_RATE, net, grads);

    let diff = difference(&wrapped, &plain);
    assert!(diff.conv_weight > 1e-4, "the conv weight was not smoothed");
    assert_eq!(diff.conv_bias, 0.0);
    assert_eq!(diff.linear_weight, 0.0);
    assert_eq!(diff.linear_bias, 0.0);
}

/// `LINEAR_OUTPUT` smooths burn's `Linear` weight `[d_input, d_output]` along `d_output`.
#[test]
fn linear_weights_opt_in_smooths_along_the_output_features() {
    let metric = Metric::SobolevH1 {
        lambda: 2.0,
        boundary: Boundary::Periodic,
    };
    let (vs_reference, vs_plain) = train_three_ways(
        AdamConfig::new().build(),
        ChannelDirectedConfig::new()
            .with_metric(metric)
            .with_linear_direction(Some(LINEAR_OUTPUT)),
        |net, grads| {
            smooth_on_ndarray::<4>(
                grads,
                net.conv.weight.id,
                ChannelDirected::new(metric, Direction::Output),
            );
            smooth_on_ndarray::<2>(
                grads,
                net.linear.weight.id,
                ChannelDirected::new(metric, Direction::Axis(1)),
            );
        },
    );
    assert!(
        vs_reference.conv_weight < 1e-6,
        "{}",
        vs_reference.conv_weight
    );
    assert!(
        vs_reference.linear_weight < 1e-6,
        "{}",
        vs_reference.linear_weight
    );
    assert!(vs_reference.conv_bias < 1e-6 && vs_reference.linear_bias < 1e-6);
    assert!(
        vs_plain.linear_weight > 1e-4,
        "the linear weight was not smoothed"
    );
}

/// A decoder's transposed conv `[in, out, k, k]` routed through `Direction::Axis(1)` in its own
/// parameter group, the encoder conv along axis 0.
#[test]
fn transposed_conv_group_is_smoothed_along_axis_one() {
    #[derive(Module, Debug)]
    struct AutoEncoder {
        encoder: Conv2d,
        decoder: ConvTranspose2d,
    }

    let device = Device::default().autodiff();
    device.seed(3);
    let net = AutoEncoder {
        encoder: Conv2dConfig::new([3, 6], [3, 3]).init(&device),
        decoder: ConvTranspose2dConfig::new([6, 3], [3, 3]).init(&device),
    };
    let loss = |net: &AutoEncoder, input: Tensor<4>| {
        let reconstruction = net.decoder.forward(net.encoder.forward(input.clone()));
        (reconstruction - input).powi_scalar(2).mean()
    };
    let sgd = SgdConfig::new().build();
    let config = ChannelDirectedConfig::new();

    let mut wrapped_optim = config.init(sgd.clone()).unwrap().with_group(
        burn::module::ParamGroup::ids_from_module(net.decoder.clone()),
        config
            .with_direction(Direction::Axis(1))
            .build(sgd.clone())
            .unwrap(),
        None,
    );
    let mut reference_optim = ModuleOptimizer::from(sgd);
    let (mut wrapped, mut reference) = (net.clone(), net);
    for _ in 0..STEPS {
        let input = Tensor::<4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);

        let grads = GradientsParams::from_grads(loss(&wrapped, input.clone()).backward(), &wrapped);
        wrapped = wrapped_optim.step(LEARNING_RATE, wrapped, grads);

        let mut grads = GradientsParams::from_grads(loss(&reference, input).backward(), &reference);
        let cd = ChannelDirected::sobolev(1.0);
        smooth_on_ndarray::<4>(&mut grads, reference.encoder.weight.id, cd);
        smooth_on_ndarray::<4>(
            &mut grads,
            reference.decoder.weight.id,
            ChannelDirected {
                direction: Direction::Axis(1),
                ..cd
            },
        );
        reference = reference_optim.step(LEARNING_RATE, reference, grads);
    }
    let encoder = max_abs_difference(wrapped.encoder.weight.val(), reference.encoder.weight.val());
    let decoder = max_abs_difference(wrapped.decoder.weight.val(), reference.decoder.weight.val());
    assert!(encoder < 1e-6, "encoder differs by {encoder}");
    assert!(decoder < 1e-6, "decoder differs by {decoder}");
}

/// The wrapper's state is Adam's state: a byte round trip of the record resumes exactly.
#[test]
fn optimizer_record_round_trip_resumes_the_same_trajectory() {
    let device = Device::default().autodiff();
    device.seed(5);
    let config = ChannelDirectedConfig::new();
    let adam = AdamConfig::new().build();
    let mut net = Net::new(&device, 6);
    let mut optim = config.init(adam.clone()).unwrap();
    for _ in 0..2 {
        let (input, target) = batch(&device);
        let grads = GradientsParams::from_grads(net.loss(input, target).backward(), &net);
        net = optim.step(LEARNING_RATE, net, grads);
    }
    let bytes = optim.into_bytes().unwrap();
    let mut restored = config
        .init(adam.clone())
        .unwrap()
        .from_bytes(bytes)
        .unwrap();
    let mut fresh = config.init(adam).unwrap();

    let (input, target) = batch(&device);
    let step = |optim: &mut ModuleOptimizer| {
        let grads =
            GradientsParams::from_grads(net.loss(input.clone(), target.clone()).backward(), &net);
        optim.step(LEARNING_RATE, net.clone(), grads)
    };
    let continued = step(&mut optim);
    let resumed = step(&mut restored);
    let restarted = step(&mut fresh);
    let resumed_diff = difference(&continued, &resumed);
    assert!(resumed_diff.conv_weight < 1e-7 && resumed_diff.linear_weight < 1e-7);
    // A fresh Adam (no moments) takes a different step, so the record did carry state.
    assert!(difference(&continued, &restarted).conv_weight > 1e-6);
}

#[test]
fn precondition_tensor_keeps_f64_and_matches_ndarray() {
    let device = Device::default();
    let cd = ChannelDirected::new(Metric::ReweightedH0 { lambda: 3.0 }, Direction::Input);
    let grad = Tensor::<3>::random(
        [4, 5, 2],
        Distribution::Normal(0.0, 1.0),
        (&device, burn::tensor::DType::F64),
    );
    let mut expected = {
        let shape = grad.dims().to_vec();
        ArrayD::from_shape_vec(
            IxDyn(&shape),
            grad.clone().into_data().try_to_vec::<f64>().unwrap(),
        )
        .unwrap()
    };
    cd.apply(&mut expected).unwrap();
    let smoothed = precondition_tensor(grad, &cd).unwrap();
    assert_eq!(smoothed.dtype(), burn::tensor::DType::F64);
    let actual = smoothed.into_data().try_to_vec::<f64>().unwrap();
    assert_eq!(actual, expected.iter().copied().collect::<Vec<_>>());
}

#[test]
fn bad_settings_are_refused_up_front() {
    let sgd = SgdConfig::new().build();
    let bad_lambda =
        ChannelDirectedConfig::new().with_metric(Metric::ReweightedH0 { lambda: -1.0 });
    assert!(matches!(
        bad_lambda.build(sgd.clone()),
        Err(chandir::Error::InvalidLambda { .. })
    ));
    let bad_linear_axis =
        ChannelDirectedConfig::new().with_linear_direction(Some(Direction::Axis(2)));
    assert!(matches!(
        bad_linear_axis.build(sgd.clone()),
        Err(chandir::Error::AxisOutOfRange { .. })
    ));
    // An axis the smallest smoothed rank (3: a Conv1d weight) lacks fails at build time, not in
    // burn's `Optimizer::step` at the first rank-3 parameter; through `init` too.
    let hwio = ChannelDirectedConfig::new().with_direction(Direction::Axis(3));
    assert_eq!(
        hwio.build(sgd.clone()).err(),
        Some(chandir::Error::AxisOutOfRange { axis: 3, ndim: 3 })
    );
    assert!(hwio.init(sgd.clone()).is_err());
    let nan = ChannelDirectedConfig::new().with_metric(Metric::SobolevH1 {
        lambda: f64::NAN,
        boundary: Boundary::Neumann,
    });
    assert!(matches!(
        nan.init(sgd.clone()),
        Err(chandir::Error::InvalidLambda { .. })
    ));
    // The last axis of a rank-3 parameter is one every higher rank has.
    let last = ChannelDirectedConfig::new().with_direction(Direction::Axis(2));
    assert!(last.build(sgd).is_ok());
    let grad = Tensor::<1>::ones([4], &Device::default());
    assert!(precondition_tensor(
        grad,
        &ChannelDirected::new(Metric::default(), Direction::Input)
    )
    .is_err());
}
