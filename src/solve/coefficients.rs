//! The coefficients of the two sweeps that solve every Sobolev H1 operator, computed once per
//! `(λ, boundary, n)` in `f64`, in `O(n)`, without cancellation, for every finite λ ≥ 0.
//!
//! `A = I + λL` is factored as `LDLᵀ` (Thomas for the tridiagonal boundaries; for the periodic one
//! the last row of the factor is full). The pivots are written `pᵢ = λ + tᵢ`, with
//! `tᵢ = 1 + tᵢ₋₁ / (1 + tᵢ₋₁/λ)`: a sum of positive terms, where the textbook
//! `pᵢ = dᵢ − λ²/pᵢ₋₁` cancels catastrophically once λ is large (at λ = 10¹⁶ the last Neumann pivot
//! comes out as 0). The last pivot of the periodic operator is `1/(A⁻¹)ₙₙ`, which has the closed
//! form `√(1+4λ)·tanh(n·ln(r⁻¹)/2)` with `r⁻¹ = 1 + (1 + √(1+4λ))/(2λ)`, again free of cancellation.
//!
//! Every coefficient is ≥ 0, so both sweeps form positive combinations: with `f64` carries the
//! computed `x` is within `O(n·2⁻⁵³)·max|g|` of the exact answer whatever λ is (a relative error
//! `ε` in each coefficient moves a positive combination by at most `ε` times the same combination
//! of `|g|`, and `A⁻¹|g| ≤ max|g|` because `A⁻¹ ≥ 0` and `A·1 ≥ 1`).
//!
//! The sweeps carry scaled quantities so that nothing overflows or underflows for extreme λ or
//! values near the largest float: the forward sweep computes `z = s·y` (`y` the textbook forward
//! result, `s` a power of two near `max(1, λ/n)/8`), so `|z| ≤ max|g|/2`; the backward sweep
//! computes `x̃ = x/8`, and the result is stored as `8·x̃`.

use crate::Boundary;

use super::RowFactors;

/// The factor by which the backward sweep's values `x̃` are scaled up when stored: `x = 8·x̃`.
pub const OUT_SCALE: f64 = 8.0;

/// The coefficients of the sweeps that solve `(I + λL) x = g` for one fiber length `n`.
///
/// With `m` forward rows (`n` for Dirichlet, `n − 1` otherwise):
///
/// ```text
/// forward,  i = 0..m:      zᵢ = αᵢ·gᵢ + cᵢ·zᵢ₋₁         (z₋₁ = 0),   acc += κᵢ·zᵢ
/// last row (m < n):        x̃ₙ₋₁ = γ·gₙ₋₁ + acc
/// backward, i = m−1..0:    x̃ᵢ = β·zᵢ + cᵢ·x̃ᵢ₊₁ + μᵢ·x̃ₙ₋₁   (x̃ₘ = 0 when m = n)
/// result:                  xᵢ = 8·x̃ᵢ
/// ```
///
/// `κ` is zero except at the ends (periodic) or the last forward row (Neumann); `μ` is zero except
/// near the ends for the periodic boundary. All coefficients are ≥ 0.
///
/// ```
/// use chandir::solve::SweepCoefficients;
/// use chandir::Boundary;
///
/// // A = [[2,-1,0],[-1,3,-1],[0,-1,2]] (Neumann, λ = 1): A⁻¹e₀ = [5/8, 1/4, 1/8]
/// let c = SweepCoefficients::sobolev(3, 1.0, Boundary::Neumann);
/// let g = [1.0, 0.0, 0.0];
/// let x = c.solve_one(&g);
/// assert!((x[0] - 0.625).abs() < 1e-15 && (x[2] - 0.125).abs() < 1e-15);
/// ```
#[derive(Debug, Clone)]
pub struct SweepCoefficients {
    pub(crate) n: usize,
    pub(crate) m: usize,
    pub(crate) alpha: RowFactors,
    pub(crate) coupling: RowFactors,
    pub(crate) kappa: RowFactors,
    pub(crate) mu: RowFactors,
    pub(crate) beta: f64,
    pub(crate) gamma: f64,
}

/// The coefficients expanded to one value per forward row, for uploading to a device.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedCoefficients {
    /// Fiber length `n`.
    pub n: usize,
    /// Forward rows `m` (`n` for Dirichlet, `n − 1` otherwise).
    pub m: usize,
    /// `αᵢ`, `m` values.
    pub alpha: Vec<f64>,
    /// `cᵢ`, `m` values.
    pub coupling: Vec<f64>,
    /// `κᵢ`, `m` values.
    pub kappa: Vec<f64>,
    /// `μᵢ`, `m` values.
    pub mu: Vec<f64>,
    /// `β`.
    pub beta: f64,
    /// `γ` (0 when `m = n`).
    pub gamma: f64,
    /// The factor applied to `x̃` on output (8).
    pub out_scale: f64,
}

/// `t ↦ 1 + t/(1 + t/λ)`: the pivot excess `pᵢ − λ` of the next interior row.
#[inline]
fn next_excess(t: f64, lambda: f64) -> f64 {
    1.0 + t / (1.0 + t / lambda)
}

/// `λ/p` for the pivot `p = λ + t`, without forming `λ + t` (which overflows near `f64::MAX`).
#[inline]
fn coupling_of(t: f64, lambda: f64) -> f64 {
    1.0 / (1.0 + t / lambda)
}

/// The forward-sweep scale `s`: a power of two near `max(1, λ/n)/8`, so that `|z| = s·|y| ≤ max|g|/2`
/// (`|y| ≤ 3·max|g|`, and `|yᵢ| ≤ (i+1)·max|g|/λ`) while `z` stays far from underflow.
fn forward_scale(n: usize, lambda: f64) -> f64 {
    let ratio = (lambda / n as f64).max(1.0);
    // 2^floor(log2(ratio)) / 8; ratio ≤ f64::MAX, so the exponent is at most 1023.
    let exponent = ratio.log2().floor().clamp(0.0, 1023.0) as i32;
    2f64.powi(exponent - 3)
}

/// `1/(A⁻¹)ₙₙ` for the periodic `A = I + λL` of size `n ≥ 2`: the last pivot of its `LDLᵀ`.
///
/// `(A⁻¹)ⱼⱼ = (1/n)·Σₖ 1/(1 + 4λ·sin²(πk/n)) = (1 + rⁿ)/((1 − rⁿ)·√(1+4λ))`.
pub(crate) fn periodic_last_pivot(n: usize, lambda: f64) -> f64 {
    let (q, ratio) = if lambda <= 1.0 {
        let q = (1.0 + 4.0 * lambda).sqrt();
        (q, (1.0 + q) / (2.0 * lambda))
    } else {
        let inv = 1.0 / lambda;
        let q = 2.0 * lambda.sqrt() * (1.0 + 0.25 * inv).sqrt();
        // (1 + q)/(2λ) = 1/(2λ) + √(1/λ + 1/(4λ²))
        (q, 0.5 * inv + (inv + 0.25 * inv * inv).sqrt())
    };
    // −ln r = ln(1 + ratio); n·(−ln r)/2 large gives tanh = 1 (and λ → 0 gives ratio = ∞).
    q * (0.5 * n as f64 * ratio.ln_1p()).tanh()
}

impl SweepCoefficients {
    /// The coefficients of `I + λL` for fibers of length `n ≥ 1` (`n ≥ 2` for the Neumann and
    /// periodic boundaries, where `n = 1` is the identity), `λ > 0` finite.
    ///
    /// # Panics
    /// If `n` is too small for the boundary or λ is not finite and positive.
    pub fn sobolev(n: usize, lambda: f64, boundary: Boundary) -> Self {
        assert!(
            lambda > 0.0 && lambda.is_finite(),
            "lambda must be finite and > 0"
        );
        let m = match boundary {
            Boundary::Dirichlet => {
                assert!(n >= 1, "a fiber needs a value");
                n
            }
            Boundary::Neumann | Boundary::Periodic => {
                assert!(n >= 2, "n = 1 is the identity for this boundary");
                n - 1
            }
        };
        let s = forward_scale(n, lambda);
        // λ/s and s/λ are formed once; α = s/p = (s/λ)·c avoids λ + t (1 + 2λ overflows).
        let lambda_over_s = lambda / s;
        let alpha_of = |t: f64| {
            if lambda <= 1.0 {
                s / (lambda + t)
            } else {
                (s / lambda) * coupling_of(t, lambda)
            }
        };
        // Row 0: Neumann has diagonal 1 + λ (t₀ = 1); Dirichlet and periodic 1 + 2λ (t₀ = 1 + λ).
        let t0 = match boundary {
            Boundary::Neumann => 1.0,
            Boundary::Dirichlet | Boundary::Periodic => 1.0 + lambda,
        };
        let periodic = boundary == Boundary::Periodic;
        // The periodic factor's last row, |lⱼ|: l₀ from the corner (doubled for n = 2, where the
        // wrap-around difference repeats the only other one).
        let corner = if n == 2 { 2.0 } else { 1.0 };

        // The spike decays geometrically, at most like the steady coupling c* (t* = (1 + √(1+4λ))/2
        // is the fixed point of the pivot excess); once a term falls below 2⁻⁶⁰ of the first one
        // times the geometric tail's factor, the rest of it is below rounding: drop it.
        let t_star = 0.5 + (0.25 + lambda).sqrt();
        let negligible = 2f64.powi(-60) * (1.0 - coupling_of(t_star, lambda));
        let mut ts: Vec<f64> = Vec::new();
        let mut spike: Vec<f64> = Vec::new(); // |lⱼ| (periodic)
        let mut t = t0;
        let mut steady_from = None;
        for i in 0..m {
            if i > 0 {
                t = next_excess(t, lambda);
            }
            let c = coupling_of(t, lambda);
            if periodic {
                let l = if i == 0 {
                    corner * c
                } else {
                    let l = flush_subnormal(c * spike[i - 1]);
                    if l < negligible * spike[0] {
                        0.0
                    } else {
                        l
                    }
                };
                spike.push(l);
            }
            ts.push(t);
            // Rows i.. repeat row i − 1 once t repeats (and the spike has decayed to zero); keep
            // the last forward row (the special one) out of the repetition.
            // (κᵢ lags the spike by one row, so the row before must have decayed too.)
            let decayed = !periodic || (i >= 1 && spike[i - 1] == 0.0);
            if i >= 2 && i + 1 < m && ts[i] == ts[i - 1] && decayed {
                steady_from = Some(i);
                break;
            }
        }

        let coupling_head: Vec<f64> = ts.iter().map(|&t| coupling_of(t, lambda)).collect();
        let alpha_head: Vec<f64> = ts.iter().map(|&t| alpha_of(t)).collect();
        let t_last_forward = *ts.last().expect("m >= 1");
        let (alpha, coupling) = match steady_from {
            Some(h) => {
                let steady_t = ts[h];
                (
                    RowFactors::compressed(alpha_head[..h].to_vec(), alpha_of(steady_t), vec![], m),
                    RowFactors::compressed(
                        coupling_head[..h].to_vec(),
                        coupling_of(steady_t, lambda),
                        vec![],
                        m,
                    ),
                )
            }
            None => (
                RowFactors::full(alpha_head),
                RowFactors::full(coupling_head),
            ),
        };
        let beta = 1.0 / (s * OUT_SCALE);

        let (kappa, mu, gamma) = match boundary {
            Boundary::Dirichlet => (RowFactors::zeros(m), RowFactors::zeros(m), 0.0),
            Boundary::Neumann => {
                // Last pivot 1 + λ − λ²/pₙ₋₂ = 1 + tₙ₋₂/(1 + tₙ₋₂/λ): no cancellation.
                let p_last = next_excess(t_last_forward, lambda);
                let kappa_last = lambda_over_s / (OUT_SCALE * p_last);
                (
                    RowFactors::compressed(vec![], 0.0, vec![kappa_last], m),
                    RowFactors::zeros(m),
                    1.0 / (OUT_SCALE * p_last),
                )
            }
            Boundary::Periodic => {
                let p_last = periodic_last_pivot(n, lambda);
                let to_last = lambda_over_s / (OUT_SCALE * p_last);
                // κⱼ = |lⱼ|·pⱼ/(8·s·p_last), with |lⱼ|·pⱼ = λ·wⱼ: w₀ = corner, wⱼ = |lⱼ₋₁|,
                // and the last forward row also carries the sub-diagonal: w = 1 + |lₘ₋₂|.
                // μⱼ = |lⱼ|, except μₘ₋₁ = |lₘ₋₁| − cₘ₋₁ = cₘ₋₁·|lₘ₋₂| (its cₘ₋₁ term is the sweep's own).
                let stored = spike.len();
                let spike_at = |j: usize| if j < stored { spike[j] } else { 0.0 };
                let weight = |j: usize| if j == 0 { corner } else { spike_at(j - 1) };
                let c_last = coupling.get(m - 1);
                let (kappa_tail, mu_tail) = if m == 1 {
                    (vec![corner * to_last], vec![c_last])
                } else {
                    let before = spike_at(m - 2);
                    (vec![(1.0 + before) * to_last], vec![c_last * before])
                };
                let head_len = match steady_from {
                    Some(h) => h,
                    None => m - 1,
                };
                let kappa_head: Vec<f64> = (0..head_len).map(|j| weight(j) * to_last).collect();
                let mu_head: Vec<f64> = (0..head_len).map(spike_at).collect();
                (
                    RowFactors::compressed(kappa_head, 0.0, kappa_tail, m),
                    RowFactors::compressed(mu_head, 0.0, mu_tail, m),
                    1.0 / (OUT_SCALE * p_last),
                )
            }
        };
        SweepCoefficients {
            n,
            m,
            alpha,
            coupling,
            kappa,
            mu,
            beta,
            gamma,
        }
    }

    /// The fiber length `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether `n = 0` (never: a fiber has at least one value).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The number of forward rows `m`: `n` for Dirichlet, `n − 1` for Neumann and periodic.
    pub fn forward_rows(&self) -> usize {
        self.m
    }

    /// `αᵢ` for a forward row `i < m`.
    pub fn alpha(&self, i: usize) -> f64 {
        self.alpha.get(i)
    }

    /// `cᵢ` for a forward row `i < m`.
    pub fn coupling(&self, i: usize) -> f64 {
        self.coupling.get(i)
    }

    /// `κᵢ` for a forward row `i < m`.
    pub fn kappa(&self, i: usize) -> f64 {
        self.kappa.get(i)
    }

    /// `μᵢ` for a forward row `i < m`.
    pub fn mu(&self, i: usize) -> f64 {
        self.mu.get(i)
    }

    /// `β`, the weight of `zᵢ` in the backward sweep.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// `γ`, the weight of `gₙ₋₁` in the last row (0 when there is no separate last row).
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Every per-row coefficient expanded to `m` values.
    ///
    /// ```
    /// use chandir::solve::SweepCoefficients;
    /// use chandir::Boundary;
    ///
    /// let e = SweepCoefficients::sobolev(1000, 1.0, Boundary::Periodic).expanded();
    /// assert_eq!((e.n, e.m, e.alpha.len()), (1000, 999, 999));
    /// assert!(e.kappa.iter().chain(&e.mu).all(|&v| v >= 0.0));
    /// ```
    pub fn expanded(&self) -> ExpandedCoefficients {
        let expand = |f: &RowFactors| (0..self.m).map(|i| f.get(i)).collect();
        ExpandedCoefficients {
            n: self.n,
            m: self.m,
            alpha: expand(&self.alpha),
            coupling: expand(&self.coupling),
            kappa: expand(&self.kappa),
            mu: expand(&self.mu),
            beta: self.beta,
            gamma: self.gamma,
            out_scale: OUT_SCALE,
        }
    }

    /// A first-order bound on `max|x̂ − x| / max|g|` when both sweeps run in `f32` arithmetic, with
    /// the coefficients rounded to `f32` and every carry kept in `f32`; `f64::INFINITY` for fibers
    /// longer than 2¹⁶ (which always keep `f64` arithmetic).
    ///
    /// A running error analysis on the worst case: all coefficients are ≥ 0, so `|zᵢ| ≤ Zᵢ` and
    /// `|x̃ᵢ| ≤ Xᵢ`, the sweeps applied to the all-ones fiber, and the errors obey
    /// `Eᵢ = cᵢEᵢ₋₁ + 3u·Zᵢ` forward and `Fᵢ = cᵢFᵢ₊₁ + βEᵢ + μᵢF_last + 4u·Xᵢ` backward
    /// (`u = 2⁻²⁴`; each term counts the roundings of one coefficient, one product and the sums).
    /// It grows with λ: roughly `u·√λ` once the couplings approach 1.
    ///
    /// ```
    /// use chandir::solve::SweepCoefficients;
    /// use chandir::Boundary;
    ///
    /// let small = SweepCoefficients::sobolev(256, 1.0, Boundary::Neumann).f32_error_bound();
    /// let large = SweepCoefficients::sobolev(256, 1e6, Boundary::Neumann).f32_error_bound();
    /// assert!(small < 1e-6 && large > 1e-5);
    /// ```
    pub fn f32_error_bound(&self) -> f64 {
        const LONGEST: usize = 1 << 16;
        if self.n > LONGEST {
            return f64::INFINITY;
        }
        let u = f64::from(f32::EPSILON) / 2.0;
        let m = self.m;
        // Forward: magnitudes Z and error bounds E of z; the last row's sum and its error.
        let (mut zs, mut es) = (Vec::with_capacity(m), Vec::with_capacity(m));
        let (mut z, mut e, mut acc, mut acc_err) = (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
        for i in 0..m {
            let (alpha, c, kappa) = (self.alpha(i), self.coupling(i), self.kappa(i));
            z = alpha + c * z;
            e = c * e + 3.0 * u * z;
            if kappa != 0.0 {
                acc += kappa * z;
                // Adding b to a rounds by at most min(u·|a + b|, |b|).
                acc_err += kappa * e + 2.0 * u * kappa * z + (u * acc).min(kappa * z);
            }
            zs.push(z);
            es.push(e);
        }
        let (x_last, f_last) = if m < self.n {
            let x = self.gamma + acc;
            (x, acc_err + 3.0 * u * x)
        } else {
            (0.0, 0.0)
        };
        let (mut x, mut f) = (x_last, f_last);
        let mut worst = f_last;
        for i in (0..m).rev() {
            let (c, mu) = (self.coupling(i), self.mu(i));
            x = self.beta * zs[i] + c * x + mu * x_last;
            let spike = if mu != 0.0 {
                mu * f_last + 2.0 * u * mu * x_last + (u * x).min(mu * x_last)
            } else {
                0.0
            };
            f = c * f + self.beta * es[i] + 4.0 * u * (x - mu * x_last) + spike;
            worst = worst.max(f);
        }
        OUT_SCALE * worst
    }

    /// Solves one fiber with the plain sequential sweeps, in `f64`: the reference the block
    /// kernels are built from, and a convenient way to try the coefficients.
    pub fn solve_one(&self, g: &[f64]) -> Vec<f64> {
        assert_eq!(g.len(), self.n, "a fiber of the planned length");
        let m = self.m;
        let mut z = vec![0.0; m];
        let mut prev = 0.0;
        let mut acc = 0.0;
        for i in 0..m {
            prev = if i == 0 {
                self.alpha(0) * g[0]
            } else {
                self.alpha(i) * g[i] + self.coupling(i) * prev
            };
            z[i] = prev;
            if self.kappa(i) != 0.0 {
                acc += self.kappa(i) * prev;
            }
        }
        let mut x = vec![0.0; self.n];
        let last = if m < self.n {
            self.gamma * g[self.n - 1] + acc
        } else {
            0.0
        };
        if m < self.n {
            x[self.n - 1] = OUT_SCALE * last;
        }
        let mut next = last;
        for i in (0..m).rev() {
            next = self.beta * z[i] + self.coupling(i) * next;
            if self.mu(i) != 0.0 {
                next += self.mu(i) * last;
            }
            x[i] = OUT_SCALE * next;
        }
        x
    }
}

/// Zero for a subnormal: negligible next to any normal coefficient, and slow to multiply by.
fn flush_subnormal(v: f64) -> f64 {
    if v.abs() < f64::MIN_POSITIVE {
        0.0
    } else {
        v
    }
}
