//! Every case of `tests/reference/manifest.json` (outputs of independent dense float64 solves).

mod common;

use common::reference::{arrays, cases, parse_case, shape};

use chandir::{Boundary, Direction, Metric};

#[test]
fn every_reference_case_matches() {
    let cases = cases();
    assert!(
        cases.len() >= 200,
        "the manifest lists {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let cd = parse_case(case);
        let lambda = cd.metric.lambda();
        let shape = shape(case);
        let (error, scale, tolerance) = match case["dtype"].as_str().unwrap() {
            "float64" => {
                let (mut grad, expected) = arrays::<f64>(name);
                assert_eq!(grad.shape(), &shape[..]);
                cd.apply(&mut grad).unwrap();
                let scale = common::max_abs(grad.iter().copied());
                (
                    common::max_abs_diff(&grad, &expected),
                    scale,
                    1e-12 + 1e-15 * (1.0 + 4.0 * lambda),
                )
            }
            "float32" => {
                let (mut grad, expected) = arrays::<f32>(name);
                assert_eq!(grad.shape(), &shape[..]);
                let scale = common::max_abs(grad.iter().map(|&v| v as f64));
                cd.apply(&mut grad).unwrap();
                let error = grad
                    .iter()
                    .zip(&expected)
                    .fold(0.0_f64, |m, (&x, &e)| m.max((x as f64 - e as f64).abs()));
                (error, scale, 1e-5)
            }
            other => panic!("unknown dtype {other}"),
        };
        if error > tolerance * scale {
            failures.push(format!(
                "{name} ({case}): error {error:e} > {:e}",
                tolerance * scale
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn dense_reference_agrees_with_the_manifest() {
    // The test helper is itself checked against the independent outputs, so the property tests that
    // compare against it stand on firm ground.
    for case in cases().iter().filter(|c| c["dtype"] == "float64") {
        let name = case["name"].as_str().unwrap();
        let cd = parse_case(case);
        let (grad, expected) = arrays::<f64>(name);
        if cd.direction == Direction::Flattened && grad.len() > 600 {
            continue; // dense 1008² and 9216² operators are slow to factor; the smaller flattened cases cover the helper
        }
        let ours = common::reference_apply(&grad, &cd.metric, cd.direction);
        let scale = common::max_abs(grad.iter().copied());
        let err = common::max_abs_diff(&ours, &expected);
        assert!(
            err <= 1e-9 * scale.max(1.0),
            "{name}: dense helper off by {err:e}"
        );
    }
}

#[test]
fn f32_cases_cover_both_sides_of_the_f32_arithmetic_rule() {
    // f32 tensors run in f32 arithmetic only where the error bound allows it: the f32 cases above
    // must exercise both kernels.
    let (mut f32_arithmetic, mut f64_arithmetic) = (0, 0);
    for case in cases().iter().filter(|c| c["dtype"] == "float32") {
        let cd = parse_case(case);
        let shape = shape(case);
        let n = match cd.direction.axis(shape.len()).unwrap() {
            Some(axis) => shape[axis],
            None => continue,
        };
        if let Metric::SobolevH1 { lambda, boundary } = cd.metric {
            if lambda > 0.0 && (n > 1 || boundary == Boundary::Dirichlet) {
                if chandir::solve::Sweep::sobolev(n, lambda, boundary).uses_f32_arithmetic() {
                    f32_arithmetic += 1;
                } else {
                    f64_arithmetic += 1;
                }
            }
        }
    }
    assert!(
        f32_arithmetic >= 10 && f64_arithmetic >= 10,
        "{f32_arithmetic} cases in f32 arithmetic, {f64_arithmetic} in f64"
    );
}
