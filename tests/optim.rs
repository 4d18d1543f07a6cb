//! Optimizers against PyTorch trajectories, and the wrapper's guarantees.

use std::path::PathBuf;

use chandir::optim::{
    Adam, AdamConfig, AdamState, ChannelDirectedOptimizer, Optimizer, ParamRule, ParamStates, Sgd,
    SgdConfig, SgdState,
};
use chandir::{ChannelDirected, Direction, Error, Metric};
use ndarray::{ArrayD, Axis};
use ndarray_npy::read_npy;
use serde_json::Value;

mod common;
use common::states::{nesterov_sgd, step_through};

fn optim_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/optim")
}

enum Either {
    Sgd(Sgd),
    Adam(Adam),
}

fn build(case: &Value) -> Either {
    let f = |key: &str, default: f64| case[key].as_f64().unwrap_or(default);
    match case["optimizer"].as_str().unwrap() {
        "sgd" => Either::Sgd(
            SgdConfig {
                lr: f("lr", f64::NAN),
                momentum: f("momentum", 0.0),
                dampening: f("dampening", 0.0),
                nesterov: case["nesterov"].as_bool().unwrap_or(false),
                weight_decay: f("weight_decay", 0.0),
            }
            .init()
            .unwrap(),
        ),
        name @ ("adam" | "adamw") => {
            let betas = case["betas"]
                .as_array()
                .map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()));
            let decoupled = name == "adamw";
            Either::Adam(
                AdamConfig {
                    lr: f("lr", f64::NAN),
                    betas: betas.unwrap_or((0.9, 0.999)),
                    eps: f("eps", 1e-8),
                    weight_decay: f("weight_decay", if decoupled { 0.01 } else { 0.0 }),
                    decoupled,
                }
                .init()
                .unwrap(),
            )
        }
        other => panic!("unknown optimizer {other}"),
    }
}

fn run<O: Optimizer<f64>>(
    opt: &O,
    param: &mut ArrayD<f64>,
    grads: &ArrayD<f64>,
) -> Vec<ArrayD<f64>> {
    let mut state = None;
    grads
        .axis_iter(Axis(0))
        .map(|g| {
            opt.step(param.view_mut(), g, &mut state).unwrap();
            param.clone()
        })
        .collect()
}

#[test]
fn optimizers_follow_pytorch_trajectories() {
    let dir = optim_dir();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let param0: ArrayD<f64> = read_npy(dir.join("param0.npy")).unwrap();
    let grads: ArrayD<f64> = read_npy(dir.join("grads.npy")).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected: ArrayD<f64> = read_npy(dir.join(format!("{name}_params.npy"))).unwrap();
        let mut param = param0.clone();
        let trajectory = match build(case) {
            Either::Sgd(o) => run(&o, &mut param, &grads),
            Either::Adam(o) => run(&o, &mut param, &grads),
        };
        assert_eq!(trajectory.len(), expected.len_of(Axis(0)));
        for (t, (ours, theirs)) in trajectory
            .iter()
            .zip(expected.axis_iter(Axis(0)))
            .enumerate()
        {
            let err = ours
                .iter()
                .zip(theirs)
                .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-12, "{name} step {}: max error {err:e}", t + 1);
        }
    }
}

fn conv_grad(seed: u64) -> ArrayD<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ArrayD::from_shape_simple_fn(vec![8, 3, 3, 3], || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    })
}

#[test]
fn wrapper_smooths_before_the_inner_step() {
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-3,
        ..Default::default()
    }
    .init()
    .unwrap();
    let cd = ChannelDirected::sobolev(2.0);
    let opt = ChannelDirectedOptimizer::new(sgd, cd);
    let mut states = ParamStates::default();
    let mut param = conv_grad(1);
    let mut manual_param = param.clone();
    let mut manual_state = None;
    for step in 0..4 {
        let raw = conv_grad(10 + step);
        let mut grad = raw.clone();
        opt.step("w", param.view_mut(), grad.view_mut(), &mut states)
            .unwrap();

        let mut smoothed = raw.clone();
        cd.apply(&mut smoothed).unwrap();
        assert_eq!(
            grad, smoothed,
            "the gradient buffer holds the smoothed gradient"
        );
        sgd.step(manual_param.view_mut(), smoothed.view(), &mut manual_state)
            .unwrap();
        assert_eq!(param, manual_param);
    }
}

#[test]
fn default_rule_skips_low_rank_parameters_and_overrides_apply() {
    let sgd = SgdConfig {
        lr: 1.0,
        ..Default::default()
    }
    .init()
    .unwrap();
    let opt = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0))
        .with_rule("fc.weight", ParamRule::Use(ChannelDirected::sobolev(5.0)))
        .with_rule("conv2.weight", ParamRule::Skip)
        .with_rule(
            "up.weight",
            ParamRule::Use(ChannelDirected::new(Metric::default(), Direction::Axis(1))),
        );
    assert_eq!(opt.preconditioner_for("bias", 1), None);
    assert_eq!(opt.preconditioner_for("fc2.weight", 2), None);
    assert_eq!(
        opt.preconditioner_for("conv1.weight", 4),
        Some(ChannelDirected::sobolev(1.0))
    );
    assert_eq!(opt.preconditioner_for("conv2.weight", 4), None);
    assert_eq!(
        opt.preconditioner_for("fc.weight", 2),
        Some(ChannelDirected::sobolev(5.0))
    );

    let mut states = ParamStates::default();
    // A rank-2 gradient that the default leaves alone: param moves by exactly −grad.
    let raw = ArrayD::from_shape_fn(vec![4, 3], |ix| (ix[0] * 3 + ix[1]) as f64);
    let mut param = ArrayD::<f64>::zeros(vec![4, 3]);
    let mut grad = raw.clone();
    opt.step("fc2.weight", param.view_mut(), grad.view_mut(), &mut states)
        .unwrap();
    assert_eq!(param, -&raw);
    // The opted-in linear layer is smoothed with its own λ.
    let mut param = ArrayD::<f64>::zeros(vec![4, 3]);
    let mut grad = raw.clone();
    opt.step("fc.weight", param.view_mut(), grad.view_mut(), &mut states)
        .unwrap();
    let mut expected = raw.clone();
    ChannelDirected::sobolev(5.0).apply(&mut expected).unwrap();
    assert_eq!(param, -&expected);
    assert_ne!(expected, raw);
}

#[test]
fn wrapper_rejects_bad_input_without_touching_anything() {
    let adam = AdamConfig::default().init().unwrap();
    let opt = ChannelDirectedOptimizer::new(adam, ChannelDirected::sobolev(1.0))
        .with_rule("bad", ParamRule::Use(ChannelDirected::sobolev(f64::NAN)))
        .with_rule(
            "axis",
            ParamRule::Use(ChannelDirected::new(Metric::default(), Direction::Axis(7))),
        );
    let mut states = ParamStates::default();
    let param0 = conv_grad(3);
    let grad0 = conv_grad(4);

    let (mut param, mut grad) = (param0.clone(), grad0.clone());
    let mut wrong = ArrayD::<f64>::zeros(vec![8, 3, 3, 2]);
    let err = opt
        .step("w", param.view_mut(), wrong.view_mut(), &mut states)
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }));
    let err = opt
        .step("bad", param.view_mut(), grad.view_mut(), &mut states)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidLambda { .. }));
    let err = opt
        .step("axis", param.view_mut(), grad.view_mut(), &mut states)
        .unwrap_err();
    assert_eq!(err, Error::AxisOutOfRange { axis: 7, ndim: 4 });
    assert_eq!((&param, &grad), (&param0, &grad0));
    assert!(states.is_empty());

    // State from a different parameter shape: refused before the gradient is smoothed.
    opt.step("w", param.view_mut(), grad.view_mut(), &mut states)
        .unwrap();
    let mut other = ArrayD::<f64>::zeros(vec![4, 3, 3, 3]);
    let mut other_grad = ArrayD::<f64>::ones(vec![4, 3, 3, 3]);
    let err = opt
        .step("w", other.view_mut(), other_grad.view_mut(), &mut states)
        .unwrap_err();
    assert!(matches!(err, Error::StateMismatch { .. }));
    assert!(other_grad.iter().all(|&g| g == 1.0));
}

/// The default config with `change` made to it.
fn changed<C: Default>(change: fn(&mut C)) -> C {
    let mut config = C::default();
    change(&mut config);
    config
}

#[test]
fn bad_hyperparameters_are_refused() {
    let sgd = |change: fn(&mut SgdConfig)| changed(change);
    let bad_sgd = [
        sgd(|c| c.lr = -1.0),
        sgd(|c| c.lr = f64::NAN),
        sgd(|c| c.momentum = -0.1),
        sgd(|c| c.weight_decay = f64::INFINITY),
        sgd(|c| c.nesterov = true),
        sgd(|c| {
            c.nesterov = true;
            c.momentum = 0.9;
            c.dampening = 0.1;
        }),
    ];
    for config in bad_sgd {
        assert!(
            matches!(config.init(), Err(Error::InvalidHyperparameter { .. })),
            "{config:?}"
        );
    }
    let adam = |change: fn(&mut AdamConfig)| changed(change);
    let bad_adam = [
        adam(|c| c.lr = -1.0),
        adam(|c| c.betas = (1.0, 0.9)),
        adam(|c| c.betas = (0.9, -0.1)),
        adam(|c| c.eps = f64::NAN),
        adam(|c| c.weight_decay = -1.0),
    ];
    for config in bad_adam {
        assert!(
            matches!(config.init(), Err(Error::InvalidHyperparameter { .. })),
            "{config:?}"
        );
    }
}

fn resume_is_bit_identical<O>(opt: ChannelDirectedOptimizer<O>)
where
    O: Optimizer<f64>,
    O::State: PartialEq,
{
    let grads: Vec<ArrayD<f64>> = (0..6).map(|s| conv_grad(100 + s)).collect();
    let mut straight = conv_grad(7);
    let mut straight_states = ParamStates::default();
    step_through(&opt, &mut straight, &mut straight_states, &grads);

    let mut resumed = conv_grad(7);
    let mut states = ParamStates::default();
    step_through(&opt, &mut resumed, &mut states, &grads[..3]);
    let saved = serde_json::to_string(&states).unwrap();
    let mut states: ParamStates<O::State> = serde_json::from_str(&saved).unwrap();
    step_through(&opt, &mut resumed, &mut states, &grads[3..]);
    assert_eq!(resumed, straight);
    assert_eq!(states, straight_states);
}

#[test]
fn resumed_runs_are_bit_identical() {
    resume_is_bit_identical(ChannelDirectedOptimizer::new(
        nesterov_sgd().init().unwrap(),
        ChannelDirected::sobolev(1.0),
    ));
    let adamw = AdamConfig::adamw(1e-2, 0.1).init().unwrap();
    resume_is_bit_identical(ChannelDirectedOptimizer::new(
        adamw,
        ChannelDirected::sobolev(0.5),
    ));
}

#[test]
fn fixed_rank_arrays_step_like_dynamic_ones() {
    let adam = AdamConfig::adamw(1e-2, 0.1).init().unwrap();
    let opt = ChannelDirectedOptimizer::new(adam, ChannelDirected::sobolev(1.0));
    let param0 = conv_grad(21);
    let grad0 = conv_grad(22);

    let mut fixed = param0
        .clone()
        .into_dimensionality::<ndarray::Ix4>()
        .unwrap();
    let mut fixed_grad = grad0.clone().into_dimensionality::<ndarray::Ix4>().unwrap();
    let mut fixed_states = ParamStates::default();
    opt.step(
        "w",
        fixed.view_mut(),
        fixed_grad.view_mut(),
        &mut fixed_states,
    )
    .unwrap();

    let (mut dynamic, mut dynamic_grad) = (param0, grad0);
    let mut dynamic_states = ParamStates::default();
    opt.step(
        "w",
        dynamic.view_mut(),
        dynamic_grad.view_mut(),
        &mut dynamic_states,
    )
    .unwrap();
    assert_eq!(fixed.into_dyn(), dynamic);
    assert_eq!(fixed_grad.into_dyn(), dynamic_grad);
    assert_eq!(fixed_states, dynamic_states);

    // The inner optimizers take any rank too.
    let sgd = SgdConfig {
        lr: 0.5,
        ..Default::default()
    }
    .init()
    .unwrap();
    let mut p = ndarray::Array3::<f32>::ones((2, 3, 4));
    let g = ndarray::Array3::<f32>::ones((2, 3, 4));
    let mut state = None;
    sgd.step(p.view_mut(), g.view(), &mut state).unwrap();
    assert!(p.iter().all(|&v| v == 0.5));
}

/// One Adam step on a conv-shaped parameter, returning the state as JSON.
fn adam_state_json<A: chandir::optim::Element>() -> String {
    let adam = AdamConfig::default().init().unwrap();
    let mut p = conv_grad(31).mapv(|v| A::from(v).unwrap());
    let g = conv_grad(32).mapv(|v| A::from(v).unwrap());
    let mut state = None;
    adam.step(p.view_mut(), g.view(), &mut state).unwrap();
    serde_json::to_string(&state.unwrap()).unwrap()
}

fn sgd_state_json<A: chandir::optim::Element>() -> String {
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    }
    .init()
    .unwrap();
    let mut p = conv_grad(33).mapv(|v| A::from(v).unwrap());
    let g = conv_grad(34).mapv(|v| A::from(v).unwrap());
    let mut state = None;
    sgd.step(p.view_mut(), g.view(), &mut state).unwrap();
    serde_json::to_string(&state.unwrap()).unwrap()
}

/// Rewrites one top-level field of a saved state.
fn with_field(json: &str, key: &str, value: Value) -> String {
    let mut state: Value = serde_json::from_str(json).unwrap();
    state[key] = value;
    state.to_string()
}

/// Loading `json` as an `S` fails with a message that contains `fragment`.
fn assert_refused<S: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str, fragment: &str) {
    let message = serde_json::from_str::<S>(json).unwrap_err().to_string();
    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
}

#[test]
fn saved_states_say_what_they_are_and_the_wrong_kind_is_refused() {
    let adam64 = adam_state_json::<f64>();
    let adam32 = adam_state_json::<f32>();
    let sgd32 = sgd_state_json::<f32>();
    for (json, optimizer, dtype) in [
        (&adam64, "adam", "f64"),
        (&adam32, "adam", "f32"),
        (&sgd32, "sgd", "f32"),
    ] {
        let record: Value = serde_json::from_str(json).unwrap();
        assert_eq!(record["optimizer"], optimizer);
        assert_eq!(record["dtype"], dtype);
        assert_eq!(record["shape"], serde_json::json!([8, 3, 3, 3]));
    }
    // Each loads as itself.
    serde_json::from_str::<AdamState<f64>>(&adam64).unwrap();
    serde_json::from_str::<AdamState<f32>>(&adam32).unwrap();
    serde_json::from_str::<SgdState<f32>>(&sgd32).unwrap();

    // An f64 Adam state is not silently rounded into f32, nor an f32 one widened.
    assert_refused::<AdamState<f32>>(
        &adam64,
        "the optimizer state is adam state of f64, expected adam state of f32",
    );
    assert_refused::<AdamState<f64>>(&adam32, "adam state of f32, expected adam state of f64");
    // An Adam state does not load as an SGD one with its moments dropped, nor the reverse.
    assert_refused::<SgdState<f32>>(&adam32, "adam state of f32, expected sgd state of f32");
    assert_refused::<AdamState<f32>>(&sgd32, "sgd state of f32, expected adam state of f32");
    // ... also inside ParamStates, as a resumed run loads them.
    let saved = format!(r#"{{"states":{{"conv1.weight":{adam32}}}}}"#);
    serde_json::from_str::<ParamStates<AdamState<f32>>>(&saved).unwrap();
    assert_refused::<ParamStates<SgdState<f32>>>(&saved, "expected sgd state of f32");
    // A state that does not say what it is, or carries fields of another optimizer, is refused.
    let mut bare: Value = serde_json::from_str(&adam32).unwrap();
    bare.as_object_mut().unwrap().remove("optimizer");
    assert_refused::<AdamState<f32>>(&bare.to_string(), "missing field `optimizer`");
    let mixed = with_field(&sgd32, "step", serde_json::json!(3));
    assert_refused::<SgdState<f32>>(&mixed, "has only a momentum_buffer");
    let unknown = with_field(&adam32, "amsgrad_max", serde_json::json!(1));
    assert_refused::<AdamState<f32>>(&unknown, "unknown field");
}

#[test]
fn impossible_states_are_refused_on_load() {
    let adam = adam_state_json::<f64>();
    let record: Value = serde_json::from_str(&adam).unwrap();
    // The buffers are saved as bit patterns: f64 as u64.
    assert_eq!(record["exp_avg_sq"]["dim"], serde_json::json!([8, 3, 3, 3]));
    assert!(record["exp_avg_sq"]["bits"][5].is_u64());

    let mut negative = record.clone();
    negative["exp_avg_sq"]["bits"][5] = serde_json::json!((-1e-3_f64).to_bits());
    assert_refused::<AdamState<f64>>(
        &negative.to_string(),
        "invalid optimizer state: exp_avg_sq holds -0.001 at flat index 5",
    );
    let mut minus_inf = record.clone();
    minus_inf["exp_avg_sq"]["bits"][0] = serde_json::json!(f64::NEG_INFINITY.to_bits());
    assert_refused::<AdamState<f64>>(&minus_inf.to_string(), "exp_avg_sq holds -inf");

    // The state's shape must be the buffers' shape, and a buffer's length its own shape's.
    let wrong_shape = with_field(&adam, "shape", serde_json::json!([8, 27]));
    assert_refused::<AdamState<f64>>(
        &wrong_shape,
        "exp_avg has shape [8, 3, 3, 3], the state says [8, 27]",
    );
    let mut ragged = record.clone();
    ragged["exp_avg_sq"] =
        serde_json::json!({"dim": [8, 27], "bits": record["exp_avg_sq"]["bits"]});
    assert_refused::<AdamState<f64>>(&ragged.to_string(), "exp_avg_sq has shape [8, 27]");
    let mut short = record.clone();
    short["exp_avg"]["bits"].as_array_mut().unwrap().pop();
    assert_refused::<AdamState<f64>>(
        &short.to_string(),
        "a buffer of shape [8, 3, 3, 3] holds 215 values",
    );
    let mut overflowing = record.clone();
    overflowing["exp_avg"]["dim"] = serde_json::json!([usize::MAX, 2]);
    assert_refused::<AdamState<f64>>(&overflowing.to_string(), "holds 216 values");
    // An f32 state's bits are u32.
    let mut wide: Value = serde_json::from_str(&sgd_state_json::<f32>()).unwrap();
    wide["momentum_buffer"]["bits"][0] = serde_json::json!(1u64 << 32);
    assert_refused::<SgdState<f32>>(
        &wide.to_string(),
        "4294967296 is not the bit pattern of an f32",
    );
    // Both forms at once, or neither, is refused.
    let mut both = record.clone();
    both["exp_avg"]["data"] = serde_json::json!([0.0]);
    assert_refused::<AdamState<f64>>(&both.to_string(), "either bits or data");

    // A negative second moment from code is refused by the same check; ±∞ and NaN, which runs
    // reach, are not.
    let mut negative_sq = ArrayD::<f64>::ones(vec![2, 2]);
    negative_sq[[1, 1]] = -2.0;
    let err = AdamState::new(1, ArrayD::zeros(vec![2, 2]), negative_sq).unwrap_err();
    assert!(matches!(err, Error::InvalidState { .. }), "{err}");
    let mut inf_m = ArrayD::<f32>::zeros(vec![3]);
    inf_m[0] = f32::NEG_INFINITY;
    let mut nan_v = ArrayD::<f32>::zeros(vec![3]);
    nan_v[1] = f32::NAN;
    nan_v[2] = f32::INFINITY;
    AdamState::new(1, inf_m, nan_v).unwrap();
    let mut nan_momentum = ArrayD::<f32>::zeros(vec![3]);
    nan_momentum[2] = f32::NAN;
    SgdState::new(vec![3], Some(nan_momentum)).unwrap();
    // A buffer of another shape than the state's.
    assert!(matches!(
        SgdState::new(vec![4], Some(ArrayD::<f32>::zeros(vec![3]))),
        Err(Error::InvalidState { .. })
    ));
}

#[test]
fn states_saved_with_the_values_as_numbers_still_load() {
    // The form of earlier versions: ndarray's own, the values as JSON numbers.
    let old = r#"{"optimizer":"adam","dtype":"f64","shape":[2],"step":2,
        "exp_avg":{"v":1,"dim":[2],"data":[0.25,-0.5]},
        "exp_avg_sq":{"v":1,"dim":[2],"data":[0.0625,1e-300]}}"#;
    let state: AdamState<f64> = serde_json::from_str(old).unwrap();
    assert_eq!(state.step(), 2);
    assert_eq!(state.exp_avg().as_slice().unwrap(), &[0.25, -0.5]);
    assert_eq!(state.exp_avg_sq().as_slice().unwrap(), &[0.0625, 1e-300]);
    let old = r#"{"optimizer":"sgd","dtype":"f32","shape":[1,2],
        "momentum_buffer":{"v":1,"dim":[1,2],"data":[1.5,-2.0]}}"#;
    let state: SgdState<f32> = serde_json::from_str(old).unwrap();
    assert_eq!(
        state.momentum_buffer().unwrap().as_slice().unwrap(),
        &[1.5, -2.0]
    );
    // ... but not a form of another version.
    let newer = old.replace(r#""v":1"#, r#""v":2"#);
    assert_refused::<SgdState<f32>>(&newer, "format version Some(2)");
}

#[test]
fn an_exhausted_step_counter_is_an_error_not_a_panic_or_nan() {
    let adam = AdamConfig::default().init().unwrap();
    let opt = ChannelDirectedOptimizer::new(adam, ChannelDirected::sobolev(1.0));
    let at_max = with_field(
        &adam_state_json::<f64>(),
        "step",
        serde_json::json!(u64::MAX),
    );
    let state: AdamState<f64> = serde_json::from_str(&at_max).unwrap();
    assert_eq!(state.step(), u64::MAX);
    let mut states = ParamStates::default();
    *states.slot("w") = Some(state.clone());

    let (param0, grad0) = (conv_grad(31), conv_grad(35));
    let (mut param, mut grad) = (param0.clone(), grad0.clone());
    let err = opt
        .step("w", param.view_mut(), grad.view_mut(), &mut states)
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidState {
            reason: format!("the step counter is at {} and cannot advance", u64::MAX)
        }
    );
    assert_eq!((&param, &grad), (&param0, &grad0), "nothing changed");
    assert_eq!(states.get("w"), Some(&state));
    // The same through the bare optimizer.
    let mut slot = Some(state);
    assert!(adam.step(param.view_mut(), grad.view(), &mut slot).is_err());
    assert_eq!(param, param0);

    // One below the limit still steps, to finite values.
    let below = with_field(
        &adam_state_json::<f64>(),
        "step",
        serde_json::json!(u64::MAX - 1),
    );
    let mut slot = Some(serde_json::from_str::<AdamState<f64>>(&below).unwrap());
    adam.step(param.view_mut(), grad.view(), &mut slot).unwrap();
    assert!(param.iter().all(|v| v.is_finite()));
    assert_eq!(slot.unwrap().step(), u64::MAX);
}

#[test]
fn a_state_for_another_shape_names_the_parameter() {
    let sgd = SgdConfig::default().init().unwrap(); // momentum 0: the state has no buffer
    let opt = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0));
    let mut states = ParamStates::default();
    let mut w = ArrayD::<f32>::zeros(vec![4, 3]);
    let mut g = ArrayD::<f32>::ones(vec![4, 3]);
    opt.step("fc.weight", w.view_mut(), g.view_mut(), &mut states)
        .unwrap();
    assert_eq!(states.get("fc.weight").unwrap().shape(), &[4, 3]);
    let mut other = ArrayD::<f32>::zeros(vec![3, 4]);
    let mut other_grad = ArrayD::<f32>::ones(vec![3, 4]);
    let err = opt
        .step(
            "fc.weight",
            other.view_mut(),
            other_grad.view_mut(),
            &mut states,
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::StateMismatch {
            param: "fc.weight".into(),
            reason: "the state is for shape [4, 3], the parameter has shape [3, 4]".into()
        }
    );
}
