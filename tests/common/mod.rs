//! Plain references the fast paths are tested against: dense matrices, Gaussian elimination and a
//! naive per-fiber loop. Nothing here calls the crate's kernels.
#![allow(dead_code)]

#[cfg(feature = "burn")]
pub mod burn_net;
pub mod exact;
pub mod metrics;
pub mod reference;
pub mod states;

use chandir::{Boundary, Direction, Metric};
use ndarray::{Array2, ArrayD, Axis, IxDyn, NdFloat};

/// The dense operator `A` of `metric` on fibers of length `n`, straight from the definitions.
pub fn dense_operator(metric: &Metric, n: usize) -> Array2<f64> {
    let mut a = Array2::<f64>::eye(n);
    match *metric {
        Metric::H0 => {}
        Metric::ReweightedH0 { lambda } => {
            for i in 0..n {
                for j in 0..n {
                    let centering = if i == j { 1.0 } else { 0.0 } - 1.0 / n as f64;
                    a[[i, j]] += lambda * centering;
                }
            }
        }
        Metric::SobolevH1 { lambda, boundary } => {
            // L = DᵀD, D one row per difference x_{j} − x_{i}.
            let mut differences: Vec<(usize, usize)> =
                (0..n.saturating_sub(1)).map(|i| (i, i + 1)).collect();
            match boundary {
                Boundary::Neumann => {}
                Boundary::Periodic => {
                    if n >= 2 {
                        differences.push((n - 1, 0));
                    }
                }
                Boundary::Dirichlet => {}
            }
            for (i, j) in differences {
                a[[i, i]] += lambda;
                a[[j, j]] += lambda;
                a[[i, j]] -= lambda;
                a[[j, i]] -= lambda;
            }
            if boundary == Boundary::Dirichlet && n >= 1 {
                a[[0, 0]] += lambda;
                a[[n - 1, n - 1]] += lambda;
            }
        }
    }
    a
}

/// `A = PLU` by Gaussian elimination with partial pivoting, to solve many right-hand sides.
pub struct DenseLu {
    lu: Array2<f64>,
    pivots: Vec<usize>,
}

impl DenseLu {
    pub fn new(a: &Array2<f64>) -> Self {
        let n = a.nrows();
        let mut lu = a.clone();
        let mut pivots = Vec::with_capacity(n);
        for k in 0..n {
            let p = (k..n)
                .max_by(|&i, &j| lu[[i, k]].abs().total_cmp(&lu[[j, k]].abs()))
                .unwrap();
            pivots.push(p);
            if p != k {
                for j in 0..n {
                    lu.swap([k, j], [p, j]);
                }
            }
            for i in k + 1..n {
                let f = lu[[i, k]] / lu[[k, k]];
                lu[[i, k]] = f;
                if f != 0.0 {
                    for j in k + 1..n {
                        lu[[i, j]] -= f * lu[[k, j]];
                    }
                }
            }
        }
        DenseLu { lu, pivots }
    }

    #[allow(clippy::needless_range_loop)] // textbook index form, kept plain on purpose
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let n = b.len();
        let mut x = b.to_vec();
        for (k, &p) in self.pivots.iter().enumerate() {
            x.swap(k, p);
        }
        for i in 0..n {
            let mut s = x[i];
            for j in 0..i {
                s -= self.lu[[i, j]] * x[j];
            }
            x[i] = s;
        }
        for i in (0..n).rev() {
            let mut s = x[i];
            for j in i + 1..n {
                s -= self.lu[[i, j]] * x[j];
            }
            x[i] = s / self.lu[[i, i]];
        }
        x
    }
}

/// Solves `A x = b` densely.
pub fn dense_solve(a: &Array2<f64>, b: &[f64]) -> Vec<f64> {
    DenseLu::new(a).solve(b)
}

/// The naive reference: each fiber along `direction` solved densely, one at a time.
pub fn reference_apply(grad: &ArrayD<f64>, metric: &Metric, direction: Direction) -> ArrayD<f64> {
    let ndim = grad.ndim();
    match direction {
        Direction::Flattened => {
            let a = dense_operator(metric, grad.len());
            let flat: Vec<f64> = grad.iter().copied().collect();
            ArrayD::from_shape_vec(IxDyn(grad.shape()), dense_solve(&a, &flat)).unwrap()
        }
        _ => {
            let axis = match direction {
                Direction::Output => 0,
                Direction::Input => 1,
                Direction::Axis(k) => k,
                Direction::Flattened => unreachable!(),
            };
            assert!(axis < ndim);
            let n = grad.len_of(Axis(axis));
            let lu = DenseLu::new(&dense_operator(metric, n));
            let mut out = grad.clone();
            for mut lane in out.lanes_mut(Axis(axis)) {
                let g: Vec<f64> = lane.iter().copied().collect();
                let x = lu.solve(&g);
                lane.iter_mut().zip(x).for_each(|(l, v)| *l = v);
            }
            out
        }
    }
}

pub fn max_abs(a: impl IntoIterator<Item = f64>) -> f64 {
    a.into_iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The largest `|a − b|` of two arrays of one shape (f32 or f64).
pub fn max_abs_diff<A: NdFloat>(a: &ArrayD<A>, b: &ArrayD<A>) -> A {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .fold(A::zero(), |m, (&x, &y)| m.max((x - y).abs()))
}

/// `A x` for a dense `A`.
pub fn dense_apply(a: &Array2<f64>, x: &[f64]) -> Vec<f64> {
    a.rows()
        .into_iter()
        .map(|row| row.iter().zip(x).map(|(r, v)| r * v).sum())
        .collect()
}
