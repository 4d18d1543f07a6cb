//! Optimizers chosen at run time: the object-safe [`DynOptimizer`] over one state type,
//! [`OptimizerState`], that still saves and loads as the typed state it holds.

use ndarray::{ArrayView, ArrayViewD, ArrayViewMut, ArrayViewMutD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{AdamState, Element, Optimizer, ParamState, Recorded, SgdState, StateRecord};
use crate::Error;

/// The state of any of the crate's optimizers: what a [`DynOptimizer`] keeps per parameter.
///
/// It saves exactly as the state it holds (so a [`ParamStates`](super::ParamStates) of
/// `OptimizerState` and one of `SgdState` or `AdamState` read each other's files) and loads as the
/// kind the file names, with every check of that kind; stepping it with another optimizer is an
/// [`Error::StateKind`], before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerState<A> {
    /// [`Sgd`](super::Sgd)'s momentum buffer.
    Sgd(SgdState<A>),
    /// [`Adam`](super::Adam)'s (and AdamW's) moments and step count.
    Adam(AdamState<A>),
}

impl<A: Element> OptimizerState<A> {
    /// The optimizer this state belongs to, as saved states name it.
    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerState::Sgd(_) => <SgdState<A> as KnownState<A>>::KIND,
            OptimizerState::Adam(_) => <AdamState<A> as KnownState<A>>::KIND,
        }
    }
}

impl<A: Element> ParamState for OptimizerState<A> {
    fn shape(&self) -> &[usize] {
        match self {
            OptimizerState::Sgd(state) => ParamState::shape(state),
            OptimizerState::Adam(state) => ParamState::shape(state),
        }
    }

    fn check_next_step(&self) -> Result<(), Error> {
        match self {
            OptimizerState::Sgd(state) => state.check_next_step(),
            OptimizerState::Adam(state) => state.check_next_step(),
        }
    }
}

impl<A: Element> Serialize for OptimizerState<A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OptimizerState::Sgd(state) => state.serialize(serializer),
            OptimizerState::Adam(state) => state.serialize(serializer),
        }
    }
}

impl<'de, A: Element> Deserialize<'de> for OptimizerState<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let record = StateRecord::<A>::deserialize(deserializer)?;
        let state = match record.optimizer.as_str() {
            super::sgd::KIND => SgdState::from_record(record).map(OptimizerState::Sgd),
            super::adam::KIND => AdamState::from_record(record).map(OptimizerState::Adam),
            other => Err(Error::StateKind {
                expected: format!(
                    "{} or {} state of {}",
                    super::sgd::KIND,
                    super::adam::KIND,
                    A::DTYPE
                ),
                found: format!("{other} state of {}", record.dtype),
            }),
        };
        state.map_err(serde::de::Error::custom)
    }
}

/// A typed state that an [`OptimizerState`] can hold: what lets an [`Optimizer`] be used as a
/// [`DynOptimizer`]. Implemented for [`SgdState`] and [`AdamState`].
pub trait KnownState<A>: ParamState {
    /// The optimizer kind, as saved states name it.
    const KIND: &'static str;
    /// The state, wrapped.
    fn wrap(self) -> OptimizerState<A>;
    /// The typed state, or `None` if it holds another kind.
    fn unwrap(state: OptimizerState<A>) -> Option<Self>;
    /// The typed state borrowed, or `None` if it holds another kind.
    fn unwrap_ref(state: &OptimizerState<A>) -> Option<&Self>;
}

/// [`KnownState`] for `$state`, the state `OptimizerState::$variant` holds, saved as `$kind`.
macro_rules! impl_known_state {
    ($state:ident, $variant:ident, $kind:expr) => {
        impl<A: Element> KnownState<A> for $state<A> {
            const KIND: &'static str = $kind;
            fn wrap(self) -> OptimizerState<A> {
                OptimizerState::$variant(self)
            }
            fn unwrap(state: OptimizerState<A>) -> Option<Self> {
                match state {
                    OptimizerState::$variant(state) => Some(state),
                    _ => None,
                }
            }
            fn unwrap_ref(state: &OptimizerState<A>) -> Option<&Self> {
                match state {
                    OptimizerState::$variant(state) => Some(state),
                    _ => None,
                }
            }
        }
    };
}

impl_known_state!(SgdState, Sgd, super::sgd::KIND);
impl_known_state!(AdamState, Adam, super::adam::KIND);

/// An [`Optimizer`] as a trait object, for optimizers chosen at run time (from a config string,
/// say): every state is an [`OptimizerState`], which saves and loads as the typed state it holds.
/// Every `Optimizer` whose state is a [`KnownState`] (SGD, Adam, AdamW) is one, and a
/// `Box<dyn DynOptimizer<A>>` is itself an [`Optimizer`], so it goes into
/// [`ChannelDirectedOptimizer`](super::ChannelDirectedOptimizer) like any other.
///
/// ```
/// use chandir::optim::{
///     AdamConfig, ChannelDirectedOptimizer, DynOptimizer, Optimizer, OptimizerState, ParamStates,
///     SgdConfig,
/// };
/// use chandir::ChannelDirected;
/// use ndarray::Array4;
///
/// fn from_config(name: &str) -> Result<Box<dyn DynOptimizer<f32>>, chandir::Error> {
///     Ok(match name {
///         "sgd" => Box::new(SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() }.init()?),
///         "adamw" => Box::new(AdamConfig::adamw(1e-3, 0.01).init()?),
///         _ => Box::new(AdamConfig::default().init()?),
///     })
/// }
/// let optimizers: Vec<Box<dyn DynOptimizer<f32>>> =
///     vec![from_config("sgd")?, from_config("adam")?, from_config("adamw")?];
///
/// for inner in optimizers {
///     let opt = ChannelDirectedOptimizer::new(inner, ChannelDirected::sobolev(1.0));
///     let mut states = ParamStates::<OptimizerState<f32>>::default();
///     let (mut w, mut g) = (Array4::<f32>::zeros((16, 8, 3, 3)), Array4::<f32>::ones((16, 8, 3, 3)));
///     opt.step("conv.weight", w.view_mut(), g.view_mut(), &mut states)?;
///     // typed states: saved as the optimizer's own, loaded with its checks
///     let saved = serde_json::to_string(&states).unwrap();
///     let back: ParamStates<OptimizerState<f32>> = serde_json::from_str(&saved).unwrap();
///     assert_eq!(back, states);
/// }
///
/// // an Adam state handed to SGD is refused before anything moves
/// let (sgd, adam) = (from_config("sgd")?, from_config("adam")?);
/// let (mut w, g) = (Array4::<f32>::zeros((4, 2, 1, 1)), Array4::<f32>::ones((4, 2, 1, 1)));
/// let mut state = None;
/// adam.step(w.view_mut(), g.view(), &mut state)?;
/// let before = w.clone();
/// assert!(matches!(sgd.step(w.view_mut(), g.view(), &mut state), Err(chandir::Error::StateKind { .. })));
/// assert_eq!(w, before);
/// # Ok::<(), chandir::Error>(())
/// ```
pub trait DynOptimizer<A: Element>: Send + Sync {
    /// [`Optimizer::check`] on an [`OptimizerState`], which must hold this optimizer's kind.
    fn check_dyn(
        &self,
        param: ArrayViewD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: Option<&OptimizerState<A>>,
    ) -> Result<(), Error>;

    /// [`Optimizer::step`] on an [`OptimizerState`], which must hold this optimizer's kind (or be
    /// `None`). On error nothing has changed.
    fn step_dyn(
        &self,
        param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<OptimizerState<A>>,
    ) -> Result<(), Error>;
}

/// The error for a state of another optimizer's kind.
fn wrong_kind<A: Element, S: KnownState<A>>(found: &OptimizerState<A>) -> Error {
    Error::StateKind {
        expected: format!("{} state of {}", S::KIND, A::DTYPE),
        found: format!("{} state of {}", found.kind(), A::DTYPE),
    }
}

impl<A, O> DynOptimizer<A> for O
where
    A: Element,
    O: Optimizer<A>,
    O::State: KnownState<A>,
{
    fn check_dyn(
        &self,
        param: ArrayViewD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: Option<&OptimizerState<A>>,
    ) -> Result<(), Error> {
        let typed = match state {
            None => None,
            Some(state) => {
                Some(O::State::unwrap_ref(state).ok_or_else(|| wrong_kind::<A, O::State>(state))?)
            }
        };
        self.check(&param, &grad, typed)
    }

    fn step_dyn(
        &self,
        param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<OptimizerState<A>>,
    ) -> Result<(), Error> {
        self.check_dyn(param.view(), grad.view(), state.as_ref())?;
        // check_dyn accepted the state's kind, so it unwraps.
        let mut typed = state.take().and_then(O::State::unwrap);
        let result = self.update(param, grad, &mut typed);
        *state = typed.map(KnownState::wrap);
        result
    }
}

impl<A: Element> Optimizer<A> for Box<dyn DynOptimizer<A>> {
    type State = OptimizerState<A>;

    fn update(
        &self,
        param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<OptimizerState<A>>,
    ) -> Result<(), Error> {
        (**self).step_dyn(param, grad, state)
    }

    fn check<D: ndarray::Dimension>(
        &self,
        param: &ArrayView<'_, A, D>,
        grad: &ArrayView<'_, A, D>,
        state: Option<&OptimizerState<A>>,
    ) -> Result<(), Error> {
        (**self).check_dyn(param.view().into_dyn(), grad.view().into_dyn(), state)
    }

    fn step<D: ndarray::Dimension>(
        &self,
        param: ArrayViewMut<'_, A, D>,
        grad: ArrayView<'_, A, D>,
        state: &mut Option<OptimizerState<A>>,
    ) -> Result<(), Error> {
        (**self).step_dyn(param.into_dyn(), grad.into_dyn(), state)
    }
}
