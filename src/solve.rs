//! How: kernels that solve `A x = g` for every column of an `n × w` block of rows at once.
//!
//! Row `i` of a block holds entry `i` of `w` independent fibers, so every step of a sweep is
//! one row operation (`row_i ← a·row_i + b·row_{i−1}`) that vectorizes over the columns. The
//! coefficients of the operator are computed once per call, in `f64`, in `O(n)`, without
//! cancellation (see [`SweepCoefficients`]); applying them costs `O(n·w)` per block. Arithmetic
//! runs in `f64` whatever the storage type, and the value carried from row to row stays in `f64`.
//!
//! An internal planner picks the kernel for a metric, rustfft-style, from the one decision of what
//! the operator is (identity, re-weighted, a sweep); each kernel lives in its own file. Public
//! here are the sweep coefficients ([`SweepCoefficients`], with the sequential reference solve
//! the block kernels are built from), the cached [`Sweep`] and the `f32` arithmetic rule
//! ([`F32_ARITHMETIC_BOUND`]) that the CPU and device kernels share.
//!
//! ```
//! use chandir::solve::SweepCoefficients;
//! use chandir::Boundary;
//!
//! // (I + L) x = e₀ on three channels, Neumann: the first column of A⁻¹.
//! let x = SweepCoefficients::sobolev(3, 1.0, Boundary::Neumann).solve_one(&[1.0, 0.0, 0.0]);
//! assert!((x[0] - 5.0 / 8.0).abs() < 1e-15);
//! assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-15); // Neumann keeps the mean
//! ```

mod coefficients;
mod long_fiber;
mod reweighted;
mod simd;
mod sweep;
mod transposed;

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::Element;

pub(crate) use coefficients::OUT_SCALE;
pub use coefficients::{ExpandedCoefficients, SweepCoefficients};
pub(crate) use reweighted::Reweighted;
pub(crate) use sweep::store;
pub use sweep::{Sweep, F32_ARITHMETIC_BOUND};
#[cfg(target_arch = "x86_64")]
pub(crate) use transposed::transpose8;

use crate::threading::Par;
use crate::{Boundary, Metric};

/// A solver for `A x = g` on every column of an `n × w` block. Object-safe.
pub(crate) trait BlockSolver<T>: Send + Sync {
    /// The fiber length `n` (the number of rows of every block).
    fn len(&self) -> usize;
    /// How many `f64` of scratch [`BlockSolver::solve`] needs for a block of `width` columns.
    fn scratch_len(&self, width: usize) -> usize {
        let _ = width;
        0
    }
    /// Overwrites each column `g` of `block` with `A⁻¹g`. `block.rows()` must equal [`BlockSolver::len`]
    /// and `scratch` must hold at least [`BlockSolver::scratch_len`] values.
    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]);

    /// How many `f64` of scratch [`BlockSolver::solve_fiber`] needs.
    fn fiber_scratch_len(&self) -> usize {
        self.scratch_len(1)
    }

    /// Overwrites eight contiguous fibers (fiber `k` is the [`BlockSolver::len`] values from
    /// `fibers[k]` on) with `A⁻¹g` in place, where the kernel can without packing them into a
    /// block; returns whether it did (the default: no).
    ///
    /// # Safety
    /// Each pointer must address `len()` valid values, borrowed uniquely; the fibers must not
    /// overlap.
    unsafe fn solve_eight_contiguous(&self, fibers: [*mut T; 8]) -> bool {
        let _ = fibers;
        false
    }

    /// Overwrites one contiguous fiber `g` (of length [`BlockSolver::len`]) with `A⁻¹g`: the case of
    /// [`crate::Direction::Flattened`], where a block would have a single column; `par` says
    /// whether a long fiber may be cut over threads.
    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64], par: Par) {
        let _ = par;
        let n = fiber.len();
        let mut block = RowBlock::new(fiber, n, 1, 1).expect("n values hold n rows of one");
        self.solve(&mut block, scratch);
    }
}

/// What the operator of a metric on fibers of length `n` is: the one decision every path (the
/// CPU kernels, the device kernels, burn, candle, the whole-model call) takes.
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    /// `A = I`: H0, λ = 0, empty fibers, and `n = 1` except for Dirichlet.
    Identity,
    /// Re-weighted H0 with this λ > 0 on fibers of two or more.
    Reweighted { lambda: f64 },
    /// Sobolev H1: its sweeps, with their coefficients and `f32` error bound, cached per thread.
    Sweep(Arc<Sweep>),
}

/// The operator of `metric` (valid, [`Metric::validate`]) on fibers of length `n`.
pub(crate) fn operator(metric: &Metric, n: usize) -> Operator {
    match *metric {
        _ if metric.lambda() == 0.0 || n == 0 => Operator::Identity,
        Metric::H0 => Operator::Identity,
        Metric::ReweightedH0 { .. } if n == 1 => Operator::Identity,
        Metric::ReweightedH0 { lambda } => Operator::Reweighted { lambda },
        Metric::SobolevH1 { boundary, .. } if n == 1 && boundary != Boundary::Dirichlet => {
            Operator::Identity
        }
        Metric::SobolevH1 { lambda, boundary } => {
            Operator::Sweep(cached_sweep(n, lambda, boundary))
        }
    }
}

/// Whether a kernel whose first-order `f32` error bound (relative to `max|g|`) is `bound` may do
/// its arithmetic in `f32`: the one rule of the CPU sweeps and the device kernels.
pub(crate) fn f32_arithmetic_allowed(bound: f64) -> bool {
    bound <= F32_ARITHMETIC_BOUND
}

/// The kernel for `metric` on fibers of length `n`, or `None` where the operator is the identity
/// (H0, λ = 0, `n ≤ 1` except for Dirichlet). `metric` must be valid ([`Metric::validate`]).
pub(crate) fn plan<T: Element>(metric: &Metric, n: usize) -> Option<Box<dyn BlockSolver<T>>> {
    match operator(metric, n) {
        Operator::Identity => None,
        Operator::Reweighted { lambda } => Some(Box::new(Reweighted::new(n, lambda))),
        Operator::Sweep(sweep) => Some(Box::new(sweep)),
    }
}

/// The sweeps for `(n, λ, boundary)`, shared: a training loop asks for the same few plans every
/// step (one per distinct channel count), and making one (coefficients, the `f32` error bound,
/// the rounded `f32` coefficients) costs about as much as smoothing a small tensor.
fn cached_sweep(n: usize, lambda: f64, boundary: Boundary) -> Arc<Sweep> {
    type Key = (usize, u64, Boundary);
    /// Enough for every distinct fiber length of a large model; beyond it the cache starts over.
    const CAPACITY: usize = 256;
    thread_local! {
        // One cache per thread: no lock, and no reference count shared between cores.
        static CACHE: RefCell<HashMap<Key, Arc<Sweep>>> = RefCell::new(HashMap::new());
    }
    let key = (n, lambda.to_bits(), boundary);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(sweep) = cache.get(&key) {
            return Arc::clone(sweep);
        }
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        let sweep = Arc::new(Sweep::sobolev(n, lambda, boundary));
        cache.insert(key, Arc::clone(&sweep));
        sweep
    })
}

impl<T: Element> BlockSolver<T> for Arc<Sweep> {
    fn len(&self) -> usize {
        BlockSolver::<T>::len(&**self)
    }
    fn scratch_len(&self, width: usize) -> usize {
        BlockSolver::<T>::scratch_len(&**self, width)
    }
    fn solve(&self, block: &mut RowBlock<'_, T>, scratch: &mut [f64]) {
        (**self).solve(block, scratch)
    }
    unsafe fn solve_eight_contiguous(&self, fibers: [*mut T; 8]) -> bool {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { (**self).solve_eight_contiguous(fibers) }
    }
    fn fiber_scratch_len(&self) -> usize {
        BlockSolver::<T>::fiber_scratch_len(&**self)
    }
    fn solve_fiber(&self, fiber: &mut [T], scratch: &mut [f64], par: Par) {
        (**self).solve_fiber(fiber, scratch, par)
    }
}

/// Per-row factors of a constant-coefficient operator: rows `0..head.len()` stored, then one steady
/// value repeated up to the special last rows in `tail`. The factors of `I + λL` converge to a
/// fixed point after a short head, so storing them costs `O(head)`, not `O(n)`, for long fibers.
#[derive(Debug, Clone)]
pub(crate) struct RowFactors {
    pub(crate) head: Vec<f64>,
    pub(crate) steady: f64,
    pub(crate) tail: Vec<f64>,
    pub(crate) len: usize,
}

impl RowFactors {
    /// Every row stored.
    pub(crate) fn full(values: Vec<f64>) -> Self {
        RowFactors {
            len: values.len(),
            head: values,
            steady: 0.0,
            tail: Vec::new(),
        }
    }

    /// `head`, then `steady` repeated, then `tail`: `len` rows in all.
    pub(crate) fn compressed(head: Vec<f64>, steady: f64, tail: Vec<f64>, len: usize) -> Self {
        debug_assert!(head.len() + tail.len() <= len);
        RowFactors {
            head,
            steady,
            tail,
            len,
        }
    }

    /// `len` rows of zero.
    pub(crate) fn zeros(len: usize) -> Self {
        RowFactors::compressed(Vec::new(), 0.0, Vec::new(), len)
    }

    /// The factor of row `i`.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> f64 {
        if i < self.head.len() {
            self.head[i]
        } else if i + self.tail.len() >= self.len {
            self.tail[i + self.tail.len() - self.len]
        } else {
            self.steady
        }
    }
}

/// `rows` rows of `width` values each, row `i` starting `i·stride` values after row 0 (the stride
/// may be negative), borrowed mutably. Rows never overlap (`width ≤ |stride|`), so a kernel may
/// hold several at once.
pub(crate) struct RowBlock<'a, T> {
    ptr: *mut T,
    rows: usize,
    stride: isize,
    width: usize,
    _borrow: PhantomData<&'a mut T>,
}

// SAFETY: a RowBlock is a unique borrow of its rows, like `&mut [T]`.
unsafe impl<T: Send> Send for RowBlock<'_, T> {}

impl<'a, T> RowBlock<'a, T> {
    /// Rows of `data`, or `None` if `width > stride` or `data` is too short.
    pub(crate) fn new(data: &'a mut [T], rows: usize, stride: usize, width: usize) -> Option<Self> {
        let needed = if rows == 0 {
            0
        } else {
            (rows - 1) * stride + width
        };
        if width > stride || stride > isize::MAX as usize || data.len() < needed {
            return None;
        }
        Some(RowBlock {
            ptr: data.as_mut_ptr(),
            rows,
            stride: stride as isize,
            width,
            _borrow: PhantomData,
        })
    }

    /// # Safety
    /// For `'a`, the `rows` ranges `ptr + i·stride .. ptr + i·stride + width` must be valid, uniquely
    /// borrowed and pairwise disjoint.
    pub(crate) unsafe fn from_raw_parts(
        ptr: *mut T,
        rows: usize,
        stride: isize,
        width: usize,
    ) -> Self {
        RowBlock {
            ptr,
            rows,
            stride,
            width,
            _borrow: PhantomData,
        }
    }

    /// The first value of row 0, the stride between rows and the width, for kernels that walk
    /// strips of columns themselves.
    pub(crate) fn raw_parts(&mut self) -> (*mut T, isize, usize) {
        (self.ptr, self.stride, self.width)
    }

    /// Number of rows (the fiber length).
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (independent fibers).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Columns `start .. start + width` of every row, as a block of its own.
    pub(crate) fn columns(&mut self, start: usize, width: usize) -> RowBlock<'_, T> {
        assert!(start + width <= self.width, "column range out of the block");
        // SAFETY: a sub-range of every row of a block we borrow uniquely.
        unsafe {
            RowBlock::from_raw_parts(self.ptr.wrapping_add(start), self.rows, self.stride, width)
        }
    }

    fn row_ptr(&self, i: usize) -> *mut T {
        assert!(
            i < self.rows,
            "row {i} out of a block of {} rows",
            self.rows
        );
        self.ptr.wrapping_offset(i as isize * self.stride)
    }

    /// Row `i`.
    pub(crate) fn row(&mut self, i: usize) -> &mut [T] {
        // SAFETY: row i is valid and uniquely borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.row_ptr(i), self.width) }
    }
}

impl<'a, T: Element> RowBlock<'a, T> {
    /// The block as rows of `f32`, where `T` is `f32`.
    pub(crate) fn as_f32(&mut self) -> Option<&mut RowBlock<'a, f32>> {
        // SAFETY: `T` is `f32` (checked), so the block's rows are rows of `f32`.
        T::IS_F32.then(|| unsafe { &mut *(self as *mut Self).cast::<RowBlock<'a, f32>>() })
    }

    /// The block as rows of `f64`, where `T` is `f64`.
    pub(crate) fn as_f64(&mut self) -> Option<&mut RowBlock<'a, f64>> {
        // SAFETY: the sealed `Element` is `f32` or `f64`, so `T` is `f64` (checked).
        (!T::IS_F32).then(|| unsafe { &mut *(self as *mut Self).cast::<RowBlock<'a, f64>>() })
    }
}

/// The vector instructions a kernel is built for: the widest the CPU runs ([`isa`]), or a
/// narrower one, which tests use to check every build against the portable one. Ordered from
/// the narrowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// What the target guarantees: NEON on aarch64; elsewhere (SSE2 on x86-64) portable lanes
    /// that the compiler vectorizes.
    Portable,
    /// AVX2 on x86-64.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F on x86-64.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// Every build this CPU runs, narrowest first.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        #[cfg(target_arch = "x86_64")]
        let all = [Isa::Portable, Isa::Avx2, Isa::Avx512];
        #[cfg(not(target_arch = "x86_64"))]
        let all = [Isa::Portable];
        all.into_iter().filter(|&isa| isa <= self::isa()).collect()
    }
}

/// The widest vector build this CPU runs, detected once.
pub(crate) fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

/// Whether the CPU runs the AVX2 kernels (the transposed tiles of contiguous `f32` fibers).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    isa() >= Isa::Avx2
}

pub(crate) use crate::element::{from_f64, to_f64};

/// What the kernels' unit tests share: inputs with extremes, and the check of every vector build
/// against the plain loop over one fiber at a time.
#[cfg(test)]
pub(crate) mod testing {
    use super::{to_f64, Isa, RowBlock};
    use crate::Element;

    /// `len` values in [−1, 1] (xorshift from `seed`); with `wild`, about one in ten is an
    /// extreme: ±∞, NaN, −0 or a value near the largest float.
    pub(crate) fn values<T: Element>(len: usize, seed: u64, wild: bool) -> Vec<T> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..len)
            .map(|_| {
                let x = next();
                let unit = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                match (wild, x % 97) {
                    (true, 0) => T::infinity(),
                    (true, 1) => T::nan(),
                    (true, 2) => -T::zero(),
                    (true, 3..=9) => T::max_value() * T::from(unit * 0.9).unwrap(),
                    _ => T::from(unit).unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn every_kernel_and_build_matches_the_per_fiber_loop() {
        super::sweep::tests::builds_match::<f32>();
        super::sweep::tests::builds_match::<f64>();
        super::reweighted::tests::builds_match::<f32>();
        super::reweighted::tests::builds_match::<f64>();
    }

    /// Runs `solve` (in place on an `n`-row block, with scratch) in every vector build this CPU
    /// runs, on blocks of several widths (some with extremes), and asserts the bits equal those of
    /// the portable build applied to one column at a time (NaN payloads aside).
    pub(crate) fn builds_match_one_column_at_a_time<T: Element>(
        n: usize,
        label: &str,
        solve: impl Fn(Isa, &mut RowBlock<'_, T>, &mut [f64]),
    ) {
        for (width, wild) in [
            (1, false),
            (7, true),
            (33, false),
            (100, true),
            (257, false),
            (300, true),
        ] {
            let stride = width + 3;
            let input = values::<T>(n * stride, (n * 1000 + width) as u64, wild);
            let mut scratch = vec![0.0; stride];
            let mut expected = input.clone();
            for column in 0..width {
                let mut fiber: Vec<T> = (0..n).map(|i| input[i * stride + column]).collect();
                solve(
                    Isa::Portable,
                    &mut RowBlock::new(&mut fiber, n, 1, 1).unwrap(),
                    &mut scratch,
                );
                for (i, x) in fiber.into_iter().enumerate() {
                    expected[i * stride + column] = x;
                }
            }
            for isa in Isa::available() {
                let mut got = input.clone();
                solve(
                    isa,
                    &mut RowBlock::new(&mut got, n, stride, width).unwrap(),
                    &mut scratch,
                );
                let same = got.iter().zip(&expected).all(|(a, b)| {
                    to_f64(*a).to_bits() == to_f64(*b).to_bits() || (a.is_nan() && b.is_nan())
                });
                assert!(same, "{isa:?} {label} width={width}");
            }
        }
    }
}
