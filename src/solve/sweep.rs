//! The two sweeps of every Sobolev H1 operator (Neumann, Dirichlet, periodic) on an `n × w` block,
//! with the coefficients of [`SweepCoefficients`] and the carries between rows kept in `f64`.

use std::sync::OnceLock;

use crate::Element;

use super::coefficients::{SweepCoefficients, OUT_SCALE};
use super::simd::{self, load_row, store_row, F32s, F64s};
use super::{from_f64, to_f64, BlockSolver, Isa, RowBlock};
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

    /// Both sweeps on every column of `block` with `f64` carries, a strip of `S` columns at a time.
    #[inline(always)]
    fn wide_strips<T: Element, const S: usize>(&self, block: &mut RowBlock<'_, T>) {
        let c = &self.coefficients;
        debug_assert_eq!(block.rows(), c.n);
        let (origin, stride, width) = block.raw_parts();
        // Strips of single-column "vectors": `S` columns, then 4, 2 and 1.
        for (start, columns) in strips(width, 1, S) {
            // SAFETY: columns `start..` of every row of the block we borrow, as many as the strip.
            unsafe {
                let p = origin.add(start);
                match columns {
                    w if w == S => wide_strip::<T, S>(c, p, stride),
                    4 => wide_strip::<T, 4>(c, p, stride),
                    2 => wide_strip::<T, 2>(c, p, stride),
                    _ => wide_strip::<T, 1>(c, p, stride),
                }
            }
        }
    }

    /// Both sweeps on every column of `block` in `f32` arithmetic, `K` vectors of `V` at a time.
    #[inline(always)]
    fn f32_vector_strips<V: F32s, const K: usize>(&self, block: &mut RowBlock<'_, f32>) {
        let c = self.native32();
        let (n, m) = (self.coefficients.n, self.coefficients.m);
        debug_assert_eq!(block.rows(), n);
        let (origin, stride, width) = block.raw_parts();
        for (start, vectors) in strips(width, V::LANES, K) {
            // SAFETY: columns `start..` of every row of the block we borrow, as many as the strip.
            unsafe {
                let p = origin.add(start);
                match vectors {
                    v if v == K => f32_vector_strip::<V, K>(c, n, m, p, stride),
                    4 => f32_vector_strip::<V, 4>(c, n, m, p, stride),
                    2 => f32_vector_strip::<V, 2>(c, n, m, p, stride),
                    1 => f32_vector_strip::<V, 1>(c, n, m, p, stride),
                    _ => f32_strip::<1>(c, n, m, p, stride),
                }
            }
        }
    }

    /// Both sweeps on every column of `block`, in the vector build for `isa` (one this CPU runs).
    pub(crate) fn solve_on<T: Element>(&self, isa: Isa, block: &mut RowBlock<'_, T>) {
        assert!(isa <= super::isa(), "{isa:?} is not available on this CPU");
        // SAFETY (each build): the CPU runs `isa`, asserted above.
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.solve_avx512(block) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.solve_avx2(block) },
            _ => self.strips::<T, simd::Baseline, simd::Baseline64, 4, 4, 8>(block),
        }
    }

    /// The strips of the arithmetic `T` takes: `f32` in `KW` vectors of `W`, `f64` in `KD`
    /// vectors of `D`, `f32` with `f64` carries in strips of `SW` columns.
    #[inline(always)]
    fn strips<T: Element, W: F32s, D: F64s, const KW: usize, const KD: usize, const SW: usize>(
        &self,
        block: &mut RowBlock<'_, T>,
    ) {
        if let Some(block) = block.as_f64() {
            self.f64_vector_strips::<D, KD>(block)
        } else if self.uses_f32_arithmetic() {
            let block = block.as_f32().expect("an element that is not f64 is f32");
            self.f32_vector_strips::<W, KW>(block)
        } else {
            self.wide_strips::<T, SW>(block)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn solve_avx512<T: Element>(&self, block: &mut RowBlock<'_, T>) {
        self.strips::<T, simd::Avx512, simd::Avx512x64, 8, 8, 32>(block)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn solve_avx2<T: Element>(&self, block: &mut RowBlock<'_, T>) {
        self.strips::<T, simd::Avx2, simd::Avx2x64, 4, 4, 16>(block)
    }

    /// Both sweeps on every column of an `f64` block, `K` vectors of `V` at a time.
    #[inline(always)]
    fn f64_vector_strips<V: F64s, const K: usize>(&self, block: &mut RowBlock<'_, f64>) {
        let c = &self.coefficients;
        debug_assert_eq!(block.rows(), c.n);
        let (origin, stride, width) = block.raw_parts();
        for (start, vectors) in strips(width, V::LANES, K) {
            // SAFETY: columns `start..` of every row of the block we borrow, as many as the strip.
            unsafe {
                let p = origin.add(start);
                match vectors {
                    v if v == K => f64_vector_strip::<V, K>(c, p, stride),
                    4 => f64_vector_strip::<V, 4>(c, p, stride),
                    2 => f64_vector_strip::<V, 2>(c, p, stride),
                    1 => f64_vector_strip::<V, 1>(c, p, stride),
                    _ => wide_strip::<f64, 1>(c, p, stride),
                }
            }
        }
    }
}

impl<T: Element> BlockSolver<T> for Sweep {
    fn len(&self) -> usize {
        self.coefficients.n
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
        let _ = scratch;
        self.solve_on(super::isa(), block);
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
}

/// A value that overflowed although what it was made of is finite: the exact answer is at most
/// the largest input (maximum principle), so the overflow is rounding: `±f32::MAX`.
#[inline(always)]
pub(crate) fn clamp_f32(x: f32, operands_finite: bool) -> f32 {
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

/// Both `f32` sweeps on the `K·V::LANES` columns from `origin` of `n` rows `stride` apart, the
/// carries of every column held in `K` vector registers down the rows and back: each value is read
/// once and written twice, and the strip stays in cache between the sweeps. The same operations
/// in the same order as [`f32_strip`], lane by lane.
///
/// # Safety
/// As [`f32_strip`], with `S = K·V::LANES`.
#[inline(always)]
unsafe fn f32_vector_strip<V: F32s, const K: usize>(
    c: &Native32,
    n: usize,
    m: usize,
    origin: *mut f32,
    stride: isize,
) {
    // SAFETY (`load`, `store`): the caller vouches for `K·LANES` values from every row `i < n`.
    let load = |i: usize| unsafe { load_row::<V, K>(origin.offset(i as isize * stride)) };
    let store = |i: usize, v: &[V; K]| unsafe { store_row(origin.offset(i as isize * stride), v) };
    let spiked = m < n;
    let prefetch = worth_prefetching(n, stride, 4);
    let zero = V::splat(0.0);
    // One vector of keys for the whole strip (a tree of maxima per row): registers go to the carries.
    let mut largest = zero;
    let mut last = [zero; K];
    if spiked {
        let g = load(n - 1);
        let gamma = V::splat(c.gamma);
        largest = largest_of(&g, largest);
        for k in 0..K {
            last[k] = g[k].mul(gamma);
        }
    }
    let mut z = load(0);
    let alpha = V::splat(c.alpha[0]);
    largest = largest_of(&z, largest);
    for z in z.iter_mut() {
        *z = z.mul(alpha);
    }
    store(0, &z);
    for i in 0..m {
        // The rows ahead are `stride` apart, too far for the hardware prefetchers to follow.
        if prefetch {
            let ahead = origin.wrapping_offset((i + PREFETCH_ROWS).min(n - 1) as isize * stride);
            for k in 0..K {
                V::prefetch(ahead.wrapping_add(k * V::LANES));
            }
        }
        if i > 0 {
            let g = load(i);
            let (alpha, coupling) = (V::splat(c.alpha[i]), V::splat(c.coupling[i]));
            largest = largest_of(&g, largest);
            for k in 0..K {
                z[k] = alpha.mul(g[k]).add(coupling.mul(z[k]));
            }
            store(i, &z);
        }
        if c.kappa[i] != 0.0 {
            let kappa = V::splat(c.kappa[i]);
            for k in 0..K {
                last[k] = last[k].add_clamped(kappa, z[k]);
            }
        }
    }
    let exact = V::keys_at_most(largest, magnitude_bits(F32_SAFE));
    if !exact {
        // Inputs near the largest float: the backward sweep lane by lane, with its clamps.
        if spiked {
            store(n - 1, &last);
        }
        for k in 0..K * V::LANES {
            // SAFETY: column `k` of the strip, whose last row (if spiked) holds its sum.
            unsafe {
                let column = origin.add(k);
                let last = if spiked {
                    *column.offset((n - 1) as isize * stride)
                } else {
                    0.0
                };
                f32_backward::<1>(c, n, m, column, stride, [last], false);
            }
        }
        return;
    }
    let beta = V::splat(c.beta);
    let mut x = last;
    let top = if spiked {
        store(n - 1, &last);
        m
    } else {
        let z = load(m - 1);
        for k in 0..K {
            x[k] = beta.mul(z[k]).add(zero);
        }
        store(m - 1, &x);
        m - 1
    };
    for i in (0..top).rev() {
        let z = load(i);
        let coupling = V::splat(c.coupling[i]);
        if c.mu[i] == 0.0 {
            for k in 0..K {
                x[k] = beta.mul(z[k]).add(coupling.mul(x[k]));
            }
        } else {
            let mu = V::splat(c.mu[i]);
            for k in 0..K {
                x[k] = beta.mul(z[k]).add(coupling.mul(x[k])).add(mu.mul(last[k]));
            }
        }
        store(i, &x);
    }
}

/// Whether a strip's rows (`n` of them, `stride` values of `bytes` apart) span more than a cache
/// keeps: then the forward sweep asks for its rows ahead; in cache, the hints only cost.
#[inline(always)]
fn worth_prefetching(n: usize, stride: isize, bytes: usize) -> bool {
    n.saturating_mul(stride.unsigned_abs())
        .saturating_mul(bytes)
        > PREFETCH_FROM_BYTES
}

/// The span of rows from which prefetching pays: a quarter of a 2 MiB L2.
const PREFETCH_FROM_BYTES: usize = 512 << 10;

/// How many rows ahead the forward sweep of a strip asks for its input.
const PREFETCH_ROWS: usize = 6;

/// The strips of a block `width` columns wide, left to right, as (first column, vectors): strips
/// of `k` vectors of `lanes` while they fit, then one of 4 and one of 2 (as many carries in
/// flight as the width allows), then of 1, then single columns (0 vectors).
fn strips(width: usize, lanes: usize, k: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut start = 0;
    let mut vectors = k;
    std::iter::from_fn(move || loop {
        if vectors == 0 {
            return (start < width).then(|| {
                start += 1;
                (start - 1, 0)
            });
        }
        if start + vectors * lanes <= width {
            start += vectors * lanes;
            let strip = (start - vectors * lanes, vectors);
            if vectors != k && vectors != 1 {
                vectors /= 2; // one strip of 4 and one of 2 at most
            }
            return Some(strip);
        }
        vectors = if vectors == k && k > 4 {
            4
        } else {
            vectors / 2
        };
    })
}

/// The lane-wise maximum of `keys` and the bits of `|g|` over the `K` vectors of `row`.
#[inline(always)]
fn largest_of<V: F32s, const K: usize>(row: &[V; K], keys: V) -> V {
    let mut m = *row;
    for v in m.iter_mut() {
        *v = v.max_magnitude(V::splat(0.0));
    }
    let mut width = K;
    while width > 1 {
        let half = width / 2;
        for k in 0..half {
            m[k] = m[k].max_keys(m[k + half]);
        }
        if width % 2 == 1 {
            m[0] = m[0].max_keys(m[width - 1]);
        }
        width = half;
    }
    keys.max_keys(m[0])
}

/// Both `f32` sweeps on the `S` columns from `origin` of `n` rows `stride` apart, the carries of
/// all `S` fibers held in registers down the rows and back: each value is read once and written
/// twice, and the strip (`n·S` values) stays in cache between the sweeps.
///
/// # Safety
/// The `S` values from `origin + i·stride` must be valid and uniquely borrowed for every `i < n`,
/// and disjoint from each other.
#[inline(always)]
unsafe fn f32_strip<const S: usize>(
    c: &Native32,
    n: usize,
    m: usize,
    origin: *mut f32,
    stride: isize,
) {
    // SAFETY: rows `0..n` of the strip are valid (the caller's contract).
    let row = |i: usize| unsafe { &mut *origin.offset(i as isize * stride).cast::<[f32; S]>() };
    let spiked = m < n;
    let mut largest = [0u32; S];
    let mut last = [0.0f32; S];
    if spiked {
        for ((l, v), &g) in largest.iter_mut().zip(&mut last).zip(row(n - 1).iter()) {
            *l = (*l).max(magnitude_bits(g));
            *v = g * c.gamma;
        }
    }
    let mut z = [0.0f32; S];
    for i in 0..m {
        let (alpha, coupling, kappa) = (c.alpha[i], c.coupling[i], c.kappa[i]);
        let r = row(i);
        for ((l, z), g) in largest.iter_mut().zip(&mut z).zip(r.iter_mut()) {
            *l = (*l).max(magnitude_bits(*g));
            *z = if i == 0 {
                *g * alpha
            } else {
                alpha * *g + coupling * *z
            };
            *g = *z;
        }
        if kappa != 0.0 {
            // Partial sums of the last row are bounded by the largest input: only rounding can
            // take them past the largest float.
            for (v, &z) in last.iter_mut().zip(&z) {
                *v = clamp_f32(*v + kappa * z, v.is_finite() && z.is_finite());
            }
        }
    }
    let exact = largest.iter().all(|&l| l <= magnitude_bits(F32_SAFE));
    // SAFETY: the caller's contract.
    unsafe { f32_backward::<S>(c, n, m, origin, stride, last, exact) };
}

/// The backward sweep of [`f32_strip`] on the `S` columns from `origin` whose forward sweep is
/// done, from `last` (the last row's values, spiked) or, on row m − 1, from β·z + 0; with the
/// clamps unless `exact` (no input near the largest float).
///
/// # Safety
/// As [`f32_strip`].
#[inline(always)]
unsafe fn f32_backward<const S: usize>(
    c: &Native32,
    n: usize,
    m: usize,
    origin: *mut f32,
    stride: isize,
    last: [f32; S],
    exact: bool,
) {
    // SAFETY: rows `0..n` of the strip are valid (the caller's contract).
    let row = |i: usize| unsafe { &mut *origin.offset(i as isize * stride).cast::<[f32; S]>() };
    let spiked = m < n;
    let mut x = last;
    let top = if spiked {
        *row(n - 1) = last;
        m
    } else {
        for (x, z) in x.iter_mut().zip(row(m - 1).iter_mut()) {
            let value = c.beta * *z + 0.0;
            *x = if exact {
                value
            } else {
                clamp_f32(value, z.is_finite())
            };
            *z = *x;
        }
        m - 1
    };
    for i in (0..top).rev() {
        let (beta, coupling, mu) = (c.beta, c.coupling[i], c.mu[i]);
        let r = row(i);
        match (mu == 0.0, exact) {
            (true, true) => {
                for (x, z) in x.iter_mut().zip(r.iter_mut()) {
                    *x = beta * *z + coupling * *x;
                    *z = *x;
                }
            }
            (false, true) => {
                for ((x, z), &l) in x.iter_mut().zip(r.iter_mut()).zip(&last) {
                    *x = beta * *z + coupling * *x + mu * l;
                    *z = *x;
                }
            }
            _ => {
                for ((x, z), &l) in x.iter_mut().zip(r.iter_mut()).zip(&last) {
                    // The same operations as the unclamped kernels (no `+ 0·l` where μ = 0).
                    let value = if mu == 0.0 {
                        beta * *z + coupling * *x
                    } else {
                        beta * *z + coupling * *x + mu * l
                    };
                    *x = clamp_f32(value, z.is_finite() && x.is_finite() && l.is_finite());
                    *z = *x;
                }
            }
        }
    }
}

/// Both sweeps with `f64` carries on the `S` columns from `origin` (see [`f32_strip`]): `z` is
/// stored in the element type between the sweeps and the carries stay in `f64`, so `f32` storage
/// rounds each value once instead of once per step of a recurrence that can span thousands of
/// rows.
///
/// # Safety
/// As [`f32_strip`].
#[inline(always)]
unsafe fn wide_strip<T: Element, const S: usize>(
    c: &SweepCoefficients,
    origin: *mut T,
    stride: isize,
) {
    // SAFETY: rows `0..n` of the strip are valid (the caller's contract).
    let row = |i: usize| unsafe { &mut *origin.offset(i as isize * stride).cast::<[T; S]>() };
    let (n, m) = (c.n, c.m);
    let spiked = m < n;
    let mut largest = [0u32; S];
    if spiked {
        for (l, &g) in largest.iter_mut().zip(row(n - 1).iter()) {
            *l = (*l).max(magnitude_key(g));
        }
    }
    let mut z = [0.0f64; S];
    let mut acc = [0.0f64; S];
    for i in 0..m {
        let (alpha, coupling, kappa) = (c.alpha.get(i), c.coupling.get(i), c.kappa.get(i));
        for ((l, z), g) in largest.iter_mut().zip(&mut z).zip(row(i).iter_mut()) {
            *l = (*l).max(magnitude_key(*g));
            *z = if i == 0 {
                alpha * to_f64(*g)
            } else {
                alpha * to_f64(*g) + coupling * *z
            };
            *g = from_f64(*z);
        }
        if kappa != 0.0 {
            for (a, &z) in acc.iter_mut().zip(&z) {
                *a += kappa * z;
            }
        }
    }
    // Only values near the largest float can make `8·x̃` round past it: then store clamped.
    if largest.iter().all(|&l| far_from_overflow::<T>(l)) {
        wide_backward::<T, S, false>(c, row, acc);
    } else {
        wide_backward::<T, S, true>(c, row, acc);
    }
}

/// Both sweeps of [`wide_strip`] on `K·V::LANES` columns of `f64` from `origin`, the carries
/// held in `K` vector registers (see [`f32_vector_strip`]): the same operations in the same order,
/// lane by lane.
///
/// # Safety
/// As [`f32_strip`], with `S = K·V::LANES`.
#[inline(always)]
unsafe fn f64_vector_strip<V: F64s, const K: usize>(
    c: &SweepCoefficients,
    origin: *mut f64,
    stride: isize,
) {
    // SAFETY (`load`, `store`): the caller vouches for `K·LANES` values from every row `i < n`.
    let load = |i: usize| unsafe { load_row::<V, K>(origin.offset(i as isize * stride)) };
    let store = |i: usize, v: &[V; K]| unsafe { store_row(origin.offset(i as isize * stride), v) };
    let (n, m) = (c.n, c.m);
    let spiked = m < n;
    let prefetch = worth_prefetching(n, stride, 8);
    let zero = V::splat(0.0);
    let mut largest = [zero; K];
    if spiked {
        let g = load(n - 1);
        for k in 0..K {
            largest[k] = g[k].max_magnitude(largest[k]);
        }
    }
    let mut z = [zero; K];
    let mut acc = [zero; K];
    for i in 0..m {
        if prefetch {
            let ahead = origin.wrapping_offset((i + PREFETCH_ROWS).min(n - 1) as isize * stride);
            for k in 0..K {
                V::prefetch(ahead.wrapping_add(k * V::LANES));
            }
        }
        let g = load(i);
        let alpha = V::splat(c.alpha.get(i));
        if i == 0 {
            for k in 0..K {
                largest[k] = g[k].max_magnitude(largest[k]);
                z[k] = alpha.mul(g[k]);
            }
        } else {
            let coupling = V::splat(c.coupling.get(i));
            for k in 0..K {
                largest[k] = g[k].max_magnitude(largest[k]);
                z[k] = alpha.mul(g[k]).add(coupling.mul(z[k]));
            }
        }
        store(i, &z);
        let kappa = c.kappa.get(i);
        if kappa != 0.0 {
            let kappa = V::splat(kappa);
            for k in 0..K {
                acc[k] = acc[k].add(kappa.mul(z[k]));
            }
        }
    }
    // The `f64` key of `MAX/16` with every low bit set: `far_from_overflow` on the upper half.
    let limit = (u64::from(magnitude_key(f64::MAX / 16.0)) << 32) | u64::from(u32::MAX);
    if !largest.iter().all(|&l| V::keys_at_most(l, limit)) {
        // Inputs near the largest float: the last row and the backward sweep lane by lane, clamped.
        let mut sums = [0.0; 64];
        for (k, a) in acc.iter().enumerate() {
            // SAFETY: `sums` holds `K·LANES ≤ 64` values.
            unsafe { a.store(sums.as_mut_ptr().add(k * V::LANES)) };
        }
        for (column, &sum) in sums[..K * V::LANES].iter().enumerate() {
            // SAFETY: column `column` of the strip, valid for every row (the caller's contract).
            let row = |i: usize| unsafe {
                &mut *origin
                    .offset(i as isize * stride)
                    .add(column)
                    .cast::<[f64; 1]>()
            };
            wide_backward::<f64, 1, true>(c, row, [sum]);
        }
        return;
    }
    let (beta, scale) = (V::splat(c.beta), V::splat(OUT_SCALE));
    let mut x = [zero; K];
    if spiked {
        let g = load(n - 1);
        let gamma = V::splat(c.gamma);
        let mut out = [zero; K];
        for k in 0..K {
            acc[k] = acc[k].add(gamma.mul(g[k]));
            x[k] = acc[k];
            out[k] = scale.mul(x[k]);
        }
        store(n - 1, &out);
    }
    for i in (0..m).rev() {
        let z = load(i);
        let (coupling, mu) = (V::splat(c.coupling.get(i)), c.mu.get(i));
        let mut out = [zero; K];
        if mu == 0.0 {
            for k in 0..K {
                x[k] = beta.mul(z[k]).add(coupling.mul(x[k]));
                out[k] = scale.mul(x[k]);
            }
        } else {
            let mu = V::splat(mu);
            for k in 0..K {
                x[k] = beta.mul(z[k]).add(coupling.mul(x[k])).add(mu.mul(acc[k]));
                out[k] = scale.mul(x[k]);
            }
        }
        store(i, &out);
    }
}

/// The last row (if any) and the backward sweep of [`wide_strip`], storing `8·x̃` with or without
/// the clamp; `acc` holds the forward rows' share of the last row.
#[inline(always)]
fn wide_backward<'a, T: Element + 'a, const S: usize, const CLAMP: bool>(
    c: &SweepCoefficients,
    row: impl Fn(usize) -> &'a mut [T; S],
    mut acc: [f64; S],
) {
    let (n, m) = (c.n, c.m);
    let mut x = [0.0f64; S];
    if m < n {
        for ((a, x), g) in acc.iter_mut().zip(&mut x).zip(row(n - 1).iter_mut()) {
            *a += c.gamma * to_f64(*g);
            *x = *a;
            *g = store::<T, CLAMP>(*a);
        }
    }
    for i in (0..m).rev() {
        let (beta, coupling, mu) = (c.beta, c.coupling.get(i), c.mu.get(i));
        let r = row(i);
        if mu == 0.0 {
            for (x, z) in x.iter_mut().zip(r.iter_mut()) {
                *x = beta * to_f64(*z) + coupling * *x;
                *z = store::<T, CLAMP>(*x);
            }
        } else {
            for ((x, z), &l) in x.iter_mut().zip(r.iter_mut()).zip(&acc) {
                *x = beta * to_f64(*z) + coupling * *x + mu * l;
                *z = store::<T, CLAMP>(*x);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::solve::testing::builds_match_one_column_at_a_time;

    pub(crate) fn builds_match<T: Element>() {
        for boundary in [Boundary::Neumann, Boundary::Periodic, Boundary::Dirichlet] {
            for n in [1, 2, 3, 5, 17, 64, 130] {
                if n == 1 && boundary != Boundary::Dirichlet {
                    continue;
                }
                for lambda in [0.5, 1.0, 3e3] {
                    let sweep = Sweep::sobolev(n, lambda, boundary);
                    let label = format!("{boundary:?} n={n} λ={lambda}");
                    builds_match_one_column_at_a_time::<T>(n, &label, |isa, block, _| {
                        sweep.solve_on(isa, block)
                    });
                }
            }
        }
    }

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
