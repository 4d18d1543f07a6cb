//! Launching the re-weighted H0 kernels: tiles, one invocation per column, or segment sums, a
//! total per column and an update.

use cubecl::{CubeCount, CubeDim};

use super::{buffer, elementwise, Call, DeviceCoefficients, Kernels};
use crate::gpu::kernels;
use crate::gpu::{REWEIGHTED_SEGMENT_ROWS, SCAN_THREADS};

/// Runs the re-weighted H0 kernels `chosen` for one call, with its scalars on the device.
pub(super) fn launch(call: &Call<'_>, device: &DeviceCoefficients, chosen: Kernels) {
    let (client, n, inner, cols, dtypes) =
        (call.client, call.n, call.inner, call.cols, call.dtypes);
    let scalars = || buffer(&device.scalars, 2);
    let rows = REWEIGHTED_SEGMENT_ROWS;
    match chosen {
        Kernels::Tile {
            width,
            units,
            part_rows,
        } => {
            // SAFETY: exactly one cube per tile, every invocation bounds-checks its
            // column and row.
            unsafe {
                kernels::reweighted_tile::launch_unchecked(
                    client,
                    CubeCount::Static(cols.div_ceil(width) as u32, 1, 1),
                    CubeDim::new_1d(units as u32),
                    call.input(),
                    call.output(),
                    scalars(),
                    n,
                    inner,
                    cols,
                    part_rows,
                    rows,
                    width,
                    units,
                    n * width,
                    dtypes,
                );
            }
        }
        Kernels::Columns => {
            let (count, dim) = elementwise(client, cols);
            // SAFETY: the kernel checks its column against `cols`.
            unsafe {
                kernels::reweighted_columns::launch_unchecked(
                    client,
                    count,
                    dim,
                    call.input(),
                    call.output(),
                    scalars(),
                    n,
                    inner,
                    cols,
                    rows,
                    dtypes,
                );
            }
        }
        Kernels::Segments {
            segments,
            segment_rows,
        } => {
            let sums = call.scratch(segments * cols);
            let shifts = call.scratch(cols);
            let (count, dim) = elementwise(client, segments * cols);
            // SAFETY: the kernels check their segment bounds; the total runs exactly one
            // cube per column.
            unsafe {
                kernels::reweighted_segment_sums::launch_unchecked(
                    client,
                    count.clone(),
                    dim,
                    call.input(),
                    buffer(&sums, segments * cols),
                    n,
                    inner,
                    cols,
                    segments,
                    segment_rows,
                    dtypes,
                );
                kernels::reweighted_segment_total::launch_unchecked(
                    client,
                    CubeCount::Static(cols as u32, 1, 1),
                    CubeDim::new_1d(SCAN_THREADS as u32),
                    buffer(&sums, segments * cols),
                    buffer(&shifts, cols),
                    scalars(),
                    cols,
                    segments,
                    segments.div_ceil(SCAN_THREADS),
                    dtypes[1],
                );
                kernels::reweighted_segment_apply::launch_unchecked(
                    client,
                    count,
                    dim,
                    call.input(),
                    call.output(),
                    buffer(&shifts, cols),
                    scalars(),
                    n,
                    inner,
                    cols,
                    segments,
                    segment_rows,
                    dtypes,
                );
            }
        }
    }
}
