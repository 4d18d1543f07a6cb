//! Paired comparisons over seeds: mean difference with a Student-t confidence interval, and the
//! ratio of seed standard deviations with a paired bootstrap interval.

// Shared by the example and tests/study_protocol.rs, each of which uses a different subset.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;
/// Bootstrap resamples (fixed seed, so the intervals are reproducible).
pub const RESAMPLES: usize = 10_000;
const BOOTSTRAP_SEED: u64 = 7;

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

/// An estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// The interval lies entirely above `x`.
    pub fn above(&self, x: f64) -> bool {
        self.low > x
    }

    /// The interval lies entirely below `x`.
    pub fn below(&self, x: f64) -> bool {
        self.high < x
    }
}

/// The two-sided Student-t quantile for `LEVEL` with `df` degrees of freedom.
pub fn t_quantile(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64)
        .expect("df ≥ 1")
        .inverse_cdf(0.5 + LEVEL / 2.0)
}

/// Mean of `a[i] − b[i]` (paired by seed) with a Student-t interval; NaN bounds for one pair.
pub fn paired_difference(a: &[f64], b: &[f64]) -> Interval {
    assert_eq!(a.len(), b.len(), "paired samples have the same seeds");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let (mean, std) = mean_std(&d);
    if d.len() < 2 {
        return Interval {
            estimate: mean,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let half = t_quantile(d.len() - 1) * std / (d.len() as f64).sqrt();
    Interval {
        estimate: mean,
        low: mean - half,
        high: mean + half,
    }
}

/// Percentile interval of `statistic` over bootstrap resamples of the seeds (the same resampled
/// seeds for `a` and `b`, which keeps the pairing).
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    statistic: impl Fn(&[f64], &[f64]) -> f64,
) -> Interval {
    assert_eq!(a.len(), b.len(), "paired samples have the same seeds");
    let n = a.len();
    let estimate = statistic(a, b);
    if n < 2 {
        return Interval {
            estimate,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(BOOTSTRAP_SEED);
    let (mut ra, mut rb) = (vec![0.0; n], vec![0.0; n]);
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for i in 0..n {
                let j = rng.random_range(0..n);
                ra[i] = a[j];
                rb[i] = b[j];
            }
            statistic(&ra, &rb)
        })
        .collect();
    // a resample may be degenerate (all seeds equal: 0/0); such resamples say nothing
    stats.retain(|s| !s.is_nan());
    stats.sort_by(f64::total_cmp);
    if stats.is_empty() {
        return Interval {
            estimate,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let at = |q: f64| stats[((q * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    Interval {
        estimate,
        low: at((1.0 - LEVEL) / 2.0),
        high: at((1.0 + LEVEL) / 2.0),
    }
}

/// std(a) / std(b) over seeds with a paired bootstrap interval.
pub fn std_ratio(a: &[f64], b: &[f64]) -> Interval {
    paired_bootstrap(a, b, |a, b| {
        let (sa, sb) = (mean_std(a).1, mean_std(b).1);
        if sb == 0.0 {
            if sa == 0.0 {
                f64::NAN
            } else {
                f64::INFINITY
            }
        } else {
            sa / sb
        }
    })
}
