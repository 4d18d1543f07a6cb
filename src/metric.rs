//! What: the metrics in which the gradient is taken, the direction of the fibers, and the
//! [`Preconditioner`] trait.
//!
//! A gradient tensor `g` is viewed as fibers of length `n` along one axis (by default axis 0, the
//! output channels of a convolution weight `[C_out, C_in, kH, kW]`). Each fiber is replaced by the
//! `x` that solves `A x = g`, where `A` is one of these symmetric positive definite operators:
//!
//! | metric | operator `A` | closed form / note |
//! |---|---|---|
//! | [`Metric::H0`] | `I` | plain gradient |
//! | [`Metric::ReweightedH0`] | `I + λ (I − 11ᵀ/n)` | `x = mean(g) + (g − mean(g)) / (1 + λ)` |
//! | [`Metric::SobolevH1`] | `I + λ L`, `L = DᵀD` | `D` = forward differences; see [`Boundary`] |
//!
//! λ = 0 gives exactly the identity, and so does `n = 1` (except for the Dirichlet boundary, whose
//! `L` is `[2]`, a scaling by `1/(1 + 2λ)`). Because every `A` is symmetric positive definite, the
//! preconditioned gradient `x = A⁻¹g` satisfies `⟨g, x⟩ > 0` for `g ≠ 0`: it is still a descent direction.

use ndarray::{ArrayBase, ArrayViewMutD, DataMut, Dimension};
use serde::{Deserialize, Serialize};

use crate::threading::Par;
use crate::{layout, solve, Element, Error, Threading};

/// Boundary condition of the Sobolev H1 operator `L = DᵀD` on a fiber of length `n`.
///
/// ```
/// use chandir::Boundary;
/// assert_eq!(Boundary::default(), Boundary::Neumann);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Boundary {
    /// Free ends: `D` has the `n − 1` forward differences, so the diagonal of `L` is `1, 2, …, 2, 1`.
    /// Constant fibers are left unchanged and the fiber mean is preserved.
    #[default]
    Neumann,
    /// Adds the wrap-around difference `x₀ − x_{n−1}`: `L` is the circulant second difference, the
    /// operator of Laplacian-smoothing SGD. Preserves the fiber mean. For `n = 2` the wrap-around
    /// difference repeats the only other one, so `L = [[2, −2], [−2, 2]]`.
    Periodic,
    /// Zero outside the fiber: the diagonal of `L` is all `2`. Shrinks the fiber (its mean is not kept).
    Dirichlet,
}

/// The metric in which the gradient is taken, with its strength λ ≥ 0.
///
/// ```
/// use chandir::{Boundary, Metric};
/// let m = Metric::SobolevH1 { lambda: 1.0, boundary: Boundary::Neumann };
/// assert_eq!(m, Metric::default());
/// assert_eq!(m.lambda(), 1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Metric {
    /// `A = I`: the plain gradient (SGD).
    H0,
    /// `A = I + λ (I − 11ᵀ/n)`: keeps the fiber mean and shrinks the deviations from it by `1/(1 + λ)`.
    ReweightedH0 {
        /// Strength λ ≥ 0.
        lambda: f64,
    },
    /// `A = I + λ L` with `L = DᵀD` the (tridiagonal, or circulant) second-difference operator.
    SobolevH1 {
        /// Strength λ ≥ 0.
        lambda: f64,
        /// How the fiber ends are treated.
        boundary: Boundary,
    },
}

impl Default for Metric {
    /// Sobolev H1 with λ = 1 and the Neumann boundary.
    fn default() -> Self {
        Metric::SobolevH1 {
            lambda: 1.0,
            boundary: Boundary::Neumann,
        }
    }
}

impl Metric {
    /// The strength λ (0 for [`Metric::H0`]).
    pub fn lambda(&self) -> f64 {
        match *self {
            Metric::H0 => 0.0,
            Metric::ReweightedH0 { lambda } | Metric::SobolevH1 { lambda, .. } => lambda,
        }
    }

    /// Checks that λ is finite and non-negative.
    ///
    /// ```
    /// use chandir::{Error, Metric};
    /// assert!(Metric::ReweightedH0 { lambda: 2.0 }.validate().is_ok());
    /// assert!(matches!(
    ///     Metric::ReweightedH0 { lambda: f64::NAN }.validate(),
    ///     Err(Error::InvalidLambda { .. })
    /// ));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let lambda = self.lambda();
        if lambda.is_finite() && lambda >= 0.0 {
            Ok(())
        } else {
            Err(Error::InvalidLambda { lambda })
        }
    }
}

/// Which fibers of the tensor are smoothed.
///
/// ```
/// use chandir::Direction;
/// assert_eq!(Direction::Output.axis(4).unwrap(), Some(0));
/// assert_eq!(Direction::Input.axis(4).unwrap(), Some(1));
/// assert_eq!(Direction::Flattened.axis(4).unwrap(), None);
/// assert!(Direction::Axis(4).axis(4).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Direction {
    /// Axis 0: the output channels of `[C_out, C_in, ..]` convolution weights and `[out, in]` linear weights.
    #[default]
    Output,
    /// Axis 1: the input channels.
    Input,
    /// Any axis, e.g. `Axis(3)` for an HWIO weight or `Axis(1)` for a transposed-conv weight `[in, out, k, k]`.
    Axis(usize),
    /// The whole tensor, in row-major (logical) order, as one fiber: what Laplacian-smoothing SGD does.
    Flattened,
}

impl Direction {
    /// The axis the fibers run along for a tensor of rank `ndim`, or `None` for [`Direction::Flattened`].
    pub fn axis(&self, ndim: usize) -> Result<Option<usize>, Error> {
        let axis = match *self {
            Direction::Output => 0,
            Direction::Input => 1,
            Direction::Axis(axis) => axis,
            Direction::Flattened => return Ok(None),
        };
        if axis < ndim {
            Ok(Some(axis))
        } else {
            Err(Error::AxisOutOfRange { axis, ndim })
        }
    }
}

/// A metric together with the direction of its fibers: the complete description of one preconditioner.
///
/// ```
/// use chandir::{Boundary, ChannelDirected, Direction, Metric};
/// use ndarray::Array4;
///
/// // Laplacian-smoothing-style periodic H1 along the output channels of an OIHW gradient.
/// let cd = ChannelDirected::new(
///     Metric::SobolevH1 { lambda: 0.5, boundary: Boundary::Periodic },
///     Direction::Output,
/// );
/// let mut grad = Array4::<f32>::from_shape_fn((8, 3, 3, 3), |(o, i, h, w)| (o * 27 + i * 9 + h * 3 + w) as f32);
/// let before = grad.sum();
/// cd.apply(&mut grad)?;
/// assert!((grad.sum() - before).abs() < 1e-2 * before.abs()); // periodic H1 keeps fiber means
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelDirected {
    /// The operator `A`.
    pub metric: Metric,
    /// The fibers `A` acts on.
    pub direction: Direction,
    /// Whether one call may use several threads.
    #[serde(default)]
    pub threading: Threading,
}

impl ChannelDirected {
    /// A preconditioner with the given metric and direction.
    pub fn new(metric: Metric, direction: Direction) -> Self {
        ChannelDirected {
            metric,
            direction,
            threading: Threading::Auto,
        }
    }

    /// The same preconditioner with the given [`Threading`].
    pub fn with_threading(self, threading: Threading) -> Self {
        ChannelDirected { threading, ..self }
    }

    /// Sobolev H1 with the Neumann boundary along the output channels: the paper's default.
    ///
    /// ```
    /// let cd = chandir::ChannelDirected::sobolev(0.3);
    /// assert_eq!(cd.metric.lambda(), 0.3);
    /// ```
    pub fn sobolev(lambda: f64) -> Self {
        ChannelDirected::new(
            Metric::SobolevH1 {
                lambda,
                boundary: Boundary::Neumann,
            },
            Direction::Output,
        )
    }

    /// Re-weighted H0 along the output channels: each fiber keeps its mean and its deviation from
    /// the mean is divided by `1 + λ`.
    ///
    /// ```
    /// use chandir::ndarray::array;
    /// let mut g = array![[1.0_f64], [3.0]];
    /// chandir::ChannelDirected::reweighted(1.0).apply(&mut g.view_mut())?;
    /// assert_eq!(g, array![[1.5], [2.5]]); // mean 2, deviations ±1 halved
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn reweighted(lambda: f64) -> Self {
        ChannelDirected::new(Metric::ReweightedH0 { lambda }, Direction::Output)
    }

    /// Checks λ and that the direction's axis exists in a tensor of rank `ndim`.
    pub fn validate(&self, ndim: usize) -> Result<(), Error> {
        self.metric.validate()?;
        self.direction.axis(ndim).map(|_| ())
    }

    /// Replaces every fiber of `grad` by the solution `x` of `A x = g`, in place.
    ///
    /// Works for `f32` and `f64`, any rank and any memory layout (non-contiguous, negative or permuted strides).
    /// Guarantees:
    /// - bad λ or a missing axis returns an [`Error`] and leaves `grad` untouched;
    /// - an empty tensor is a no-op;
    /// - the fibers are independent: a NaN or ∞ in one fiber does not reach any other
    ///   (with [`Direction::Flattened`] the whole tensor is one fiber);
    /// - every finite λ ≥ 0 (up to `f64::MAX`) and every finite value (up to the largest float)
    ///   gets a finite answer, exact up to rounding: for `f64`, each value is within
    ///   `(4n + 16)·2⁻⁵³·max|g|` of the exact solution (`max|g|` over its fiber), a bound that does
    ///   not grow with λ; `f32` storage stays within `10⁻⁵·max|g|` (coefficients are computed
    ///   without cancellation; the sweeps run and carry in `f64`, or in `f32` where their error
    ///   bound is below `10⁻⁶·max|g|`, see [`crate::solve::SweepCoefficients`]). Subnormal
    ///   values, which have no relative precision to keep, add a few units of the smallest float
    ///   (`16 + 4·√min(n, 1 + λ)` for `f32`);
    /// - maximum principle: every output value lies between the smallest and the largest value
    ///   of its input fiber, up to that rounding (for Dirichlet, between those and 0);
    /// - results are bitwise identical for every view of the same logical tensor (permuted,
    ///   reversed, sliced or contiguous) and for every number of threads;
    /// - memory: `O(n)` for the factors plus a bounded scratch block, never a copy of the tensor
    ///   (except [`Direction::Flattened`] on a non-contiguous view, whose one fiber is packed).
    ///
    /// ```
    /// use chandir::{ChannelDirected, Direction, Metric};
    /// use ndarray::array;
    ///
    /// let cd = ChannelDirected::new(Metric::ReweightedH0 { lambda: 1.0 }, Direction::Output);
    /// let mut g = array![[1.0_f64, 0.0], [3.0, 0.0]];
    /// cd.apply(&mut g)?;
    /// // column 0: mean 2, deviations ±1 halved
    /// assert_eq!(g, array![[1.5, 0.0], [2.5, 0.0]]);
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn apply<A, S, D>(&self, grad: &mut ArrayBase<S, D>) -> Result<(), Error>
    where
        A: Element,
        S: DataMut<Elem = A>,
        D: Dimension,
    {
        self.apply_dyn(grad.view_mut().into_dyn())
    }

    fn apply_dyn<A: Element>(&self, grad: ArrayViewMutD<'_, A>) -> Result<(), Error> {
        self.metric.validate()?;
        let axis = self.direction.axis(grad.ndim())?;
        if grad.is_empty() {
            return Ok(());
        }
        let n = match axis {
            Some(axis) => grad.len_of(ndarray::Axis(axis)),
            None => grad.len(),
        };
        match solve::plan::<A>(&self.metric, n) {
            None => Ok(()),
            Some(solver) => {
                layout::solve_fibers(grad, axis, &*solver, Par::new(self.threading));
                Ok(())
            }
        }
    }
}

/// Anything that preconditions a gradient in place. Object-safe, so that a training loop can hold
/// a `Box<dyn Preconditioner<f32>>` chosen at run time.
///
/// ```
/// use chandir::{ChannelDirected, Preconditioner};
/// use ndarray::ArrayD;
///
/// let p: Box<dyn Preconditioner<f32>> = Box::new(ChannelDirected::sobolev(1.0));
/// let mut g = ArrayD::<f32>::ones(vec![16, 8, 3, 3]);
/// p.precondition(g.view_mut())?;
/// assert!(g.iter().all(|&v| (v - 1.0).abs() < 1e-6)); // constants pass through H1 Neumann
/// # Ok::<(), chandir::Error>(())
/// ```
pub trait Preconditioner<A>: Send + Sync {
    /// Replaces `grad` by its preconditioned version, or returns an error and leaves it untouched.
    fn precondition(&self, grad: ArrayViewMutD<'_, A>) -> Result<(), Error>;

    /// Checks, without writing anything, that [`precondition`](Preconditioner::precondition)
    /// accepts a gradient of this shape: the whole-model calls check every tensor before they
    /// write any. The default accepts every shape.
    fn check(&self, shape: &[usize]) -> Result<(), Error> {
        let _ = shape;
        Ok(())
    }

    /// Whether a whole-model call may run this preconditioner's tensors on the pool's threads;
    /// [`Threading::Auto`] by default.
    fn threading(&self) -> Threading {
        Threading::Auto
    }
}

impl<A: Element> Preconditioner<A> for ChannelDirected {
    fn precondition(&self, grad: ArrayViewMutD<'_, A>) -> Result<(), Error> {
        self.apply_dyn(grad)
    }

    fn check(&self, shape: &[usize]) -> Result<(), Error> {
        self.validate(shape.len())
    }

    fn threading(&self) -> Threading {
        self.threading
    }
}
