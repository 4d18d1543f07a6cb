//! Running many training runs in parallel with a progress bar, and the tuning phase.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::data::{BoxError, DataKind, Dataset};
use crate::protocol::{self, Grid, Method, Outcome, RunSpec, TestSplit, Tuned};

pub struct Job {
    pub spec: RunSpec,
    pub test: TestSplit,
    pub keep_params: bool,
}

/// Relative cost of one epoch (for the progress bar's ETA): samples × a per-sample weight.
fn cost(datasets: &[Dataset], spec: &RunSpec) -> u64 {
    let data = dataset(datasets, spec.data);
    let per_sample = match spec.data {
        DataKind::Mnist1d => 2,
        DataKind::Digits => 3,
        DataKind::Mnist => 18,
    };
    (spec.epochs * data.train.len() * per_sample) as u64
}

pub fn dataset(datasets: &[Dataset], kind: DataKind) -> &Dataset {
    datasets
        .iter()
        .find(|d| d.kind == kind)
        .expect("every data set of the plan is loaded")
}

/// Runs every job (in parallel; results in job order, so nothing depends on scheduling).
pub fn run_jobs(datasets: &[Dataset], jobs: &[Job], phase: &str) -> Result<Vec<Outcome>, BoxError> {
    let total: u64 = jobs.iter().map(|j| cost(datasets, &j.spec)).sum();
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(&format!(
                "{phase:>10} {{elapsed_precise}} [{{bar:40}}] {{percent:>3}} % of {} runs, eta {{eta}}",
                jobs.len()
            ))?
            .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    };
    let done = AtomicU64::new(0);
    let next_report = AtomicU64::new(0);
    // the costliest first, so that the last runs to finish are short ones
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(datasets, &jobs[i].spec)));
    let mut results: Vec<(usize, Outcome)> = order
        .par_iter()
        .map(|&i| {
            let job = &jobs[i];
            let outcome = protocol::train(
                dataset(datasets, job.spec.data),
                &job.spec,
                job.test,
                job.keep_params,
            )?;
            let c = cost(datasets, &job.spec);
            bar.inc(c);
            let now = done.fetch_add(c, Ordering::Relaxed) + c;
            // indicatif draws nothing when stderr is not a terminal (nohup, CI): a line per ~10 %
            let step = (total / 10).max(1);
            if !terminal && (now >= next_report.load(Ordering::Relaxed) || now == total) {
                next_report.store(now / step * step + step, Ordering::Relaxed);
                let elapsed = started.elapsed().as_secs_f64();
                let eta = elapsed * (total - now) as f64 / now.max(1) as f64;
                eprintln!(
                    "{phase}: {:>3} % of {} runs, {elapsed:.0} s, eta {eta:.0} s",
                    100 * now / total.max(1),
                    jobs.len()
                );
            }
            Ok::<_, BoxError>((i, outcome))
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, o)| o).collect())
}

/// Tunes every method on every (data set, batch) on validation accuracy: the runs never read the
/// test split.
pub fn tune(
    datasets: &[Dataset],
    grid: &Grid,
    cells: &[(DataKind, usize)],
    methods: &[Method],
) -> Result<Vec<Tuned>, BoxError> {
    let keys: Vec<(DataKind, usize, Method)> = cells
        .iter()
        .flat_map(|&(d, b)| methods.iter().map(move |&m| (d, b, m)))
        .collect();
    let per_key: Vec<Vec<RunSpec>> = keys
        .iter()
        .map(|&(d, b, m)| protocol::tuning_runs(grid, d, b, m))
        .collect();
    let jobs: Vec<Job> = per_key
        .iter()
        .flatten()
        .map(|&spec| Job {
            spec,
            test: TestSplit::Untouched,
            keep_params: false,
        })
        .collect();
    let mut outcomes = run_jobs(datasets, &jobs, "tuning")?.into_iter();
    Ok(keys
        .iter()
        .zip(&per_key)
        .map(|(&(d, b, m), specs)| {
            let runs: Vec<Outcome> = outcomes.by_ref().take(specs.len()).collect();
            protocol::choose(grid, d, b, m, &runs)
        })
        .collect())
}
