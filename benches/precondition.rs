//! Criterion benchmarks: each group measures the crate's kernels and the baselines on one tensor.
//! `cargo bench --bench precondition`; `examples/bench_table.rs` prints the same ratios as a table.

mod support;

use std::time::Duration;

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::ArrayD;
use support::{
    copy_all, copy_into, gradient, gradients, h1, naive_neumann, resnet50_convs, FftPeriodic,
    RESNET50, RESNET56,
};

fn single_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
}

fn per_shape(c: &mut Criterion) {
    let single = single_thread();
    let mut shapes: Vec<Vec<usize>> = RESNET56
        .iter()
        .chain(RESNET50.iter())
        .map(|s| s.to_vec())
        .collect();
    shapes.push(vec![4096, 4096]);
    for shape in shapes {
        let name = format!("{shape:?}");
        let mut group = c.benchmark_group(name.clone());
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(shape.iter().product::<usize>() as u64));
        let grad: ArrayD<f32> = gradient(&shape, 1);
        let mut work = grad.clone();
        group.bench_function("copy", |b| b.iter(|| copy_into(&grad, &mut work)));
        group.bench_function("naive_neumann_output", |b| {
            b.iter(|| naive_neumann(&mut work.view_mut(), 0, 1.0))
        });
        let mut fft = FftPeriodic::new(shape[0], 1.0);
        group.bench_function("fft_periodic_output", |b| {
            b.iter(|| fft.apply(&mut work.view_mut(), Some(0)))
        });
        let variants = [
            (
                "h1_neumann_output",
                h1(Boundary::Neumann, Direction::Output),
            ),
            (
                "h1_periodic_output",
                h1(Boundary::Periodic, Direction::Output),
            ),
            (
                "reweighted_output",
                ChannelDirected::new(Metric::ReweightedH0 { lambda: 1.0 }, Direction::Output),
            ),
            ("h1_neumann_input", h1(Boundary::Neumann, Direction::Input)),
            (
                "h1_neumann_flattened",
                h1(Boundary::Neumann, Direction::Flattened),
            ),
        ];
        for (label, cd) in variants {
            group.bench_function(BenchmarkId::new(label, "1 thread"), |b| {
                single.install(|| b.iter(|| cd.apply(&mut work).unwrap()))
            });
        }
        let cd = h1(Boundary::Neumann, Direction::Output);
        group.bench_function(BenchmarkId::new("h1_neumann_output", "all threads"), |b| {
            b.iter(|| cd.apply(&mut work).unwrap())
        });
        let mut work64: ArrayD<f64> = gradient(&shape, 1);
        group.bench_function(BenchmarkId::new("h1_neumann_output_f64", "1 thread"), |b| {
            single.install(|| b.iter(|| cd.apply(&mut work64).unwrap()))
        });
        group.finish();
    }
}

fn resnet50_set(c: &mut Criterion) {
    let single = single_thread();
    let shapes = resnet50_convs();
    let grads: Vec<ArrayD<f32>> = gradients(&shapes);
    let mut work = grads.clone();
    let mut group = c.benchmark_group("resnet50_convs");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(
        grads.iter().map(|g| g.len() as u64).sum(),
    ));
    group.bench_function("copy", |b| b.iter(|| copy_all(&grads, &mut work)));
    let cd = ChannelDirected::sobolev(1.0);
    group.bench_function(BenchmarkId::new("h1_neumann_output", "1 thread"), |b| {
        single.install(|| b.iter(|| work.iter_mut().for_each(|w| cd.apply(w).unwrap())))
    });
    group.bench_function(BenchmarkId::new("h1_neumann_output", "all threads"), |b| {
        b.iter(|| work.iter_mut().for_each(|w| cd.apply(w).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, per_shape, resnet50_set);
criterion_main!(benches);
