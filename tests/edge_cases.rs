//! Small cases with closed forms, block edges, and bad input.

mod common;

use chandir::{precondition, Boundary, ChannelDirected, Direction, Error, Metric, Preconditioner};
use common::metrics::smoothing_metrics;
use common::{max_abs, max_abs_diff, reference_apply};
use ndarray::{arr1, Array, Array1, Array4, ArrayD, Axis, IxDyn};

fn sobolev(lambda: f64, boundary: Boundary) -> Metric {
    Metric::SobolevH1 { lambda, boundary }
}

fn pseudo_random(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut x = seed;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

#[test]
fn length_one_fibers_are_the_identity_except_dirichlet() {
    let g = arr1(&[3.0_f64]);
    for metric in [
        Metric::H0,
        Metric::ReweightedH0 { lambda: 5.0 },
        sobolev(5.0, Boundary::Neumann),
        sobolev(5.0, Boundary::Periodic),
    ] {
        let mut x = g.clone();
        ChannelDirected::new(metric, Direction::Output)
            .apply(&mut x)
            .unwrap();
        assert_eq!(x, g, "{metric:?}");
    }
    let mut x = g.clone();
    ChannelDirected::new(sobolev(5.0, Boundary::Dirichlet), Direction::Output)
        .apply(&mut x)
        .unwrap();
    assert!(
        (x[0] - 3.0 / 11.0).abs() < 1e-15,
        "L = [2] scales by 1/(1 + 2λ)"
    );
}

#[test]
fn length_two_fibers_match_their_closed_forms() {
    // On n = 2 every operator is diagonal in the basis (mean, half-difference).
    let (a, b, lambda) = (1.0_f64, -2.0_f64, 1.5_f64);
    let (mean, dev) = ((a + b) / 2.0, (a - b) / 2.0);
    let cases = [
        (Metric::ReweightedH0 { lambda }, mean, dev / (1.0 + lambda)),
        (
            sobolev(lambda, Boundary::Neumann),
            mean,
            dev / (1.0 + 2.0 * lambda),
        ),
        (
            sobolev(lambda, Boundary::Periodic),
            mean,
            dev / (1.0 + 4.0 * lambda),
        ),
        (
            sobolev(lambda, Boundary::Dirichlet),
            mean / (1.0 + lambda),
            dev / (1.0 + 3.0 * lambda),
        ),
    ];
    for (metric, m, d) in cases {
        let mut x = arr1(&[a, b]);
        ChannelDirected::new(metric, Direction::Output)
            .apply(&mut x)
            .unwrap();
        assert!(
            (x[0] - (m + d)).abs() < 1e-15 && (x[1] - (m - d)).abs() < 1e-15,
            "{metric:?}: {x}"
        );
    }
}

#[test]
fn empty_tensors_are_a_no_op() {
    let mut g = ArrayD::<f32>::zeros(vec![0, 3, 3, 3]);
    precondition(&mut g, 1.0).unwrap();
    let mut g = ArrayD::<f32>::zeros(vec![4, 0]);
    ChannelDirected::new(Metric::default(), Direction::Flattened)
        .apply(&mut g)
        .unwrap();
    ChannelDirected::new(Metric::default(), Direction::Input)
        .apply(&mut g)
        .unwrap();
}

#[test]
fn rank_one_and_rank_zero_tensors() {
    let mut bias = Array1::from_vec(vec![1.0_f64, 0.0, 0.0]);
    precondition(&mut bias, 1.0).unwrap();
    let expected = [5.0 / 8.0, 2.0 / 8.0, 1.0 / 8.0]; // first column of [[2,-1,0],[-1,3,-1],[0,-1,2]]⁻¹
    assert!(
        bias.iter()
            .zip(expected)
            .all(|(x, e)| (x - e).abs() < 1e-15),
        "{bias}"
    );

    let mut scalar = Array::from_elem((), 2.0_f64);
    assert_eq!(
        precondition(&mut scalar, 1.0),
        Err(Error::AxisOutOfRange { axis: 0, ndim: 0 })
    );
    ChannelDirected::new(Metric::default(), Direction::Flattened)
        .apply(&mut scalar)
        .unwrap();
    assert_eq!(scalar[()], 2.0);
}

#[test]
fn bad_input_is_refused_and_leaves_the_tensor_untouched() {
    let original = pseudo_random(&[6, 4, 3, 3], 1);
    for lambda in [
        -1.0,
        -0.0 - f64::MIN_POSITIVE,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let mut g = original.clone();
        let err = precondition(&mut g, lambda).unwrap_err();
        assert!(
            matches!(err, Error::InvalidLambda { .. }),
            "{lambda}: {err}"
        );
        assert_eq!(g, original);
        let mut g = original.clone();
        let err = ChannelDirected::new(Metric::ReweightedH0 { lambda }, Direction::Output)
            .apply(&mut g)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidLambda { .. }));
        assert_eq!(g, original);
    }
    let mut g = original.clone();
    let err = ChannelDirected::new(Metric::default(), Direction::Axis(4))
        .apply(&mut g)
        .unwrap_err();
    assert_eq!(err, Error::AxisOutOfRange { axis: 4, ndim: 4 });
    assert_eq!(
        err.to_string(),
        "axis 4 is out of range for a tensor of rank 4"
    );
    assert_eq!(g, original);
    let mut bias = Array1::<f64>::ones(3);
    let err = ChannelDirected::new(Metric::default(), Direction::Input)
        .apply(&mut bias)
        .unwrap_err();
    assert_eq!(err, Error::AxisOutOfRange { axis: 1, ndim: 1 });
    // Invalid input is refused even when there is nothing to do.
    let mut empty = ArrayD::<f64>::zeros(vec![0, 3]);
    assert!(precondition(&mut empty, f64::NAN).is_err());
}

#[test]
fn a_non_finite_gradient_stays_in_its_own_fibers() {
    for metric in smoothing_metrics(2.0) {
        for direction in [Direction::Output, Direction::Input, Direction::Axis(3)] {
            for poison in [f64::NAN, f64::INFINITY] {
                let cd = ChannelDirected::new(metric, direction);
                let clean = pseudo_random(&[9, 5, 3, 4], 2)
                    .into_dimensionality::<ndarray::Ix4>()
                    .unwrap();
                let mut g = clean.clone();
                g[[4, 2, 1, 3]] = poison;
                cd.apply(&mut g).unwrap();
                let mut expected = clean.clone();
                cd.apply(&mut expected).unwrap();
                let axis = cd.direction.axis(4).unwrap().unwrap();
                for ((ix, &x), &e) in g.indexed_iter().zip(&expected) {
                    let mut same_fiber = true;
                    for (d, (i, p)) in [ix.0, ix.1, ix.2, ix.3]
                        .into_iter()
                        .zip([4, 2, 1, 3])
                        .enumerate()
                    {
                        same_fiber &= d == axis || i == p;
                    }
                    if !same_fiber {
                        assert_eq!(x, e, "{metric:?} {direction:?}: {poison} leaked to {ix:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn block_edges_long_fibers_and_odd_widths() {
    // n larger than a block's worth of columns, widths that are not multiples of the block or of 8,
    // tiny n with very wide rows, and the packed path (input axis with a short contiguous run).
    let shapes: [(&[usize], Direction); 7] = [
        (&[700, 93], Direction::Output),
        (&[300, 2, 1], Direction::Output),
        (&[2, 2051], Direction::Output),
        (&[3, 17, 5], Direction::Output),
        (&[13, 300, 1, 1], Direction::Input),
        (&[7, 40, 3], Direction::Axis(1)),
        (&[45, 19], Direction::Flattened),
    ];
    let metrics = [
        Metric::ReweightedH0 { lambda: 0.7 },
        sobolev(0.7, Boundary::Neumann),
        sobolev(30.0, Boundary::Periodic),
        sobolev(0.7, Boundary::Dirichlet),
    ];
    for (shape, direction) in shapes {
        let g = pseudo_random(shape, 3);
        for metric in metrics {
            let cd = ChannelDirected::new(metric, direction);
            let mut x = g.clone();
            cd.apply(&mut x).unwrap();
            let expected = reference_apply(&g, &metric, direction);
            let err = max_abs_diff(&x, &expected);
            assert!(
                err <= 1e-12 * (1.0 + 4.0 * metric.lambda()) * max_abs(g.iter().copied()),
                "{shape:?} {metric:?}: {err:e}"
            );
            let mut x32 = g.mapv(|v| v as f32);
            cd.apply(&mut x32).unwrap();
            let err32 = x32
                .iter()
                .zip(&expected)
                .fold(0.0_f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
            assert!(err32 <= 1e-6, "{shape:?} {metric:?} f32: {err32:e}");
        }
    }
}

#[test]
fn periodic_stays_accurate_for_huge_lambda() {
    let g = pseudo_random(&[37, 11], 4);
    for lambda in [1e6, 1e9, 1e12, 1e14] {
        let metric = sobolev(lambda, Boundary::Periodic);
        let mut x = g.clone();
        ChannelDirected::new(metric, Direction::Output)
            .apply(&mut x)
            .unwrap();
        let a = common::dense_operator(&metric, 37);
        for (gf, xf) in g.lanes(Axis(0)).into_iter().zip(x.lanes(Axis(0))) {
            let ax = common::dense_apply(&a, &xf.to_vec());
            let residual = max_abs(ax.iter().zip(gf).map(|(a, g)| a - g));
            assert!(
                residual <= 1e-14 * 4.0 * lambda * max_abs(xf.iter().copied()),
                "λ = {lambda:e}: residual {residual:e}"
            );
            let mean_g = gf.sum() / 37.0;
            let mean_x = xf.sum() / 37.0;
            assert!(
                (mean_g - mean_x).abs() <= 1e-15 * 4.0 * lambda,
                "λ = {lambda:e}: mean {mean_g} became {mean_x}"
            );
        }
    }
}

#[test]
fn flattened_follows_logical_order_on_any_layout() {
    let g = pseudo_random(&[6, 5, 4], 5);
    let cd = ChannelDirected::new(sobolev(3.0, Boundary::Periodic), Direction::Flattened);
    let expected = reference_apply(&g, &cd.metric, cd.direction);
    // A transposed copy viewed back in the original logical order: not contiguous.
    let mut storage = g
        .clone()
        .permuted_axes(vec![2, 0, 1])
        .as_standard_layout()
        .into_owned();
    let mut view = storage.view_mut().permuted_axes(vec![1, 2, 0]);
    assert!(view.as_slice().is_none());
    cd.apply(&mut view).unwrap();
    assert!(max_abs_diff(&view.to_owned(), &expected) <= 1e-12);
}

#[test]
fn works_through_a_trait_object_and_for_every_rank() {
    let boxed: Vec<Box<dyn Preconditioner<f64>>> = vec![
        Box::new(ChannelDirected::sobolev(1.0)),
        Box::new(ChannelDirected::new(
            Metric::ReweightedH0 { lambda: 1.0 },
            Direction::Input,
        )),
    ];
    for rank in 2..=6 {
        let shape: Vec<usize> = (0..rank).map(|d| 2 + d % 3).collect();
        let g = pseudo_random(&shape, rank as u64);
        for (p, direction) in boxed.iter().zip([Direction::Output, Direction::Input]) {
            let mut x = g.clone();
            p.precondition(x.view_mut()).unwrap();
            let metric = if direction == Direction::Output {
                Metric::default()
            } else {
                Metric::ReweightedH0 { lambda: 1.0 }
            };
            assert!(max_abs_diff(&x, &reference_apply(&g, &metric, direction)) <= 1e-13);
        }
    }
}

#[test]
fn hwio_and_transposed_layouts_match_oihw() {
    // The same weight stored OIHW and HWIO (as TensorFlow does): smoothing the O axis agrees.
    let oihw = pseudo_random(&[8, 3, 3, 3], 6)
        .into_dimensionality::<ndarray::Ix4>()
        .unwrap();
    let mut hwio: Array4<f64> = oihw
        .clone()
        .permuted_axes([2, 3, 1, 0])
        .as_standard_layout()
        .into_owned();
    let mut expected = oihw.clone();
    precondition(&mut expected, 2.0).unwrap();
    ChannelDirected::new(
        Metric::SobolevH1 {
            lambda: 2.0,
            boundary: Boundary::Neumann,
        },
        Direction::Axis(3),
    )
    .apply(&mut hwio)
    .unwrap();
    let back = hwio.permuted_axes([3, 2, 0, 1]);
    assert!(back
        .iter()
        .zip(expected.iter())
        .all(|(a, b)| (a - b).abs() < 1e-14));
}

/// `A x` by the stencil of each operator, straight from the definitions, in O(n).
fn apply_operator(metric: &Metric, x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    (0..n)
        .map(|i| match *metric {
            Metric::H0 => x[i],
            Metric::ReweightedH0 { lambda } => x[i] + lambda * (x[i] - mean),
            Metric::SobolevH1 { lambda, boundary } => {
                let (left, right) = match boundary {
                    Boundary::Neumann => (
                        i.checked_sub(1).map(|j| x[j]).unwrap_or(x[i]),
                        x.get(i + 1).copied().unwrap_or(x[i]),
                    ),
                    Boundary::Dirichlet => (
                        i.checked_sub(1).map(|j| x[j]).unwrap_or(0.0),
                        x.get(i + 1).copied().unwrap_or(0.0),
                    ),
                    Boundary::Periodic => (x[(i + n - 1) % n], x[(i + 1) % n]),
                };
                x[i] + lambda * (2.0 * x[i] - left - right)
            }
        })
        .collect()
}

#[test]
fn fibers_longer_than_a_block_has_room_for() {
    // 6000 rows of f64 exceed the block budget even at the minimum of 8 columns.
    let g = pseudo_random(&[6000, 11], 7);
    for metric in smoothing_metrics(3.0) {
        let mut x = g.clone();
        ChannelDirected::new(metric, Direction::Output)
            .apply(&mut x)
            .unwrap();
        for (gf, xf) in g.lanes(Axis(0)).into_iter().zip(x.lanes(Axis(0))) {
            let ax = apply_operator(&metric, &xf.to_vec());
            let residual = max_abs(ax.iter().zip(gf).map(|(a, g)| a - g));
            assert!(residual <= 1e-13, "{metric:?}: residual {residual:e}");
        }
    }
}

#[test]
fn threads_do_not_change_the_result() {
    // Large enough to be split (> 2·2¹⁶ values), in the in-place, packed and permuted paths.
    let cases: [(&[usize], Direction); 4] = [
        (&[256, 64, 3, 3], Direction::Output),
        (&[256, 64, 3, 3], Direction::Input),
        (&[300, 501], Direction::Input),
        (&[5, 7, 48, 96], Direction::Axis(2)),
    ];
    let pools: Vec<rayon::ThreadPool> = [1, 2, 4]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    for (shape, direction) in cases {
        let g = pseudo_random(shape, 11);
        for metric in [
            sobolev(1.0, Boundary::Neumann),
            sobolev(1.0, Boundary::Periodic),
            Metric::ReweightedH0 { lambda: 1.0 },
        ] {
            let cd = ChannelDirected::new(metric, direction);
            let mut single = g.clone();
            cd.with_threading(chandir::Threading::Single)
                .apply(&mut single)
                .unwrap();
            assert!(max_abs_diff(&single, &reference_apply(&g, &metric, direction)) <= 1e-13);
            for pool in &pools {
                let mut x = g.clone();
                pool.install(|| cd.apply(&mut x)).unwrap();
                assert_eq!(
                    x,
                    single,
                    "{shape:?} {metric:?} with {} threads",
                    pool.current_num_threads()
                );
            }
        }
    }
}
