//! Optimizers on ndarray parameters, with PyTorch's exact update rules, and the wrapper that takes
//! the gradient in a channel-directed metric before any of them steps.
//!
//! State is passed explicitly (as in burn): an optimizer is an immutable config, and the caller
//! keeps one state per parameter, e.g. in a [`ParamStates`] keyed by parameter name, which
//! serializes with serde so that a resumed run is bit-identical to an uninterrupted one.
//!
//! ```
//! use chandir::optim::{ChannelDirectedOptimizer, ParamStates, SgdConfig};
//! use chandir::ChannelDirected;
//! use ndarray::Array4;
//!
//! let sgd = SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() }.init()?;
//! let opt = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0));
//! let mut states = ParamStates::default();
//!
//! let mut weight = Array4::<f32>::zeros((16, 3, 3, 3));
//! let mut grad = Array4::<f32>::ones((16, 3, 3, 3));
//! opt.step("conv1.weight", weight.view_mut(), grad.view_mut(), &mut states)?;
//! assert!((weight[[0, 0, 0, 0]] + 0.05).abs() < 1e-7);
//! # Ok::<(), chandir::Error>(())
//! ```
//!
//! A model's parameters step together with
//! [`ChannelDirectedOptimizer::step_all`], which spreads them over the cores; gradients alone
//! are smoothed together with [`precondition_each`] or [`crate::precondition_all`].
//!
//! Saved states say what they are (optimizer, element type, shape) and are checked when loaded:
//! see [`AdamState`] and [`SgdState`].

mod adam;
mod channel_directed;
pub(crate) mod model;
mod sgd;

use std::collections::BTreeMap;
use std::fmt::Debug;

use ndarray::{ArrayD, ArrayView, ArrayViewMut, Dimension};
use num_traits::Float;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use adam::{Adam, AdamConfig, AdamState};
pub use channel_directed::{ChannelDirectedOptimizer, ParamRule};
pub use model::precondition_each;
pub use sgd::{Sgd, SgdConfig, SgdState};

use crate::Error;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element types the optimizers work on: `f32` and `f64`.
///
/// Saved states record the name of their element type, so that an `f64` state is never silently
/// rounded into an `f32` one.
///
/// ```
/// use chandir::optim::Element;
/// assert_eq!(<f32 as Element>::DTYPE, "f32");
/// ```
pub trait Element:
    Float + Send + Sync + Debug + Serialize + DeserializeOwned + 'static + sealed::Sealed
{
    /// The name written into saved states: `"f32"` or `"f64"`.
    const DTYPE: &'static str;
}

impl Element for f32 {
    const DTYPE: &'static str = "f32";
}

impl Element for f64 {
    const DTYPE: &'static str = "f64";
}

/// A first-order optimizer for one parameter tensor at a time, of any rank (`Array1` … `Array4`,
/// `ArrayD`: pass `.view_mut()` and `.view()`).
pub trait Optimizer<A: Element>: Send + Sync {
    /// Per-parameter state (momentum buffers, moments, step count). It records the optimizer, the
    /// element type and the parameter shape it belongs to, and is validated when it is loaded.
    type State: Clone + Debug + Serialize + DeserializeOwned + Send + Sync;

    /// Checks that `grad` and `state` fit `param` and that the state can take one more step,
    /// without changing anything. [`step`](Optimizer::step) fails exactly when this does.
    fn check<D: Dimension>(
        &self,
        param: &ArrayView<'_, A, D>,
        grad: &ArrayView<'_, A, D>,
        state: Option<&Self::State>,
    ) -> Result<(), Error>;

    /// Updates `param` with `grad`. `state` is `None` before the first step and is filled in by it.
    /// On error nothing has changed.
    fn step<D: Dimension>(
        &self,
        param: ArrayViewMut<'_, A, D>,
        grad: ArrayView<'_, A, D>,
        state: &mut Option<Self::State>,
    ) -> Result<(), Error>;
}

/// Optimizer states keyed by parameter name; serializable. Loading checks every state (its
/// optimizer, element type, shape and values, see [`AdamState`] and [`SgdState`]), so a resumed
/// run either continues exactly or fails with a message naming what does not fit.
///
/// ```
/// use chandir::optim::{ParamStates, SgdState};
/// let states: ParamStates<SgdState<f32>> = ParamStates::default();
/// let json = serde_json::to_string(&states).unwrap();
/// let back: ParamStates<SgdState<f32>> = serde_json::from_str(&json).unwrap();
/// assert!(back.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: DeserializeOwned"))]
pub struct ParamStates<S> {
    states: BTreeMap<String, Option<S>>,
}

impl<S> Default for ParamStates<S> {
    fn default() -> Self {
        ParamStates {
            states: BTreeMap::new(),
        }
    }
}

impl<S> ParamStates<S> {
    /// The state of parameter `name`, if it has stepped.
    pub fn get(&self, name: &str) -> Option<&S> {
        self.states.get(name).and_then(Option::as_ref)
    }

    /// The state slot of `name`, created empty if missing.
    pub fn slot(&mut self, name: &str) -> &mut Option<S> {
        self.states.entry(name.to_owned()).or_default()
    }

    /// Number of parameters with a slot.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no parameter has a slot.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

pub(crate) fn check_shapes(param: &[usize], grad: &[usize]) -> Result<(), Error> {
    if param == grad {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            param: param.to_vec(),
            grad: grad.to_vec(),
        })
    }
}

/// What an optimizer that does not know the parameter's name calls it in
/// [`Error::StateMismatch`]; [`ChannelDirectedOptimizer`] puts the name in.
pub(crate) const UNNAMED: &str = "(unnamed parameter)";

/// The state was made for a parameter of another shape.
pub(crate) fn check_state_shape(state: &[usize], param: &[usize]) -> Result<(), Error> {
    if state == param {
        Ok(())
    } else {
        Err(Error::StateMismatch {
            param: UNNAMED.to_owned(),
            reason: format!("the state is for shape {state:?}, the parameter has shape {param:?}"),
        })
    }
}

pub(crate) fn check_range(
    name: &'static str,
    value: f64,
    ok: bool,
    reason: &'static str,
) -> Result<(), Error> {
    if ok && !value.is_nan() {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            reason,
        })
    }
}

#[inline]
pub(crate) fn cast<A: Float>(x: f64) -> A {
    crate::solve::from_f64(x)
}

/// What a saved state says it is, and its buffers: the one serialized form of every state, so
/// that loading checks the optimizer kind and element type before anything else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "A: Element"))]
pub(crate) struct StateRecord<A> {
    pub(crate) optimizer: String,
    pub(crate) dtype: String,
    pub(crate) shape: Vec<usize>,
    #[serde(default)]
    pub(crate) step: Option<u64>,
    #[serde(default)]
    pub(crate) exp_avg: Option<ArrayD<A>>,
    #[serde(default)]
    pub(crate) exp_avg_sq: Option<ArrayD<A>>,
    #[serde(default)]
    pub(crate) momentum_buffer: Option<ArrayD<A>>,
}

/// [`StateRecord`] borrowed, for saving without a copy.
#[derive(Serialize)]
#[serde(bound(serialize = "A: Element"))]
pub(crate) struct StateRecordRef<'a, A> {
    pub(crate) optimizer: &'static str,
    pub(crate) dtype: &'static str,
    pub(crate) shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) step: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exp_avg: Option<&'a ArrayD<A>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exp_avg_sq: Option<&'a ArrayD<A>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) momentum_buffer: Option<&'a ArrayD<A>>,
}

impl<A: Element> StateRecord<A> {
    /// Refuses a record of another optimizer or element type.
    pub(crate) fn expect_kind(&self, optimizer: &'static str) -> Result<(), Error> {
        if self.optimizer == optimizer && self.dtype == A::DTYPE {
            Ok(())
        } else {
            Err(Error::StateKind {
                expected: format!("{optimizer} state of {}", A::DTYPE),
                found: format!("{} state of {}", self.optimizer, self.dtype),
            })
        }
    }
}

/// Refuses a buffer of another shape than the state says, or with a value that `valid` rejects.
pub(crate) fn check_buffer<A: Element>(
    name: &str,
    buffer: &ArrayD<A>,
    shape: &[usize],
    valid: impl Fn(A) -> bool,
    requirement: &str,
) -> Result<(), Error> {
    if buffer.shape() != shape {
        return Err(Error::InvalidState {
            reason: format!(
                "{name} has shape {:?}, the state says {shape:?}",
                buffer.shape()
            ),
        });
    }
    match buffer.iter().position(|&v| !valid(v)) {
        None => Ok(()),
        Some(index) => Err(Error::InvalidState {
            reason: format!(
                "{name} holds {:?} at flat index {index}: every value must be {requirement}",
                buffer.iter().nth(index).expect("found above")
            ),
        }),
    }
}
