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

/// Launches kernel `$kernel` over `(count, dim)` with `call`'s input and output first, the
/// kernel's own arguments next and `call.dtypes` last: the frame of every in-place launch.
///
/// # Safety
/// As the kernel's `launch_unchecked`: the caller vouches for the grid and the buffers.
macro_rules! launch_in_place {
    ($($kernel:ident)::+, $call:expr, ($count:expr, $dim:expr), $($arg:expr),* $(,)?) => {
        $($kernel)::+::launch_unchecked(
            $call.client,
            $count,
            $dim,
            $call.input(),
            $call.output(),
            $($arg,)*
            $call.dtypes,
        )
    };
}

mod h1;
mod reweighted;

use super::kernels::{FibersLaunch, SegmentsLaunch, MAP_VALUES};
use super::{Arithmetic, Method, REWEIGHTED_SEGMENT_ROWS, SCAN_THREADS};
use crate::solve::{Operator as SolveOperator, Sweep};
use crate::Metric;

/// Invocations per cube of the elementwise launches (the most WebGPU guarantees).
const CUBE_SIZE: u32 = 256;

/// The number of invocations a launch aims for: enough to fill a large GPU (an H100 holds about
/// 270 k resident invocations; half of that keeps it streaming).
pub(crate) const TARGET_INVOCATIONS: usize = 1 << 17;

/// Fewest rows per segment when a column is cut into segments.
pub(crate) const MIN_SEGMENT_ROWS: usize = 32;

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

/// The operator of a [`DevicePlan`]: [`crate::solve::operator`]'s answer, less the identity.
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    /// Sobolev H1: the sweeps (the CPU path's, from the same per-thread cache).
    Sweep {
        sweep: Arc<Sweep>,
        key: CoefficientKey,
    },
    /// Re-weighted H0 with `shrink = 1/(1 + λ)`.
    Reweighted {
        lambda: f64,
        shrink: f64,
        key: CoefficientKey,
    },
}

impl Operator {
    /// The device operator of `metric` on fibers of length `n`, or `None` for the identity.
    pub(crate) fn of(metric: &Metric, n: usize) -> Option<Operator> {
        let key = |boundary: u8| CoefficientKey {
            lambda_bits: metric.lambda().to_bits(),
            boundary,
            n,
        };
        match crate::solve::operator(metric, n) {
            SolveOperator::Identity => None,
            SolveOperator::Sweep(sweep) => {
                let boundary = match metric {
                    Metric::SobolevH1 { boundary, .. } => *boundary as u8,
                    _ => unreachable!("only Sobolev H1 is swept"),
                };
                Some(Operator::Sweep {
                    sweep,
                    key: key(boundary),
                })
            }
            SolveOperator::Reweighted { lambda } => Some(Operator::Reweighted {
                lambda,
                shrink: 1.0 / (1.0 + lambda),
                key: key(u8::MAX),
            }),
        }
    }

    /// Rows of the forward sweep (H1) or of the sum (re-weighted).
    pub(crate) fn rows(&self, n: usize) -> usize {
        match self {
            Operator::Sweep { sweep, .. } => sweep.coefficients().forward_rows(),
            Operator::Reweighted { .. } => n,
        }
    }

    /// The f32 error bound of the arithmetic rule, from the cached sweep where there is one.
    pub(crate) fn f32_error_bound(&self, n: usize) -> f64 {
        match self {
            Operator::Sweep { sweep, .. } => sweep.coefficients().f32_error_bound(),
            Operator::Reweighted { lambda, .. } => super::reweighted_f32_error_bound(*lambda, n),
        }
    }

    /// Whether this is H1 with the periodic boundary, the only one with a dense `μ` (and `κ`).
    pub(crate) fn is_periodic(&self) -> bool {
        matches!(self, Operator::Sweep { key, .. } if key.boundary == crate::Boundary::Periodic as u8)
    }

    fn key(&self) -> CoefficientKey {
        match self {
            Operator::Sweep { key, .. } | Operator::Reweighted { key, .. } => *key,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CoefficientKey {
    lambda_bits: u64,
    boundary: u8,
    n: usize,
}

/// The device cache holds at most this many entries; past it it starts over (a model has a
/// handful of fiber lengths, so this only matters for programs that sweep λ).
const CACHE_ENTRIES: usize = 256;

/// Coefficients uploaded to one device in one arithmetic: the four sweep arrays (empty for
/// re-weighted H0) and the scalars (`[beta, gamma, out_scale]`, or `[shrink, weight]`).
struct DeviceCoefficients {
    arrays: Vec<Handle>,
    scalars: Handle,
    scalar_count: usize,
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
    let key = operator.key();
    let key = (tensor.device.clone(), key, arithmetic);
    let mut cache = device_cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return found.clone();
    }
    let client = &tensor.client;
    let entry = Arc::new(match operator {
        Operator::Sweep { sweep, .. } => {
            let c = &sweep.coefficients().expanded();
            DeviceCoefficients {
                arrays: [&c.alpha, &c.coupling, &c.kappa, &c.mu]
                    .map(|values| upload(client, values, arithmetic))
                    .to_vec(),
                scalars: upload(client, &[c.beta, c.gamma, c.out_scale], arithmetic),
                scalar_count: 3,
            }
        }
        Operator::Reweighted { shrink, .. } => DeviceCoefficients {
            arrays: Vec::new(),
            scalars: upload(client, &[*shrink, (1.0 - shrink) / n as f64], arithmetic),
            scalar_count: 2,
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
        Method::Auto | Method::Tiles => {
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

/// Invocations per cube of the one-pass tile kernels (the most WebGPU guarantees).
const TILE_UNITS: usize = 256;

/// Shared memory a tile kernel asks for at most: the static limit of CUDA and most Vulkan
/// drivers, so that several cubes stay resident per multiprocessor.
const TILE_SHARED_BYTES: usize = 48 * 1024;

/// Fewest rows one invocation of a tile kernel sweeps (fewer parts per column past it: the scan
/// over parts is sequential).
const MIN_PART_ROWS: usize = 8;

/// Fewest cubes a tile launch aims for (two per multiprocessor of a large GPU): tiles narrow
/// until there are this many, as long as fibers stay side by side in a warp's reads.
const TARGET_TILE_CUBES: usize = 256;

/// The kernels one device call launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// One pass: tiles of `width` whole columns in shared memory, `units` invocations per cube,
    /// each sweeping `part_rows` rows.
    Tile {
        width: usize,
        units: usize,
        part_rows: usize,
    },
    /// One invocation per column.
    Columns,
    /// Columns cut into `segments` segments of `segment_rows` rows, composed by a scan.
    Segments {
        segments: usize,
        segment_rows: usize,
    },
}

/// What one device call moves: design figures from the kernel plan, not measurements.
///
/// ```
/// let traffic = chandir::gpu::Traffic { launches: 1, bytes: 2_000, gradient_bytes: 1_000 };
/// assert_eq!(traffic.bytes_per_gradient_byte(), 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Kernel launches per gradient.
    pub launches: usize,
    /// Bytes of global memory read and written (each gradient value, each scratch value and each
    /// coefficient counted once per pass over it; coefficients re-read by every cube are served
    /// by the cache and counted once).
    pub bytes: usize,
    /// The gradient's own size in bytes (its storage type).
    pub gradient_bytes: usize,
}

impl Traffic {
    /// [`Traffic::bytes`] over the gradient's size: 2 for one read and one write.
    pub fn bytes_per_gradient_byte(&self) -> f64 {
        self.bytes as f64 / self.gradient_bytes.max(1) as f64
    }
}

/// Bytes of one value of the arithmetic type.
fn arithmetic_bytes(arithmetic: Arithmetic) -> usize {
    match arithmetic {
        Arithmetic::F32 => 4,
        Arithmetic::F64 => 8,
    }
}

/// Values of shared memory a tile kernel of `units` invocations and `width` columns of `n` rows
/// declares (H1: the tile, the maps and carries of every part, the last row of every column).
fn tile_values(sweep: bool, n: usize, width: usize, units: usize) -> usize {
    if sweep {
        n * width + units * (MAP_VALUES + 2) + width
    } else {
        n * width + units
    }
}

/// The widest tile (at most 32 columns, fewer while the launch would have under
/// [`TARGET_TILE_CUBES`] cubes, but not under 8 unless the tensor has fewer columns or the fibers
/// are too long for 8) whose shared memory fits in `shared_bytes`, or `None`.
fn tile_shape(
    sweep: bool,
    n: usize,
    rows: usize,
    cols: usize,
    arithmetic: Arithmetic,
    shared_bytes: usize,
) -> Option<Kernels> {
    let budget = shared_bytes.min(TILE_SHARED_BYTES) / arithmetic_bytes(arithmetic);
    // At least 8 columns side by side where there are 8 (a 32-byte sector of f32 per row).
    let widest = (cols / TARGET_TILE_CUBES)
        .clamp(8, 32)
        .min(cols.next_power_of_two());
    let mut width = 1usize << widest.ilog2();
    // Re-weighted parts are whole segments, so the bound of `f32_error_bound` holds.
    let grain = if sweep {
        MIN_PART_ROWS
    } else {
        REWEIGHTED_SEGMENT_ROWS
    };
    loop {
        let wanted = rows.div_ceil(grain).max(1).next_power_of_two();
        let mut parts = wanted.min(TILE_UNITS / width);
        while parts >= 1 {
            if tile_values(sweep, n, width, width * parts) <= budget {
                let part_rows = rows.div_ceil(parts).div_ceil(grain) * grain;
                let cubes = cols.div_ceil(width);
                return (cubes <= MAX_SCAN_CUBES).then_some(Kernels::Tile {
                    width,
                    units: width * parts,
                    part_rows,
                });
            }
            parts /= 2;
        }
        if width == 1 {
            return None;
        }
        width /= 2;
    }
}

/// The kernels `plan` launches on a device with `shared_bytes` of shared memory per cube.
pub(crate) fn kernels(plan: &DevicePlan, shared_bytes: usize) -> Kernels {
    let cols = plan.outer * plan.inner;
    let sweep = matches!(plan.operator, Operator::Sweep { .. });
    let rows = plan.operator.rows(plan.n);
    if matches!(plan.method, Method::Auto | Method::Tiles) {
        if let Some(tile) = tile_shape(sweep, plan.n, rows, cols, plan.arithmetic, shared_bytes) {
            return tile;
        }
    }
    let method = match plan.method {
        Method::Tiles => Method::Auto,
        method => method,
    };
    let segmented = if sweep {
        segmentation(method, rows, cols)
    } else {
        let fixed = Method::Segments(REWEIGHTED_SEGMENT_ROWS);
        match method {
            Method::Columns => None,
            Method::Segments(_) => segmentation(fixed, rows, cols),
            _ => {
                segmentation(Method::Auto, rows, cols).and_then(|_| segmentation(fixed, rows, cols))
            }
        }
    };
    match segmented {
        None => Kernels::Columns,
        Some((segments, segment_rows)) => Kernels::Segments {
            segments,
            segment_rows,
        },
    }
}

/// The global memory `plan` moves with `kernels` on a gradient stored in `storage_bytes` per value.
pub(crate) fn traffic(plan: &DevicePlan, kernels: Kernels, storage_bytes: usize) -> Traffic {
    let cols = plan.outer * plan.inner;
    let len = plan.n * cols;
    let a = arithmetic_bytes(plan.arithmetic);
    let gradient = len * storage_bytes;
    let rows = plan.operator.rows(plan.n);
    let (coefficients, scalars) = match &plan.operator {
        // The tile kernel reads α and c only, and κ's one non-zero, but for the periodic boundary.
        Operator::Sweep { .. }
            if matches!(kernels, Kernels::Tile { .. }) && !plan.operator.is_periodic() =>
        {
            (2 * rows * a + a, 3 * a)
        }
        Operator::Sweep { .. } => (4 * rows * a, 3 * a),
        Operator::Reweighted { .. } => (0, 2 * a),
    };
    let sweep = matches!(plan.operator, Operator::Sweep { .. });
    let (launches, passes, scratch) = match kernels {
        Kernels::Tile { .. } => (1, 2, 0),
        // H1: read g, write z, read z, write x; re-weighted: read g twice, write x.
        Kernels::Columns => (1, if sweep { 4 } else { 3 }, 0),
        Kernels::Segments { segments, .. } if sweep => {
            // maps: read g, write the maps; scan: read them, write and read the carries;
            // apply: read g, write z, read z, write x.
            let maps = segments * cols * MAP_VALUES * a;
            let carries = segments * cols * 2 * a;
            (3, 5, 2 * maps + 3 * carries + 2 * cols * a)
        }
        Kernels::Segments { segments, .. } => {
            // sums: read g, write the sums; total: read them, write the shifts; apply: read g, write x.
            let sums = segments * cols * a;
            (3, 3, 2 * sums + 2 * cols * a)
        }
    };
    Traffic {
        launches,
        bytes: passes * gradient + scratch + coefficients + scalars,
        gradient_bytes: gradient,
    }
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

/// What every launch of one call shares: the client, the buffers, the coefficients, the element
/// types and the geometry `[outer, n, inner]` (`cols = outer·inner` fibers, `m` rows swept).
struct Call<'a> {
    client: &'a cubecl::client::Client,
    input: &'a CubeTensor,
    output: &'a CubeTensor,
    /// Whether `input` and `output` are the same buffer.
    in_place: bool,
    plan: &'a DevicePlan,
    device: &'a DeviceCoefficients,
    /// Storage, then arithmetic element type.
    dtypes: [ElemType; 2],
    len: usize,
    n: usize,
    m: usize,
    inner: usize,
    cols: usize,
}

impl Call<'_> {
    /// The gradient, read.
    fn input(&self) -> BufferArg {
        buffer(&self.input.handle, self.len)
    }

    /// The result: the input itself when smoothing in place.
    fn output(&self) -> BufferArg {
        if self.in_place {
            BufferArg::alias(0, self.len)
        } else {
            buffer(&self.output.handle, self.len)
        }
    }

    /// A scratch buffer of `len` values of the arithmetic type.
    fn scratch(&self, len: usize) -> Handle {
        scratch(self.input, len, self.plan.arithmetic)
    }

    /// The coefficient array `index` (H1: α, c, κ, μ), `m` values.
    fn array(&self, index: usize) -> BufferArg {
        buffer(&self.device.arrays[index], self.m)
    }

    /// The operator's scalars.
    fn scalars(&self) -> BufferArg {
        buffer(&self.device.scalars, self.device.scalar_count)
    }

    /// The geometry, as the kernels take it.
    fn fibers(&self) -> FibersLaunch {
        FibersLaunch::new(self.n, self.m, self.inner, self.cols)
    }
}

/// A launch grid: the cubes, and the invocations of each.
type Grid = (CubeCount, CubeDim);

/// How the segment kernels cut the columns: `count` segments of `rows` rows.
#[derive(Clone, Copy)]
struct Segmentation {
    count: usize,
    rows: usize,
}

impl Segmentation {
    /// As the kernels take it, with each scan invocation's share of the segments.
    fn arg(self) -> SegmentsLaunch {
        SegmentsLaunch::new(self.count, self.rows, self.count.div_ceil(SCAN_THREADS))
    }
}

/// One operator's kernels for each of [`Kernels`]; [`launch`] computes their grids, which are the
/// same for every operator.
trait OperatorKernels {
    /// One pass on `grid`: one cube per tile of `width` columns, `units` invocations each
    /// sweeping `part_rows` rows.
    fn tile(&self, call: &Call<'_>, grid: Grid, width: usize, units: usize, part_rows: usize);

    /// One invocation per column on `grid`.
    fn columns(&self, call: &Call<'_>, grid: Grid);

    /// One invocation per (segment, column) on `grid`, and a reduction over each column's
    /// segments on `scan`: one cube of [`SCAN_THREADS`] invocations per column.
    fn segments(&self, call: &Call<'_>, grid: Grid, scan: Grid, segments: Segmentation);
}

/// Runs `plan` reading `input` and writing `output` (both contiguous, same shape and dtype);
/// `in_place` when they are the same buffer. The kernels of each operator are launched from its
/// own file.
fn launch(input: &CubeTensor, output: &CubeTensor, in_place: bool, plan: &DevicePlan) {
    let arithmetic_dtype = match plan.arithmetic {
        Arithmetic::F32 => DType::F32,
        Arithmetic::F64 => DType::F64,
    };
    let device = device_coefficients(input, &plan.operator, plan.n, plan.arithmetic);
    let call = Call {
        client: &input.client,
        input,
        output,
        in_place,
        plan,
        device: &device,
        dtypes: [
            dtype_to_storage_type(input.dtype),
            dtype_to_storage_type(arithmetic_dtype),
        ],
        len: input.meta.num_elements(),
        n: plan.n,
        m: plan.operator.rows(plan.n),
        inner: plan.inner,
        cols: plan.outer * plan.inner,
    };
    let operator: &dyn OperatorKernels = match &plan.operator {
        Operator::Sweep { .. } => &h1::H1,
        Operator::Reweighted { .. } => &reweighted::Reweighted,
    };
    let (client, cols) = (call.client, call.cols);
    match kernels(plan, client.properties().hardware.max_shared_memory_size) {
        Kernels::Tile {
            width,
            units,
            part_rows,
        } => {
            let tiles = CubeCount::Static(cols.div_ceil(width) as u32, 1, 1);
            let grid = (tiles, CubeDim::new_1d(units as u32));
            operator.tile(&call, grid, width, units, part_rows);
        }
        Kernels::Columns => operator.columns(&call, elementwise(client, cols)),
        Kernels::Segments {
            segments,
            segment_rows,
        } => {
            let per_column = CubeCount::Static(cols as u32, 1, 1);
            let scan = (per_column, CubeDim::new_1d(SCAN_THREADS as u32));
            let segmentation = Segmentation {
                count: segments,
                rows: segment_rows,
            };
            operator.segments(
                &call,
                elementwise(client, segments * cols),
                scan,
                segmentation,
            );
        }
    }
}
