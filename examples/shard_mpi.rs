//! The sharded solve across MPI processes, checked against the unsharded result on every rank.
//!
//! ```text
//! cargo build --release --features mpi --example shard_mpi
//! mpirun -n 3 target/release/examples/shard_mpi           # checks; exits non-zero on a failure
//! mpirun -n 4 target/release/examples/shard_mpi --bench   # sharded vs gathered vs unsharded
//! ```
//!
//! Every rank builds the same gradients from a fixed seed, so each can compute the unsharded
//! result itself and compare its own part with it.

use std::process::ExitCode;
use std::time::Instant;

use chandir::shard::{smooth_flat, smooth_rows, Communicator, MpiCommunicator};
use chandir::{Boundary, ChannelDirected, Direction, Error, Metric, Threading};
use mpi::topology::Communicator as _;
use ndarray::{ArrayD, Axis, IxDyn, Slice};

/// xorshift64*: the same stream on every rank.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[path = "../tests/common/metrics.rs"]
mod common_metrics;

/// Every metric at `lambda`: the smoothing ones and H0.
fn metrics(lambda: f64) -> impl Iterator<Item = Metric> {
    common_metrics::smoothing_metrics(lambda)
        .into_iter()
        .chain([Metric::H0])
}

/// Cut points `0 = c₀ ≤ … ≤ c_size = total`, uneven, some shards empty.
fn cuts(stream: &mut Stream, size: usize, total: usize) -> Vec<usize> {
    let mut c: Vec<usize> = (0..size - 1).map(|_| stream.below(total + 1)).collect();
    c.push(0);
    c.push(total);
    c.sort_unstable();
    c
}

fn check(comm: &MpiCommunicator) -> Result<usize, String> {
    let (rank, size) = (comm.rank(), comm.size());
    let mut stream = Stream(0x5eed_2020);
    let shapes: [&[usize]; 5] = [&[16, 3, 3, 3], &[7, 5], &[1, 4], &[64, 8, 3], &[300]];
    let mut checked = 0;
    for (case, shape) in shapes.iter().enumerate() {
        let total: usize = shape.iter().product();
        let g: Vec<f64> = (0..total).map(|_| stream.unit()).collect();
        let max_g = g.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        for lambda in [0.3, 1.0, 1e4, 1e16] {
            for metric in metrics(lambda) {
                let mut whole = ArrayD::from_shape_vec(IxDyn(shape), g.clone()).unwrap();
                ChannelDirected::new(metric, Direction::Output)
                    .apply(&mut whole)
                    .map_err(|e| e.to_string())?;
                let expected: Vec<f64> = whole.iter().copied().collect();
                // flat shards, f64 and f32
                let c = cuts(&mut stream, size, total);
                let (s, e) = (c[rank], c[rank + 1]);
                let mut part = g[s..e].to_vec();
                smooth_flat(comm, &metric, shape, s, &mut part).map_err(|e| e.to_string())?;
                for (k, (x, y)) in part.iter().zip(&expected[s..e]).enumerate() {
                    if (x - y).abs() > 1e-12 * max_g {
                        return Err(format!(
                            "case {case} {metric:?} f64 flat {c:?}: value {}: {x:e} vs {y:e}",
                            s + k
                        ));
                    }
                }
                let mut part32: Vec<f32> = g[s..e].iter().map(|&v| v as f32).collect();
                smooth_flat(comm, &metric, shape, s, &mut part32).map_err(|e| e.to_string())?;
                for (k, (x, y)) in part32.iter().zip(&expected[s..e]).enumerate() {
                    if (*x as f64 - y).abs() > 1e-5 * max_g {
                        return Err(format!(
                            "case {case} {metric:?} f32 flat {c:?}: value {}: {x:e} vs {y:e}",
                            s + k
                        ));
                    }
                }
                // row shards
                let rc = cuts(&mut stream, size, shape[0]);
                let (a, b) = (rc[rank], rc[rank + 1]);
                let full = ArrayD::from_shape_vec(IxDyn(shape), g.clone()).unwrap();
                let mut rows = full.slice_axis(Axis(0), Slice::from(a..b)).to_owned();
                smooth_rows(comm, &metric, shape, a, &mut rows).map_err(|e| e.to_string())?;
                let want = whole.slice_axis(Axis(0), Slice::from(a..b));
                let err = (&rows - &want).iter().fold(0.0_f64, |m, d| m.max(d.abs()));
                if err > 1e-12 * max_g {
                    return Err(format!(
                        "case {case} {metric:?} rows {rc:?}: off by {err:e}"
                    ));
                }
                checked += 3;
            }
        }
    }
    // An invalid λ on the last rank: every rank refuses, and nothing is written.
    let bad = if rank + 1 == size { f64::NAN } else { 1.0 };
    let metric = Metric::SobolevH1 {
        lambda: bad,
        boundary: Boundary::Neumann,
    };
    let mut part = vec![1.0_f64; 4];
    match smooth_flat(comm, &metric, &[4 * size], 4 * rank, &mut part) {
        Err(Error::InvalidLambda { .. }) if rank + 1 == size => {}
        Err(Error::Shard { .. }) if rank + 1 < size => {}
        other => return Err(format!("an invalid lambda on the last rank gave {other:?}")),
    }
    if part != [1.0; 4] {
        return Err("a refused call wrote its part".into());
    }
    Ok(checked + 1)
}

fn bench(comm: &MpiCommunicator) -> Result<(), Error> {
    let (rank, size) = (comm.rank(), comm.size());
    let metric = Metric::default();
    for shape in [&[512usize, 512, 3, 3][..], &[2048, 512]] {
        let total: usize = shape.iter().product();
        let mut stream = Stream(3);
        let g: Vec<f32> = (0..total).map(|_| stream.unit() as f32).collect();
        let (s, e) = (total * rank / size, total * (rank + 1) / size);
        let reps = 10;
        let time = |f: &mut dyn FnMut() -> Result<(), Error>| -> Result<f64, Error> {
            f()?;
            comm.all_gather(&[0.0])?; // line the ranks up
            let t = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            comm.all_gather(&[0.0])?;
            Ok(t.elapsed().as_secs_f64() / reps as f64 * 1e3)
        };
        let mut part = g[s..e].to_vec();
        let sharded = time(&mut || smooth_flat(comm, &metric, shape, s, &mut part))?;
        let mut part = g[s..e].to_vec();
        let gathered = time(&mut || {
            let wide: Vec<f64> = part.iter().map(|&v| v as f64).collect();
            let all = comm.all_gather(&wide)?;
            let mut full =
                ArrayD::from_shape_vec(IxDyn(shape), all.iter().map(|&v| v as f32).collect())
                    .unwrap();
            ChannelDirected::new(metric, Direction::Output)
                .with_threading(Threading::Single)
                .apply(&mut full)?;
            part.copy_from_slice(&full.as_slice().unwrap()[s..e]);
            Ok(())
        })?;
        let mut full = ArrayD::from_shape_vec(IxDyn(shape), g.clone()).unwrap();
        let cd = ChannelDirected::new(metric, Direction::Output).with_threading(Threading::Single);
        let unsharded = time(&mut || cd.apply(&mut full))?;
        if rank == 0 {
            println!(
                "{shape:?} f32, {size} MPI processes: sharded {sharded:.2} ms, gather + solve \
                 {gathered:.2} ms, unsharded solve (one process, one thread) {unsharded:.2} ms"
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(universe) = mpi::initialize() else {
        eprintln!("MPI was already initialized");
        return ExitCode::FAILURE;
    };
    let comm = MpiCommunicator::new(universe.world());
    if std::env::args().any(|a| a == "--bench") {
        return match bench(&comm) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rank {}: {e}", comm.rank());
                ExitCode::FAILURE
            }
        };
    }
    match check(&comm) {
        Ok(checked) => {
            println!(
                "rank {} of {}: {checked} sharded calls agree with the unsharded result",
                comm.rank(),
                comm.size()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rank {} of {}: FAILED: {e}", comm.rank(), comm.size());
            // The other ranks may be waiting in a collective: end the whole job, non-zero.
            comm.inner().abort(1)
        }
    }
}
