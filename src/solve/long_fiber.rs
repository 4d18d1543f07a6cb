//! One long contiguous fiber (`Direction::Flattened`), where a block would have a single column.
//!
//! The single-column sweeps are latency-bound recurrences, so long fibers take another route. The
//! factors converge geometrically to constants: in `f64` the pivot sequence is the orbit of a
//! monotone map, so it is monotone and becomes exactly constant after a short head, found by
//! bisection. The head (and the few special last rows) run the plain sequential sweeps with the
//! stored factors; the long constant-coefficient body runs [`segmented`], vectorized and split over
//! the threads of the current rayon pool. Short fibers, and factors that do not converge before
//! the end of the fiber (very large λ), keep the single-column kernel.

mod segmented;
mod tiles;

use crate::threading::Par;
use crate::Element;
use rayon::prelude::*;

use segmented::Recurrence;

use super::sweep::store;
use super::{to_f64, BlockSolver, Reweighted, RowBlock, RowFactors, Sweep, OUT_SCALE};

/// Shorter fibers keep the single-column kernel.
const MIN_LEN: usize = 4096;
/// The body must be at least this long (and longer than the reach of a carry) to be worth it.
const MIN_BODY: usize = 2048;
/// Values per partial sum of the re-weighted mean; fixed, so the sum does not depend on threads.
const SUM_CHUNK: usize = 1 << 14;

fn as_block<T>(fiber: &mut [T]) -> RowBlock<'_, T> {
    let n = fiber.len();
    RowBlock::new(fiber, n, 1, 1).expect("n values hold n rows of one")
}

/// The first index of `values[..end]` from which every entry equals `values[end − 1]`, relying on
/// the sequence being monotone (so the entries equal to its last one form a suffix).
fn constant_from(values: &[f64], end: usize) -> usize {
    let last = values[end - 1];
    values[..end].partition_point(|&v| v != last)
}

/// The first row of `0..end` from which the factors are one steady value: where the stored head
/// ends, or (all rows stored) the start of the constant suffix.
fn steady_from(factors: &RowFactors, end: usize) -> usize {
    if factors.head.len() < end {
        factors.head.len()
    } else {
        constant_from(&factors.head, end)
    }
}

/// Whether the body `[start, end)` is long enough next to the reach of its carries.
fn worth_it(r: &Recurrence, start: usize, end: usize) -> bool {
    let body = end.saturating_sub(start);
    matches!(r.reach(), Some(reach) if body >= MIN_BODY && body >= 2 * reach)
}

/// The first row from which `factors` is zero up to its tail (`factors.len` when it never is).
fn zero_from(factors: &RowFactors) -> usize {
    let head = factors.head.len();
    if factors.steady == 0.0 {
        factors
            .head
            .iter()
            .rposition(|&v| v != 0.0)
            .map_or(0, |i| i + 1)
    } else if head + factors.tail.len() < factors.len {
        factors.len
    } else {
        head
    }
}

/// `z` at `target` for a sweep `zᵢ = a₁gᵢ + c₁zᵢ₋₁` whose coefficients are constant from `start`
/// on, where `z_{start−1} = z_left`: from `z_left`, or from zero a `reach` before `target`.
fn warm_z<T: Element>(r: &Recurrence, g: &[T], start: usize, target: usize, z_left: f64) -> f64 {
    let reach = r.reach().expect("a contracting recurrence");
    let from = target.saturating_sub(reach).max(start);
    let mut z = if from == start { z_left } else { 0.0 };
    for &v in &g[from..=target] {
        z = r.a1 * to_f64(v) + r.c1 * z;
    }
    z
}

/// Whether an `f64` fiber holds a value so close to the largest float that the body's unscaled
/// output could round past it (the block kernel, which stores `8·x̃`, handles those).
fn near_overflow<T: Element>(fiber: &[T]) -> bool {
    !T::IS_F32
        && fiber
            .iter()
            .any(|&v| to_f64(v).abs() > f64::MAX / (4.0 * OUT_SCALE))
}

/// `A⁻¹g` for one contiguous fiber of a Sobolev H1 operator: the rows with their own coefficients
/// (the head, the last forward row and the last row) one by one, the constant-coefficient body in
/// [`segmented`] pieces.
pub(crate) fn sobolev<T: Element>(sweep: &Sweep, fiber: &mut [T], scratch: &mut [f64], par: Par) {
    let n = fiber.len();
    let f = &sweep.coefficients;
    if n < MIN_LEN || near_overflow(fiber) {
        return sweep.solve(&mut as_block(fiber), scratch);
    }
    let m = f.m;
    // The body [start, end): constant α and c, no κ or μ; row m − 1 (κ, μ tails) stays outside.
    let end = m - 1;
    let start = steady_from(&f.alpha, end)
        .max(steady_from(&f.coupling, end))
        .max(zero_from(&f.kappa))
        .max(zero_from(&f.mu))
        .max(1);
    // Inside the body x = 8·x̃ is carried unscaled: xᵢ = (8β)·zᵢ + c·xᵢ₊₁.
    let r = Recurrence {
        a1: f.alpha.get(end - 1),
        c1: f.coupling.get(end - 1),
        a2: OUT_SCALE * f.beta,
        c2: f.coupling.get(end - 1),
    };
    if !worth_it(&r, start, end) {
        return sweep.solve(&mut as_block(fiber), scratch);
    }
    // Head, forward, with its share of the last row's sum.
    let mut head = Vec::with_capacity(start);
    let mut z = 0.0;
    let mut acc = 0.0;
    for (i, &g) in fiber[..start].iter().enumerate() {
        z = if i == 0 {
            f.alpha.get(0) * to_f64(g)
        } else {
            f.alpha.get(i) * to_f64(g) + f.coupling.get(i) * z
        };
        if f.kappa.get(i) != 0.0 {
            acc += f.kappa.get(i) * z;
        }
        head.push(z);
    }
    // Row m − 1 needs the z just before it.
    let z_before = warm_z(&r, fiber, start, end - 1, z);
    let z_end = f.alpha.get(end) * to_f64(fiber[end]) + f.coupling.get(end) * z_before;
    if f.kappa.get(end) != 0.0 {
        acc += f.kappa.get(end) * z_end;
    }
    let x_last = if m < n {
        acc + f.gamma * to_f64(fiber[n - 1])
    } else {
        0.0
    };
    let mut x_end = f.beta * z_end + f.coupling.get(end) * x_last;
    if f.mu.get(end) != 0.0 {
        x_end += f.mu.get(end) * x_last;
    }
    segmented::solve(&r, &mut fiber[start..end], z, OUT_SCALE * x_end, par);
    fiber[end] = store::<T, true>(x_end);
    if m < n {
        fiber[n - 1] = store::<T, true>(x_last);
    }
    // Head, backward, from the body's first value (rounded once to the storage type).
    let mut x = to_f64(fiber[start]) / OUT_SCALE;
    for i in (0..start).rev() {
        x = f.beta * head[i] + f.coupling.get(i) * x;
        if f.mu.get(i) != 0.0 {
            x += f.mu.get(i) * x_last;
        }
        fiber[i] = store::<T, true>(x);
    }
}

/// Sum of a chunk in `f64`, each value scaled by `down` first (so that no partial sum overflows),
/// with independent partial sums so that it vectorizes.
fn chunk_sum<T: Element>(chunk: &[T], down: f64) -> f64 {
    let mut acc = [0.0_f64; 8];
    let mut blocks = chunk.chunks_exact(8);
    for block in &mut blocks {
        for (a, &v) in acc.iter_mut().zip(block) {
            *a += down * to_f64(v);
        }
    }
    let rest: f64 = blocks.remainder().iter().map(|&v| down * to_f64(v)).sum();
    acc.iter().sum::<f64>() + rest
}

/// `A⁻¹g` for one contiguous fiber of re-weighted H0: the mean, then one pass.
pub(crate) fn reweighted<T: Element>(
    f: &Reweighted,
    fiber: &mut [T],
    _scratch: &mut [f64],
    par: Par,
) {
    let parallel = par.splits(fiber.len());
    let down = f.down;
    let sums: Vec<f64> = if parallel {
        fiber
            .par_chunks(SUM_CHUNK)
            .map(|c| chunk_sum(c, down))
            .collect()
    } else {
        fiber
            .chunks(SUM_CHUNK)
            .map(|c| chunk_sum(c, down))
            .collect()
    };
    let sum: f64 = sums.iter().sum();
    // x/8 = (s/8)·g + (1 − s)·mean(g)/8
    let offset = sum * f.mean_weight();
    let shrink = f.shrink / OUT_SCALE;
    let update = |chunk: &mut [T]| {
        for g in chunk {
            *g = store::<T, true>(shrink * to_f64(*g) + offset);
        }
    };
    if parallel {
        fiber.par_chunks_mut(SUM_CHUNK).for_each(update);
    } else {
        update(fiber);
    }
}
