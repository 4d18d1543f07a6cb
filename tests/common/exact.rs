//! Independent references for extreme inputs: exact rational solves (any λ, any finite value) and
//! spectral solves in `f64` (long fibers), straight from the definitions. Nothing here calls the
//! crate's kernels.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use chandir::{Boundary, Metric};

fn rational(v: f64) -> BigRational {
    BigRational::from_float(v).expect("a finite value")
}

/// The dense operator `A` of `metric` on fibers of length `n`, in exact rationals.
fn exact_operator(metric: &Metric, n: usize) -> Vec<Vec<BigRational>> {
    let mut a = vec![vec![BigRational::zero(); n]; n];
    for (i, row) in a.iter_mut().enumerate() {
        row[i] = BigRational::one();
    }
    match *metric {
        Metric::H0 => {}
        Metric::ReweightedH0 { lambda } => {
            let lambda = rational(lambda);
            let inv_n = BigRational::new(BigInt::one(), BigInt::from(n));
            for (i, row) in a.iter_mut().enumerate() {
                for (j, entry) in row.iter_mut().enumerate() {
                    let delta = if i == j {
                        BigRational::one()
                    } else {
                        BigRational::zero()
                    };
                    *entry += &lambda * (delta - &inv_n);
                }
            }
        }
        Metric::SobolevH1 { lambda, boundary } => {
            let lambda = rational(lambda);
            let mut differences: Vec<(usize, usize)> =
                (0..n.saturating_sub(1)).map(|i| (i, i + 1)).collect();
            if boundary == Boundary::Periodic && n >= 2 {
                differences.push((n - 1, 0));
            }
            for (i, j) in differences {
                a[i][i] += &lambda;
                a[j][j] += &lambda;
                a[i][j] -= &lambda;
                a[j][i] -= &lambda;
            }
            if boundary == Boundary::Dirichlet && n >= 1 {
                a[0][0] += &lambda;
                a[n - 1][n - 1] += &lambda;
            }
        }
    }
    a
}

/// The exact solution of `A x = g` (Gaussian elimination in rationals; `A` is SPD, so no pivoting).
#[allow(clippy::needless_range_loop)] // textbook index form, kept plain on purpose
pub fn exact_solve(metric: &Metric, g: &[f64]) -> Vec<BigRational> {
    let n = g.len();
    let mut a = exact_operator(metric, n);
    let mut b: Vec<BigRational> = g.iter().map(|&v| rational(v)).collect();
    for k in 0..n {
        for i in k + 1..n {
            if a[i][k].is_zero() {
                continue;
            }
            let f = &a[i][k] / &a[k][k];
            for j in k..n {
                if !a[k][j].is_zero() {
                    let d = &f * &a[k][j];
                    a[i][j] -= d;
                }
            }
            let d = &f * &b[k];
            b[i] -= d;
        }
    }
    let mut x = vec![BigRational::zero(); n];
    for i in (0..n).rev() {
        let mut s = b[i].clone();
        for j in i + 1..n {
            if !a[i][j].is_zero() {
                s -= &a[i][j] * &x[j];
            }
        }
        x[i] = s / &a[i][i];
    }
    x
}

/// `max_i |computed_i − exact_i|`, evaluated exactly and then rounded.
pub fn exact_error(computed: &[f64], exact: &[BigRational]) -> f64 {
    computed
        .iter()
        .zip(exact)
        .map(|(&c, e)| (rational(c) - e).abs().to_f64().unwrap_or(f64::INFINITY))
        .fold(0.0, f64::max)
}

/// `A⁻¹g` by diagonalizing `A` (a DCT for Neumann, a DST for Dirichlet, a DFT for periodic, the
/// closed form for re-weighted H0), with plain `O(n²)` sums in `f64`: accurate to about
/// `√n·2⁻⁵³·‖g‖` whatever λ is, since every eigenvalue `1/(1 + λμ)` lies in `(0, 1]`.
pub fn spectral_solve(metric: &Metric, g: &[f64]) -> Vec<f64> {
    use std::f64::consts::PI;
    let n = g.len();
    let nf = n as f64;
    let damp = |lambda: f64, mu: f64| 1.0 / (1.0 + lambda * mu);
    match *metric {
        Metric::H0 => g.to_vec(),
        Metric::ReweightedH0 { lambda } => {
            let mean = g.iter().sum::<f64>() / nf;
            g.iter()
                .map(|&v| mean + (v - mean) / (1.0 + lambda))
                .collect()
        }
        Metric::SobolevH1 { lambda, boundary } => match boundary {
            Boundary::Neumann => {
                let basis = |k: usize, i: usize| (PI * k as f64 * (i as f64 + 0.5) / nf).cos();
                let coef: Vec<f64> = (0..n)
                    .map(|k| {
                        let norm = if k == 0 { nf } else { nf / 2.0 };
                        let mu = 4.0 * (PI * k as f64 / (2.0 * nf)).sin().powi(2);
                        let proj: f64 = g.iter().enumerate().map(|(i, &v)| v * basis(k, i)).sum();
                        proj / norm * damp(lambda, mu)
                    })
                    .collect();
                (0..n)
                    .map(|i| coef.iter().enumerate().map(|(k, &c)| c * basis(k, i)).sum())
                    .collect()
            }
            Boundary::Dirichlet => {
                let m = nf + 1.0;
                let basis = |k: usize, i: usize| (PI * k as f64 * (i as f64 + 1.0) / m).sin();
                let coef: Vec<f64> = (1..=n)
                    .map(|k| {
                        let mu = 4.0 * (PI * k as f64 / (2.0 * m)).sin().powi(2);
                        let proj: f64 = g.iter().enumerate().map(|(i, &v)| v * basis(k, i)).sum();
                        proj / (m / 2.0) * damp(lambda, mu)
                    })
                    .collect();
                (0..n)
                    .map(|i| {
                        coef.iter()
                            .enumerate()
                            .map(|(k, &c)| c * basis(k + 1, i))
                            .sum()
                    })
                    .collect()
            }
            Boundary::Periodic => {
                let angle = |k: usize, i: usize| 2.0 * PI * ((k * i) % n) as f64 / nf;
                let coef: Vec<(f64, f64)> = (0..n)
                    .map(|k| {
                        let mu = 4.0 * (PI * k as f64 / nf).sin().powi(2);
                        let (re, im) =
                            g.iter().enumerate().fold((0.0, 0.0), |(re, im), (i, &v)| {
                                let t = angle(k, i);
                                (re + v * t.cos(), im - v * t.sin())
                            });
                        let d = damp(lambda, mu) / nf;
                        (re * d, im * d)
                    })
                    .collect();
                (0..n)
                    .map(|i| {
                        coef.iter()
                            .enumerate()
                            .map(|(k, &(re, im))| {
                                let t = angle(k, i);
                                re * t.cos() - im * t.sin()
                            })
                            .sum()
                    })
                    .collect()
            }
        },
    }
}
