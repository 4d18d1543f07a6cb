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
        self.paired(a, b, stats::paired_difference)
    }

    /// Ratio of seed standard deviations `a / b` per configuration where both were evaluated.
    pub fn std_ratios(&self, a: Method, b: Method) -> Vec<(DataKind, usize, Interval)> {
        self.paired(a, b, stats::std_ratio)
    }

    /// `compare(a's test accuracies, b's)` per configuration where both were evaluated.
    fn paired(
        &self,
        a: Method,
        b: Method,
        compare: fn(&[f64], &[f64]) -> Interval,
    ) -> Vec<(DataKind, usize, Interval)> {
        self.cells()
            .into_iter()
            .filter_map(|(d, batch)| {
                let (x, y) = (self.find(d, batch, a)?, self.find(d, batch, b)?);
                Some((d, batch, compare(&x.test, &y.test)))
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

/// How a table's lines are spelled: markdown for the write-ups, CSV for the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Markdown,
    Csv,
}

/// `head` (the header line(s) as written), then one line per row of cells.
fn table(format: Format, head: &str, rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = head.to_owned();
    for cells in rows {
        let _ = match format {
            Format::Markdown => writeln!(out, "| {} |", cells.join(" | ")),
            Format::Csv => writeln!(out, "{}", cells.join(",")),
        };
    }
    out
}

/// The cells that name a (data set, batch, method): names in markdown, slugs in CSV.
fn run_cells(format: Format, data: DataKind, batch: usize, method: Method) -> Vec<String> {
    let (data, method) = match format {
        Format::Markdown => (data.name(), method.name()),
        Format::Csv => (data.slug(), method.slug()),
    };
    vec![data.to_owned(), batch.to_string(), method.to_owned()]
}

/// [`run_cells`] followed by the setting: lr, λ, epochs.
fn setting_cells(
    format: Format,
    data: DataKind,
    batch: usize,
    method: Method,
    setting: Setting,
) -> Vec<String> {
    let mut cells = run_cells(format, data, batch, method);
    cells.extend([
        setting.lr.to_string(),
        setting.lambda.to_string(),
        setting.epochs.to_string(),
    ]);
    cells
}

pub fn claims_table(claims: &[Claim]) -> String {
    table(
        Format::Markdown,
        "| claim of the paper | verdict | evidence |\n|---|---|---|\n",
        claims.iter().map(|c| {
            vec![
                c.claim.to_owned(),
                c.verdict.label().to_owned(),
                c.evidence.clone(),
            ]
        }),
    )
}

/// Per configuration and method: test accuracy and the paired comparison with the baseline.
pub fn results_table(study: &Study) -> String {
    let row = |e: &Evaluated| {
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
        let diverged = if e.diverged > 0 {
            format!(" ({} diverged)", e.diverged)
        } else {
            String::new()
        };
        let mut cells = setting_cells(Format::Markdown, e.data, e.batch, e.method, e.setting);
        cells.extend([
            format!("{:.2} ± {:.2}{diverged}", 100.0 * mean, 100.0 * std),
            format!("{:.1}", 100.0 * min),
            format!("{:.1}", 100.0 * max),
            diff,
            ratio,
            format!("{:.1} %", 100.0 * e.precondition_share),
            format!("{:.1}", e.seconds_per_run),
        ]);
        cells
    };
    table(
        Format::Markdown,
        "| data set | batch | method | lr | λ | epochs | test acc. % mean ± std | min | max | − baseline, pp [95 % CI] | std ratio [95 % CI] | smoothing / step | s / run |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        study.evaluated.iter().map(row),
    )
}

pub fn tuning_table(study: &Study) -> String {
    table(
        Format::Markdown,
        "| data set | batch | method | lr | λ | epochs | validation acc. % | note |\n|---|---:|---|---:|---:|---:|---:|---|\n",
        study.tuned.iter().map(|t| {
            let mut cells = setting_cells(Format::Markdown, t.data, t.batch, t.method, t.chosen);
            cells.push(format!("{:.2}", 100.0 * t.validation));
            cells.push(if t.at_edge.is_empty() {
                String::new()
            } else {
                format!("at the grid's {}", t.at_edge.join(", "))
            });
            cells
        }),
    )
}

pub fn stability_table(study: &Study) -> String {
    let Some(first) = study.stability.first() else {
        return String::new();
    };
    let lrs: Vec<String> = first
        .per_lr
        .iter()
        .map(|(lr, _, _)| format!("lr {lr}"))
        .collect();
    let head = format!(
        "| data set | batch | method | λ | epochs | {} | largest lr where every seed trains |\n|---|---:|---|---:|---:|{}---:|\n",
        lrs.join(" | "),
        "---:|".repeat(lrs.len())
    );
    table(
        Format::Markdown,
        &head,
        study.stability.iter().map(|s| {
            let mut cells = run_cells(Format::Markdown, s.data, s.batch, s.method);
            cells.extend([s.lambda.to_string(), s.epochs.to_string()]);
            cells.extend(s.per_lr.iter().map(|(_, ok, n)| format!("{ok}/{n}")));
            cells.push(
                s.largest_stable_lr()
                    .map_or("none".to_owned(), |lr| lr.to_string()),
            );
            cells
        }),
    )
}

pub fn lambda_zero_table(study: &Study) -> String {
    table(
        Format::Markdown,
        "| data set | batch | method at λ = 0 | bitwise equal to the plain optimizer |\n|---|---:|---|---|\n",
        study.lambda_zero.iter().map(|c| {
            let mut cells = run_cells(Format::Markdown, c.data, c.batch, c.method);
            cells.push(if c.equal { "yes" } else { "**no**" }.to_owned());
            cells
        }),
    )
}

pub fn correlation_table(study: &Study) -> String {
    if study.correlation.is_empty() {
        return String::new();
    }
    let f = |v: &Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:+.3}"));
    table(
        Format::Markdown,
        "| data set | batch | layer | shape | SGD out d=1 | out d=2 | in d=1 | SGD + H1 out d=1 | out d=2 | in d=1 |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
        study.correlation.iter().map(|c| {
            let shape: Vec<String> = c.shape.iter().map(|s| s.to_string()).collect();
            let mut cells = vec![
                c.data.name().to_owned(),
                c.batch.to_string(),
                c.layer.clone(),
                shape.join("×"),
            ];
            cells.extend(c.sgd.iter().chain(&c.h1).map(f));
            cells
        }),
    )
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
    let head = format!(
        "# protocol: {}\ndataset,batch,method,lr,lambda,epochs,validation_accuracy,at_edge\n",
        grid.fingerprint()
    );
    table(
        Format::Csv,
        &head,
        tuned.iter().map(|t| {
            let mut cells = setting_cells(Format::Csv, t.data, t.batch, t.method, t.chosen);
            cells.extend([format!("{:.6}", t.validation), t.at_edge.join(" & ")]);
            cells
        }),
    )
}

/// `tuning_grid.csv`: every candidate of the tuning, with its validation accuracy (mean and std
/// over the tuning seeds) at each epoch the method may stop at.
pub fn tuning_grid_csv(grid: &Grid, tuned: &[Tuned]) -> String {
    let rows = tuned.iter().flat_map(|t| {
        t.candidates
            .iter()
            .flat_map(move |(c, mean, std, diverged)| {
                grid.epoch_choices(t.data, t.batch)
                    .into_iter()
                    .map(move |e| {
                        let setting = Setting {
                            lr: c.lr,
                            lambda: c.lambda,
                            epochs: e,
                        };
                        let mut cells =
                            setting_cells(Format::Csv, t.data, t.batch, t.method, setting);
                        cells.extend([
                            format!("{:.6}", mean[e - 1]),
                            format!("{:.6}", std[e - 1]),
                            diverged.to_string(),
                        ]);
                        cells
                    })
            })
    });
    table(
        Format::Csv,
        "dataset,batch,method,lr,lambda,epochs,validation_mean,validation_std,diverged_seeds\n",
        rows,
    )
}

/// `runs.csv`: the test accuracy of every evaluation run.
pub fn runs_csv(study: &Study) -> String {
    let rows = study.evaluated.iter().flat_map(|e| {
        e.test.iter().enumerate().map(move |(seed, acc)| {
            let mut cells = setting_cells(Format::Csv, e.data, e.batch, e.method, e.setting);
            cells.extend([seed.to_string(), format!("{acc:.4}")]);
            cells
        })
    });
    table(
        Format::Csv,
        "dataset,batch,method,lr,lambda,epochs,seed,test_accuracy\n",
        rows,
    )
}

/// The markers of the README's results section, which `--snapshot` rewrites.
pub const README_BEGIN: &str = "<!-- reproduce:results:begin -->";
pub const README_END: &str = "<!-- reproduce:results:end -->";

/// `before`, `table` and `after`, or nothing where the run made no such table (stability and
/// correlation are measured by some modes only).
fn optional(before: &str, table: String, after: &str) -> String {
    if table.is_empty() {
        String::new()
    } else {
        format!("{before}{table}{after}")
    }
}

/// `results.md`: everything the study found, with links to its figures.
pub fn results_markdown(study: &Study, claims: &[Claim], figures: &[String]) -> String {
    let stability = optional(
        "\n## Stability: seeds that train, by learning rate\n\n",
        stability_table(study),
        "\n",
    );
    let correlation = optional(
        "\n## Weight correlation (paper Fig 11)\n\nMean Pearson correlation of weight slices at \
         channel distance d, seed 0, along the output (out) and input (in) axis.\n\n",
        correlation_table(study),
        "\n",
    );
    let figures = figures
        .iter()
        .map(|f| format!("- [{f}]({f})"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "# Channel-directed gradients: the study\n\n\
         `cargo run --release --example reproduce{}` — mode: {}; wall time {:.0} s on {} threads \
         (load average at the start: {}).\n\n## Claims\n\n{}\n{}\n\n## Protocol\n\n{}\n\n\
         ## Test accuracy at the tuned settings\n\nOver {} seeds; differences and std ratios are \
         against the same method's plain optimizer (SGD or Adam), seed by seed.\n\n{}\n\
         ## Tuned settings (validation only)\n\n{}\n{stability}\n## λ = 0 is the plain optimizer\n\n\
         {}\n{correlation}\n## Figures\n\n{figures}\n",
        study.command,
        study.mode,
        study.wall_seconds,
        study.threads,
        study.load,
        claims_table(claims),
        verdict_rules(),
        protocol_text(study),
        study.eval_seeds,
        results_table(study),
        tuning_table(study),
        lambda_zero_table(study),
    )
}

/// The README's results section, markers included: the claims, the protocol and the main
/// tables, with the figures named.
pub fn readme_section(study: &Study, claims: &[Claim], figures: &[String]) -> String {
    // file names, not links: relative links break on crates.io, where results/ is not shipped
    let figs = |prefix: &str| {
        figures
            .iter()
            .filter(|f| f.starts_with(prefix))
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (claims, rules, protocol) = (claims_table(claims), verdict_rules(), protocol_text(study));
    let (seeds, results) = (study.eval_seeds, results_table(study));
    let stability = optional(
        &format!("\n**Stability**: of {seeds} seeds, how many train at each learning rate:\n\n"),
        stability_table(study),
        "",
    );
    let correlation = optional(
        "\n**Weight correlation** (paper Fig 11): mean Pearson correlation of weight slices at \
         channel distance d along the output (out) and input (in) axis, seed 0 of SGD and of SGD \
         + H1 output:\n\n",
        correlation_table(study),
        "",
    );
    format!(
        "{README_BEGIN}\n<!-- written by `cargo run --release --example reproduce -- {}--snapshot`; \
         do not edit by hand -->\n\n\
         This snapshot: `cargo run --release --example reproduce{}` (mode: {}), wall time {:.0} s \
         ({:.0} min) on {} threads of this 2-core machine (load average at the start: {}). All of \
         it is in `results/results.md` of the source repository (not part of the crates.io \
         package), with the tuned settings, per-run CSVs and figures.\n\n{claims}\n{rules}\n\n\
         **Protocol.** {protocol}\n\n\
         **Test accuracy at the tuned settings** ({seeds} seeds; − baseline: paired difference from \
         the plain optimizer, percentage points, 95 % CI):\n\n{results}{stability}{correlation}\n\
         Figures (SVG, in `results/`): paired differences with CIs ({}), accuracy histograms over \
         seeds, paper Fig 5 ({}), train and validation accuracy per epoch at the tuned settings \
         ({}), validation accuracy vs λ (Fig 6: {}) and vs learning rate ({}).\n{README_END}",
        if study.mode.starts_with("full") {
            "--full "
        } else {
            ""
        },
        study.command,
        study.mode,
        study.wall_seconds,
        study.wall_seconds / 60.0,
        study.threads,
        study.load,
        figs("diffs_"),
        figs("hist_"),
        figs("curves_"),
        figs("lambda_"),
        figs("lr_"),
    )
}
