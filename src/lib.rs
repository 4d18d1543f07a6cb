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
//! A whole model in one call, on all cores ([`precondition_all`], or
//! [`optim::ChannelDirectedOptimizer::step_all`] to smooth and step):
//!
//! ```
//! use chandir::ndarray::{Array2, Array4};
//!
//! let mut conv1 = Array4::<f32>::ones((64, 3, 7, 7));
//! let mut conv2 = Array4::<f32>::ones((128, 64, 3, 3));
//! let mut fc = Array2::<f32>::ones((10, 128));
//! chandir::precondition_all(
//!     [conv1.view_mut().into_dyn(), conv2.view_mut().into_dyn(), fc.view_mut().into_dyn()],
//!     1.0,
//! )?;
//! # Ok::<(), chandir::Error>(())
//! ```
//!
//! chandir works on [`ndarray`] 0.17 arrays and re-exports the crate as [`chandir::ndarray`](ndarray):
//! use it (or depend on the same `ndarray` version) so that your arrays are the ones chandir takes.
//!
//! The house: [`metric`] says *what* (operators, directions), [`solve`] says *how* (kernels on an
//! `n × w` block; its public part is the sweep coefficients and the `f32` rule), an internal
//! `layout` module says *where* (walking an axis of any view), an internal `threading` module
//! decides once per call whether work may split ([`Threading`]), [`optim`] holds the optimizers
//! and the wrapper that preconditions before their step. [`Element`] (`f32`, `f64`) is the one
//! element trait every path takes.
//!
//! Cargo features: `burn` and `candle` add the `integrations` module, optimizer wrappers for those
//! frameworks (documented on docs.rs with every feature on); `mpi` adds
//! `shard::MpiCommunicator`, for [`shard`]ed smoothing across MPI processes.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analysis;
mod element;
pub mod error;
pub mod gpu;
#[cfg(any(feature = "burn", feature = "candle"))]
pub mod integrations;
mod layout;
pub mod metric;
pub mod optim;
mod rank;
pub mod shard;
pub mod solve;
mod threading;

/// The `ndarray` version chandir's functions take (0.17): `chandir::ndarray::Array4` and friends.
pub use ndarray;

pub use element::Element;
pub use error::Error;
pub use metric::{Boundary, ChannelDirected, Direction, Metric, Preconditioner};
pub use rank::RankPolicy;
pub use threading::Threading;

use ndarray::{ArrayBase, ArrayViewMut, DataMut, Dimension};

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
    A: Element,
    S: DataMut<Elem = A>,
    D: Dimension,
{
    ChannelDirected::sobolev(lambda).apply(grad)
}

/// Smooths every gradient of a model in one call, each as [`precondition`] would (Sobolev H1,
/// Neumann, strength `lambda`, along axis 0), with the tensors spread over the current rayon pool,
/// largest first to the least-loaded thread; tensors large enough are still split inside.
///
/// The result is bitwise identical to calling [`precondition`] on each tensor in turn. Every
/// tensor is validated first: on error none has changed. For per-tensor metrics and directions
/// use [`optim::precondition_each`]; to smooth and step, per-parameter rules included,
/// [`optim::ChannelDirectedOptimizer::step_all`].
///
/// ```
/// use ndarray::{Array3, Array4};
///
/// let mut conv2d = Array4::<f64>::from_shape_fn((16, 8, 3, 3), |(o, i, h, w)| (o * i + h + w) as f64);
/// let mut conv1d = Array3::<f64>::from_shape_fn((32, 16, 5), |(o, i, k)| (o + i * k) as f64);
/// let (mut one, mut other) = (conv2d.clone(), conv1d.clone());
/// chandir::precondition_all([conv2d.view_mut().into_dyn(), conv1d.view_mut().into_dyn()], 0.5)?;
/// chandir::precondition(&mut one, 0.5)?;
/// chandir::precondition(&mut other, 0.5)?;
/// assert_eq!((conv2d, conv1d), (one, other)); // bitwise
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn precondition_all<'a, A, D, I>(grads: I, lambda: f64) -> Result<(), Error>
where
    A: Element + 'a,
    D: Dimension + 'a,
    I: IntoIterator<Item = ArrayViewMut<'a, A, D>>,
{
    let preconditioner = ChannelDirected::sobolev(lambda);
    optim::precondition_each(grads.into_iter().map(|grad| (preconditioner, grad)))
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
