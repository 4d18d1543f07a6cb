//! Re-weighted H0: one pass for the fiber means, one pass for the update.

use crate::threading::Par;
use crate::Element;

use super::simd::{self, F32s, F64s};
use super::sweep::{far_from_overflow, magnitude_key, store};
use super::{to_f64, BlockSolver, Isa, RowBlock, OUT_SCALE};

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

    /// Both passes on an `f64` block, strips of `K·V::LANES` columns with the sums held in `K`
    /// vector registers; the columns left over, and strips with inputs near the largest float,
    /// take [`Reweighted::sweep`]. The same operations in the same order, lane by lane.
    #[inline(always)]
    fn f64_strips<V: F64s, const K: usize>(
        &self,
        block: &mut RowBlock<'_, f64>,
        scratch: &mut [f64],
    ) {
        let (origin, stride, width) = block.raw_parts();
        let (down, mean_weight) = (V::splat(self.down), V::splat(self.mean_weight()));
        let (shrink, scale) = (V::splat(self.shrink / OUT_SCALE), V::splat(OUT_SCALE));
        let limit = (u64::from(magnitude_key(f64::MAX / 16.0)) << 32) | u64::from(u32::MAX);
        // SAFETY (`at`): rows `0..n` of the columns `start..start + K·LANES` that the loop below
        // hands out, within the block we borrow.
        let at = |i: usize, start: usize, k: usize| unsafe {
            origin.offset(i as isize * stride).add(start + k * V::LANES)
        };
        let mut start = 0;
        while start + K * V::LANES <= width {
            let mut sums = [V::splat(0.0); K];
            let mut largest = [V::splat(0.0); K];
            for i in 0..self.n {
                for k in 0..K {
                    // SAFETY: within the strip's row `i`.
                    let g = unsafe { V::load(at(i, start, k)) };
                    largest[k] = g.max_magnitude(largest[k]);
                    sums[k] = sums[k].add(down.mul(g));
                }
            }
            if !largest.iter().all(|&l| V::keys_at_most(l, limit)) {
                self.sweep(&mut block.columns(start, K * V::LANES), scratch);
            } else {
                let offsets = sums.map(|s| s.mul(mean_weight));
                for i in 0..self.n {
                    for (k, &o) in offsets.iter().enumerate() {
                        // SAFETY: within the strip's row `i`.
                        unsafe {
                            let p = at(i, start, k);
                            scale.mul(shrink.mul(V::load(p)).add(o)).store(p);
                        }
                    }
                }
            }
            start += K * V::LANES;
        }
        if start < width {
            self.sweep(&mut block.columns(start, width - start), scratch);
        }
    }

    /// Both passes on an `f32` block, strips of `K` vectors of `W` (`f32`) at a time: the sums in
    /// `f64` (`2K` vectors of `D`, which holds half as many lanes), the update
    /// `x = s·g + 8·offset` in `f32`, clamped where only rounding takes it past the largest
    /// float. Within `4·2⁻²⁴·max|g|` of the exact answer (the offset and `s` rounded once, the
    /// product and the sum), under [`super::F32_ARITHMETIC_BOUND`]; the columns left over, one
    /// by one, with the same operations.
    #[inline(always)]
    fn f32_strips<W: F32s, D: F64s, const K: usize, const K2: usize>(
        &self,
        block: &mut RowBlock<'_, f32>,
    ) {
        debug_assert!(K2 == 2 * K && 2 * D::LANES == W::LANES && K * W::LANES <= 256);
        let (origin, stride, width) = block.raw_parts();
        // f32 inputs are summed unscaled (their f64 sum cannot overflow).
        let weight = self.mean_weight() * self.down;
        let shrink32 = self.shrink as f32;
        let (mean_weight, scale) = (D::splat(weight), D::splat(OUT_SCALE));
        let shrink = W::splat(shrink32);
        let strip = K * W::LANES;
        // SAFETY (`at`): rows `0..n` of the columns `start..start + strip` that the loop below
        // hands out, within the block we borrow.
        let at = |i: usize, start: usize| unsafe { origin.offset(i as isize * stride).add(start) };
        let mut start = 0;
        while start + strip <= width {
            let mut sums = [D::splat(0.0); K2];
            for i in 0..self.n {
                for (k, sum) in sums.iter_mut().enumerate() {
                    // SAFETY: within the strip's row `i`.
                    *sum = sum.add(unsafe { D::load_f32(at(i, start).add(k * D::LANES)) });
                }
            }
            let mut offsets = [0.0f32; 256];
            for (k, sum) in sums.iter().enumerate() {
                // SAFETY: `offsets` holds `strip ≤ 256` values.
                unsafe {
                    scale
                        .mul(sum.mul(mean_weight))
                        .store_f32(offsets.as_mut_ptr().add(k * D::LANES))
                };
            }
            // SAFETY: `offsets` holds `strip` values.
            let offsets: [W; K] =
                std::array::from_fn(|k| unsafe { W::load(offsets.as_ptr().add(k * W::LANES)) });
            for i in 0..self.n {
                for (k, &o) in offsets.iter().enumerate() {
                    // SAFETY: within the strip's row `i`.
                    unsafe {
                        let p = at(i, start).add(k * W::LANES);
                        o.add_clamped(shrink, W::load(p)).store(p);
                    }
                }
            }
            start += strip;
        }
        for column in start..width {
            // SAFETY: column `column` of the block, valid for every row.
            let value = |i: usize| unsafe { &mut *at(i, column) };
            let sum = (0..self.n).fold(0.0, |sum, i| sum + f64::from(*value(i)));
            let offset = (OUT_SCALE * (sum * weight)) as f32;
            for i in 0..self.n {
                let g = value(i);
                let x = offset + shrink32 * *g;
                *g = super::sweep::clamp_f32(x, offset.is_finite() && g.is_finite());
            }
        }
    }

    /// Both passes in the vector build for `isa` (one this CPU runs).
    pub(crate) fn solve_on<T: Element>(
        &self,
        isa: Isa,
        block: &mut RowBlock<'_, T>,
        scratch: &mut [f64],
    ) {
        assert!(isa <= super::isa(), "{isa:?} is not available on this CPU");
        // SAFETY (each build): the CPU runs `isa`, asserted above.
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.sweep_avx512(block, scratch) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.sweep_avx2(block, scratch) },
            _ => self.strips::<T, simd::Baseline, simd::Baseline64, 4, 8, 4>(block, scratch),
        }
    }

    /// The strips of an `f32` block (`KW` vectors of `W`, sums in `KD2` of `D`) or of an `f64`
    /// block (`KD` vectors of `D`).
    #[inline(always)]
    fn strips<T: Element, W: F32s, D: F64s, const KW: usize, const KD2: usize, const KD: usize>(
        &self,
        block: &mut RowBlock<'_, T>,
        scratch: &mut [f64],
    ) {
        match block.as_f64() {
            Some(block) => self.f64_strips::<D, KD>(block, scratch),
            None => self.f32_strips::<W, D, KW, KD2>(block.as_f32().expect("f32, not f64")),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn sweep_avx512<T: Element>(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        self.strips::<T, simd::Avx512, simd::Avx512x64, 4, 8, 8>(block, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn sweep_avx2<T: Element>(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        self.strips::<T, simd::Avx2, simd::Avx2x64, 4, 8, 4>(block, scratch)
    }
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
        self.solve_on(super::isa(), block, scratch);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::solve::testing::builds_match_one_column_at_a_time;

    pub(crate) fn builds_match<T: Element>() {
        for n in [2, 3, 17, 64, 130] {
            for lambda in [0.5, 1e3] {
                let solver = Reweighted::new(n, lambda);
                let label = format!("n={n} λ={lambda}");
                builds_match_one_column_at_a_time::<T>(n, &label, |isa, block, scratch| {
                    solver.solve_on(isa, block, scratch)
                });
            }
        }
    }

    #[test]
    fn one_fiber_is_its_mean_plus_the_shrunk_deviation() {
        let solver = Reweighted::new(4, 3.0);
        let mut g = [0.0_f64, 0.0, 0.0, 8.0]; // mean 2
        let mut scratch = vec![0.0; BlockSolver::<f64>::scratch_len(&solver, 1)];
        solver.solve(&mut RowBlock::new(&mut g, 4, 1, 1).unwrap(), &mut scratch);
        assert_eq!(g, [1.5, 1.5, 1.5, 3.5]); // 2 + (g - 2) / 4
    }
}
