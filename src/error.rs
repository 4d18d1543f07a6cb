//! The one error type of the crate: every kind of bad input has its own variant.

use thiserror::Error;

/// Why a call was refused.
///
/// Every function that returns this error validates all of its input *before* it writes anything, so
/// on `Err` the tensors it was given are exactly as they were.
///
/// ```
/// use chandir::{precondition, Error};
/// use ndarray::Array2;
///
/// let mut g = Array2::<f32>::ones((4, 3));
/// let err = precondition(&mut g, -1.0).unwrap_err();
/// assert!(matches!(err, Error::InvalidLambda { .. }));
/// assert_eq!(g, Array2::<f32>::ones((4, 3))); // untouched
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The smoothing strength λ must be finite and ≥ 0.
    #[error("lambda must be finite and >= 0, got {lambda}")]
    InvalidLambda {
        /// The value that was passed.
        lambda: f64,
    },
    /// The direction names an axis the tensor does not have.
    #[error("axis {axis} is out of range for a tensor of rank {ndim}")]
    AxisOutOfRange {
        /// The axis that was asked for.
        axis: usize,
        /// The rank of the tensor.
        ndim: usize,
    },
    /// A gradient does not have the shape of its parameter.
    #[error("gradient shape {grad:?} does not match parameter shape {param:?}")]
    ShapeMismatch {
        /// Shape of the parameter.
        param: Vec<usize>,
        /// Shape of the gradient.
        grad: Vec<usize>,
    },
    /// An optimizer hyperparameter is out of its valid range.
    #[error("invalid hyperparameter {name} = {value}: {reason}")]
    InvalidHyperparameter {
        /// Name of the hyperparameter, as in the config struct.
        name: &'static str,
        /// The value that was passed.
        value: f64,
        /// What the valid range is.
        reason: &'static str,
    },
    /// Saved optimizer state does not fit the parameter it is applied to.
    #[error("optimizer state for {param:?} does not fit: {reason}")]
    StateMismatch {
        /// Name of the parameter.
        param: String,
        /// What does not fit.
        reason: String,
    },
    /// Saved optimizer state belongs to another optimizer or element type (e.g. an Adam state of
    /// `f64` loaded as an SGD state of `f32`).
    #[error("the optimizer state is {found}, expected {expected}")]
    StateKind {
        /// What was asked for, e.g. `an sgd state of f32`.
        expected: String,
        /// What the state says it is.
        found: String,
    },
    /// Optimizer state that no run of the optimizer can produce from finite gradients (a negative
    /// second moment, buffers of the wrong shape or of a length their shape does not have), or
    /// whose step counter cannot advance. Infinities and NaN are not refused: runs with
    /// overflowing gradients reach them.
    #[error("invalid optimizer state: {reason}")]
    InvalidState {
        /// What is wrong with it.
        reason: String,
    },
    /// The same parameter name appears twice in one whole-model call, so two tensors would share
    /// one optimizer state.
    #[error("parameter {name:?} appears more than once")]
    DuplicateParam {
        /// The repeated name.
        name: String,
    },
    /// The ranks of a sharded call ([`crate::shard`]) disagree: on the shape, the metric or the
    /// element type, or their ranges overlap or leave values to no rank; or another rank's part
    /// was refused (the reason names the rank).
    #[error("sharded call refused: {reason}")]
    Shard {
        /// What does not agree, and on which rank.
        reason: String,
    },
    /// A communicator ([`crate::shard::Communicator`]) failed to gather.
    #[error("communication failed: {reason}")]
    Communication {
        /// What the communicator reported.
        reason: String,
    },
}
