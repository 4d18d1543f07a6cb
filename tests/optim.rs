//! Optimizers against PyTorch trajectories, and the wrapper's guarantees.

use std::path::PathBuf;

use chandir::optim::{
    Adam, AdamConfig, ChannelDirectedOptimizer, Optimizer, ParamRule, ParamStates, Sgd, SgdConfig,
};
use chandir::{ChannelDirected, Direction, Error, Metric};
use ndarray::{ArrayD, Axis};
use ndarray_npy::read_npy;
use serde_json::Value;

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

#[test]
fn bad_hyperparameters_are_refused() {
    let bad_sgd = [
        SgdConfig {
            lr: -1.0,
            ..Default::default()
        },
        SgdConfig {
            lr: f64::NAN,
            ..Default::default()
        },
        SgdConfig {
            momentum: -0.1,
            ..Default::default()
        },
        SgdConfig {
            weight_decay: f64::INFINITY,
            ..Default::default()
        },
        SgdConfig {
            nesterov: true,
            ..Default::default()
        },
        SgdConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..Default::default()
        },
    ];
    for config in bad_sgd {
        assert!(
            matches!(config.init(), Err(Error::InvalidHyperparameter { .. })),
            "{config:?}"
        );
    }
    let bad_adam = [
        AdamConfig {
            lr: -1.0,
            ..Default::default()
        },
        AdamConfig {
            betas: (1.0, 0.9),
            ..Default::default()
        },
        AdamConfig {
            betas: (0.9, -0.1),
            ..Default::default()
        },
        AdamConfig {
            eps: f64::NAN,
            ..Default::default()
        },
        AdamConfig {
            weight_decay: -1.0,
            ..Default::default()
        },
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
    for g in &grads {
        opt.step(
            "w",
            straight.view_mut(),
            g.clone().view_mut(),
            &mut straight_states,
        )
        .unwrap();
    }

    let mut resumed = conv_grad(7);
    let mut states = ParamStates::default();
    for g in &grads[..3] {
        opt.step("w", resumed.view_mut(), g.clone().view_mut(), &mut states)
            .unwrap();
    }
    let saved = serde_json::to_string(&states).unwrap();
    let mut states: ParamStates<O::State> = serde_json::from_str(&saved).unwrap();
    for g in &grads[3..] {
        opt.step("w", resumed.view_mut(), g.clone().view_mut(), &mut states)
            .unwrap();
    }
    assert_eq!(resumed, straight);
    assert_eq!(states, straight_states);
}

#[test]
fn resumed_runs_are_bit_identical() {
    let sgd = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        ..Default::default()
    };
    resume_is_bit_identical(ChannelDirectedOptimizer::new(
        sgd.init().unwrap(),
        ChannelDirected::sobolev(1.0),
    ));
    let adamw = AdamConfig::adamw(1e-2, 0.1).init().unwrap();
    resume_is_bit_identical(ChannelDirectedOptimizer::new(
        adamw,
        ChannelDirected::sobolev(0.5),
    ));
}
