//! Sharded smoothing (`chandir::shard`) on thread ranks, against the unsharded path
//! (`ChannelDirected::apply`), dense solves (`tests/common`) and the reference files.

mod common;

use chandir::shard::{smooth_flat, smooth_rows, Communicator, ThreadCommunicator};
use chandir::{Boundary, ChannelDirected, Direction, Error, Metric};
use common::reference::{arrays, cases, parse_case};
use ndarray::{ArrayD, Axis, IxDyn, Slice};
use num_traits::Float;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs `f(rank, comm)` on `size` threads, one rank each; the results in rank order.
fn on_ranks<R: Send>(size: usize, f: impl Fn(usize, &ThreadCommunicator) -> R + Sync) -> Vec<R> {
    let group = ThreadCommunicator::group(size);
    let f = &f;
    std::thread::scope(|s| {
        let workers: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(r, comm)| s.spawn(move || f(r, comm)))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

/// Flat ranges from cut points: rank `r` holds `cuts[order[r]]..cuts[order[r] + 1]`.
fn ranges(cuts: &[usize], order: &[usize]) -> Vec<(usize, usize)> {
    order.iter().map(|&k| (cuts[k], cuts[k + 1])).collect()
}

/// Smooths `flat` (a tensor of `shape`) sharded at `ranges` (one per rank) with flat parts; the
/// parts put back together, or every rank's result.
fn sharded_flat<T: chandir::Element>(
    metric: Metric,
    shape: &[usize],
    flat: &[T],
    ranges: &[(usize, usize)],
) -> Result<Vec<T>, Vec<Result<(), Error>>> {
    let outcome = on_ranks(ranges.len(), |r, comm| {
        let (s, e) = ranges[r];
        let mut part = flat[s..e].to_vec();
        let res = smooth_flat(comm, &metric, shape, s, &mut part);
        (res, part)
    });
    if outcome.iter().all(|(r, _)| r.is_ok()) {
        let mut out = flat.to_vec();
        for ((s, e), (_, part)) in ranges.iter().zip(&outcome) {
            out[*s..*e].copy_from_slice(part);
        }
        Ok(out)
    } else {
        Err(outcome.into_iter().map(|(r, _)| r).collect())
    }
}

/// As [`sharded_flat`], with row ranges (each rank holds whole output channels, as a tensor).
fn sharded_rows<T: chandir::Element>(
    metric: Metric,
    full: &ArrayD<T>,
    rows: &[(usize, usize)],
) -> Result<ArrayD<T>, Vec<Result<(), Error>>> {
    let shape = full.shape().to_vec();
    let outcome = on_ranks(rows.len(), |r, comm| {
        let (a, b) = rows[r];
        let mut part = full.slice_axis(Axis(0), Slice::from(a..b)).to_owned();
        let res = smooth_rows(comm, &metric, &shape, a, &mut part);
        (res, part)
    });
    if outcome.iter().all(|(r, _)| r.is_ok()) {
        let mut out = full.clone();
        for ((a, b), (_, part)) in rows.iter().zip(&outcome) {
            out.slice_axis_mut(Axis(0), Slice::from(*a..*b))
                .assign(part);
        }
        Ok(out)
    } else {
        Err(outcome.into_iter().map(|(r, _)| r).collect())
    }
}

fn unsharded<T: chandir::Element>(metric: Metric, shape: &[usize], flat: &[T]) -> Vec<T> {
    let mut a = ArrayD::from_shape_vec(IxDyn(shape), flat.to_vec()).unwrap();
    ChannelDirected::new(metric, Direction::Output)
        .apply(&mut a)
        .unwrap();
    a.iter().copied().collect()
}

fn max_abs<T: Float>(v: &[T]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.to_f64().unwrap().abs()))
}

/// `max|a − b| ≤ tol·max|g|` (NaN where both are NaN counts as equal).
fn close<T: Float>(a: &[T], b: &[T], g: &[T], tol: f64) -> Result<(), String> {
    let scale = max_abs(g);
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y) = (x.to_f64().unwrap(), y.to_f64().unwrap());
        if x.is_nan() && y.is_nan() {
            continue;
        }
        let within = (x - y).abs() <= tol * scale;
        if !within {
            return Err(format!("value {k}: {x:e} vs {y:e} (max|g| {scale:e})"));
        }
    }
    Ok(())
}

fn metrics(lambda: f64) -> Vec<Metric> {
    let h1 = |boundary| Metric::SobolevH1 { lambda, boundary };
    vec![
        h1(Boundary::Neumann),
        h1(Boundary::Periodic),
        h1(Boundary::Dirichlet),
        Metric::ReweightedH0 { lambda },
        Metric::H0,
    ]
}

fn random_values(rng: &mut ChaCha8Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

const F64_TOL: f64 = 1e-12;
const F32_TOL: f64 = 1e-5;

#[test]
fn every_flat_cut_of_small_tensors_two_and_three_ranks() {
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    let shapes: [&[usize]; 7] = [
        &[5, 3],
        &[4, 2, 2],
        &[7],
        &[1, 5],
        &[2, 3],
        &[6, 1, 2],
        &[3, 4],
    ];
    for shape in shapes {
        let total: usize = shape.iter().product();
        let g = random_values(&mut rng, total);
        for lambda in [0.5, 1e3] {
            for metric in metrics(lambda) {
                let expected = unsharded(metric, shape, &g);
                let dense = common::reference_apply(
                    &ArrayD::from_shape_vec(IxDyn(shape), g.clone()).unwrap(),
                    &metric,
                    Direction::Output,
                );
                let dense: Vec<f64> = dense.iter().copied().collect();
                close(&expected, &dense, &g, 1e-9).unwrap();
                for a in 0..=total {
                    let got =
                        sharded_flat(metric, shape, &g, &ranges(&[0, a, total], &[0, 1])).unwrap();
                    close(&got, &expected, &g, F64_TOL)
                        .unwrap_or_else(|e| panic!("{metric:?} {shape:?} cut {a}: {e}"));
                    for b in a..=total {
                        let got =
                            sharded_flat(metric, shape, &g, &ranges(&[0, a, b, total], &[2, 0, 1]))
                                .unwrap();
                        close(&got, &expected, &g, F64_TOL)
                            .unwrap_or_else(|e| panic!("{metric:?} {shape:?} cuts {a},{b}: {e}"));
                    }
                }
            }
        }
    }
}

/// Random cut points (uneven, empty shards included) for `ranks` ranks of `total` values.
fn random_cuts(rng: &mut ChaCha8Rng, ranks: usize, total: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..ranks - 1)
        .map(|_| rng.random_range(0..=total))
        .collect();
    cuts.push(0);
    cuts.push(total);
    cuts.sort_unstable();
    cuts
}

fn shuffled(rng: &mut ChaCha8Rng, ranks: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ranks).collect();
    for i in (1..ranks).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

#[test]
fn random_rank_counts_shapes_and_cuts_f64_and_f32() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for trial in 0..150 {
        let ranks = rng.random_range(1..=9);
        let n = rng.random_range(1..60);
        let rest: Vec<usize> = (0..rng.random_range(0..3))
            .map(|_| rng.random_range(1..5))
            .collect();
        let shape: Vec<usize> = std::iter::once(n).chain(rest).collect();
        let total: usize = shape.iter().product();
        let g = random_values(&mut rng, total);
        let lambda = [1e-3, 0.3, 1.0, 7.0, 1e4][trial % 5];
        let metric = metrics(lambda)[trial % 4];
        let order = shuffled(&mut rng, ranks);
        // flat cuts, f64
        let flat = ranges(&random_cuts(&mut rng, ranks, total), &order);
        let got = sharded_flat(metric, &shape, &g, &flat).unwrap();
        close(&got, &unsharded(metric, &shape, &g), &g, F64_TOL)
            .unwrap_or_else(|e| panic!("trial {trial} {metric:?} {shape:?} {flat:?}: {e}"));
        // flat cuts, f32
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        let got = sharded_flat(metric, &shape, &g32, &flat).unwrap();
        close(&got, &unsharded(metric, &shape, &g32), &g32, F32_TOL)
            .unwrap_or_else(|e| panic!("trial {trial} f32 {metric:?} {shape:?} {flat:?}: {e}"));
        // row cuts
        let rows = ranges(&random_cuts(&mut rng, ranks, n), &order);
        let full = ArrayD::from_shape_vec(IxDyn(&shape), g.clone()).unwrap();
        let got = sharded_rows(metric, &full, &rows).unwrap();
        let got: Vec<f64> = got.iter().copied().collect();
        close(&got, &unsharded(metric, &shape, &g), &g, F64_TOL)
            .unwrap_or_else(|e| panic!("trial {trial} rows {metric:?} {shape:?} {rows:?}: {e}"));
    }
}

#[test]
fn shards_of_one_row_and_non_contiguous_parts() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let shape = [9, 4, 3];
    let g = random_values(&mut rng, 108);
    let full = ArrayD::from_shape_vec(IxDyn(&shape), g.clone()).unwrap();
    let rows: Vec<(usize, usize)> = (0..9).map(|i| (i, i + 1)).collect();
    for metric in metrics(2.5) {
        let expected = unsharded(metric, &shape, &g);
        let got = sharded_rows(metric, &full, &rows).unwrap();
        close(
            &got.iter().copied().collect::<Vec<_>>(),
            &expected,
            &g,
            F64_TOL,
        )
        .unwrap();
        // each rank's part is a permuted (non-standard-layout) view
        let outcome = on_ranks(3, |r, comm| {
            let mut part = full
                .slice_axis(Axis(0), Slice::from(3 * r..3 * r + 3))
                .to_owned()
                .reversed_axes();
            let mut view = part.view_mut().reversed_axes();
            smooth_rows(comm, &metric, &shape, 3 * r, &mut view).unwrap();
            view.to_owned()
        });
        let views: Vec<_> = outcome.iter().map(|p| p.view()).collect();
        let joined = ndarray::concatenate(Axis(0), &views).unwrap();
        close(
            &joined.iter().copied().collect::<Vec<_>>(),
            &expected,
            &g,
            F64_TOL,
        )
        .unwrap();
    }
}

#[test]
fn huge_lambda_and_huge_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let shape = [40, 3];
    for &scale in &[1.0, f64::MAX / 4.0] {
        let g: Vec<f64> = random_values(&mut rng, 120)
            .iter()
            .map(|v| v * scale)
            .collect();
        for lambda in [1e8, 1e16, 1e300, f64::MAX, 5e-324] {
            for metric in metrics(lambda) {
                let expected = unsharded(metric, &shape, &g);
                assert!(expected.iter().all(|v| v.is_finite()));
                for ranks in [2, 5, 9] {
                    let flat = ranges(
                        &random_cuts(&mut rng, ranks, 120),
                        &shuffled(&mut rng, ranks),
                    );
                    let got = sharded_flat(metric, &shape, &g, &flat).unwrap();
                    assert!(
                        got.iter().all(|v| v.is_finite()),
                        "{metric:?} scale {scale:e}"
                    );
                    close(&got, &expected, &g, F64_TOL)
                        .unwrap_or_else(|e| panic!("{metric:?} scale {scale:e} {flat:?}: {e}"));
                }
            }
            let g32: Vec<f32> = g
                .iter()
                .map(|&v| (v / scale) as f32 * f32::MAX / 4.0)
                .collect();
            for metric in metrics(lambda) {
                let flat = ranges(&random_cuts(&mut rng, 4, 120), &[0, 1, 2, 3]);
                let got = sharded_flat(metric, &shape, &g32, &flat).unwrap();
                assert!(got.iter().all(|v| v.is_finite()));
                close(&got, &unsharded(metric, &shape, &g32), &g32, F32_TOL).unwrap();
            }
        }
    }
}

#[test]
fn long_fibers_over_many_ranks() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let shape = [5000, 2];
    let g = random_values(&mut rng, 10_000);
    for lambda in [1.0, 1e6] {
        for metric in metrics(lambda) {
            let flat = ranges(&random_cuts(&mut rng, 7, 10_000), &[0, 1, 2, 3, 4, 5, 6]);
            let got = sharded_flat(metric, &shape, &g, &flat).unwrap();
            close(&got, &unsharded(metric, &shape, &g), &g, F64_TOL).unwrap();
        }
    }
}

#[test]
fn agrees_with_the_reference_files() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut checked = 0;
    for case in &cases() {
        let cd = parse_case(case);
        if cd.direction != Direction::Output {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let lambda = cd.metric.lambda();
        let ranks = rng.random_range(1..=9);
        match case["dtype"].as_str().unwrap() {
            "float64" => {
                let (grad, expected) = arrays::<f64>(name);
                let g: Vec<f64> = grad.iter().copied().collect();
                let flat = ranges(
                    &random_cuts(&mut rng, ranks, g.len()),
                    &shuffled(&mut rng, ranks),
                );
                let got = sharded_flat(cd.metric, grad.shape(), &g, &flat).unwrap();
                let e: Vec<f64> = expected.iter().copied().collect();
                close(&got, &e, &g, 1e-12 + 1e-15 * (1.0 + 4.0 * lambda))
                    .unwrap_or_else(|err| panic!("{name}: {err}"));
            }
            "float32" => {
                let (grad, expected) = arrays::<f32>(name);
                let n = grad.shape()[0];
                let rows = ranges(&random_cuts(&mut rng, ranks, n), &shuffled(&mut rng, ranks));
                let got = sharded_rows(cd.metric, &grad, &rows).unwrap();
                let g: Vec<f32> = grad.iter().copied().collect();
                close(
                    &got.iter().copied().collect::<Vec<_>>(),
                    &expected.iter().copied().collect::<Vec<_>>(),
                    &g,
                    F32_TOL,
                )
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            }
            other => panic!("unknown dtype {other}"),
        }
        checked += 1;
    }
    assert!(
        checked >= 50,
        "only {checked} reference cases along the output channels"
    );
}

#[test]
fn nan_in_one_ranks_part_stays_in_its_columns() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let shape = [12, 5];
    let mut g = random_values(&mut rng, 60);
    g[7 * 5 + 3] = f64::NAN; // row 7, column 3
    let flat = ranges(&[0, 17, 33, 41, 60], &[0, 1, 2, 3]);
    for metric in metrics(1.5) {
        let got = sharded_flat(metric, &shape, &g, &flat).unwrap();
        let expected = unsharded(metric, &shape, &g);
        for (k, (&x, &e)) in got.iter().zip(&expected).enumerate() {
            if k % 5 == 3 && metric != Metric::H0 {
                assert!(x.is_nan(), "{metric:?}: column 3 is NaN unsharded too");
            } else if k % 5 != 3 {
                assert!(x.is_finite(), "{metric:?}: value {k} caught the NaN");
                assert!((x - e).abs() <= F64_TOL, "{metric:?}: value {k}");
            }
        }
    }
}

/// Every rank of `outcome` failed, with `Error::Shard` except where `own` says otherwise.
/// A rank and the check its own error must pass.
type OwnError = (usize, fn(&Error) -> bool);

fn all_failed(outcome: Vec<Result<(), Error>>, own: &[OwnError]) {
    for (r, res) in outcome.iter().enumerate() {
        let err = res.as_ref().expect_err(&format!("rank {r} should fail"));
        match own.iter().find(|(q, _)| *q == r) {
            Some((_, check)) => assert!(check(err), "rank {r}: {err:?}"),
            None => assert!(matches!(err, Error::Shard { .. }), "rank {r}: {err:?}"),
        }
    }
}

#[test]
fn errors_on_every_rank_before_anything_is_written() {
    let shape = [6usize, 4];
    let g: Vec<f64> = (0..24).map(|k| (k * 7 % 5) as f64).collect();
    let good = Metric::SobolevH1 {
        lambda: 1.0,
        boundary: Boundary::Neumann,
    };
    // Each rank's call: (metric, shape, start, len). All parts must come back untouched.
    type Call = (Metric, Vec<usize>, usize, usize);
    let attempt = |calls: Vec<Call>| -> Vec<Result<(), Error>> {
        on_ranks(calls.len(), |r, comm| {
            let (metric, ref shape, start, len) = calls[r];
            let mut part: Vec<f64> = g.iter().cycle().skip(start).take(len).copied().collect();
            let before = part.clone();
            let res = smooth_flat(comm, &metric, shape, start, &mut part);
            assert_eq!(part, before, "rank {r} wrote its part");
            res
        })
    };
    let call = |m: Metric, s: usize, e: usize| (m, shape.to_vec(), s, e - s);
    let nan = Metric::SobolevH1 {
        lambda: f64::NAN,
        boundary: Boundary::Neumann,
    };
    // NaN λ on rank 1
    all_failed(
        attempt(vec![call(good, 0, 8), call(nan, 8, 16), call(good, 16, 24)]),
        &[(1, |e| matches!(e, Error::InvalidLambda { .. }))],
    );
    // negative λ on rank 0
    all_failed(
        attempt(vec![
            call(Metric::ReweightedH0 { lambda: -1.0 }, 0, 12),
            call(good, 12, 24),
        ]),
        &[(0, |e| matches!(e, Error::InvalidLambda { .. }))],
    );
    // another λ, boundary or metric on one rank
    let other_lambda = Metric::SobolevH1 {
        lambda: 2.0,
        boundary: Boundary::Neumann,
    };
    let other_boundary = Metric::SobolevH1 {
        lambda: 1.0,
        boundary: Boundary::Periodic,
    };
    for other in [
        other_lambda,
        other_boundary,
        Metric::ReweightedH0 { lambda: 1.0 },
        Metric::H0,
    ] {
        all_failed(attempt(vec![call(good, 0, 12), call(other, 12, 24)]), &[]);
    }
    // another shape on one rank (same number of values)
    all_failed(
        attempt(vec![call(good, 0, 12), (good, vec![4, 6], 12, 12)]),
        &[],
    );
    // overlapping ranges, a gap, a range past the end, the same range twice
    all_failed(attempt(vec![call(good, 0, 13), call(good, 12, 24)]), &[]);
    all_failed(attempt(vec![call(good, 0, 11), call(good, 12, 24)]), &[]);
    all_failed(attempt(vec![call(good, 0, 12), call(good, 12, 20)]), &[]);
    all_failed(attempt(vec![call(good, 0, 24), call(good, 0, 24)]), &[]);
    all_failed(
        attempt(vec![call(good, 0, 12), (good, shape.to_vec(), 12, 13)]),
        &[(1, |e| matches!(e, Error::ShapeMismatch { .. }))],
    );
    // a rank-0 shape
    all_failed(
        attempt(vec![(good, vec![], 0, 0), (good, vec![], 0, 0)]),
        &[
            (0, |e| matches!(e, Error::AxisOutOfRange { .. })),
            (1, |e| matches!(e, Error::AxisOutOfRange { .. })),
        ],
    );
    // a row part whose other axes do not fit
    let outcome = on_ranks(2, |r, comm| {
        let cols = if r == 0 { 4 } else { 3 };
        let mut part = ndarray::Array2::<f64>::ones((3, cols));
        let res = smooth_rows(comm, &good, &shape, 3 * r, &mut part);
        assert!(part.iter().all(|&v| v == 1.0));
        res
    });
    all_failed(
        outcome,
        &[(1, |e| matches!(e, Error::ShapeMismatch { .. }))],
    );
    // f32 on one rank, f64 on the other
    let outcome = on_ranks(2, |r, comm| {
        if r == 0 {
            smooth_flat(comm, &good, &shape, 0, &mut [1.0_f64; 12])
        } else {
            smooth_flat(comm, &good, &shape, 12, &mut [1.0_f32; 12])
        }
    });
    all_failed(outcome, &[]);
}

#[test]
fn the_thread_communicator_reports_mismatched_slices_and_departed_ranks() {
    let outcome = on_ranks(3, |r, comm| {
        comm.all_gather(&vec![1.0; 2 + usize::from(r == 2)])
    });
    assert!(outcome
        .iter()
        .all(|res| matches!(res, Err(Error::Communication { .. }))));
    // Several rounds in a row keep their order.
    let outcome = on_ranks(4, |r, comm| {
        (0..50)
            .map(|round| comm.all_gather(&[(r * 100 + round) as f64]).unwrap())
            .collect::<Vec<_>>()
    });
    for rounds in &outcome {
        for (round, got) in rounds.iter().enumerate() {
            let expected: Vec<f64> = (0..4).map(|r| (r * 100 + round) as f64).collect();
            assert_eq!(got, &expected);
        }
    }
    // A rank that leaves makes the others' next gather fail instead of hanging.
    let mut group = ThreadCommunicator::group(2);
    let second = group.pop().unwrap();
    let first = group.pop().unwrap();
    let waiter = std::thread::spawn(move || first.all_gather(&[1.0]));
    drop(second);
    assert!(matches!(
        waiter.join().unwrap(),
        Err(Error::Communication { .. })
    ));
}

#[test]
fn one_rank_is_the_unsharded_path() {
    let g: Vec<f64> = (0..30).map(|k| ((k * 13) % 7) as f64 - 3.0).collect();
    for metric in metrics(0.8) {
        let got = sharded_flat(metric, &[10, 3], &g, &[(0, 30)]).unwrap();
        close(&got, &unsharded(metric, &[10, 3], &g), &g, F64_TOL).unwrap();
    }
    // empty tensors: nothing to do, still validated
    let got = sharded_flat(metrics(1.0)[0], &[0, 3], &[] as &[f64], &[(0, 0), (0, 0)]).unwrap();
    assert!(got.is_empty());
}

/// Shape, two gradients, inner cut points, λ, metric index, a scalar.
type Case = (Vec<usize>, Vec<f64>, Vec<f64>, Vec<usize>, f64, usize, f64);

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        1usize..30,
        1usize..6,
        1usize..=6,
        0usize..4,
        -3.0f64..6.0,
        -2.0f64..2.0,
    )
        .prop_flat_map(|(n, w, ranks, m, log_lambda, a)| {
            let total = n * w;
            (
                Just(vec![n, w]),
                proptest::collection::vec(-1.0f64..1.0, total),
                proptest::collection::vec(-1.0f64..1.0, total),
                proptest::collection::vec(0..=total, ranks - 1),
                Just(10f64.powf(log_lambda)),
                Just(m),
                Just(a),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn linear_and_equal_to_the_unsharded_result((shape, g, h, inner, lambda, m, a) in case_strategy()) {
        let metric = metrics(lambda)[m];
        let total = g.len();
        let mut cuts = inner.clone();
        cuts.push(0);
        cuts.push(total);
        cuts.sort_unstable();
        let order: Vec<usize> = (0..cuts.len() - 1).collect();
        let flat = ranges(&cuts, &order);
        let sg = sharded_flat(metric, &shape, &g, &flat).unwrap();
        let sh = sharded_flat(metric, &shape, &h, &flat).unwrap();
        let combo: Vec<f64> = g.iter().zip(&h).map(|(x, y)| a * x + y).collect();
        let sc = sharded_flat(metric, &shape, &combo, &flat).unwrap();
        let lin: Vec<f64> = sg.iter().zip(&sh).map(|(x, y)| a * x + y).collect();
        prop_assert!(close(&sc, &lin, &combo, 1e-11 * (1.0 + a.abs())).is_ok());
        prop_assert!(close(&sg, &unsharded(metric, &shape, &g), &g, F64_TOL).is_ok());
    }
}
