//! `SweepCoefficients::f32_error_bound` holds for sweeps run in `f32` arithmetic: checked against
//! an `f32` emulation of the sweeps (written here, from the documented recurrences) and an exact
//! rational solve.

mod common;

use chandir::solve::SweepCoefficients;
use chandir::{Boundary, Metric};
use common::exact::{exact_error, exact_solve};
use proptest::prelude::*;

/// The documented sweeps with every coefficient, carry and product in `f32` (no FMA).
fn sweeps_in_f32(c: &SweepCoefficients, g: &[f32]) -> Vec<f64> {
    let e = c.expanded();
    let f = |v: f64| v as f32;
    let (n, m) = (e.n, e.m);
    let mut z = vec![0.0_f32; m];
    let (mut prev, mut acc) = (0.0_f32, 0.0_f32);
    for i in 0..m {
        prev = f(e.alpha[i]) * g[i] + f(e.coupling[i]) * prev;
        z[i] = prev;
        acc += f(e.kappa[i]) * prev;
    }
    let last = if m < n {
        f(e.gamma) * g[n - 1] + acc
    } else {
        0.0
    };
    let mut x = vec![0.0_f64; n];
    if m < n {
        x[n - 1] = (f(e.out_scale) * last) as f64;
    }
    let mut next = last;
    for i in (0..m).rev() {
        next = f(e.beta) * z[i] + f(e.coupling[i]) * next + f(e.mu[i]) * last;
        x[i] = (f(e.out_scale) * next) as f64;
    }
    x
}

fn boundary(k: usize) -> Boundary {
    [Boundary::Neumann, Boundary::Periodic, Boundary::Dirichlet][k]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_f32_bound_holds(
        n in 2usize..40,
        b in 0..3usize,
        exponent in -4.0_f64..8.0,
        g in prop::collection::vec(-1.0_f32..1.0, 40),
        ones in any::<bool>(),
    ) {
        let lambda = 10f64.powf(exponent);
        let boundary = boundary(b);
        let c = SweepCoefficients::sobolev(n, lambda, boundary);
        // The all-ones fiber is where the errors add up with one sign.
        let g: Vec<f32> = if ones { vec![1.0; n] } else { g[..n].to_vec() };
        let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
        let max = g64.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let metric = Metric::SobolevH1 { lambda, boundary };
        let err = exact_error(&sweeps_in_f32(&c, &g), &exact_solve(&metric, &g64));
        prop_assert!(err <= c.f32_error_bound() * max + 1e-30, "error {err:e} > bound {:e}", c.f32_error_bound() * max);
    }
}

#[test]
fn the_bound_is_not_loose_by_orders_of_magnitude() {
    for boundary in [Boundary::Neumann, Boundary::Periodic, Boundary::Dirichlet] {
        for lambda in [1.0, 100.0, 1e4] {
            let n = 200;
            let c = SweepCoefficients::sobolev(n, lambda, boundary);
            let g = vec![1.0_f32; n];
            let g64 = vec![1.0_f64; n];
            let metric = Metric::SobolevH1 { lambda, boundary };
            let err = exact_error(&sweeps_in_f32(&c, &g), &exact_solve(&metric, &g64));
            let bound = c.f32_error_bound();
            println!("{boundary:?} λ = {lambda}: observed {err:.2e}, bound {bound:.2e}");
            assert!(
                bound <= 1000.0 * err.max(f32::EPSILON as f64 / 2.0),
                "{boundary:?} λ = {lambda}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The crate's own f32 kernel, where it chooses f32 arithmetic, stays within the bound.
    #[test]
    fn the_f32_kernel_stays_within_its_bound(
        n in 2usize..40,
        w in 1usize..70,
        b in 0..3usize,
        exponent in -4.0_f64..1.0,
        seed in any::<u64>(),
    ) {
        let lambda = 10f64.powf(exponent);
        let boundary = boundary(b);
        let sweep = chandir::solve::Sweep::sobolev(n, lambda, boundary);
        prop_assume!(sweep.uses_f32_arithmetic());
        let bound = sweep.coefficients().f32_error_bound();
        let mut state = seed | 1;
        let g = ndarray::Array2::from_shape_fn((n, w), |_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        });
        let mut x = g.clone();
        chandir::ChannelDirected::new(Metric::SobolevH1 { lambda, boundary }, chandir::Direction::Output)
            .apply(&mut x)
            .unwrap();
        let metric = Metric::SobolevH1 { lambda, boundary };
        for (gc, xc) in g.columns().into_iter().zip(x.columns()).take(3) {
            let g64: Vec<f64> = gc.iter().map(|&v| v as f64).collect();
            let x64: Vec<f64> = xc.iter().map(|&v| v as f64).collect();
            let max = g64.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            let err = exact_error(&x64, &exact_solve(&metric, &g64));
            prop_assert!(err <= bound * max + 1e-30, "error {err:e} > {:e}", bound * max);
        }
    }
}
