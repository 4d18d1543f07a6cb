//! The `f32` sweeps of [`super::Sweep`] on eight contiguous fibers at once, in place: 8 × 8 tiles
//! are transposed in AVX2 registers so that one vector holds entry `i` of all eight fibers, the
//! recurrences run on those vectors, and the tiles are transposed back. This is the input axis of
//! a 1×1 convolution or a linear layer, where a block would otherwise be packed and unpacked.
//!
//! Every lane performs exactly the operations of the row kernels (`f32` multiplies and adds, no
//! FMA, the same order), so the results are bitwise the same as packing the fibers side by side.

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::{sweep_eight, transpose8};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::sweep::Native32;

    /// The 8 × 8 transpose of 8 rows of 8 `f32`.
    #[inline(always)]
    pub(crate) unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(s0, s4),
                _mm256_permute2f128_ps::<0x20>(s1, s5),
                _mm256_permute2f128_ps::<0x20>(s2, s6),
                _mm256_permute2f128_ps::<0x20>(s3, s7),
                _mm256_permute2f128_ps::<0x31>(s0, s4),
                _mm256_permute2f128_ps::<0x31>(s1, s5),
                _mm256_permute2f128_ps::<0x31>(s2, s6),
                _mm256_permute2f128_ps::<0x31>(s3, s7),
            ]
        }
    }

    /// Entry `i` of the eight fibers.
    #[inline(always)]
    unsafe fn gather(f: &[*mut f32; 8], i: usize) -> __m256 {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            _mm256_setr_ps(
                *f[0].add(i),
                *f[1].add(i),
                *f[2].add(i),
                *f[3].add(i),
                *f[4].add(i),
                *f[5].add(i),
                *f[6].add(i),
                *f[7].add(i),
            )
        }
    }

    #[inline(always)]
    unsafe fn scatter(f: &[*mut f32; 8], i: usize, v: __m256) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let mut lanes = [0.0_f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
            for (fiber, value) in f.iter().zip(lanes) {
                *fiber.add(i) = value;
            }
        }
    }

    /// Rows `i0..i0 + 8` of the eight fibers, one vector per row.
    #[inline(always)]
    unsafe fn load_rows(f: &[*mut f32; 8], i0: usize) -> [__m256; 8] {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe { transpose8(std::array::from_fn(|k| _mm256_loadu_ps(f[k].add(i0)))) }
    }

    #[inline(always)]
    unsafe fn store_rows(f: &[*mut f32; 8], i0: usize, rows: [__m256; 8]) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            for (k, v) in transpose8(rows).into_iter().enumerate() {
                _mm256_storeu_ps(f[k].add(i0), v);
            }
        }
    }

    /// The bits of `|v|`, lane by lane (see `magnitude_bits`).
    #[inline(always)]
    unsafe fn magnitude(v: __m256) -> __m256i {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe { _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fff_ffff)) }
    }

    /// All-ones lanes where `v` is finite.
    #[inline(always)]
    unsafe fn finite(v: __m256) -> __m256 {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let abs = _mm256_castsi256_ps(magnitude(v));
            _mm256_cmp_ps::<_CMP_LT_OQ>(abs, _mm256_set1_ps(f32::INFINITY))
        }
    }

    /// `value`, with lanes that overflowed although their operands are finite set to `±MAX`.
    #[inline(always)]
    unsafe fn clamp(value: __m256, operands_finite: __m256) -> __m256 {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let abs = _mm256_castsi256_ps(magnitude(value));
            let infinite = _mm256_cmp_ps::<_CMP_EQ_OQ>(abs, _mm256_set1_ps(f32::INFINITY));
            let sign = _mm256_and_ps(value, _mm256_set1_ps(-0.0));
            let max = _mm256_or_ps(_mm256_set1_ps(f32::MAX), sign);
            _mm256_blendv_ps(value, max, _mm256_and_ps(infinite, operands_finite))
        }
    }

    /// Both sweeps of `n` rows (`m` forward rows) on the eight fibers, in place; `safe` is the
    /// largest magnitude key below which nothing can overflow.
    ///
    /// # Safety
    /// AVX2 must be present; each pointer addresses `n` valid `f32`, borrowed uniquely, pairwise
    /// disjoint; `c` holds `m` rows.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn sweep_eight(
        c: &Native32,
        f: [*mut f32; 8],
        n: usize,
        m: usize,
        safe: u32,
    ) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let zero = _mm256_setzero_ps();
            let spiked = m < n;
            let mut largest = _mm256_setzero_si256();
            let mut last = zero;
            if spiked {
                let g = gather(&f, n - 1);
                largest = _mm256_max_epu32(largest, magnitude(g));
                last = _mm256_mul_ps(_mm256_set1_ps(c.gamma), g);
            }
            // Forward.
            let mut prev = zero;
            let forward = |i: usize, g: __m256, prev: __m256, last: &mut __m256| -> __m256 {
                let z = if i == 0 {
                    _mm256_mul_ps(_mm256_set1_ps(c.alpha[0]), g)
                } else {
                    _mm256_add_ps(
                        _mm256_mul_ps(_mm256_set1_ps(c.alpha[i]), g),
                        _mm256_mul_ps(_mm256_set1_ps(c.coupling[i]), prev),
                    )
                };
                if c.kappa[i] != 0.0 {
                    let sum = _mm256_add_ps(*last, _mm256_mul_ps(_mm256_set1_ps(c.kappa[i]), z));
                    *last = clamp(sum, _mm256_and_ps(finite(*last), finite(z)));
                }
                z
            };
            let full = m / 8 * 8;
            for i0 in (0..full).step_by(8) {
                let mut rows = load_rows(&f, i0);
                for (j, row) in rows.iter_mut().enumerate() {
                    largest = _mm256_max_epu32(largest, magnitude(*row));
                    prev = forward(i0 + j, *row, prev, &mut last);
                    *row = prev;
                }
                store_rows(&f, i0, rows);
            }
            for i in full..m {
                let g = gather(&f, i);
                largest = _mm256_max_epu32(largest, magnitude(g));
                prev = forward(i, g, prev, &mut last);
                scatter(&f, i, prev);
            }
            let mut lanes = [0u32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), largest);
            let exact = lanes.iter().all(|&l| l <= safe);

            // Backward: x = β·z + c·x₊₁ (+ μ·xₙ₋₁), from x₊₁ = the last row (or 0 for Dirichlet).
            if spiked {
                scatter(&f, n - 1, last);
            }
            let mut next = last;
            let backward = |i: usize, z: __m256, next: __m256| -> __m256 {
                let beta_z = _mm256_mul_ps(_mm256_set1_ps(c.beta), z);
                let value = if !spiked && i + 1 == m {
                    _mm256_add_ps(beta_z, zero)
                } else {
                    let base =
                        _mm256_add_ps(beta_z, _mm256_mul_ps(_mm256_set1_ps(c.coupling[i]), next));
                    if c.mu[i] != 0.0 {
                        _mm256_add_ps(base, _mm256_mul_ps(_mm256_set1_ps(c.mu[i]), last))
                    } else {
                        base
                    }
                };
                if exact {
                    value
                } else if !spiked && i + 1 == m {
                    clamp(value, finite(z))
                } else {
                    let operands = _mm256_and_ps(finite(z), finite(next));
                    clamp(value, _mm256_and_ps(operands, finite(last)))
                }
            };
            for i in (full..m).rev() {
                next = backward(i, gather(&f, i), next);
                scatter(&f, i, next);
            }
            for i0 in (0..full).step_by(8).rev() {
                let mut rows = load_rows(&f, i0);
                for (j, row) in rows.iter_mut().enumerate().rev() {
                    next = backward(i0 + j, *row, next);
                    *row = next;
                }
                store_rows(&f, i0, rows);
            }
        }
    }
}
