//! Re-weighted H0: one pass for the fiber means, one pass for the update.

use crate::threading::Par;
use crate::Element;

use super::sweep::{far_from_overflow, magnitude_key, store};
use super::{to_f64, wide_vector_build, BlockSolver, RowBlock, OUT_SCALE};

/// `A = I + λ(I − 11ᵀ/n)`, solved in closed form: `x = mean(g) + (g − mean(g))/(1 + λ)`.
#[derive(Debug, Clone)]
pub(crate) struct Reweighted {
    pub(crate) n: usize,
    /// `1/(1 + λ)`.
    pub(crate) shrink: f64,
    /// A power of two `≤ 1/(2n)` that every value is scaled by before it is summed, so that the
    /// sum of `n` values near the largest float cannot overflow (exact, barring subnormals).
    pub(crate) down: f64,
}

impl Reweighted {
    /// The operator for fibers of length `n` with strength `lambda`.
    pub(crate) fn new(n: usize, lambda: f64) -> Self {
        let bits = (usize::BITS - n.max(1).leading_zeros()) as i32; // 2^bits > n
        Reweighted {
            n,
            shrink: 1.0 / (1.0 + lambda),
            down: 2f64.powi(-bits),
        }
    }

    /// The weight that turns a scaled sum into `(1 − s)·mean/8`, the offset of `x̃ = x/8`.
    pub(crate) fn mean_weight(&self) -> f64 {
        (1.0 - self.shrink) / (self.n as f64 * self.down * OUT_SCALE)
    }
}

impl Reweighted {
    #[inline(always)]
    fn sweep<T: Element>(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        debug_assert_eq!(block.rows(), self.n);
        let offset = &mut scratch[..block.width()];
        offset.fill(0.0);
        // f32 values summed in f64 cannot overflow, and x (never rounded on the way) cannot round
        // past f32::MAX: only f64 storage needs the scaled sum and the watch for large values.
        let wide = !T::IS_F32;
        let down = if wide { self.down } else { 1.0 };
        let mut largest = 0;
        for i in 0..self.n {
            for (sum, &g) in offset.iter_mut().zip(block.row(i).iter()) {
                if wide {
                    largest = largest.max(magnitude_key(g));
                }
                *sum += down * to_f64(g);
            }
        }
        // x/8 = (s/8)·g + (1 − s)·mean(g)/8
        let mean_weight = self.mean_weight() * self.down / down;
        offset.iter_mut().for_each(|sum| *sum *= mean_weight);
        if far_from_overflow::<T>(largest) {
            self.update::<T, false>(block, offset);
        } else {
            self.update::<T, true>(block, offset);
        }
    }

    #[inline(always)]
    fn update<T: Element, const CLAMP: bool>(&self, block: &mut RowBlock<'_, T>, offset: &[f64]) {
        let shrink = self.shrink / OUT_SCALE;
        for i in 0..self.n {
            for (g, &o) in block.row(i).iter_mut().zip(offset.iter()) {
                *g = store::<T, CLAMP>(shrink * to_f64(*g) + o);
            }
        }
    }

    wide_vector_build!(sweep, sweep_avx2, sweep_dispatch);
}

impl<T: Element> BlockSolver<T> for Reweighted {
    fn len(&self) -> usize {
        self.n
    }

    fn scratch_len(&self, width: usize) -> usize {
        width
    }

    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64], par: Par) {
        super::long_fiber::reweighted(self, fiber, scratch, par);
    }

    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        // Column chunks whose `n` rows stay in L1 from the sum to the update.
        let chunk = (L1_CHUNK_BYTES / (self.n.max(1) * std::mem::size_of::<T>()))
            .max(MIN_CHUNK_COLUMNS)
            / MIN_CHUNK_COLUMNS
            * MIN_CHUNK_COLUMNS;
        let width = block.width();
        let mut start = 0;
        while start < width {
            let w = chunk.min(width - start);
            self.sweep_dispatch(&mut block.columns(start, w), scratch);
            start += w;
        }
    }
}

/// Bytes of the column chunks that the two passes share: half of a 48 KiB L1.
const L1_CHUNK_BYTES: usize = 24 << 10;

/// Fewest columns per chunk: whole vectors, and rows long enough to amortize each row's visit.
const MIN_CHUNK_COLUMNS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fiber_is_its_mean_plus_the_shrunk_deviation() {
        let solver = Reweighted::new(4, 3.0);
        let mut g = [0.0_f64, 0.0, 0.0, 8.0]; // mean 2
        let mut scratch = vec![0.0; BlockSolver::<f64>::scratch_len(&solver, 1)];
        solver.solve(&mut RowBlock::new(&mut g, 4, 1, 1).unwrap(), &mut scratch);
        assert_eq!(g, [1.5, 1.5, 1.5, 3.5]); // 2 + (g - 2) / 4
    }
}
