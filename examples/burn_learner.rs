//! `cargo run --release --features burn-train --example burn_learner`: burn-train's `Learner` with
//! chandir's wrapper around Adam, on the MNIST subset (data/mnist5k_*.npy), flex backend (CPU),
//! with burn-train's accuracy and loss metrics; then the same run with plain Adam.
//!
//! Options: `--epochs N` (default 3), `--train N` (training images, default 2000), `--lambda L`,
//! `--ddp`: burn-train's data-parallel strategy over every CUDA device instead (build with
//! `--features burn-train,burn-cuda`; needs two or more devices, and says why it did not run
//! otherwise).
//! The three lines that add the wrapper are marked below.

#[path = "support/learner.rs"]
mod learner;

use burn::optim::AdamConfig;
use burn::tensor::Device;
// (1 of 3) the wrapper's config
use chandir::integrations::burn::ChannelDirectedConfig;

fn main() -> Result<(), chandir::Error> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let epochs: usize = value("--epochs").map_or(3, |v| v.parse().expect("--epochs N"));
    let train: usize = value("--train").map_or(2000, |v| v.parse().expect("--train N"));
    let lambda: f64 = value("--lambda").map_or(1.0, |v| v.parse().expect("--lambda L"));
    let ddp = args.iter().any(|a| a == "--ddp");
    let devices = learner::cuda_devices();
    if ddp && (!cfg!(feature = "burn-cuda") || devices < 2) {
        println!(
            "--ddp not run: it needs the burn-cuda feature ({}) and two or more CUDA devices \
             (`nvidia-smi -L` lists {devices})",
            if cfg!(feature = "burn-cuda") {
                "on"
            } else {
                "off"
            }
        );
        return Ok(());
    }
    let device = Device::flex().autodiff();
    let (train_items, valid_items) = learner::mnist(train, 1000);
    let dir = std::env::temp_dir().join("chandir-burn-learner");
    let _ = std::fs::remove_dir_all(&dir); // burn-train's logs and checkpoints of an earlier run
    for wrapped in [true, false] {
        let adam = AdamConfig::new().build();
        let optim = if wrapped {
            // (2 of 3) wrap the optimizer (λ along the output channels of the conv weights)
            ChannelDirectedConfig::new()
                .with_lambda(lambda)
                .init(adam)?
        } else {
            adam.into()
        };
        // (3 of 3) unchanged: Learner::new(model, optim, scheduler) and SupervisedTraining
        let start = std::time::Instant::now();
        let (device, strategy) = strategy(ddp, devices, &device);
        let model = learner::train_with(
            optim,
            (train_items.clone(), valid_items.clone()),
            &device,
            strategy,
            epochs,
            1,
            &dir.join(if wrapped { "chandir" } else { "adam" }),
            false,
        );
        let (accuracy, loss) = learner::evaluate(&model, &valid_items, &device.clone().inner());
        println!(
            "{}: validation accuracy {:.1} %, loss {loss:.3}, {:.1} s",
            if wrapped {
                format!("Adam + chandir (λ = {lambda})")
            } else {
                "plain Adam".into()
            },
            100.0 * accuracy,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The device and burn-train strategy of a run: one device, or DDP over `devices` CUDA devices.
fn strategy(
    ddp: bool,
    devices: usize,
    device: &Device,
) -> (Device, Option<burn::train::ExecutionStrategy>) {
    #[cfg(feature = "burn-cuda")]
    if ddp {
        let (main, strategy) = learner::ddp(devices);
        return (main, Some(strategy));
    }
    let _ = (ddp, devices);
    (device.clone(), None)
}
