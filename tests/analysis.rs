//! `chandir::analysis` against a plain two-pass Pearson reference and dense solves written here, and
//! on tensors built to have a known correlation structure.

use chandir::analysis::{axis_correlation, impulse_response, output_vs_input, slice_moments};
use chandir::{Boundary, Error, Metric};
use ndarray::{s, Array, Array2, ArrayD, Axis};

#[path = "../cli/tests/sample/mod.rs"]
mod sample;
use sample::{pearson, Normal};

/// Slice `index` of `w` along `axis`, flattened in logical order.
fn slice_values(w: &ArrayD<f64>, axis: usize, index: usize) -> Vec<f64> {
    w.index_axis(Axis(axis), index).iter().copied().collect()
}

/// Reference mean correlation at distance `d` (pairs whose slices are not constant).
fn reference_mean_at(w: &ArrayD<f64>, axis: usize, d: usize) -> f64 {
    let n = w.len_of(Axis(axis));
    let correlations: Vec<f64> = (0..n - d)
        .map(|i| pearson(&slice_values(w, axis, i), &slice_values(w, axis, i + d)))
        .collect();
    correlations.iter().sum::<f64>() / correlations.len() as f64
}

#[test]
fn random_tensors_match_the_two_pass_reference_on_every_axis() {
    let mut rng = Normal(1);
    for shape in [
        vec![7, 5],
        vec![6, 4, 3],
        vec![5, 3, 3, 2],
        vec![4, 2, 3, 2, 2],
    ] {
        // Correlated slices, so that the reference is compared away from 0 too.
        let mut w = rng.tensor(&shape);
        for i in 1..shape[0] {
            let previous = w.index_axis(Axis(0), i - 1).to_owned();
            w.index_axis_mut(Axis(0), i).scaled_add(0.7, &previous);
        }
        for axis in 0..shape.len() {
            let n = shape[axis];
            let corr = axis_correlation(&w, axis, n).unwrap();
            assert_eq!(corr.by_distance.len(), n - 1);
            assert_eq!(corr.slice_len, w.len() / n);
            for d in 1..n {
                let expected = reference_mean_at(&w, axis, d);
                let got = corr.mean_at(d).unwrap();
                assert!(
                    (got - expected).abs() < 1e-12,
                    "{shape:?} axis {axis} d {d}: {got} vs {expected}"
                );
                assert_eq!(corr.at(d).unwrap().pairs, n - d);
            }
            for pair in &corr.pairs {
                let expected = pearson(
                    &slice_values(&w, axis, pair.first),
                    &slice_values(&w, axis, pair.second),
                );
                assert!((pair.correlation - expected).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn f32_and_strided_views_match_the_reference() {
    let mut rng = Normal(2);
    let w = rng.tensor(&[9, 6, 4]);
    // A reversed, sub-sampled, permuted view: negative and non-unit strides.
    let view = w.slice(s![..;-2, 1.., ..]).permuted_axes([2, 0, 1]);
    let owned = view.to_owned().into_dyn();
    let as_f32 = owned.mapv(|v| v as f32);
    let as_f32_rounded = as_f32.mapv(f64::from);
    for axis in 0..3 {
        let n = owned.len_of(Axis(axis));
        let from_view = axis_correlation(&view, axis, n).unwrap();
        let from_f32 = axis_correlation(&as_f32, axis, n).unwrap();
        for d in 1..n {
            let expected = reference_mean_at(&owned, axis, d);
            assert!((from_view.mean_at(d).unwrap() - expected).abs() < 1e-12);
            // The f32 tensor is analysed exactly: compare with the reference on its own values.
            let expected_f32 = reference_mean_at(&as_f32_rounded, axis, d);
            assert!((from_f32.mean_at(d).unwrap() - expected_f32).abs() < 1e-12);
        }
    }
}

#[test]
fn exact_linear_functions_of_one_slice_have_correlation_plus_or_minus_one() {
    let mut rng = Normal(3);
    let base = rng.tensor(&[5, 3, 3]);
    let scales = [2.0, -0.5, 3.0, 1e-3, -7.0, 0.25];
    let w = Array::from_shape_fn((scales.len(), 5, 3, 3), |(o, i, h, k)| {
        scales[o] * base[[i, h, k]] + o as f64 * 10.0
    });
    let corr = axis_correlation(&w, 0, scales.len()).unwrap();
    assert_eq!(corr.pairs.len(), scales.len() * (scales.len() - 1) / 2);
    for pair in &corr.pairs {
        let sign = (scales[pair.first] * scales[pair.second]).signum();
        assert!((pair.correlation - sign).abs() < 1e-12, "{pair:?}");
    }
    for entry in &corr.by_distance {
        assert!((entry.mean_abs.unwrap() - 1.0).abs() < 1e-12);
    }
}

/// `w[o] = a·w[o−1] + √(1−a²)·noise` with unit-variance noise independent per element: a stationary
/// AR(1) chain along axis 0, so the slices at distance `d` have correlation `a^d`.
fn autoregressive(rng: &mut Normal, a: f64, shape: &[usize]) -> ArrayD<f64> {
    let mut w = rng.tensor(shape);
    let innovation = (1.0 - a * a).sqrt();
    for o in 1..shape[0] {
        let previous = w.index_axis(Axis(0), o - 1).to_owned();
        let mut current = w.index_axis_mut(Axis(0), o);
        current *= innovation;
        current.scaled_add(a, &previous);
    }
    w
}

#[test]
fn autoregressive_output_channels_are_correlated_as_a_to_the_d_and_input_channels_are_not() {
    let a: f64 = 0.8;
    let shape = [12, 32, 8, 8];
    let w = autoregressive(&mut Normal(4), a, &shape);
    let layer = output_vs_input(&w, 4).unwrap();

    // Output: each pair's sample correlation over m iid bivariate normal points has standard
    // deviation ≈ (1 − ρ²)/√m, and a mean of pairs has at most the largest of its parts; 4σ.
    let m = (w.len() / shape[0]) as f64;
    for d in [1, 2, 4] {
        let rho = a.powi(d as i32);
        let tolerance = 4.0 * (1.0 - rho * rho) / m.sqrt();
        let got = layer.output.mean_at(d).unwrap();
        assert!(
            (got - rho).abs() < tolerance,
            "output d {d}: {got} vs {rho} ± {tolerance}"
        );
    }

    // Input: slices are independent, but each slice's elements are correlated along o, which
    // inflates the null variance of r by Σ_k ρ_k² ≤ (1 + a²)/(1 − a²); null correlations of pairs
    // that share a slice are uncorrelated, so the mean over P pairs shrinks by √P; 5σ.
    let m = (w.len() / shape[1]) as f64;
    let inflation = (1.0 + a * a) / (1.0 - a * a);
    for d in [1, 2, 4] {
        let pairs = (shape[1] - d) as f64;
        let tolerance = 5.0 * (inflation / m / pairs).sqrt();
        let got = layer.input.mean_at(d).unwrap();
        assert!(
            got.abs() < tolerance,
            "input d {d}: {got} not within ±{tolerance} of 0"
        );
    }
}

#[test]
fn independent_slices_are_uncorrelated_within_sampling_error() {
    let shape = [40, 300];
    let w = Normal(5).tensor(&shape);
    let corr = axis_correlation(&w, 0, 39).unwrap();
    // Null r over m iid points has σ ≈ 1/√m; a mean over P pairs (uncorrelated under the null)
    // has σ ≈ 1/√(m·P). 5σ bounds; the worst single pair out of 780 gets 5σ of the single pair.
    let m = shape[1] as f64;
    for entry in &corr.by_distance {
        let tolerance = 5.0 / (m * entry.pairs as f64).sqrt();
        assert!(entry.mean.unwrap().abs() < tolerance, "{entry:?}");
    }
    let worst = corr
        .pairs
        .iter()
        .map(|p| p.correlation.abs())
        .fold(0.0, f64::max);
    assert!(worst < 5.0 / m.sqrt(), "largest |r| {worst}");
}

#[test]
fn constant_slices_are_excluded_counted_and_never_make_nan() {
    let mut rng = Normal(6);
    let mut w = rng.tensor(&[8, 3, 2, 2]);
    let constant = [2, 5];
    for &c in &constant {
        w.index_axis_mut(Axis(0), c).fill(0.1); // 0.1 has no exact binary mean: a rounding trap
    }
    let corr = axis_correlation(&w, 0, 7).unwrap();
    assert_eq!(corr.constant_slices, constant);
    for entry in &corr.by_distance {
        let d = entry.distance;
        let involving = (0..8 - d)
            .filter(|i| constant.contains(i) || constant.contains(&(i + d)))
            .count();
        assert_eq!(entry.excluded_pairs, involving, "d {d}");
        assert_eq!(entry.pairs, 8 - d - involving, "d {d}");
        let valid: Vec<f64> = (0..8 - d)
            .filter(|i| !constant.contains(i) && !constant.contains(&(i + d)))
            .map(|i| pearson(&slice_values(&w, 0, i), &slice_values(&w, 0, i + d)))
            .collect();
        match entry.mean {
            Some(mean) => {
                assert!((mean - valid.iter().sum::<f64>() / valid.len() as f64).abs() < 1e-12)
            }
            None => assert!(valid.is_empty(), "d {d}"),
        }
    }
    assert!(corr.pairs.iter().all(|p| p.correlation.is_finite()));
    // d = 3 is the distance between the two constant slices: (2, 5) is excluded once, not twice.
    assert_eq!(corr.at(3).unwrap().excluded_pairs, 1);
}

#[test]
fn a_bad_axis_is_refused() {
    let w = Array2::<f32>::zeros((3, 4));
    assert_eq!(
        axis_correlation(&w, 2, 1).unwrap_err(),
        Error::AxisOutOfRange { axis: 2, ndim: 2 }
    );
    assert_eq!(
        slice_moments(&w, 5).unwrap_err(),
        Error::AxisOutOfRange { axis: 5, ndim: 2 }
    );
    let vector = Array::<f64, _>::zeros(4);
    assert_eq!(
        output_vs_input(&vector, 1).unwrap_err(),
        Error::AxisOutOfRange { axis: 1, ndim: 1 }
    );
}

#[test]
fn slice_moments_match_a_two_pass_reference() {
    let mut rng = Normal(7);
    let w = rng.tensor(&[6, 4, 3, 3]).mapv(|v| 3.0 + 0.5 * v);
    for axis in 0..4 {
        let moments = slice_moments(&w.view(), axis).unwrap();
        assert_eq!(moments.len(), w.len_of(Axis(axis)));
        for (index, got) in moments.iter().enumerate() {
            let values = slice_values(&w, axis, index);
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!((got.mean - mean).abs() < 1e-12 && (got.std - std).abs() < 1e-12);
        }
    }
}

/// The operator `A` written out from the definitions in `chandir::metric`.
fn dense_operator(metric: Metric, n: usize) -> Array2<f64> {
    let mut a = Array2::<f64>::eye(n);
    match metric {
        Metric::H0 => {}
        Metric::ReweightedH0 { lambda } => {
            a *= 1.0 + lambda;
            a -= lambda / n as f64;
        }
        Metric::SobolevH1 { lambda, boundary } => {
            let mut differences: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
            if boundary == Boundary::Periodic && n >= 2 {
                differences.push((n - 1, 0));
            }
            for (i, j) in differences {
                a[[i, i]] += lambda;
                a[[j, j]] += lambda;
                a[[i, j]] -= lambda;
                a[[j, i]] -= lambda;
            }
            if boundary == Boundary::Dirichlet {
                a[[0, 0]] += lambda;
                a[[n - 1, n - 1]] += lambda;
            }
        }
    }
    a
}

/// Column `c` of `A⁻¹` by Gaussian elimination (no pivoting needed: `A` is positive definite).
fn dense_inverse_column(mut a: Array2<f64>, c: usize) -> Vec<f64> {
    let n = a.nrows();
    let mut x = vec![0.0; n];
    x[c] = 1.0;
    for k in 0..n {
        for i in k + 1..n {
            let factor = a[[i, k]] / a[[k, k]];
            for j in k..n {
                a[[i, j]] -= factor * a[[k, j]];
            }
            x[i] -= factor * x[k];
        }
    }
    for k in (0..n).rev() {
        let tail: f64 = (k + 1..n).map(|j| a[[k, j]] * x[j]).sum();
        x[k] = (x[k] - tail) / a[[k, k]];
    }
    x
}

fn all_metrics(lambda: f64) -> Vec<Metric> {
    let mut metrics = vec![Metric::H0, Metric::ReweightedH0 { lambda }];
    for boundary in [Boundary::Neumann, Boundary::Periodic, Boundary::Dirichlet] {
        metrics.push(Metric::SobolevH1 { lambda, boundary });
    }
    metrics
}

#[test]
fn impulse_responses_are_the_columns_of_the_dense_inverse() {
    for n in [1, 2, 3, 8, 33] {
        for lambda in [0.0, 0.3, 1.0, 25.0] {
            for metric in all_metrics(lambda) {
                for channel in [0, n / 2, n - 1] {
                    let got = impulse_response(metric, n, channel).unwrap();
                    let expected = dense_inverse_column(dense_operator(metric, n), channel);
                    let error = got
                        .iter()
                        .zip(&expected)
                        .fold(0.0_f64, |e, (g, x)| e.max((g - x).abs()));
                    assert!(error < 1e-12, "{metric:?} n {n} c {channel}: error {error}");
                }
            }
        }
    }
}

#[test]
fn mean_preserving_metrics_have_impulse_responses_that_sum_to_one() {
    for n in [2, 5, 64] {
        for metric in all_metrics(1.0) {
            let response = impulse_response(metric, n, n / 3).unwrap();
            let sum = response.sum();
            match metric {
                Metric::SobolevH1 {
                    boundary: Boundary::Dirichlet,
                    ..
                } => {
                    // 1ᵀA⁻¹e_c = (A⁻¹1)_c and A1 = 1 + λ(e₀ + e_{n−1}) ≥ 1: mass leaks out at the ends.
                    assert!(sum < 1.0, "Dirichlet shrinks the mean: {sum}")
                }
                _ => assert!((sum - 1.0).abs() < 1e-12, "{metric:?} n {n}: sum {sum}"),
            }
        }
    }
}

#[test]
fn impulse_response_refuses_a_missing_channel_and_a_bad_lambda() {
    assert!(matches!(
        impulse_response(Metric::H0, 4, 4),
        Err(Error::InvalidHyperparameter {
            name: "channel",
            ..
        })
    ));
    assert!(matches!(
        impulse_response(Metric::ReweightedH0 { lambda: -1.0 }, 4, 0),
        Err(Error::InvalidLambda { .. })
    ));
}
