//! The two sweeps of every Sobolev H1 operator (Neumann, Dirichlet, periodic) on an `n × w` block,
//! with the coefficients of [`SweepCoefficients`] and the carries between rows kept in `f64`.

use std::sync::OnceLock;

use crate::Element;

use super::coefficients::{SweepCoefficients, OUT_SCALE};
use super::{from_f64, to_f64, wide_vector_build, BlockSolver, RowBlock};
use crate::threading::Par;
use crate::Boundary;

/// `f32` tensors are swept in `f32` arithmetic where [`SweepCoefficients::f32_error_bound`] is at
/// most this (a tenth of the `10⁻⁵·max|g|` the crate guarantees for `f32`), in `f64` otherwise.
pub const F32_ARITHMETIC_BOUND: f64 = 1e-6;

/// `A = I + λL` solved by the forward and backward sweeps of its `LDLᵀ` factorization.
///
/// The forward result `z` is stored in the block (in its element type) between the sweeps; the
/// value carried from one row to the next stays in `f64` scratch, so `f32` storage rounds each
/// value once instead of once per step of a recurrence that can span thousands of rows.
///
/// ```
/// use chandir::solve::Sweep;
/// use chandir::Boundary;
///
/// let sweep = Sweep::sobolev(3, 1.0, Boundary::Neumann);
/// // A = [[2,-1,0],[-1,3,-1],[0,-1,2]]; A·[1,1,1] = [1,1,1]
/// let x = sweep.coefficients().solve_one(&[1.0, 1.0, 1.0]);
/// assert!(x.iter().all(|&v| (v - 1.0).abs() < 1e-15));
/// assert!(sweep.uses_f32_arithmetic()); // λ = 1: f32 tensors are swept in f32
/// ```
#[derive(Debug, Clone)]
pub struct Sweep {
    pub(crate) coefficients: SweepCoefficients,
    /// Whether `f32` blocks may run in `f32` arithmetic; decided on the first `f32` block.
    f32_arithmetic: OnceLock<bool>,
    /// The coefficients rounded to `f32`, made on the first `f32`-arithmetic block.
    native32: OnceLock<Native32>,
}

impl Sweep {
    /// The sweeps of `I + λL` for fibers of length `n` (see [`SweepCoefficients::sobolev`]).
    pub fn sobolev(n: usize, lambda: f64, boundary: Boundary) -> Self {
        Sweep {
            coefficients: SweepCoefficients::sobolev(n, lambda, boundary),
            f32_arithmetic: OnceLock::new(),
            native32: OnceLock::new(),
        }
    }

    /// The coefficients the sweeps apply.
    pub fn coefficients(&self) -> &SweepCoefficients {
        &self.coefficients
    }

    /// Whether `f32` tensors are swept in `f32` arithmetic: where the first-order error bound of
    /// those sweeps is at most [`F32_ARITHMETIC_BOUND`] (small λ: up to about 3.3 for Neumann
    /// and Dirichlet, 1.7 for periodic); otherwise they run in `f64`, like every `f64` tensor.
    ///
    /// ```
    /// use chandir::solve::Sweep;
    /// use chandir::Boundary;
    ///
    /// assert!(Sweep::sobolev(64, 1.0, Boundary::Neumann).uses_f32_arithmetic());
    /// assert!(!Sweep::sobolev(64, 1e4, Boundary::Neumann).uses_f32_arithmetic());
    /// ```
    pub fn uses_f32_arithmetic(&self) -> bool {
        *self
            .f32_arithmetic
            .get_or_init(|| super::f32_arithmetic_allowed(self.coefficients.f32_error_bound()))
    }

    #[inline(always)]
    fn sweep<T: Element>(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        let c = &self.coefficients;
        let (n, m) = (c.n, c.m);
        debug_assert_eq!(block.rows(), n);
        let w = block.width();
        let (carry, rest) = scratch.split_at_mut(w);
        let last = &mut rest[..w];
        last.fill(0.0);
        let mut largest = 0;
        if m < n {
            largest = block
                .row(n - 1)
                .iter()
                .fold(0, |l, &g| l.max(magnitude_key(g)));
        }
        for i in 0..m {
            let (alpha, coupling) = (c.alpha.get(i), c.coupling.get(i));
            largest = largest.max(if i == 0 {
                forward_first(block.row(0), carry, alpha)
            } else {
                forward(block.row(i), carry, alpha, coupling)
            });
            let kappa = c.kappa.get(i);
            if kappa != 0.0 {
                accumulate(last, carry, kappa);
            }
        }
        // Only values near the largest float can make `8·x̃` round past it: then store clamped.
        if far_from_overflow::<T>(largest) {
            self.backward_rows::<T, false>(block, carry, last);
        } else {
            self.backward_rows::<T, true>(block, carry, last);
        }
    }

    /// The last row (if any) and the backward sweep, storing with or without the clamp.
    #[inline(always)]
    fn backward_rows<T: Element, const CLAMP: bool>(
        &self,
        block: &mut RowBlock<'_, T>,
        carry: &mut [f64],
        last: &mut [f64],
    ) {
        let c = &self.coefficients;
        let (n, m) = (c.n, c.m);
        if m < n {
            last_row::<T, CLAMP>(block.row(n - 1), carry, last, c.gamma);
        } else {
            carry.fill(0.0);
        }
        for i in (0..m).rev() {
            let (coupling, mu) = (c.coupling.get(i), c.mu.get(i));
            if mu == 0.0 {
                backward::<T, CLAMP>(block.row(i), carry, c.beta, coupling);
            } else {
                backward_spiked::<T, CLAMP>(block.row(i), carry, last, c.beta, coupling, mu);
            }
        }
    }

    wide_vector_build!(sweep, sweep_avx2, sweep_dispatch);
}

impl<T: Element> BlockSolver<T> for Sweep {
    fn len(&self) -> usize {
        self.coefficients.n
    }

    fn scratch_len(&self, width: usize) -> usize {
        2 * width
    }

    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64], par: Par) {
        super::long_fiber::sobolev(self, fiber, scratch, par);
    }

    unsafe fn solve_eight_contiguous(&self, fibers: [*mut T; 8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if T::IS_F32 && self.uses_f32_arithmetic() && super::has_avx2() {
            let (n, m) = (self.coefficients.n, self.coefficients.m);
            // SAFETY: `T` is `f32` and AVX2 is present (checked above); the caller vouches for
            // the fibers.
            unsafe {
                super::transposed::sweep_eight(
                    self.native32(),
                    fibers.map(|f| f.cast::<f32>()),
                    n,
                    m,
                    magnitude_bits(F32_SAFE),
                )
            };
            return true;
        }
        let _ = fibers;
        false
    }

    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        if T::IS_F32 && self.uses_f32_arithmetic() {
            // SAFETY: `T` is `f32` (checked just above), so the block's rows are rows of `f32`.
            let block =
                unsafe { &mut *(block as *mut RowBlock<'_, T>).cast::<RowBlock<'_, f32>>() };
            return self.sweep_f32_dispatch(block);
        }
        self.sweep_dispatch(block, scratch);
    }
}

/// Inputs at most this large cannot make an `f32` sweep overflow (`|x| ≤ max|g|` up to rounding).
const F32_SAFE: f32 = f32::MAX / 16.0;

/// The coefficients of the `f32` sweeps, rounded once: `x` itself is carried (`8·x̃`), so the
/// output scale is folded into β, γ and κ (exact: a power of two).
#[derive(Debug, Clone)]
pub(crate) struct Native32 {
    pub(crate) alpha: Vec<f32>,
    pub(crate) coupling: Vec<f32>,
    pub(crate) kappa: Vec<f32>,
    pub(crate) mu: Vec<f32>,
    pub(crate) beta: f32,
    pub(crate) gamma: f32,
}

impl Native32 {
    fn new(c: &SweepCoefficients) -> Self {
        let scale = OUT_SCALE as f32;
        let rows = |f: &dyn Fn(usize) -> f32| (0..c.m).map(f).collect::<Vec<f32>>();
        Native32 {
            alpha: rows(&|i| c.alpha.get(i) as f32),
            coupling: rows(&|i| c.coupling.get(i) as f32),
            kappa: rows(&|i| scale * c.kappa.get(i) as f32),
            mu: rows(&|i| c.mu.get(i) as f32),
            beta: scale * c.beta as f32,
            gamma: scale * c.gamma as f32,
        }
    }
}

impl Sweep {
    /// The rounded `f32` coefficients, made on first use.
    pub(crate) fn native32(&self) -> &Native32 {
        self.native32
            .get_or_init(|| Native32::new(&self.coefficients))
    }

    /// Both sweeps in `f32` arithmetic, every carry read back from the block (where it is stored
    /// exactly).
    #[inline(always)]
    fn sweep_f32(&self, block: &mut RowBlock<'_, f32>) {
        let (n, m) = (self.coefficients.n, self.coefficients.m);
        let c = self.native32();
        let spiked = m < n;
        let mut largest = 0;
        if spiked {
            for g in block.row(n - 1) {
                largest = largest.max(magnitude_bits(*g));
                *g *= c.gamma;
            }
        }
        largest = largest.max(f32_forward_first(block.row(0), c.alpha[0]));
        for i in 0..m {
            if i > 0 {
                let (prev, row) = block.pair(i - 1, i);
                largest = largest.max(f32_forward(row, prev, c.alpha[i], c.coupling[i]));
            }
            if c.kappa[i] != 0.0 {
                let (row, last) = block.pair(i, n - 1);
                f32_accumulate(last, row, c.kappa[i]);
            }
        }
        let exact = largest <= magnitude_bits(F32_SAFE);
        if !spiked {
            // The last forward row starts the backward sweep: x = β·z + c·0.
            for z in block.row(m - 1) {
                let x = c.beta * *z + 0.0;
                *z = if exact {
                    x
                } else {
                    clamp_f32(x, z.is_finite())
                };
            }
        }
        let top = if spiked { m } else { m - 1 };
        for i in (0..top).rev() {
            let (coupling, mu) = (c.coupling[i], c.mu[i]);
            let (next, last, row) = if spiked {
                block.triple(i + 1, n - 1, i)
            } else {
                let (next, row) = block.pair(i + 1, i);
                (next, &[][..], row)
            };
            match (mu == 0.0, exact) {
                (true, true) => f32_backward(row, next, c.beta, coupling),
                (false, true) => f32_backward_spiked(row, next, last, c.beta, coupling, mu),
                _ => f32_backward_clamped(row, next, last, c.beta, coupling, mu),
            }
        }
    }

    wide_vector_build!(sweep_f32, sweep_f32_avx2, sweep_f32_dispatch, f32);
}

/// A value that overflowed although what it was made of is finite: the exact answer is at most
/// the largest input (maximum principle), so the overflow is rounding: `±f32::MAX`.
#[inline(always)]
fn clamp_f32(x: f32, operands_finite: bool) -> f32 {
    if x.is_infinite() && operands_finite {
        f32::MAX.copysign(x)
    } else {
        x
    }
}

/// The bits of `|v|`: ordered like `|v|` for every value, NaN above ∞, and an integer maximum
/// vectorizes where a float one (with its NaN rule) does not.
#[inline(always)]
fn magnitude_bits(v: f32) -> u32 {
    v.to_bits() & 0x7fff_ffff
}

/// `z = α·g`; returns the largest [`magnitude_bits`] of `g`.
#[inline(always)]
fn f32_forward_first(row: &mut [f32], alpha: f32) -> u32 {
    let mut largest = 0;
    for g in row.iter_mut() {
        largest = largest.max(magnitude_bits(*g));
        *g *= alpha;
    }
    largest
}

/// `z = α·g + c·z₋₁`; returns the largest [`magnitude_bits`] of `g`.
#[inline(always)]
fn f32_forward(row: &mut [f32], prev: &[f32], alpha: f32, coupling: f32) -> u32 {
    let mut largest = 0;
    for (g, &z) in row.iter_mut().zip(prev) {
        largest = largest.max(magnitude_bits(*g));
        *g = alpha * *g + coupling * z;
    }
    largest
}

/// `acc += κ·z`, clamped (a few rows per block: the partial sums of the last row are bounded
/// by the largest input, so only rounding can take them past the largest float).
#[inline(always)]
fn f32_accumulate(acc: &mut [f32], z: &[f32], kappa: f32) {
    for (a, &z) in acc.iter_mut().zip(z) {
        let sum = *a + kappa * z;
        *a = clamp_f32(sum, a.is_finite() && z.is_finite());
    }
}

/// `x = β·z + c·x₊₁`.
#[inline(always)]
fn f32_backward(row: &mut [f32], next: &[f32], beta: f32, coupling: f32) {
    for (z, &x) in row.iter_mut().zip(next) {
        *z = beta * *z + coupling * x;
    }
}

/// `x = β·z + c·x₊₁ + μ·xₙ₋₁`.
#[inline(always)]
fn f32_backward_spiked(
    row: &mut [f32],
    next: &[f32],
    last: &[f32],
    beta: f32,
    coupling: f32,
    mu: f32,
) {
    for ((z, &x), &l) in row.iter_mut().zip(next).zip(last) {
        *z = beta * *z + coupling * x + mu * l;
    }
}

/// [`f32_backward_spiked`] (with `last` possibly empty) where inputs near the largest float may
/// round past it.
fn f32_backward_clamped(
    row: &mut [f32],
    next: &[f32],
    last: &[f32],
    beta: f32,
    coupling: f32,
    mu: f32,
) {
    for (j, (z, &x)) in row.iter_mut().zip(next).enumerate() {
        let l = last.get(j).copied().unwrap_or(0.0);
        // The same operations as the unclamped kernels (no `+ 0·l` where μ = 0).
        let value = if mu == 0.0 {
            beta * *z + coupling * x
        } else {
            beta * *z + coupling * x + mu * l
        };
        *z = clamp_f32(value, z.is_finite() && x.is_finite() && l.is_finite());
    }
}

/// `x = 8·x̃` in the storage type. With `CLAMP`, a finite `x̃` whose stored value rounds past
/// the largest float is the exact answer, at most the largest input by the maximum principle,
/// plus rounding: store `±MAX`, not `∞`. (Without, the caller knows no input is that large.)
#[inline(always)]
pub(crate) fn store<T: Element, const CLAMP: bool>(xt: f64) -> T {
    let x: T = from_f64(OUT_SCALE * xt);
    if CLAMP && x.is_infinite() && xt.is_finite() {
        T::max_value().copysign(x)
    } else {
        x
    }
}

/// A 32-bit key that grows with `|g|` (NaN above ∞): the bits of `|g|` for `f32`, their upper
/// half otherwise. An integer maximum of them vectorizes where a float one (with its NaN rule)
/// does not, and 32-bit lanes are twice as many as 64-bit ones.
#[inline(always)]
pub(crate) fn magnitude_key<T: Element>(g: T) -> u32 {
    if T::IS_F32 {
        // SAFETY: `T` is `f32`, checked just above.
        let bits: u32 = unsafe { std::mem::transmute_copy(&g) };
        bits & 0x7fff_ffff
    } else {
        ((to_f64(g).to_bits() >> 32) as u32) & 0x7fff_ffff
    }
}

/// Whether no input with keys up to `largest` can make a result round past the largest float:
/// every such input is below `MAX/8` (the key of `MAX/16`, give or take its dropped low bits).
#[inline(always)]
pub(crate) fn far_from_overflow<T: Element>(largest: u32) -> bool {
    largest <= magnitude_key(T::max_value() / from_f64(16.0))
}

/// `z = α·g` into the row and the carry; returns the largest [`magnitude_key`] of `g`.
#[inline(always)]
fn forward_first<T: Element>(row: &mut [T], carry: &mut [f64], alpha: f64) -> u32 {
    let mut largest = 0;
    for (g, z) in row.iter_mut().zip(carry.iter_mut()) {
        largest = largest.max(magnitude_key(*g));
        *z = alpha * to_f64(*g);
        *g = from_f64(*z);
    }
    largest
}

/// `z = α·g + c·z₋₁` into the row and the carry; returns the largest [`magnitude_key`] of `g`.
#[inline(always)]
fn forward<T: Element>(row: &mut [T], carry: &mut [f64], alpha: f64, coupling: f64) -> u32 {
    let mut largest = 0;
    for (g, z) in row.iter_mut().zip(carry.iter_mut()) {
        largest = largest.max(magnitude_key(*g));
        *z = alpha * to_f64(*g) + coupling * *z;
        *g = from_f64(*z);
    }
    largest
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
fn last_row<T: Element, const CLAMP: bool>(
    row: &mut [T],
    carry: &mut [f64],
    acc: &mut [f64],
    gamma: f64,
) {
    for ((g, x), a) in row.iter_mut().zip(carry.iter_mut()).zip(acc.iter_mut()) {
        *a += gamma * to_f64(*g);
        *x = *a;
        *g = store::<T, CLAMP>(*a);
    }
}

/// `x̃ = β·z + c·x̃₊₁` into the row (as `8·x̃`) and the carry.
#[inline(always)]
fn backward<T: Element, const CLAMP: bool>(
    row: &mut [T],
    carry: &mut [f64],
    beta: f64,
    coupling: f64,
) {
    for (z, x) in row.iter_mut().zip(carry.iter_mut()) {
        *x = beta * to_f64(*z) + coupling * *x;
        *z = store::<T, CLAMP>(*x);
    }
}

/// `x̃ = β·z + c·x̃₊₁ + μ·x̃ₙ₋₁` into the row (as `8·x̃`) and the carry.
#[inline(always)]
fn backward_spiked<T: Element, const CLAMP: bool>(
    row: &mut [T],
    carry: &mut [f64],
    last: &[f64],
    beta: f64,
    coupling: f64,
    mu: f64,
) {
    for ((z, x), &l) in row.iter_mut().zip(carry.iter_mut()).zip(last) {
        *x = beta * to_f64(*z) + coupling * *x + mu * l;
        *z = store::<T, CLAMP>(*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_fiber_passes_through_the_block_kernel() {
        let solver = Sweep::sobolev(3, 1.0, Boundary::Neumann);
        // A = [[2,-1,0],[-1,3,-1],[0,-1,2]]; A·[1,1,1] = [1,1,1]
        let mut g = [1.0_f32, 1.0, 1.0];
        let mut scratch = vec![0.0; BlockSolver::<f32>::scratch_len(&solver, 1)];
        solver.solve(&mut RowBlock::new(&mut g, 3, 1, 1).unwrap(), &mut scratch);
        assert!(g.iter().all(|&v| (v - 1.0).abs() < 1e-7));
    }
}
