//! The reference cases of `tests/reference/manifest.json`: where they are and what each one means.

use std::path::PathBuf;

use chandir::{Boundary, ChannelDirected, Direction, Metric};
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
