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

/// The `Serialize` and `Deserialize` impls of a state that saves as one [`StateRecord`], from its
/// [`Recorded`] impl (serde's traits are foreign, so no blanket impl can give them).
macro_rules! impl_serde_via_record {
    ($state:ident) => {
        impl<A: $crate::Element> serde::Serialize for $state<A> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&$crate::optim::Recorded::record(self), serializer)
            }
        }

        impl<'de, A: $crate::Element> serde::Deserialize<'de> for $state<A> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let record = <$crate::optim::StateRecord<A> as serde::Deserialize>::deserialize(
                    deserializer,
                )?;
                <Self as $crate::optim::Recorded<A>>::from_record(record)
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An optimizer `$optimizer` that holds its validated config `$config` (whose `init` makes it),
/// with the two methods every optimizer has over that config.
macro_rules! optimizer_over_config {
    ($(#[$doc:meta])* $optimizer:ident($config:ident)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $optimizer {
            config: $config,
        }

        impl $optimizer {
            /// The validated hyperparameters.
            pub fn config(&self) -> &$config {
                &self.config
            }

            /// Changes the learning rate (for schedules).
            pub fn set_lr(&mut self, lr: f64) -> Result<(), $crate::Error> {
                self.config = $config { lr, ..self.config }.init()?.config;
                Ok(())
            }
        }
    };
}

mod adam;
mod channel_directed;
mod dynamic;
pub(crate) mod model;
mod sgd;

use std::collections::BTreeMap;
use std::fmt::Debug;

use ndarray::{ArrayD, ArrayView, ArrayViewD, ArrayViewMut, ArrayViewMutD, Dimension};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use adam::{Adam, AdamConfig, AdamState};
pub use channel_directed::{ChannelDirectedOptimizer, ParamRule};
pub use dynamic::{DynOptimizer, KnownState, OptimizerState};
pub use model::precondition_each;
pub use sgd::{Sgd, SgdConfig, SgdState};

pub use crate::Element;
use crate::Error;

/// What every optimizer state says of itself: the shape of the parameter it belongs to, and
/// whether it can take one more step. [`Optimizer::check`] reads it, so an optimizer gets its
/// checks from the trait.
pub trait ParamState: Clone + Debug + Serialize + DeserializeOwned + Send + Sync {
    /// The shape of the parameter this state belongs to.
    fn shape(&self) -> &[usize];

    /// Whether the state can take one more step (e.g. a step counter that is not exhausted).
    fn check_next_step(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// A first-order optimizer for one parameter tensor at a time, of any rank (`Array1` … `Array4`,
/// `ArrayD`: pass `.view_mut()` and `.view()`).
///
/// An optimizer implements one method, [`update`](Optimizer::update), as burn-optim's
/// `SimpleOptimizer` does; the checks (shapes, the state's shape and whether it can take another
/// step) and [`step`](Optimizer::step) come from the trait. To choose an optimizer at run time,
/// hold it as a `Box<dyn` [`DynOptimizer`]`>`.
///
/// ```
/// use chandir::optim::{Optimizer, ParamState};
/// use chandir::Error;
/// use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
/// use serde::{Deserialize, Serialize};
///
/// /// Sign descent: p ← p − lr·sign(g). Its state only records the shape.
/// struct SignSgd { lr: f32 }
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Shape(Vec<usize>);
/// impl ParamState for Shape {
///     fn shape(&self) -> &[usize] { &self.0 }
/// }
///
/// impl Optimizer<f32> for SignSgd {
///     type State = Shape;
///     fn update(
///         &self,
///         mut param: ArrayViewMutD<'_, f32>,
///         grad: ArrayViewD<'_, f32>,
///         state: &mut Option<Shape>,
///     ) -> Result<(), Error> {
///         state.get_or_insert_with(|| Shape(param.shape().to_vec()));
///         Zip::from(&mut param).and(&grad).for_each(|p, &g| *p -= self.lr * g.signum());
///         Ok(())
///     }
/// }
///
/// let mut p = ndarray::arr1(&[1.0_f32, 1.0]);
/// let mut state = None;
/// SignSgd { lr: 0.5 }.step(p.view_mut(), ndarray::arr1(&[3.0, -0.1]).view(), &mut state)?;
/// assert_eq!(p, ndarray::arr1(&[0.5, 1.5]));
/// // the checks come from the trait: a gradient of another shape is refused
/// let wrong = ndarray::arr1(&[1.0_f32]);
/// assert!(SignSgd { lr: 0.5 }.step(p.view_mut(), wrong.view(), &mut state).is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
pub trait Optimizer<A: Element>: Send + Sync {
    /// Per-parameter state (momentum buffers, moments, step count). It records the optimizer, the
    /// element type and the parameter shape it belongs to, and is validated when it is loaded.
    type State: ParamState;

    /// Updates `param` with `grad`, once [`check`](Optimizer::check) has passed: the one method
    /// an optimizer implements. `state` is `None` before the first step and is filled in by it.
    /// It may only fail where `check` would have (on error nothing may have changed).
    fn update(
        &self,
        param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<Self::State>,
    ) -> Result<(), Error>;

    /// Checks that `grad` and `state` fit `param` and that the state can take one more step,
    /// without changing anything. [`step`](Optimizer::step) fails exactly when this does.
    fn check<D: Dimension>(
        &self,
        param: &ArrayView<'_, A, D>,
        grad: &ArrayView<'_, A, D>,
        state: Option<&Self::State>,
    ) -> Result<(), Error> {
        check_shapes(param.shape(), grad.shape())?;
        if let Some(state) = state {
            check_state_shape(state.shape(), param.shape())?;
            state.check_next_step()?;
        }
        Ok(())
    }

    /// Updates `param` with `grad` after [`check`](Optimizer::check). `state` is `None` before
    /// the first step and is filled in by it. On error nothing has changed.
    fn step<D: Dimension>(
        &self,
        param: ArrayViewMut<'_, A, D>,
        grad: ArrayView<'_, A, D>,
        state: &mut Option<Self::State>,
    ) -> Result<(), Error> {
        self.check(&param.view(), &grad, state.as_ref())?;
        self.update(param.into_dyn(), grad.into_dyn(), state)
    }
}

/// Optimizer states keyed by parameter name; serializable. Loading checks every state (its
/// optimizer, element type, shape and values, see [`AdamState`] and [`SgdState`]), so a resumed
/// run either continues exactly or fails with a message naming what does not fit.
///
/// # Saved form
///
/// Every state a run can reach loads back **bit for bit** through JSON (`serde_json`, the
/// format these docs and the tests use; other self-describing serde formats store the same
/// record): the buffers are saved as `{"dim": [..], "bits": [..]}`, the IEEE 754 bit pattern of each value
/// as an unsigned integer (`u32` for `f32`, `u64` for `f64`) in row-major order. So ±∞ (Adam's
/// second moment after a gradient of 1e200 in f64, a momentum buffer after two `f64::MAX`
/// gradients), NaN with its sign and payload, subnormals and −0.0 survive JSON, which has no
/// number for them and whose decimal parsers need not round-trip the others exactly
/// (`serde_json` writes ∞ and NaN as `null`). States saved by earlier versions, with the values
/// as numbers (ndarray's `{"v": 1, "dim": [..], "data": [..]}`), still load.
///
/// ```
/// use chandir::optim::{AdamConfig, AdamState, Optimizer, ParamStates};
/// use ndarray::arr1;
///
/// let adam = AdamConfig::default().init()?;
/// let mut states = ParamStates::<AdamState<f64>>::default();
/// let mut p = arr1(&[1.0_f64, -0.0]);
/// adam.step(p.view_mut(), arr1(&[1e200, 5e-324]).view(), states.slot("w"))?;
/// assert_eq!(states.get("w").unwrap().exp_avg_sq()[0], f64::INFINITY); // (1e200)² overflows
///
/// let json = serde_json::to_string(&states).unwrap();
/// let back: ParamStates<AdamState<f64>> = serde_json::from_str(&json).unwrap();
/// let bits = |s: &ParamStates<AdamState<f64>>| -> Vec<u64> {
///     let state = s.get("w").unwrap();
///     state.exp_avg().iter().chain(state.exp_avg_sq()).map(|v| v.to_bits()).collect()
/// };
/// assert_eq!(bits(&back), bits(&states));
/// # Ok::<(), chandir::Error>(())
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

/// `Ok` if `ok`, else the error `error` makes: the one form of every check here.
fn ensure(ok: bool, error: impl FnOnce() -> Error) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(error())
    }
}

pub(crate) fn check_shapes(param: &[usize], grad: &[usize]) -> Result<(), Error> {
    ensure(param == grad, || Error::ShapeMismatch {
        param: param.to_vec(),
        grad: grad.to_vec(),
    })
}

/// What an optimizer that does not know the parameter's name calls it in
/// [`Error::StateMismatch`]; [`ChannelDirectedOptimizer`] puts the name in.
pub(crate) const UNNAMED: &str = "(unnamed parameter)";

/// The state was made for a parameter of another shape.
pub(crate) fn check_state_shape(state: &[usize], param: &[usize]) -> Result<(), Error> {
    ensure(state == param, || Error::StateMismatch {
        param: UNNAMED.to_owned(),
        reason: format!("the state is for shape {state:?}, the parameter has shape {param:?}"),
    })
}

pub(crate) fn check_range(
    name: &'static str,
    value: f64,
    ok: bool,
    reason: &'static str,
) -> Result<(), Error> {
    ensure(ok && !value.is_nan(), || Error::InvalidHyperparameter {
        name,
        value,
        reason,
    })
}

/// The check of the hyperparameters that must be finite and >= 0 (lr, weight decay, …).
pub(crate) fn check_non_negative(name: &'static str, value: f64) -> Result<(), Error> {
    check_range(
        name,
        value,
        value >= 0.0 && value.is_finite(),
        "must be finite and >= 0",
    )
}

#[inline]
pub(crate) fn cast<A: Element>(x: f64) -> A {
    crate::element::from_f64(x)
}

/// A state that saves as one [`StateRecord`]; `impl_serde_via_record!` gives it serde's traits.
pub(crate) trait Recorded<A: Element>: Sized {
    /// The record this state saves as, borrowing its buffers.
    fn record(&self) -> StateRecordRef<'_, A>;

    /// The state a loaded record holds, with every check of its kind; the record's kind and
    /// element type are checked first.
    fn from_record(record: StateRecord<A>) -> Result<Self, Error>;
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
    pub(crate) exp_avg: Option<Buffer<A>>,
    #[serde(default)]
    pub(crate) exp_avg_sq: Option<Buffer<A>>,
    #[serde(default)]
    pub(crate) momentum_buffer: Option<Buffer<A>>,
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
    pub(crate) exp_avg: Option<BufferRef<'a, A>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exp_avg_sq: Option<BufferRef<'a, A>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) momentum_buffer: Option<BufferRef<'a, A>>,
}

impl<'a, A: Element> StateRecordRef<'a, A> {
    /// The record of an `optimizer` state for a parameter of `shape`, with no buffers.
    pub(crate) fn new(optimizer: &'static str, shape: &'a [usize]) -> Self {
        StateRecordRef {
            optimizer,
            dtype: A::DTYPE,
            shape,
            step: None,
            exp_avg: None,
            exp_avg_sq: None,
            momentum_buffer: None,
        }
    }
}

/// A state's buffer as it is saved: its shape and the bit pattern of every value, row-major
/// (see [`ParamStates`]).
pub(crate) struct BufferRef<'a, A>(pub(crate) &'a ArrayD<A>);

impl<A: Element> Serialize for BufferRef<'_, A> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};

        /// The bit patterns, `u32` for `f32` and `u64` for `f64`.
        struct Bits<'a, A>(&'a ArrayD<A>);
        impl<A: Element> Serialize for Bits<'_, A> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for &value in self.0.iter() {
                    let bits = value.to_bits_u64();
                    match u32::try_from(bits) {
                        Ok(narrow) if A::DTYPE == "f32" => seq.serialize_element(&narrow)?,
                        _ => seq.serialize_element(&bits)?,
                    }
                }
                seq.end()
            }
        }

        let mut record = serializer.serialize_struct("Buffer", 2)?;
        record.serialize_field("dim", self.0.shape())?;
        record.serialize_field("bits", &Bits(self.0))?;
        record.end()
    }
}

/// A loaded buffer: the saved form of [`BufferRef`], or the values as numbers (ndarray's own
/// form, which earlier versions saved). Turned into an array by [`Buffer::into_array`], once the
/// record's kind has been checked, so that the wrong element type is reported as such.
pub(crate) struct Buffer<A> {
    dim: Vec<usize>,
    bits: Option<Vec<u64>>,
    data: Option<Vec<A>>,
}

impl<'de, A: Element> Deserialize<'de> for Buffer<A> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[serde(bound(deserialize = "A: Element"))]
        struct Record<A> {
            #[serde(default)]
            v: Option<u8>,
            dim: Vec<usize>,
            #[serde(default)]
            bits: Option<Vec<u64>>,
            #[serde(default)]
            data: Option<Vec<A>>,
        }

        let record = Record::<A>::deserialize(deserializer)?;
        if record.v.is_some_and(|v| v != 1) {
            return Err(D::Error::custom(Error::InvalidState {
                reason: format!(
                    "a buffer of format version {:?}, this version reads 1",
                    record.v
                ),
            }));
        }
        Ok(Buffer {
            dim: record.dim,
            bits: record.bits,
            data: record.data,
        })
    }
}

impl<A: Element> Buffer<A> {
    /// The array: every bit pattern a value of `A`, as many values as the shape holds.
    pub(crate) fn into_array(self) -> Result<ArrayD<A>, Error> {
        let invalid = |reason: String| Error::InvalidState { reason };
        let values = match (self.bits, self.data) {
            (Some(bits), None) => bits
                .into_iter()
                .map(|b| {
                    A::from_bits_u64(b).ok_or_else(|| {
                        invalid(format!("{b} is not the bit pattern of an {}", A::DTYPE))
                    })
                })
                .collect::<Result<Vec<A>, _>>()?,
            (None, Some(data)) => data,
            _ => {
                return Err(invalid(
                    "a buffer needs either bits or data, not both".to_owned(),
                ))
            }
        };
        let len = values.len();
        ArrayD::from_shape_vec(self.dim.clone(), values).map_err(|_| {
            invalid(format!(
                "a buffer of shape {:?} holds {len} values",
                self.dim
            ))
        })
    }
}

impl<A: Element> StateRecord<A> {
    /// Refuses a record of another optimizer or element type.
    pub(crate) fn expect_kind(&self, optimizer: &'static str) -> Result<(), Error> {
        ensure(
            self.optimizer == optimizer && self.dtype == A::DTYPE,
            || Error::StateKind {
                expected: format!("{optimizer} state of {}", A::DTYPE),
                found: format!("{} state of {}", self.optimizer, self.dtype),
            },
        )
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
