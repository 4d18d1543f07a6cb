//! Every device kernel the crate launches, compiled for NVIDIA targets without a GPU: through
//! cubecl-cuda's two compilers, CUDA C++ (cubecl-cpp's CUDA dialect, for NVRTC) and PTX
//! (cubecl-llvm's NVPTX backend, for ptxas). Tooling for `gpu/cuda_check.sh`, not API: it writes
//! the sources, and the script compiles them with NVIDIA's own NVRTC and ptxas.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::sync::Arc;

use cubecl::ir::nvidia::SmArch;
use cubecl::ir::{DeviceIdentity, ElemType, FloatKind, HardwareProperties, MemoryDeviceProperties};
use cubecl::prelude::*;
use cubecl::{Compiler, CubeKernel};
use cubecl_cpp::shared::{CompilationOptions, CppCompiler, CppSupportedFeatures};
use cubecl_cpp::target::Cuda;
use cubecl_llvm::nvptx::ptx_version::PtxVersion;
use cubecl_llvm::{LlvmTarget, PlironArtifact, PlironCompiler, PlironOptions};

use super::kernels;
use super::launch::{self, DevicePlan, Kernels, Operator};
use super::{Arithmetic, Method, SCAN_THREADS};
use crate::{Boundary, ChannelDirected, Metric};

/// The NVIDIA architectures the check compiles for: Ampere (A100) and Hopper (H100, H200).
pub const ARCHITECTURES: [u32; 2] = [80, 90];

/// Shared memory per cube the offline device offers: what a launch may plan with on an A100
/// (163 KiB opt-in); the tile kernels ask for at most 48 KiB of it.
const SHARED_BYTES: usize = 163 * 1024;

/// One kernel specialization, as both compilers write it for one architecture.
pub struct OfflineKernel {
    /// `kernel.storage_arithmetic[.in_place][.tile shape]`, unique per architecture.
    pub name: String,
    /// The compute capability, e.g. 90 for `sm_90`.
    pub arch: u32,
    /// Invocations per cube (CUDA threads per block).
    pub threads: u32,
    /// CUDA C++ from cubecl-cpp, for NVRTC.
    pub cuda: String,
    /// Dynamic shared memory the CUDA C++ kernel is launched with, in bytes.
    pub cuda_shared_bytes: usize,
    /// PTX from cubecl-llvm, for ptxas.
    pub ptx: String,
    /// Dynamic shared memory the PTX kernel is launched with, in bytes.
    pub ptx_shared_bytes: usize,
}

/// An offline device: an NVIDIA GPU of compute capability `arch` with f32 and f64 arithmetic.
fn device_properties(arch: u32) -> Arc<DeviceProperties> {
    let hardware = HardwareProperties {
        load_width: 128,
        vector_register_count: None,
        plane_size_min: 32,
        plane_size_max: 32,
        max_bindings: 32,
        max_shared_memory_size: SHARED_BYTES,
        max_cube_count: (i32::MAX as u32, u16::MAX as u32, u16::MAX as u32),
        max_units_per_cube: 1024,
        max_cube_dim: (1024, 1024, 64),
        num_streaming_multiprocessors: None,
        num_tensor_cores: None,
        min_tensor_cores_dim: None,
        num_cpu_cores: None,
        last_level_cache_size: None,
        max_vector_size: VectorSize::MAX,
        cube_mma_reserved_shared_memory: 0,
    };
    let mut properties = DeviceProperties::new(
        Default::default(),
        MemoryDeviceProperties::new(u64::MAX, 512),
        hardware,
        cubecl::profile::TimingMethod::Device,
        DeviceIdentity {
            name: format!("offline sm_{arch}"),
            fingerprint: format!("ptx_sm{arch}"),
            physical: None,
        },
    );
    cubecl_cpp::shared::register_supported_types(&mut properties);
    Arc::new(properties)
}

/// What cubecl-cuda's runtime enables for compute capability `arch`.
fn cpp_options(arch: u32) -> CompilationOptions {
    CompilationOptions {
        warp_size: 32,
        supports_features: CppSupportedFeatures {
            grid_constants: arch >= 70,
            clusters: arch >= 90,
            fast_math: true,
            fast_tanh: arch >= 75,
            elect_sync: arch >= 90,
            dp4a: arch >= 61,
        },
        ..Default::default()
    }
}

/// Both compilers' output for `kernel`, or the first compiler's error.
fn compile(
    name: String,
    arch: u32,
    threads: u32,
    kernel: &dyn CubeKernel,
) -> Result<OfflineKernel, String> {
    let fail = |compiler: &str, error: &dyn std::fmt::Debug| {
        format!("{name} sm_{arch}, {compiler}: {error:?}")
    };
    let mut cpp = CppCompiler::<Cuda>::default();
    let source = cpp
        .compile(kernel.define(), &cpp_options(arch))
        .map_err(|e| fail("cubecl-cpp", &e))?;
    let options = PlironOptions {
        sm_arch: Some(SmArch::new(arch, false)),
        ptx_version: PtxVersion::for_driver(12080),
        grid_constants: arch >= 70,
        ..Default::default()
    };
    let mut llvm = PlironCompiler {
        target: LlvmTarget::Nvptx,
    };
    let PlironArtifact::NvptxCode(module) = llvm
        .compile(kernel.define(), &options)
        .map_err(|e| fail("cubecl-llvm", &e))?
    else {
        return Err(fail("cubecl-llvm", &"not PTX"));
    };
    // SAFETY: cubecl-llvm's PTX is NUL-terminated.
    let ptx = unsafe { CStr::from_ptr(module.ptx.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok(OfflineKernel {
        name,
        arch,
        threads,
        cuda_shared_bytes: source.shared_memory_size,
        cuda: source.to_string(),
        ptx_shared_bytes: module.shared_memory_size,
        ptx,
    })
}

/// The storage and arithmetic types of every launch: f32 tensors in f32 or f64 arithmetic, f64
/// tensors in f64.
const DTYPES: [(FloatKind, FloatKind, &str); 3] = [
    (FloatKind::F32, FloatKind::F32, "f32_f32"),
    (FloatKind::F32, FloatKind::F64, "f32_f64"),
    (FloatKind::F64, FloatKind::F64, "f64_f64"),
];

fn buffer(inplace: bool) -> BufferCompilationArg {
    BufferCompilationArg {
        inplace: inplace.then_some(0),
    }
}

fn settings(threads: u32) -> KernelSettings {
    KernelSettings::new(
        *CubeDim::new_1d(threads),
        ExecutionMode::Unchecked,
        AddressType::U32,
    )
}

/// The tile shapes the launches plan for the weights of [`super::workloads::distinct_shapes`]
/// along their output channels, every metric and arithmetic: `(f64 arithmetic, sweep, periodic,
/// width, units, n·width)`.
fn tile_shapes() -> BTreeSet<(bool, bool, bool, usize, usize, usize)> {
    let mut shapes = BTreeSet::new();
    let metrics = [
        Metric::SobolevH1 {
            lambda: 1.0,
            boundary: Boundary::Neumann,
        },
        Metric::SobolevH1 {
            lambda: 1.0,
            boundary: Boundary::Periodic,
        },
        Metric::SobolevH1 {
            lambda: 1.0,
            boundary: Boundary::Dirichlet,
        },
        Metric::ReweightedH0 { lambda: 1.0 },
    ];
    for shape in super::workloads::distinct_shapes() {
        let n = shape[0];
        let inner: usize = shape[1..].iter().product();
        for metric in metrics {
            for arithmetic in [Arithmetic::F32, Arithmetic::F64] {
                let Some(plan) = host_plan(
                    &ChannelDirected::new(metric, Default::default()),
                    n,
                    inner,
                    arithmetic,
                ) else {
                    continue;
                };
                if let Kernels::Tile { width, units, .. } = launch::kernels(&plan, SHARED_BYTES) {
                    let sweep = matches!(plan.operator, Operator::Sweep { .. });
                    let double = arithmetic == Arithmetic::F64;
                    shapes.insert((
                        double,
                        sweep,
                        plan.operator.is_periodic(),
                        width,
                        units,
                        n * width,
                    ));
                }
            }
        }
    }
    shapes
}

/// The plan of one call on fibers of length `n` with `inner` columns, or `None` for the identity.
fn host_plan(
    preconditioner: &ChannelDirected,
    n: usize,
    inner: usize,
    arithmetic: Arithmetic,
) -> Option<DevicePlan> {
    let operator = Operator::of(&preconditioner.metric, n)?;
    Some(DevicePlan {
        operator,
        arithmetic,
        outer: 1,
        n,
        inner,
        method: Method::Auto,
        poison: false,
    })
}

/// The geometry arguments, as every kernel is compiled with them (scalars: nothing to say).
fn fibers() -> kernels::FibersCompilationArg {
    kernels::FibersCompilationArg {
        n: (),
        m: (),
        inner: (),
        cols: (),
    }
}

/// The segmentation arguments, as every segment kernel is compiled with them.
fn segments() -> kernels::SegmentsCompilationArg {
    kernels::SegmentsCompilationArg {
        count: (),
        rows: (),
        per_unit: (),
    }
}

/// The H1 coefficients, five buffers read in place of none.
fn coefficients<A: Float>() -> kernels::CoefficientsCompilationArg<A> {
    kernels::CoefficientsCompilationArg {
        alpha: buffer(false),
        coupling: buffer(false),
        kappa: buffer(false),
        mu: buffer(false),
        scalars: buffer(false),
    }
}

/// The H1 scan's results, written by the scan and read by the segments.
fn scan<A: Float>() -> kernels::ScanCompilationArg<A> {
    kernels::ScanCompilationArg {
        carries: buffer(false),
        last: buffer(false),
    }
}

/// Every kernel specialization the crate launches, for every architecture of [`ARCHITECTURES`]:
/// each kernel in each (storage, arithmetic) pair, in place and not where it writes the tensor,
/// and the tile kernels in every tile shape the model weights of [`super::workloads`] plan.
pub fn all_kernels() -> Result<Vec<OfflineKernel>, String> {
    const ELEMENTWISE: u32 = 256;
    const SCAN: u32 = SCAN_THREADS as u32;
    let tiles = tile_shapes();
    let mut out = Vec::new();
    for arch in ARCHITECTURES {
        let props = device_properties(arch);
        let target = Arc::new(TargetProperties::default());
        // Compiles `$module::$kernel` on `$threads` invocations per cube, named `$name`.
        macro_rules! add {
            ($name:expr, $threads:expr, $module:ident::$kernel:ident($($arg:expr),+ $(,)?)) => {{
                let (settings, props, target) = (settings($threads), props.clone(), target.clone());
                let kernel = kernels::$module::$kernel::new(settings, props, target, $($arg),+);
                out.push(compile($name, arch, $threads, &kernel)?);
            }};
        }
        for (storage, arithmetic, tag) in DTYPES {
            let dtypes = [ElemType::Float(storage), ElemType::Float(arithmetic)];
            // A buffer read, or written (or read) where it may alias the input.
            let r = || buffer(false);
            for inplace in [false, true] {
                let suffix = if inplace { ".in_place" } else { "" };
                let name = |kernel: &str| format!("{kernel}.{tag}{suffix}");
                let w = || buffer(inplace);
                add!(
                    name("h1_columns"),
                    ELEMENTWISE,
                    h1_columns::H1Columns(r(), w(), coefficients(), fibers(), dtypes)
                );
                add!(
                    name("h1_segment_scan"),
                    SCAN,
                    h1_segment_scan::H1SegmentScan(
                        r(),
                        w(),
                        r(),
                        scan(),
                        r(),
                        fibers(),
                        segments(),
                        dtypes
                    )
                );
                add!(
                    name("h1_segment_apply"),
                    ELEMENTWISE,
                    h1_segment_apply::H1SegmentApply(
                        r(),
                        w(),
                        scan(),
                        r(),
                        r(),
                        r(),
                        r(),
                        fibers(),
                        segments(),
                        dtypes
                    )
                );
                add!(
                    name("reweighted_columns"),
                    ELEMENTWISE,
                    reweighted_columns::ReweightedColumns(r(), w(), r(), fibers(), (), dtypes)
                );
                add!(
                    name("reweighted_segment_apply"),
                    ELEMENTWISE,
                    reweighted_segment_apply::ReweightedSegmentApply(
                        r(),
                        w(),
                        r(),
                        r(),
                        fibers(),
                        segments(),
                        dtypes
                    )
                );
                let double = arithmetic == FloatKind::F64;
                for &(_, sweep, periodic, width, units, capacity) in
                    tiles.iter().filter(|tile| tile.0 == double)
                {
                    let boundary = if periodic { ".periodic" } else { "" };
                    let shape = format!("tile{boundary}.w{width}.u{units}.c{capacity}");
                    let threads = units as u32;
                    if sweep {
                        add!(
                            name(&format!("h1_{shape}")),
                            threads,
                            h1_tile::H1Tile(
                                r(),
                                w(),
                                coefficients(),
                                fibers(),
                                (),
                                width,
                                units,
                                capacity,
                                periodic,
                                dtypes
                            )
                        );
                    } else {
                        add!(
                            name(&format!("reweighted_{shape}")),
                            threads,
                            reweighted_tile::ReweightedTile(
                                r(),
                                w(),
                                r(),
                                fibers(),
                                (),
                                (),
                                width,
                                units,
                                capacity,
                                dtypes
                            )
                        );
                    }
                }
            }
            let name = |kernel: &str| format!("{kernel}.{tag}");
            add!(
                name("h1_segment_maps"),
                ELEMENTWISE,
                h1_segment_maps::H1SegmentMaps(
                    r(),
                    r(),
                    coefficients(),
                    fibers(),
                    segments(),
                    dtypes
                )
            );
            add!(
                name("reweighted_segment_sums"),
                ELEMENTWISE,
                reweighted_segment_sums::ReweightedSegmentSums(
                    r(),
                    r(),
                    fibers(),
                    segments(),
                    dtypes
                )
            );
            if storage == arithmetic {
                add!(
                    format!("reweighted_segment_total.{}", &tag[4..]),
                    SCAN,
                    reweighted_segment_total::ReweightedSegmentTotal(
                        r(),
                        r(),
                        r(),
                        (),
                        segments(),
                        dtypes[1]
                    )
                );
            }
        }
    }
    Ok(out)
}
