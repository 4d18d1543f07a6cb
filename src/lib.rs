//! # chandir — channel-directed gradients
//!
//! Gradient preconditioners that change one thing in CNN training: the metric in which the gradient
//! is taken (Lao, Zhu, Wonka, Sundaramoorthi, *Channel-Directed Gradients for Optimization of
//! Convolutional Neural Networks*, arXiv 2008.10766). Before the optimizer step, each weight
//! gradient is smoothed along the output-channel axis by solving `A x = g` for every fiber `g`, with
//! `A = I + λL` a symmetric positive definite operator (see [`metric`]). The cost is linear in the
//! number of parameters and it works with any optimizer.
//!
//! ```
//! use ndarray::Array4;
//!
//! // the gradient of a conv weight [C_out, C_in, kH, kW]
//! let mut grad = Array4::<f32>::from_shape_fn((16, 8, 3, 3), |(o, i, h, w)| ((o * 7 + i * 3 + h + w) % 5) as f32 - 2.0);
//! let raw = grad.clone();
//! chandir::precondition(&mut grad, 1.0)?; // Sobolev H1, Neumann, along the output channels
//! assert!((&raw * &grad).sum() > 0.0); // still a descent direction
//! # Ok::<(), chandir::Error>(())
//! ```
//!
//! The house: [`metric`] says *what* (operators, directions), [`solve`] says *how* (kernels on an
//! `n × w` block), [`layout`] says *where* (walking an axis of any view), [`optim`] holds the
//! optimizers and the wrapper that preconditions before their step.

pub mod analysis;
pub mod error;
pub mod gpu;
#[cfg(any(feature = "burn", feature = "candle"))]
pub mod integrations;
pub mod layout;
pub mod metric;
pub mod optim;
mod rank;
pub mod solve;

pub use error::Error;
pub use metric::{Boundary, ChannelDirected, Direction, Metric, Preconditioner, Threading};
pub use rank::RankPolicy;

use ndarray::{ArrayBase, DataMut, Dimension};
use num_traits::Float;

/// Smooths `grad` in place with the Sobolev H1 metric (Neumann boundary) of strength `lambda` along
/// axis 0, the output channels of `[C_out, C_in, ..]` weights: each fiber `g` becomes the solution
/// of `(I + λL) x = g`.
///
/// Returns [`Error::InvalidLambda`] for a negative, NaN or infinite λ and [`Error::AxisOutOfRange`]
/// for a rank-0 tensor, leaving `grad` untouched; an empty tensor is a no-op. For other metrics and
/// directions use [`ChannelDirected`].
///
/// ```
/// use ndarray::array;
///
/// let mut g = array![[1.0_f64], [0.0], [0.0]];
/// chandir::precondition(&mut g, 1.0)?;
/// // (I + L) x = e₀ with L = [[1,-1,0],[-1,2,-1],[0,-1,1]]
/// assert!((g[[0, 0]] - 5.0 / 8.0).abs() < 1e-15);
/// assert!((g.sum() - 1.0).abs() < 1e-15); // Neumann keeps the mean
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn precondition<A, S, D>(grad: &mut ArrayBase<S, D>, lambda: f64) -> Result<(), Error>
where
    A: Float + Send + Sync,
    S: DataMut<Elem = A>,
    D: Dimension,
{
    ChannelDirected::sobolev(lambda).apply(grad)
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
