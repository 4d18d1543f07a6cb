//! `cargo run --release --example bench_table`: runs the crate's kernels and the baselines on the
//! benchmark shapes in one process and prints the markdown table of BENCHMARKS.md.
//!
//! Every number is a ratio of two medians measured in this run on the same tensor: a kernel's
//! time over a plain copy of the tensor (the memory floor), or a baseline's time over the kernel's.
//! `--quick` measures only the small shapes, for a smoke run; `--only TEXT` keeps the shapes whose
//! printed form contains TEXT; `--write BENCHMARKS.md` regenerates that file (date, machine,
//! tables, targets) from this run.

#[path = "../benches/support/mod.rs"]
mod support;
// The shared writer of output files (and the figures' look, unused here).
use chandir_cli::figure;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chandir::optim::precondition_each;
use chandir::Element;
use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::ArrayD;
use support::{
    copy_all, copy_into, gradient, gradients, h1, naive_neumann, resnet50_convs, resnet56_convs,
    FftPeriodic, RESNET50, RESNET56,
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

struct Row {
    shape: String,
    values: usize,
    copy_us: f64,
    /// H1 out / copy, naive / H1 out, periodic / copy, FFT / periodic, rH0 / copy, H1 in / copy,
    /// H1 flat / copy, 1 thread / all.
    ratios: Vec<f64>,
}

fn ratio(x: f64) -> String {
    format!("{x:.2}")
}

fn measure<T: Element>(shape: &[usize], single: &rayon::ThreadPool, budget: Duration) -> Row {
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
        values: shape.iter().product(),
        copy_us: copy * 1e6,
        ratios: vec![
            neumann / copy,
            naive / neumann,
            periodic / copy,
            fft_time / periodic,
            reweighted / copy,
            input / copy,
            flattened / copy,
            neumann / threaded,
        ],
    }
}

fn print_rows(out: &mut String, title: &str, rows: &[Row]) {
    writeln!(out, "\n### {title}\n").unwrap();
    writeln!(out, "| shape | copy (µs) | H1 out / copy | naive / H1 out | periodic out / copy | FFT / periodic | rH0 out / copy | H1 in / copy | H1 flat / copy | 1 thread / all |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for r in rows {
        let cells: Vec<String> = r.ratios.iter().map(|&x| ratio(x)).collect();
        writeln!(
            out,
            "| {} | {:.1} | {} |",
            r.shape,
            r.copy_us,
            cells.join(" | ")
        )
        .unwrap();
    }
}

/// Copy, the tensors one by one on one thread, and the whole-model call on all threads.
fn whole_set<T: Element>(
    shapes: &[[usize; 4]],
    single: &rayon::ThreadPool,
    budget: Duration,
) -> (f64, f64, f64) {
    let grads: Vec<ArrayD<T>> = gradients(shapes);
    let mut work = grads.clone();
    let cd = ChannelDirected::sobolev(1.0);
    let copy = single.install(|| median_secs(|| copy_all(&grads, &mut work), budget));
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

/// `(copy, one by one on 1 thread, whole-model call on all threads)` for f32 and f64.
struct Set {
    name: &'static str,
    tensors: usize,
    values: usize,
    f32: (f64, f64, f64),
    f64: (f64, f64, f64),
}

fn measure_set(
    name: &'static str,
    set: &[[usize; 4]],
    single: &rayon::ThreadPool,
    budget: Duration,
) -> Set {
    Set {
        name,
        tensors: set.len(),
        values: set.iter().map(|s| s.iter().product::<usize>()).sum(),
        f32: whole_set::<f32>(set, single, budget),
        f64: whole_set::<f64>(set, single, budget),
    }
}

fn print_set(out: &mut String, set: &Set) {
    writeln!(
        out,
        "\n### Whole {} conv set ({} tensors, {:.2} M values), H1 Neumann output\n",
        set.name,
        set.tensors,
        set.values as f64 / 1e6
    )
    .unwrap();
    writeln!(out, "| type | copy (ms) | one by one / copy, 1 thread | whole-model call / copy, all threads | 1 thread / all |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|").unwrap();
    for (name, (c, o, a)) in [("f32", set.f32), ("f64", set.f64)] {
        writeln!(
            out,
            "| {name} | {:.3} | {:.2} | {:.2} | {:.2} |",
            c * 1e3,
            o / c,
            a / c,
            o / a
        )
        .unwrap();
    }
}

/// The targets of the speed issue (one thread, ratio to a copy in the same run unless said),
/// each with the rows of this run that meet it and those that miss it.
fn print_targets(out: &mut String, tables: &[(&str, &[Row])], sets: &[Set]) {
    /// The kernel columns: H1 out, periodic out, rH0 out, H1 in, H1 flat.
    const KERNELS: [(usize, &str); 5] = [
        (0, "H1 out"),
        (2, "periodic out"),
        (4, "rH0 out"),
        (5, "H1 in"),
        (6, "H1 flat"),
    ];
    const THREADS: usize = 7;
    let mut lines: Vec<(String, usize, Vec<String>)> = Vec::new();
    let mut check = |what: String, cells: Vec<(String, f64, bool)>| {
        let met = cells.iter().filter(|c| c.2).count();
        let missed = cells
            .iter()
            .filter(|c| !c.2)
            .map(|(name, v, _)| format!("{name} {v:.2}"))
            .collect();
        lines.push((format!("{what} ({} cells)", cells.len()), met, missed));
    };
    for &(name, rows) in tables {
        let cells = |keep: &dyn Fn(&Row, usize) -> bool, bound: f64| {
            rows.iter()
                .flat_map(|r| KERNELS.iter().map(move |&(c, k)| (r, c, k)))
                .filter(|&(r, c, _)| keep(r, c))
                .map(|(r, c, k)| {
                    (
                        format!("{} {k}", r.shape),
                        r.ratios[c],
                        r.ratios[c] <= bound,
                    )
                })
                .collect::<Vec<_>>()
        };
        let output = |c: usize| c == 0 || c == 4;
        check(
            format!("{name}: every metric and direction, from 64 K values, ≤ 1.5×"),
            cells(&|r, _| r.values >= 1 << 16, 1.5),
        );
        check(
            format!("{name}: H1 and rH0 output, from 1 M values, ≤ 1.2×"),
            cells(&|r, c| r.values >= 1 << 20 && output(c), 1.2),
        );
        check(
            format!("{name}: every metric and direction, under 64 K values, ≤ 2×"),
            cells(&|r, _| r.values < 1 << 16, 2.0),
        );
        let threads = |keep: &dyn Fn(&Row) -> bool, bound: f64| {
            rows.iter()
                .filter(|r| keep(r))
                .map(|r| {
                    (
                        r.shape.clone(),
                        r.ratios[THREADS],
                        r.ratios[THREADS] >= bound,
                    )
                })
                .collect::<Vec<_>>()
        };
        check(
            format!("{name}: 1 thread / all ≥ 1.0 on every row"),
            threads(&|_| true, 1.0),
        );
        check(
            format!("{name}: 1 thread / all ≥ 1.8 from 1 M values"),
            threads(&|r| r.values >= 1 << 20, 1.8),
        );
    }
    for set in sets.iter().filter(|s| s.name == "ResNet-50") {
        for (name, (_, o, a)) in [("f32", set.f32), ("f64", set.f64)] {
            check(
                format!("{name}: whole ResNet-50 conv set, whole-model call, 1 thread / all ≥ 1.8"),
                vec![("ResNet-50".into(), o / a, o / a >= 1.8)],
            );
        }
    }
    writeln!(out, "\n## Against the targets\n").unwrap();
    writeln!(out, "| target | met | missed (measured) |").unwrap();
    writeln!(out, "|---|---:|---|").unwrap();
    for (what, met, missed) in lines {
        writeln!(out, "| {what} | {met} | {} |", missed.join(", ")).unwrap();
    }
}

/// What this machine is, read from the OS (Linux), for the header of BENCHMARKS.md.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let cache = |index: usize| {
        std::fs::read_to_string(format!(
            "/sys/devices/system/cpu/cpu0/cache/index{index}/size"
        ))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "?".into());
    // The widest vector build the kernels choose on this CPU.
    let avx2 = if std::arch::is_x86_feature_detected!("avx512f") {
        "AVX-512F"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        "AVX2"
    } else {
        "no AVX2"
    };
    format!(
        "{model}, {} threads, L1d {} / L2 {} per core, L3 {}, {avx2}; load average (1, 5, 15 min) {load} at the end of the run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cache(0),
        cache(2),
        cache(3),
    )
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

/// Writes `contents` to `path` with the crate's one writer of output files (atomic for regular
/// files, through symbolic links to their targets; see `cli/src/figure.rs`).
fn write_atomically(path: &std::path::Path, contents: &str) -> Result<(), figure::Error> {
    figure::write_atomically(path, |out| Ok(out.write_all(contents.as_bytes())?))
}

const PREAMBLE: &str = include_str!("bench_table/preamble.md");
const WHY: &str = include_str!("bench_table/why.md");

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
    let mut out = String::new();
    writeln!(out, "Ratios of medians in one run; 1 thread unless the column says otherwise; all threads = {}.", rayon::current_num_threads()).unwrap();
    let mut tables = Vec::new();
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
        print_rows(&mut out, name, &rows);
        tables.push((name, rows));
    }
    let set = if quick {
        resnet50_convs()[..5].to_vec()
    } else {
        resnet50_convs()
    };
    let sets = [
        measure_set("ResNet-50", &set, &single, budget),
        measure_set("ResNet-56", &resnet56_convs(), &single, budget),
    ];
    for set in &sets {
        print_set(&mut out, set);
    }
    let tables: Vec<(&str, &[Row])> = tables.iter().map(|(n, r)| (*n, r.as_slice())).collect();
    print_targets(&mut out, &tables, &sets);
    print!("{out}");
    // `--write BENCHMARKS.md` regenerates the file: date, machine, these tables, the notes.
    if let Some(path) = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
    {
        let document = format!(
            "{PREAMBLE}\nMeasured on {}, {}.\n\n{out}\n{WHY}",
            today(),
            machine()
        );
        write_atomically(std::path::Path::new(path), &document).expect("BENCHMARKS.md written");
        println!("\nwrote {path}");
    }
}
