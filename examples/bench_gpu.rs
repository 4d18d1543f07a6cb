//! `cargo run --release --features burn-wgpu --example bench_gpu` (or `burn-vulkan`, `burn-cuda`):
//! the device kernel against a device-to-device copy of the same tensor and against the host round
//! trip (download, CPU solve, upload), in one process. Every number is a ratio of two medians
//! measured in this run on the same tensor.
//!
//! f32, λ = 1, Sobolev H1 Neumann along the output channels, on the shapes of BENCHMARKS.md and the
//! whole ResNet-50 conv set. Options: `--device wgpu|wgpu-cpu|vulkan|vulkan-cpu|cuda`, `--quick`
//! (small shapes, short budget), `--budget-ms N` per measurement.
//!
//! On a CPU adapter (Mesa's lavapipe) the numbers are those of a CPU emulating a GPU, not GPU
//! numbers.

#[cfg(feature = "burn-cube")]
fn main() {
    run::main()
}

#[cfg(not(feature = "burn-cube"))]
fn main() {
    eprintln!("bench_gpu needs a GPU feature: cargo run --release --features burn-wgpu --example bench_gpu");
}

#[cfg(feature = "burn-cube")]
#[path = "support/args.rs"]
mod args;
#[cfg(feature = "burn-cube")]
#[path = "support/burn_device.rs"]
mod burn_device;

#[cfg(feature = "burn-cube")]
mod run {
    use std::time::{Duration, Instant};

    use super::{args::Args, burn_device};
    use burn::tensor::{DType, Device, Tensor, TensorData};
    use chandir::gpu::Method;
    use chandir::integrations::burn::{
        device_copy, device_traffic, precondition_on_device, precondition_on_host,
    };
    use chandir::{Boundary, ChannelDirected, Direction, Metric};

    /// BENCHMARKS.md's shapes (its duplicated `[64, 64, 3, 3]` row once) and the extra linear weight.
    const SHAPES: [&[usize]; 8] = [
        &[16, 16, 3, 3],
        &[32, 32, 3, 3],
        &[64, 64, 3, 3],
        &[64, 64, 1, 1],
        &[256, 64, 1, 1],
        &[512, 512, 3, 3],
        &[2048, 512, 1, 1],
        &[4096, 4096],
    ];

    use chandir::gpu::workloads::{resnet50, resnet50_convs, vgg16, vit_b_mlp};

    /// `(launches, bytes moved / gradient bytes)` of the plan for an f32 gradient of `shape`.
    fn design(shape: &[usize], cd: &ChannelDirected, device: &Device) -> Option<(usize, f64)> {
        design_as(shape, cd, device, DType::F32)
    }

    /// The kernel plan of every weight of each model along its output channels, per metric and
    /// storage type: the most launches and bytes moved per gradient byte of any of its weights.
    fn print_design(device: &Device) {
        println!(
            "Kernel plan (design figures, not timings): every weight along its output channels,"
        );
        println!("the most launches per gradient and global-memory bytes moved per gradient byte of any weight.");
        println!();
        println!("| model | weights | metric | f32: launches | f32: bytes / gradient byte | f64: launches | f64: bytes / gradient byte |");
        println!("|---|---:|---|---:|---:|---:|---:|");
        let models: [(&str, Vec<Vec<usize>>); 4] = [
            ("ResNet-50 convs", resnet50_convs()),
            ("ResNet-50 (with fc)", resnet50()),
            ("VGG-16", vgg16()),
            ("ViT-B MLP", vit_b_mlp()),
        ];
        let metrics = [
            (
                "H1 Neumann",
                Metric::SobolevH1 {
                    lambda: 1.0,
                    boundary: Boundary::Neumann,
                },
            ),
            (
                "H1 periodic",
                Metric::SobolevH1 {
                    lambda: 1.0,
                    boundary: Boundary::Periodic,
                },
            ),
            (
                "H1 Dirichlet",
                Metric::SobolevH1 {
                    lambda: 1.0,
                    boundary: Boundary::Dirichlet,
                },
            ),
            ("re-weighted H0", Metric::ReweightedH0 { lambda: 1.0 }),
        ];
        for (model, shapes) in &models {
            for (label, metric) in metrics {
                let cd = ChannelDirected::new(metric, Direction::Output);
                let worst = |dtype: DType| {
                    let mut worst = (0usize, 0.0f64);
                    for shape in shapes {
                        if let Some((launches, bytes)) = design_as(shape, &cd, device, dtype) {
                            worst = (worst.0.max(launches), worst.1.max(bytes));
                        }
                    }
                    worst
                };
                let (single, double) = (worst(DType::F32), worst(DType::F64));
                println!(
                    "| {model} | {} | {label} | {} | {:.3} | {} | {:.3} |",
                    shapes.len(),
                    single.0,
                    single.1,
                    double.0,
                    double.1
                );
            }
        }
        println!();
    }

    /// [`design`] for a gradient stored as `dtype`.
    fn design_as(
        shape: &[usize],
        cd: &ChannelDirected,
        device: &Device,
        dtype: DType,
    ) -> Option<(usize, f64)> {
        // The plan reads only the shape and dtype: one value broadcast to the shape stands in
        // (a VGG-16 classifier weight would take 400 MB).
        let mut dims = [1usize; 4];
        dims[..shape.len()].copy_from_slice(shape);
        let one =
            Tensor::<4>::from_data(TensorData::new(vec![0.0f32], [1, 1, 1, 1]), (device, dtype));
        device_traffic(&one.expand(dims), cd, Method::Auto)
            .unwrap()
            .map(|t| (t.launches, t.bytes_per_gradient_byte()))
    }

    fn gradient(shape: &[usize], device: &Device) -> Tensor<4> {
        let len: usize = shape.iter().product();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ len as u64;
        let values: Vec<f32> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
            })
            .collect();
        let mut dims = [1usize; 4];
        dims[..shape.len()].copy_from_slice(shape);
        Tensor::from_data(TensorData::new(values, dims), (device, DType::F32))
    }

    /// Median seconds per call of `f`: calls are queued in batches of `batch` and the device is
    /// synchronised after each batch, over at least 3 batches and about `budget`.
    fn median_secs<T>(
        device: &Device,
        batch: usize,
        budget: Duration,
        mut f: impl FnMut() -> T,
    ) -> f64 {
        drop(f());
        device.sync().unwrap();
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 3 || (start.elapsed() < budget && times.len() < 100) {
            let t = Instant::now();
            for _ in 0..batch {
                drop(f());
            }
            device.sync().unwrap();
            times.push(t.elapsed().as_secs_f64() / batch as f64);
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    /// A call that smooths `grad` by `cd` on the device with `method`, for [`median_secs`].
    fn on_device(
        grad: &Tensor<4>,
        cd: ChannelDirected,
        method: Method,
    ) -> impl FnMut() -> Tensor<4> {
        let grad = grad.clone();
        move || {
            precondition_on_device(grad.clone(), &cd, None, method, false)
                .unwrap()
                .unwrap()
        }
    }

    struct Timing {
        copy: f64,
        kernel: f64,
        columns: f64,
        /// Segments of 8, 32 and 128 rows.
        segments: [f64; 3],
        round_trip: f64,
    }

    /// Every timing of `shape`; the method variants only when `variants`.
    fn measure(shape: &[usize], device: &Device, budget: Duration, variants: bool) -> Timing {
        let grad = gradient(shape, device);
        let cd = ChannelDirected::sobolev(1.0);
        let len: usize = shape.iter().product();
        let batch = (4_000_000 / len).clamp(1, 64);
        let on_device = |method| on_device(&grad, cd, method);
        Timing {
            copy: median_secs(device, batch, budget, || device_copy(grad.clone()).unwrap()),
            kernel: median_secs(device, batch, budget, on_device(Method::Auto)),
            columns: match variants {
                true => median_secs(device, batch, budget, on_device(Method::Columns)),
                false => f64::NAN,
            },
            segments: [8, 32, 128].map(|rows| match variants {
                true => median_secs(device, batch, budget, on_device(Method::Segments(rows))),
                false => f64::NAN,
            }),
            round_trip: median_secs(device, 1, budget, || {
                precondition_on_host(grad.clone(), &cd).unwrap()
            }),
        }
    }

    pub fn main() {
        let args = Args::from_env();
        let default = if cfg!(feature = "burn-cuda") {
            "cuda"
        } else {
            "wgpu"
        };
        let name = args
            .value("--device")
            .unwrap_or_else(|| default.to_string());
        let quick = args.has("--quick");
        let budget =
            Duration::from_millis(args.parsed("--budget-ms", if quick { 100 } else { 1000 }));
        let device = burn_device::by_name(&name)
            .unwrap_or_else(|| panic!("--device {name}: not a device of this build"));
        println!("device: {name} ({device:?}); f32, λ = 1, H1 Neumann, output channels");
        println!();
        print_design(&device);
        println!(
            "| shape | launches | bytes / gradient byte | copy (µs) | H1 / copy | round trip / H1 | columns / H1 | segments(8, 32, 128) / H1 |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let shapes: Vec<&[usize]> = if quick {
            SHAPES[..4].to_vec()
        } else {
            SHAPES.to_vec()
        };
        for shape in shapes {
            let t = measure(shape, &device, budget, true);
            let (launches, bytes) = design(shape, &ChannelDirected::sobolev(1.0), &device)
                .expect("H1 runs on the device");
            println!(
                "| {shape:?} | {launches} | {bytes:.3} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2}, {:.2}, {:.2} |",
                t.copy * 1e6,
                t.kernel / t.copy,
                t.round_trip / t.kernel,
                t.columns / t.kernel,
                t.segments[0] / t.kernel,
                t.segments[1] / t.kernel,
                t.segments[2] / t.kernel,
            );
        }
        // Few columns, long fibers: one invocation per fiber against the segmented scan.
        println!();
        println!("| few columns, long fibers | n | columns | columns (µs) | columns / segmented |");
        println!("|---|---:|---:|---:|---:|");
        let long: [(&[usize], Direction); 3] = [
            (&[4096, 16], Direction::Output),
            (&[256, 64, 3, 3], Direction::Flattened),
            (&[512, 512, 3, 3], Direction::Flattened),
        ];
        for (shape, direction) in if quick { &long[..2] } else { &long[..] } {
            let grad = gradient(shape, &device);
            let cd = ChannelDirected::new(Metric::default(), *direction);
            let len: usize = shape.iter().product();
            let (n, cols) = match direction {
                Direction::Flattened => (len, 1),
                _ => (shape[0], len / shape[0]),
            };
            let run = |method| on_device(&grad, cd, method);
            let columns = median_secs(&device, 1, budget, run(Method::Columns));
            let segmented = median_secs(&device, 1, budget, run(Method::Auto));
            println!(
                "| {shape:?} {direction:?} | {n} | {cols} | {:.0} | {:.1} |",
                columns * 1e6,
                columns / segmented
            );
        }
        let set = if quick {
            resnet50_convs()[..8].to_vec()
        } else {
            resnet50_convs()
        };
        let (mut copy, mut kernel, mut round_trip) = (0.0, 0.0, 0.0);
        for shape in &set {
            let t = measure(shape, &device, budget / 4, false);
            copy += t.copy;
            kernel += t.kernel;
            round_trip += t.round_trip;
        }
        println!();
        println!(
            "| ResNet-50 conv set ({} tensors) | copies (ms) | H1 / copy | round trip / H1 |",
            set.len()
        );
        println!("|---|---:|---:|---:|");
        println!(
            "| f32 | {:.3} | {:.2} | {:.1} |",
            copy * 1e3,
            kernel / copy,
            round_trip / kernel
        );
    }
}
