//! The metrics that smooth, at one λ: shared by the tests and examples/shard_mpi.rs (which
//! includes this file with `#[path]`).

use chandir::{Boundary, Metric};

/// H1 with each boundary (Neumann, periodic, Dirichlet), then re-weighted H0, all at `lambda`.
pub fn smoothing_metrics(lambda: f64) -> [Metric; 4] {
    let h1 = |boundary| Metric::SobolevH1 { lambda, boundary };
    [
        h1(Boundary::Neumann),
        h1(Boundary::Periodic),
        h1(Boundary::Dirichlet),
        Metric::ReweightedH0 { lambda },
    ]
}
