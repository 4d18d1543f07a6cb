//! The whole-model entry points fuzzed as the single-tensor path is: random models (mixed
//! dtypes, empty models and tensors, rank 0 to 4, transposed views, duplicate names, shapes that
//! change between steps, bad λ and axes, rules per name) through `step_all`, the wrapper's
//! `precondition_all`, `optim::precondition_each` and `chandir::precondition_all`, with `IxDyn`
//! and fixed ranks. Each call either gives bitwise what calling the single-tensor path on each
//! tensor in turn gives, or returns the error the first bad tensor gives there with nothing
//! changed: no panic, no half-written tensor, no half-updated state.

use chandir::optim::{
    precondition_each, Adam, AdamConfig, AdamState, ChannelDirectedOptimizer, Optimizer, ParamRule,
    ParamStates, Sgd, SgdConfig,
};
use chandir::{Boundary, ChannelDirected, Direction, Error, Metric};
use ndarray::{ArrayD, ArrayViewMut, Dimension, Ix1, Ix4, IxDyn};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["conv.weight", "conv.bias", "fc.weight", "up.weight", ""];

mod common;
use common::states::{bits, FloatBits as Float, StateBits};

/// One parameter of a fuzzed model.
#[derive(Clone, Debug)]
struct Param<A> {
    name: &'static str,
    param: ArrayD<A>,
    grad: ArrayD<A>,
    /// Passed as its transposed view (reversed axes): strides that are not row-major.
    transposed: bool,
}

/// A result as text, so that errors holding NaN (a NaN λ) compare equal.
fn debug(result: Result<(), Error>) -> Result<(), String> {
    result.map_err(|error| format!("{error:?}"))
}

fn model_bits<A: Float>(model: &[Param<A>]) -> Vec<(Vec<usize>, Vec<u64>, Vec<u64>)> {
    model
        .iter()
        .map(|p| (p.param.shape().to_vec(), bits(&p.param), bits(&p.grad)))
        .collect()
}

fn states_bits<S: StateBits>(states: &ParamStates<S>) -> Vec<(usize, Option<Vec<u64>>)> {
    NAMES
        .iter()
        .map(|name| (states.len(), states.get(name).map(StateBits::state_bits)))
        .collect()
}

fn lambda() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => prop::sample::select(vec![0.0, 0.3, 1.0, 50.0, 1e6]),
        1 => prop::sample::select(vec![-1.0, f64::NAN, f64::INFINITY]),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        lambda(),
        0u8..5,
        prop::sample::select(vec![
            Boundary::Neumann,
            Boundary::Periodic,
            Boundary::Dirichlet,
        ]),
    )
        .prop_map(|(lambda, kind, boundary)| match kind {
            0 => Metric::H0,
            1 => Metric::ReweightedH0 { lambda },
            _ => Metric::SobolevH1 { lambda, boundary },
        })
}

/// Any direction, including axes that some (or every) tensor lacks.
fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        3 => Just(Direction::Output),
        1 => Just(Direction::Input),
        2 => (0usize..5).prop_map(Direction::Axis),
        1 => Just(Direction::Flattened),
    ]
}

fn preconditioner() -> impl Strategy<Value = ChannelDirected> {
    (metric(), direction()).prop_map(|(metric, direction)| ChannelDirected::new(metric, direction))
}

fn rule() -> impl Strategy<Value = ParamRule> {
    prop_oneof![
        2 => Just(ParamRule::Auto),
        1 => Just(ParamRule::Skip),
        2 => preconditioner().prop_map(ParamRule::Use),
    ]
}

/// A wrapper with a default preconditioner and a rule for some names.
fn rules() -> impl Strategy<Value = (ChannelDirected, Vec<(usize, ParamRule)>)> {
    (
        preconditioner(),
        prop::collection::vec((0..NAMES.len(), rule()), 0..3),
    )
}

fn wrapper<O>(
    inner: O,
    (cd, rules): &(ChannelDirected, Vec<(usize, ParamRule)>),
) -> ChannelDirectedOptimizer<O> {
    rules.iter().fold(
        ChannelDirectedOptimizer::new(inner, *cd),
        |opt, &(name, rule)| opt.with_rule(NAMES[name], rule),
    )
}

/// A shape of rank `ranks`, dimensions 0 to 4 (0: an empty tensor).
fn shape(ranks: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1 => Just(0usize), 8 => 1usize..=4], ranks)
}

fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![8 => -2.0f64..2.0, 1 => Just(1e30), 1 => Just(-0.0)],
        len,
    )
}

/// A model of `count` parameters of rank in `ranks`, and a second gradient per parameter
/// (same shape, or, where `reshape` is drawn, another one: a shape that changes between steps).
fn model<A: Float>(
    ranks: std::ops::RangeInclusive<usize>,
    count: std::ops::Range<usize>,
) -> impl Strategy<Value = (Vec<Param<A>>, Vec<Param<A>>)> {
    let one = (
        0..NAMES.len(),
        shape(ranks.clone()),
        shape(ranks),
        any::<bool>(),
        0u8..6,
    )
        .prop_flat_map(|(name, shape, other, transposed, reshape)| {
            let second = if reshape == 0 { other } else { shape.clone() };
            let (n1, n2) = (shape.iter().product(), second.iter().product());
            (
                Just((name, shape, second, transposed)),
                values(n1),
                values(n1),
                values(n2),
                values(n2),
            )
        })
        .prop_map(|((name, shape, second, transposed), p, g, p2, g2)| {
            let make = |shape: &[usize], v: Vec<f64>| {
                ArrayD::from_shape_vec(
                    IxDyn(shape),
                    v.into_iter().map(|x| A::from(x).unwrap()).collect(),
                )
                .unwrap()
            };
            let first = Param {
                name: NAMES[name],
                param: make(&shape, p),
                grad: make(&shape, g),
                transposed,
            };
            let later = Param {
                name: NAMES[name],
                param: make(&second, p2),
                grad: make(&second, g2),
                transposed,
            };
            (first, later)
        });
    prop::collection::vec(one, count).prop_map(|pairs| pairs.into_iter().unzip())
}

/// One `(name, param, grad)` of a whole-model call.
type View<'a, A, D> = (&'static str, ArrayViewMut<'a, A, D>, ArrayViewMut<'a, A, D>);

/// A model stepped, and its states.
type Stepped<A, S> = (Vec<Param<A>>, ParamStates<S>);

/// The views a whole-model call takes, with the tensors' dimensionality `D`.
fn views<'a, A: Float, D: Dimension>(model: &'a mut [Param<A>]) -> Vec<View<'a, A, D>> {
    model
        .iter_mut()
        .map(|p| {
            let (mut param, mut grad) = (p.param.view_mut(), p.grad.view_mut());
            if p.transposed {
                param = param.reversed_axes();
                grad = grad.reversed_axes();
            }
            (
                p.name,
                param.into_dimensionality::<D>().unwrap(),
                grad.into_dimensionality::<D>().unwrap(),
            )
        })
        .collect()
}

/// The gradients' views alone.
fn grads<A: Float, D: Dimension>(
    model: &mut [Param<A>],
) -> Vec<(&'static str, ArrayViewMut<'_, A, D>)> {
    views::<A, D>(model)
        .into_iter()
        .map(|(name, _, grad)| (name, grad))
        .collect()
}

/// The single-tensor path on each parameter in turn: the results, or the first error (a repeated
/// name first, as a whole-model call must find it before anything else).
fn one_by_one<A, O>(
    opt: &ChannelDirectedOptimizer<O>,
    model: &[Param<A>],
    states: &ParamStates<O::State>,
) -> Result<Stepped<A, O::State>, Error>
where
    A: Float,
    O: Optimizer<A>,
{
    let mut seen = std::collections::BTreeSet::new();
    let mut duplicates: Vec<&str> = model
        .iter()
        .filter(|p| !seen.insert(p.name))
        .map(|p| p.name)
        .collect();
    duplicates.sort();
    if let Some(name) = duplicates.first() {
        return Err(Error::DuplicateParam {
            name: (*name).to_owned(),
        });
    }
    let (mut model, mut states) = (model.to_vec(), states.clone());
    for p in &mut model {
        let (mut param, mut grad) = (p.param.view_mut(), p.grad.view_mut());
        if p.transposed {
            param = param.reversed_axes();
            grad = grad.reversed_axes();
        }
        opt.step(p.name, param, grad, &mut states)?;
    }
    Ok((model, states))
}

/// Steps `steps` models (one per step) with `step_all` and with [`one_by_one`]: the same
/// outcome, bit for bit, and nothing changed by a call that fails.
fn step_all_matches<A, D, O>(
    opt: &ChannelDirectedOptimizer<O>,
    steps: &[Vec<Param<A>>],
) -> Result<(), TestCaseError>
where
    A: Float,
    D: Dimension,
    O: Optimizer<A>,
    O::State: StateBits,
{
    let mut states = ParamStates::<O::State>::default();
    for model in steps {
        let expected = one_by_one(opt, model, &states);
        let mut got = model.clone();
        let before = states_bits(&states);
        let result = opt.step_all(views::<A, D>(&mut got), &mut states);
        match expected {
            Ok((want, want_states)) => {
                prop_assert_eq!(result, Ok(()));
                prop_assert_eq!(model_bits(&got), model_bits(&want));
                prop_assert_eq!(states_bits(&states), states_bits(&want_states));
            }
            Err(error) => {
                prop_assert_eq!(debug(result), debug(Err(error)));
                prop_assert_eq!(model_bits(&got), model_bits(model), "a failed call wrote");
                prop_assert_eq!(
                    states_bits(&states),
                    before,
                    "a failed call changed a state"
                );
            }
        }
    }
    Ok(())
}

/// The wrapper's `precondition_all`, `precondition_each` and `chandir::precondition_all` on
/// `model`'s gradients against `ChannelDirected::apply` on each, or the first error and nothing
/// changed.
fn precondition_matches<A, D, O>(
    opt: &ChannelDirectedOptimizer<O>,
    model: &[Param<A>],
    lambda: f64,
) -> Result<(), TestCaseError>
where
    A: Float,
    D: Dimension,
{
    // What each gradient should become: its rule's preconditioner applied alone.
    let expect =
        |pick: &dyn Fn(&Param<A>) -> Option<ChannelDirected>| -> Result<Vec<Param<A>>, Error> {
            let mut want = model.to_vec();
            // All preconditioners are validated first: the first invalid one is the error.
            for p in &want {
                if let Some(cd) = pick(p) {
                    cd.validate(p.grad.ndim())?;
                }
            }
            for p in &mut want {
                if let Some(cd) = pick(p) {
                    let mut grad = p.grad.view_mut();
                    if p.transposed {
                        grad = grad.reversed_axes();
                    }
                    cd.apply(&mut grad)?;
                }
            }
            Ok(want)
        };
    let check = |want: Result<Vec<Param<A>>, Error>,
                 got: &[Param<A>],
                 result: Result<(), Error>|
     -> Result<(), TestCaseError> {
        match want {
            Ok(want) => {
                prop_assert_eq!(result, Ok(()));
                prop_assert_eq!(model_bits(got), model_bits(&want));
            }
            Err(error) => {
                prop_assert_eq!(debug(result), debug(Err(error)));
                prop_assert_eq!(model_bits(got), model_bits(model), "a failed call wrote");
            }
        }
        Ok(())
    };
    let mut got = model.to_vec();
    let result = opt.precondition_all(grads::<A, D>(&mut got));
    check(
        expect(&|p| opt.preconditioner_for(p.name, p.grad.ndim())),
        &got,
        result,
    )?;

    let cd = *opt.preconditioner();
    let mut got = model.to_vec();
    let result = precondition_each(
        grads::<A, D>(&mut got)
            .into_iter()
            .map(|(_, grad)| (cd, grad)),
    );
    check(expect(&|_| Some(cd)), &got, result)?;

    let mut got = model.to_vec();
    let result =
        chandir::precondition_all(grads::<A, D>(&mut got).into_iter().map(|(_, g)| g), lambda);
    check(
        expect(&|_| Some(ChannelDirected::sobolev(lambda))),
        &got,
        result,
    )?;
    Ok(())
}

fn sgd() -> impl Strategy<Value = SgdConfig> {
    (prop::sample::select(vec![0.0, 0.9]), any::<bool>()).prop_map(|(momentum, nesterov)| {
        SgdConfig {
            lr: 0.1,
            momentum,
            nesterov: nesterov && momentum > 0.0,
            weight_decay: 1e-3,
            ..Default::default()
        }
    })
}

fn adam() -> impl Strategy<Value = AdamConfig> {
    any::<bool>().prop_map(|decoupled| AdamConfig {
        lr: 0.01,
        weight_decay: 0.01,
        decoupled,
        ..Default::default()
    })
}

/// SGD and Adam (random settings) wrapped with the same random rules.
fn optimizers() -> impl Strategy<
    Value = (
        ChannelDirectedOptimizer<Sgd>,
        ChannelDirectedOptimizer<Adam>,
    ),
> {
    (sgd(), adam(), rules()).prop_map(|(sgd, adam, rules)| {
        (
            wrapper(sgd.init().unwrap(), &rules),
            wrapper(adam.init().unwrap(), &rules),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, failure_persistence: None, ..ProptestConfig::default() })]

    /// Mixed dtypes in one model: its f32 and f64 parameters, each group stepped by its own call
    /// with its own states (names may repeat across the groups), empty models included.
    #[test]
    fn step_all_dyn_mixed_dtypes(
        (sgd, adam) in optimizers(),
        (f32_first, f32_later) in model::<f32>(0..=4, 0..5),
        (f64_first, f64_later) in model::<f64>(0..=4, 0..5),
    ) {
        step_all_matches::<f32, IxDyn, _>(&sgd, &[f32_first.clone(), f32_first.clone(), f32_later.clone()])?;
        step_all_matches::<f64, IxDyn, _>(&sgd, &[f64_first.clone(), f64_later.clone()])?;
        step_all_matches::<f32, IxDyn, _>(&adam, &[f32_first, f32_later])?;
        step_all_matches::<f64, IxDyn, _>(&adam, &[f64_first.clone(), f64_first, f64_later])?;
    }

    /// Fixed ranks: `Ix4` (convolution weights) and `Ix1` (biases) models.
    #[test]
    fn step_all_fixed_ranks(
        (sgd, adam) in optimizers(),
        (conv_first, conv_later) in model::<f32>(4..=4, 0..4),
        (bias_first, bias_later) in model::<f64>(1..=1, 0..4),
    ) {
        step_all_matches::<f32, Ix4, _>(&sgd, &[conv_first.clone(), conv_later.clone()])?;
        step_all_matches::<f64, Ix1, _>(&sgd, &[bias_first.clone(), bias_later.clone()])?;
        step_all_matches::<f32, Ix4, _>(&adam, &[conv_first, conv_later])?;
        step_all_matches::<f64, Ix1, _>(&adam, &[bias_first, bias_later])?;
    }

    #[test]
    fn preconditioning_a_model_dyn_and_fixed_ranks(
        rules in rules(),
        lambda in lambda(),
        (mixed, _) in model::<f32>(0..=4, 0..6),
        (wide, _) in model::<f64>(0..=4, 0..6),
        (conv, _) in model::<f64>(4..=4, 0..4),
        (fc, _) in model::<f32>(2..=2, 0..4),
    ) {
        let opt = wrapper(SgdConfig::default().init().unwrap(), &rules);
        precondition_matches::<f32, IxDyn, _>(&opt, &mixed, lambda)?;
        precondition_matches::<f64, IxDyn, _>(&opt, &wide, lambda)?;
        precondition_matches::<f64, Ix4, _>(&opt, &conv, lambda)?;
        precondition_matches::<f32, ndarray::Ix2, _>(&opt, &fc, lambda)?;
    }
}

/// A state saved by the f64 half of a model does not load into the f32 half: the wrong dtype is
/// refused by name, not rounded.
#[test]
fn a_state_of_the_other_dtype_is_refused_when_loaded() {
    let opt = ChannelDirectedOptimizer::new(
        AdamConfig::default().init().unwrap(),
        ChannelDirected::sobolev(1.0),
    );
    let mut states = ParamStates::default();
    let mut w = ArrayD::<f64>::ones(IxDyn(&[4, 2, 3]));
    let mut g = ArrayD::<f64>::ones(IxDyn(&[4, 2, 3]));
    opt.step_all([("w", w.view_mut(), g.view_mut())], &mut states)
        .unwrap();
    let json = serde_json::to_string(&states).unwrap();
    let err = serde_json::from_str::<ParamStates<AdamState<f32>>>(&json).unwrap_err();
    assert!(
        err.to_string()
            .contains("adam state of f64, expected adam state of f32"),
        "{err}"
    );
}
