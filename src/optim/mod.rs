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
//! use ndarray::ArrayD;
//!
//! let sgd = SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() }.init()?;
//! let opt = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0));
//! let mut states = ParamStates::default();
//!
//! let mut weight = ArrayD::<f32>::zeros(vec![16, 3, 3, 3]);
//! let mut grad = ArrayD::<f32>::ones(vec![16, 3, 3, 3]);
//! opt.step("conv1.weight", weight.view_mut(), grad.view_mut(), &mut states)?;
//! assert!((weight[[0, 0, 0, 0]] + 0.05).abs() < 1e-7);
//! # Ok::<(), chandir::Error>(())
//! ```

mod adam;
mod channel_directed;
mod sgd;

use std::collections::BTreeMap;
use std::fmt::Debug;

use ndarray::{ArrayViewD, ArrayViewMutD};
use num_traits::Float;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use adam::{Adam, AdamConfig, AdamState};
pub use channel_directed::{ChannelDirectedOptimizer, ParamRule};
pub use sgd::{Sgd, SgdConfig, SgdState};

use crate::Error;

/// The element types the optimizers work on (`f32`, `f64`).
pub trait Element: Float + Send + Sync + Debug + Serialize + DeserializeOwned + 'static {}
impl<T: Float + Send + Sync + Debug + Serialize + DeserializeOwned + 'static> Element for T {}

/// A first-order optimizer for one parameter tensor at a time.
pub trait Optimizer<A: Element>: Send + Sync {
    /// Per-parameter state (momentum buffers, moments, step count).
    type State: Clone + Debug + Serialize + DeserializeOwned + Send + Sync;

    /// Checks that `grad` and `state` fit `param`, without changing anything.
    fn check(
        &self,
        param: &ArrayViewD<'_, A>,
        grad: &ArrayViewD<'_, A>,
        state: Option<&Self::State>,
    ) -> Result<(), Error>;

    /// Updates `param` with `grad`. `state` is `None` before the first step and is filled in by it.
    /// On error nothing has changed.
    fn step(
        &self,
        param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<Self::State>,
    ) -> Result<(), Error>;
}

/// Optimizer states keyed by parameter name; serializable.
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

pub(crate) fn check_shapes<A>(
    param: &ArrayViewD<'_, A>,
    grad: &ArrayViewD<'_, A>,
) -> Result<(), Error> {
    if param.shape() == grad.shape() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            param: param.shape().to_vec(),
            grad: grad.shape().to_vec(),
        })
    }
}

pub(crate) fn check_buffer<A>(
    name: &'static str,
    buffer: &ArrayViewD<'_, A>,
    param: &ArrayViewD<'_, A>,
) -> Result<(), Error> {
    if buffer.shape() == param.shape() {
        Ok(())
    } else {
        Err(Error::StateMismatch {
            param: name.to_owned(),
            reason: format!(
                "buffer shape {:?} differs from parameter shape {:?}",
                buffer.shape(),
                param.shape()
            ),
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
