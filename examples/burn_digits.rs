//! `cargo run --release --features burn --example burn_digits`: a small burn CNN trained on the
//! embedded UCI digits (data/), with and without the channel-directed wrapper, on the backend
//! named on the command line.
//!
//! ```text
//! cargo run --release --features burn --example burn_digits                      # flex (CPU)
//! cargo run --release --features burn-wgpu --example burn_digits -- --backend wgpu
//! cargo run --release --features burn-cuda --example burn_digits -- --backend cuda
//! ```
//!
//! Options: `--backend flex|wgpu|wgpu-cpu|vulkan|cuda`, `--epochs N` (default 8), `--seed N`.
//! On `wgpu`, `vulkan` and `cuda` the conv gradients are smoothed on the device by a CubeCL kernel;
//! on `flex` in place on the CPU. The three lines that add the wrapper are marked below.

#[cfg(feature = "burn")]
fn main() {
    run::main()
}

#[cfg(not(feature = "burn"))]
fn main() {
    eprintln!("burn_digits needs the burn feature: cargo run --release --features burn --example burn_digits");
}

#[cfg(feature = "burn")]
#[path = "support/args.rs"]
mod args;
#[cfg(feature = "burn")]
#[path = "support/burn_device.rs"]
mod burn_device;
#[cfg(feature = "burn")]
#[path = "support/cnn.rs"]
mod cnn;

#[cfg(feature = "burn")]
mod run {
    use std::path::Path;
    use std::time::Instant;

    use burn::module::Module;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
    use burn::tensor::{DType, Device, Int, Tensor, TensorData};
    // (1 of 3) the wrapper's config
    use super::{args::Args, burn_device, cnn};
    use chandir::integrations::burn::{route, ChannelDirectedConfig};
    use ndarray::{Array1, Array2};
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Conv(1→16, 3×3) → ReLU → Conv(16→32, 3×3) → ReLU → max-pool 2 → Linear(32·4·4 → 10).
    type Cnn = cnn::Cnn;

    fn cnn(device: &Device) -> Cnn {
        Cnn::new(device, [16, 32], 8, false)
    }

    struct Split {
        train_x: Array2<f32>,
        train_y: Vec<i64>,
        test_x: Array2<f32>,
        test_y: Vec<i64>,
    }

    /// The study's split: a fixed ChaCha8 permutation (seed 1998), 1347 training and 450 test images,
    /// standardized with the training split's mean and standard deviation.
    fn digits() -> Split {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        let x: Array2<u8> =
            ndarray_npy::read_npy(dir.join("digits_x.npy")).expect("data/digits_x.npy");
        let y: Array1<u8> =
            ndarray_npy::read_npy(dir.join("digits_y.npy")).expect("data/digits_y.npy");
        let mut order: Vec<usize> = (0..x.nrows()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(1998));
        let (train, test) = order.split_at(1347);
        let pick = |rows: &[usize]| {
            let images =
                Array2::from_shape_fn((rows.len(), 64), |(r, c)| f32::from(x[[rows[r], c]]));
            let labels = rows.iter().map(|&r| i64::from(y[r])).collect();
            (images, labels)
        };
        let (mut train_x, train_y) = pick(train);
        let (mut test_x, test_y) = pick(test);
        let mean = train_x.mean().unwrap();
        let std = train_x.std(0.0);
        train_x.mapv_inplace(|v| (v - mean) / std);
        test_x.mapv_inplace(|v| (v - mean) / std);
        Split {
            train_x,
            train_y,
            test_x,
            test_y,
        }
    }

    fn images(x: &Array2<f32>, rows: &[usize], device: &Device) -> Tensor<4> {
        let values: Vec<f32> = rows.iter().flat_map(|&r| x.row(r).to_vec()).collect();
        Tensor::from_data(
            TensorData::new(values, [rows.len(), 1, 8, 8]),
            (device, DType::F32),
        )
    }

    fn labels(y: &[i64], rows: &[usize], device: &Device) -> Tensor<1, Int> {
        let values: Vec<i64> = rows.iter().map(|&r| y[r]).collect();
        Tensor::from_data(TensorData::new(values, [rows.len()]), device)
    }

    fn accuracy(model: &Cnn, data: &Split, device: &Device) -> f64 {
        let rows: Vec<usize> = (0..data.test_y.len()).collect();
        cnn::accuracy(
            model.forward(images(&data.test_x, &rows, device)),
            &data.test_y,
        )
    }

    /// Trains a fresh model from `seed`; returns (test accuracy, ms per step).
    fn train(data: &Split, device: &Device, epochs: usize, seed: u64, wrapped: bool) -> (f64, f64) {
        let device = device.clone().autodiff();
        device.seed(seed);
        let mut model = cnn(&device);
        let sgd = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
            .build();
        let mut optim: ModuleOptimizer = if wrapped {
            // (2 of 3) wrap the optimizer: conv gradients are smoothed along their output channels
            ChannelDirectedConfig::new()
                .init(sgd)
                .expect("the default config is valid")
        } else {
            sgd.into()
        };
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..data.train_y.len()).collect();
        let (mut steps, start) = (0usize, Instant::now());
        for _ in 0..epochs {
            order.shuffle(&mut rng);
            for rows in order.chunks(32) {
                let logits = model.forward(images(&data.train_x, rows, &device));
                let loss = loss_fn.forward(logits, labels(&data.train_y, rows, &device));
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                // (3 of 3) unchanged: the step is the wrapped optimizer's
                model = optim.step(0.02, model, grads);
                steps += 1;
            }
        }
        device.sync().unwrap();
        let ms_per_step = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
        (accuracy(&model.valid(), data, &device.inner()), ms_per_step)
    }

    pub fn main() {
        let args = Args::from_env();
        let backend = args
            .value("--backend")
            .unwrap_or_else(|| "flex".to_string());
        let epochs: usize = args.parsed("--epochs", 8);
        let seed: u64 = args.parsed("--seed", 1);
        let device = burn_device::by_name(&backend).unwrap_or_else(|| {
            panic!("--backend {backend}: not in this build (features burn-wgpu, burn-vulkan, burn-cuda)")
        });
        let data = digits();
        let probe = Tensor::<4>::zeros([16, 1, 3, 3], &device);
        let path = route(&probe, &chandir::ChannelDirected::sobolev(1.0)).unwrap();
        println!("UCI digits, {epochs} epochs, SGD (momentum 0.9, lr 0.02), backend {backend}: conv gradients smoothed {path:?}");
        for wrapped in [false, true] {
            let (accuracy, ms) = train(&data, &device, epochs, seed, wrapped);
            let name = if wrapped {
                "SGD + channel-directed H1"
            } else {
                "SGD"
            };
            println!(
                "{name:<27} test accuracy {:.1} %  ({ms:.2} ms per step, kernel compilation included)",
                accuracy * 100.0
            );
        }
    }
}
