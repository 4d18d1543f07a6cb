//! Exact smoothing of a gradient whose smoothed axis is split across ranks (devices, processes,
//! threads), each rank holding its part: the partitioned tridiagonal solve (SPIKE; Wang 1981).
//!
//! A weight gradient `[C_out, rest..]` is smoothed along axis 0, as [`crate::ChannelDirected`] with
//! [`crate::Direction::Output`] does: column `j` (one of the `w = Π rest` positions) is a fiber of
//! `n = C_out` values. A rank holds either
//! - a range of output channels ([`smooth_rows`]: a tensor `[rows_here, rest..]`), or
//! - any range `[start, end)` of the flat row-major buffer of the full tensor ([`smooth_flat`]:
//!   the layout of FSDP's and ZeRO's flat shards, where a cut can fall inside an output channel,
//!   so that each column has its own cut row).
//!
//! Every rank calls the same function with the full shape, the metric and its part; on return the
//! parts, put together, equal the unsharded result to rounding (each value within about
//! `2⁻⁵²·n·max|g|` of the exact solution for `f64`, a bound that does not grow with λ).
//!
//! # Algorithm
//! The Sobolev H1 operators are solved by the sweeps of [`crate::solve::SweepCoefficients`]: a
//! forward recurrence `zᵢ = αᵢgᵢ + cᵢzᵢ₋₁` (with `acc = Σκᵢzᵢ` for the last row of the Neumann and
//! periodic factors), then a backward one `x̃ᵢ = βzᵢ + cᵢx̃ᵢ₊₁ + μᵢx̃ₙ₋₁`. Each is affine in the value
//! carried into a rank's segment, with slopes (`Π cᵢ` and a few sums of such products) that depend
//! only on the rows, so:
//! 1. each rank sweeps its rows from zero carries (reading only) and all-gathers, per column,
//!    three values: its forward value at the end, its share of `acc` (the periodic wrap: κ is
//!    non-zero at both ends of the fiber, so this carries the last rank's values to the first)
//!    and its backward value at its first row;
//! 2. every rank folds the chain of segments per column into the exact forward carry into its
//!    own, the exact `x̃ₙ₋₁`, and the exact backward carry from the right;
//! 3. each rank sweeps its rows forward and back with the exact carries, writing its part.
//!
//! Every fold is a positive combination (all coefficients are ≥ 0), like the sweeps themselves,
//! so the result is as accurate as the single-device solve for every finite λ (the forward values
//! are scaled as there, so nothing overflows for huge λ or values). Re-weighted H0 needs one
//! all-gather of column sums. The arithmetic runs in `f64` for `f32` and `f64` parts alike (the
//! forward result is stored in the part's own type between the last two sweeps, as the single-device
//! sweeps do).
//!
//! Communication per call: one all-gather of a 17-value descriptor of each rank's call, checked on
//! every rank before anything is written, then one all-gather of `3·k` values per rank for Sobolev H1
//! (`k` values for re-weighted H0), where `k ≤ w` is the largest number of columns one rank touches: never a
//! copy of the gradient while each rank holds at least a row. Nothing is written before the last
//! gather has returned, so a communicator error also leaves every part untouched.
//!
//! ```
//! use chandir::shard::{smooth_rows, ThreadCommunicator};
//! use chandir::{ChannelDirected, Metric};
//! use ndarray::{s, Array2};
//!
//! let full = Array2::<f64>::from_shape_fn((10, 4), |(i, j)| ((i * 7 + j * 3) % 5) as f64);
//! let metric = Metric::default(); // H1 Neumann, λ = 1
//! let cuts = [0, 3, 4, 10]; // three ranks: rows 0..3, 3..4, 4..10
//! let group = ThreadCommunicator::group(3);
//! let parts: Vec<Array2<f64>> = std::thread::scope(|scope| {
//!     let workers: Vec<_> = group
//!         .iter()
//!         .enumerate()
//!         .map(|(r, comm)| {
//!             let mut part = full.slice(s![cuts[r]..cuts[r + 1], ..]).to_owned();
//!             scope.spawn(move || {
//!                 smooth_rows(comm, &metric, &[10, 4], cuts[r], &mut part).map(|()| part)
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().map(|w| w.join().unwrap().unwrap()).collect()
//! });
//! let mut whole = full.clone();
//! ChannelDirected::new(metric, chandir::Direction::Output).apply(&mut whole)?;
//! let joined = ndarray::concatenate(ndarray::Axis(0), &[parts[0].view(), parts[1].view(), parts[2].view()]).unwrap();
//! assert!((&joined - &whole).iter().all(|d| d.abs() < 1e-14));
//! # Ok::<(), chandir::Error>(())
//! ```
//!
//! # burn's collectives
//! burn 0.22 has an all-reduce (sum) on CUDA devices only. An all-gather maps onto it as a sum
//! of disjoint slots: each rank writes its `k` values into slot `rank` of a zeroed tensor of
//! `size·k` values and all-reduces it (every other slot adds zeros, which is exact). That
//! implementation is left to a build with CUDA devices; the trait below is all it needs.

#[cfg(feature = "mpi")]
mod mpi;
mod thread;

#[cfg(feature = "mpi")]
pub use self::mpi::MpiCommunicator;
pub use thread::ThreadCommunicator;

use ndarray::{ArrayBase, ArrayViewMutD, Axis, DataMut, Dimension};

use crate::solve::{store, to_f64, Reweighted, SweepCoefficients, OUT_SCALE};
use crate::{Boundary, Element, Error, Metric};

/// A group of ranks that can all-gather `f64` values. Object-safe.
///
/// Every rank of the group must make the same sequence of calls (as with MPI collectives).
pub trait Communicator {
    /// This rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Every rank passes a slice of the same length `k`; each gets all ranks' slices concatenated
    /// in rank order (`size()·k` values). A rank whose slice has another length makes the call
    /// fail, on every rank where the implementation can tell.
    fn all_gather(&self, send: &[f64]) -> Result<Vec<f64>, Error>;
}

/// Smooths this rank's rows `first_row .. first_row + part.len_of(Axis(0))` of a gradient of shape
/// `shape` along axis 0, with `metric`, together with the other ranks of `comm`.
///
/// `part` has shape `[rows_here, shape[1..]..]` (any memory layout; `rows_here` may be 0) and holds
/// those rows of the gradient; on success they are replaced by the same rows of
/// `ChannelDirected::new(metric, Direction::Output)` applied to the whole gradient. The ranks'
/// rows must tile `0..shape[0]` without overlap (in any order of ranks); ranks may mix this call
/// with [`smooth_flat`] for the same tensor.
///
/// Errors (returned on every rank, before any rank writes anything): a λ that is negative, NaN or
/// infinite ([`Error::InvalidLambda`] on its rank); a part that does not fit `shape`
/// ([`Error::ShapeMismatch`] on its rank); ranks that disagree on the shape, metric or element
/// type, overlapping ranges or rows held by no rank ([`Error::Shard`]); a communicator failure
/// ([`Error::Communication`]). Every other rank gets an [`Error::Shard`] naming the rank at fault.
///
/// See the [module documentation](self) for an example with threads.
pub fn smooth_rows<A, S, D>(
    comm: &dyn Communicator,
    metric: &Metric,
    shape: &[usize],
    first_row: usize,
    part: &mut ArrayBase<S, D>,
) -> Result<(), Error>
where
    A: Element,
    S: DataMut<Elem = A>,
    D: Dimension,
{
    let view = part.view_mut().into_dyn();
    let rows = view.shape().first().copied().unwrap_or(0);
    let fits = !shape.is_empty() && view.ndim() == shape.len() && view.shape()[1..] == shape[1..];
    let fits = fits
        && first_row
            .checked_add(rows)
            .is_some_and(|end| end <= shape[0]);
    let width = shape
        .iter()
        .skip(1)
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let range = match (fits, width) {
        (true, Some(w)) => first_row
            .checked_mul(w)
            .and_then(|s| (first_row + rows).checked_mul(w).map(|e| (s, e))),
        _ => None,
    };
    let local = if fits {
        Local::Rows { view, first_row }
    } else {
        Local::Unfit {
            part: view.shape().to_vec(),
        }
    };
    run(comm, metric, shape, range.unwrap_or((0, 0)), local)
}

/// Smooths this rank's range `start .. start + part.len()` of the flat row-major buffer of a
/// gradient of shape `shape` along axis 0, with `metric`, together with the other ranks of `comm`.
///
/// As [`smooth_rows`], for the flat shards of FSDP and ZeRO: the cuts may fall anywhere, inside an
/// output channel included. The ranks' ranges must tile `0..Π shape` without overlap.
///
/// ```
/// use chandir::shard::{smooth_flat, ThreadCommunicator};
/// use chandir::{ChannelDirected, Metric};
/// use ndarray::Array3;
///
/// let full = Array3::<f32>::from_shape_fn((6, 2, 3), |(o, i, k)| (o * 6 + i * 3 + k) as f32 % 7.0);
/// let flat: Vec<f32> = full.iter().copied().collect();
/// let metric = Metric::ReweightedH0 { lambda: 2.0 };
/// let cuts = [0, 5, 5, 29, 36]; // four ranks, one of them empty
/// let group = ThreadCommunicator::group(4);
/// let parts: Vec<Vec<f32>> = std::thread::scope(|scope| {
///     let workers: Vec<_> = group.iter().enumerate().map(|(r, comm)| {
///         let mut part = flat[cuts[r]..cuts[r + 1]].to_vec();
///         scope.spawn(move || smooth_flat(comm, &metric, &[6, 2, 3], cuts[r], &mut part).map(|()| part))
///     }).collect();
///     workers.into_iter().map(|w| w.join().unwrap().unwrap()).collect()
/// });
/// let mut whole = full.clone();
/// ChannelDirected::new(metric, chandir::Direction::Output).apply(&mut whole)?;
/// let joined = parts.concat();
/// assert!(joined.iter().zip(whole.iter()).all(|(a, b)| (a - b).abs() < 1e-5));
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn smooth_flat<A: Element>(
    comm: &dyn Communicator,
    metric: &Metric,
    shape: &[usize],
    start: usize,
    part: &mut [A],
) -> Result<(), Error> {
    let range = start.checked_add(part.len()).map(|end| (start, end));
    let total = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let fits = matches!((range, total), (Some((_, e)), Some(t)) if e <= t) && !shape.is_empty();
    let local = if fits {
        Local::Flat { data: part, start }
    } else {
        Local::Unfit {
            part: vec![part.len()],
        }
    };
    run(comm, metric, shape, range.unwrap_or((0, 0)), local)
}

/// This rank's part of the gradient.
enum Local<'a, A> {
    /// Whole rows `first_row..` of the tensor, viewed as `[rows, rest..]`.
    Rows {
        view: ArrayViewMutD<'a, A>,
        first_row: usize,
    },
    /// Flat values `start..start + data.len()`.
    Flat { data: &'a mut [A], start: usize },
    /// A part that does not fit the shape (reported collectively), with its shape.
    Unfit { part: Vec<usize> },
}

impl<A: Element> Local<'_, A> {
    /// Calls `f(j0, values)` with the values this rank holds in global row `i`: columns
    /// `j0..j0 + values.len()` (a row of a non-contiguous view goes through `scratch`).
    #[inline]
    fn visit_row(
        &mut self,
        i: usize,
        w: usize,
        scratch: &mut Vec<A>,
        mut f: impl FnMut(usize, &mut [A]),
    ) {
        match self {
            Local::Rows { view, first_row } => {
                let mut row = view.index_axis_mut(Axis(0), i - *first_row);
                if let Some(slice) = row.as_slice_mut() {
                    f(0, slice);
                } else {
                    scratch.clear();
                    scratch.extend(row.iter().copied());
                    f(0, scratch);
                    row.iter_mut()
                        .zip(scratch.iter())
                        .for_each(|(v, &s)| *v = s);
                }
            }
            Local::Flat { data, start } => {
                let row_start = i * w;
                let lo = row_start.max(*start);
                let hi = (row_start + w).min(*start + data.len());
                if lo < hi {
                    f(lo - row_start, &mut data[lo - *start..hi - *start]);
                }
            }
            Local::Unfit { .. } => {}
        }
    }
}

/// Magic first value of a descriptor (and its version).
const MAGIC: f64 = 0x5348_4431 as f64; // "SHD1"
/// Values in one rank's descriptor.
const DESCRIPTOR: usize = 17;
/// The largest shape product a descriptor carries exactly.
const EXACT: usize = 1 << 53;

/// Local checks, in the order they are reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok = 0,
    Lambda = 1,
    Unfit = 2,
    TooLarge = 3,
}

fn split_bits(bits: u64) -> [f64; 2] {
    [(bits >> 32) as f64, (bits & 0xffff_ffff) as f64]
}

fn shape_hash(shape: &[usize]) -> u64 {
    // FNV-1a over the dimensions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &d in shape {
        for byte in (d as u64).to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn metric_code(metric: &Metric) -> (f64, f64) {
    match *metric {
        Metric::H0 => (0.0, 0.0),
        Metric::ReweightedH0 { .. } => (1.0, 0.0),
        Metric::SobolevH1 { boundary, .. } => (
            2.0,
            match boundary {
                Boundary::Neumann => 0.0,
                Boundary::Periodic => 1.0,
                Boundary::Dirichlet => 2.0,
            },
        ),
    }
}

/// The agreed call: the same on every rank once validated.
struct Plan {
    n: usize,
    w: usize,
    /// Each rank's flat range.
    ranges: Vec<(usize, usize)>,
    /// Ranks in the order of their ranges (the order of the rows of every column).
    chain: Vec<usize>,
}

impl Plan {
    /// Rows `[lo, hi)` of column `j` that rank `q` holds.
    #[inline]
    fn rows(&self, q: usize, j: usize) -> (usize, usize) {
        let (s, e) = self.ranges[q];
        let w = self.w;
        (
            s / w + usize::from(j < s % w),
            e / w + usize::from(j < e % w),
        )
    }

    /// How many columns rank `q` touches; its slot `k` is column `(start % w + k) % w`.
    fn touched(&self, q: usize) -> usize {
        let (s, e) = self.ranges[q];
        (e - s).min(self.w)
    }

    /// Rank `q`'s slot index of column `j`, if it touches `j`.
    #[inline]
    fn slot(&self, q: usize, j: usize) -> Option<usize> {
        let k = (j + self.w - self.ranges[q].0 % self.w) % self.w;
        (k < self.touched(q)).then_some(k)
    }
}

fn collective_error(rank: usize, reason: impl std::fmt::Display) -> Error {
    Error::Shard {
        reason: format!("rank {rank}: {reason}"),
    }
}

/// Gathers every rank's descriptor and checks that the calls agree and the ranges tile the
/// tensor; the same verdict on every rank.
fn validate(
    comm: &dyn Communicator,
    metric: &Metric,
    shape: &[usize],
    range: (usize, usize),
    status: Status,
    elem_bytes: usize,
    own_error: impl FnOnce() -> Error,
) -> Result<Plan, Error> {
    let size = comm.size();
    let me = comm.rank();
    let n = shape.first().copied().unwrap_or(0);
    let w = shape
        .iter()
        .skip(1)
        .fold(1usize, |a, &d| a.saturating_mul(d));
    let total = n.saturating_mul(w).min(EXACT);
    let (kind, boundary) = metric_code(metric);
    let [l_hi, l_lo] = split_bits(metric.lambda().to_bits());
    let [h_hi, h_lo] = split_bits(shape_hash(shape));
    let descriptor: [f64; DESCRIPTOR] = [
        MAGIC,
        me as f64,
        size as f64,
        status as i32 as f64,
        kind,
        boundary,
        l_hi,
        l_lo,
        shape.len() as f64,
        n.min(EXACT) as f64,
        w.min(EXACT) as f64,
        h_hi,
        h_lo,
        range.0.min(EXACT) as f64,
        range.1.min(EXACT) as f64,
        elem_bytes as f64,
        total as f64,
    ];
    let all = comm.all_gather(&descriptor)?;
    if all.len() != size * DESCRIPTOR {
        return Err(Error::Communication {
            reason: format!(
                "the all-gather returned {} values, expected {}",
                all.len(),
                size * DESCRIPTOR
            ),
        });
    }
    let d = |r: usize| &all[r * DESCRIPTOR..(r + 1) * DESCRIPTOR];
    for r in 0..size {
        let dr = d(r);
        if dr[0] != MAGIC || dr[1] != r as f64 || dr[2] != size as f64 {
            return Err(collective_error(
                r,
                format!(
                    "its call reports rank {} of {} ranks in the slot of rank {r} of {size}: \
                     the ranks are not one group making the same call",
                    dr[1], dr[2]
                ),
            ));
        }
    }
    if status != Status::Ok {
        return Err(own_error());
    }
    for r in 0..size {
        let code = d(r)[3];
        if code != Status::Ok as i32 as f64 {
            let reason = match code as i32 {
                1 => "lambda must be finite and >= 0".to_string(),
                2 => "its part does not fit the shape it passed".to_string(),
                _ => "its tensor has too many values (2^53 or more)".to_string(),
            };
            return Err(collective_error(r, reason));
        }
    }
    let names = [
        (4..6, "the metric"),
        (6..8, "lambda"),
        (8..13, "the shape"),
        (15..16, "the element type"),
    ];
    for r in 1..size {
        for (fields, what) in &names {
            let (a, b) = (&d(0)[fields.clone()], &d(r)[fields.clone()]);
            if a != b {
                return Err(collective_error(
                    r,
                    format!("its call differs from rank 0's in {what}"),
                ));
            }
        }
    }
    let ranges: Vec<(usize, usize)> = (0..size)
        .map(|r| (d(r)[13] as usize, d(r)[14] as usize))
        .collect();
    let mut chain: Vec<usize> = (0..size).collect();
    chain.sort_by_key(|&r| (ranges[r].0, ranges[r].1));
    let mut covered = 0usize;
    let mut last_rank = None;
    for &r in &chain {
        let (s, e) = ranges[r];
        if s == e {
            continue;
        }
        if s < covered {
            let other = last_rank.expect("an earlier range");
            return Err(Error::Shard {
                reason: format!(
                    "ranks {other} and {r} overlap: flat offsets {s}..{} are held by both",
                    covered.min(e)
                ),
            });
        }
        if s > covered {
            return Err(Error::Shard {
                reason: format!("flat offsets {covered}..{s} are held by no rank"),
            });
        }
        covered = e;
        last_rank = Some(r);
    }
    if covered != total {
        return Err(Error::Shard {
            reason: format!("flat offsets {covered}..{total} are held by no rank"),
        });
    }
    Ok(Plan {
        n,
        w,
        ranges,
        chain,
    })
}

fn run<A: Element>(
    comm: &dyn Communicator,
    metric: &Metric,
    shape: &[usize],
    range: (usize, usize),
    mut local: Local<'_, A>,
) -> Result<(), Error> {
    let total = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let status = if metric.validate().is_err() {
        Status::Lambda
    } else if shape.is_empty() || matches!(local, Local::Unfit { .. }) {
        Status::Unfit
    } else if total.is_none_or(|t| t >= EXACT) {
        Status::TooLarge
    } else {
        Status::Ok
    };
    let own_error = || match status {
        Status::Lambda => Error::InvalidLambda {
            lambda: metric.lambda(),
        },
        Status::Unfit if shape.is_empty() => Error::AxisOutOfRange { axis: 0, ndim: 0 },
        Status::Unfit => {
            let part = match &local {
                Local::Unfit { part } => part.clone(),
                _ => vec![],
            };
            Error::ShapeMismatch {
                param: shape.to_vec(),
                grad: part,
            }
        }
        _ => Error::Shard {
            reason: format!("the tensor {shape:?} has too many values (2^53 or more)"),
        },
    };
    let plan = validate(
        comm,
        metric,
        shape,
        range,
        status,
        std::mem::size_of::<A>(),
        own_error,
    )?;
    if plan.n == 0 || plan.w == 0 {
        return Ok(());
    }
    match *metric {
        Metric::H0 => Ok(()),
        _ if metric.lambda() == 0.0 => Ok(()),
        Metric::ReweightedH0 { .. } if plan.n == 1 => Ok(()),
        Metric::SobolevH1 { boundary, .. } if plan.n == 1 && boundary != Boundary::Dirichlet => {
            Ok(())
        }
        Metric::ReweightedH0 { lambda } => reweighted(comm, &plan, lambda, &mut local),
        Metric::SobolevH1 { lambda, boundary } => {
            let c = SweepCoefficients::sobolev(plan.n, lambda, boundary);
            sobolev(comm, &plan, &c, &mut local)
        }
    }
}

/// The rows `[lo, hi)` this rank holds in some column (the union over columns).
fn own_rows(plan: &Plan, me: usize) -> (usize, usize) {
    let (s, e) = plan.ranges[me];
    if s == e {
        return (0, 0);
    }
    (s / plan.w, (e - 1) / plan.w + 1)
}

/// All-gathers one value per touched column (`values` indexed by column) in slot order, and
/// returns a lookup `(rank, column) → value` over the result.
fn gather_columns(
    comm: &dyn Communicator,
    plan: &Plan,
    me: usize,
    per_column: &[&[f64]],
) -> Result<Vec<f64>, Error> {
    let slots = (0..plan.ranges.len())
        .map(|q| plan.touched(q))
        .max()
        .unwrap_or(0);
    let k = per_column.len();
    let mut send = vec![0.0; k * slots];
    let start = plan.ranges[me].0 % plan.w;
    for slot in 0..plan.touched(me) {
        let j = (start + slot) % plan.w;
        for (v, values) in per_column.iter().enumerate() {
            send[slot * k + v] = values[j];
        }
    }
    let all = comm.all_gather(&send)?;
    if all.len() != send.len() * plan.ranges.len() {
        return Err(Error::Communication {
            reason: format!(
                "the all-gather returned {} values, expected {}",
                all.len(),
                send.len() * plan.ranges.len()
            ),
        });
    }
    Ok(all)
}

/// Value `v` of column `j` from rank `q` in a gathered buffer of `k` values per slot.
#[inline]
fn gathered(all: &[f64], plan: &Plan, slots: usize, k: usize, q: usize, j: usize, v: usize) -> f64 {
    match plan.slot(q, j) {
        Some(slot) => all[(q * slots + slot) * k + v],
        None => 0.0,
    }
}

fn slot_count(plan: &Plan) -> usize {
    (0..plan.ranges.len())
        .map(|q| plan.touched(q))
        .max()
        .unwrap_or(0)
}

/// Re-weighted H0: one all-gather of (scaled) column sums.
fn reweighted<A: Element>(
    comm: &dyn Communicator,
    plan: &Plan,
    lambda: f64,
    local: &mut Local<'_, A>,
) -> Result<(), Error> {
    let me = comm.rank();
    let op = Reweighted::new(plan.n, lambda);
    let (lo, hi) = own_rows(plan, me);
    let mut sums = vec![0.0; plan.w];
    let mut scratch = Vec::new();
    let down = op.down;
    for i in lo..hi {
        local.visit_row(i, plan.w, &mut scratch, |j0, row| {
            for (sum, g) in sums[j0..j0 + row.len()].iter_mut().zip(row.iter()) {
                *sum += down * to_f64(*g);
            }
        });
    }
    let all = gather_columns(comm, plan, me, &[&sums])?;
    let slots = slot_count(plan);
    let weight = op.mean_weight();
    let shrink = op.shrink / OUT_SCALE;
    let mut offset = vec![0.0; plan.w];
    for (j, o) in offset.iter_mut().enumerate() {
        if plan.slot(me, j).is_some() {
            let sum: f64 = (0..plan.ranges.len())
                .map(|q| gathered(&all, plan, slots, 1, q, j, 0))
                .sum();
            *o = sum * weight;
        }
    }
    for i in lo..hi {
        local.visit_row(i, plan.w, &mut scratch, |j0, row| {
            for (g, &o) in row.iter_mut().zip(&offset[j0..]) {
                *g = store::<A, true>(shrink * to_f64(*g) + o);
            }
        });
    }
    Ok(())
}

/// How a segment's values depend on what is carried into it, over its forward rows `[lo, hi)`:
/// all data-independent, all ≥ 0.
#[derive(Clone, Copy)]
struct SegmentMaps {
    /// `Π cᵢ`: of the forward value at the end on the carry in, and of the backward value at the
    /// first row on the carry from the right.
    slope: f64,
    /// Of the backward value at the first row on `x̃ₙ₋₁` (the `μ` terms).
    response: f64,
    /// Of the segment's share of `acc = Σ κᵢzᵢ` on the forward carry in.
    kappa: f64,
    /// Of the zero-carry backward value at the first row on the forward carry in.
    first: f64,
}

fn segment_maps(c: &SweepCoefficients, lo: usize, hi: usize) -> SegmentMaps {
    // Forward: zᵢ = z⁰ᵢ + pᵢ·z_in with pᵢ = Π_{lo..=i} c; the zero-carry backward value at the
    // first row is Σ β·Wᵢ·zᵢ with Wᵢ = Π_{lo..i} c, so its dependence on z_in is Σ β·Wᵢ·pᵢ.
    let (mut p, mut kappa, mut first) = (1.0, 0.0, 0.0);
    for i in lo..hi {
        let w = p;
        p *= c.coupling(i);
        kappa += c.kappa(i) * p;
        first += c.beta() * w * p;
    }
    let mut response = 0.0;
    for i in (lo..hi).rev() {
        response = c.mu(i) + c.coupling(i) * response;
    }
    SegmentMaps {
        slope: p,
        response,
        kappa,
        first,
    }
}

/// Forward rows `[lo, hi)` of a segment and its maps.
type Segment = ((usize, usize), SegmentMaps);

/// A small cache of [`segment_maps`] per (rank, rows): a rank has at most three row patterns.
struct Maps<'c> {
    c: &'c SweepCoefficients,
    cache: Vec<Vec<Segment>>,
}

impl Maps<'_> {
    #[inline]
    fn get(&mut self, q: usize, lo: usize, hi: usize) -> SegmentMaps {
        if let Some(&(_, maps)) = self.cache[q].iter().find(|(key, _)| *key == (lo, hi)) {
            return maps;
        }
        let maps = segment_maps(self.c, lo, hi);
        self.cache[q].push(((lo, hi), maps));
        maps
    }
}

/// Sobolev H1: one all-gather of three values per column, then the local sweeps.
fn sobolev<A: Element>(
    comm: &dyn Communicator,
    plan: &Plan,
    c: &SweepCoefficients,
    local: &mut Local<'_, A>,
) -> Result<(), Error> {
    let me = comm.rank();
    let ranks = plan.ranges.len();
    let (n, m, w) = (plan.n, c.forward_rows(), plan.w);
    let (lo, hi) = own_rows(plan, me);
    let forward_hi = hi.min(m);
    let slots = slot_count(plan);
    let mut maps = Maps {
        c,
        cache: vec![Vec::new(); ranks],
    };
    let beta = c.beta();

    // 1. Zero-carry sweeps (reading only): the forward value at the end of the segment, the share
    //    of acc (with γ·gₙ₋₁ where this rank holds the last row) and the backward value at the
    //    first row, per column.
    let mut z = vec![0.0; w];
    let (mut acc, mut first, mut weight) = (vec![0.0; w], vec![0.0; w], vec![1.0; w]);
    let mut scratch = Vec::new();
    for i in lo..forward_hi {
        let (alpha, ci, kappa) = (c.alpha(i), c.coupling(i), c.kappa(i));
        local.visit_row(i, w, &mut scratch, |j0, row| {
            let len = row.len();
            let (z, first) = (&mut z[j0..j0 + len], &mut first[j0..j0 + len]);
            let (weight, acc) = (&mut weight[j0..j0 + len], &mut acc[j0..j0 + len]);
            for k in 0..len {
                let zk = alpha * to_f64(row[k]) + ci * z[k];
                z[k] = zk;
                first[k] += beta * weight[k] * zk;
                weight[k] *= ci;
            }
            if kappa != 0.0 {
                for (a, &zk) in acc.iter_mut().zip(z.iter()) {
                    *a += kappa * zk;
                }
            }
        });
    }
    if m < n && hi == n {
        let gamma = c.gamma();
        local.visit_row(n - 1, w, &mut scratch, |j0, row| {
            for (a, g) in acc[j0..j0 + row.len()].iter_mut().zip(row.iter()) {
                *a += gamma * to_f64(*g);
            }
        });
    }
    let all = gather_columns(comm, plan, me, &[&z, &acc, &first])?;

    // 2. Every rank folds the chain of segments per column: the forward carry into each, the
    //    exact acc and so x̃ₙ₋₁, then the backward carry from the right into its own.
    let position = plan
        .chain
        .iter()
        .position(|&q| q == me)
        .expect("in the chain");
    let (mut z_in, mut x_in, mut last) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
    let mut exact_first = vec![0.0; ranks];
    for j in (0..w).filter(|&j| plan.slot(me, j).is_some()) {
        let (mut carry, mut total) = (0.0, 0.0);
        for (at, &q) in plan.chain.iter().enumerate() {
            if at == position {
                z_in[j] = carry;
            }
            if plan.slot(q, j).is_none() {
                continue;
            }
            total += gathered(&all, plan, slots, 3, q, j, 1);
            let (qlo, qhi) = plan.rows(q, j);
            let qhi = qhi.min(m);
            if qlo < qhi {
                let s = maps.get(q, qlo, qhi);
                if s.kappa != 0.0 {
                    total += s.kappa * carry;
                }
                exact_first[at] = gathered(&all, plan, slots, 3, q, j, 2) + s.first * carry;
                carry = s.slope * carry + gathered(&all, plan, slots, 3, q, j, 0);
            }
        }
        let x_last = if m < n { total } else { 0.0 };
        let mut carry = x_last;
        for (at, &q) in plan.chain.iter().enumerate().skip(position + 1).rev() {
            let (qlo, qhi) = plan.rows(q, j);
            let qhi = qhi.min(m);
            if qlo < qhi {
                let s = maps.get(q, qlo, qhi);
                carry = exact_first[at] + s.slope * carry;
                if s.response != 0.0 {
                    carry += s.response * x_last;
                }
            }
        }
        last[j] = x_last;
        x_in[j] = carry;
    }

    // 3. Nothing has been written so far. Forward (storing z), then backward (storing x).
    z.copy_from_slice(&z_in);
    for i in lo..forward_hi {
        let (alpha, ci) = (c.alpha(i), c.coupling(i));
        local.visit_row(i, w, &mut scratch, |j0, row| {
            for (zj, g) in z[j0..j0 + row.len()].iter_mut().zip(row.iter_mut()) {
                *zj = alpha * to_f64(*g) + ci * *zj;
                *g = A::from(*zj).unwrap_or_else(A::nan);
            }
        });
    }
    if m < n && hi == n {
        local.visit_row(n - 1, w, &mut scratch, |j0, row| {
            for (g, &l) in row.iter_mut().zip(&last[j0..]) {
                *g = store::<A, true>(l);
            }
        });
    }
    let x = &mut x_in;
    for i in (lo..forward_hi).rev() {
        let (ci, mu) = (c.coupling(i), c.mu(i));
        local.visit_row(i, w, &mut scratch, |j0, row| {
            let x = &mut x[j0..j0 + row.len()];
            if mu == 0.0 {
                for (xj, g) in x.iter_mut().zip(row.iter_mut()) {
                    *xj = beta * to_f64(*g) + ci * *xj;
                    *g = store::<A, true>(*xj);
                }
            } else {
                for ((xj, g), &l) in x.iter_mut().zip(row.iter_mut()).zip(&last[j0..]) {
                    *xj = beta * to_f64(*g) + ci * *xj + mu * l;
                    *g = store::<A, true>(*xj);
                }
            }
        });
    }
    Ok(())
}
