//! On the device: the plan a GPU kernel follows, and the rule that picks its arithmetic.
//!
//! The kernels themselves are CubeCL code (one source for CUDA, HIP, Metal, SPIR-V/Vulkan and
//! WGSL) run by `chandir::integrations::burn` inside burn's CubeCL backends (features
//! `burn-wgpu`, `burn-vulkan`, `burn-cuda`). This module is the host side, built in every
//! configuration: the coefficients, computed in f64 in `O(n)`, and the arithmetic rule.
//!
//! # Arithmetic
//!
//! A kernel stores the tensor's own type (f32) and does its arithmetic in f32 or f64, by the one
//! rule the CPU sweeps follow too ([`crate::solve::F32_ARITHMETIC_BOUND`]):
//! - **f32** where [`f32_error_bound`] is at most [`F32_ARITHMETIC_BOUND`] (a tenth of the f32
//!   tolerance [`F32_TOLERANCE`] that every reference case is held to);
//! - **f64** otherwise, where the device has f64 arithmetic (CUDA, HIP; Vulkan through SPIR-V, or
//!   through WGSL with wgpu's `SHADER_F64`, on desktop drivers and Mesa's lavapipe);
//! - otherwise the gradient takes the host path (download, CPU solve in f64, upload): on devices
//!   without f64 (Metal, WebGPU in a browser) larger λ is smoothed on the CPU.
//!
//! f64 gradients always use f64 arithmetic. Sobolev H1 takes f32 arithmetic exactly where the CPU
//! sweeps do ([`crate::solve::Sweep::uses_f32_arithmetic`]: small λ, about 3 and less); the
//! device's re-weighted H0, whose mean is a sum of partial sums, takes f32 only for small λ on
//! short fibers. The bounds are first-order worst cases and the measured f32 error can be far
//! smaller (f32 arithmetic forced at λ = 10⁶, Neumann, `n = 512`, six random fibers on lavapipe:
//! `4.4·10⁻⁸·max|g|`), so the rule errs on the side of f64.
//!
//! ```
//! use chandir::gpu::{arithmetic, f32_error_bound, Arithmetic, F32_ARITHMETIC_BOUND};
//! use chandir::Metric;
//!
//! let h1 = Metric::default(); // λ = 1, Neumann
//! assert!(f32_error_bound(&h1, 512) <= F32_ARITHMETIC_BOUND);
//! assert_eq!(arithmetic(&h1, 512), Arithmetic::F32);
//! let stiff = Metric::SobolevH1 { lambda: 1e6, boundary: chandir::Boundary::Neumann };
//! assert_eq!(arithmetic(&stiff, 512), Arithmetic::F64);
//! ```

#[cfg(feature = "burn-cube")]
pub(crate) mod kernels;
#[cfg(feature = "burn-cube")]
pub(crate) mod launch;
#[cfg(feature = "burn-cube")]
pub use launch::Traffic;
// Layer shapes of ResNet-50, VGG-16 and ViT-B for bench_gpu and the device tests, not API.
#[doc(hidden)]
pub mod workloads;
// Tooling for gpu/cuda_check.sh (every kernel compiled for NVIDIA offline), not API.
#[cfg(feature = "burn-cuda")]
#[doc(hidden)]
pub mod cuda_offline;
pub use crate::solve::F32_ARITHMETIC_BOUND;
use crate::solve::{f32_arithmetic_allowed, operator, Operator};
use crate::Metric;

/// The tolerance every f32 result is held to, relative to `max|g|` (as on the CPU path).
pub const F32_TOLERANCE: f64 = 1e-5;

/// Unit roundoff of f32.
const F32_UNIT: f64 = 1.0 / (1u64 << 24) as f64;

/// Rows each invocation of the re-weighted H0 kernels sums before handing its partial sum on; the
/// f32 rounding bound of the mean grows with it, see [`f32_error_bound`].
pub(crate) const REWEIGHTED_SEGMENT_ROWS: usize = 32;

/// Invocations that reduce one column's partial sums (each adds its share, then one adds theirs).
#[cfg(feature = "burn-cube")]
pub(crate) const SCAN_THREADS: usize = 64;

/// The arithmetic of a device kernel.
///
/// ```
/// use chandir::gpu::{arithmetic, Arithmetic};
/// use chandir::Metric;
/// assert_eq!(arithmetic(&Metric::ReweightedH0 { lambda: 0.01 }, 64), Arithmetic::F32);
/// assert_eq!(arithmetic(&Metric::ReweightedH0 { lambda: 3.0 }, 256), Arithmetic::F64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arithmetic {
    /// Single precision: carries, coefficients and sums in f32.
    F32,
    /// Double precision: carries, coefficients and sums in f64 (storage stays the tensor's type).
    F64,
}

/// A first-order bound on `max|x̂ − x| / max|g|` for the device kernels in f32 arithmetic on fibers
/// of length `n` (0 where the operator is the identity).
///
/// Sobolev H1: [`crate::solve::SweepCoefficients::f32_error_bound`] (infinite past `n = 2¹⁶`, so long fibers
/// take f64). Re-weighted H0: the mean is a sum of
/// `S = ⌈n/L⌉` partial sums of `L = 32` rows each, added with at most
/// `S + 1` roundings in a row, so `((1 − s)(L + S + 3) + 2s + 3)·u` with `s = 1/(1 + λ)` and
/// `u = 2⁻²⁴` (f32 up to `n ≈ 1500` whatever λ).
///
/// ```
/// use chandir::gpu::f32_error_bound;
/// use chandir::Metric;
/// assert_eq!(f32_error_bound(&Metric::H0, 64), 0.0);
/// assert!(f32_error_bound(&Metric::ReweightedH0 { lambda: 1.0 }, 512) < 5e-6);
/// ```
pub fn f32_error_bound(metric: &Metric, n: usize) -> f64 {
    match operator(metric, n) {
        Operator::Identity => 0.0,
        Operator::Sweep(sweep) => sweep.coefficients().f32_error_bound(),
        Operator::Reweighted { lambda } => reweighted_f32_error_bound(lambda, n),
    }
}

/// [`f32_error_bound`] of re-weighted H0 (λ > 0, `n ≥ 2`).
pub(crate) fn reweighted_f32_error_bound(lambda: f64, n: usize) -> f64 {
    let shrink = 1.0 / (1.0 + lambda);
    let segments = n.div_ceil(REWEIGHTED_SEGMENT_ROWS);
    let terms = (REWEIGHTED_SEGMENT_ROWS + segments + 3) as f64;
    ((1.0 - shrink) * terms + 2.0 * shrink + 3.0) * F32_UNIT
}

/// The arithmetic a device kernel uses for an f32 (or narrower) gradient: f32 where
/// [`f32_error_bound`] ≤ [`F32_ARITHMETIC_BOUND`], f64 otherwise. `metric` must be valid.
///
/// ```
/// use chandir::gpu::{arithmetic, Arithmetic};
/// use chandir::{Boundary, Metric};
/// let periodic = |lambda| Metric::SobolevH1 { lambda, boundary: Boundary::Periodic };
/// assert_eq!(arithmetic(&periodic(0.5), 256), Arithmetic::F32);
/// assert_eq!(arithmetic(&periodic(1e5), 256), Arithmetic::F64);
/// ```
pub fn arithmetic(metric: &Metric, n: usize) -> Arithmetic {
    arithmetic_for_bound(f32_error_bound(metric, n))
}

/// The rule of [`arithmetic`] applied to an [`f32_error_bound`] already at hand.
pub(crate) fn arithmetic_for_bound(f32_error_bound: f64) -> Arithmetic {
    if f32_arithmetic_allowed(f32_error_bound) {
        Arithmetic::F32
    } else {
        Arithmetic::F64
    }
}

/// How a device kernel spreads the fibers over invocations. Results do not depend on it beyond
/// rounding.
///
/// ```
/// assert_eq!(chandir::gpu::Method::default(), chandir::gpu::Method::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// One pass over device memory ([`Method::Tiles`]) where the fibers fit in shared memory; for
    /// longer fibers one invocation per fiber when there are enough fibers to fill the device,
    /// segments otherwise.
    #[default]
    Auto,
    /// One pass over device memory: each cube holds a tile of whole fibers in shared memory,
    /// solves them there and writes each result once (one launch per gradient). Fibers too long
    /// for the device's shared memory take [`Method::Auto`]'s other methods.
    Tiles,
    /// One invocation per fiber, sweeping all its rows.
    Columns,
    /// Fibers cut into segments of this many rows (re-weighted H0: always
    /// 32 rows), one invocation per segment, composed exactly by a scan.
    Segments(usize),
}
