//! One f32 call on one thread — H1 Neumann output smoothing (`h1`), the same along the input axis
//! (`input`), or a plain copy (`copy`) — repeated `reps` times, for instruction and cache counts:
//!
//! ```sh
//! cargo build --release --example one_call
//! valgrind --tool=cachegrind --cache-sim=yes target/release/examples/one_call h1 2048,512,1,1 3
//! ```
//!
//! Counts per call: (count at 3 reps − count at 1 rep) / 2. `BENCHMARKS.md` quotes them.
#[path = "../benches/support/mod.rs"]
mod support;

use chandir::{ChannelDirected, Direction, Metric, Threading};
use ndarray::ArrayD;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: one_call h1|input|copy SHAPE (e.g. 2048,512,1,1) [REPS]";
    let (Some(what), Some(shape)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let shape: Vec<usize> = shape.split(',').map(|v| v.parse().expect(usage)).collect();
    let reps: usize = args.get(3).map_or(1, |r| r.parse().expect(usage));
    let grad: ArrayD<f32> = support::gradient(&shape, 7);
    let mut work = grad.clone();
    let direction = match what.as_str() {
        "h1" | "copy" => Direction::Output,
        "input" => Direction::Input,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let mut cd = ChannelDirected::new(Metric::default(), direction);
    cd.threading = Threading::Single;
    for _ in 0..reps {
        match what.as_str() {
            "copy" => support::copy_into(&grad, &mut work),
            _ => cd.apply(&mut work).unwrap(),
        }
    }
    // Keeps the work observable.
    println!("{}", work.iter().take(1).sum::<f32>());
}
