//! The whole-model calls (`step_all`, `precondition_all`, `precondition_each`) against the same
//! work done one tensor at a time: bitwise equal, for 1, 2 and 4 threads.

use chandir::optim::{
    precondition_each, AdamConfig, ChannelDirectedOptimizer, Optimizer, ParamRule, ParamStates,
    SgdConfig,
};
use chandir::{Boundary, ChannelDirected, Direction, Error, Metric, Threading};
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

mod common;

/// Reproducible values in [-1, 1) from a seed (SplitMix64), so every run sees the same tensors.
fn filled(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut state = seed;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

fn bits(array: &ArrayD<f32>) -> Vec<u32> {
    array.iter().map(|v| v.to_bits()).collect()
}

/// A model of mixed ranks and sizes: tensors above the split threshold (65 536 values), many
/// small ones, an empty one, and parameters with rules of every kind.
const MODEL: &[(&str, &[usize])] = &[
    ("conv1.weight", &[64, 3, 7, 7]),
    ("layer1.conv.weight", &[64, 64, 3, 3]),
    ("layer2.conv.weight", &[128, 64, 3, 3]),
    ("layer3.conv.weight", &[256, 128, 3, 3]),
    ("layer3.downsample.weight", &[256, 128, 1, 1]),
    ("bn.weight", &[64]),
    ("bn.bias", &[64]),
    ("conv1d.weight", &[32, 16, 5]),
    ("empty.weight", &[0, 3, 3, 3]),
    ("up.weight", &[16, 32, 2, 2]),
    ("ls.weight", &[8, 8, 3, 3]),
    ("frozen.weight", &[16, 16, 3, 3]),
    ("single.weight", &[96, 96, 3, 3]),
    ("fc.weight", &[10, 256]),
    ("fc2.weight", &[64, 32]),
    ("fc.bias", &[10]),
];

fn wrap<O>(inner: O) -> ChannelDirectedOptimizer<O> {
    ChannelDirectedOptimizer::new(inner, ChannelDirected::sobolev(1.0))
        .with_rule(
            "up.weight",
            ParamRule::Use(ChannelDirected::new(Metric::default(), Direction::Axis(1))),
        )
        .with_rule(
            "ls.weight",
            ParamRule::Use(ChannelDirected::new(
                Metric::SobolevH1 {
                    lambda: 3.0,
                    boundary: Boundary::Periodic,
                },
                Direction::Flattened,
            )),
        )
        .with_rule("frozen.weight", ParamRule::Skip)
        .with_rule(
            "single.weight",
            ParamRule::Use(ChannelDirected::sobolev(2.0).with_threading(Threading::Single)),
        )
        .with_rule("fc2.weight", ParamRule::Use(ChannelDirected::sobolev(0.3)))
}

/// Parameters, and the gradients of step `step`. `conv1d.weight` lives in a permuted buffer, so
/// that one parameter and its gradient are non-contiguous views.
struct Model {
    params: Vec<ArrayD<f32>>,
    grads: Vec<ArrayD<f32>>,
}

impl Model {
    fn new() -> Self {
        let params = MODEL
            .iter()
            .enumerate()
            .map(|(index, (_, shape))| stored(shape, index as u64))
            .collect();
        Model {
            params,
            grads: Vec::new(),
        }
    }

    fn set_gradients(&mut self, step: u64) {
        self.grads = MODEL
            .iter()
            .enumerate()
            .map(|(index, (_, shape))| stored(shape, 1000 * (step + 1) + index as u64))
            .collect();
    }
}

/// `conv1d.weight` is stored as [k, C_in, C_out] and seen as [C_out, C_in, k].
fn stored(shape: &[usize], seed: u64) -> ArrayD<f32> {
    if shape == [32, 16, 5] {
        filled(&[5, 16, 32], seed)
    } else {
        filled(shape, seed)
    }
}

fn logical(array: &mut ArrayD<f32>) -> ndarray::ArrayViewMutD<'_, f32> {
    if array.shape() == [5, 16, 32] {
        array.view_mut().permuted_axes(IxDyn(&[2, 1, 0]))
    } else {
        array.view_mut()
    }
}

fn snapshot<S: Serialize>(model: &Model, states: &ParamStates<S>) -> (Vec<Vec<u32>>, String) {
    let mut all: Vec<Vec<u32>> = model.params.iter().map(bits).collect();
    all.extend(model.grads.iter().map(bits));
    (all, serde_json::to_string(states).unwrap())
}

/// Three steps, either one parameter at a time or with `step_all` in a pool of `threads`.
fn train<O>(opt: &ChannelDirectedOptimizer<O>, threads: Option<usize>) -> (Vec<Vec<u32>>, String)
where
    O: Optimizer<f32>,
    O::State: Serialize,
{
    let mut model = Model::new();
    let mut states = ParamStates::default();
    for step in 0..3 {
        model.set_gradients(step);
        match threads {
            None => {
                for ((name, _), (param, grad)) in MODEL
                    .iter()
                    .zip(model.params.iter_mut().zip(&mut model.grads))
                {
                    opt.step(name, logical(param), logical(grad), &mut states)
                        .unwrap();
                }
            }
            Some(threads) => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let params = MODEL
                    .iter()
                    .zip(model.params.iter_mut().zip(&mut model.grads))
                    .map(|((name, _), (param, grad))| (*name, logical(param), logical(grad)));
                pool.install(|| opt.step_all(params, &mut states)).unwrap();
            }
        }
    }
    assert_eq!(states.len(), MODEL.len());
    snapshot(&model, &states)
}

/// `step_all` in pools of 1, 2 and 4 threads trains bitwise as stepping one by one does.
fn threads_agree<O>(opt: &ChannelDirectedOptimizer<O>, name: &str)
where
    O: Optimizer<f32>,
    O::State: Serialize,
{
    let one_by_one = train(opt, None);
    for threads in [1, 2, 4] {
        assert!(
            train(opt, Some(threads)) == one_by_one,
            "{name}, {threads} threads"
        );
    }
}

#[test]
fn step_all_is_bitwise_identical_to_stepping_one_by_one() {
    let sgd = common::states::nesterov_sgd().init().unwrap();
    let adamw = AdamConfig::adamw(1e-3, 0.01).init().unwrap();

    threads_agree(&wrap(sgd), "SGD");
    threads_agree(&wrap(adamw), "AdamW");
    // The comparison can fail: smoothing changes the result.
    let unsmoothed = train(
        &ChannelDirectedOptimizer::new(
            SgdConfig::default().init().unwrap(),
            ChannelDirected::sobolev(0.0),
        ),
        Some(2),
    );
    assert!(unsmoothed != train(&wrap(SgdConfig::default().init().unwrap()), Some(2)));
}

#[test]
fn precondition_all_is_bitwise_identical_to_one_by_one() {
    let shapes: Vec<&[usize]> = MODEL.iter().map(|(_, shape)| *shape).collect();
    let mut expected: Vec<ArrayD<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| filled(shape, 77 + i as u64))
        .collect();
    for grad in &mut expected {
        chandir::precondition(grad, 0.7).unwrap();
    }
    for threads in [1, 2, 4] {
        let mut grads: Vec<ArrayD<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, shape)| filled(shape, 77 + i as u64))
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| chandir::precondition_all(grads.iter_mut().map(|g| g.view_mut()), 0.7))
            .unwrap();
        for (got, want) in grads.iter().zip(&expected) {
            assert_eq!(bits(got), bits(want), "{threads} threads");
        }
    }
}

#[test]
fn precondition_each_applies_each_preconditioner_bitwise() {
    let cases = [
        ChannelDirected::sobolev(1.0),
        ChannelDirected::new(Metric::ReweightedH0 { lambda: 2.0 }, Direction::Input),
        ChannelDirected::new(
            Metric::SobolevH1 {
                lambda: 0.5,
                boundary: Boundary::Dirichlet,
            },
            Direction::Axis(3),
        ),
        ChannelDirected::sobolev(4.0).with_threading(Threading::Single),
        ChannelDirected::new(Metric::H0, Direction::Flattened),
    ];
    let shapes: [&[usize]; 5] = [
        &[256, 128, 3, 3],
        &[32, 64, 3, 3],
        &[16, 8, 3, 5],
        &[128, 64, 3, 3],
        &[4, 4],
    ];
    let fresh = || -> Vec<ArrayD<f32>> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, shape)| filled(shape, 5 + i as u64))
            .collect()
    };
    let mut expected = fresh();
    for (cd, grad) in cases.iter().zip(&mut expected) {
        cd.apply(grad).unwrap();
    }
    for threads in [1, 2, 4] {
        let mut grads = fresh();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            precondition_each(
                cases
                    .iter()
                    .copied()
                    .zip(grads.iter_mut().map(|g| g.view_mut())),
            )
        })
        .unwrap();
        for (got, want) in grads.iter().zip(&expected) {
            assert_eq!(bits(got), bits(want), "{threads} threads");
        }
    }
}

/// Every kind of bad input to a whole-model call leaves every tensor and every state as it was.
#[test]
fn step_all_validates_everything_before_writing_anything() {
    let opt = wrap(AdamConfig::default().init().unwrap());
    let mut model = Model::new();
    let mut states = ParamStates::default();
    model.set_gradients(0);
    {
        let params = MODEL
            .iter()
            .zip(model.params.iter_mut().zip(&mut model.grads))
            .map(|((name, _), (param, grad))| (*name, logical(param), logical(grad)));
        opt.step_all(params, &mut states).unwrap();
    }
    model.set_gradients(1);
    let before = snapshot(&model, &states);

    let last = MODEL.len() - 1;
    let attempt = |model: &mut Model,
                   states: &mut ParamStates<_>,
                   opt: &ChannelDirectedOptimizer<_>,
                   rename: &dyn Fn(usize) -> &'static str,
                   swap_last_grad: Option<&mut ArrayD<f32>>| {
        let mut swap = swap_last_grad;
        let params: Vec<_> = MODEL
            .iter()
            .zip(model.params.iter_mut().zip(&mut model.grads))
            .enumerate()
            .map(|(i, (_, (param, grad)))| {
                let grad = if i == last {
                    match swap.take() {
                        Some(other) => other.view_mut(),
                        None => logical(grad),
                    }
                } else {
                    logical(grad)
                };
                (rename(i), logical(param), grad)
            })
            .collect();
        opt.step_all(params, states).unwrap_err()
    };
    let same = |i: usize| MODEL[i].0;

    // Two parameters with one name would share a state.
    let err = attempt(
        &mut model,
        &mut states,
        &opt,
        &|i| if i == last { MODEL[0].0 } else { MODEL[i].0 },
        None,
    );
    assert_eq!(
        err,
        Error::DuplicateParam {
            name: "conv1.weight".into()
        }
    );
    assert!(snapshot(&model, &states) == before);

    // The last gradient has the wrong shape.
    let mut wrong = ArrayD::<f32>::zeros(vec![10, 3]);
    let err = attempt(&mut model, &mut states, &opt, &same, Some(&mut wrong));
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    assert!(snapshot(&model, &states) == before);

    // The last parameter's rule is invalid (λ = NaN).
    let bad = wrap(AdamConfig::default().init().unwrap()).with_rule(
        "fc.bias",
        ParamRule::Use(ChannelDirected::sobolev(f64::NAN)),
    );
    let err = attempt(&mut model, &mut states, &bad, &same, None);
    assert!(matches!(err, Error::InvalidLambda { .. }), "{err}");
    assert!(snapshot(&model, &states) == before);

    // A parameter whose saved state is for another shape, under a new name: no slot is added.
    let renamed = |i: usize| if i == last { "new.bias" } else { MODEL[i].0 };
    let moved = states.get("bn.bias").cloned();
    *states.slot("fc.weight") = moved;
    let before = snapshot(&model, &states);
    let err = attempt(&mut model, &mut states, &opt, &renamed, None);
    assert!(
        matches!(&err, Error::StateMismatch { param, .. } if param == "fc.weight"),
        "{err}"
    );
    assert!(snapshot(&model, &states) == before);
    assert!(states.get("new.bias").is_none() && states.len() == MODEL.len());
}
