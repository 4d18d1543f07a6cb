//! The reference cases of `tests/reference/manifest.json`: where they are and what each one means.

use std::path::PathBuf;

use chandir::{Boundary, ChannelDirected, Direction, Metric};
use ndarray::ArrayD;
use ndarray_npy::{read_npy, ReadableElement};
use serde_json::Value;

/// `tests/reference` of the working directory when there is one (a carried binary run from a
/// copy of the repository, see gpu/README.md), of the crate otherwise.
pub fn reference_dir() -> PathBuf {
    let here = PathBuf::from("tests/reference");
    if here.join("manifest.json").exists() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
    }
}

/// Every case of the manifest.
pub fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(reference_dir().join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["cases"].as_array().unwrap().clone()
}

/// The shape a manifest case declares.
pub fn shape(case: &Value) -> Vec<usize> {
    case["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

/// The gradient and the expected result of case `name`, in the case's dtype `A`.
pub fn arrays<A: ReadableElement>(name: &str) -> (ArrayD<A>, ArrayD<A>) {
    let read = |what: &str| read_npy(reference_dir().join(format!("{name}_{what}.npy"))).unwrap();
    (read("grad"), read("expected"))
}

/// The preconditioner a manifest case describes.
pub fn parse_case(case: &Value) -> ChannelDirected {
    let lambda = case["lambda"].as_f64();
    let metric = match case["metric"].as_str().unwrap() {
        "h0" => Metric::H0,
        "reweighted_h0" => Metric::ReweightedH0 {
            lambda: lambda.unwrap(),
        },
        "sobolev_h1" => Metric::SobolevH1 {
            lambda: lambda.unwrap(),
            boundary: match case["boundary"].as_str().unwrap() {
                "neumann" => Boundary::Neumann,
                "periodic" => Boundary::Periodic,
                "dirichlet" => Boundary::Dirichlet,
                other => panic!("unknown boundary {other}"),
            },
        },
        other => panic!("unknown metric {other}"),
    };
    let direction = match case["direction"].as_str().unwrap() {
        "output" => Direction::Output,
        "input" => Direction::Input,
        "flattened" => Direction::Flattened,
        other => panic!("unknown direction {other}"),
    };
    ChannelDirected::new(metric, direction)
}
