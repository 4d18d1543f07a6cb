//! burn-train's `Learner` with the burn wrapper (feature `burn-train`): a short run trains, and
//! λ = 0 gives the plain optimizer's weights bit for bit.

#[path = "../examples/support/learner.rs"]
mod learner;

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::Device;
use chandir::integrations::burn::ChannelDirectedConfig;

/// Adam wrapped by chandir with `lambda` (along the output channels of the conv weights).
fn wrapped_adam(lambda: f64) -> ModuleOptimizer {
    ChannelDirectedConfig::new()
        .with_lambda(lambda)
        .init(AdamConfig::new().build())
        .unwrap()
}

#[test]
fn a_short_learner_run_trains_and_lambda_zero_is_plain_adam() {
    let device = Device::flex().autodiff();
    let (train, valid) = learner::mnist(640, 300);
    let dir = tempfile::tempdir().unwrap();

    device.seed(1);
    let untrained = learner::Cnn::for_mnist(&device);
    let (_, loss_before) = learner::evaluate(&untrained.valid(), &valid, &device.clone().inner());

    let optim = wrapped_adam(1.0);
    let model = learner::train(
        optim,
        (train.clone(), valid.clone()),
        &device,
        2,
        1,
        &dir.path().join("a"),
        true,
    );
    let (accuracy, loss_after) = learner::evaluate(&model, &valid, &device.clone().inner());
    eprintln!("loss {loss_before:.3} -> {loss_after:.3}, validation accuracy {accuracy:.3}");
    assert!(
        loss_after < 0.7 * loss_before,
        "loss {loss_before} -> {loss_after}"
    );
    assert!(
        accuracy > 0.5,
        "validation accuracy {accuracy} (chance: 0.1)"
    );

    let run = |optim| {
        learner::train(
            optim,
            (train.clone(), valid.clone()),
            &device,
            1,
            2,
            &dir.path().join("b"),
            true,
        )
        .weights()
    };
    let zero = run(wrapped_adam(0.0));
    let plain = run(AdamConfig::new().build().into());
    let smoothed = run(wrapped_adam(1.0));
    assert_eq!(zero.len(), plain.len());
    assert!(
        zero.iter()
            .zip(&plain)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "λ = 0 differs from plain Adam"
    );
    assert_ne!(smoothed, plain, "λ = 1 should change the weights");
}

/// burn-train's multi-device strategy over two copies of the flex device, with the optimizer on the
/// main device and sharded across devices: the wrapper trains under both, and λ = 0 gives plain
/// Adam's weights bit for bit under the same strategy (each device's gradients are smoothed where
/// the strategy steps them; smoothing is linear, so averaging and smoothing commute to rounding).
#[test]
fn multi_device_strategies_train_and_lambda_zero_is_plain_adam() {
    use burn::train::{ExecutionStrategy, MultiDeviceOptim};
    let device = Device::flex().autodiff();
    let (train, valid) = learner::mnist(320, 200);
    let dir = tempfile::tempdir().unwrap();
    for (name, placement) in [
        ("main", MultiDeviceOptim::OptimMainDevice),
        ("sharded", MultiDeviceOptim::OptimSharded),
    ] {
        let strategy = || ExecutionStrategy::multi(vec![device.clone(), device.clone()], placement);
        let run = |optim, tag: &str| {
            learner::train_with(
                optim,
                (train.clone(), valid.clone()),
                &device,
                Some(strategy()),
                1,
                3,
                &dir.path().join(format!("{name}-{tag}")),
                true,
            )
        };
        trains_and_lambda_zero_is_plain_adam(name, run, &valid, &device.clone().inner());
    }
}

/// burn-train's data-parallel strategy (`ExecutionStrategy::ddp`, burn's all-reduce on CUDA) over
/// every CUDA device of a machine with two or more: the wrapper trains, and λ = 0 gives plain
/// Adam's weights bit for bit under the same strategy. Smoothing after the all-reduce equals
/// smoothing each replica's gradient before it (the operator is linear), to rounding. Skipped,
/// with the reason printed, on a machine with fewer than two CUDA devices (every machine CI has).
#[cfg(feature = "burn-cuda")]
#[test]
fn ddp_over_cuda_devices_trains_and_lambda_zero_is_plain_adam() {
    let count = learner::cuda_devices();
    if count < 2 {
        eprintln!(
            "skipped: DDP needs two or more CUDA devices and `nvidia-smi -L` lists {count} here"
        );
        return;
    }
    let (train, valid) = learner::mnist(640, 300);
    let dir = tempfile::tempdir().unwrap();
    let run = |optim, tag: &str| {
        let (device, strategy) = learner::ddp(count);
        learner::train_with(
            optim,
            (train.clone(), valid.clone()),
            &device,
            Some(strategy),
            1,
            3,
            &dir.path().join(tag),
            true,
        )
    };
    let main = learner::ddp(count).0.inner();
    trains_and_lambda_zero_is_plain_adam(&format!("DDP over {count} devices"), run, &valid, &main);
}

/// Under one strategy (`run` trains a fresh net with an optimizer, logging under a tag): λ = 1
/// trains (validation accuracy above 0.3, chance 0.1), λ = 0 gives plain Adam's weights bit for
/// bit, and λ = 1 changes them.
fn trains_and_lambda_zero_is_plain_adam(
    name: &str,
    run: impl Fn(ModuleOptimizer, &str) -> learner::Cnn,
    valid: &[learner::Item],
    device: &Device,
) {
    let smoothed = run(wrapped_adam(1.0), "smoothed");
    let (accuracy, _) = learner::evaluate(&smoothed, valid, device);
    assert!(
        accuracy > 0.3,
        "{name}: validation accuracy {accuracy} (chance: 0.1)"
    );
    let zero = run(wrapped_adam(0.0), "zero").weights();
    let plain = run(AdamConfig::new().build().into(), "plain").weights();
    assert!(
        zero.iter()
            .zip(&plain)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "{name}: λ = 0 differs from plain Adam"
    );
    assert_ne!(
        smoothed.weights(),
        plain,
        "{name}: λ = 1 should change the weights"
    );
}
