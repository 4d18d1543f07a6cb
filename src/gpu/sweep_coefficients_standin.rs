//! STAND-IN for `chandir::solve::SweepCoefficients` (coefficients_spec.md, issue 8), which the
//! lead is writing on `main`. Same API and formulas as the spec; delete this file and import the
//! real one once `main` is merged into `gpu`.
//!
//! Every H1 operator is a tridiagonal block `T` (rows `0..m`) bordered, for Neumann and periodic,
//! by one last row and column `b` (entries `−λ`, so `β = −b ≥ 0`) with the corner `a`. With the
//! pivots `pᵢ` of `T = (P − λS)(I − λP⁻¹Sᵀ)` and `cᵢ = λ/pᵢ`:
//! - forward `yᵢ = gᵢ/pᵢ + cᵢ yᵢ₋₁`, backward `xᵢ = yᵢ + cᵢ xᵢ₊₁` solves `T x = g`;
//! - the last unknown is `x_l = (g_l + Σ wᵢ yᵢ)/s` with `w = (I − λP⁻¹Sᵀ)⁻ᵀ β` and the Schur
//!   complement `s = 1 + βᵀT⁻¹1` (from `A·1 = 1`: a sum of positive terms, no cancellation);
//! - the rest is `x' = T⁻¹(g' + β x_l)`, i.e. the backward sweep plus `vᵢ x_l` with `v = Lf⁻¹β`.
//!
//! Pivots are kept as `pᵢ = λ + qᵢ` with `qᵢ₊₁ = 1 + cᵢ qᵢ` (`q₀ = 1` for Neumann, `1 + λ`
//! otherwise): no subtraction anywhere, no overflow for any finite λ. Then `z = y/2` and `xt = x/8`
//! (coefficient `beta = 1/4`, `out_scale = 8`) so the stored intermediates stay below `max|g|`.

use crate::{Boundary, Metric};

/// The coefficients of the two sweeps that solve an H1 operator (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepCoefficients {
    n: usize,
    alpha: Vec<f64>,
    coupling: Vec<f64>,
    kappa: Vec<f64>,
    mu: Vec<f64>,
    beta: f64,
    gamma: f64,
    out_scale: f64,
}

/// Every array of [`SweepCoefficients`] expanded to length `forward_rows` (for uploading).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedCoefficients {
    /// Forward weight of `gᵢ`.
    pub alpha: Vec<f64>,
    /// Forward weight of `zᵢ₋₁`, backward weight of `xtᵢ₊₁`.
    pub coupling: Vec<f64>,
    /// Weight of `zᵢ` in the last row's sum.
    pub kappa: Vec<f64>,
    /// Backward weight of `xt_last`.
    pub mu: Vec<f64>,
    /// Backward weight of `zᵢ`.
    pub beta: f64,
    /// Weight of `g_{n−1}` in the last row.
    pub gamma: f64,
    /// `x = out_scale · xt`, an exact power of two.
    pub out_scale: f64,
}

/// Unit roundoff of f32 arithmetic.
const F32_UNIT: f64 = 1.0 / (1u64 << 24) as f64;

impl SweepCoefficients {
    /// `None` where the operator is the identity (λ = 0, `n ≤ 1` except Dirichlet) or not a sweep
    /// (H0, re-weighted H0). `metric` must be valid.
    pub fn new(metric: &Metric, n: usize) -> Option<Self> {
        let Metric::SobolevH1 { lambda, boundary } = *metric else {
            return None;
        };
        if lambda == 0.0 || n == 0 || (n == 1 && boundary != Boundary::Dirichlet) {
            return None;
        }
        let (m, q0) = match boundary {
            Boundary::Dirichlet => (n, 1.0 + lambda),
            Boundary::Neumann => (n - 1, 1.0),
            Boundary::Periodic => (n - 1, 1.0 + lambda),
        };
        // β = −b: the last column of A above the corner, zero for Dirichlet (no border).
        let mut border = vec![0.0; m];
        match boundary {
            Boundary::Dirichlet => {}
            Boundary::Neumann => border[m - 1] = lambda,
            Boundary::Periodic => {
                border[0] += lambda;
                border[m - 1] += lambda;
            }
        }
        let mut pivot = Vec::with_capacity(m);
        let mut coupling = Vec::with_capacity(m);
        let mut q = q0;
        for _ in 0..m {
            let p = lambda + q;
            let c = lambda / p;
            pivot.push(p);
            coupling.push(c);
            q = 1.0 + c * q;
        }
        let alpha: Vec<f64> = pivot.iter().map(|p| 0.5 / p).collect();
        let mut kappa = vec![0.0; m];
        let mut mu = vec![0.0; m];
        let mut gamma = 0.0;
        if m < n {
            // u = T⁻¹1, positive sweeps.
            let mut u = vec![0.0; m];
            let mut carry = 0.0;
            for i in 0..m {
                carry = 1.0 / pivot[i] + coupling[i] * carry;
                u[i] = carry;
            }
            for i in (0..m.saturating_sub(1)).rev() {
                u[i] += coupling[i] * u[i + 1];
            }
            let schur = 1.0 + border.iter().zip(&u).map(|(b, u)| b * u).sum::<f64>();
            gamma = 1.0 / (8.0 * schur);
            // w = β + c w (forward), kappa = w/(4s).
            let mut w = 0.0;
            for i in 0..m {
                w = border[i] + if i > 0 { coupling[i - 1] * w } else { 0.0 };
                kappa[i] = w / (4.0 * schur);
            }
            // v = β/p + c v (forward); mu = v except the last row, where the backward sweep's own
            // coupling term already carries c·x_last: mu_{m−1} = (β_{m−1} − λ)/p + c·v_{m−2}.
            let mut v = 0.0;
            for i in 0..m {
                let previous = v;
                v = border[i] / pivot[i] + coupling[i] * previous;
                mu[i] = if i + 1 < m {
                    v
                } else {
                    let excess = if m == 1 && boundary == Boundary::Periodic {
                        lambda // n = 2: both differences land on the one border entry
                    } else {
                        0.0
                    };
                    excess / pivot[i] + coupling[i] * previous
                };
            }
        }
        Some(SweepCoefficients {
            n,
            alpha,
            coupling,
            kappa,
            mu,
            beta: 0.25,
            gamma,
            out_scale: 8.0,
        })
    }

    /// The fiber length `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether `n = 0` (never: such operators have no coefficients).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `m`: `n` for Dirichlet, `n − 1` for Neumann and periodic.
    pub fn forward_rows(&self) -> usize {
        self.alpha.len()
    }

    /// Forward weight of `gᵢ`.
    pub fn alpha(&self, i: usize) -> f64 {
        self.alpha[i]
    }

    /// Forward weight of `zᵢ₋₁`, backward weight of `xtᵢ₊₁`.
    pub fn coupling(&self, i: usize) -> f64 {
        self.coupling[i]
    }

    /// Weight of `zᵢ` in the last row's sum.
    pub fn kappa(&self, i: usize) -> f64 {
        self.kappa[i]
    }

    /// Backward weight of `xt_last`.
    pub fn mu(&self, i: usize) -> f64 {
        self.mu[i]
    }

    /// Backward weight of `zᵢ`.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Weight of `g_{n−1}` in the last row.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// `x = out_scale · xt`.
    pub fn out_scale(&self) -> f64 {
        self.out_scale
    }

    /// Every array expanded to length `forward_rows`.
    pub fn expanded(&self) -> ExpandedCoefficients {
        ExpandedCoefficients {
            alpha: self.alpha.clone(),
            coupling: self.coupling.clone(),
            kappa: self.kappa.clone(),
            mu: self.mu.clone(),
            beta: self.beta,
            gamma: self.gamma,
            out_scale: self.out_scale,
        }
    }

    /// A first-order bound on `max|x̂ − x| / max|g|` when both sweeps run in f32 arithmetic with
    /// the coefficients rounded to f32 (carries in f32), the result rounded to f32 included.
    ///
    /// Every step is a combination with non-negative weights, so the worst input is `g = ±1` in
    /// the pattern that makes every term add up: the bound runs the sweeps on the magnitudes,
    /// charging each product two roundings (coefficient and product) and each sum one.
    pub fn f32_error_bound(&self) -> f64 {
        let u = F32_UNIT;
        let m = self.forward_rows();
        let mut z_bound = vec![0.0; m];
        let mut z_error = vec![0.0; m];
        let (mut previous_bound, mut previous_error) = (0.0, 0.0);
        let (mut acc_bound, mut acc_error) = (0.0_f64, 0.0_f64);
        for i in 0..m {
            let (a, c) = (self.alpha[i], self.coupling[i]);
            let bound = a + c * previous_bound;
            let error = c * previous_error + u * (2.0 * a + 2.0 * c * previous_bound + bound);
            acc_bound += self.kappa[i] * bound;
            acc_error += self.kappa[i] * error + u * (2.0 * self.kappa[i] * bound + acc_bound);
            z_bound[i] = bound;
            z_error[i] = error;
            (previous_bound, previous_error) = (bound, error);
        }
        let (last_bound, last_error) = if m < self.n {
            let bound = self.gamma + acc_bound;
            (bound, acc_error + u * (2.0 * self.gamma + bound))
        } else {
            (0.0, 0.0)
        };
        let mut worst = self.out_scale * (last_error + u * last_bound);
        let (mut next_bound, mut next_error) = (last_bound, last_error);
        for i in (0..m).rev() {
            let (c, mu) = (self.coupling[i], self.mu[i]);
            let bound = self.beta * z_bound[i] + c * next_bound + mu * last_bound;
            let error = self.beta * z_error[i]
                + c * next_error
                + mu * last_error
                + u * 2.0 * (self.beta * z_bound[i] + c * next_bound + mu * last_bound + bound);
            worst = worst.max(self.out_scale * (error + u * bound));
            (next_bound, next_error) = (bound, error);
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sweeps of the spec, in f64, on one fiber.
    fn sweep(coefficients: &SweepCoefficients, g: &[f64]) -> Vec<f64> {
        let n = g.len();
        let m = coefficients.forward_rows();
        let mut z = vec![0.0; m];
        let (mut carry, mut acc) = (0.0, 0.0);
        for i in 0..m {
            carry = coefficients.alpha(i) * g[i] + coefficients.coupling(i) * carry;
            acc += coefficients.kappa(i) * carry;
            z[i] = carry;
        }
        let last = if m < n {
            coefficients.gamma() * g[n - 1] + acc
        } else {
            0.0
        };
        let mut x = vec![0.0; n];
        let mut next = last;
        for i in (0..m).rev() {
            next = coefficients.beta() * z[i]
                + coefficients.coupling(i) * next
                + coefficients.mu(i) * last;
            x[i] = coefficients.out_scale() * next;
        }
        if m < n {
            x[n - 1] = coefficients.out_scale() * last;
        }
        x
    }

    /// `A x` for the H1 operator, straight from the stencil.
    fn apply(boundary: Boundary, lambda: f64, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        let mut y = x.to_vec();
        let mut difference = |i: usize, j: usize, y: &mut Vec<f64>| {
            let d = lambda * (x[i] - x[j]);
            y[i] += d;
            y[j] -= d;
        };
        for i in 0..n.saturating_sub(1) {
            difference(i, i + 1, &mut y);
        }
        match boundary {
            Boundary::Neumann => {}
            Boundary::Periodic => {
                if n >= 2 {
                    difference(n - 1, 0, &mut y)
                }
            }
            Boundary::Dirichlet => {
                y[0] += lambda * x[0];
                y[n - 1] += lambda * x[n - 1];
            }
        }
        y
    }

    #[test]
    fn sweeps_solve_every_boundary() {
        for boundary in [Boundary::Neumann, Boundary::Periodic, Boundary::Dirichlet] {
            for n in [1, 2, 3, 4, 7, 64] {
                for lambda in [1e-3, 0.5, 1.0, 30.0, 1e6] {
                    let metric = Metric::SobolevH1 { lambda, boundary };
                    let Some(coefficients) = SweepCoefficients::new(&metric, n) else {
                        assert!(n == 1 && boundary != Boundary::Dirichlet);
                        continue;
                    };
                    let g: Vec<f64> = (0..n).map(|i| ((i * 37 + 11) % 17) as f64 - 8.3).collect();
                    let x = sweep(&coefficients, &g);
                    let residual = apply(boundary, lambda, &x);
                    let scale = g.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
                    for (r, g) in residual.iter().zip(&g) {
                        assert!(
                            (r - g).abs() <= 1e-12 * (1.0 + lambda) * scale,
                            "{boundary:?} n={n} λ={lambda}: residual {r} vs {g}"
                        );
                    }
                    for array in [
                        &coefficients.alpha,
                        &coefficients.coupling,
                        &coefficients.kappa,
                        &coefficients.mu,
                    ] {
                        assert!(array.iter().all(|&v| v >= 0.0 && v.is_finite()));
                    }
                }
            }
        }
    }

    #[test]
    fn identity_cases_have_no_coefficients() {
        assert!(SweepCoefficients::new(&Metric::H0, 8).is_none());
        assert!(SweepCoefficients::new(&Metric::ReweightedH0 { lambda: 1.0 }, 8).is_none());
        assert!(SweepCoefficients::new(
            &Metric::SobolevH1 {
                lambda: 0.0,
                boundary: Boundary::Neumann
            },
            8
        )
        .is_none());
        assert!(SweepCoefficients::new(
            &Metric::SobolevH1 {
                lambda: 1.0,
                boundary: Boundary::Periodic
            },
            1
        )
        .is_none());
        assert!(SweepCoefficients::new(
            &Metric::SobolevH1 {
                lambda: 1.0,
                boundary: Boundary::Dirichlet
            },
            1
        )
        .is_some());
    }

    #[test]
    fn extreme_lambda_stays_finite() {
        for boundary in [Boundary::Neumann, Boundary::Periodic, Boundary::Dirichlet] {
            let metric = Metric::SobolevH1 {
                lambda: f64::MAX,
                boundary,
            };
            let coefficients = SweepCoefficients::new(&metric, 16).unwrap();
            let x = sweep(&coefficients, &[1.0; 16]);
            assert!(x.iter().all(|v| v.is_finite()), "{boundary:?}: {x:?}");
            if boundary != Boundary::Dirichlet {
                assert!(
                    x.iter().all(|v| (v - 1.0).abs() < 1e-12),
                    "{boundary:?}: {x:?}"
                );
            }
        }
    }

    #[test]
    fn f32_bound_grows_with_lambda() {
        let bound = |lambda: f64| {
            SweepCoefficients::new(
                &Metric::SobolevH1 {
                    lambda,
                    boundary: Boundary::Neumann,
                },
                512,
            )
            .unwrap()
            .f32_error_bound()
        };
        assert!(bound(1.0) < 1e-5);
        assert!(bound(1.0) < bound(100.0));
        assert!(bound(1e6) > 1e-5);
    }
}
