//! Moving the runs of a strided block into a packed `n × w` block and back: fixed-size copies for
//! the short runs of small kernels (no `memcpy` call per run), and 8 × 8 register transposes for
//! single-value runs of contiguous fibers.

use std::ptr;

use crate::Element;

/// `n` rows of runs: run `g` of row `i` is `inner` contiguous values at
/// `origin + bases[g] + i·row_stride`; in the packed block, row `i` starts at `i·width` and run
/// `g` sits at column `g·inner`.
pub(super) struct Runs<'a, T> {
    pub origin: *mut T,
    pub bases: &'a [isize],
    pub inner: usize,
    pub row_stride: isize,
    pub rows: usize,
}

/// Which way to copy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Move {
    Pack,
    Unpack,
}

impl<T: Element> Runs<'_, T> {
    /// Copies every run into `packed` (`Pack`) or back from it (`Unpack`).
    ///
    /// # Safety
    /// Every run must be valid for reads and writes of `inner` values, borrowed uniquely, and not
    /// overlap `packed`, which must hold `rows·bases.len()·inner` values.
    pub unsafe fn move_all(&self, packed: &mut [T], way: Move) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let width = self.bases.len() * self.inner;
            assert!(packed.len() >= self.rows * width);
            macro_rules! fixed {
            ($($n:literal),*) => {
                match self.inner {
                    1 => self.move_single(packed, way),
                    $($n => self.move_fixed::<$n>(packed, way),)*
                    _ => self.move_any(packed, way),
                }
            };
        }
            fixed!(2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 25, 27, 49);
        }
    }

    #[inline(always)]
    unsafe fn run(&self, g: usize, i: usize) -> *mut T {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            self.origin
                .offset(self.bases[g] + i as isize * self.row_stride)
        }
    }

    unsafe fn move_fixed<const N: usize>(&self, packed: &mut [T], way: Move) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let width = self.bases.len() * N;
            let slots = packed.as_mut_ptr();
            for i in 0..self.rows {
                for g in 0..self.bases.len() {
                    let run = self.run(g, i).cast::<[T; N]>();
                    let slot = slots.add(i * width + g * N).cast::<[T; N]>();
                    match way {
                        Move::Pack => slot.write_unaligned(run.read_unaligned()),
                        Move::Unpack => run.write_unaligned(slot.read_unaligned()),
                    }
                }
            }
        }
    }

    unsafe fn move_any(&self, packed: &mut [T], way: Move) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let (inner, width) = (self.inner, self.bases.len() * self.inner);
            let slots = packed.as_mut_ptr();
            for i in 0..self.rows {
                for g in 0..self.bases.len() {
                    let (run, slot) = (self.run(g, i), slots.add(i * width + g * inner));
                    match way {
                        Move::Pack => ptr::copy_nonoverlapping(run, slot, inner),
                        Move::Unpack => ptr::copy_nonoverlapping(slot, run, inner),
                    }
                }
            }
        }
    }

    /// Single values: each run is one entry of one fiber. Tiles of fibers are walked side by side,
    /// which reads a few streams in order when the fibers are contiguous (the input axis of a
    /// 1×1 conv or a linear layer); there `f32` tiles are transposed 8 × 8 in registers.
    unsafe fn move_single(&self, packed: &mut [T], way: Move) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let width = self.bases.len();
            #[cfg(target_arch = "x86_64")]
            let done_tiles = if T::IS_F32 && self.row_stride == 1 && crate::solve::has_avx2() {
                transpose::tiles_f32(
                    self.origin.cast(),
                    self.bases,
                    self.rows,
                    packed.as_mut_ptr().cast(),
                    width,
                    way == Move::Pack,
                )
            } else {
                0
            };
            #[cfg(not(target_arch = "x86_64"))]
            let done_tiles = 0;
            let slots = packed.as_mut_ptr();
            for tile in (done_tiles * TILE..width).step_by(TILE) {
                let tile_end = (tile + TILE).min(width);
                for i in 0..self.rows {
                    for g in tile..tile_end {
                        let (run, slot) = (self.run(g, i), slots.add(i * width + g));
                        match way {
                            Move::Pack => *slot = *run,
                            Move::Unpack => *run = *slot,
                        }
                    }
                }
            }
        }
    }
}

/// Fibers walked side by side by the scalar copy of single values: a few cache lines.
const TILE: usize = 8;

#[cfg(target_arch = "x86_64")]
mod transpose {
    use std::arch::x86_64::*;

    use super::TILE;
    use crate::solve::transpose8;

    /// Moves whole tiles of 8 contiguous `f32` fibers (rows in multiples of 8 by register
    /// transposes, the rest one by one); returns how many tiles it did.
    ///
    /// # Safety
    /// AVX2 must be present; fiber `g` holds `rows` values at `origin + bases[g]`; `packed` holds
    /// `rows × width` values.
    pub(super) unsafe fn tiles_f32(
        origin: *mut f32,
        bases: &[isize],
        rows: usize,
        packed: *mut f32,
        width: usize,
        pack: bool,
    ) -> usize {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let tiles = bases.len() / TILE;
            for t in 0..tiles {
                let fibers: [*mut f32; 8] =
                    std::array::from_fn(|k| origin.offset(bases[t * TILE + k]));
                let column = packed.add(t * TILE);
                if pack {
                    pack_tile(&fibers, rows, column, width);
                } else {
                    unpack_tile(&fibers, rows, column, width);
                }
            }
            tiles
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn pack_tile(fibers: &[*mut f32; 8], rows: usize, column: *mut f32, width: usize) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let full = rows / 8 * 8;
            for i in (0..full).step_by(8) {
                let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(fibers[k].add(i)));
                let c = transpose8(r);
                for (j, v) in c.iter().enumerate() {
                    _mm256_storeu_ps(column.add((i + j) * width), *v);
                }
            }
            for i in full..rows {
                for (k, f) in fibers.iter().enumerate() {
                    *column.add(i * width + k) = *f.add(i);
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn unpack_tile(fibers: &[*mut f32; 8], rows: usize, column: *mut f32, width: usize) {
        // SAFETY: the caller upholds this function's contract (see its doc).
        unsafe {
            let full = rows / 8 * 8;
            for i in (0..full).step_by(8) {
                let r: [__m256; 8] =
                    std::array::from_fn(|j| _mm256_loadu_ps(column.add((i + j) * width)));
                let c = transpose8(r);
                for (k, v) in c.iter().enumerate() {
                    _mm256_storeu_ps(fibers[k].add(i), *v);
                }
            }
            for i in full..rows {
                for (k, f) in fibers.iter().enumerate() {
                    *f.add(i) = *column.add(i * width + k);
                }
            }
        }
    }
}
