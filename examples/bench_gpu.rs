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
#[path = "support/burn_device.rs"]
mod burn_device;

#[cfg(feature = "burn-cube")]
mod run {
    use std::time::{Duration, Instant};

    use super::burn_device;
    use burn::tensor::{DType, Device, Tensor, TensorData};
    use chandir::gpu::Method;
    use chandir::integrations::burn::{device_copy, precondition_on_device, precondition_on_host};
    use chandir::{ChannelDirected, Direction, Metric};

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

    /// Every convolution weight of torchvision's ResNet-50 (53 tensors, 23.5 M values).
    fn resnet50_convs() -> Vec<Vec<usize>> {
        let mut shapes = vec![vec![64, 3, 7, 7]];
        let mut in_channels = 64;
        for (planes, blocks) in [(64, 3), (128, 4), (256, 6), (512, 3)] {
            for block in 0..blocks {
                shapes.push(vec![planes, in_channels, 1, 1]);
                shapes.push(vec![planes, planes, 3, 3]);
                shapes.push(vec![planes * 4, planes, 1, 1]);
                if block == 0 {
                    shapes.push(vec![planes * 4, in_channels, 1, 1]);
                }
                in_channels = planes * 4;
            }
        }
        shapes
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
        let on_device = |method: Method| {
            let grad = grad.clone();
            move || {
                precondition_on_device(grad.clone(), &cd, None, method, false)
                    .unwrap()
                    .unwrap()
            }
        };
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
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].clone())
        };
        let default = if cfg!(feature = "burn-cuda") {
            "cuda"
        } else {
            "wgpu"
        };
        let name = value("--device").unwrap_or_else(|| default.to_string());
        let quick = args.iter().any(|a| a == "--quick");
        let budget = Duration::from_millis(
            value("--budget-ms").map_or(if quick { 100 } else { 1000 }, |v| v.parse().unwrap()),
        );
        let device = burn_device::by_name(&name)
            .unwrap_or_else(|| panic!("--device {name}: not a device of this build"));
        println!("device: {name} ({device:?}); f32, λ = 1, H1 Neumann, output channels");
        println!();
        println!(
        "| shape | copy (µs) | H1 / copy | round trip / H1 | columns / H1 | segments(8, 32, 128) / H1 |"
    );
        println!("|---|---:|---:|---:|---:|---:|");
        let shapes: Vec<&[usize]> = if quick {
            SHAPES[..4].to_vec()
        } else {
            SHAPES.to_vec()
        };
        for shape in shapes {
            let t = measure(shape, &device, budget, true);
            println!(
                "| {shape:?} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2}, {:.2}, {:.2} |",
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
            let run = |method: Method| {
                let grad = grad.clone();
                move || {
                    precondition_on_device(grad.clone(), &cd, None, method, false)
                        .unwrap()
                        .unwrap()
                }
            };
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
