//! Constant-coefficient sweeps over a long body: `yᵢ = a₁gᵢ + c₁yᵢ₋₁` forward, then
//! `xᵢ = a₂yᵢ + c₂xᵢ₊₁` backward, solved in independent pieces.
//!
//! A group of `LANES·s` values is cut into `LANES` segments of `s` values, swept together (one row
//! of a scratch block per step, vectorized over the segments). Forward: from a zero start, then a
//! carry pass over the segment ends and a correction `c₁^{t+1}·carry` of the first `reach` rows.
//! Backward: each segment's zero-start value at its first row needs only its first `reach` rows, so
//! the exact value after every segment is known first and the sweep writes final values straight
//! to the fiber. Groups follow each other with exact forward carries; a group's backward sweep
//! starts from zero and its last `reach` values are corrected once the next group has its first
//! value. `reach` is where `c^reach ≤ 2⁻⁶⁰`, so what lies beyond it is below rounding.
//!
//! The body is cut into parts at positions that depend only on its length, so the result is the
//! same whatever the number of threads. Each part gets its boundary values from short warm-up
//! sweeps over the `reach` values around its ends (read before any part is written).

use crate::threading::Par;
use crate::Element;
use rayon::prelude::*;

use crate::solve::{from_f64, to_f64};

/// Segments swept together: enough independent chains to hide the latency of a step.
pub(super) const LANES: usize = 16;
/// Shortest segment: the carry pass and the corrections stay small next to the sweeps.
const MIN_SEGMENT: usize = 256;
/// Longest segment chosen for a long reach (a block of 512 KiB).
const MAX_SEGMENT: usize = 4096;
/// Shortest part given to a thread.
const MIN_PART: usize = 1 << 16;
/// `ln 2⁶⁰`: contributions below `2⁻⁶⁰` of a carry are dropped.
const TRUNCATION: f64 = 60.0 * std::f64::consts::LN_2;

/// The constant coefficients of the two sweeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Recurrence {
    pub a1: f64,
    pub c1: f64,
    pub a2: f64,
    pub c2: f64,
}

impl Recurrence {
    /// How far a carry matters: the smallest `k` with `cᵏ ≤ 2⁻⁶⁰` for both couplings, or `None`
    /// when a coupling is not below one in magnitude.
    pub fn reach(&self) -> Option<usize> {
        let c = self.c1.abs().max(self.c2.abs());
        // NaN fails this test too.
        if c.partial_cmp(&1.0) != Some(std::cmp::Ordering::Less) {
            return None;
        }
        if c == 0.0 {
            return Some(1);
        }
        let k = (TRUNCATION / -c.ln()).ceil();
        (k < 1e15).then(|| (k as usize).max(1))
    }
}

/// `c^{k+1}` for `k < len`.
fn powers(c: f64, len: usize) -> Vec<f64> {
    let mut p = Vec::with_capacity(len);
    let mut v = 1.0;
    for _ in 0..len {
        v *= c;
        p.push(v);
    }
    p
}

struct Plan {
    r: Recurrence,
    reach: usize,
    segment: usize,
    pow1: Vec<f64>,
    pow2: Vec<f64>,
}

impl Plan {
    fn pow1(&self, k: usize) -> f64 {
        power(&self.pow1, self.r.c1, k)
    }
    fn pow2(&self, k: usize) -> f64 {
        power(&self.pow2, self.r.c2, k)
    }
}

/// `cᵏ` for `k ≥ 1`, from the table when it is long enough.
fn power(table: &[f64], c: f64, k: usize) -> f64 {
    match table.get(k.wrapping_sub(1)) {
        Some(&p) => p,
        None => c.powi(k.min(i32::MAX as usize) as i32),
    }
}

/// Overwrites `body` (holding `g`) with `x`, given the exact `y` just before it (`y_left`) and the
/// exact `x` just after it (`x_right`). `r.reach()` must be `Some`.
pub(super) fn solve<T: Element>(
    r: &Recurrence,
    body: &mut [T],
    y_left: f64,
    x_right: f64,
    par: Par,
) {
    let n = body.len();
    if n == 0 {
        return;
    }
    let reach = r.reach().expect("a contracting recurrence").min(n);
    // A group must span the reach; longer segments (up to a 512 KiB block) make the per-group
    // corrections a smaller share when the reach is long.
    let segment = MIN_SEGMENT
        .max(reach.div_ceil(LANES))
        .max((reach / 2).min(MAX_SEGMENT));
    let plan = Plan {
        r: *r,
        reach,
        segment,
        pow1: powers(r.c1, reach),
        pow2: powers(r.c2, reach),
    };
    let group = LANES * segment;
    let part_len = MIN_PART.max(64 * reach).div_ceil(group) * group;
    let parts = (n / part_len).max(1);

    // Boundary values of every part, read from `g` before any part is overwritten.
    let boundary = |k: usize| warm_up(&plan, body, k * part_len, y_left, x_right);
    let inner: Vec<(f64, f64)> = if parts > 2 && par.is_parallel() {
        (1..parts).into_par_iter().map(boundary).collect()
    } else {
        (1..parts).map(boundary).collect()
    };
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = body;
    for k in 0..parts {
        let (piece, tail) = if k + 1 == parts {
            (rest, &mut [][..])
        } else {
            rest.split_at_mut(part_len)
        };
        let y_in = if k == 0 { y_left } else { inner[k - 1].0 };
        let x_out = if k + 1 == parts { x_right } else { inner[k].1 };
        pieces.push((piece, y_in, x_out));
        rest = tail;
    }
    if parts > 1 && par.is_parallel() {
        pieces
            .into_par_iter()
            .for_each(|(piece, y_in, x_out)| solve_part(&plan, piece, y_in, x_out));
    } else {
        for (piece, y_in, x_out) in pieces {
            solve_part(&plan, piece, y_in, x_out);
        }
    }
}

/// `(y_{b−1}, x_b)` at a part boundary `b`, from sweeps over the `reach` values on either side.
fn warm_up<T: Element>(plan: &Plan, g: &[T], b: usize, y_left: f64, x_right: f64) -> (f64, f64) {
    let Recurrence { a1, c1, a2, c2 } = plan.r;
    let n = g.len();
    let start = b.saturating_sub(plan.reach);
    let mut y = if start == 0 { y_left } else { 0.0 };
    for &v in &g[start..b] {
        y = a1 * to_f64(v) + c1 * y;
    }
    let y_before = y;
    let end = (b + plan.reach).min(n);
    let ys: Vec<f64> = g[b..end]
        .iter()
        .map(|&v| {
            y = a1 * to_f64(v) + c1 * y;
            y
        })
        .collect();
    let mut x = if end == n { x_right } else { 0.0 };
    for &y in ys.iter().rev() {
        x = a2 * y + c2 * x;
    }
    (y_before, x)
}

/// One part, with 256-bit vectors where the CPU has them.
fn solve_part<T: Element>(plan: &Plan, part: &mut [T], y_in: f64, x_out: f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { solve_part_avx2(plan, part, y_in, x_out) };
    }
    solve_part_any(plan, part, y_in, x_out)
}

/// [`solve_part_any`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn solve_part_avx2<T: Element>(plan: &Plan, part: &mut [T], y_in: f64, x_out: f64) {
    solve_part_any(plan, part, y_in, x_out)
}

/// One part: full groups, then a shorter group, then fewer than `LANES` values done one by one.
#[inline(always)]
fn solve_part_any<T: Element>(plan: &Plan, part: &mut [T], y_in: f64, x_out: f64) {
    let n = part.len();
    let full = LANES * plan.segment;
    let groups_full = n / full;
    let short = (n - groups_full * full) / LANES;
    let groups = groups_full + usize::from(short > 0);
    if groups == 0 {
        scalar(plan, part, y_in, x_out);
        return;
    }
    let mut block = vec![0.0_f64; full];
    // The deferred tail of the previous group: its start in `part` and its length.
    let mut pending: Option<(usize, usize)> = None;
    let mut y = y_in;
    for k in 0..groups {
        let start = k * full;
        let s = if k < groups_full { plan.segment } else { short };
        let len = LANES * s;
        let last = k + 1 == groups;
        let block = &mut block[..len];
        y = forward(plan, &part[start..start + len], s, block, y);
        let x_next = if last {
            scalar(plan, &mut part[start + len..], y, x_out)
        } else {
            0.0
        };
        let x_start = backward_write(plan, block, s, x_next, &mut part[start..start + len]);
        if let Some((at, lt)) = pending.take() {
            // x = x̃ + c₂^{distance to the next group}·x_start; for f32 this rounds twice (≤ 1 ulp).
            for (j, v) in part[at..at + lt].iter_mut().enumerate() {
                *v = from_f64(to_f64(*v) + plan.pow2[lt - 1 - j] * x_start);
            }
        }
        if !last {
            // Values this close to the group's end still feel the next group's first value.
            let lt = plan.reach.min(len);
            pending = Some((start + len - lt, lt));
        }
    }
}

/// Both sweeps one value at a time over fewer than `LANES` values; returns `x` at the first one
/// (`x_out` when there is none).
#[inline(always)]
fn scalar<T: Element>(plan: &Plan, values: &mut [T], y_in: f64, x_out: f64) -> f64 {
    let Recurrence { a1, c1, a2, c2 } = plan.r;
    let mut ys = [0.0_f64; LANES];
    let ys = &mut ys[..values.len()];
    let mut y = y_in;
    for (dst, &v) in ys.iter_mut().zip(values.iter()) {
        y = a1 * to_f64(v) + c1 * y;
        *dst = y;
    }
    let mut x = x_out;
    for (dst, &y) in values.iter_mut().zip(ys.iter()).rev() {
        x = a2 * y + c2 * x;
        *dst = from_f64(x);
    }
    x
}

/// Forward sweep of a group of `LANES` segments of `s` values into `block` (row `t` holds value
/// `t` of every segment), made exact with the carry `y_in`; returns the exact `y` at the end.
#[inline(always)]
fn forward<T: Element>(plan: &Plan, g: &[T], s: usize, block: &mut [f64], y_in: f64) -> f64 {
    let Recurrence { a1, c1, .. } = plan.r;
    assert!(g.len() == LANES * s && block.len() == LANES * s);
    let mut y = [0.0_f64; LANES];
    let done = super::tiles::forward(g, s, block, a1, c1, &mut y);
    for (t, row) in block.chunks_exact_mut(LANES).enumerate().skip(done) {
        for (l, (y, dst)) in y.iter_mut().zip(row.iter_mut()).enumerate() {
            // SAFETY: l < LANES and t < s, so l·s + t < LANES·s = g.len().
            let v = to_f64(unsafe { *g.get_unchecked(l * s + t) });
            *y = a1 * v + c1 * *y;
            *dst = *y;
        }
    }
    // carry[l]: the exact y just before segment l.
    let cs = plan.pow1(s);
    let mut carry = [0.0_f64; LANES];
    carry[0] = y_in;
    for l in 1..LANES {
        carry[l] = y[l - 1] + cs * carry[l - 1];
    }
    let y_end = y[LANES - 1] + cs * carry[LANES - 1];
    let rows = s.min(plan.reach);
    for (row, &p) in block.chunks_exact_mut(LANES).zip(&plan.pow1[..rows]) {
        for (v, &c) in row.iter_mut().zip(&carry) {
            *v += p * c;
        }
    }
    y_end
}

/// Backward sweep of a group whose forward result is in `block`, written to `out` (segment `l`
/// at `out[l·s..(l+1)·s]`), exact given `x_next` (the `x` right after the group); returns the
/// exact `x` at the group's first value.
#[inline(always)]
fn backward_write<T: Element>(
    plan: &Plan,
    block: &[f64],
    s: usize,
    x_next: f64,
    out: &mut [T],
) -> f64 {
    let Recurrence { a2, c2, .. } = plan.r;
    assert!(block.len() == LANES * s && out.len() == LANES * s);
    // Each segment's zero-start x at its first value only needs its first `reach` values.
    let rows = s.min(plan.reach);
    let mut head = [0.0_f64; LANES];
    for row in block.chunks_exact(LANES).take(rows).rev() {
        for (x, &v) in head.iter_mut().zip(row) {
            *x = a2 * v + c2 * *x;
        }
    }
    // x[l]: the exact x just after segment l, where its sweep starts.
    let cs = plan.pow2(s);
    let mut x = [0.0_f64; LANES];
    x[LANES - 1] = x_next;
    for l in (0..LANES - 1).rev() {
        x[l] = head[l + 1] + cs * x[l + 1];
    }
    let x_start = head[0] + cs * x[0];
    let done = super::tiles::backward_write(block, s, a2, c2, &mut x, out);
    for t in (0..s - done).rev() {
        let row = &block[t * LANES..(t + 1) * LANES];
        for (l, (x, &v)) in x.iter_mut().zip(row).enumerate() {
            *x = a2 * v + c2 * *x;
            out[l * s + t] = from_f64(*x);
        }
    }
    x_start
}
