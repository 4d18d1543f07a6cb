//! The two transposes of a group (segments in memory ↔ rows of the block), fused with the sweeps,
//! four values of four segments at a time with AVX2 shuffles and FMA. Each returns how many rows it did
//! (a multiple of 4, or 0 without AVX2/FMA); the caller
//! does the rest.

use super::segmented::LANES;
use crate::Element;

/// Zero-start forward sweep `y ← a·g + c·y` of the `LANES` segments of `g` (`s` values each) into
/// the rows of `block`, for the first rows (a multiple of 4); returns how many rows it did.
pub(super) fn forward<T: Element>(
    g: &[T],
    s: usize,
    block: &mut [f64],
    a: f64,
    c: f64,
    y: &mut [f64; LANES],
) -> usize {
    assert!(g.len() == LANES * s && block.len() == LANES * s);
    let rows = tile_rows(s);
    #[cfg(target_arch = "x86_64")]
    if rows > 0 {
        let g = g.as_ptr();
        // SAFETY: AVX2 and FMA are present (`tile_rows`); `T::IS_F32` says what `T` is (f32,
        // else f64), and the lengths were checked.
        unsafe {
            match T::IS_F32 {
                true => avx2::forward_f32(g.cast(), s, rows, block, a, c, y),
                false => avx2::forward_f64(g.cast(), s, rows, block, a, c, y),
            }
        }
    }
    let _ = (a, c, y);
    rows
}

/// Backward sweep `x ← a·row + c·x` from the last row of `block` up, each row written to value
/// `t` of every segment of `out`, for the last rows (a multiple of 4); returns how many rows it did.
pub(super) fn backward_write<T: Element>(
    block: &[f64],
    s: usize,
    a: f64,
    c: f64,
    x: &mut [f64; LANES],
    out: &mut [T],
) -> usize {
    assert!(out.len() == LANES * s && block.len() == LANES * s);
    let rows = tile_rows(s);
    #[cfg(target_arch = "x86_64")]
    if rows > 0 {
        let out = out.as_mut_ptr();
        // SAFETY: as in `forward`.
        unsafe {
            match T::IS_F32 {
                true => avx2::backward_f32(block, s, rows, a, c, x, out.cast()),
                false => avx2::backward_f64(block, s, rows, a, c, x, out.cast()),
            }
        }
    }
    let _ = (a, c, x);
    rows
}

/// The rows of a group of `s` the AVX2 and FMA tiles take (a multiple of 4), or 0 without them.
fn tile_rows(s: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return s / 4 * 4;
    }
    let _ = s;
    0
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// Rows of a 4 × 4 tile into columns.
    #[inline(always)]
    unsafe fn transpose(r: [__m256d; 4]) -> [__m256d; 4] {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let t0 = _mm256_unpacklo_pd(r[0], r[1]);
            let t1 = _mm256_unpackhi_pd(r[0], r[1]);
            let t2 = _mm256_unpacklo_pd(r[2], r[3]);
            let t3 = _mm256_unpackhi_pd(r[2], r[3]);
            [
                _mm256_permute2f128_pd(t0, t2, 0x20),
                _mm256_permute2f128_pd(t1, t3, 0x20),
                _mm256_permute2f128_pd(t0, t2, 0x31),
                _mm256_permute2f128_pd(t1, t3, 0x31),
            ]
        }
    }

    macro_rules! kernels {
        ($forward:ident, $backward:ident, $t:ty, $load:expr, $store:expr) => {
            /// # Safety
            /// AVX2 and FMA; `out` holds `LANES·s` values, `rows ≤ s`, `block` holds `LANES·s`.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $backward(
                block: &[f64],
                s: usize,
                rows: usize,
                a: f64,
                c: f64,
                x: &mut [f64; LANES],
                out: *mut $t,
            ) {
                // SAFETY: the caller upholds this function's contract (see its doc).
                unsafe {
                    let (va, vc) = (_mm256_set1_pd(a), _mm256_set1_pd(c));
                    let mut acc = [_mm256_setzero_pd(); LANES / 4];
                    for (q, v) in acc.iter_mut().enumerate() {
                        *v = _mm256_loadu_pd(x.as_ptr().add(4 * q));
                    }
                    let src = block.as_ptr();
                    for t in (s - rows..s).step_by(4).rev() {
                        for (q, xq) in acc.iter_mut().enumerate() {
                            let mut cols = [_mm256_setzero_pd(); 4];
                            for k in (0..4).rev() {
                                let row = _mm256_loadu_pd(src.add((t + k) * LANES + 4 * q));
                                *xq = _mm256_fmadd_pd(va, row, _mm256_mul_pd(vc, *xq));
                                cols[k] = *xq;
                            }
                            for (j, &v) in transpose(cols).iter().enumerate() {
                                $store(out.add((4 * q + j) * s + t), v);
                            }
                        }
                    }
                    for (q, v) in acc.iter().enumerate() {
                        _mm256_storeu_pd(x.as_mut_ptr().add(4 * q), *v);
                    }
                }
            }

            /// # Safety
            /// AVX2 and FMA; `g` holds `LANES·s` values, `rows ≤ s`, `block` holds `LANES·s`.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $forward(
                g: *const $t,
                s: usize,
                rows: usize,
                block: &mut [f64],
                a: f64,
                c: f64,
                y: &mut [f64; LANES],
            ) {
                // SAFETY: the caller upholds this function's contract (see its doc).
                unsafe {
                    let (va, vc) = (_mm256_set1_pd(a), _mm256_set1_pd(c));
                    let mut acc = [_mm256_setzero_pd(); LANES / 4];
                    for (q, v) in acc.iter_mut().enumerate() {
                        *v = _mm256_loadu_pd(y.as_ptr().add(4 * q));
                    }
                    let out = block.as_mut_ptr();
                    for t in (0..rows).step_by(4) {
                        for (q, yq) in acc.iter_mut().enumerate() {
                            let lane = |j: usize| g.add((4 * q + j) * s + t);
                            let cols = transpose([
                                $load(lane(0)),
                                $load(lane(1)),
                                $load(lane(2)),
                                $load(lane(3)),
                            ]);
                            for (k, &col) in cols.iter().enumerate() {
                                *yq = _mm256_fmadd_pd(va, col, _mm256_mul_pd(vc, *yq));
                                _mm256_storeu_pd(out.add((t + k) * LANES + 4 * q), *yq);
                            }
                        }
                    }
                    for (q, v) in acc.iter().enumerate() {
                        _mm256_storeu_pd(y.as_mut_ptr().add(4 * q), *v);
                    }
                }
            }
        };
    }

    kernels!(
        forward_f32,
        backward_f32,
        f32,
        |p: *const f32| _mm256_cvtps_pd(_mm_loadu_ps(p)),
        |p: *mut f32, v: __m256d| _mm_storeu_ps(p, _mm256_cvtpd_ps(v))
    );
    kernels!(
        forward_f64,
        backward_f64,
        f64,
        |p: *const f64| _mm256_loadu_pd(p),
        |p: *mut f64, v: __m256d| _mm256_storeu_pd(p, v)
    );
}
