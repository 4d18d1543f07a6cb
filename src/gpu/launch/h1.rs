//! Launching the Sobolev H1 kernels: tiles, one invocation per column, or segments and a scan.

use cubecl::{CubeCount, CubeDim};

use super::{buffer, elementwise, Call, DeviceCoefficients, Kernels};
use crate::gpu::kernels::{self, MAP_VALUES};
use crate::gpu::SCAN_THREADS;

/// Runs the H1 kernels `chosen` for one call, with the sweep's coefficients on the device.
pub(super) fn launch(call: &Call<'_>, device: &DeviceCoefficients, chosen: Kernels) {
    let (client, n, inner, cols, dtypes) =
        (call.client, call.n, call.inner, call.cols, call.dtypes);
    let plan = call.plan;
    let m = plan.operator.rows(n);
    let array = |index: usize| buffer(&device.arrays[index], m);
    let (alpha, coupling, kappa, mu) = (0, 1, 2, 3);
    let scalars = || buffer(&device.scalars, 3);
    match chosen {
        Kernels::Tile {
            width,
            units,
            part_rows,
        } => {
            // SAFETY: exactly one cube per tile, every invocation bounds-checks its
            // column and row; every buffer holds what `[outer, n, inner]` addresses.
            unsafe {
                kernels::h1_tile::launch_unchecked(
                    client,
                    CubeCount::Static(cols.div_ceil(width) as u32, 1, 1),
                    CubeDim::new_1d(units as u32),
                    call.input(),
                    call.output(),
                    array(alpha),
                    array(coupling),
                    array(kappa),
                    array(mu),
                    scalars(),
                    n,
                    m,
                    inner,
                    cols,
                    part_rows,
                    width,
                    units,
                    n * width,
                    plan.operator.is_periodic(),
                    dtypes,
                );
            }
        }
        Kernels::Columns => {
            let (count, dim) = elementwise(client, cols);
            // SAFETY: the kernel checks its column against `cols`; every buffer holds
            // what the geometry `[outer, n, inner]` addresses.
            unsafe {
                kernels::h1_columns::launch_unchecked(
                    client,
                    count,
                    dim,
                    call.input(),
                    call.output(),
                    array(alpha),
                    array(coupling),
                    array(kappa),
                    array(mu),
                    scalars(),
                    n,
                    m,
                    inner,
                    cols,
                    dtypes,
                );
            }
        }
        Kernels::Segments {
            segments,
            segment_rows,
        } => {
            let maps_len = segments * cols * MAP_VALUES;
            let maps = call.scratch(maps_len);
            let carries = call.scratch(segments * cols * 2);
            let last = call.scratch(cols);
            let (count, dim) = elementwise(client, segments * cols);
            // SAFETY: as above; the segment kernels check their segment against
            // `segments`, and the scan runs exactly one cube per column.
            unsafe {
                kernels::h1_segment_maps::launch_unchecked(
                    client,
                    count.clone(),
                    dim,
                    call.input(),
                    buffer(&maps, maps_len),
                    array(alpha),
                    array(coupling),
                    array(kappa),
                    array(mu),
                    scalars(),
                    n,
                    m,
                    inner,
                    cols,
                    segments,
                    segment_rows,
                    dtypes,
                );
                kernels::h1_segment_scan::launch_unchecked(
                    client,
                    CubeCount::Static(cols as u32, 1, 1),
                    CubeDim::new_1d(SCAN_THREADS as u32),
                    call.input(),
                    call.output(),
                    buffer(&maps, maps_len),
                    buffer(&carries, segments * cols * 2),
                    buffer(&last, cols),
                    scalars(),
                    n,
                    m,
                    inner,
                    cols,
                    segments,
                    segments.div_ceil(SCAN_THREADS),
                    dtypes,
                );
                kernels::h1_segment_apply::launch_unchecked(
                    client,
                    count,
                    dim,
                    call.input(),
                    call.output(),
                    buffer(&carries, segments * cols * 2),
                    buffer(&last, cols),
                    array(alpha),
                    array(coupling),
                    array(mu),
                    scalars(),
                    n,
                    m,
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
