//! Every finite input gets a finite, exact answer: extreme λ (up to `f64::MAX`), values near the
//! largest float, long `f32` fibers, and any view of the same logical tensor (bitwise).
//!
//! The references are independent of the kernels: exact rational solves for short fibers and
//! spectral (DCT/DST/DFT) solves in `f64` for long ones (`tests/common/exact.rs`).

mod common;

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use common::exact::{exact_error, exact_solve, spectral_solve};
use common::metrics::smoothing_metrics as metrics;
use ndarray::{s, Array1, ArrayD, IxDyn};
use proptest::prelude::*;

const UNIT: f64 = f64::EPSILON / 2.0; // 2⁻⁵³

/// The stated bound for `f64`: `|x̂ − x| ≤ (4n + 16)·2⁻⁵³·max|g|`, plus a few subnormal spacings.
fn f64_bound(n: usize, max_g: f64) -> f64 {
    (4 * n + 16) as f64 * UNIT * max_g + 64.0 * f64::from_bits(1)
}

fn apply<T: chandir::Element>(metric: Metric, g: &[T]) -> Vec<T> {
    let mut a = Array1::from(g.to_vec());
    ChannelDirected::new(metric, Direction::Output)
        .apply(&mut a)
        .unwrap();
    a.to_vec()
}

fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            scale * ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

const LAMBDAS: [f64; 12] = [
    5e-324,
    1e-300,
    1e-8,
    0.3,
    1.0,
    1e6,
    1e10,
    1e15,
    1e16,
    1e100,
    1e300,
    f64::MAX,
];

#[test]
fn f64_error_bound_does_not_grow_with_lambda() {
    for n in [1, 2, 3, 4, 5, 8, 13] {
        for (seed, g) in [
            values(n, 1, 1.0),
            values(n, 2, 1e-300),
            values(n, 3, 1e300),
            vec![1.0; n],
            (0..n).map(|i| (i == 0) as u8 as f64).collect(),
        ]
        .into_iter()
        .enumerate()
        {
            for lambda in LAMBDAS {
                for metric in metrics(lambda) {
                    let x = apply(metric, &g);
                    let err = exact_error(&x, &exact_solve(&metric, &g));
                    let bound = f64_bound(n, max_abs(&g));
                    assert!(
                        err <= bound,
                        "{metric:?} n = {n} input {seed}: error {err:e} > bound {bound:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn long_fibers_stay_within_the_bounds_for_every_lambda() {
    for n in [1, 2, 3, 5, 64, 1000, 4096] {
        let g: Vec<f64> = values(n, n as u64, 3.0)
            .into_iter()
            .map(|v| v as f32 as f64)
            .collect();
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        let lambdas: &[f64] = if n > 1000 {
            &[0.5, 1e8, 1e300, f64::MAX]
        } else {
            &LAMBDAS
        };
        for &lambda in lambdas {
            for metric in metrics(lambda) {
                let x: Vec<f64> = apply(metric, &g32).iter().map(|&v| v as f64).collect();
                let reference = spectral_solve(&metric, &g);
                let err = x
                    .iter()
                    .zip(&reference)
                    .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= 1e-5 * max_abs(&g),
                    "{metric:?} n = {n}: f32 error {err:e}"
                );
                // f64 on the same input: the stated bound, plus the spectral reference's own
                // rounding (sums of n terms).
                let x64 = apply(metric, &g);
                let err64 = x64
                    .iter()
                    .zip(&reference)
                    .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
                let tolerance = f64_bound(n, max_abs(&g)) + 4.0 * n as f64 * UNIT * max_abs(&g);
                assert!(
                    err64 <= tolerance,
                    "{metric:?} n = {n}: f64 error {err64:e} > {tolerance:e}"
                );
            }
        }
    }
}

#[test]
fn huge_lambda_regressions() {
    // λ = 1e16 used to give [inf, inf, inf]; the answer is the mean up to O(1/λ).
    let x = apply(Metric::default_with(1e16), &[1.0_f64, 2.0, 3.0]);
    assert!(x.iter().all(|&v| (v - 2.0).abs() < 1e-14), "{x:?}");
    // Periodic gave NaN from λ ≈ 5e15 and was 1 % off at 1e14.
    for lambda in [1e14, 5e15, 1e16, 1e300, f64::MAX] {
        let metric = Metric::SobolevH1 {
            lambda,
            boundary: Boundary::Periodic,
        };
        let g = [1.0_f64, 2.0, 3.0];
        let err = exact_error(&apply(metric, &g), &exact_solve(&metric, &g));
        assert!(err <= f64_bound(3, 3.0), "λ = {lambda:e}: error {err:e}");
    }
    // λ → ∞: the mean for Neumann, periodic and re-weighted H0; 0 for Dirichlet.
    for metric in metrics(f64::MAX) {
        let x = apply(metric, &[4.0_f64, -1.0, 0.0, 1.0]);
        let limit = match metric {
            Metric::SobolevH1 {
                boundary: Boundary::Dirichlet,
                ..
            } => 0.0,
            _ => 1.0,
        };
        assert!(
            x.iter().all(|&v| (v - limit).abs() <= 1e-15),
            "{metric:?}: {x:?}"
        );
    }
}

#[test]
fn long_f32_constant_fibers_stay_constant() {
    // Drifted by 1.6e-4 and 2.7e-5: the carry was re-read from f32 storage at every row.
    for (n, lambda) in [(65_537, 1e8), (10_000, 1e6), (10_000, 1e300), (4096, 1e12)] {
        for metric in metrics(lambda) {
            let limit = match metric {
                Metric::SobolevH1 {
                    boundary: Boundary::Dirichlet,
                    ..
                } => continue,
                _ => 1.0_f32,
            };
            for direction in [Direction::Output, Direction::Flattened] {
                let mut a = Array1::<f32>::from_elem(n, 1.0);
                ChannelDirected::new(metric, direction)
                    .apply(&mut a)
                    .unwrap();
                let drift = a.iter().fold(0.0_f32, |m, &v| m.max((v - limit).abs()));
                assert!(
                    drift <= 1e-6,
                    "{metric:?} {direction:?} n = {n}: drift {drift:e}"
                );
            }
        }
    }
}

trait DefaultWith {
    fn default_with(lambda: f64) -> Metric;
}
impl DefaultWith for Metric {
    fn default_with(lambda: f64) -> Metric {
        Metric::SobolevH1 {
            lambda,
            boundary: Boundary::Neumann,
        }
    }
}

#[test]
fn values_near_the_largest_float_stay_finite_and_in_range() {
    // [f32::MAX; 3] periodic gave [NaN, NaN, inf]; [1e308; 3] periodic NaN; [1e308, 1e308]
    // re-weighted inf; [f64::MAX; 3] Neumann [inf, inf, MAX].
    for lambda in [1.0, 1e-8, 1e8, f64::MAX] {
        for metric in metrics(lambda) {
            for n in [2, 3, 7, 5000] {
                for direction in [Direction::Output, Direction::Flattened] {
                    let cd = ChannelDirected::new(metric, direction);
                    let mut a = Array1::<f32>::from_elem(n, f32::MAX);
                    cd.apply(&mut a).unwrap();
                    assert!(a.iter().all(|v| v.is_finite()), "{metric:?} n {n}: {a:?}");
                    for big in [1e308, f64::MAX, -f64::MAX] {
                        let mut a = Array1::<f64>::from_elem(n, big);
                        cd.apply(&mut a).unwrap();
                        assert!(a.iter().all(|v| v.is_finite()), "{metric:?} {big:e}: {a:?}");
                        assert!(a
                            .iter()
                            .all(|v| v.abs() <= big.abs() * (1.0 + f64_bound(n, 1.0))));
                    }
                    let mut a =
                        Array1::from_shape_fn(n, |i| if i % 2 == 0 { f64::MAX } else { -f64::MAX });
                    cd.apply(&mut a).unwrap();
                    assert!(
                        a.iter().all(|v| v.is_finite()),
                        "{metric:?} alternating: {a:?}"
                    );
                }
            }
        }
    }
    // Exact values at the edge: constants pass through the mean-keeping operators unchanged.
    let x = apply(Metric::default_with(1.0), &[f64::MAX; 3]);
    assert_eq!(x, [f64::MAX; 3]);
}

#[test]
fn a_reversed_view_gives_bitwise_the_same_result() {
    // [0.1, 0.2] directly and [0.2, 0.1] through s![..;-1] differed in the last bit.
    for lambda in [1.0, 1e6, 1e300] {
        for metric in metrics(lambda) {
            let cd = ChannelDirected::new(metric, Direction::Output);
            let mut direct = ndarray::array![0.1_f32, 0.2, 0.7];
            cd.apply(&mut direct).unwrap();
            let mut memory = ndarray::array![0.7_f32, 0.2, 0.1];
            cd.apply(&mut memory.slice_mut(s![..;-1])).unwrap();
            let reversed: Vec<u32> = memory.iter().rev().map(|v| v.to_bits()).collect();
            let expected: Vec<u32> = direct.iter().map(|v| v.to_bits()).collect();
            assert_eq!(reversed, expected, "{metric:?}");
        }
    }
}

// ---- properties ----

fn any_lambda() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (-300.0_f64..308.0).prop_map(|e| 10f64.powf(e).min(f64::MAX)),
        1 => Just(f64::MAX),
        1 => Just(0.0),
    ]
}

fn any_metric() -> impl Strategy<Value = Metric> {
    (any_lambda(), 0..4usize).prop_map(|(lambda, k)| metrics(lambda)[k])
}

/// `[lo, hi]` every output value of a fiber lies in: between the fiber's min and max, and for
/// Dirichlet (whose rows of `A⁻¹` sum to less than one) also towards zero.
fn range(metric: &Metric, fiber: &[f64]) -> (f64, f64) {
    let lo = fiber.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = fiber.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match metric {
        Metric::SobolevH1 {
            boundary: Boundary::Dirichlet,
            ..
        } => (lo.min(0.0), hi.max(0.0)),
        _ => (lo, hi),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The error against an exact rational solve stays within the bound for any λ and any scale.
    #[test]
    fn error_is_bounded_for_any_lambda_and_scale(
        n in 1usize..10,
        metric in any_metric(),
        exponent in -300.0_f64..300.0,
        seed in any::<u64>(),
    ) {
        let g = values(n, seed, 10f64.powf(exponent));
        let err = exact_error(&apply(metric, &g), &exact_solve(&metric, &g));
        prop_assert!(err <= f64_bound(n, max_abs(&g)), "error {err:e}");
        // f32 storage: within 1e-5·max|g| of the exact answer for its own (f32) input.
        let g32: Vec<f32> = values(n, seed, 10f64.powf(exponent / 10.0)).iter().map(|&v| v as f32).collect();
        let g32_exact: Vec<f64> = g32.iter().map(|&v| v as f64).collect();
        let x32: Vec<f64> = apply(metric, &g32).iter().map(|&v| v as f64).collect();
        let err32 = exact_error(&x32, &exact_solve(&metric, &g32_exact));
        prop_assert!(err32 <= 1e-5 * max_abs(&g32_exact) + 1e-44, "f32 error {err32:e}");
    }

    /// Discrete maximum principle: every output lies between the min and max of its input fiber
    /// (and 0 for Dirichlet), up to rounding, for every finite input, however large.
    #[test]
    fn outputs_stay_between_the_fiber_extremes(
        metric in any_metric(),
        shape in (1usize..9, 1usize..5),
        exponent in prop_oneof![Just(308.25_f64), -300.0_f64..308.0],
        seed in any::<u64>(),
    ) {
        let (n, w) = shape;
        let scale = 10f64.powf(exponent).min(f64::MAX);
        let g = ArrayD::from_shape_vec(IxDyn(&[n, w]), values(n * w, seed, scale)).unwrap();
        let mut x = g.clone();
        ChannelDirected::new(metric, Direction::Output).apply(&mut x).unwrap();
        for (gc, xc) in g.columns().into_iter().zip(x.columns()) {
            let fiber: Vec<f64> = gc.to_vec();
            let (lo, hi) = range(&metric, &fiber);
            let tol = f64_bound(n, max_abs(&fiber));
            for &v in xc {
                prop_assert!(v.is_finite());
                prop_assert!(v >= lo - tol && v <= hi + tol, "{v:e} outside [{lo:e}, {hi:e}]");
            }
        }
        // f32 near its largest value.
        let g32 = g.mapv(|v| (v / scale * f32::MAX as f64 * 0.999) as f32);
        let mut x32 = g32.clone();
        ChannelDirected::new(metric, Direction::Output).apply(&mut x32).unwrap();
        for (gc, xc) in g32.columns().into_iter().zip(x32.columns()) {
            let fiber: Vec<f64> = gc.iter().map(|&v| v as f64).collect();
            let (lo, hi) = range(&metric, &fiber);
            let tol = 1e-6 * max_abs(&fiber);
            for &v in xc {
                prop_assert!(v.is_finite());
                prop_assert!((v as f64) >= lo - tol && (v as f64) <= hi + tol);
            }
        }
    }

    /// Bitwise the same result for every view of the same logical tensor: permuted memory order,
    /// reversed axes (negative strides), stepped slices of a larger array.
    #[test]
    fn every_view_of_a_tensor_gives_bitwise_the_same_result(
        shape in prop::collection::vec(1usize..6, 1..5),
        metric in any_metric(),
        axis_pick in any::<usize>(),
        flattened in proptest::bool::weighted(0.15),
        perm_seed in any::<u64>(),
        flips in any::<u8>(),
        seed in any::<u64>(),
    ) {
        let ndim = shape.len();
        let direction = if flattened { Direction::Flattened } else { Direction::Axis(axis_pick % ndim) };
        let cd = ChannelDirected::new(metric, direction);
        let logical = ArrayD::from_shape_vec(IxDyn(&shape), values(shape.iter().product(), seed, 2.0))
            .unwrap()
            .mapv(|v| v as f32);
        let mut expected = logical.clone();
        cd.apply(&mut expected).unwrap();

        // Memory in a permuted order, some axes reversed, inside a larger array with step 2.
        let mut perm: Vec<usize> = (0..ndim).collect();
        let mut state = perm_seed | 1;
        for i in (1..ndim).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (state >> 33) as usize % (i + 1));
        }
        let big_shape: Vec<usize> = perm.iter().map(|&a| 2 * shape[a]).collect();
        let mut big = ArrayD::<f32>::from_elem(IxDyn(&big_shape), -7.0);
        {
            let mut inner = big.slice_each_axis_mut(|_| ndarray::Slice::new(0, None, 2));
            let mut view = inner.view_mut();
            // view axis k is logical axis perm[k]: undo the permutation, then the flips.
            let mut inverse = vec![0; ndim];
            for (k, &a) in perm.iter().enumerate() {
                inverse[a] = k;
            }
            view = view.permuted_axes(inverse);
            for a in 0..ndim {
                if flips >> a & 1 == 1 {
                    view.invert_axis(ndarray::Axis(a));
                }
            }
            view.assign(&logical);
            cd.apply(&mut view).unwrap();
            let got: Vec<u32> = view.iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = expected.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(got, want);
        }
        // Nothing outside the view was written.
        let outside = big
            .indexed_iter()
            .filter(|(i, _)| (0..ndim).any(|k| i[k] % 2 == 1))
            .all(|(_, &v)| v == -7.0);
        prop_assert!(outside);
    }
}

/// The packed paths (runs of 1, 9, 25, 49 and 11 values; 8 × 8 register transposes for
/// contiguous fibers) give bitwise the result of the in-place path on the same logical fibers.
#[test]
fn packed_paths_match_the_in_place_path_bitwise() {
    fn check<T: chandir::Element>(shape: &[usize], lambda: f64, scale: f64) {
        let len: usize = shape.iter().product();
        let g = ArrayD::from_shape_vec(IxDyn(shape), values(len, len as u64, 1.5))
            .unwrap()
            .mapv(|v| T::from(v / 1.5 * scale).unwrap());
        for metric in metrics(lambda) {
            // Fibers along axis 1 (packed), and the same fibers along axis 0 of a copy with the
            // first two axes swapped into contiguous memory (in place).
            let mut packed = g.clone();
            ChannelDirected::new(metric, Direction::Input)
                .apply(&mut packed)
                .unwrap();
            let mut swapped = g.clone();
            swapped.swap_axes(0, 1);
            let mut in_place = swapped.as_standard_layout().into_owned();
            ChannelDirected::new(metric, Direction::Output)
                .apply(&mut in_place)
                .unwrap();
            in_place.swap_axes(0, 1);
            let same = packed
                .iter()
                .zip(in_place.iter())
                .all(|(a, b)| a.to_f64().unwrap().to_bits() == b.to_f64().unwrap().to_bits());
            assert!(same, "{shape:?} {metric:?}");
        }
    }
    for shape in [
        vec![37, 29],
        vec![21, 70, 1, 1],
        vec![9, 17, 3, 3],
        vec![5, 12, 5, 5],
        vec![3, 10, 7, 7],
        vec![4, 6, 11],
    ] {
        for lambda in [0.5, 1e3] {
            check::<f32>(&shape, lambda, 1.5);
            check::<f64>(&shape, lambda, 1.5);
            // Near the largest float: the clamped kernels.
            check::<f32>(&shape, lambda, f32::MAX as f64);
            check::<f64>(&shape, lambda, f64::MAX);
        }
    }
}

/// Subnormal `f32` gradients: the answer is exact up to `16 + 4·√min(n, 1 + λ)` units of the
/// smallest subnormal (a subnormal has no relative precision to keep, and a sweep adds up about
/// `min(n, √λ)` absolute roundings).
#[test]
fn subnormal_f32_values_stay_within_a_few_units_of_the_smallest_float() {
    for scale in [1e-38, 1e-41, 1e-44] {
        for n in [2, 3, 9, 64] {
            let g32: Vec<f32> = values(n, n as u64 + 7, scale)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let g: Vec<f64> = g32.iter().map(|&v| v as f64).collect();
            for lambda in [0.5, 1.0, 30.0, 400.0, 1e6] {
                for metric in metrics(lambda) {
                    let x: Vec<f64> = apply(metric, &g32).iter().map(|&v| v as f64).collect();
                    let err = exact_error(&x, &exact_solve(&metric, &g));
                    let units = 16.0 + 4.0 * (n as f64).min(1.0 + lambda).sqrt();
                    let floor = units * f64::from(f32::from_bits(1));
                    assert!(
                        err <= 1e-5 * max_abs(&g) + floor,
                        "{metric:?} n {n} scale {scale:e}: error {err:e}"
                    );
                }
            }
        }
    }
}
