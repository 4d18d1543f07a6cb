//! `cargo run --release --example bench_table`: runs the crate's kernels and the baselines on the
//! benchmark shapes in one process and prints the markdown table of BENCHMARKS.md.
//!
//! Every number is a ratio of two medians measured in this run on the same tensor: a kernel's
//! time over a plain copy of the tensor (the memory floor), or a baseline's time over the kernel's.
//! `--quick` measures only the small shapes, for a smoke run; `--only TEXT` keeps the shapes whose
//! printed form contains TEXT.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chandir::optim::precondition_each;
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::ArrayD;
use num_traits::Float;
use support::{
    copy_into, gradient, naive_neumann, resnet50_convs, resnet56_convs, FftPeriodic, RESNET50,
    RESNET56,
};

/// Median seconds per call of `f`, over at least 5 calls and about `budget` of time.
fn median_secs(mut f: impl FnMut(), budget: Duration) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 200) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn h1(boundary: Boundary, direction: Direction) -> ChannelDirected {
    ChannelDirected::new(
        Metric::SobolevH1 {
            lambda: 1.0,
            boundary,
        },
        direction,
    )
}

struct Row {
    shape: String,
    copy_us: f64,
    cells: Vec<String>,
}

fn ratio(x: f64) -> String {
    format!("{x:.2}")
}

fn measure<T: Float + Send + Sync>(
    shape: &[usize],
    single: &rayon::ThreadPool,
    budget: Duration,
) -> Row {
    let grad: ArrayD<T> = gradient(shape, 7);
    let mut work = grad.clone();
    let one = |f: &mut (dyn FnMut() + Send)| single.install(|| median_secs(f, budget));
    let copy = one(&mut || copy_into(&grad, &mut work));
    let apply = |cd: ChannelDirected, work: &mut ArrayD<T>| cd.apply(work).unwrap();

    let neumann = one(&mut || apply(h1(Boundary::Neumann, Direction::Output), &mut work));
    let naive = one(&mut || naive_neumann(&mut work.view_mut(), 0, 1.0));
    let periodic = one(&mut || apply(h1(Boundary::Periodic, Direction::Output), &mut work));
    let mut fft = FftPeriodic::new(shape[0], 1.0);
    let fft_time = one(&mut || fft.apply(&mut work.view_mut(), Some(0)));
    let reweighted = one(&mut || {
        apply(
            ChannelDirected::new(Metric::ReweightedH0 { lambda: 1.0 }, Direction::Output),
            &mut work,
        )
    });
    let input = one(&mut || apply(h1(Boundary::Neumann, Direction::Input), &mut work));
    let flattened = one(&mut || apply(h1(Boundary::Neumann, Direction::Flattened), &mut work));
    let threaded = median_secs(
        || apply(h1(Boundary::Neumann, Direction::Output), &mut work),
        budget,
    );
    Row {
        shape: format!("{shape:?}"),
        copy_us: copy * 1e6,
        cells: vec![
            ratio(neumann / copy),
            ratio(naive / neumann),
            ratio(periodic / copy),
            ratio(fft_time / periodic),
            ratio(reweighted / copy),
            ratio(input / copy),
            ratio(flattened / copy),
            ratio(neumann / threaded),
        ],
    }
}

fn print_rows(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!("| shape | copy (µs) | H1 out / copy | naive / H1 out | periodic out / copy | FFT / periodic | rH0 out / copy | H1 in / copy | H1 flat / copy | 1 thread / all |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {} |",
            r.shape,
            r.copy_us,
            r.cells.join(" | ")
        );
    }
}

/// Copy, the tensors one by one on one thread, and the whole-model call on all threads.
fn whole_set<T: Float + Send + Sync>(
    shapes: &[[usize; 4]],
    single: &rayon::ThreadPool,
    budget: Duration,
) -> (f64, f64, f64) {
    let grads: Vec<ArrayD<T>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| gradient(s, i as u64))
        .collect();
    let mut work = grads.clone();
    let cd = ChannelDirected::sobolev(1.0);
    let copy = single.install(|| {
        median_secs(
            || {
                grads
                    .iter()
                    .zip(work.iter_mut())
                    .for_each(|(g, w)| copy_into(g, w))
            },
            budget,
        )
    });
    let one = single.install(|| {
        median_secs(
            || work.iter_mut().for_each(|w| cd.apply(w).unwrap()),
            budget,
        )
    });
    let all = median_secs(
        || precondition_each(work.iter_mut().map(|w| (cd, w.view_mut()))).unwrap(),
        budget,
    );
    (copy, one, all)
}

fn print_set(name: &str, set: &[[usize; 4]], single: &rayon::ThreadPool, budget: Duration) {
    let total: usize = set.iter().map(|s| s.iter().product::<usize>()).sum();
    println!(
        "\n### Whole {name} conv set ({} tensors, {:.2} M values), H1 Neumann output\n",
        set.len(),
        total as f64 / 1e6
    );
    println!("| type | copy (ms) | one by one / copy, 1 thread | whole-model call / copy, all threads | 1 thread / all |");
    println!("|---|---:|---:|---:|---:|");
    let (c, o, a) = whole_set::<f32>(set, single, budget);
    println!(
        "| f32 | {:.3} | {:.2} | {:.2} | {:.2} |",
        c * 1e3,
        o / c,
        a / c,
        o / a
    );
    let (c, o, a) = whole_set::<f64>(set, single, budget);
    println!(
        "| f64 | {:.3} | {:.2} | {:.2} | {:.2} |",
        c * 1e3,
        o / c,
        a / c,
        o / a
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 50 } else { 400 });
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut shapes: Vec<Vec<usize>> = RESNET56.iter().map(|s| s.to_vec()).collect();
    if !quick {
        shapes.extend(RESNET50.iter().map(|s| s.to_vec()));
        shapes.push(vec![4096, 4096]);
    }
    // `--only 2048` keeps the shapes whose printed form contains "2048".
    let args: Vec<String> = std::env::args().collect();
    if let Some(filter) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        shapes.retain(|s| format!("{s:?}").contains(filter.as_str()));
    }
    println!("Ratios of medians in one run; 1 thread unless the column says otherwise; all threads = {}.", rayon::current_num_threads());
    for (name, f64_too) in [("f32", false), ("f64", true)] {
        let rows: Vec<Row> = shapes
            .iter()
            .map(|s| {
                if f64_too {
                    measure::<f64>(s, &single, budget)
                } else {
                    measure::<f32>(s, &single, budget)
                }
            })
            .collect();
        print_rows(name, &rows);
    }
    let set = if quick {
        resnet50_convs()[..5].to_vec()
    } else {
        resnet50_convs()
    };
    print_set("ResNet-50", &set, &single, budget);
    print_set("ResNet-56", &resnet56_convs(), &single, budget);
}
