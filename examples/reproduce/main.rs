//! The study: does channel-directed gradient smoothing (Lao et al., arXiv 2008.10766) make small
//! CNNs better on real data, with every method tuned on a validation split and compared seed by
//! seed? Writes a claims table (one verdict per claim of the paper), tables, SVG figures and
//! checkpoints.
//!
//! ```text
//! cargo run --release --example reproduce                     # headline: SGD vs SGD + H1 (~1 min)
//! cargo run --release --example reproduce -- --full           # every method, batch 8 and 64, tuned
//! cargo run --release --example reproduce -- --quick          # smoke run (seconds; numbers mean nothing)
//! cargo run --release --example reproduce -- --full --snapshot   # rewrite results/ and the README's results
//! ```
//!
//! Output goes to `reproduce-out/` (ignored by git) or `--out DIR`; only `--snapshot` writes the
//! committed snapshot `results/` and the README section between its markers.

mod data;
mod model;
mod plots;
mod protocol;
mod report;
mod runner;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::ArrayD;

use data::{BoxError, DataKind, Dataset};
use protocol::{Grid, Method, RunSpec, Setting, TestSplit, Tuned};
use report::{Correlation, Evaluated, LambdaZero, Stability, Study, README_BEGIN, README_END};
use runner::Job;

/// The batch size of the headline comparison (the default run): small batches give the noisy
/// gradients that smoothing is meant to help with.
const HEADLINE_BATCH: usize = 8;
/// Seeds of the final evaluation (fresh: the tuning seeds are 1000 and up).
const EVAL_SEEDS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quick,
    Default,
    Full,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Quick => "quick (smoke run: the numbers mean nothing)",
            Mode::Default => "default (headline: SGD vs SGD + H1 output)",
            Mode::Full => "full",
        }
    }
}

/// The grid of the full study (the default run reuses its tuning results when they match).
fn full_grid() -> Grid {
    Grid {
        sgd_lr: vec![(64, vec![0.05, 0.1, 0.2]), (8, vec![0.01, 0.02, 0.04])],
        adam_lr: vec![5e-4, 1e-3, 2e-3],
        lambda: vec![0.1, 0.3, 1.0],
        max_epochs: vec![
            ((DataKind::Mnist1d, 64), 32),
            ((DataKind::Mnist1d, 8), 16),
            ((DataKind::Digits, 64), 24),
            ((DataKind::Digits, 8), 12),
            ((DataKind::Mnist, 8), 4),
        ],
        tuning_seeds: vec![1000, 1001, 1002],
    }
}

fn quick_grid() -> Grid {
    Grid {
        sgd_lr: vec![(64, vec![0.05, 0.1]), (8, vec![0.01, 0.02])],
        adam_lr: vec![1e-3],
        lambda: vec![0.3, 1.0],
        max_epochs: DataKind::ALL
            .iter()
            .flat_map(|&d| [((d, 64), 2), ((d, 8), 2)])
            .collect(),
        tuning_seeds: vec![1000, 1001],
    }
}

struct Plan {
    mode: Mode,
    grid: Grid,
    cells: Vec<(DataKind, usize)>,
    methods: Vec<Method>,
    eval_seeds: Vec<u64>,
    /// (data, batch) of the stability experiment and its learning-rate ladder.
    stability: Vec<(DataKind, usize)>,
    stability_lrs: Vec<f64>,
}

impl Plan {
    fn new(mode: Mode, seeds: Option<usize>) -> Plan {
        let eval = |n: u64| (0..seeds.map_or(n, |s| s as u64)).collect::<Vec<u64>>();
        match mode {
            Mode::Quick => Plan {
                mode,
                grid: quick_grid(),
                cells: DataKind::ALL.iter().map(|&d| (d, 64)).collect(),
                methods: Method::ALL.to_vec(),
                eval_seeds: eval(3),
                stability: DataKind::ALL.iter().map(|&d| (d, 64)).collect(),
                stability_lrs: vec![0.1, 0.8],
            },
            Mode::Default => Plan {
                mode,
                grid: full_grid(),
                cells: DataKind::ALL.iter().map(|&d| (d, HEADLINE_BATCH)).collect(),
                methods: vec![Method::Sgd, Method::SgdH1Output],
                eval_seeds: eval(EVAL_SEEDS),
                stability: Vec::new(),
                stability_lrs: Vec::new(),
            },
            Mode::Full => Plan {
                mode,
                grid: full_grid(),
                // MNIST at batch 8 only: its runs cost ~10× the others' on a CPU
                cells: vec![
                    (DataKind::Mnist1d, 64),
                    (DataKind::Mnist1d, 8),
                    (DataKind::Digits, 64),
                    (DataKind::Digits, 8),
                    (DataKind::Mnist, 8),
                ],
                methods: Method::ALL.to_vec(),
                eval_seeds: eval(EVAL_SEEDS),
                stability: vec![(DataKind::Mnist1d, 64), (DataKind::Digits, 64)],
                stability_lrs: vec![0.1, 0.2, 0.4],
            },
        }
    }

    fn data_kinds(&self) -> Vec<DataKind> {
        let mut kinds: Vec<DataKind> = self.cells.iter().map(|c| c.0).collect();
        kinds.dedup();
        kinds
    }
}

/// The settings in a `tuning.csv`, if it was tuned with `grid` and has every (cell, method).
fn load_tuning(path: &Path, plan: &Plan) -> Option<Vec<Tuned>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let protocol = lines.next()?.strip_prefix("# protocol: ")?;
    if protocol != plan.grid.fingerprint() {
        return None;
    }
    let mut found = HashMap::new();
    for line in lines.skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 7 {
            return None;
        }
        let key = (
            DataKind::parse(f[0])?,
            f[1].parse::<usize>().ok()?,
            Method::parse(f[2])?,
        );
        let tuned = Tuned {
            data: key.0,
            batch: key.1,
            method: key.2,
            candidates: Vec::new(),
            chosen: Setting {
                lr: f[3].parse().ok()?,
                lambda: f[4].parse().ok()?,
                epochs: f[5].parse().ok()?,
            },
            validation: f[6].parse().ok()?,
            train_loss: Vec::new(),
            train_accuracy: Vec::new(),
            at_edge: Vec::new(),
        };
        found.insert(key, tuned);
    }
    plan.cells
        .iter()
        .flat_map(|&(d, b)| plan.methods.iter().map(move |&m| (d, b, m)))
        .map(|key| found.remove(&key))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Evaluation, stability, λ = 0

/// Trained weights of one run, by parameter name, with its spec and test accuracy.
type Checkpoint = (RunSpec, f64, Vec<(String, ArrayD<f32>)>);

struct Evaluation {
    evaluated: Vec<Evaluated>,
    stability: Vec<Stability>,
    lambda_zero: Vec<LambdaZero>,
    /// seed-0 weights of SGD and SGD + H1 output per cell, for checkpoints and correlations
    checkpoints: Vec<Checkpoint>,
}

fn evaluate(datasets: &[Dataset], plan: &Plan, tuned: &[Tuned]) -> Result<Evaluation, BoxError> {
    let setting = |d: DataKind, b: usize, m: Method| -> &Tuned {
        tuned
            .iter()
            .find(|t| t.data == d && t.batch == b && t.method == m)
            .expect("every (cell, method) was tuned")
    };
    let mut jobs = Vec::new();
    // 1. each method at its setting on fresh seeds; the test split is read once per run, at the end
    let mut eval_keys = Vec::new();
    for &(d, b) in &plan.cells {
        for &m in &plan.methods {
            let s = setting(d, b, m).chosen;
            eval_keys.push((d, b, m, jobs.len()));
            for &seed in &plan.eval_seeds {
                jobs.push(Job {
                    spec: RunSpec::at(d, b, m, s, seed),
                    test: TestSplit::ReadOnceAtTheEnd,
                    keep_params: seed == plan.eval_seeds[0]
                        && matches!(m, Method::Sgd | Method::SgdH1Output),
                });
            }
        }
    }
    // 2. stability: SGD and SGD + H1 output (its tuned λ and epochs) up a learning-rate ladder
    let mut stability_keys = Vec::new();
    for &(d, b) in &plan.stability {
        for m in [Method::Sgd, Method::SgdH1Output] {
            let s = setting(d, b, m).chosen;
            for &lr in &plan.stability_lrs {
                stability_keys.push((d, b, m, s, lr, jobs.len()));
                for &seed in &plan.eval_seeds {
                    jobs.push(Job {
                        spec: RunSpec::at(d, b, m, Setting { lr, ..s }, seed),
                        test: TestSplit::Untouched,
                        keep_params: false,
                    });
                }
            }
        }
    }
    // 3. λ = 0: one epoch of every smoothing method at λ = 0 and of its plain optimizer
    let mut zero_keys = Vec::new();
    for d in plan.data_kinds() {
        let b = plan
            .cells
            .iter()
            .find(|c| c.0 == d)
            .expect("a cell per data set")
            .1;
        for m in Method::ALL {
            let base = m.baseline();
            let lr = tuned
                .iter()
                .find(|t| t.data == d && t.batch == b && t.method == base)
                .map_or(0.01, |t| t.chosen.lr);
            zero_keys.push((d, b, m, jobs.len()));
            jobs.push(Job {
                spec: RunSpec::at(
                    d,
                    b,
                    m,
                    Setting {
                        lr,
                        lambda: 0.0,
                        epochs: 1,
                    },
                    0,
                ),
                test: TestSplit::Untouched,
                keep_params: true,
            });
        }
    }
    let mut outcomes = runner::run_jobs(datasets, &jobs, "evaluation")?;
    let seeds = plan.eval_seeds.len();

    let mut checkpoints = Vec::new();
    let evaluated = eval_keys
        .iter()
        .map(|&(d, b, m, start)| {
            let runs = &mut outcomes[start..start + seeds];
            let t = setting(d, b, m);
            for (job, run) in jobs[start..start + seeds].iter().zip(runs.iter_mut()) {
                if let Some(params) = run.params.take() {
                    checkpoints.push((job.spec, run.test_accuracy.unwrap_or(f64::NAN), params));
                }
            }
            let precondition: Duration = runs.iter().map(|r| r.precondition_time).sum();
            let step: Duration = runs.iter().map(|r| r.step_time).sum();
            Evaluated {
                data: d,
                batch: b,
                method: m,
                setting: t.chosen,
                test: runs
                    .iter()
                    .map(|r| {
                        r.test_accuracy
                            .expect("evaluation runs read the test split")
                    })
                    .collect(),
                diverged: runs.iter().filter(|r| r.diverged).count(),
                precondition_share: precondition.as_secs_f64() / step.as_secs_f64().max(1e-12),
                seconds_per_run: step.as_secs_f64() / seeds as f64,
            }
        })
        .collect();
    let mut stability: Vec<Stability> = Vec::new();
    for &(d, b, m, s, lr, start) in &stability_keys {
        let ok = outcomes[start..start + seeds]
            .iter()
            .filter(|o| protocol::trains(o))
            .count();
        match stability.last_mut() {
            Some(last) if last.data == d && last.batch == b && last.method == m => {
                last.per_lr.push((lr, ok, seeds))
            }
            _ => stability.push(Stability {
                data: d,
                batch: b,
                method: m,
                lambda: s.lambda,
                epochs: s.epochs,
                per_lr: vec![(lr, ok, seeds)],
            }),
        }
    }
    let lambda_zero = zero_keys
        .iter()
        .filter(|(_, _, m, _)| m.smooths())
        .map(|&(d, b, m, i)| {
            let &(_, _, _, base) = zero_keys
                .iter()
                .find(|k| k.0 == d && k.1 == b && k.2 == m.baseline())
                .expect("the plain optimizer ran too");
            let params = |i: usize| outcomes[i].params.as_deref().expect("kept");
            LambdaZero {
                data: d,
                batch: b,
                method: m,
                equal: protocol::bitwise_equal(params(i), params(base)),
            }
        })
        .collect();
    Ok(Evaluation {
        evaluated,
        stability,
        lambda_zero,
        checkpoints,
    })
}

/// Mean correlation of weight slices (paper Fig 11) per conv layer, SGD vs SGD + H1 output.
fn correlations(checkpoints: &[Checkpoint]) -> Result<Vec<Correlation>, BoxError> {
    let mut out = Vec::new();
    for (spec, _, sgd) in checkpoints.iter().filter(|c| c.0.method == Method::Sgd) {
        let Some((_, _, h1)) = checkpoints.iter().find(|c| {
            c.0.method == Method::SgdH1Output && c.0.data == spec.data && c.0.batch == spec.batch
        }) else {
            continue;
        };
        for ((name, w_sgd), (_, w_h1)) in sgd.iter().zip(h1).filter(|(p, _)| p.1.ndim() >= 3) {
            let stats = |w: &ArrayD<f32>| -> Result<[Option<f64>; 3], BoxError> {
                let c = chandir::analysis::output_vs_input(w, 2)?;
                Ok([c.output.mean_at(1), c.output.mean_at(2), c.input.mean_at(1)])
            };
            out.push(Correlation {
                data: spec.data,
                batch: spec.batch,
                layer: name.clone(),
                shape: w_sgd.shape().to_vec(),
                sgd: stats(w_sgd)?,
                h1: stats(w_h1)?,
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Output

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, then a rename).
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), BoxError> {
    chandir_cli::figure::write_atomically(path, |out| Ok(out.write_all(bytes.as_ref())?))
}

fn checkpoint_bytes(
    params: &[(String, ArrayD<f32>)],
    description: String,
) -> Result<Vec<u8>, BoxError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, p)| {
            let data = p.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), p.shape().to_vec(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // one metadata entry: safetensors writes a HashMap in random order, and the files should be
    // byte-identical from run to run
    let info = HashMap::from([("chandir_study".to_owned(), description)]);
    Ok(safetensors::serialize(views, Some(info))?)
}

/// Replaces the text between the README's markers.
fn update_readme(readme: &Path, section: &str) -> Result<(), BoxError> {
    let text = std::fs::read_to_string(readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let (Some(begin), Some(end)) = (text.find(README_BEGIN), text.find(README_END)) else {
        return Err(format!(
            "{}: no {README_BEGIN} … {README_END} markers to write the results between",
            readme.display()
        )
        .into());
    };
    let updated = format!(
        "{}{section}{}",
        &text[..begin],
        &text[end + README_END.len()..]
    );
    write_atomic(readme, updated)
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Args {
    mode: Mode,
    seeds: Option<usize>,
    out: Option<PathBuf>,
    data: PathBuf,
    snapshot: bool,
    retune: bool,
}

const USAGE: &str = "usage: reproduce [--quick | --full] [--out DIR] [--snapshot] [--retune] [--seeds N] [--data DIR]
  (no flag)   the headline comparison, SGD vs SGD + H1 output at their tuned settings, batch 8,
              10 seeds per data set; tuned settings come from results/tuning.csv when it was
              tuned with this protocol (else they are tuned first, which takes longer)
  --full      everything: 8 methods, batch 8 and 64 (MNIST: 8), each tuned; stability ladder
  --quick     smoke run on data subsets (seconds; its numbers mean nothing), to a fresh temp dir
  --out DIR   where to write (default: reproduce-out/, which git ignores)
  --snapshot  write the committed snapshot instead: results/ and the README's results section
  --retune    tune even when results/tuning.csv matches
  --seeds N   evaluation seeds per method (default 10)
  --data DIR  where the .npy files are (default: data/)";

fn parse_args() -> Result<Args, BoxError> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        mode: Mode::Default,
        seeds: None,
        out: None,
        data: manifest.join("data"),
        snapshot: false,
        retune: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--quick" => args.mode = Mode::Quick,
            "--full" => args.mode = Mode::Full,
            "--seeds" => args.seeds = Some(value("--seeds")?.parse()?),
            "--out" => args.out = Some(value("--out")?.into()),
            "--data" => args.data = value("--data")?.into(),
            "--snapshot" => args.snapshot = true,
            "--retune" => args.retune = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if args.seeds.is_some_and(|s| s < 2) {
        return Err("--seeds must be at least 2 (a confidence interval needs two)".into());
    }
    if args.snapshot && args.mode == Mode::Quick {
        return Err(
            "--snapshot with --quick: smoke-run numbers mean nothing, not snapshotting them".into(),
        );
    }
    if args.snapshot && args.out.is_some() {
        return Err("--snapshot writes results/; leave out --out".into());
    }
    Ok(args)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let load = load_average();
    let args = parse_args()?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshot_dir = manifest.join("results");
    let out_dir = match (&args.out, args.snapshot, args.mode) {
        (Some(dir), _, _) => dir.clone(),
        (None, true, _) => snapshot_dir.clone(),
        // a fresh directory per smoke run: nothing shared between users or concurrent runs
        (None, false, Mode::Quick) => tempfile::Builder::new()
            .prefix("chandir-reproduce-quick-")
            .tempdir()?
            .keep(),
        (None, false, _) => manifest.join("reproduce-out"),
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let plan = Plan::new(args.mode, args.seeds);
    if plan.mode == Mode::Quick {
        println!("smoke run (--quick): tiny data subsets and 2 epochs; its numbers mean nothing");
    }

    let mut datasets = plan
        .data_kinds()
        .into_iter()
        .map(|kind| Dataset::load(kind, &args.data))
        .collect::<Result<Vec<_>, _>>()?;
    if plan.mode == Mode::Quick {
        for d in &mut datasets {
            d.truncate(256, 128, 128);
        }
    }
    for d in &datasets {
        println!(
            "{}: {} train / {} validation / {} test",
            d.name(),
            d.train.len(),
            d.validation.len(),
            d.test.len()
        );
    }

    let stored = snapshot_dir.join("tuning.csv");
    let loaded = if plan.mode == Mode::Default && !args.retune {
        load_tuning(&stored, &plan)
    } else {
        None
    };
    let (tuned, tuning_source) = match loaded {
        Some(tuned) => (
            tuned,
            "settings read from `results/tuning.csv` (the snapshot's validation tuning with this \
             protocol; `--retune` or `--full` tunes again)"
                .to_owned(),
        ),
        None => {
            let runs: usize = plan
                .cells
                .iter()
                .flat_map(|&(_, b)| plan.methods.iter().map(move |&m| (m, b)))
                .map(|(m, b)| plan.grid.candidates(m, b).len() * plan.grid.tuning_seeds.len())
                .sum();
            println!(
                "tuning {} methods × {} configurations on validation accuracy: {runs} runs",
                plan.methods.len(),
                plan.cells.len()
            );
            (
                runner::tune(&datasets, &plan.grid, &plan.cells, &plan.methods)?,
                "run by this command".to_owned(),
            )
        }
    };
    println!(
        "evaluating at the tuned settings on {} seeds per method",
        plan.eval_seeds.len()
    );
    let evaluation = evaluate(&datasets, &plan, &tuned)?;
    let correlation = correlations(&evaluation.checkpoints)?;

    let grid = &plan.grid;
    let study = Study {
        command: args_command(&args),
        mode: plan.mode.label(),
        tuning_source,
        tuning_seeds: grid.tuning_seeds.len(),
        eval_seeds: plan.eval_seeds.len(),
        tuned,
        evaluated: evaluation.evaluated,
        stability: evaluation.stability,
        lambda_zero: evaluation.lambda_zero,
        correlation,
        wall_seconds: started.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
        load,
        grid_description: format!(
            "SGD lr {} (per batch size), Adam lr {:?}, λ {:?}, longest training (epochs) {}{}",
            grid.sgd_lr
                .iter()
                .map(|(b, l)| format!("{l:?} at batch {b}"))
                .collect::<Vec<_>>()
                .join(", "),
            grid.adam_lr,
            grid.lambda,
            grid.max_epochs
                .iter()
                .filter(|((d, b), _)| plan.cells.contains(&(*d, *b)))
                .map(|((d, b), e)| format!("{} b{b}: {e}", d.name()))
                .collect::<Vec<_>>()
                .join(", "),
            if plan.stability.is_empty() {
                String::new()
            } else {
                format!("; stability ladder lr {:?}", plan.stability_lrs)
            }
        ),
    };
    let claims = report::claims(&study);

    // write: checkpoints, CSVs, figures, markdown (each file atomically)
    if args.snapshot {
        // the snapshot holds exactly what this run writes
        for entry in std::fs::read_dir(&out_dir)? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ["svg", "csv", "md", "safetensors"].contains(&ext) {
                std::fs::remove_file(&path)?;
            }
        }
    }
    for (spec, test, params) in &evaluation.checkpoints {
        let file = format!(
            "{}_b{}_{}_seed{}.safetensors",
            spec.data.slug(),
            spec.batch,
            spec.method.slug(),
            spec.seed
        );
        let description = format!(
            "dataset={}; method={}; lambda={}; lr={}; batch={}; epochs={}; seed={}; test_accuracy={test:.4}",
            spec.data.name(),
            spec.method.name(),
            spec.lambda,
            spec.lr,
            spec.batch,
            spec.epochs,
            spec.seed
        );
        write_atomic(&out_dir.join(file), checkpoint_bytes(params, description)?)?;
    }
    write_atomic(&out_dir.join("runs.csv"), report::runs_csv(&study))?;
    write_atomic(
        &out_dir.join("tuning.csv"),
        report::tuning_csv(grid, &study.tuned),
    )?;
    if study.tuned.iter().any(|t| !t.candidates.is_empty()) {
        write_atomic(
            &out_dir.join("tuning_grid.csv"),
            report::tuning_grid_csv(grid, &study.tuned),
        )?;
    }
    let figures = plots::write_all(&out_dir, &study)?;
    write_atomic(
        &out_dir.join("results.md"),
        report::results_markdown(&study, &claims, &figures),
    )?;
    if args.snapshot {
        update_readme(
            &manifest.join("README.md"),
            &report::readme_section(&study, &claims, &figures),
        )?;
    }

    println!("\n{}", report::claims_table(&claims));
    println!("{}\n", report::results_table(&study));
    if plan.mode == Mode::Quick {
        println!("smoke run: these numbers mean nothing (tiny subsets, 2 epochs); they only show that every step runs");
    }
    println!(
        "wrote {}{} ; total wall time {:.1} s",
        out_dir.display(),
        if args.snapshot {
            " and the README's results section"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn args_command(args: &Args) -> String {
    let mut flags = vec![];
    match args.mode {
        Mode::Quick => flags.push("--quick".to_owned()),
        Mode::Full => flags.push("--full".to_owned()),
        Mode::Default => {}
    }
    if let Some(s) = args.seeds {
        flags.push(format!("--seeds {s}"));
    }
    if args.retune {
        flags.push("--retune".into());
    }
    if flags.is_empty() {
        String::new()
    } else {
        format!(" -- {}", flags.join(" "))
    }
}
