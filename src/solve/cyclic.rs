//! Cholesky sweeps for the circulant `A = I + λL` (periodic boundary), in `O(n)`.

use num_traits::Float;

use super::{combine, combine3, scale, wide_vector_build, BlockSolver, RowBlock, RowFactors};

/// The Cholesky factor `A = GGᵀ` of the symmetric positive definite cyclic tridiagonal matrix:
/// `G` is lower bidiagonal except for its last row, which is full.
///
/// Cholesky needs no pivoting and is backward stable for every SPD matrix, so unlike a
/// Sherman–Morrison correction of a tridiagonal solve it stays accurate for any λ (tested to 10¹²).
/// The forward sweep accumulates the last row's dot product into the last row of the block as it
/// goes, so it needs no scratch.
///
/// ```
/// use chandir::solve::{BlockSolver, CyclicCholesky, RowBlock};
///
/// let solver = CyclicCholesky::periodic_sobolev(5, 2.0);
/// let mut g = [1.0_f64, 0.0, 0.0, 0.0, 0.0];
/// BlockSolver::<f64>::solve(&solver, &mut RowBlock::new(&mut g, 5, 1, 1).unwrap(), &mut []);
/// assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15); // the mean is kept
/// assert!((g[1] - g[4]).abs() < 1e-15); // and the response is symmetric around the impulse
/// ```
#[derive(Debug, Clone)]
pub struct CyclicCholesky {
    /// `1/Gᵢᵢ`.
    pub(crate) inv_diag: RowFactors,
    /// Forward: `−Gᵢ,ᵢ₋₁/Gᵢᵢ` (row 0: unused).
    pub(crate) prev: RowFactors,
    /// Backward: `−Gᵢ₊₁,ᵢ/Gᵢᵢ`, zero where row `i + 1` is the last row.
    pub(crate) next: RowFactors,
    /// The last row of `G`: `G_{n−1, j}` for `j < n − 1`.
    pub(crate) last: RowFactors,
}

impl CyclicCholesky {
    /// Factors `I + λL`, `L` the circulant second difference, for a fiber of length `n ≥ 2`
    /// (for `n = 2` the wrap-around difference repeats the inner one: `L = [[2, −2], [−2, 2]]`).
    pub fn periodic_sobolev(n: usize, lambda: f64) -> Self {
        assert!(n >= 2, "a cyclic factorization needs n >= 2");
        let diagonal = 1.0 + 2.0 * lambda;
        // Entries of the last row of A left of the diagonal: the corner and the sub-diagonal.
        let last_row_entry = |j: usize| -> f64 {
            let corner = if j == 0 { -lambda } else { 0.0 };
            let sub = if j + 2 == n { -lambda } else { 0.0 };
            corner + sub
        };
        let mut g_diag: Vec<f64> = Vec::new();
        let mut g_sub: Vec<f64> = Vec::new(); // G[i][i-1]; g_sub[0] = 0
        let mut last: Vec<f64> = Vec::new();
        let mut last_norm = 0.0_f64;
        for i in 0..n - 1 {
            // Once the bidiagonal part has converged and the last row has decayed to zero, rows
            // i..n−3 repeat the previous one exactly: stop storing (row n − 2 is the tail).
            if i >= 2 && i + 2 < n && g_diag[i - 1] == g_diag[i - 2] && last[i - 1] == 0.0 {
                return Self::compressed(n, lambda, g_diag, g_sub, last, last_norm);
            }
            let sub = if i > 0 { -lambda / g_diag[i - 1] } else { 0.0 };
            let diag = (diagonal - sub * sub).sqrt();
            let carried = if i > 0 { last[i - 1] * sub } else { 0.0 };
            let mut entry = (last_row_entry(i) - carried) / diag;
            if entry.abs() < f64::MIN_POSITIVE {
                // Subnormal: negligible next to any normal entry, and slow to multiply by.
                entry = 0.0;
            }
            last_norm += entry * entry;
            g_diag.push(diag);
            g_sub.push(sub);
            last.push(entry);
        }
        g_diag.push((diagonal - last_norm).sqrt());
        g_sub.push(0.0);
        let inv_diag: Vec<f64> = g_diag.iter().map(|d| 1.0 / d).collect();
        let prev = (0..n).map(|i| -g_sub[i] * inv_diag[i]).collect();
        let next = (0..n)
            .map(|i| {
                if i + 2 < n {
                    -g_sub[i + 1] * inv_diag[i]
                } else {
                    0.0
                }
            })
            .collect();
        CyclicCholesky {
            inv_diag: RowFactors::full(inv_diag),
            prev: RowFactors::full(prev),
            next: RowFactors::full(next),
            last: RowFactors::full(last),
        }
    }

    /// The factors when rows `h..n−2` (`h` = stored rows) repeat row `h − 1` and the last row of
    /// `G` is zero there: only row `n − 2` of the last row and the final pivot remain to compute.
    fn compressed(
        n: usize,
        lambda: f64,
        g_diag: Vec<f64>,
        g_sub: Vec<f64>,
        last: Vec<f64>,
        mut last_norm: f64,
    ) -> Self {
        let h = g_diag.len();
        let diag = g_diag[h - 1];
        let sub = -lambda / diag;
        let corner = -lambda / diag; // row n − 2 of the last row: its own entry, nothing carried
        last_norm += corner * corner;
        let final_diag = (1.0 + 2.0 * lambda - last_norm).sqrt();
        let inv = 1.0 / diag;
        let inv_diag: Vec<f64> = g_diag.iter().map(|d| 1.0 / d).collect();
        let sub_at = |i: usize| if i < h { g_sub[i] } else { sub };
        CyclicCholesky {
            prev: RowFactors {
                head: (0..h).map(|i| -g_sub[i] * inv_diag[i]).collect(),
                steady: -sub * inv,
                tail: vec![0.0],
                len: n,
            },
            next: RowFactors {
                head: (0..h).map(|i| -sub_at(i + 1) * inv_diag[i]).collect(),
                steady: -sub * inv,
                tail: vec![0.0, 0.0],
                len: n,
            },
            inv_diag: RowFactors {
                head: inv_diag,
                steady: inv,
                tail: vec![1.0 / final_diag],
                len: n,
            },
            last: RowFactors {
                head: last,
                steady: 0.0,
                tail: vec![corner],
                len: n - 1,
            },
        }
    }
}

impl CyclicCholesky {
    #[inline(always)]
    fn sweep<T: Float>(&self, block: &mut RowBlock<'_, T>, _scratch: &mut [f64]) {
        let n = self.inv_diag.len;
        let end = n - 1;
        debug_assert_eq!(block.rows(), n);
        // G y = g: rows 0..n-1 are bidiagonal; each yᵢ is subtracted from the last row at once.
        for i in 0..end {
            if i == 0 {
                scale(block.row(0), self.inv_diag.get(0));
            } else {
                let (prev, row) = block.pair(i - 1, i);
                combine(row, self.inv_diag.get(i), prev, self.prev.get(i));
            }
            // The last row of G decays geometrically from both ends: skip its zeros in between.
            if self.last.get(i) != 0.0 {
                let (row, last) = block.pair(i, end);
                combine(last, 1.0, row, -self.last.get(i));
            }
        }
        // Gᵀ x = y, from the last row back.
        scale(
            block.row(end),
            self.inv_diag.get(end) * self.inv_diag.get(end),
        );
        for i in (0..end).rev() {
            // For i = n − 2 the next row is the last row and `self.next.get(i)` is zero.
            let (next_row, last, row) = block.triple(i + 1, end, i);
            if self.last.get(i) == 0.0 {
                combine(row, self.inv_diag.get(i), next_row, self.next.get(i));
            } else {
                let to_last = -self.last.get(i) * self.inv_diag.get(i);
                combine3(
                    row,
                    self.inv_diag.get(i),
                    next_row,
                    self.next.get(i),
                    last,
                    to_last,
                );
            }
        }
    }

    wide_vector_build!(sweep, sweep_avx2, sweep_dispatch);
}

impl<T: Float + Send + Sync> BlockSolver<T> for CyclicCholesky {
    fn len(&self) -> usize {
        self.inv_diag.len
    }

    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64]) {
        super::long_fiber::cyclic(self, fiber, scratch);
    }

    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        self.sweep_dispatch(block, scratch);
    }
}
