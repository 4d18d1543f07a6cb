//! The two sweeps of every Sobolev H1 operator (Neumann, Dirichlet, periodic) on an `n × w` block,
//! with the coefficients of [`SweepCoefficients`] and the carries between rows kept in `f64`.

use num_traits::Float;

use super::coefficients::{SweepCoefficients, OUT_SCALE};
use super::{from_f64, to_f64, wide_vector_build, BlockSolver, RowBlock};
use crate::Boundary;

/// `A = I + λL` solved by the forward and backward sweeps of its `LDLᵀ` factorization.
///
/// The forward result `z` is stored in the block (in its element type) between the sweeps; the
/// value carried from one row to the next stays in `f64` scratch, so `f32` storage rounds each
/// value once instead of once per step of a recurrence that can span thousands of rows.
///
/// ```
/// use chandir::solve::{BlockSolver, RowBlock, Sweep};
/// use chandir::Boundary;
///
/// let solver = Sweep::sobolev(3, 1.0, Boundary::Neumann);
/// // A = [[2,-1,0],[-1,3,-1],[0,-1,2]]; A·[1,1,1] = [1,1,1]
/// let mut g = [1.0_f32, 1.0, 1.0];
/// let mut scratch = vec![0.0; BlockSolver::<f32>::scratch_len(&solver, 1)];
/// solver.solve(&mut RowBlock::new(&mut g, 3, 1, 1).unwrap(), &mut scratch);
/// assert!(g.iter().all(|&v| (v - 1.0).abs() < 1e-7));
/// ```
#[derive(Debug, Clone)]
pub struct Sweep {
    pub(crate) coefficients: SweepCoefficients,
}

impl Sweep {
    /// The sweeps of `I + λL` for fibers of length `n` (see [`SweepCoefficients::sobolev`]).
    pub fn sobolev(n: usize, lambda: f64, boundary: Boundary) -> Self {
        Sweep {
            coefficients: SweepCoefficients::sobolev(n, lambda, boundary),
        }
    }

    /// The coefficients the sweeps apply.
    pub fn coefficients(&self) -> &SweepCoefficients {
        &self.coefficients
    }

    #[inline(always)]
    fn sweep<T: Float>(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        let c = &self.coefficients;
        let (n, m) = (c.n, c.m);
        debug_assert_eq!(block.rows(), n);
        let w = block.width();
        let (carry, rest) = scratch.split_at_mut(w);
        let last = &mut rest[..w];
        last.fill(0.0);
        for i in 0..m {
            let (alpha, coupling) = (c.alpha.get(i), c.coupling.get(i));
            if i == 0 {
                forward_first(block.row(0), carry, alpha);
            } else {
                forward(block.row(i), carry, alpha, coupling);
            }
            let kappa = c.kappa.get(i);
            if kappa != 0.0 {
                accumulate(last, carry, kappa);
            }
        }
        if m < n {
            last_row(block.row(n - 1), carry, last, c.gamma);
        } else {
            carry.fill(0.0);
        }
        for i in (0..m).rev() {
            let (coupling, mu) = (c.coupling.get(i), c.mu.get(i));
            if mu == 0.0 {
                backward(block.row(i), carry, c.beta, coupling);
            } else {
                backward_spiked(block.row(i), carry, last, c.beta, coupling, mu);
            }
        }
    }

    wide_vector_build!(sweep, sweep_avx2, sweep_dispatch);
}

impl<T: Float + Send + Sync> BlockSolver<T> for Sweep {
    fn len(&self) -> usize {
        self.coefficients.n
    }

    fn scratch_len(&self, width: usize) -> usize {
        2 * width
    }

    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64]) {
        super::long_fiber::sobolev(self, fiber, scratch);
    }

    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        self.sweep_dispatch(block, scratch);
    }
}

/// `x = 8·x̃` in the storage type. A finite `x̃` whose stored value rounds past the largest float
/// is the exact answer, at most the largest input by the maximum principle, plus rounding (of
/// `z` in `f32` storage, or of the product): store `±MAX`, not `∞`.
#[inline(always)]
pub(crate) fn store<T: Float>(xt: f64) -> T {
    let x: T = from_f64(OUT_SCALE * xt);
    if x.is_infinite() && xt.is_finite() {
        T::max_value().copysign(x)
    } else {
        x
    }
}

/// `z = α·g` into the row and the carry.
#[inline(always)]
fn forward_first<T: Float>(row: &mut [T], carry: &mut [f64], alpha: f64) {
    for (g, z) in row.iter_mut().zip(carry.iter_mut()) {
        *z = alpha * to_f64(*g);
        *g = from_f64(*z);
    }
}

/// `z = α·g + c·z₋₁` into the row and the carry.
#[inline(always)]
fn forward<T: Float>(row: &mut [T], carry: &mut [f64], alpha: f64, coupling: f64) {
    for (g, z) in row.iter_mut().zip(carry.iter_mut()) {
        *z = alpha * to_f64(*g) + coupling * *z;
        *g = from_f64(*z);
    }
}

/// `acc += κ·z`.
#[inline(always)]
fn accumulate(acc: &mut [f64], z: &[f64], kappa: f64) {
    for (a, &z) in acc.iter_mut().zip(z) {
        *a += kappa * z;
    }
}

/// `x̃ = γ·g + acc` into the row (as `8·x̃`), the carry and `acc`.
#[inline(always)]
fn last_row<T: Float>(row: &mut [T], carry: &mut [f64], acc: &mut [f64], gamma: f64) {
    for ((g, x), a) in row.iter_mut().zip(carry.iter_mut()).zip(acc.iter_mut()) {
        *a += gamma * to_f64(*g);
        *x = *a;
        *g = store(*a);
    }
}

/// `x̃ = β·z + c·x̃₊₁` into the row (as `8·x̃`) and the carry.
#[inline(always)]
fn backward<T: Float>(row: &mut [T], carry: &mut [f64], beta: f64, coupling: f64) {
    for (z, x) in row.iter_mut().zip(carry.iter_mut()) {
        *x = beta * to_f64(*z) + coupling * *x;
        *z = store(*x);
    }
}

/// `x̃ = β·z + c·x̃₊₁ + μ·x̃ₙ₋₁` into the row (as `8·x̃`) and the carry.
#[inline(always)]
fn backward_spiked<T: Float>(
    row: &mut [T],
    carry: &mut [f64],
    last: &[f64],
    beta: f64,
    coupling: f64,
    mu: f64,
) {
    for ((z, x), &l) in row.iter_mut().zip(carry.iter_mut()).zip(last) {
        *x = beta * to_f64(*z) + coupling * *x + mu * l;
        *z = store(*x);
    }
}
