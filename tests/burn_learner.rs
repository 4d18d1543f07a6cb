//! burn-train's `Learner` with the burn wrapper (feature `burn-train`): a short run trains, and
//! λ = 0 gives the plain optimizer's weights bit for bit.

#[path = "../examples/support/learner.rs"]
mod learner;

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::Device;
use chandir::integrations::burn::ChannelDirectedConfig;

#[test]
fn a_short_learner_run_trains_and_lambda_zero_is_plain_adam() {
    let device = Device::flex().autodiff();
    let (train, valid) = learner::mnist(640, 300);
    let dir = tempfile::tempdir().unwrap();

    device.seed(1);
    let untrained = learner::Cnn::new(&device);
    let (_, loss_before) = learner::evaluate(&untrained.valid(), &valid, &device.clone().inner());

    let optim = ChannelDirectedConfig::new()
        .with_lambda(1.0)
        .init(AdamConfig::new().build())
        .unwrap();
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
    let zero = run(ChannelDirectedConfig::new()
        .with_lambda(0.0)
        .init(AdamConfig::new().build())
        .unwrap());
    let plain = run(AdamConfig::new().build().into());
    let smoothed = run(ChannelDirectedConfig::new()
        .with_lambda(1.0)
        .init(AdamConfig::new().build())
        .unwrap());
    assert_eq!(zero.len(), plain.len());
    assert!(
        zero.iter()
            .zip(&plain)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "λ = 0 differs from plain Adam"
    );
    assert_ne!(smoothed, plain, "λ = 1 should change the weights");
}
