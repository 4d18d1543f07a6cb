//! `cargo run --release --example whole_model`: one optimizer step for every parameter of a model
//! in one call (`ChannelDirectedOptimizer::step_all`), checked bitwise against stepping the
//! parameters one by one, and timed against it on this machine's cores.
//!
//! The models are the parameter sets of torchvision's ResNet-50 (conv, batch-norm and fc, 161
//! tensors, 25.6 M values) and of the CIFAR ResNet-56 (many small tensors).

use std::time::{Duration, Instant};

use chandir::ndarray::{ArrayD, IxDyn};
use chandir::optim::{ChannelDirectedOptimizer, ParamStates, Sgd, SgdConfig};
use chandir::ChannelDirected;

/// Every parameter of torchvision's ResNet-50, in order.
fn resnet50() -> Vec<(String, Vec<usize>)> {
    let mut params = vec![("conv1.weight".to_owned(), vec![64, 3, 7, 7])];
    let batch_norm = |params: &mut Vec<(String, Vec<usize>)>, name: &str, channels: usize| {
        params.push((format!("{name}.weight"), vec![channels]));
        params.push((format!("{name}.bias"), vec![channels]));
    };
    batch_norm(&mut params, "bn1", 64);
    let mut in_channels = 64;
    for (layer, (planes, blocks)) in [(64, 3), (128, 4), (256, 6), (512, 3)]
        .into_iter()
        .enumerate()
    {
        for block in 0..blocks {
            let prefix = format!("layer{}.{block}", layer + 1);
            let convs = [
                ("conv1", vec![planes, in_channels, 1, 1]),
                ("conv2", vec![planes, planes, 3, 3]),
                ("conv3", vec![planes * 4, planes, 1, 1]),
            ];
            for (index, (conv, shape)) in convs.into_iter().enumerate() {
                let channels = shape[0];
                params.push((format!("{prefix}.{conv}.weight"), shape));
                batch_norm(&mut params, &format!("{prefix}.bn{}", index + 1), channels);
            }
            if block == 0 {
                params.push((
                    format!("{prefix}.downsample.0.weight"),
                    vec![planes * 4, in_channels, 1, 1],
                ));
                batch_norm(&mut params, &format!("{prefix}.downsample.1"), planes * 4);
            }
            in_channels = planes * 4;
        }
    }
    params.push(("fc.weight".to_owned(), vec![1000, 2048]));
    params.push(("fc.bias".to_owned(), vec![1000]));
    params
}

/// Every parameter of the CIFAR ResNet-56 (He et al. 2016): 3 stages of 9 basic blocks.
fn resnet56() -> Vec<(String, Vec<usize>)> {
    let mut params = vec![
        ("conv1.weight".to_owned(), vec![16, 3, 3, 3]),
        ("bn1.weight".to_owned(), vec![16]),
        ("bn1.bias".to_owned(), vec![16]),
    ];
    let mut in_channels = 16;
    for (stage, planes) in [16, 32, 64].into_iter().enumerate() {
        for block in 0..9 {
            for conv in 1..=2 {
                let inputs = if conv == 1 { in_channels } else { planes };
                let prefix = format!("layer{}.{block}", stage + 1);
                params.push((
                    format!("{prefix}.conv{conv}.weight"),
                    vec![planes, inputs, 3, 3],
                ));
                params.push((format!("{prefix}.bn{conv}.weight"), vec![planes]));
                params.push((format!("{prefix}.bn{conv}.bias"), vec![planes]));
            }
            in_channels = planes;
        }
    }
    params.push(("fc.weight".to_owned(), vec![10, 64]));
    params.push(("fc.bias".to_owned(), vec![10]));
    params
}

/// Deterministic values in [-1, 1).
fn filled(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

struct Run {
    params: Vec<ArrayD<f32>>,
    states: ParamStates<chandir::optim::SgdState<f32>>,
    elapsed: Vec<Duration>,
}

/// `steps` steps with fresh gradients, either one parameter at a time or with `step_all`.
fn train(
    opt: &ChannelDirectedOptimizer<Sgd>,
    model: &[(String, Vec<usize>)],
    steps: u64,
    whole_model: bool,
) -> Result<Run, chandir::Error> {
    let mut params: Vec<ArrayD<f32>> = model
        .iter()
        .enumerate()
        .map(|(i, (_, shape))| filled(shape, i as u64))
        .collect();
    let mut states = ParamStates::default();
    let mut elapsed = Vec::new();
    for step in 0..steps {
        let mut grads: Vec<ArrayD<f32>> = model
            .iter()
            .enumerate()
            .map(|(i, (_, shape))| filled(shape, 1_000 * (step + 1) + i as u64))
            .collect();
        let start = Instant::now();
        if whole_model {
            let all = model
                .iter()
                .zip(params.iter_mut().zip(&mut grads))
                .map(|((name, _), (param, grad))| (name, param.view_mut(), grad.view_mut()));
            opt.step_all(all, &mut states)?;
        } else {
            for ((name, _), (param, grad)) in model.iter().zip(params.iter_mut().zip(&mut grads)) {
                opt.step(name, param.view_mut(), grad.view_mut(), &mut states)?;
            }
        }
        elapsed.push(start.elapsed());
    }
    Ok(Run {
        params,
        states,
        elapsed,
    })
}

fn median_ms(times: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn main() -> Result<(), chandir::Error> {
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
        ..Default::default()
    }
    .init()?;
    let opt = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0));
    let steps = 7;
    let threads = rayon::current_num_threads();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    println!("SGD (momentum 0.9) + H1 output smoothing (λ = 1) of every conv weight, f32;");
    println!("median of {steps} steps, each on fresh gradients, on this machine ({threads} rayon threads)\n");
    println!(
        "{:<10} {:>8} {:>8} {:>17} {:>17} {:>19} {:>8}",
        "model",
        "tensors",
        "M values",
        "one by one, 1 thr",
        "one by one, all",
        "step_all, all thr",
        "speed-up"
    );
    for (label, model) in [("ResNet-50", resnet50()), ("ResNet-56", resnet56())] {
        let values: usize = model.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        let serial = one_thread.install(|| train(&opt, &model, steps, false))?;
        let looped = train(&opt, &model, steps, false)?;
        let whole = train(&opt, &model, steps, true)?;
        // The whole-model call changes the schedule, never the numbers.
        for run in [&looped, &whole] {
            let same = run.params.iter().zip(&serial.params).all(|(a, b)| {
                a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            });
            assert!(same && run.states == serial.states, "results differ");
        }
        let (t_serial, t_looped, t_whole) = (
            median_ms(&serial.elapsed),
            median_ms(&looped.elapsed),
            median_ms(&whole.elapsed),
        );
        println!(
            "{label:<10} {:>8} {:>8.1} {:>14.1} ms {:>14.1} ms {:>16.1} ms {:>7.2}×",
            model.len(),
            values as f64 / 1e6,
            t_serial,
            t_looped,
            t_whole,
            t_serial / t_whole
        );
    }
    println!(
        "\nspeed-up: one by one on 1 thread / step_all on all threads; results bitwise equal."
    );
    Ok(())
}
