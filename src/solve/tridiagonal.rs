//! Thomas sweeps for the symmetric tridiagonal `A = I + λL` (Neumann and Dirichlet boundaries).

use num_traits::Float;

use super::{combine, scale, wide_vector_build, BlockSolver, RowBlock, RowFactors};
use crate::Boundary;

/// `A` with diagonal `dᵢ` and off-diagonal `−λ`, factored as `A = U_λᵀ P U_λ` (Thomas without
/// pivoting, stable because `A` is diagonally dominant).
///
/// With pivots `p₀ = d₀`, `pᵢ = dᵢ − λ²/pᵢ₋₁` and couplings `cᵢ = λ/pᵢ`, the sweeps are
/// `yᵢ = gᵢ/pᵢ + cᵢ·yᵢ₋₁` forward and `xᵢ = yᵢ + cᵢ·xᵢ₊₁` backward.
///
/// ```
/// use chandir::solve::{BlockSolver, RowBlock, SymmetricTridiagonal};
/// use chandir::Boundary;
///
/// let solver = SymmetricTridiagonal::sobolev(3, 1.0, Boundary::Neumann);
/// // A = [[2,-1,0],[-1,3,-1],[0,-1,2]]; A·[1,1,1] = [1,1,1]
/// let mut g = [1.0_f32, 1.0, 1.0];
/// BlockSolver::<f32>::solve(&solver, &mut RowBlock::new(&mut g, 3, 1, 1).unwrap(), &mut []);
/// assert!(g.iter().all(|&v| (v - 1.0).abs() < 1e-7));
/// ```
#[derive(Debug, Clone)]
pub struct SymmetricTridiagonal {
    pub(crate) inv_pivot: RowFactors,
    pub(crate) coupling: RowFactors,
}

impl SymmetricTridiagonal {
    /// The factors of `I + λL` for a fiber of length `n ≥ 1`, with the Neumann (diagonal of `L`
    /// `1, 2, …, 2, 1`) or Dirichlet (all `2`) boundary.
    ///
    /// # Panics
    /// For [`Boundary::Periodic`], which is not tridiagonal (use [`super::CyclicCholesky`]).
    pub fn sobolev(n: usize, lambda: f64, boundary: Boundary) -> Self {
        let diagonal = |i: usize| -> f64 {
            let ends = usize::from(i == 0) + usize::from(i + 1 == n);
            match boundary {
                Boundary::Neumann => 1.0 + lambda * (2 - ends) as f64,
                Boundary::Dirichlet => 1.0 + 2.0 * lambda,
                Boundary::Periodic => panic!("the periodic operator is not tridiagonal"),
            }
        };
        Self::factor(n, lambda, diagonal)
    }

    fn factor(n: usize, lambda: f64, diagonal: impl Fn(usize) -> f64) -> Self {
        let mut pivots: Vec<f64> = Vec::new();
        for i in 0..n {
            let pivot = match pivots.last() {
                None => diagonal(0),
                Some(&prev) => diagonal(i) - lambda * (lambda / prev),
            };
            // Interior rows repeat one map, so once an interior pivot repeats, all up to row n − 2 do.
            if i >= 1 && i + 1 < n && pivots.last() == Some(&pivot) {
                let last = diagonal(n - 1) - lambda * (lambda / pivot);
                let compress = |f: fn(f64, f64) -> f64| RowFactors {
                    head: pivots.iter().map(|&p| f(p, lambda)).collect(),
                    steady: f(pivot, lambda),
                    tail: vec![f(last, lambda)],
                    len: n,
                };
                return SymmetricTridiagonal {
                    inv_pivot: compress(|p, _| 1.0 / p),
                    coupling: compress(|p, lambda| lambda / p),
                };
            }
            pivots.push(pivot);
        }
        SymmetricTridiagonal {
            inv_pivot: RowFactors::full(pivots.iter().map(|p| 1.0 / p).collect()),
            coupling: RowFactors::full(pivots.iter().map(|p| lambda / p).collect()),
        }
    }
}

impl SymmetricTridiagonal {
    #[inline(always)]
    fn sweep<T: Float>(&self, block: &mut RowBlock<'_, T>, _scratch: &mut [f64]) {
        let n = self.inv_pivot.len;
        debug_assert_eq!(block.rows(), n);
        scale(block.row(0), self.inv_pivot.get(0));
        for i in 1..n {
            let (prev, row) = block.pair(i - 1, i);
            combine(row, self.inv_pivot.get(i), prev, self.coupling.get(i));
        }
        for i in (0..n.saturating_sub(1)).rev() {
            let (next, row) = block.pair(i + 1, i);
            combine(row, 1.0, next, self.coupling.get(i));
        }
    }

    wide_vector_build!(sweep, sweep_avx2, sweep_dispatch);
}

impl<T: Float + Send + Sync> BlockSolver<T> for SymmetricTridiagonal {
    fn len(&self) -> usize {
        self.inv_pivot.len
    }

    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64]) {
        super::long_fiber::tridiagonal(self, fiber, scratch);
    }

    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        self.sweep_dispatch(block, scratch);
    }
}
