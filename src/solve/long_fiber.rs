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

use num_traits::Float;
use rayon::prelude::*;

use segmented::Recurrence;

use super::{
    from_f64, to_f64, BlockSolver, CyclicCholesky, Reweighted, RowBlock, RowFactors,
    SymmetricTridiagonal,
};

/// Shorter fibers keep the single-column kernel.
const MIN_LEN: usize = 4096;
/// The body must be at least this long (and longer than the reach of a carry) to be worth it.
const MIN_BODY: usize = 2048;
/// Values per partial sum of the re-weighted mean; fixed, so the sum does not depend on threads.
const SUM_CHUNK: usize = 1 << 14;
/// Fibers at least this long are spread over the threads of the current pool.
const PARALLEL_MIN: usize = 1 << 16;

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

/// `y` at `target` for a sweep `yᵢ = a₁gᵢ + c₁yᵢ₋₁` whose coefficients are constant from `start`
/// on, where `y_{start−1} = y_left`: from `y_left`, or from zero a `reach` before `target`.
fn warm_y<T: Float>(r: &Recurrence, g: &[T], start: usize, target: usize, y_left: f64) -> f64 {
    let reach = r.reach().expect("a contracting recurrence");
    let from = target.saturating_sub(reach).max(start);
    let mut y = if from == start { y_left } else { 0.0 };
    for &v in &g[from..=target] {
        y = r.a1 * to_f64(v) + r.c1 * y;
    }
    y
}

/// `A⁻¹g` for one contiguous fiber of the tridiagonal operator.
pub(crate) fn tridiagonal<T: Float + Send + Sync>(
    f: &SymmetricTridiagonal,
    fiber: &mut [T],
    scratch: &mut [f64],
) {
    let n = fiber.len();
    if n < MIN_LEN {
        return f.solve(&mut as_block(fiber), scratch);
    }
    let (a, c) = (&f.inv_pivot, &f.coupling);
    // Rows 0..n−1 follow one recurrence; the last row (Neumann) has its own pivot.
    let m = n - 1;
    let start = steady_from(a, m).max(steady_from(c, m)).max(1);
    let r = Recurrence {
        a1: a.get(m - 1),
        c1: c.get(m - 1),
        a2: 1.0,
        c2: c.get(m - 1),
    };
    if !worth_it(&r, start, m) {
        return f.solve(&mut as_block(fiber), scratch);
    }
    // Head, forward.
    let mut head = Vec::with_capacity(start);
    let mut y = 0.0;
    for (i, &g) in fiber[..start].iter().enumerate() {
        y = a.get(i) * to_f64(g) + c.get(i) * y;
        head.push(y);
    }
    // The last row needs the y just before it.
    let y_before_last = warm_y(&r, fiber, start, m - 1, y);
    let x_last = a.get(m) * to_f64(fiber[m]) + c.get(m) * y_before_last;
    segmented::solve(&r, &mut fiber[start..m], y, x_last);
    fiber[m] = from_f64(x_last);
    // Head, backward.
    let mut x = to_f64(fiber[start]);
    for i in (0..start).rev() {
        x = head[i] + c.get(i) * x;
        fiber[i] = from_f64(x);
    }
}

/// `A⁻¹g` for one contiguous fiber of the periodic operator.
pub(crate) fn cyclic<T: Float + Send + Sync>(
    f: &CyclicCholesky,
    fiber: &mut [T],
    scratch: &mut [f64],
) {
    let n = fiber.len();
    if n < MIN_LEN {
        return f.solve(&mut as_block(fiber), scratch);
    }
    let (d, prev, next, last) = (&f.inv_diag, &f.prev, &f.next, &f.last);
    let end = n - 1;
    // Rows 0..n−2 follow one recurrence; row n−2 has no `next` (its successor is the last row).
    let m = n - 2;
    let start = steady_from(d, m)
        .max(steady_from(prev, m))
        .max(steady_from(next, m))
        .max(1);
    let r = Recurrence {
        a1: d.get(m - 1),
        c1: prev.get(m - 1),
        a2: d.get(m - 1),
        c2: next.get(m - 1),
    };
    if d.get(m) != r.a1 || prev.get(m) != r.c1 {
        return f.solve(&mut as_block(fiber), scratch);
    }
    // The last row of G decays geometrically from its first entry; entries below 2⁻⁶⁰ of it
    // (scaled by the sum of the geometric tail) are dropped from the body.
    let coupling = r.c1.abs().max(r.c2.abs());
    let threshold = last.get(0).abs() * (1.0 - coupling).max(0.0) * 2f64.powi(-60);
    let stored = &last.head[1..last.head.len().min(m)];
    let decayed = 1 + stored.partition_point(|&v| v.abs() > threshold);
    let start = start.max(decayed);
    if !worth_it(&r, start, m) {
        return f.solve(&mut as_block(fiber), scratch);
    }
    // Head, forward, and its share of the last row's dot product.
    let mut head = Vec::with_capacity(start);
    let mut y = 0.0;
    let mut dot = 0.0;
    for (i, &g) in fiber[..start].iter().enumerate() {
        y = d.get(i) * to_f64(g) + prev.get(i) * y;
        dot += last.get(i) * y;
        head.push(y);
    }
    let y_at_m = {
        let before = warm_y(&r, fiber, start, m - 1, y);
        d.get(m) * to_f64(fiber[m]) + prev.get(m) * before
    };
    dot += last.get(m) * y_at_m;
    let x_end = (to_f64(fiber[end]) - dot) * d.get(end) * d.get(end);
    let x_at_m = d.get(m) * y_at_m + next.get(m) * x_end - last.get(m) * d.get(m) * x_end;
    segmented::solve(&r, &mut fiber[start..m], y, x_at_m);
    fiber[m] = from_f64(x_at_m);
    fiber[end] = from_f64(x_end);
    // Head, backward.
    let mut x = to_f64(fiber[start]);
    for i in (0..start).rev() {
        x = d.get(i) * head[i] + next.get(i) * x - last.get(i) * d.get(i) * x_end;
        fiber[i] = from_f64(x);
    }
}

/// Sum of a chunk in `f64`, with independent partial sums so that it vectorizes.
fn chunk_sum<T: Float>(chunk: &[T]) -> f64 {
    let mut acc = [0.0_f64; 8];
    let mut blocks = chunk.chunks_exact(8);
    for block in &mut blocks {
        for (a, &v) in acc.iter_mut().zip(block) {
            *a += to_f64(v);
        }
    }
    let rest: f64 = blocks.remainder().iter().map(|&v| to_f64(v)).sum();
    acc.iter().sum::<f64>() + rest
}

/// `A⁻¹g` for one contiguous fiber of re-weighted H0: the mean, then one pass.
pub(crate) fn reweighted<T: Float + Send + Sync>(
    f: &Reweighted,
    fiber: &mut [T],
    _scratch: &mut [f64],
) {
    let n = fiber.len();
    let parallel = n >= PARALLEL_MIN && crate::layout::parallel_allowed();
    let sums: Vec<f64> = if parallel {
        fiber.par_chunks(SUM_CHUNK).map(chunk_sum).collect()
    } else {
        fiber.chunks(SUM_CHUNK).map(chunk_sum).collect()
    };
    let sum: f64 = sums.iter().sum();
    // x = s·g + (1 − s)·mean(g)
    let offset = sum * ((1.0 - f.shrink) / f.n as f64);
    let shrink = f.shrink;
    let update = |chunk: &mut [T]| {
        for g in chunk {
            *g = from_f64(shrink * to_f64(*g) + offset);
        }
    };
    if parallel {
        fiber.par_chunks_mut(SUM_CHUNK).for_each(update);
    } else {
        update(fiber);
    }
}
