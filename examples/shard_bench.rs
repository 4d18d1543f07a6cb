//! The sharded solve on 2 and 4 thread ranks against the unsharded solve and against gathering
//! the gradient on every rank, in one run.
//!
//! ```text
//! cargo run --release --example shard_bench            # add --quick for fewer repetitions
//! ```
//!
//! Each rank holds an even flat shard of an `f32` gradient (FSDP's layout); the time is the
//! wall time of one call on all ranks together (ranks are threads, so with fewer cores than
//! ranks they share them). Gathering: each rank all-gathers the whole gradient, smooths it and
//! keeps its shard. Unsharded: one thread smooths the whole gradient.

use std::time::Instant;

use chandir::shard::{smooth_flat, Communicator, ThreadCommunicator};
use chandir::{ChannelDirected, Direction, Error, Metric, Threading};
use ndarray::{ArrayD, IxDyn};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What each rank runs: `f(comm, start, part)`.
type Call<'a> = dyn Fn(&ThreadCommunicator, usize, &mut [f32]) -> Result<(), Error> + Sync + 'a;

/// Median wall time (ms) of `reps` calls of `f(rank, comm, part)` on `size` thread ranks.
fn time_ranks(size: usize, reps: usize, g: &[f32], f: &Call) -> f64 {
    let total = g.len();
    let group = ThreadCommunicator::group(size);
    let times: Vec<Vec<f64>> = std::thread::scope(|s| {
        let workers: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(r, comm)| {
                s.spawn(move || {
                    let (a, b) = (total * r / size, total * (r + 1) / size);
                    let mut part = g[a..b].to_vec();
                    let mut times = Vec::with_capacity(reps);
                    for _ in 0..=reps {
                        comm.all_gather(&[0.0]).unwrap(); // start together
                        let t = Instant::now();
                        f(comm, a, &mut part).unwrap();
                        comm.all_gather(&[0.0]).unwrap(); // until the last rank is done
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        part.copy_from_slice(&g[a..b]);
                    }
                    times.remove(0); // warm-up
                    times
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    median(times[0].clone())
}

fn main() -> Result<(), Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 3 } else { 15 };
    let metric = Metric::default();
    let cd = ChannelDirected::new(metric, Direction::Output).with_threading(Threading::Single);
    println!(
        "f32 gradients, H1 Neumann λ = 1, median of {reps} calls, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for shape in [&[512usize, 512, 3, 3][..], &[2048, 512], &[64, 64, 3, 3]] {
        let total: usize = shape.iter().product();
        let g: Vec<f32> = (0..total)
            .map(|k| ((k * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut unsharded = Vec::new();
        for _ in 0..reps {
            let mut full = ArrayD::from_shape_vec(IxDyn(shape), g.clone()).unwrap();
            let t = Instant::now();
            cd.apply(&mut full)?;
            unsharded.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{shape:?}: unsharded (1 thread) {:.3} ms",
            median(unsharded)
        );
        for size in [2, 4] {
            let sharded = time_ranks(size, reps, &g, &|comm, start, part| {
                smooth_flat(comm, &metric, shape, start, part)
            });
            let gathered = time_ranks(size, reps, &g, &|comm, start, part| {
                let wide: Vec<f64> = part.iter().map(|&v| v as f64).collect();
                let all = comm.all_gather(&wide)?;
                let values: Vec<f32> = all.iter().map(|&v| v as f32).collect();
                let mut full = ArrayD::from_shape_vec(IxDyn(shape), values).unwrap();
                cd.apply(&mut full)?;
                part.copy_from_slice(&full.as_slice().unwrap()[start..start + part.len()]);
                Ok(())
            });
            println!(
                "  {size} thread ranks: sharded {sharded:.3} ms, gather + solve {gathered:.3} ms"
            );
        }
    }
    Ok(())
}
