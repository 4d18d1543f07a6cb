//! What the study found, as claims of the paper with a verdict each, and as markdown tables.

use std::fmt::Write as _;

use crate::data::DataKind;
use crate::protocol::{Grid, Method, Setting, Tuned, TRAINS_THRESHOLD};
use crate::stats::{self, Interval};

/// One method evaluated on fresh seeds at its tuned setting.
pub struct Evaluated {
    pub data: DataKind,
    pub batch: usize,
    pub method: Method,
    pub setting: Setting,
    /// Test accuracy per evaluation seed, in seed order (the same seeds for every method).
    pub test: Vec<f64>,
    pub diverged: usize,
    /// Time in the preconditioner over the whole training step.
    pub precondition_share: f64,
    pub seconds_per_run: f64,
}

/// The stability experiment of one method: per learning rate, how many seeds train.
pub struct Stability {
    pub data: DataKind,
    pub batch: usize,
    pub method: Method,
    pub lambda: f64,
    pub epochs: usize,
    /// (lr, seeds that train, seeds)
    pub per_lr: Vec<(f64, usize, usize)>,
}

impl Stability {
    /// The largest learning rate of the ladder at which every seed trains (and every smaller one too).
    pub fn largest_stable_lr(&self) -> Option<f64> {
        self.per_lr
            .iter()
            .take_while(|(_, ok, n)| ok == n)
            .last()
            .map(|(lr, _, _)| *lr)
    }
}

/// λ = 0 against the plain optimizer, bitwise, after one epoch.
pub struct LambdaZero {
    pub data: DataKind,
    pub batch: usize,
    pub method: Method,
    pub equal: bool,
}

/// Mean correlation of weight slices (paper Fig 11) of one layer, SGD vs SGD + H1 output.
pub struct Correlation {
    pub data: DataKind,
    pub batch: usize,
    pub layer: String,
    pub shape: Vec<usize>,
    /// [output d = 1, output d = 2, input d = 1] for SGD and for SGD + H1 output.
    pub sgd: [Option<f64>; 3],
    pub h1: [Option<f64>; 3],
}

pub struct Study {
    pub command: String,
    pub mode: &'static str,
    pub tuning_source: String,
    pub tuning_seeds: usize,
    pub eval_seeds: usize,
    pub tuned: Vec<Tuned>,
    pub evaluated: Vec<Evaluated>,
    pub stability: Vec<Stability>,
    pub lambda_zero: Vec<LambdaZero>,
    pub correlation: Vec<Correlation>,
    pub wall_seconds: f64,
    pub threads: usize,
    pub load: String,
    pub grid_description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    DoesNotHold,
    Inconclusive,
    NotRun,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Holds => "**holds**",
            Verdict::DoesNotHold => "**does not hold**",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotRun => "not run (needs `--full`)",
        }
    }
}

pub struct Claim {
    pub claim: &'static str,
    pub verdict: Verdict,
    pub evidence: String,
}

/// A difference smaller than this (in accuracy, 0.5 percentage points) is of no practical use:
/// "better" does not hold if every interval lies below it.
pub const NEGLIGIBLE: f64 = 0.005;
/// "Linear overhead" holds if smoothing takes at most this share of a training step everywhere.
pub const OVERHEAD_LIMIT: f64 = 0.05;

pub fn verdict_rules() -> String {
    format!(
        "Verdict rules, fixed before the run. *Better* (claims 1, 3, 4): per (data set, batch) the \
         paired difference of test accuracy (same seeds) with a 95 % Student-t interval; the claim \
         **holds** if the interval lies above 0 in at least half of the configurations and below 0 \
         in none, **does not hold** if it lies above 0 in none and either below 0 somewhere or \
         below +{:.1} percentage points everywhere (no useful gain), and is inconclusive otherwise; \
         claim 3 needs both of its comparisons. *Lower variance* (claim 2): ratio of seed standard \
         deviations with a 95 % paired-bootstrap interval ({} resamples); holds if the interval lies \
         below 1 in at least half of the configurations and above 1 in none, does not hold if it \
         lies below 1 in none and above 1 somewhere. *λ = 0* (claim 5): final weights after one \
         epoch bitwise equal to the plain optimizer's, for every smoothing method and data set. \
         *Overhead* (claim 6): the preconditioner's share of the measured training-step time \
         (forward, backward, smoothing, optimizer) at most {:.0} % in every configuration.",
        100.0 * NEGLIGIBLE,
        stats::RESAMPLES,
        100.0 * OVERHEAD_LIMIT
    )
}

impl Study {
    pub fn find(&self, data: DataKind, batch: usize, method: Method) -> Option<&Evaluated> {
        self.evaluated
            .iter()
            .find(|e| e.data == data && e.batch == batch && e.method == method)
    }

    /// (data, batch) in the order they were evaluated.
    pub fn cells(&self) -> Vec<(DataKind, usize)> {
        let mut cells: Vec<(DataKind, usize)> = Vec::new();
        for e in &self.evaluated {
            if !cells.contains(&(e.data, e.batch)) {
                cells.push((e.data, e.batch));
            }
        }
        cells
    }

    /// Paired difference `a − b` per configuration where both were evaluated.
    pub fn differences(&self, a: Method, b: Method) -> Vec<(DataKind, usize, Interval)> {
        self.cells()
            .into_iter()
            .filter_map(|(d, batch)| {
                let (x, y) = (self.find(d, batch, a)?, self.find(d, batch, b)?);
                Some((d, batch, stats::paired_difference(&x.test, &y.test)))
            })
            .collect()
    }

    pub fn std_ratios(&self, a: Method, b: Method) -> Vec<(DataKind, usize, Interval)> {
        self.cells()
            .into_iter()
            .filter_map(|(d, batch)| {
                let (x, y) = (self.find(d, batch, a)?, self.find(d, batch, b)?);
                Some((d, batch, stats::std_ratio(&x.test, &y.test)))
            })
            .collect()
    }
}

fn cell_label(d: DataKind, batch: usize) -> String {
    format!("{} b{batch}", d.name())
}

fn pp(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}

fn interval_pp(i: &Interval) -> String {
    format!("{} [{}, {}]", pp(i.estimate), pp(i.low), pp(i.high))
}

fn interval_ratio(i: &Interval) -> String {
    format!("{:.2} [{:.2}, {:.2}]", i.estimate, i.low, i.high)
}

/// The "better" rule on paired differences.
fn better_verdict(diffs: &[(DataKind, usize, Interval)]) -> Verdict {
    if diffs.is_empty() {
        return Verdict::NotRun;
    }
    let up = diffs.iter().filter(|(_, _, i)| i.above(0.0)).count();
    let down = diffs.iter().filter(|(_, _, i)| i.below(0.0)).count();
    let negligible = diffs.iter().all(|(_, _, i)| i.below(NEGLIGIBLE));
    if 2 * up >= diffs.len() && down == 0 {
        Verdict::Holds
    } else if up == 0 && (down > 0 || negligible) {
        Verdict::DoesNotHold
    } else {
        Verdict::Inconclusive
    }
}

fn better_evidence(diffs: &[(DataKind, usize, Interval)]) -> String {
    diffs
        .iter()
        .map(|(d, b, i)| format!("{}: {}", cell_label(*d, *b), interval_pp(i)))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn claims(study: &Study) -> Vec<Claim> {
    let mut out = Vec::new();
    let diffs = study.differences(Method::SgdH1Output, Method::Sgd);
    out.push(Claim {
        claim: "1. SGD + H1 output reaches a higher mean test accuracy than SGD",
        verdict: better_verdict(&diffs),
        evidence: format!("difference in pp [95 % CI]: {}", better_evidence(&diffs)),
    });

    let ratios = study.std_ratios(Method::SgdH1Output, Method::Sgd);
    let verdict = if ratios.is_empty() {
        Verdict::NotRun
    } else {
        let lower = ratios.iter().filter(|(_, _, i)| i.below(1.0)).count();
        let higher = ratios.iter().filter(|(_, _, i)| i.above(1.0)).count();
        if 2 * lower >= ratios.len() && higher == 0 {
            Verdict::Holds
        } else if lower == 0 && higher > 0 {
            Verdict::DoesNotHold
        } else {
            Verdict::Inconclusive
        }
    };
    out.push(Claim {
        claim: "2. SGD + H1 output varies less from seed to seed than SGD",
        verdict,
        evidence: format!(
            "std ratio H1 / SGD [95 % CI]: {}",
            ratios
                .iter()
                .map(|(d, b, i)| format!("{}: {}", cell_label(*d, *b), interval_ratio(i)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    });

    let vs_input = study.differences(Method::SgdH1Output, Method::SgdH1Input);
    let vs_flat = study.differences(Method::SgdH1Output, Method::SgdH1Flattened);
    let (a, b) = (better_verdict(&vs_input), better_verdict(&vs_flat));
    let verdict = match (a, b) {
        (Verdict::NotRun, _) | (_, Verdict::NotRun) => Verdict::NotRun,
        (Verdict::Holds, Verdict::Holds) => Verdict::Holds,
        (Verdict::DoesNotHold, _) | (_, Verdict::DoesNotHold) => Verdict::DoesNotHold,
        _ => Verdict::Inconclusive,
    };
    out.push(Claim {
        claim: "3. Smoothing along output channels beats input channels and the flattened tensor",
        verdict,
        evidence: if verdict == Verdict::NotRun {
            String::new()
        } else {
            format!(
                "output − input (pp): {}; output − flattened (pp): {}",
                better_evidence(&vs_input),
                better_evidence(&vs_flat)
            )
        },
    });

    let adam = study.differences(Method::AdamH1Output, Method::Adam);
    out.push(Claim {
        claim: "4. It helps Adam too (Adam + H1 output vs Adam)",
        verdict: better_verdict(&adam),
        evidence: if adam.is_empty() {
            String::new()
        } else {
            format!("difference in pp [95 % CI]: {}", better_evidence(&adam))
        },
    });

    let checked = study.lambda_zero.len();
    let equal = study.lambda_zero.iter().filter(|c| c.equal).count();
    out.push(Claim {
        claim: "5. λ = 0 is exactly the plain optimizer",
        verdict: if checked == 0 {
            Verdict::NotRun
        } else if equal == checked {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        evidence: format!(
            "{equal} of {checked} runs (every smoothing method at λ = 0, one epoch, each data set) \
             end with weights bitwise equal to the plain optimizer's"
        ),
    });

    let shares: Vec<&Evaluated> = study
        .evaluated
        .iter()
        .filter(|e| e.method == Method::SgdH1Output)
        .collect();
    let worst = shares
        .iter()
        .map(|e| e.precondition_share)
        .fold(0.0, f64::max);
    out.push(Claim {
        claim: "6. The overhead is small (linear-time smoothing), as a share of step time",
        verdict: if shares.is_empty() {
            Verdict::NotRun
        } else if worst <= OVERHEAD_LIMIT {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        evidence: format!(
            "H1 output smoothing / training step: {}",
            shares
                .iter()
                .map(|e| format!(
                    "{}: {:.1} %",
                    cell_label(e.data, e.batch),
                    100.0 * e.precondition_share
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    });
    out
}

pub fn claims_table(claims: &[Claim]) -> String {
    let mut out = String::from("| claim of the paper | verdict | evidence |\n|---|---|---|\n");
    for c in claims {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            c.claim,
            c.verdict.label(),
            c.evidence
        );
    }
    out
}

/// Per configuration and method: test accuracy and the paired comparison with the baseline.
pub fn results_table(study: &Study) -> String {
    let mut out = String::from(
        "| data set | batch | method | lr | λ | epochs | test acc. % mean ± std | min | max | − baseline, pp [95 % CI] | std ratio [95 % CI] | smoothing / step | s / run |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for e in &study.evaluated {
        let (mean, std) = stats::mean_std(&e.test);
        let min = e.test.iter().copied().fold(f64::INFINITY, f64::min);
        let max = e.test.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (diff, ratio) = match study.find(e.data, e.batch, e.method.baseline()) {
            Some(base) if e.method != e.method.baseline() => (
                interval_pp(&stats::paired_difference(&e.test, &base.test)),
                interval_ratio(&stats::std_ratio(&e.test, &base.test)),
            ),
            _ => ("(baseline)".into(), "".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} ± {:.2}{} | {:.1} | {:.1} | {diff} | {ratio} | {:.1} % | {:.1} |",
            e.data.name(),
            e.batch,
            e.method.name(),
            e.setting.lr,
            e.setting.lambda,
            e.setting.epochs,
            100.0 * mean,
            100.0 * std,
            if e.diverged > 0 {
                format!(" ({} diverged)", e.diverged)
            } else {
                String::new()
            },
            100.0 * min,
            100.0 * max,
            100.0 * e.precondition_share,
            e.seconds_per_run,
        );
    }
    out
}

pub fn tuning_table(study: &Study) -> String {
    let mut out = String::from(
        "| data set | batch | method | lr | λ | epochs | validation acc. % | note |\n|---|---:|---|---:|---:|---:|---:|---|\n",
    );
    for t in &study.tuned {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            t.data.name(),
            t.batch,
            t.method.name(),
            t.chosen.lr,
            t.chosen.lambda,
            t.chosen.epochs,
            100.0 * t.validation,
            if t.at_edge.is_empty() {
                String::new()
            } else {
                format!("at the grid's {}", t.at_edge.join(", "))
            }
        );
    }
    out
}

pub fn stability_table(study: &Study) -> String {
    if study.stability.is_empty() {
        return String::new();
    }
    let lrs: Vec<f64> = study.stability[0]
        .per_lr
        .iter()
        .map(|(lr, _, _)| *lr)
        .collect();
    let mut out = format!(
        "| data set | batch | method | λ | epochs | {} | largest lr where every seed trains |\n|---|---:|---|---:|---:|{}---:|\n",
        lrs.iter()
            .map(|lr| format!("lr {lr}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(lrs.len())
    );
    for s in &study.stability {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.data.name(),
            s.batch,
            s.method.name(),
            s.lambda,
            s.epochs,
            s.per_lr
                .iter()
                .map(|(_, ok, n)| format!("{ok}/{n}"))
                .collect::<Vec<_>>()
                .join(" | "),
            s.largest_stable_lr()
                .map_or("none".to_owned(), |lr| lr.to_string())
        );
    }
    out
}

pub fn lambda_zero_table(study: &Study) -> String {
    let mut out =
        String::from("| data set | batch | method at λ = 0 | bitwise equal to the plain optimizer |\n|---|---:|---|---|\n");
    for c in &study.lambda_zero {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.data.name(),
            c.batch,
            c.method.name(),
            if c.equal { "yes" } else { "**no**" }
        );
    }
    out
}

pub fn correlation_table(study: &Study) -> String {
    if study.correlation.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "| data set | batch | layer | shape | SGD out d=1 | out d=2 | in d=1 | SGD + H1 out d=1 | out d=2 | in d=1 |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let f = |v: &Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:+.3}"));
    for c in &study.correlation {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.data.name(),
            c.batch,
            c.layer,
            c.shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("×"),
            f(&c.sgd[0]),
            f(&c.sgd[1]),
            f(&c.sgd[2]),
            f(&c.h1[0]),
            f(&c.h1[1]),
            f(&c.h1[2]),
        );
    }
    out
}

pub fn protocol_text(study: &Study) -> String {
    format!(
        "Data: MNIST-1D (4000 train / 1000 test, a 1-D CNN of three 32-channel conv layers), UCI \
         digits (1347 / 450, two 3×3 conv layers of 16 and 32 channels), MNIST (a 5000-image \
         subset, 4000 / 1000, 3×3 conv 16 + 2×2 max pool, 3×3 stride-2 conv 32, linear). 20 % of \
         each training set is held out for validation (fixed seed); inputs are standardized with \
         the training part's mean and std. Every choice is made on validation accuracy only: each \
         method gets its own learning rate (and λ for the smoothing methods) from the grid, and \
         its number of epochs among the quarters of the longest training, by the mean validation \
         accuracy over {} tuning seeds. Then {} fresh seeds per method train at the chosen setting \
         and the test split is read once, after the last epoch. The same seed gives every method \
         the same initial weights and batch order, so methods are compared seed by seed. SGD: \
         momentum 0.9, weight decay 5e-4; Adam: no weight decay. Smoothing acts on the conv \
         weights (rank ≥ 3) only. A run \"trains\" if its loss stays finite and its final \
         validation accuracy is at least {:.0} %. Grid: {}. Tuning: {}.",
        study.tuning_seeds,
        study.eval_seeds,
        100.0 * TRAINS_THRESHOLD,
        study.grid_description,
        study.tuning_source,
    )
}

/// `tuning.csv`: the chosen settings, headed by the protocol they were tuned with.
pub fn tuning_csv(grid: &Grid, tuned: &[Tuned]) -> String {
    let mut out = format!(
        "# protocol: {}\ndataset,batch,method,lr,lambda,epochs,validation_accuracy,at_edge\n",
        grid.fingerprint()
    );
    for t in tuned {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.6},{}",
            t.data.slug(),
            t.batch,
            t.method.slug(),
            t.chosen.lr,
            t.chosen.lambda,
            t.chosen.epochs,
            t.validation,
            t.at_edge.join(" & ")
        );
    }
    out
}

pub fn runs_csv(study: &Study) -> String {
    let mut out = String::from("dataset,batch,method,lr,lambda,epochs,seed,test_accuracy\n");
    for e in &study.evaluated {
        for (seed, acc) in e.test.iter().enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{seed},{acc:.4}",
                e.data.slug(),
                e.batch,
                e.method.slug(),
                e.setting.lr,
                e.setting.lambda,
                e.setting.epochs,
            );
        }
    }
    out
}
