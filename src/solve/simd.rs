//! The vector operations of the strip kernels, behind two small traits ([`F32s`], [`F64s`]):
//! AVX-512F and AVX2 on x86-64 (chosen at run time, see [`super::Isa`]), NEON on aarch64, and a
//! portable fallback (arrays of four or two lanes that the compiler vectorizes) elsewhere.
//!
//! Only plain multiplies and adds (never FMA), so every build rounds exactly as the scalar code.

/// What the strip kernels' row loads and stores need of either vector kind: its element and width.
pub(crate) trait Vector: Copy {
    /// `f32` or `f64`.
    type Elem: Copy;
    /// Lanes per vector.
    const WIDTH: usize;
    /// [`F32s::load`] or [`F64s::load`].
    ///
    /// # Safety
    /// As those.
    unsafe fn read(p: *const Self::Elem) -> Self;
    /// [`F32s::store`] or [`F64s::store`].
    ///
    /// # Safety
    /// As those.
    unsafe fn write(self, p: *mut Self::Elem);
}

/// Implements [`Vector`] for lane types through their [`F32s`] or [`F64s`] methods.
macro_rules! vector_of {
    ($elem:ty, $kind:ident: $($lanes:ty),*) => {$(
        impl Vector for $lanes {
            type Elem = $elem;
            const WIDTH: usize = <$lanes as $kind>::LANES;
            #[inline(always)]
            unsafe fn read(p: *const $elem) -> Self {
                // SAFETY: the caller's contract.
                unsafe { <$lanes as $kind>::load(p) }
            }
            #[inline(always)]
            unsafe fn write(self, p: *mut $elem) {
                // SAFETY: the caller's contract.
                unsafe { <$lanes as $kind>::store(self, p) }
            }
        }
    )*};
}

vector_of!(f32, F32s: Portable);
vector_of!(f64, F64s: Portable64);
#[cfg(target_arch = "x86_64")]
vector_of!(f32, F32s: Avx2, Avx512);
#[cfg(target_arch = "x86_64")]
vector_of!(f64, F64s: Avx2x64, Avx512x64);
#[cfg(target_arch = "aarch64")]
vector_of!(f32, F32s: Neon);
#[cfg(target_arch = "aarch64")]
vector_of!(f64, F64s: Neon64);

/// `K` vectors from `p`.
///
/// # Safety
/// `p .. p + K·WIDTH` must be valid for reads.
#[inline(always)]
pub(crate) unsafe fn load_row<V: Vector, const K: usize>(p: *const V::Elem) -> [V; K] {
    // SAFETY: within the caller's range.
    std::array::from_fn(|k| unsafe { V::read(p.add(k * V::WIDTH)) })
}

/// Writes `K` vectors to `p`.
///
/// # Safety
/// `p .. p + K·WIDTH` must be valid for writes.
#[inline(always)]
pub(crate) unsafe fn store_row<V: Vector, const K: usize>(p: *mut V::Elem, row: &[V; K]) {
    for (k, v) in row.iter().enumerate() {
        // SAFETY: within the caller's range.
        unsafe { v.write(p.add(k * V::WIDTH)) };
    }
}

/// A vector of `f32` lanes. Bit-level helpers treat the same vector as `u32` lanes.
pub(crate) trait F32s: Vector<Elem = f32> {
    /// Lanes per vector.
    const LANES: usize;
    /// `LANES` values from `p` (unaligned).
    ///
    /// # Safety
    /// `p .. p + LANES` must be valid for reads.
    unsafe fn load(p: *const f32) -> Self;
    /// Writes the lanes to `p .. p + LANES` (unaligned).
    ///
    /// # Safety
    /// `p .. p + LANES` must be valid for writes.
    unsafe fn store(self, p: *mut f32);
    /// Every lane `x`.
    fn splat(x: f32) -> Self;
    /// Lane-wise `self + other`.
    fn add(self, other: Self) -> Self;
    /// Lane-wise `self · other`.
    fn mul(self, other: Self) -> Self;
    /// Lane-wise maximum of the `u32` lanes `keys` and the bits of `|self|` (see `magnitude_bits`).
    fn max_magnitude(self, keys: Self) -> Self;
    /// Whether every `u32` lane of `keys` is at most `limit`.
    fn keys_at_most(keys: Self, limit: u32) -> bool;
    /// Lane-wise maximum of two vectors of `u32` keys.
    fn max_keys(self, other: Self) -> Self;
    /// Asks for the cache line at `p` ahead of its use (a hint: any address is allowed).
    #[inline(always)]
    fn prefetch(p: *const f32) {
        let _ = p;
    }
    /// `self + κ·z`, with lanes that overflowed although `self` and `z` are finite set to `±MAX`.
    fn add_clamped(self, kappa: Self, z: Self) -> Self;
}

/// The lanes of the baseline build ([`super::Isa::Portable`]): NEON on aarch64, [`Portable`]
/// elsewhere.
#[cfg(target_arch = "aarch64")]
pub(crate) type Baseline = Neon;
/// See [`Baseline`].
#[cfg(target_arch = "aarch64")]
pub(crate) type Baseline64 = Neon64;
/// The lanes of the baseline build ([`super::Isa::Portable`]): NEON on aarch64, [`Portable`]
/// elsewhere.
#[cfg(not(target_arch = "aarch64"))]
pub(crate) type Baseline = Portable;
/// See [`Baseline`].
#[cfg(not(target_arch = "aarch64"))]
pub(crate) type Baseline64 = Portable64;

/// Portable lanes: the compiler vectorizes these four-lane loops for the target's baseline.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
#[derive(Clone, Copy)]
pub(crate) struct Portable([f32; 4]);

impl F32s for Portable {
    const LANES: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller vouches for `p .. p + 4`.
        Portable(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller vouches for `p .. p + 4`.
        unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Portable([x; 4])
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Portable(std::array::from_fn(|k| self.0[k] + other.0[k]))
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        Portable(std::array::from_fn(|k| self.0[k] * other.0[k]))
    }
    #[inline(always)]
    fn max_magnitude(self, keys: Self) -> Self {
        Portable(std::array::from_fn(|k| {
            let key = keys.0[k].to_bits().max(self.0[k].to_bits() & 0x7fff_ffff);
            f32::from_bits(key)
        }))
    }
    #[inline(always)]
    fn keys_at_most(keys: Self, limit: u32) -> bool {
        keys.0.iter().all(|k| k.to_bits() <= limit)
    }
    #[inline(always)]
    fn max_keys(self, other: Self) -> Self {
        Portable(std::array::from_fn(|k| {
            f32::from_bits(self.0[k].to_bits().max(other.0[k].to_bits()))
        }))
    }
    #[inline(always)]
    fn add_clamped(self, kappa: Self, z: Self) -> Self {
        Portable(std::array::from_fn(|k| {
            let (a, z) = (self.0[k], z.0[k]);
            super::sweep::clamp_f32(a + kappa.0[k] * z, a.is_finite() && z.is_finite())
        }))
    }
}

/// A vector of `f64` lanes. Bit-level helpers treat the same vector as `u64` lanes.
pub(crate) trait F64s: Vector<Elem = f64> {
    /// Lanes per vector.
    const LANES: usize;
    /// `LANES` values from `p` (unaligned).
    ///
    /// # Safety
    /// `p .. p + LANES` must be valid for reads.
    unsafe fn load(p: *const f64) -> Self;
    /// Writes the lanes to `p .. p + LANES` (unaligned).
    ///
    /// # Safety
    /// `p .. p + LANES` must be valid for writes.
    unsafe fn store(self, p: *mut f64);
    /// `LANES` `f32` values from `p`, widened (exactly).
    ///
    /// # Safety
    /// `p .. p + LANES` must be valid for reads.
    unsafe fn load_f32(p: *const f32) -> Self;
    /// Writes the lanes rounded to `f32` (to nearest, as `as f32`) to `p .. p + LANES`.
    ///
    /// # Safety
    /// `p .. p + LANES` must be valid for writes.
    unsafe fn store_f32(self, p: *mut f32);
    /// Every lane `x`.
    fn splat(x: f64) -> Self;
    /// Lane-wise `self + other`.
    fn add(self, other: Self) -> Self;
    /// Lane-wise `self · other`.
    fn mul(self, other: Self) -> Self;
    /// Lane-wise maximum of the `u64` lanes `keys` and the bits of `|self|`.
    fn max_magnitude(self, keys: Self) -> Self;
    /// Whether every `u64` lane of `keys` is at most `limit`.
    fn keys_at_most(keys: Self, limit: u64) -> bool;
    /// Asks for the cache line at `p` ahead of its use (a hint: any address is allowed).
    #[inline(always)]
    fn prefetch(p: *const f64) {
        let _ = p;
    }
}

/// Portable `f64` lanes (see [`Portable`]).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
#[derive(Clone, Copy)]
pub(crate) struct Portable64([f64; 2]);

impl F64s for Portable64 {
    const LANES: usize = 2;
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller vouches for `p .. p + 2`.
        Portable64(unsafe { p.cast::<[f64; 2]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller vouches for `p .. p + 2`.
        unsafe { p.cast::<[f64; 2]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> Self {
        // SAFETY: the caller vouches for `p .. p + 2`.
        let v = unsafe { p.cast::<[f32; 2]>().read_unaligned() };
        Portable64(v.map(f64::from))
    }
    #[inline(always)]
    unsafe fn store_f32(self, p: *mut f32) {
        // SAFETY: the caller vouches for `p .. p + 2`.
        unsafe {
            p.cast::<[f32; 2]>()
                .write_unaligned(self.0.map(|x| x as f32))
        }
    }
    #[inline(always)]
    fn splat(x: f64) -> Self {
        Portable64([x; 2])
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Portable64(std::array::from_fn(|k| self.0[k] + other.0[k]))
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        Portable64(std::array::from_fn(|k| self.0[k] * other.0[k]))
    }
    #[inline(always)]
    fn max_magnitude(self, keys: Self) -> Self {
        Portable64(std::array::from_fn(|k| {
            let key = keys.0[k].to_bits().max(self.0[k].to_bits() & ABS64);
            f64::from_bits(key)
        }))
    }
    #[inline(always)]
    fn keys_at_most(keys: Self, limit: u64) -> bool {
        keys.0.iter().all(|k| k.to_bits() <= limit)
    }
}

/// The bits of `|v|` for an `f64`.
const ABS64: u64 = u64::MAX >> 1;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{F32s, F64s, ABS64};

    const ABS: i32 = 0x7fff_ffff;
    const INFINITY_BITS: i32 = 0x7f80_0000;

    /// Eight lanes in an AVX2 register. Only used inside functions compiled for AVX2.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(__m256);

    // SAFETY (every method): the type is only made and used inside code compiled for AVX2, on a
    // CPU that has it (see `Isa`); pointers are the caller's contract.
    impl F32s for Avx2 {
        #[inline(always)]
        fn prefetch(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Avx2(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Avx2(unsafe { _mm256_add_ps(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            Avx2(unsafe { _mm256_mul_ps(self.0, other.0) })
        }
        #[inline(always)]
        fn max_magnitude(self, keys: Self) -> Self {
            unsafe {
                let bits = _mm256_and_si256(_mm256_castps_si256(self.0), _mm256_set1_epi32(ABS));
                Avx2(_mm256_castsi256_ps(_mm256_max_epu32(
                    _mm256_castps_si256(keys.0),
                    bits,
                )))
            }
        }
        #[inline(always)]
        fn max_keys(self, other: Self) -> Self {
            unsafe {
                Avx2(_mm256_castsi256_ps(_mm256_max_epu32(
                    _mm256_castps_si256(self.0),
                    _mm256_castps_si256(other.0),
                )))
            }
        }
        #[inline(always)]
        fn keys_at_most(keys: Self, limit: u32) -> bool {
            unsafe {
                let keys = _mm256_castps_si256(keys.0);
                let limit = _mm256_set1_epi32(limit as i32);
                // max(keys, limit) == limit in every lane
                let same = _mm256_cmpeq_epi32(_mm256_max_epu32(keys, limit), limit);
                _mm256_movemask_epi8(same) == -1
            }
        }
        #[inline(always)]
        fn add_clamped(self, kappa: Self, z: Self) -> Self {
            unsafe {
                let sum = _mm256_add_ps(self.0, _mm256_mul_ps(kappa.0, z.0));
                let abs =
                    |v: __m256| _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(ABS));
                let inf = _mm256_set1_epi32(INFINITY_BITS);
                // Finite: |bits| < ∞ (as signed integers: |bits| ≤ 0x7fffffff).
                let finite = |v: __m256| _mm256_cmpgt_epi32(inf, abs(v));
                let overflowed = _mm256_cmpeq_epi32(abs(sum), inf);
                let fix =
                    _mm256_and_si256(overflowed, _mm256_and_si256(finite(self.0), finite(z.0)));
                let sign = _mm256_and_ps(sum, _mm256_set1_ps(-0.0));
                let max = _mm256_or_ps(_mm256_set1_ps(f32::MAX), sign);
                Avx2(_mm256_blendv_ps(sum, max, _mm256_castsi256_ps(fix)))
            }
        }
    }

    /// Sixteen lanes in an AVX-512 register. Only used inside functions compiled for AVX-512F.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(__m512);

    // SAFETY (every method): as for `Avx2`, with AVX-512F.
    impl F32s for Avx512 {
        #[inline(always)]
        fn prefetch(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Avx512(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Avx512(unsafe { _mm512_add_ps(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            Avx512(unsafe { _mm512_mul_ps(self.0, other.0) })
        }
        #[inline(always)]
        fn max_magnitude(self, keys: Self) -> Self {
            unsafe {
                let bits = _mm512_and_si512(_mm512_castps_si512(self.0), _mm512_set1_epi32(ABS));
                Avx512(_mm512_castsi512_ps(_mm512_max_epu32(
                    _mm512_castps_si512(keys.0),
                    bits,
                )))
            }
        }
        #[inline(always)]
        fn max_keys(self, other: Self) -> Self {
            unsafe {
                Avx512(_mm512_castsi512_ps(_mm512_max_epu32(
                    _mm512_castps_si512(self.0),
                    _mm512_castps_si512(other.0),
                )))
            }
        }
        #[inline(always)]
        fn keys_at_most(keys: Self, limit: u32) -> bool {
            unsafe {
                let above = _mm512_cmpgt_epu32_mask(
                    _mm512_castps_si512(keys.0),
                    _mm512_set1_epi32(limit as i32),
                );
                above == 0
            }
        }
        #[inline(always)]
        fn add_clamped(self, kappa: Self, z: Self) -> Self {
            unsafe {
                let sum = _mm512_add_ps(self.0, _mm512_mul_ps(kappa.0, z.0));
                let abs =
                    |v: __m512| _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(ABS));
                let inf = _mm512_set1_epi32(INFINITY_BITS);
                let finite = _mm512_cmplt_epi32_mask(abs(self.0), inf)
                    & _mm512_cmplt_epi32_mask(abs(z.0), inf);
                let fix = _mm512_cmpeq_epi32_mask(abs(sum), inf) & finite;
                let sign = _mm512_and_si512(_mm512_castps_si512(sum), _mm512_set1_epi32(i32::MIN));
                let max = _mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(f32::MAX)), sign);
                Avx512(_mm512_mask_blend_ps(fix, sum, _mm512_castsi512_ps(max)))
            }
        }
    }

    /// Four `f64` lanes in an AVX2 register. Only used inside functions compiled for AVX2.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2x64(__m256d);

    // SAFETY (every method): as for `Avx2`.
    impl F64s for Avx2x64 {
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Avx2x64(unsafe { _mm256_loadu_pd(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            unsafe { _mm256_storeu_pd(p, self.0) }
        }
        #[inline(always)]
        unsafe fn load_f32(p: *const f32) -> Self {
            Avx2x64(unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) })
        }
        #[inline(always)]
        unsafe fn store_f32(self, p: *mut f32) {
            unsafe { _mm_storeu_ps(p, _mm256_cvtpd_ps(self.0)) }
        }
        #[inline(always)]
        fn splat(x: f64) -> Self {
            Avx2x64(unsafe { _mm256_set1_pd(x) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Avx2x64(unsafe { _mm256_add_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            Avx2x64(unsafe { _mm256_mul_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn max_magnitude(self, keys: Self) -> Self {
            unsafe {
                let abs = _mm256_and_pd(
                    self.0,
                    _mm256_castsi256_pd(_mm256_set1_epi64x(ABS64 as i64)),
                );
                // Both are below 2⁶³, so the signed comparison orders them as unsigned.
                let greater =
                    _mm256_cmpgt_epi64(_mm256_castpd_si256(abs), _mm256_castpd_si256(keys.0));
                Avx2x64(_mm256_blendv_pd(keys.0, abs, _mm256_castsi256_pd(greater)))
            }
        }
        #[inline(always)]
        fn keys_at_most(keys: Self, limit: u64) -> bool {
            unsafe {
                let above = _mm256_cmpgt_epi64(
                    _mm256_castpd_si256(keys.0),
                    _mm256_set1_epi64x(limit as i64),
                );
                _mm256_testz_si256(above, above) == 1
            }
        }
        #[inline(always)]
        fn prefetch(p: *const f64) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
    }

    /// Eight `f64` lanes in an AVX-512 register. Only used inside functions compiled for AVX-512F.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512x64(__m512d);

    // SAFETY (every method): as for `Avx512`.
    impl F64s for Avx512x64 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Avx512x64(unsafe { _mm512_loadu_pd(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            unsafe { _mm512_storeu_pd(p, self.0) }
        }
        #[inline(always)]
        unsafe fn load_f32(p: *const f32) -> Self {
            Avx512x64(unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) })
        }
        #[inline(always)]
        unsafe fn store_f32(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, _mm512_cvtpd_ps(self.0)) }
        }
        #[inline(always)]
        fn splat(x: f64) -> Self {
            Avx512x64(unsafe { _mm512_set1_pd(x) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Avx512x64(unsafe { _mm512_add_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            Avx512x64(unsafe { _mm512_mul_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn max_magnitude(self, keys: Self) -> Self {
            unsafe {
                let abs =
                    _mm512_and_si512(_mm512_castpd_si512(self.0), _mm512_set1_epi64(ABS64 as i64));
                Avx512x64(_mm512_castsi512_pd(_mm512_max_epu64(
                    _mm512_castpd_si512(keys.0),
                    abs,
                )))
            }
        }
        #[inline(always)]
        fn keys_at_most(keys: Self, limit: u64) -> bool {
            unsafe {
                _mm512_cmpgt_epu64_mask(
                    _mm512_castpd_si512(keys.0),
                    _mm512_set1_epi64(limit as i64),
                ) == 0
            }
        }
        #[inline(always)]
        fn prefetch(p: *const f64) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx2x64, Avx512, Avx512x64};

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::{F32s, F64s, ABS64};

    const ABS: u32 = 0x7fff_ffff;
    const INFINITY_BITS: u32 = 0x7f80_0000;

    /// Four `f32` lanes in a NEON register (NEON is part of every aarch64 target).
    #[derive(Clone, Copy)]
    pub(crate) struct Neon(float32x4_t);

    // SAFETY (every method): NEON is always present on aarch64; pointers are the caller's
    // contract.
    impl F32s for Neon {
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Neon(unsafe { vld1q_f32(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { vst1q_f32(p, self.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Neon(unsafe { vdupq_n_f32(x) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Neon(unsafe { vaddq_f32(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            Neon(unsafe { vmulq_f32(self.0, other.0) })
        }
        #[inline(always)]
        fn max_magnitude(self, keys: Self) -> Self {
            unsafe {
                let bits = vandq_u32(vreinterpretq_u32_f32(self.0), vdupq_n_u32(ABS));
                Neon(vreinterpretq_f32_u32(vmaxq_u32(
                    vreinterpretq_u32_f32(keys.0),
                    bits,
                )))
            }
        }
        #[inline(always)]
        fn keys_at_most(keys: Self, limit: u32) -> bool {
            unsafe { vmaxvq_u32(vreinterpretq_u32_f32(keys.0)) <= limit }
        }
        #[inline(always)]
        fn max_keys(self, other: Self) -> Self {
            unsafe {
                Neon(vreinterpretq_f32_u32(vmaxq_u32(
                    vreinterpretq_u32_f32(self.0),
                    vreinterpretq_u32_f32(other.0),
                )))
            }
        }
        #[inline(always)]
        fn add_clamped(self, kappa: Self, z: Self) -> Self {
            unsafe {
                let sum = vaddq_f32(self.0, vmulq_f32(kappa.0, z.0));
                let abs = |v: float32x4_t| vandq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(ABS));
                let inf = vdupq_n_u32(INFINITY_BITS);
                let finite = vandq_u32(vcltq_u32(abs(self.0), inf), vcltq_u32(abs(z.0), inf));
                let fix = vandq_u32(vceqq_u32(abs(sum), inf), finite);
                let sign = vandq_u32(vreinterpretq_u32_f32(sum), vdupq_n_u32(!ABS));
                let max = vorrq_u32(vreinterpretq_u32_f32(vdupq_n_f32(f32::MAX)), sign);
                Neon(vreinterpretq_f32_u32(vbslq_u32(
                    fix,
                    max,
                    vreinterpretq_u32_f32(sum),
                )))
            }
        }
    }

    /// Two `f64` lanes in a NEON register.
    #[derive(Clone, Copy)]
    pub(crate) struct Neon64(float64x2_t);

    // SAFETY (every method): as for `Neon`.
    impl F64s for Neon64 {
        const LANES: usize = 2;
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Neon64(unsafe { vld1q_f64(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            unsafe { vst1q_f64(p, self.0) }
        }
        #[inline(always)]
        unsafe fn load_f32(p: *const f32) -> Self {
            Neon64(unsafe { vcvt_f64_f32(vld1_f32(p)) })
        }
        #[inline(always)]
        unsafe fn store_f32(self, p: *mut f32) {
            unsafe { vst1_f32(p, vcvt_f32_f64(self.0)) }
        }
        #[inline(always)]
        fn splat(x: f64) -> Self {
            Neon64(unsafe { vdupq_n_f64(x) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Neon64(unsafe { vaddq_f64(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            Neon64(unsafe { vmulq_f64(self.0, other.0) })
        }
        #[inline(always)]
        fn max_magnitude(self, keys: Self) -> Self {
            unsafe {
                let abs = vandq_u64(vreinterpretq_u64_f64(self.0), vdupq_n_u64(ABS64));
                let keys = vreinterpretq_u64_f64(keys.0);
                Neon64(vreinterpretq_f64_u64(vbslq_u64(
                    vcgtq_u64(abs, keys),
                    abs,
                    keys,
                )))
            }
        }
        #[inline(always)]
        fn keys_at_most(keys: Self, limit: u64) -> bool {
            unsafe {
                let above = vcgtq_u64(vreinterpretq_u64_f64(keys.0), vdupq_n_u64(limit));
                vmaxvq_u32(vreinterpretq_u32_u64(above)) == 0
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::{Neon, Neon64};
