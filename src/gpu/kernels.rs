//! The CubeCL kernels. `F` is the storage type (the tensor's), `A` the arithmetic type.
//!
//! A contiguous tensor is viewed as `[outer, n, inner]` with the fibers along the middle axis:
//! fiber `(o, j)` (its *column*, `col = o·inner + j`) has entry `i` at `o·n·inner + i·inner + j`.
//! Consecutive invocations take consecutive columns, so for axis 0 (`outer = 1`) a warp reads 32
//! neighbouring values per row: coalesced.
//!
//! Two methods:
//! - **columns**: one invocation per column sweeps all `n` rows (forward writes `z` into the
//!   output, backward reads it back). Enough when there are many columns.
//! - **segments**: the forward rows are cut into `S` segments of `L` rows, one invocation per
//!   (segment, column). Each sweep is a first-order linear recurrence, so a segment is an affine
//!   map of its carry-in: [`h1_segment_maps`] computes the maps (reading `g` once, writing
//!   nothing else), [`h1_segment_scan`] composes them per column (one cube per column) into every
//!   segment's carry-in of both sweeps, and [`h1_segment_apply`] re-runs each segment with its exact
//!   carries. No truncation: the result is the sequential one up to rounding.

use cubecl::prelude::*;

/// Values per segment map: `z_end`, `Πc`, `Σκz`, `Σκ·P`, `β·Σ P̄z`, `β·Σ P̄·P`, `Σ P̄μ`.
pub(crate) const MAP_VALUES: usize = 7;

/// Values each scan invocation keeps in shared memory: its part of the forward map (4), its
/// carry (1) and its part of the backward map (2).
const SCAN_RECORD: usize = 7;

/// Threads of the per-column scan cube (see [`crate::gpu::SCAN_THREADS`]).
const SCAN: usize = crate::gpu::SCAN_THREADS;

/// Where a launch's fibers lie: `cols` columns of `n` entries, entry `i` of column `col` at
/// [`offset`]; H1 sweeps the first `m` rows forward (re-weighted H0 passes `m = n`).
#[derive(CubeLaunch, CubeType)]
pub(crate) struct Fibers {
    pub n: usize,
    pub m: usize,
    pub inner: usize,
    pub cols: usize,
}

/// How the segment kernels cut the columns: `count` segments of `rows` rows, `per_unit`
/// consecutive segments for each invocation of a per-column scan.
#[derive(CubeLaunch, CubeType)]
pub(crate) struct Segments {
    pub count: usize,
    pub rows: usize,
    pub per_unit: usize,
}

/// The H1 sweep's coefficients: four arrays of `m` values and `scalars = [beta, gamma, out_scale]`.
#[derive(CubeLaunch, CubeType)]
pub(crate) struct Coefficients<A: Float> {
    pub alpha: Box<[A]>,
    pub coupling: Box<[A]>,
    pub kappa: Box<[A]>,
    pub mu: Box<[A]>,
    pub scalars: Box<[A]>,
}

/// What the H1 scan hands the segments: `carries[2·(s·cols + col)]` forward and `+ 1` backward
/// into segment `s`, and `last[col]`, the last row (scaled, `xt`).
#[derive(CubeLaunch, CubeType)]
pub(crate) struct Scan<A: Float> {
    pub carries: Box<[A]>,
    pub last: Box<[A]>,
}

/// Offset of entry 0 of column `col`; entry `row` is `row·inner` further on. Computed once per
/// column: an integer division per entry would cost more than the arithmetic of the sweep.
#[cube]
fn column_base(col: usize, fibers: &Fibers) -> usize {
    (col / fibers.inner) * fibers.n * fibers.inner + col % fibers.inner
}

/// Offset of entry `row` of column `col`.
#[cube]
fn offset(col: usize, row: usize, fibers: &Fibers) -> usize {
    column_base(col, fibers) + row * fibers.inner
}

/// H1, one invocation per column. `scalars = [beta, gamma, out_scale]`.
#[cube(launch_unchecked)]
pub(crate) fn h1_columns<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    h1: Coefficients<A>,
    fibers: Fibers,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let col = ABSOLUTE_POS;
    if col >= fibers.cols {
        terminate!();
    }
    let beta = h1.scalars[0];
    let gamma = h1.scalars[1];
    let out_scale = h1.scalars[2];
    let base = column_base(col, &fibers);
    let mut z = A::new(0.0);
    let mut acc = A::new(0.0);
    for i in 0..fibers.m {
        let at = base + i * fibers.inner;
        z = h1.alpha[i] * A::cast_from(input[at]) + h1.coupling[i] * z;
        acc += h1.kappa[i] * z;
        output[at] = F::cast_from(z);
    }
    let mut last = A::new(0.0);
    if fibers.m < fibers.n {
        let at = base + (fibers.n - 1) * fibers.inner;
        last = gamma * A::cast_from(input[at]) + acc;
        output[at] = F::cast_from(out_scale * last);
    }
    let mut next = last;
    for k in 0..fibers.m {
        let i = fibers.m - 1 - k;
        let at = base + i * fibers.inner;
        next = beta * A::cast_from(output[at]) + h1.coupling[i] * next + h1.mu[i] * last;
        output[at] = F::cast_from(out_scale * next);
    }
}

/// H1, segments: the affine map of every (segment, column) from its zero-carry sweep.
#[cube(launch_unchecked)]
pub(crate) fn h1_segment_maps<F: Float, A: Float>(
    input: &[F],
    maps: &mut [A],
    h1: Coefficients<A>,
    fibers: Fibers,
    segments: Segments,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let col = ABSOLUTE_POS % fibers.cols;
    let segment = ABSOLUTE_POS / fibers.cols;
    if segment >= segments.count {
        terminate!();
    }
    let start = segment * segments.rows;
    let mut end = start + segments.rows;
    if end > fibers.m {
        end = fibers.m;
    }
    let mut z = A::new(0.0);
    let mut inclusive = A::new(1.0); // P_i = Π_{start..=i} c
    let mut exclusive = A::new(1.0); // P̄_i = Π_{start..i} c
    let mut kz = A::new(0.0);
    let mut kp = A::new(0.0);
    let mut dz = A::new(0.0);
    let mut dp = A::new(0.0);
    let mut dm = A::new(0.0);
    let base = column_base(col, &fibers);
    for i in start..end {
        let c = h1.coupling[i];
        z = h1.alpha[i] * A::cast_from(input[base + i * fibers.inner]) + c * z;
        inclusive *= c;
        kz += h1.kappa[i] * z;
        kp += h1.kappa[i] * inclusive;
        dz += exclusive * z;
        dp += exclusive * inclusive;
        dm += exclusive * h1.mu[i];
        exclusive *= c;
    }
    let beta = h1.scalars[0];
    let base = (segment * fibers.cols + col) * MAP_VALUES;
    maps[base] = z;
    maps[base + 1] = inclusive;
    maps[base + 2] = kz;
    maps[base + 3] = kp;
    maps[base + 4] = beta * dz;
    maps[base + 5] = beta * dp;
    maps[base + 6] = dm;
}

/// H1, segments: one cube of [`SCAN`] invocations per column composes the segment maps into the
/// carry-in of every segment (`carries[2·(s·cols + col)]` forward, `+ 1` backward) and the last
/// row, written to `last[col]` (scaled, `xt`) and to the output (`x`).
#[cube(launch_unchecked)]
pub(crate) fn h1_segment_scan<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    maps: &[A],
    mut scan: Scan<A>,
    scalars: &[A],
    fibers: Fibers,
    segments: Segments,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    // Launched with exactly `cols` cubes: no bounds check, so every barrier is reached by all.
    let col = CUBE_POS;
    let unit = UNIT_POS as usize;
    let first = min(unit * segments.per_unit, segments.count);
    let stop = min(first + segments.per_unit, segments.count);
    // Per unit: the composite forward map (b, c, k, q), its carry-in, the backward map (d, e).
    let mut shared = Shared::<[A]>::new_slice(SCAN * SCAN_RECORD + 1);

    let mut b = A::new(0.0);
    let mut c = A::new(1.0);
    let mut k = A::new(0.0);
    let mut q = A::new(0.0);
    for s in first..stop {
        let at = (s * fibers.cols + col) * MAP_VALUES;
        let sb = maps[at];
        let sc = maps[at + 1];
        let sk = maps[at + 2];
        let sq = maps[at + 3];
        // (this segment) ∘ (units so far): carry b + c·x, sum k + q·x.
        k += sk + sq * b;
        q += sq * c;
        b = sb + sc * b;
        c = sc * c;
    }
    shared[unit * SCAN_RECORD] = b;
    shared[unit * SCAN_RECORD + 1] = c;
    shared[unit * SCAN_RECORD + 2] = k;
    shared[unit * SCAN_RECORD + 3] = q;
    sync_cube();

    if unit == 0 {
        let mut carry = A::new(0.0);
        let mut acc = A::new(0.0);
        for t in 0..SCAN {
            shared[t * SCAN_RECORD + 4] = carry;
            acc += shared[t * SCAN_RECORD + 2] + shared[t * SCAN_RECORD + 3] * carry;
            carry = shared[t * SCAN_RECORD] + shared[t * SCAN_RECORD + 1] * carry;
        }
        let mut xt_last = A::new(0.0);
        if fibers.m < fibers.n {
            let at = offset(col, fibers.n - 1, &fibers);
            xt_last = scalars[1] * A::cast_from(input[at]) + acc;
            output[at] = F::cast_from(scalars[2] * xt_last);
        }
        shared[SCAN * SCAN_RECORD] = xt_last;
        scan.last[col] = xt_last;
    }
    sync_cube();

    let xt_last = shared[SCAN * SCAN_RECORD];
    let mut carry = shared[unit * SCAN_RECORD + 4];
    let mut d = A::new(0.0);
    let mut e = A::new(1.0);
    for s in first..stop {
        let at = (s * fibers.cols + col) * MAP_VALUES;
        scan.carries[2 * (s * fibers.cols + col)] = carry;
        carry = maps[at] + maps[at + 1] * carry;
    }
    // Backward composite of this unit's segments, right to left: start = d + e·(carry from the right).
    for r in first..stop {
        let s = stop - 1 - (r - first);
        let at = (s * fibers.cols + col) * MAP_VALUES;
        let carry_in = scan.carries[2 * (s * fibers.cols + col)];
        let own = maps[at + 4] + carry_in * maps[at + 5] + xt_last * maps[at + 6];
        d = own + maps[at + 1] * d;
        e = maps[at + 1] * e;
    }
    shared[unit * SCAN_RECORD + 5] = d;
    shared[unit * SCAN_RECORD + 6] = e;
    sync_cube();

    if unit == 0 {
        let mut from_right = xt_last; // xt_m: the last row when m < n, zero otherwise
        if fibers.m >= fibers.n {
            from_right = A::new(0.0);
        }
        for r in 0..SCAN {
            let t = SCAN - 1 - r;
            let d_t = shared[t * SCAN_RECORD + 5];
            let e_t = shared[t * SCAN_RECORD + 6];
            shared[t * SCAN_RECORD + 4] = from_right;
            from_right = d_t + e_t * from_right;
        }
    }
    sync_cube();

    let mut from_right = shared[unit * SCAN_RECORD + 4];
    for r in first..stop {
        let s = stop - 1 - (r - first);
        let at = (s * fibers.cols + col) * MAP_VALUES;
        let carry_in = scan.carries[2 * (s * fibers.cols + col)];
        scan.carries[2 * (s * fibers.cols + col) + 1] = from_right;
        let own = maps[at + 4] + carry_in * maps[at + 5] + xt_last * maps[at + 6];
        from_right = own + maps[at + 1] * from_right;
    }
}

/// H1, segments: each (segment, column) re-runs both sweeps with its exact carries; `z` goes
/// through the output between them.
#[cube(launch_unchecked)]
pub(crate) fn h1_segment_apply<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    scan: Scan<A>,
    alpha: &[A],
    coupling: &[A],
    mu: &[A],
    scalars: &[A],
    fibers: Fibers,
    segments: Segments,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let col = ABSOLUTE_POS % fibers.cols;
    let segment = ABSOLUTE_POS / fibers.cols;
    if segment >= segments.count {
        terminate!();
    }
    let start = segment * segments.rows;
    let end = min(start + segments.rows, fibers.m);
    let slot = 2 * (segment * fibers.cols + col);
    let base = column_base(col, &fibers);
    let mut z = scan.carries[slot];
    for i in start..end {
        let at = base + i * fibers.inner;
        z = alpha[i] * A::cast_from(input[at]) + coupling[i] * z;
        output[at] = F::cast_from(z);
    }
    let beta = scalars[0];
    let out_scale = scalars[2];
    let xt_last = scan.last[col];
    let mut next = scan.carries[slot + 1];
    for r in start..end {
        let i = end - 1 - (r - start);
        let at = base + i * fibers.inner;
        next = beta * A::cast_from(output[at]) + coupling[i] * next + mu[i] * xt_last;
        output[at] = F::cast_from(out_scale * next);
    }
}

/// Re-weighted H0, one invocation per column: `x = shrink·g + weight·Σg` with
/// `scalars = [shrink, weight]`, `weight = (1 − shrink)/n`; sums of `segment_rows` rows at a time.
#[cube(launch_unchecked)]
pub(crate) fn reweighted_columns<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    scalars: &[A],
    fibers: Fibers,
    segment_rows: usize,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let col = ABSOLUTE_POS;
    if col >= fibers.cols {
        terminate!();
    }
    let base = column_base(col, &fibers);
    let mut total = A::new(0.0);
    let mut partial = A::new(0.0);
    let mut in_segment = 0usize;
    for i in 0..fibers.n {
        partial += A::cast_from(input[base + i * fibers.inner]);
        in_segment += 1;
        if in_segment == segment_rows {
            total += partial;
            partial = A::new(0.0);
            in_segment = 0;
        }
    }
    total += partial;
    let shift = scalars[1] * total;
    for i in 0..fibers.n {
        let at = base + i * fibers.inner;
        output[at] = F::cast_from(scalars[0] * A::cast_from(input[at]) + shift);
    }
}

/// Re-weighted H0, segments: the sum of every (segment, column).
#[cube(launch_unchecked)]
pub(crate) fn reweighted_segment_sums<F: Float, A: Float>(
    input: &[F],
    sums: &mut [A],
    fibers: Fibers,
    segments: Segments,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let col = ABSOLUTE_POS % fibers.cols;
    let segment = ABSOLUTE_POS / fibers.cols;
    if segment >= segments.count {
        terminate!();
    }
    let start = segment * segments.rows;
    let end = min(start + segments.rows, fibers.n);
    let base = column_base(col, &fibers);
    let mut sum = A::new(0.0);
    for i in start..end {
        sum += A::cast_from(input[base + i * fibers.inner]);
    }
    sums[segment * fibers.cols + col] = sum;
}

/// Re-weighted H0, segments: one cube per column adds the segment sums into `shifts[col]`
/// (`weight·Σg`, `scalars = [shrink, weight]`).
#[cube(launch_unchecked)]
pub(crate) fn reweighted_segment_total<A: Float>(
    sums: &[A],
    shifts: &mut [A],
    scalars: &[A],
    cols: usize,
    segments: Segments,
    #[define(A)] _dtype: ElemType,
) {
    // Launched with exactly `cols` cubes: no bounds check, so every barrier is reached by all.
    let col = CUBE_POS;
    let unit = UNIT_POS as usize;
    let first = min(unit * segments.per_unit, segments.count);
    let stop = min(first + segments.per_unit, segments.count);
    let mut shared = Shared::<[A]>::new_slice(SCAN);
    let mut sum = A::new(0.0);
    for s in first..stop {
        sum += sums[s * cols + col];
    }
    shared[unit] = sum;
    sync_cube();
    if unit == 0 {
        let mut total = A::new(0.0);
        for t in 0..SCAN {
            total += shared[t];
        }
        shifts[col] = scalars[1] * total;
    }
}

/// Re-weighted H0, segments: `x = shrink·g + shift` for every (segment, column).
#[cube(launch_unchecked)]
pub(crate) fn reweighted_segment_apply<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    shifts: &[A],
    scalars: &[A],
    fibers: Fibers,
    segments: Segments,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let col = ABSOLUTE_POS % fibers.cols;
    let segment = ABSOLUTE_POS / fibers.cols;
    if segment >= segments.count {
        terminate!();
    }
    let start = segment * segments.rows;
    let end = min(start + segments.rows, fibers.n);
    let shift = shifts[col];
    let base = column_base(col, &fibers);
    for i in start..end {
        let at = base + i * fibers.inner;
        output[at] = F::cast_from(scalars[0] * A::cast_from(input[at]) + shift);
    }
}

/// Offset in a tile of `width` columns (row-major: the columns of a row side by side).
#[cube]
fn tile_at(row: usize, lane: usize, #[comptime] width: usize) -> usize {
    row * width + lane
}

/// Invocation `part·width + lane` of a tile kernel, as [`load_tile`] places it: it moves rows
/// `part, part + parts, …` of column `lane` of its cube's tile (consecutive invocations,
/// consecutive columns) in `rounds` steps; the column starts at `base` where it exists (`live`).
#[derive(CubeType)]
struct TileUnit {
    unit: usize,
    lane: usize,
    part: usize,
    live: bool,
    base: usize,
    rounds: usize,
}

/// Reads the cube's `width` columns into `tile` (zeros past the last column) for a tile kernel of
/// `units` invocations, waits for the whole tile, and says where the calling invocation stands.
#[cube]
// `usize::div_ceil` is no cube function.
#[allow(clippy::manual_div_ceil)]
fn load_tile<F: Float, A: Float>(
    input: &[F],
    tile: &mut Shared<[A]>,
    fibers: &Fibers,
    #[comptime] width: usize,
    #[comptime] units: usize,
) -> TileUnit {
    let unit = UNIT_POS as usize;
    let lane = unit % width;
    let part = unit / width;
    let parts = comptime!(units / width);
    let first = CUBE_POS * width;
    // Invocation `part·width + lane` moves rows `part, part + parts, …` of column `lane`:
    // consecutive invocations, consecutive columns.
    let col = first + lane;
    let live = col < fibers.cols;
    let mut base = 0usize;
    if live {
        base = column_base(col, fibers);
    }
    let rounds = (fibers.n + parts - 1) / parts;
    for r in 0..rounds {
        let row = r * parts + part;
        if row < fibers.n {
            let mut value = A::new(0.0);
            if live {
                value = A::cast_from(input[base + row * fibers.inner]);
            }
            tile[tile_at(row, lane, width)] = value;
        }
    }
    sync_cube();
    TileUnit {
        unit,
        lane,
        part,
        live,
        base,
        rounds,
    }
}

/// H1 in one pass over device memory: each cube holds `width` whole columns in shared memory
/// (`capacity ≥ n·width` values; read once, consecutive invocations reading consecutive columns),
/// solves them there with `units / width` invocations per column (the segment method of
/// [`h1_segment_maps`], [`h1_segment_scan`] and [`h1_segment_apply`], each part of `part_rows`
/// rows one segment), and writes each result once.
#[cube(launch_unchecked)]
// A comptime `if` cannot merge with a runtime one.
#[allow(clippy::too_many_arguments, clippy::collapsible_if)]
pub(crate) fn h1_tile<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    h1: Coefficients<A>,
    fibers: Fibers,
    part_rows: usize,
    #[comptime] width: usize,
    #[comptime] units: usize,
    #[comptime] capacity: usize,
    #[comptime] periodic: bool,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    // Launched with exactly ⌈cols / width⌉ cubes of `units` invocations, none terminated early,
    // so every barrier is reached by all.
    let mut tile = Shared::<[A]>::new_slice(capacity);
    let mut maps = Shared::<[A]>::new_slice(comptime!(units * MAP_VALUES));
    let mut carries = Shared::<[A]>::new_slice(comptime!(units * 2));
    let mut lasts = Shared::<[A]>::new_slice(width);
    let me = load_tile(input, &mut tile, &fibers, width, units);
    let parts = comptime!(units / width);

    // Each me.part's affine map from a zero-carry forward sweep (as `h1_segment_maps`).
    let start = min(me.part * part_rows, fibers.m);
    let end = min(start + part_rows, fibers.m);
    let mut z = A::new(0.0);
    let mut inclusive = A::new(1.0);
    let mut exclusive = A::new(1.0);
    let mut kz = A::new(0.0);
    let mut kp = A::new(0.0);
    let mut dz = A::new(0.0);
    let mut dp = A::new(0.0);
    let mut dm = A::new(0.0);
    for i in start..end {
        let c = h1.coupling[i];
        z = h1.alpha[i] * tile[tile_at(i, me.lane, width)] + c * z;
        inclusive *= c;
        if comptime!(periodic) {
            kz += h1.kappa[i] * z;
            kp += h1.kappa[i] * inclusive;
            dm += exclusive * h1.mu[i];
        }
        dz += exclusive * z;
        dp += exclusive * inclusive;
        exclusive *= c;
    }
    // Neumann and Dirichlet: μ = 0 and κ is zero but on the last forward row, so the sweep reads
    // two coefficient arrays, not four.
    if comptime!(!periodic) {
        if end == fibers.m && end > start {
            let last_kappa = h1.kappa[fibers.m - 1];
            kz = last_kappa * z;
            kp = last_kappa * inclusive;
        }
    }
    let beta = h1.scalars[0];
    let mine = me.unit * MAP_VALUES;
    maps[mine] = z;
    maps[mine + 1] = inclusive;
    maps[mine + 2] = kz;
    maps[mine + 3] = kp;
    maps[mine + 4] = beta * dz;
    maps[mine + 5] = beta * dp;
    maps[mine + 6] = dm;
    sync_cube();

    // One invocation per column composes its parts' maps into their carries (as `h1_segment_scan`).
    if me.part == 0 {
        let mut carry = A::new(0.0);
        let mut acc = A::new(0.0);
        for t in 0..parts {
            let slot = t * width + me.lane;
            let at = slot * MAP_VALUES;
            carries[2 * slot] = carry;
            acc += maps[at + 2] + maps[at + 3] * carry;
            carry = maps[at] + maps[at + 1] * carry;
        }
        let mut xt_last = A::new(0.0);
        let mut from_right = A::new(0.0);
        if fibers.m < fibers.n {
            let at = tile_at(fibers.n - 1, me.lane, width);
            xt_last = h1.scalars[1] * tile[at] + acc;
            tile[at] = h1.scalars[2] * xt_last;
            from_right = xt_last;
        }
        lasts[me.lane] = xt_last;
        for r in 0..parts {
            let slot = (parts - 1 - r) * width + me.lane;
            let at = slot * MAP_VALUES;
            carries[2 * slot + 1] = from_right;
            let own = maps[at + 4] + carries[2 * slot] * maps[at + 5] + xt_last * maps[at + 6];
            from_right = own + maps[at + 1] * from_right;
        }
    }
    sync_cube();

    // Each me.part re-runs both sweeps with its exact carries, in shared memory (as `h1_segment_apply`).
    let out_scale = h1.scalars[2];
    let last = lasts[me.lane];
    let mut forward = carries[2 * me.unit];
    for i in start..end {
        let at = tile_at(i, me.lane, width);
        forward = h1.alpha[i] * tile[at] + h1.coupling[i] * forward;
        tile[at] = forward;
    }
    let mut next = carries[2 * me.unit + 1];
    for r in start..end {
        let i = end - 1 - (r - start);
        let at = tile_at(i, me.lane, width);
        next = beta * tile[at] + h1.coupling[i] * next;
        if comptime!(periodic) {
            next += h1.mu[i] * last;
        }
        tile[at] = out_scale * next;
    }
    sync_cube();

    for r in 0..me.rounds {
        let row = r * parts + me.part;
        if row < fibers.n && me.live {
            output[me.base + row * fibers.inner] = F::cast_from(tile[tile_at(row, me.lane, width)]);
        }
    }
}

/// Re-weighted H0 in one pass over device memory: each cube holds `width` whole columns in shared
/// memory (`capacity ≥ n·width` values), sums each with `units / width` invocations (parts of
/// `part_rows` rows, a multiple of `segment_rows`, summed `segment_rows` at a time as
/// [`reweighted_columns`] does) and writes `x = shrink·g + weight·Σg` once.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reweighted_tile<F: Float, A: Float>(
    input: &[F],
    output: &mut [F],
    scalars: &[A],
    fibers: Fibers,
    part_rows: usize,
    segment_rows: usize,
    #[comptime] width: usize,
    #[comptime] units: usize,
    #[comptime] capacity: usize,
    #[define(F, A)] _dtypes: [ElemType; 2],
) {
    let mut tile = Shared::<[A]>::new_slice(capacity);
    let mut sums = Shared::<[A]>::new_slice(units);
    let me = load_tile(input, &mut tile, &fibers, width, units);
    let parts = comptime!(units / width);

    let start = min(me.part * part_rows, fibers.n);
    let end = min(start + part_rows, fibers.n);
    let mut total = A::new(0.0);
    let mut partial = A::new(0.0);
    let mut in_segment = 0usize;
    for i in start..end {
        partial += tile[tile_at(i, me.lane, width)];
        in_segment += 1;
        if in_segment == segment_rows {
            total += partial;
            partial = A::new(0.0);
            in_segment = 0;
        }
    }
    sums[me.unit] = total + partial;
    sync_cube();
    if me.part == 0 {
        let mut sum = A::new(0.0);
        for t in 0..parts {
            sum += sums[t * width + me.lane];
        }
        sums[me.lane] = scalars[1] * sum;
    }
    sync_cube();

    let shrink = scalars[0];
    let shift = sums[me.lane];
    for r in 0..me.rounds {
        let row = r * parts + me.part;
        if row < fibers.n && me.live {
            output[me.base + row * fibers.inner] =
                F::cast_from(shrink * tile[tile_at(row, me.lane, width)] + shift);
        }
    }
}
