//! Host side of the kernels: the plan of one call, the coefficient caches, and the launches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{DType, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::full_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeDevice;
use cubecl::prelude::*;
use cubecl::server::Handle;
use cubecl::{calculate_cube_count_elemwise, CubeCount, CubeDim};

use super::kernels::{self, MAP_VALUES};
use super::{sweep_coefficients, Arithmetic, Method, REWEIGHTED_SEGMENT_ROWS, SCAN_THREADS};
use crate::solve::ExpandedCoefficients;
use crate::{Boundary, Metric};

/// Invocations per cube of the elementwise launches (the most WebGPU guarantees).
const CUBE_SIZE: u32 = 256;

/// The number of invocations a launch aims for: enough to fill a large GPU (an H100 holds about
/// 270 k resident invocations; half of that keeps it streaming).
pub const TARGET_INVOCATIONS: usize = 1 << 17;

/// Fewest rows per segment when a column is cut into segments.
pub const MIN_SEGMENT_ROWS: usize = 32;

/// What one device call does: the operator, its arithmetic and the geometry `[outer, n, inner]`.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub(crate) operator: Operator,
    pub(crate) arithmetic: Arithmetic,
    pub(crate) outer: usize,
    pub(crate) n: usize,
    pub(crate) inner: usize,
    pub(crate) method: Method,
    /// Write into a fresh output filled with NaN (tests: an element the kernels miss stays NaN).
    pub(crate) poison: bool,
}

/// The operator of a [`DevicePlan`].
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    /// Sobolev H1: the sweep coefficients.
    Sweep(Arc<HostCoefficients>),
    /// Re-weighted H0 with `shrink = 1/(1 + λ)`.
    Reweighted { key: CoefficientKey, shrink: f64 },
}

/// Sweep coefficients computed once per (metric, n) on the host.
#[derive(Debug)]
pub(crate) struct HostCoefficients {
    key: CoefficientKey,
    coefficients: ExpandedCoefficients,
    forward_rows: usize,
    /// [`super::f32_error_bound`] of these coefficients, for the arithmetic rule of every call.
    pub(crate) f32_error_bound: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CoefficientKey {
    lambda_bits: u64,
    boundary: u8,
    n: usize,
}

/// Caches hold at most this many entries; past it they start over (a model has a handful of
/// fiber lengths, so this only matters for programs that sweep λ).
const CACHE_ENTRIES: usize = 256;

fn host_cache() -> &'static Mutex<HashMap<CoefficientKey, Arc<HostCoefficients>>> {
    static CACHE: OnceLock<Mutex<HashMap<CoefficientKey, Arc<HostCoefficients>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The operator of re-weighted H0 with strength `lambda > 0` on fibers of length `n`.
pub(crate) fn reweighted(lambda: f64, n: usize) -> Operator {
    Operator::Reweighted {
        key: CoefficientKey {
            lambda_bits: lambda.to_bits(),
            boundary: u8::MAX,
            n,
        },
        shrink: 1.0 / (1.0 + lambda),
    }
}

/// The host coefficients of Sobolev H1 on fibers of length `n`, or `None` for the identity.
pub(crate) fn host_coefficients(metric: &Metric, n: usize) -> Option<Arc<HostCoefficients>> {
    let Metric::SobolevH1 { lambda, boundary } = *metric else {
        return None;
    };
    let key = CoefficientKey {
        lambda_bits: lambda.to_bits(),
        boundary: match boundary {
            Boundary::Neumann => 0,
            Boundary::Periodic => 1,
            Boundary::Dirichlet => 2,
        },
        n,
    };
    let mut cache = host_cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return Some(found.clone());
    }
    let sweep = sweep_coefficients(lambda, boundary, n)?;
    let entry = Arc::new(HostCoefficients {
        key,
        forward_rows: sweep.forward_rows(),
        coefficients: sweep.expanded(),
        f32_error_bound: sweep.f32_error_bound(),
    });
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, entry.clone());
    Some(entry)
}

/// Coefficients uploaded to one device in one arithmetic: the four sweep arrays (empty for
/// re-weighted H0) and the scalars (`[beta, gamma, out_scale]`, or `[shrink, weight]`).
struct DeviceCoefficients {
    arrays: Vec<Handle>,
    scalars: Handle,
}

type DeviceKey = (CubeDevice, CoefficientKey, Arithmetic);

fn device_cache() -> &'static Mutex<HashMap<DeviceKey, Arc<DeviceCoefficients>>> {
    static CACHE: OnceLock<Mutex<HashMap<DeviceKey, Arc<DeviceCoefficients>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// `values` uploaded in the arithmetic type.
fn upload(client: &cubecl::client::Client, values: &[f64], arithmetic: Arithmetic) -> Handle {
    match arithmetic {
        Arithmetic::F64 => client.create_from_slice(f64::as_bytes(values)),
        Arithmetic::F32 => {
            let narrowed: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            client.create_from_slice(f32::as_bytes(&narrowed))
        }
    }
}

/// The coefficients of `operator` on the device of `tensor`, uploaded on first use.
fn device_coefficients(
    tensor: &CubeTensor,
    operator: &Operator,
    n: usize,
    arithmetic: Arithmetic,
) -> Arc<DeviceCoefficients> {
    let key = match operator {
        Operator::Sweep(host) => host.key,
        Operator::Reweighted { key, .. } => *key,
    };
    let key = (tensor.device.clone(), key, arithmetic);
    let mut cache = device_cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return found.clone();
    }
    let client = &tensor.client;
    let entry = Arc::new(match operator {
        Operator::Sweep(host) => {
            let c = &host.coefficients;
            DeviceCoefficients {
                arrays: [&c.alpha, &c.coupling, &c.kappa, &c.mu]
                    .map(|values| upload(client, values, arithmetic))
                    .to_vec(),
                scalars: upload(client, &[c.beta, c.gamma, c.out_scale], arithmetic),
            }
        }
        Operator::Reweighted { shrink, .. } => DeviceCoefficients {
            arrays: Vec::new(),
            scalars: upload(client, &[*shrink, (1.0 - shrink) / n as f64], arithmetic),
        },
    });
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, entry.clone());
    entry
}

/// Most cubes one scan launch may ask for along one grid axis (the smallest limit of every runtime).
const MAX_SCAN_CUBES: usize = 65_535;

/// How many segments of how many rows, or `None` for one invocation per column.
fn segmentation(method: Method, rows: usize, cols: usize) -> Option<(usize, usize)> {
    if cols > MAX_SCAN_CUBES {
        return None;
    }
    let segment_rows = match method {
        Method::Columns => return None,
        Method::Segments(segment_rows) => segment_rows.max(1),
        Method::Auto => {
            if cols >= TARGET_INVOCATIONS / 2 || rows <= MIN_SEGMENT_ROWS {
                return None;
            }
            let segments = TARGET_INVOCATIONS.div_ceil(cols);
            rows.div_ceil(segments).max(MIN_SEGMENT_ROWS)
        }
    };
    let segments = rows.div_ceil(segment_rows);
    (segments > 1 || method != Method::Auto).then_some((segments, segment_rows))
}

/// A scratch buffer of `len` values of the arithmetic type.
fn scratch(tensor: &CubeTensor, len: usize, arithmetic: Arithmetic) -> Handle {
    let bytes = match arithmetic {
        Arithmetic::F32 => 4,
        Arithmetic::F64 => 8,
    };
    tensor.client.empty(len.max(1) * bytes)
}

fn buffer(handle: &Handle, len: usize) -> BufferArg {
    // SAFETY: every handle passed here holds at least `len` values of the kernel's type.
    unsafe { BufferArg::from_raw_parts(handle.clone(), len) }
}

fn elementwise(client: &cubecl::client::Client, invocations: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new_1d(CUBE_SIZE);
    (
        calculate_cube_count_elemwise(client, invocations.max(1), cube_dim),
        cube_dim,
    )
}

/// Runs `plan` on `grad` (f32 or f64, any layout) and returns the smoothed tensor: in place where
/// `grad` owns its buffer, in a new buffer otherwise.
pub(crate) fn smooth(grad: CubeTensor, plan: &DevicePlan) -> CubeTensor {
    let grad = into_contiguous(grad);
    let len = grad.meta.num_elements();
    if len == 0 {
        return grad;
    }
    let in_place = grad.can_mut() && !plan.poison;
    let output = if in_place {
        grad.clone()
    } else if plan.poison {
        let poison = InputScalar::new(f32::NAN, dtype_to_storage_type(grad.dtype));
        full_device_dtype(
            grad.client.clone(),
            grad.shape(),
            grad.device.clone(),
            poison,
            grad.dtype,
        )
    } else {
        let handle = grad.client.empty(len * grad.dtype.size());
        CubeTensor::new_contiguous(
            grad.client.clone(),
            grad.device.clone(),
            grad.shape(),
            handle,
            grad.dtype,
        )
    };
    launch(&grad, &output, in_place, plan);
    output
}

/// Runs `plan` reading `input` and writing `output` (both contiguous, same shape and dtype);
/// `in_place` when they are the same buffer.
fn launch(input: &CubeTensor, output: &CubeTensor, in_place: bool, plan: &DevicePlan) {
    let arithmetic_dtype = match plan.arithmetic {
        Arithmetic::F32 => DType::F32,
        Arithmetic::F64 => DType::F64,
    };
    let dtypes = [
        dtype_to_storage_type(input.dtype),
        dtype_to_storage_type(arithmetic_dtype),
    ];
    let len = input.meta.num_elements();
    let client = &input.client;
    let (n, inner) = (plan.n, plan.inner);
    let cols = plan.outer * plan.inner;
    let input_arg = || buffer(&input.handle, len);
    let output_arg = || {
        if in_place {
            BufferArg::alias(0, len)
        } else {
            buffer(&output.handle, len)
        }
    };
    let device = device_coefficients(input, &plan.operator, n, plan.arithmetic);
    match &plan.operator {
        Operator::Sweep(host) => {
            let m = host.forward_rows;
            let array = |index: usize| buffer(&device.arrays[index], m);
            let (alpha, coupling, kappa, mu) = (0, 1, 2, 3);
            let scalars = || buffer(&device.scalars, 3);
            match segmentation(plan.method, m, cols) {
                None => {
                    let (count, dim) = elementwise(client, cols);
                    // SAFETY: the kernel checks its column against `cols`; every buffer holds
                    // what the geometry `[outer, n, inner]` addresses.
                    unsafe {
                        kernels::h1_columns::launch_unchecked(
                            client,
                            count,
                            dim,
                            input_arg(),
                            output_arg(),
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
                Some((segments, segment_rows)) => {
                    let maps_len = segments * cols * MAP_VALUES;
                    let maps = scratch(input, maps_len, plan.arithmetic);
                    let carries = scratch(input, segments * cols * 2, plan.arithmetic);
                    let last = scratch(input, cols, plan.arithmetic);
                    let (count, dim) = elementwise(client, segments * cols);
                    // SAFETY: as above; the segment kernels check their segment against
                    // `segments`, and the scan runs exactly one cube per column.
                    unsafe {
                        kernels::h1_segment_maps::launch_unchecked(
                            client,
                            count.clone(),
                            dim,
                            input_arg(),
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
                            input_arg(),
                            output_arg(),
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
                            input_arg(),
                            output_arg(),
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
        Operator::Reweighted { .. } => {
            let scalars = || buffer(&device.scalars, 2);
            let rows = REWEIGHTED_SEGMENT_ROWS;
            let segmented = match plan.method {
                Method::Columns => None,
                Method::Segments(_) => segmentation(Method::Segments(rows), n, cols),
                Method::Auto => segmentation(Method::Auto, n, cols)
                    .and_then(|_| segmentation(Method::Segments(rows), n, cols)),
            };
            match segmented {
                None => {
                    let (count, dim) = elementwise(client, cols);
                    // SAFETY: the kernel checks its column against `cols`.
                    unsafe {
                        kernels::reweighted_columns::launch_unchecked(
                            client,
                            count,
                            dim,
                            input_arg(),
                            output_arg(),
                            scalars(),
                            n,
                            inner,
                            cols,
                            rows,
                            dtypes,
                        );
                    }
                }
                Some((segments, segment_rows)) => {
                    let sums = scratch(input, segments * cols, plan.arithmetic);
                    let shifts = scratch(input, cols, plan.arithmetic);
                    let (count, dim) = elementwise(client, segments * cols);
                    // SAFETY: the kernels check their segment bounds; the total runs exactly one
                    // cube per column.
                    unsafe {
                        kernels::reweighted_segment_sums::launch_unchecked(
                            client,
                            count.clone(),
                            dim,
                            input_arg(),
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
                            input_arg(),
                            output_arg(),
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
    }
}
