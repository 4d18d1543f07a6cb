//! Where: walking the fibers of any view in blocks that the kernels of [`crate::solve`] can sweep.
//!
//! The fiber axis is moved to the front and the other axes are ordered by stride, so that the
//! longest contiguous run of memory becomes the columns of an `n × w` block. Where that run is wide
//! enough the kernel works in place on the tensor (walking it in strips of columns whose carries
//! stay in registers, see [`crate::solve`]); otherwise fibers are packed into a scratch block
//! (bounded by [`PACKED_BLOCK_BYTES`]) and unpacked after the solve.

use crate::Element;
use ndarray::{ArrayViewMutD, Axis};

mod runs;

use runs::{Move, Runs};

use crate::solve::{BlockSolver, RowBlock};
use crate::threading::Par;

/// Fewest columns per packed block: a row chunk of 64 values spans whole cache lines for f32 and f64.
const MIN_BLOCK_COLUMNS: usize = 64;

/// A contiguous run shorter than this is packed, several runs side by side, rather than solved in
/// place: short rows leave the vector loops mostly in their remainders.
const MIN_DIRECT_WIDTH: usize = 64;

/// Target size of a packed block (256 KiB): small, since the packed copy and the strided runs it
/// comes from share the cache while it is filled and emptied.
const PACKED_BLOCK_BYTES: usize = 1 << 18;

/// Columns per packed block ([`PACKED_BLOCK_BYTES`]): a multiple of 8, at least
/// [`MIN_BLOCK_COLUMNS`].
fn packed_width(n: usize, elem_bytes: usize) -> usize {
    let columns = PACKED_BLOCK_BYTES / (n.max(1) * elem_bytes.max(1));
    (columns / 8 * 8).max(MIN_BLOCK_COLUMNS)
}

/// Solves every fiber of `grad` along `axis` (or the whole tensor as one fiber when `axis` is `None`).
pub(crate) fn solve_fibers<T: Element>(
    grad: ArrayViewMutD<'_, T>,
    axis: Option<usize>,
    solver: &dyn BlockSolver<T>,
    par: Par,
) {
    debug_assert_eq!(
        solver.len(),
        axis.map_or(grad.len(), |axis| grad.len_of(Axis(axis)))
    );
    match axis {
        None => solve_flattened(grad, solver, par),
        Some(axis) => solve_along(fibers_first(grad, axis), solver, par),
    }
}

fn solve_flattened<T: Element>(
    mut grad: ArrayViewMutD<'_, T>,
    solver: &dyn BlockSolver<T>,
    par: Par,
) {
    let mut scratch = vec![0.0; solver.fiber_scratch_len()];
    if let Some(data) = grad.as_slice_mut() {
        solver.solve_fiber(data, &mut scratch, par);
    } else {
        // The one fiber is the whole tensor in logical order: pack it.
        let mut fiber: Vec<T> = grad.iter().copied().collect();
        solver.solve_fiber(&mut fiber, &mut scratch, par);
        grad.iter_mut().zip(fiber).for_each(|(g, x)| *g = x);
    }
}

/// Moves `axis` to the front, orders the other axes by decreasing stride and makes their strides
/// non-negative. The fiber axis keeps its direction (its stride may stay negative): the sweeps
/// then run over every fiber in its logical order, so results are bitwise the same for every view
/// of the same logical tensor.
fn fibers_first<T>(mut view: ArrayViewMutD<'_, T>, axis: usize) -> ArrayViewMutD<'_, T> {
    for ax in 0..view.ndim() {
        if ax != axis && view.strides()[ax] < 0 {
            view.invert_axis(Axis(ax));
        }
    }
    let strides = view.strides().to_vec();
    let mut order: Vec<usize> = (0..view.ndim()).filter(|&ax| ax != axis).collect();
    order.sort_by_key(|&ax| std::cmp::Reverse(strides[ax]));
    order.insert(0, axis);
    view.permuted_axes(order)
}

/// Splits the fibers into about four pieces per thread of the current rayon pool (see
/// [`Par::piece`]) and solves the pieces in parallel where `par` allows; otherwise everything
/// runs on the calling thread.
fn solve_along<T: Element>(view: ArrayViewMutD<'_, T>, solver: &dyn BlockSolver<T>, par: Par) {
    let piece = par.piece(view.len());
    split_and_solve(view, piece, par.is_parallel(), solver);
}

fn split_and_solve<T: Element>(
    view: ArrayViewMutD<'_, T>,
    piece: usize,
    parallel: bool,
    solver: &dyn BlockSolver<T>,
) {
    // Split the outermost non-trivial fiber-index axis, which keeps any trailing contiguous run whole.
    let splittable = (1..view.ndim()).find(|&ax| view.len_of(Axis(ax)) > 1);
    match splittable {
        Some(ax) if parallel && view.len() > 2 * piece => {
            let half = view.len_of(Axis(ax)) / 2;
            let (left, right) = view.split_at(Axis(ax), half);
            rayon::join(
                || split_and_solve(left, piece, parallel, solver),
                || split_and_solve(right, piece, parallel, solver),
            );
        }
        _ => solve_sequential(view, solver),
    }
}

fn solve_sequential<T: Element>(view: ArrayViewMutD<'_, T>, solver: &dyn BlockSolver<T>) {
    let n = view.len_of(Axis(0));
    let fibers = view.len() / n;
    // The trailing axes that form one contiguous run of memory.
    let (mut split, mut inner, mut expected) = (view.ndim(), 1usize, 1isize);
    while split > 1 {
        let (len, stride) = (view.shape()[split - 1], view.strides()[split - 1]);
        if len != 1 {
            if stride != expected {
                break;
            }
            inner *= len;
            expected = stride * len as isize;
        }
        split -= 1;
    }
    let row_stride = if n == 1 {
        inner as isize
    } else {
        view.strides()[0]
    };
    let blocks = Blocks {
        view,
        split,
        inner,
        row_stride,
    };
    if inner >= MIN_DIRECT_WIDTH || inner == fibers {
        solve_in_place(blocks, solver);
    } else {
        solve_packed(blocks, solver);
    }
}

/// A view with its fiber axis first, cut into blocks: axes `1..split` index the blocks, each
/// `n` rows (`row_stride` apart) of `inner` contiguous values.
struct Blocks<'a, T> {
    view: ArrayViewMutD<'a, T>,
    split: usize,
    inner: usize,
    row_stride: isize,
}

impl<T> Blocks<'_, T> {
    /// The memory offset of every block's first value, in row-major order of axes `1..split`.
    fn offsets(&self) -> impl Iterator<Item = isize> {
        let axes = 1..self.split;
        block_offsets(&self.view.shape()[axes.clone()], &self.view.strides()[axes])
    }
}

/// Solves each block in place, whole: the strip kernels walk its columns themselves.
fn solve_in_place<T: Element>(mut blocks: Blocks<'_, T>, solver: &dyn BlockSolver<T>) {
    let (n, inner, row_stride) = (blocks.view.len_of(Axis(0)), blocks.inner, blocks.row_stride);
    let mut scratch = vec![0.0; solver.scratch_len(inner)];
    let origin = blocks.view.as_mut_ptr();
    for offset in blocks.offsets() {
        // SAFETY: the rows of this block are `inner` consecutive elements of the view (the trailing
        // axes are one contiguous run) at distinct fiber indices, and `|row_stride| >= inner`, so
        // they are disjoint, valid, and borrowed uniquely through `view` for this call.
        let mut block =
            unsafe { RowBlock::from_raw_parts(origin.offset(offset), n, row_stride, inner) };
        solver.solve(&mut block, &mut scratch);
    }
}

/// Packs runs of `inner` contiguous values from several blocks (axes `1..split`) side by side into
/// a scratch block of about [`packed_width`] columns, solves, unpacks. With `inner = 1` the runs are
/// single fibers' entries.
fn solve_packed<T: Element>(mut blocks: Blocks<'_, T>, solver: &dyn BlockSolver<T>) {
    let (n, inner, row_stride) = (blocks.view.len_of(Axis(0)), blocks.inner, blocks.row_stride);
    let offsets: Vec<isize> = blocks.offsets().collect();
    let origin = blocks.view.as_mut_ptr();
    let blocks = offsets.len();
    let runs_per_block = (packed_width(n, std::mem::size_of::<T>()) / inner).clamp(1, blocks);
    let mut packed = vec![T::zero(); n * runs_per_block * inner];
    let mut scratch = vec![0.0; solver.scratch_len(runs_per_block * inner)];
    let mut done = 0;
    if inner == 1 && row_stride == 1 {
        // Contiguous fibers: eight at a time in place, where the kernel can.
        for eight in offsets.chunks_exact(8) {
            // SAFETY: eight distinct fibers of the view (n contiguous values each), borrowed
            // uniquely through `view` for this call.
            let fibers: [*mut T; 8] = std::array::from_fn(|k| unsafe { origin.offset(eight[k]) });
            if !unsafe { solver.solve_eight_contiguous(fibers) } {
                break;
            }
            done += 8;
        }
    }
    for bases in offsets[done..].chunks(runs_per_block) {
        let width = bases.len() * inner;
        let packed = &mut packed[..n * width];
        let runs = Runs {
            origin,
            bases,
            inner,
            row_stride,
            rows: n,
        };
        // SAFETY: every run `base + i·row_stride .. + inner` holds elements of the view, which we
        // borrow uniquely, and the packed block is our own; nothing else aliases them here.
        unsafe { runs.move_all(packed, Move::Pack) };
        let mut block = RowBlock::new(&mut *packed, n, width, width).expect("scratch holds n rows");
        solver.solve(&mut block, &mut scratch);
        // SAFETY: as above.
        unsafe { runs.move_all(packed, Move::Unpack) };
    }
}

/// The memory offsets of every index of `shape` (with `strides`), in row-major order.
fn block_offsets(shape: &[usize], strides: &[isize]) -> impl Iterator<Item = isize> {
    let (shape, strides) = (shape.to_vec(), strides.to_vec());
    let mut index = vec![0usize; shape.len()];
    let mut done = shape.contains(&0);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let offset = index
            .iter()
            .zip(&strides)
            .map(|(&i, &s)| i as isize * s)
            .sum();
        // Step the multi-index; once it wraps around, every index has been visited.
        done = true;
        for (i, &len) in index.iter_mut().zip(&shape).rev() {
            *i += 1;
            if *i < len {
                done = false;
                break;
            }
            *i = 0;
        }
        Some(offset)
    })
}
