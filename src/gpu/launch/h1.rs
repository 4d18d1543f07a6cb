//! Launching the Sobolev H1 kernels: tiles, one invocation per column, or segments and a scan.

use cubecl::prelude::Float;

use super::{buffer, Call, Grid, OperatorKernels, Segmentation};
use crate::gpu::kernels::{self, CoefficientsLaunch, ScanLaunch, MAP_VALUES};

/// The H1 kernels, with the sweep's coefficients on the device.
pub(super) struct H1;

/// Indices of the coefficient arrays on the device.
const ALPHA: usize = 0;
const COUPLING: usize = 1;
const KAPPA: usize = 2;
const MU: usize = 3;

/// All of the sweep's coefficients, as the kernels that read all four arrays take them (`A`: each
/// kernel's own name for its runtime arithmetic type).
fn coefficients<A: Float>(call: &Call<'_>) -> CoefficientsLaunch<A> {
    CoefficientsLaunch::new(
        call.array(ALPHA),
        call.array(COUPLING),
        call.array(KAPPA),
        call.array(MU),
        call.scalars(),
    )
}

impl OperatorKernels for H1 {
    fn tile(&self, call: &Call<'_>, (count, dim): Grid, width: usize, units: usize, rows: usize) {
        // SAFETY: exactly one cube per tile, every invocation bounds-checks its
        // column and row; every buffer holds what `[outer, n, inner]` addresses.
        unsafe {
            launch_in_place!(
                kernels::h1_tile,
                call,
                (count, dim),
                coefficients(call),
                call.fibers(),
                rows,
                width,
                units,
                call.n * width,
                call.plan.operator.is_periodic(),
            );
        }
    }

    fn columns(&self, call: &Call<'_>, (count, dim): Grid) {
        // SAFETY: the kernel checks its column against `cols`; every buffer holds
        // what the geometry `[outer, n, inner]` addresses.
        unsafe {
            launch_in_place!(
                kernels::h1_columns,
                call,
                (count, dim),
                coefficients(call),
                call.fibers(),
            );
        }
    }

    fn segments(&self, call: &Call<'_>, (count, dim): Grid, scan: Grid, segments: Segmentation) {
        let cols = call.cols;
        let maps_len = segments.count * cols * MAP_VALUES;
        let carries_len = segments.count * cols * 2;
        let maps = call.scratch(maps_len);
        let carries = call.scratch(carries_len);
        let last = call.scratch(cols);
        // SAFETY: as above; the segment kernels check their segment against
        // `segments`, and the scan runs exactly one cube per column.
        unsafe {
            kernels::h1_segment_maps::launch_unchecked(
                call.client,
                count.clone(),
                dim,
                call.input(),
                buffer(&maps, maps_len),
                coefficients(call),
                call.fibers(),
                segments.arg(),
                call.dtypes,
            );
            launch_in_place!(
                kernels::h1_segment_scan,
                call,
                (scan.0, scan.1),
                buffer(&maps, maps_len),
                ScanLaunch::new(buffer(&carries, carries_len), buffer(&last, cols)),
                call.scalars(),
                call.fibers(),
                segments.arg(),
            );
            launch_in_place!(
                kernels::h1_segment_apply,
                call,
                (count, dim),
                ScanLaunch::new(buffer(&carries, carries_len), buffer(&last, cols)),
                call.array(ALPHA),
                call.array(COUPLING),
                call.array(MU),
                call.scalars(),
                call.fibers(),
                segments.arg(),
            );
        }
    }
}
