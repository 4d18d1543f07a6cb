//! `Direction::Flattened` (one long fiber) against plain references written here: a textbook
//! Thomas solve for Neumann/Dirichlet, a dense LU (small n) or the stencil residual (large n) for
//! the periodic boundary, the closed form for re-weighted H0.

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::{Array1, Array3, ArrayD, IxDyn};

const LAMBDAS: [f64; 7] = [1e-3, 0.3, 1.0, 30.0, 3e4, 1e6, 1e9];

/// Deterministic values in [−1, 1].
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, &x| m.max(x.abs()))
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// Textbook Thomas for `I + λL`, Neumann or Dirichlet.
fn thomas(g: &[f64], lambda: f64, boundary: Boundary) -> Vec<f64> {
    let n = g.len();
    let diag = |i: usize| match boundary {
        Boundary::Neumann => {
            let ends = usize::from(i == 0) + usize::from(i + 1 == n);
            1.0 + lambda * (2 - ends) as f64
        }
        _ => 1.0 + 2.0 * lambda,
    };
    let mut cp = vec![0.0; n];
    let mut dp = vec![0.0; n];
    for i in 0..n {
        let (b, a) = (diag(i), if i == 0 { 0.0 } else { -lambda });
        let denom = b - a * if i == 0 { 0.0 } else { cp[i - 1] };
        cp[i] = -lambda / denom;
        dp[i] = (g[i] - a * if i == 0 { 0.0 } else { dp[i - 1] }) / denom;
    }
    let mut x = dp;
    for i in (0..n.saturating_sub(1)).rev() {
        x[i] -= cp[i] * x[i + 1];
    }
    x
}

/// Dense periodic `I + λL` (for n = 2 the wrap-around repeats the inner difference).
fn periodic_dense(n: usize, lambda: f64) -> Vec<Vec<f64>> {
    let mut a = vec![vec![0.0; n]; n];
    for i in 0..n {
        a[i][i] += 1.0 + 2.0 * lambda;
        a[i][(i + 1) % n] -= lambda;
        a[i][(i + n - 1) % n] -= lambda;
    }
    a
}

/// Gaussian elimination with partial pivoting.
fn lu_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap();
        a.swap(k, p);
        b.swap(k, p);
        let b_k = b[k];
        let (top, bottom) = a.split_at_mut(k + 1);
        let pivot = &top[k];
        for (row, bi) in bottom.iter_mut().zip(b[k + 1..].iter_mut()) {
            let f = row[k] / pivot[k];
            if f != 0.0 {
                for (v, &p) in row[k..].iter_mut().zip(&pivot[k..]) {
                    *v -= f * p;
                }
                *bi -= f * b_k;
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i][j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    x
}

/// `max |A x − g|` for the periodic stencil (n ≥ 3).
fn periodic_residual(x: &[f64], g: &[f64], lambda: f64) -> f64 {
    let n = x.len();
    (0..n)
        .map(|i| {
            let (l, r) = (x[(i + n - 1) % n], x[(i + 1) % n]);
            (x[i] + lambda * (2.0 * x[i] - l - r) - g[i]).abs()
        })
        .fold(0.0, f64::max)
}

fn reweighted_ref(g: &[f64], lambda: f64) -> Vec<f64> {
    let mean = g.iter().sum::<f64>() / g.len() as f64;
    g.iter()
        .map(|&v| mean + (v - mean) / (1.0 + lambda))
        .collect()
}

fn flat(metric: Metric) -> ChannelDirected {
    ChannelDirected::new(metric, Direction::Flattened)
}

fn h1(lambda: f64, boundary: Boundary) -> Metric {
    Metric::SobolevH1 { lambda, boundary }
}

/// Applies `metric` flattened to `g` stored as `T` (as a 1-D array).
fn apply_f64(metric: Metric, g: &[f64]) -> Vec<f64> {
    let mut a = Array1::from(g.to_vec());
    flat(metric).apply(&mut a).unwrap();
    a.to_vec()
}

fn apply_f32(metric: Metric, g: &[f64]) -> Vec<f64> {
    let mut a: Array1<f32> = g.iter().map(|&v| v as f32).collect();
    flat(metric).apply(&mut a).unwrap();
    a.iter().map(|&v| v as f64).collect()
}

fn tol64(lambda: f64, g: &[f64]) -> f64 {
    1e-12 * (1.0 + 4.0 * lambda) * max_abs(g)
}

/// The f64 reference where one is cheap; `None` for long periodic fibers (checked by residual).
fn reference(metric: Metric, g: &[f64]) -> Option<Vec<f64>> {
    let n = g.len();
    match metric {
        Metric::SobolevH1 { lambda, boundary } => match boundary {
            Boundary::Periodic if n == 1 => Some(g.to_vec()),
            Boundary::Periodic if n <= 600 => Some(lu_solve(periodic_dense(n, lambda), g.to_vec())),
            Boundary::Periodic => None,
            _ => Some(thomas(g, lambda, boundary)),
        },
        Metric::ReweightedH0 { lambda } => Some(reweighted_ref(g, lambda)),
        Metric::H0 => Some(g.to_vec()),
    }
}

/// Checks f64 and f32 results for `metric` on a fiber of length `n`; returns the f64 result.
fn check(metric: Metric, n: usize, seed: u64) -> Vec<f64> {
    let g = values(n, seed);
    let lambda = metric.lambda();
    let x64 = apply_f64(metric, &g);
    let tol = tol64(lambda, &g);
    let what = format!("{metric:?}, n = {n}");
    let exact = match reference(metric, &g) {
        Some(r) => {
            let err = max_diff(&x64, &r);
            assert!(err <= tol, "f64 {what}: error {err:e} > {tol:e}");
            r
        }
        None => {
            let res = periodic_residual(&x64, &g, lambda);
            assert!(res <= tol, "f64 {what}: residual {res:e} > {tol:e}");
            x64.clone()
        }
    };
    let x32 = apply_f32(metric, &g);
    let err = max_diff(&x32, &exact);
    let tol32 = 1e-5 * max_abs(&g);
    assert!(err <= tol32, "f32 {what}: error {err:e} > {tol32:e}");
    x64
}

fn boundaries() -> [Boundary; 3] {
    [Boundary::Neumann, Boundary::Dirichlet, Boundary::Periodic]
}

#[test]
fn short_fibers_all_lambdas() {
    for n in [1, 2, 3, 4, 5, 17, 100, 599] {
        for lambda in LAMBDAS {
            for b in boundaries() {
                check(h1(lambda, b), n, n as u64);
            }
            check(Metric::ReweightedH0 { lambda }, n, n as u64);
        }
    }
}

#[test]
fn medium_fibers_all_lambdas() {
    // Around the switch to the segmented path, and lengths that are not multiples of anything.
    for n in [4095, 4096, 4097, 5003, 20_000, 65_537, 200_003] {
        for lambda in LAMBDAS {
            for b in boundaries() {
                check(h1(lambda, b), n, 7 + n as u64);
            }
            check(Metric::ReweightedH0 { lambda }, n, n as u64);
        }
    }
}

#[test]
fn long_fibers() {
    let n = 3_000_017;
    for lambda in [0.3, 30.0, 3e4, 1e6, 1e9] {
        for b in boundaries() {
            check(h1(lambda, b), n, 99);
        }
    }
    check(Metric::ReweightedH0 { lambda: 3.0 }, n, 5);
}

#[test]
fn dense_periodic_small_lambda_sweep() {
    // Periodic fibers long enough for the segmented path, checked against the dense LU.
    for lambda in [1e-3, 1.0, 30.0] {
        let g = values(600, 3);
        let r = lu_solve(periodic_dense(600, lambda), g.clone());
        let x = apply_f64(h1(lambda, Boundary::Periodic), &g);
        assert!(max_diff(&x, &r) <= tol64(lambda, &g));
    }
}

#[test]
fn non_contiguous_view_is_packed() {
    let (a, b, c) = (64, 33, 41);
    let g = values(a * b * c, 11);
    for metric in [
        h1(1.0, Boundary::Neumann),
        h1(30.0, Boundary::Periodic),
        h1(3e4, Boundary::Dirichlet),
        Metric::ReweightedH0 { lambda: 2.0 },
    ] {
        let base = Array3::from_shape_vec((a, b, c), g.clone()).unwrap();
        let mut view = base.clone();
        let mut permuted = view.view_mut().permuted_axes([2, 0, 1]);
        assert!(permuted.as_slice().is_none());
        let logical: Vec<f64> = permuted.iter().copied().collect();
        flat(metric).apply(&mut permuted).unwrap();
        let got: Vec<f64> = permuted.iter().copied().collect();
        let want = match reference(metric, &logical) {
            Some(r) => r,
            None => apply_f64(metric, &logical),
        };
        let err = max_diff(&got, &want);
        assert!(
            err <= tol64(metric.lambda(), &logical),
            "{metric:?}: {err:e}"
        );
        if reference(metric, &logical).is_none() {
            assert!(
                periodic_residual(&got, &logical, metric.lambda())
                    <= tol64(metric.lambda(), &logical)
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let four = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let n = 1_000_003;
    let g = values(n, 21);
    for metric in [
        h1(1.0, Boundary::Neumann),
        h1(3e4, Boundary::Dirichlet),
        h1(30.0, Boundary::Periodic),
        Metric::ReweightedH0 { lambda: 5.0 },
    ] {
        let run = |pool: &rayon::ThreadPool| {
            let mut a = ArrayD::from_shape_vec(IxDyn(&[n]), g.clone()).unwrap();
            pool.install(|| flat(metric).apply(&mut a).unwrap());
            let mut b: ArrayD<f32> =
                ArrayD::from_shape_vec(IxDyn(&[n]), g.iter().map(|&v| v as f32).collect()).unwrap();
            pool.install(|| flat(metric).apply(&mut b).unwrap());
            (a, b)
        };
        let (a1, b1) = run(&one);
        let (a4, b4) = run(&four);
        // The parts are cut where the length says, not the pool: bitwise identical.
        assert_eq!(a1, a4, "{metric:?} f64");
        assert_eq!(b1, b4, "{metric:?} f32");
    }
}
