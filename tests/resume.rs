//! Every optimizer state a run reaches from finite inputs saves, loads and continues bit for bit:
//! overflowing gradients (±∞ in the buffers, then NaN), subnormals and −0.0 included.

use chandir::optim::{
    AdamConfig, AdamState, ChannelDirectedOptimizer, Optimizer, ParamStates, SgdConfig, SgdState,
};
use chandir::ChannelDirected;
use ndarray::{arr1, ArrayD, IxDyn};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod common;
use common::states::{bits as param_bits, step_through, FloatBits, StateBits};

/// A float type and the values a fuzzed gradient draws from.
trait Float: FloatBits {
    /// Value `kind` of a gradient: huge, overflowing, subnormal, signed zeros or a plain `x`.
    fn special(kind: u8, x: f64) -> Self;
}

impl Float for f64 {
    fn special(kind: u8, x: f64) -> Self {
        match kind {
            0 => f64::MAX,
            1 => -f64::MAX,
            2 => 1e200 * x.signum(),
            3 => f64::from_bits(1) * x.signum(), // the smallest subnormal
            4 => f64::MIN_POSITIVE / 3.0,
            5 => -0.0,
            6 => 0.0,
            _ => x,
        }
    }
}

impl Float for f32 {
    fn special(kind: u8, x: f64) -> Self {
        match kind {
            0 => f32::MAX,
            1 => -f32::MAX,
            2 => 1e30 * x.signum() as f32,
            3 => f32::from_bits(1) * x.signum() as f32,
            4 => f32::MIN_POSITIVE / 3.0,
            5 => -0.0,
            6 => 0.0,
            _ => x as f32,
        }
    }
}

fn states_bits<S: StateBits>(states: &ParamStates<S>, names: &[&str]) -> Vec<Option<Vec<u64>>> {
    names
        .iter()
        .map(|name| states.get(name).map(StateBits::state_bits))
        .collect()
}

/// A starting parameter, its gradients, the step after which the state is saved, and λ.
type Case<A> = (ArrayD<A>, Vec<ArrayD<A>>, usize, f64);

/// Runs `grads` from `param0` with `inner` wrapped (H1, `lambda`) straight through, and again
/// saved to JSON and loaded after `save_after` steps; the parameters and states must agree bit
/// for bit at the end.
fn resume_equals_straight<A, O>(
    inner: O,
    (param0, grads, save_after, lambda): Case<A>,
) -> Result<(), TestCaseError>
where
    A: Float,
    O: Optimizer<A>,
    O::State: StateBits + Serialize + DeserializeOwned,
{
    let opt = &ChannelDirectedOptimizer::new(inner, ChannelDirected::sobolev(lambda));
    let names = ["w"];
    let mut straight = param0.clone();
    let mut straight_states = ParamStates::default();
    step_through(opt, &mut straight, &mut straight_states, &grads);
    let mut resumed = param0.clone();
    let mut states = ParamStates::default();
    step_through(opt, &mut resumed, &mut states, &grads[..save_after]);
    let saved = serde_json::to_string(&states).unwrap();
    let loaded: ParamStates<O::State> =
        serde_json::from_str(&saved).map_err(|e| TestCaseError::fail(format!("{e}: {saved}")))?;
    prop_assert_eq!(states_bits(&loaded, &names), states_bits(&states, &names));
    let mut states = loaded;
    step_through(opt, &mut resumed, &mut states, &grads[save_after..]);
    prop_assert_eq!(param_bits(&resumed), param_bits(&straight));
    prop_assert_eq!(
        states_bits(&states, &names),
        states_bits(&straight_states, &names)
    );
    // And the end state itself round-trips.
    let saved = serde_json::to_string(&states).unwrap();
    let loaded: ParamStates<O::State> =
        serde_json::from_str(&saved).map_err(|e| TestCaseError::fail(format!("{e}: {saved}")))?;
    prop_assert_eq!(states_bits(&loaded, &names), states_bits(&states, &names));
    Ok(())
}

/// A shape of rank 1 to 4 (rank ≥ 3 is smoothed), at most 4 along each axis.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=4)
}

/// `steps` gradients of `shape`, each value plain or one of [`Float::special`]'s.
fn trajectory<A: Float>(
    shape: Vec<usize>,
    steps: usize,
) -> impl Strategy<Value = (ArrayD<A>, Vec<ArrayD<A>>)> {
    let len: usize = shape.iter().product();
    let values = move || {
        prop::collection::vec((0u8..14, -3.0f64..3.0), len).prop_map(|v| {
            v.into_iter()
                .map(|(kind, x)| A::special(kind, x))
                .collect::<Vec<A>>()
        })
    };
    let param = prop::collection::vec(-3.0f64..3.0, len);
    (param, prop::collection::vec(values(), steps)).prop_map(move |(param, grads)| {
        let param = ArrayD::from_shape_vec(
            IxDyn(&shape),
            param.into_iter().map(|x| A::special(99, x)).collect(),
        )
        .unwrap();
        let grads = grads
            .into_iter()
            .map(|g| ArrayD::from_shape_vec(IxDyn(&shape), g).unwrap())
            .collect();
        (param, grads)
    })
}

fn sgd_config() -> impl Strategy<Value = SgdConfig> {
    (
        prop::sample::select(vec![0.0, 0.01, 0.5]),
        prop::sample::select(vec![0.0, 0.5, 0.9, 1.0]),
        prop::sample::select(vec![0.0, 0.1]),
        any::<bool>(),
        prop::sample::select(vec![0.0, 5e-4]),
    )
        .prop_map(|(lr, momentum, dampening, nesterov, weight_decay)| {
            let nesterov = nesterov && momentum > 0.0 && dampening == 0.0;
            SgdConfig {
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
            }
        })
}

fn adam_config() -> impl Strategy<Value = AdamConfig> {
    (
        prop::sample::select(vec![1e-3, 0.1]),
        prop::sample::select(vec![0.0, 0.9]),
        prop::sample::select(vec![0.0, 0.999]),
        prop::sample::select(vec![0.0, 1e-8]),
        prop::sample::select(vec![0.0, 0.01]),
        any::<bool>(),
    )
        .prop_map(|(lr, b1, b2, eps, weight_decay, decoupled)| AdamConfig {
            lr,
            betas: (b1, b2),
            eps,
            weight_decay,
            decoupled,
        })
}

fn case<A: Float>() -> impl Strategy<Value = Case<A>> {
    (shape(), 1usize..=6).prop_flat_map(|(shape, steps)| {
        (
            trajectory::<A>(shape, steps),
            0..=steps,
            prop::sample::select(vec![0.0, 1.0, 1e3]),
        )
            .prop_map(|((param, grads), save_after, lambda)| (param, grads, save_after, lambda))
    })
}

/// One proptest per optimizer and float type: saving and loading mid-run changes no bit.
macro_rules! resumes_bitwise {
    ($($name:ident: $config:expr, $float:ty;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(config in $config, case in case::<$float>()) {
                    resume_equals_straight(config.init().unwrap(), case)?;
                }
            )*
        }
    };
}

resumes_bitwise! {
    sgd_f64_resumes_bitwise: sgd_config(), f64;
    sgd_f32_resumes_bitwise: sgd_config(), f32;
    adam_f64_resumes_bitwise: adam_config(), f64;
    adam_f32_resumes_bitwise: adam_config(), f32;
}

/// Saves `states` to JSON and loads them back.
fn json_round_trip<S: Serialize + DeserializeOwned>(states: &ParamStates<S>) -> ParamStates<S> {
    serde_json::from_str(&serde_json::to_string(states).unwrap()).unwrap()
}

#[test]
fn the_overflows_of_the_issue_save_load_and_continue() {
    // Adam with a gradient of 1e200 (f64): exp_avg_sq = (1 − β₂)·1e400 = +∞.
    let adam = AdamConfig::default().init().unwrap();
    let mut states = ParamStates::<AdamState<f64>>::default();
    let mut p = arr1(&[1.0, 2.0]).into_dyn();
    adam.step(
        p.view_mut(),
        arr1(&[1e200, 0.5]).into_dyn().view(),
        states.slot("w"),
    )
    .unwrap();
    let v = states.get("w").unwrap().exp_avg_sq();
    assert_eq!(v[0], f64::INFINITY);
    let json = serde_json::to_string(&states).unwrap();
    assert!(!json.contains("null"), "{json}");
    let mut loaded = json_round_trip(&states);
    assert_eq!(
        loaded.get("w").unwrap().exp_avg_sq()[0].to_bits(),
        f64::INFINITY.to_bits()
    );
    let mut q = p.clone();
    let g = arr1(&[0.25, -0.25]).into_dyn();
    adam.step(p.view_mut(), g.view(), states.slot("w")).unwrap();
    adam.step(q.view_mut(), g.view(), loaded.slot("w")).unwrap();
    assert_eq!(param_bits(&p), param_bits(&q));
    assert_eq!(
        states.get("w").unwrap().state_bits(),
        loaded.get("w").unwrap().state_bits()
    );

    // SGD with momentum after two f64::MAX gradients: 0.9·MAX + 0.999·MAX = +∞ (the gradient
    // less the weight decay of the parameter the first step moved to −0.1·MAX).
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        ..Default::default()
    }
    .init()
    .unwrap();
    let mut states = ParamStates::<SgdState<f64>>::default();
    let mut p = arr1(&[0.0, 1.0]).into_dyn();
    let max = arr1(&[f64::MAX, -f64::MAX]).into_dyn();
    for _ in 0..2 {
        sgd.step(p.view_mut(), max.view(), states.slot("w"))
            .unwrap();
    }
    let buffer = states.get("w").unwrap().momentum_buffer().unwrap().clone();
    assert_eq!(
        buffer.as_slice().unwrap(),
        &[f64::INFINITY, f64::NEG_INFINITY]
    );
    let mut loaded = json_round_trip(&states);
    let mut q = p.clone();
    // The weight decay of the parameter, now −∞, makes NaN of the buffer (∞ − ∞): it saves and
    // loads too.
    let back = arr1(&[-f64::MAX, f64::MAX]).into_dyn();
    for _ in 0..2 {
        sgd.step(p.view_mut(), back.view(), states.slot("w"))
            .unwrap();
        sgd.step(q.view_mut(), back.view(), loaded.slot("w"))
            .unwrap();
    }
    assert!(states.get("w").unwrap().momentum_buffer().unwrap()[0].is_nan());
    let reloaded = json_round_trip(&states);
    assert_eq!(
        reloaded.get("w").unwrap().state_bits(),
        states.get("w").unwrap().state_bits()
    );
    assert_eq!(
        states.get("w").unwrap().state_bits(),
        loaded.get("w").unwrap().state_bits()
    );
    assert_eq!(param_bits(&p), param_bits(&q));
}

#[test]
fn nan_subnormals_and_negative_zero_keep_their_bits() {
    // NaN with a sign and a payload, as code could hold it, the smallest subnormal, and −0.0.
    let odd_nan = f32::from_bits(0xFFC0_1234);
    let m = arr1(&[odd_nan, f32::from_bits(1), -0.0, f32::NEG_INFINITY]).into_dyn();
    let v = arr1(&[f32::NAN, f32::INFINITY, 0.0, f32::from_bits(0x0000_8000)]).into_dyn();
    let mut states = ParamStates::<AdamState<f32>>::default();
    *states.slot("w") = Some(AdamState::new(7, m.clone(), v.clone()).unwrap());
    let loaded = json_round_trip(&states);
    let state = loaded.get("w").unwrap();
    assert_eq!(
        param_bits(state.exp_avg()),
        vec![0xFFC0_1234, 1, 0x8000_0000, 0xFF80_0000]
    );
    assert_eq!(
        param_bits(state.exp_avg_sq()),
        vec![0x7FC0_0000, 0x7F80_0000, 0, 0x0000_8000]
    );
    assert_eq!(state.step(), 7);
}
