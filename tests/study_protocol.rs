//! The study's protocol (examples/reproduce): tuning never reads the test split, methods are
//! paired (same seed → same initial weights and batch order), λ = 0 reproduces the plain optimizer
//! bitwise inside the training loop, and the statistics and verdict rules behave as documented.

#[path = "../examples/reproduce/data.rs"]
mod data;
#[path = "../examples/reproduce/model.rs"]
mod model;
#[path = "../examples/reproduce/protocol.rs"]
mod protocol;
#[path = "../examples/reproduce/report.rs"]
#[allow(dead_code)]
mod report;
#[path = "../examples/reproduce/runner.rs"]
#[allow(dead_code)]
mod runner;
#[path = "../examples/reproduce/stats.rs"]
mod stats;

use std::path::Path;

use data::{DataKind, Dataset};
use ndarray::Array2;
use protocol::{Grid, Method, RunSpec, TestSplit};
use report::{Evaluated, Study, Verdict};

fn digits() -> Dataset {
    let mut d = Dataset::load(
        DataKind::Digits,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
    )
    .expect("data/digits_*.npy");
    d.truncate(96, 48, 48);
    d
}

fn tiny_grid() -> Grid {
    Grid {
        sgd_lr: vec![(16, vec![0.02, 0.05])],
        adam_lr: vec![1e-3],
        lambda: vec![0.3, 1.0],
        max_epochs: vec![((DataKind::Digits, 16), 2)],
        tuning_seeds: vec![1000, 1001],
    }
}

#[test]
fn tuning_never_reads_the_test_split() {
    let data = digits();
    let grid = tiny_grid();
    let methods = [Method::Sgd, Method::SgdH1Output, Method::Adam];
    let cells = [(DataKind::Digits, 16)];
    let tuned = runner::tune(std::slice::from_ref(&data), &grid, &cells, &methods).unwrap();
    assert_eq!(data.test.reads(), 0, "tuning read the test split");
    assert!(data.train.reads() > 0 && data.validation.reads() > 0);

    // a test split of garbage (NaN inputs, one label) changes nothing in the tuning
    let (rows, cols) = data.test_shape();
    let poisoned = data.with_test(Array2::from_elem((rows, cols), f32::NAN), vec![3; rows]);
    let again = runner::tune(std::slice::from_ref(&poisoned), &grid, &cells, &methods).unwrap();
    assert_eq!(poisoned.test.reads(), 0);
    for (a, b) in tuned.iter().zip(&again) {
        assert_eq!(a.chosen, b.chosen);
        assert_eq!(a.validation.to_bits(), b.validation.to_bits());
    }

    // the counter does see reads: an evaluation run reads the test split once, at the end
    let spec = RunSpec {
        data: DataKind::Digits,
        batch: 16,
        method: Method::Sgd,
        lr: 0.05,
        lambda: 0.0,
        epochs: 1,
        seed: 0,
    };
    let outcome = protocol::train(&data, &spec, TestSplit::ReadOnceAtTheEnd, false).unwrap();
    assert!(outcome.test_accuracy.is_some());
    assert_eq!(
        data.test.reads(),
        1,
        "48 test samples are one evaluation chunk"
    );
}

#[test]
fn the_choice_maximizes_mean_validation_accuracy() {
    let data = digits();
    let grid = tiny_grid();
    let tuned = runner::tune(
        std::slice::from_ref(&data),
        &grid,
        &[(DataKind::Digits, 16)],
        &[Method::SgdH1Output],
    )
    .unwrap();
    let t = &tuned[0];
    assert_eq!(t.candidates.len(), 4, "2 lr × 2 λ");
    let best = t
        .candidates
        .iter()
        .flat_map(|(_, mean, _, _)| {
            grid.epoch_choices(DataKind::Digits, 16)
                .into_iter()
                .map(move |e| mean[e - 1])
        })
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(t.validation, best);
    let (_, mean, _, _) = t
        .candidates
        .iter()
        .find(|(c, ..)| c.lr == t.chosen.lr && c.lambda == t.chosen.lambda)
        .unwrap();
    assert_eq!(mean[t.chosen.epochs - 1], best);
}

#[test]
fn the_same_seed_gives_every_method_the_same_start_and_batch_order() {
    use rand::seq::SliceRandom;
    let data = digits();
    let (net_a, mut rng_a) = protocol::initial_state(&data, 5);
    let (net_b, mut rng_b) = protocol::initial_state(&data, 5);
    let (net_c, _) = protocol::initial_state(&data, 6);
    let flat = |n: &model::Network<f32>| -> Vec<u32> {
        n.params()
            .iter()
            .flat_map(|(_, p)| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(flat(&net_a), flat(&net_b));
    assert_ne!(flat(&net_a), flat(&net_c));
    let (mut a, mut b): (Vec<usize>, Vec<usize>) = ((0..50).collect(), (0..50).collect());
    a.shuffle(&mut rng_a);
    b.shuffle(&mut rng_b);
    assert_eq!(a, b);
}

#[test]
fn lambda_zero_trains_exactly_like_the_plain_optimizer() {
    let data = digits();
    let run = |method: Method, lambda: f64| {
        let spec = RunSpec {
            data: DataKind::Digits,
            batch: 16,
            method,
            lr: 0.05,
            lambda,
            epochs: 2,
            seed: 3,
        };
        protocol::train(&data, &spec, TestSplit::Untouched, true)
            .unwrap()
            .params
            .unwrap()
    };
    let sgd = run(Method::Sgd, 0.0);
    for m in [
        Method::SgdH1Output,
        Method::SgdReweightedH0Output,
        Method::SgdH1Input,
        Method::SgdH1Flattened,
        Method::SgdH1PeriodicOutput,
    ] {
        assert!(protocol::bitwise_equal(&run(m, 0.0), &sgd), "{m:?}");
    }
    assert!(protocol::bitwise_equal(
        &run(Method::AdamH1Output, 0.0),
        &run(Method::Adam, 0.0)
    ));
    // and the comparison can fail: λ > 0 changes the weights
    assert!(!protocol::bitwise_equal(
        &run(Method::SgdH1Output, 1.0),
        &sgd
    ));
}

#[test]
fn t_interval_matches_the_textbook() {
    // t(0.975; 9) = 2.262, t(0.975; 4) = 2.776 (printed tables)
    assert!((stats::t_quantile(9) - 2.262).abs() < 5e-4);
    assert!((stats::t_quantile(4) - 2.776).abs() < 5e-4);
    // d = 1..5: mean 3, s = √2.5, half width = t(4) · s / √5
    let a = [2.0, 4.0, 6.0, 8.0, 10.0];
    let b = [1.0, 2.0, 3.0, 4.0, 5.0];
    let i = stats::paired_difference(&a, &b);
    let half = 2.776445 * 2.5_f64.sqrt() / 5_f64.sqrt();
    assert!((i.estimate - 3.0).abs() < 1e-12);
    assert!((i.low - (3.0 - half)).abs() < 1e-5 && (i.high - (3.0 + half)).abs() < 1e-5);
}

#[test]
fn bootstrap_std_ratio() {
    let a = [0.91, 0.93, 0.92, 0.95, 0.90, 0.94, 0.93, 0.92];
    // b − mean(b) = 2 (a − mean(a)): every resample has ratio exactly 1/2
    let b: Vec<f64> = a.iter().map(|x| 2.0 * x - 0.5).collect();
    let r = stats::std_ratio(&a, &b);
    assert!((r.estimate - 0.5).abs() < 1e-12);
    assert!((r.low - 0.5).abs() < 1e-12 && (r.high - 0.5).abs() < 1e-12);
    // unrelated samples: the interval is wide and contains the estimate
    let c = [0.90, 0.97, 0.88, 0.93, 0.99, 0.85, 0.92, 0.94];
    let r = stats::std_ratio(&a, &c);
    assert!(r.low < r.estimate && r.estimate < r.high);
}

fn study(sgd: Vec<f64>, h1: Vec<f64>) -> Study {
    let evaluated = |method, test| Evaluated {
        data: DataKind::Digits,
        batch: 8,
        method,
        setting: protocol::Setting {
            lr: 0.01,
            lambda: 1.0,
            epochs: 1,
        },
        test,
        diverged: 0,
        precondition_share: 0.01,
        seconds_per_run: 1.0,
    };
    Study {
        command: String::new(),
        mode: "test",
        tuning_source: String::new(),
        tuning_seeds: 3,
        eval_seeds: sgd.len(),
        tuned: Vec::new(),
        evaluated: vec![
            evaluated(Method::Sgd, sgd),
            evaluated(Method::SgdH1Output, h1),
        ],
        stability: Vec::new(),
        lambda_zero: Vec::new(),
        correlation: Vec::new(),
        wall_seconds: 0.0,
        threads: 1,
        load: String::new(),
        grid_description: String::new(),
    }
}

#[test]
fn verdicts_follow_the_stated_rules() {
    let sgd = vec![0.90, 0.91, 0.92, 0.93, 0.94, 0.95];
    let shifted = |by: f64, noise: &[f64]| -> Vec<f64> {
        sgd.iter().zip(noise).map(|(s, n)| s + by + n).collect()
    };
    let noise = [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.0];
    let verdict = |h1: Vec<f64>| report::claims(&study(sgd.clone(), h1))[0].verdict;
    // a clear gain of 2 pp
    assert_eq!(verdict(shifted(0.02, &noise)), Verdict::Holds);
    // a clear loss
    assert_eq!(verdict(shifted(-0.02, &noise)), Verdict::DoesNotHold);
    // no difference, measured precisely: no useful gain
    assert_eq!(verdict(shifted(0.0, &noise)), Verdict::DoesNotHold);
    // a large, noisy difference
    let wild = [0.05, -0.04, 0.06, -0.05, 0.04, -0.03];
    assert_eq!(verdict(shifted(0.01, &wild)), Verdict::Inconclusive);
    // claims that need --full say so
    let claims = report::claims(&study(sgd.clone(), shifted(0.02, &noise)));
    assert_eq!(claims[2].verdict, Verdict::NotRun);
    assert_eq!(claims[3].verdict, Verdict::NotRun);
    assert_eq!(claims[5].verdict, Verdict::Holds, "1 % of step time");
}
