//! Property tests of the invariants every metric must keep, against plain dense references.

mod common;

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use common::{dense_apply, dense_operator, max_abs, max_abs_diff, reference_apply};
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;

fn boundary() -> impl Strategy<Value = Boundary> {
    prop_oneof![
        Just(Boundary::Neumann),
        Just(Boundary::Periodic),
        Just(Boundary::Dirichlet)
    ]
}

fn lambda() -> impl Strategy<Value = f64> {
    prop_oneof![3 => 0.0..4.0, 1 => 4.0..1e3, 1 => prop_oneof![Just(1e6), Just(1e9), Just(1e12)]]
}

fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![
        1 => Just(Metric::H0),
        2 => lambda().prop_map(|lambda| Metric::ReweightedH0 { lambda }),
        5 => (lambda(), boundary()).prop_map(|(lambda, boundary)| Metric::SobolevH1 { lambda, boundary }),
    ]
}

/// Tensors of rank 1 to 4 with small dimensions and entries in [−1, 1].
fn tensor() -> impl Strategy<Value = ArrayD<f64>> {
    prop::collection::vec(1usize..7, 1..5).prop_flat_map(|shape| {
        let len = shape.iter().product::<usize>();
        prop::collection::vec(-1.0f64..1.0, len)
            .prop_map(move |data| ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap())
    })
}

fn direction(ndim: usize) -> impl Strategy<Value = Direction> {
    prop_oneof![
        2 => Just(Direction::Output),
        1 => (0..ndim).prop_map(Direction::Axis),
        1 => Just(Direction::Flattened),
    ]
}

fn case() -> impl Strategy<Value = (ArrayD<f64>, ChannelDirected)> {
    (tensor(), metric()).prop_flat_map(|(g, metric)| {
        let ndim = g.ndim();
        (
            Just(g),
            direction(ndim).prop_map(move |d| ChannelDirected::new(metric, d)),
        )
    })
}

fn applied(g: &ArrayD<f64>, cd: &ChannelDirected) -> ArrayD<f64> {
    let mut x = g.clone();
    cd.apply(&mut x).unwrap();
    x
}

fn fiber_len(g: &ArrayD<f64>, cd: &ChannelDirected) -> usize {
    match cd.direction.axis(g.ndim()).unwrap() {
        Some(axis) => g.len_of(Axis(axis)),
        None => g.len(),
    }
}

/// The fibers of `t` as vectors, in the crate's order of directions.
fn fibers(t: &ArrayD<f64>, cd: &ChannelDirected) -> Vec<Vec<f64>> {
    match cd.direction.axis(t.ndim()).unwrap() {
        Some(axis) => t
            .lanes(Axis(axis))
            .into_iter()
            .map(|l| l.to_vec())
            .collect(),
        None => vec![t.iter().copied().collect()],
    }
}

/// Rounding error allowed for a solve with condition number ≤ 1 + 4λ.
fn tolerance(cd: &ChannelDirected, scale: f64) -> f64 {
    1e-13 * (1.0 + 4.0 * cd.metric.lambda()) * scale.max(1e-300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_a_dense_solve((g, cd) in case()) {
        let x = applied(&g, &cd);
        let expected = reference_apply(&g, &cd.metric, cd.direction);
        prop_assert!(max_abs_diff(&x, &expected) <= tolerance(&cd, max_abs(g.iter().copied())));
    }

    #[test]
    fn residual_is_at_rounding_level((g, cd) in case()) {
        let x = applied(&g, &cd);
        let a = dense_operator(&cd.metric, fiber_len(&g, &cd));
        for (gf, xf) in fibers(&g, &cd).iter().zip(fibers(&x, &cd)) {
            let ax = dense_apply(&a, &xf);
            let residual = max_abs(ax.iter().zip(gf).map(|(a, g)| a - g));
            let scale = max_abs(gf.iter().copied()) + (1.0 + 4.0 * cd.metric.lambda()) * max_abs(xf.iter().copied());
            prop_assert!(residual <= 1e-14 * scale.max(1e-300), "residual {residual:e} vs scale {scale:e}");
        }
    }

    #[test]
    fn is_a_descent_direction_that_never_grows((g, cd) in case()) {
        let x = applied(&g, &cd);
        let g_norm2: f64 = g.iter().map(|v| v * v).sum();
        let inner: f64 = g.iter().zip(&x).map(|(a, b)| a * b).sum();
        let x_norm2: f64 = x.iter().map(|v| v * v).sum();
        if g_norm2 > 0.0 {
            prop_assert!(inner > 0.0, "<g, Pg> = {inner:e}");
        }
        prop_assert!(x_norm2.sqrt() <= g_norm2.sqrt() * (1.0 + 1e-12));
    }

    #[test]
    fn keeps_fiber_means_where_the_operator_does((g, cd) in case()) {
        let keeps_mean = match cd.metric {
            Metric::H0 | Metric::ReweightedH0 { .. } => true,
            Metric::SobolevH1 { boundary, .. } => boundary != Boundary::Dirichlet,
        };
        prop_assume!(keeps_mean);
        let x = applied(&g, &cd);
        for (gf, xf) in fibers(&g, &cd).iter().zip(fibers(&x, &cd)) {
            let (gm, xm) = (gf.iter().sum::<f64>() / gf.len() as f64, xf.iter().sum::<f64>() / xf.len() as f64);
            prop_assert!((gm - xm).abs() <= tolerance(&cd, max_abs(gf.iter().copied())), "mean {gm} became {xm}");
        }
    }

    #[test]
    fn is_linear((g, cd) in case(), seed in 0u64..1000, a in -3.0f64..3.0, b in -3.0f64..3.0) {
        let h = g.mapv(|v| (v * 7919.0 + seed as f64).sin());
        let combined = applied(&(&g * a + &h * b), &cd);
        let separate = applied(&g, &cd) * a + applied(&h, &cd) * b;
        let scale = (a.abs() + b.abs()) * max_abs(g.iter().chain(h.iter()).copied());
        prop_assert!(max_abs_diff(&combined, &separate) <= 4.0 * tolerance(&cd, scale));
    }

    #[test]
    fn lambda_zero_is_exactly_the_identity(g in tensor(), boundary in boundary(), reweighted in any::<bool>()) {
        let metric = if reweighted {
            Metric::ReweightedH0 { lambda: 0.0 }
        } else {
            Metric::SobolevH1 { lambda: 0.0, boundary }
        };
        for direction in [Direction::Output, Direction::Flattened] {
            prop_assert_eq!(applied(&g, &ChannelDirected::new(metric, direction)), g.clone());
        }
    }

    #[test]
    fn huge_lambda_tends_to_the_fiber_mean((g, cd) in case()) {
        let metric = match cd.metric {
            Metric::H0 => return Ok(()),
            Metric::ReweightedH0 { .. } => Metric::ReweightedH0 { lambda: 1e12 },
            Metric::SobolevH1 { boundary, .. } => Metric::SobolevH1 { lambda: 1e12, boundary },
        };
        let cd = ChannelDirected::new(metric, cd.direction);
        let x = applied(&g, &cd);
        for (gf, xf) in fibers(&g, &cd).iter().zip(fibers(&x, &cd)) {
            let limit = match metric {
                Metric::SobolevH1 { boundary: Boundary::Dirichlet, .. } => 0.0,
                _ => gf.iter().sum::<f64>() / gf.len() as f64,
            };
            // The distance to the limit decays like n²/λ; allow rounding at cond = 4·10¹² too.
            let allowed = 1e-2 * max_abs(gf.iter().copied()) + 1e-6;
            prop_assert!(xf.iter().all(|&v| (v - limit).abs() <= allowed), "{xf:?} vs {limit}");
        }
    }

    #[test]
    fn commutes_with_reversing_the_fibers((g, cd) in case()) {
        let Some(axis) = cd.direction.axis(g.ndim()).unwrap() else { return Ok(()) };
        let mut reversed = g.clone();
        reversed.invert_axis(Axis(axis));
        let reversed = reversed.as_standard_layout().into_owned();
        let mut x = applied(&reversed, &cd);
        x.invert_axis(Axis(axis));
        prop_assert!(max_abs_diff(&x, &applied(&g, &cd)) <= tolerance(&cd, max_abs(g.iter().copied())));
    }

    #[test]
    fn does_not_depend_on_memory_layout((g, cd) in case(), perm_seed in any::<u64>(), flip in any::<u8>()) {
        let expected = applied(&g, &cd);
        // The same logical tensor stored in a permuted order, then viewed back with some axes reversed.
        let ndim = g.ndim();
        let mut order: Vec<usize> = (0..ndim).collect();
        let mut s = perm_seed;
        for i in (1..ndim).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut inverse = vec![0; ndim];
        for (i, &o) in order.iter().enumerate() {
            inverse[o] = i;
        }
        let mut flipped = g.clone();
        for ax in 0..ndim {
            if flip >> ax & 1 == 1 {
                flipped.invert_axis(Axis(ax));
            }
        }
        let mut storage = flipped.permuted_axes(order.clone()).as_standard_layout().into_owned();
        {
            let mut view = storage.view_mut().permuted_axes(inverse);
            for ax in 0..ndim {
                if flip >> ax & 1 == 1 {
                    view.invert_axis(Axis(ax));
                }
            }
            prop_assert_eq!(&view, &g);
            cd.apply(&mut view).unwrap();
            prop_assert!(max_abs_diff(&view.to_owned(), &expected) <= tolerance(&cd, max_abs(g.iter().copied())));
        }
        // And a strided view: every other element of a larger buffer.
        let mut wide = ArrayD::<f64>::zeros(g.shape().iter().map(|&d| 2 * d).collect::<Vec<_>>());
        let mut strided = wide.slice_each_axis_mut(|_| ndarray::Slice::new(0, None, 2));
        strided.assign(&g);
        cd.apply(&mut strided).unwrap();
        prop_assert!(max_abs_diff(&strided.to_owned(), &expected) <= tolerance(&cd, max_abs(g.iter().copied())));
        let untouched = wide.slice_each_axis(|_| ndarray::Slice::new(1, None, 2));
        prop_assert!(untouched.iter().all(|&v| v == 0.0), "wrote outside the view");
    }

    #[test]
    fn f32_agrees_with_f64((g, cd) in case()) {
        let n = fiber_len(&g, &cd);
        prop_assume!(n <= 64);
        let g32 = g.mapv(|v| v as f32);
        let mut x32 = g32.clone();
        cd.apply(&mut x32).unwrap();
        let x64 = applied(&g32.mapv(f64::from), &cd);
        let err = x32.iter().zip(&x64).fold(0.0_f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
        prop_assert!(err <= 1e-6 * max_abs(g.iter().copied()).max(1e-30), "f32 off by {err:e}");
    }
}
