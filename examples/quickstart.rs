//! `cargo run --release --example quickstart`: one gradient before and after channel-directed
//! smoothing, and the check that it is still a descent direction.

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::{s, Array4, Axis};

fn main() -> Result<(), chandir::Error> {
    // A conv-weight gradient [C_out, C_in, kH, kW] = [8, 2, 3, 3]: a smooth trend across output
    // channels plus channel-to-channel noise, the situation the metric is designed for.
    let mut noise = 0x2545_f491_4f6c_dd1d_u64;
    let grad = Array4::<f32>::from_shape_fn((8, 2, 3, 3), |(o, i, h, w)| {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        let trend = ((o as f32) * 0.4).sin() + 0.1 * (i + h + w) as f32;
        trend + ((noise >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
    });

    let metric = Metric::SobolevH1 {
        lambda: 1.0,
        boundary: Boundary::Neumann,
    };
    let mut smoothed = grad.clone();
    ChannelDirected::new(metric, Direction::Output).apply(&mut smoothed)?; // or chandir::precondition(&mut g, 1.0)

    println!("one fiber along the output channels (C_in = 0, kernel position (1, 1)):");
    println!("{:>8} {:>10} {:>10}", "channel", "raw g", "P g");
    let (raw, new) = (grad.slice(s![.., 0, 1, 1]), smoothed.slice(s![.., 0, 1, 1]));
    for (c, (g, x)) in raw.iter().zip(new.iter()).enumerate() {
        println!("{c:>8} {g:>10.4} {x:>10.4}");
    }

    let inner: f64 = grad
        .iter()
        .zip(&smoothed)
        .map(|(&g, &x)| g as f64 * x as f64)
        .sum();
    let norm = |a: &Array4<f32>| a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let roughness = |a: &Array4<f32>| {
        let d = &a.slice(s![1.., .., .., ..]) - &a.slice(s![..-1, .., .., ..]);
        d.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
    };
    println!();
    println!("<g, Pg>                 = {inner:.6}  (> 0: still a descent direction)");
    println!(
        "|g|, |Pg|               = {:.4}, {:.4}  (A >= I, so |Pg| <= |g|)",
        norm(&grad),
        norm(&smoothed)
    );
    println!(
        "|Dg|, |DPg| (channels)  = {:.4}, {:.4}  (smoother along the output channels)",
        roughness(&grad),
        roughness(&smoothed)
    );
    let mean_shift = (grad.mean_axis(Axis(0)).unwrap() - smoothed.mean_axis(Axis(0)).unwrap())
        .iter()
        .fold(0.0_f32, |m, v| m.max(v.abs()));
    println!("max change of a fiber mean = {mean_shift:.2e}  (Neumann keeps fiber means)");
    assert!(inner > 0.0, "not a descent direction");
    Ok(())
}
