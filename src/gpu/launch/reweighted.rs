//! Launching the re-weighted H0 kernels: tiles, one invocation per column, or segment sums, a
//! total per column and an update.

use super::{buffer, Call, Grid, OperatorKernels, Segmentation};
use crate::gpu::kernels;
use crate::gpu::REWEIGHTED_SEGMENT_ROWS;

/// The re-weighted H0 kernels, with the operator's scalars on the device.
pub(super) struct Reweighted;

impl OperatorKernels for Reweighted {
    fn tile(&self, call: &Call<'_>, (count, dim): Grid, width: usize, units: usize, rows: usize) {
        // SAFETY: exactly one cube per tile, every invocation bounds-checks its
        // column and row.
        unsafe {
            launch_in_place!(
                kernels::reweighted_tile,
                call,
                (count, dim),
                call.scalars(),
                call.fibers(),
                rows,
                REWEIGHTED_SEGMENT_ROWS,
                width,
                units,
                call.n * width,
            );
        }
    }

    fn columns(&self, call: &Call<'_>, (count, dim): Grid) {
        // SAFETY: the kernel checks its column against `cols`.
        unsafe {
            launch_in_place!(
                kernels::reweighted_columns,
                call,
                (count, dim),
                call.scalars(),
                call.fibers(),
                REWEIGHTED_SEGMENT_ROWS,
            );
        }
    }

    fn segments(&self, call: &Call<'_>, (count, dim): Grid, scan: Grid, segments: Segmentation) {
        let cols = call.cols;
        let sums_len = segments.count * cols;
        let sums = call.scratch(sums_len);
        let shifts = call.scratch(cols);
        // SAFETY: the kernels check their segment bounds; the total runs exactly one
        // cube per column.
        unsafe {
            kernels::reweighted_segment_sums::launch_unchecked(
                call.client,
                count.clone(),
                dim,
                call.input(),
                buffer(&sums, sums_len),
                call.fibers(),
                segments.arg(),
                call.dtypes,
            );
            kernels::reweighted_segment_total::launch_unchecked(
                call.client,
                scan.0,
                scan.1,
                buffer(&sums, sums_len),
                buffer(&shifts, cols),
                call.scalars(),
                cols,
                segments.arg(),
                call.dtypes[1],
            );
            launch_in_place!(
                kernels::reweighted_segment_apply,
                call,
                (count, dim),
                buffer(&shifts, cols),
                call.scalars(),
                call.fibers(),
                segments.arg(),
            );
        }
    }
}
