//! Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};
use serde::{Deserialize, Serialize};

use super::{
    cast, check_buffer, check_non_negative, check_range, Buffer, BufferRef, Element, Optimizer,
    ParamState, Recorded, StateRecord, StateRecordRef,
};
use crate::Error;

/// The optimizer kind written into saved [`SgdState`]s.
pub(super) const KIND: &str = "sgd";

/// Hyperparameters of [`Sgd`], defaults as in `torch.optim.SGD`.
///
/// ```
/// use chandir::optim::SgdConfig;
/// let sgd = SgdConfig { lr: 0.1, momentum: 0.9, nesterov: true, ..Default::default() }.init()?;
/// assert_eq!(sgd.config().lr, 0.1);
/// assert!(SgdConfig { momentum: -1.0, ..Default::default() }.init().is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Momentum factor (default 0: none).
    pub momentum: f64,
    /// Dampening of the momentum (default 0).
    pub dampening: f64,
    /// Nesterov momentum (default false); needs `momentum > 0` and `dampening = 0`.
    pub nesterov: bool,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    /// Validates the hyperparameters and builds the optimizer.
    pub fn init(self) -> Result<Sgd, Error> {
        check_non_negative("lr", self.lr)?;
        check_non_negative("momentum", self.momentum)?;
        check_range(
            "dampening",
            self.dampening,
            self.dampening.is_finite(),
            "must be finite",
        )?;
        check_non_negative("weight_decay", self.weight_decay)?;
        if self.nesterov {
            check_range(
                "momentum",
                self.momentum,
                self.momentum > 0.0,
                "Nesterov needs momentum > 0",
            )?;
            check_range(
                "dampening",
                self.dampening,
                self.dampening == 0.0,
                "Nesterov needs dampening = 0",
            )?;
        }
        Ok(Sgd { config: self })
    }
}

optimizer_over_config! {
    /// SGD with `torch.optim.SGD`'s update rule:
    /// `d = g + wd·p`; `b = d` at the first step, then `b ← μ·b + (1 − τ)·d`; `d = d + μ·b` (Nesterov)
    /// or `d = b`; `p ← p − lr·d`.
    ///
    /// ```
    /// use chandir::optim::{Optimizer, SgdConfig};
    /// use ndarray::arr1;
    ///
    /// let sgd = SgdConfig { lr: 0.5, ..Default::default() }.init()?;
    /// let mut p = arr1(&[1.0_f64, 2.0]);
    /// let g = arr1(&[2.0_f64, 2.0]);
    /// let mut state = None;
    /// sgd.step(p.view_mut(), g.view(), &mut state)?;
    /// assert_eq!(p, arr1(&[0.0, 1.0]));
    /// # Ok::<(), chandir::Error>(())
    /// ```
    Sgd(SgdConfig)
}

/// The momentum buffer of one parameter.
///
/// A saved state says what it is (`"sgd"`, the element type, the parameter shape); loading checks
/// it, so an Adam state never loads as an SGD one with its moments dropped, and an `f64` state
/// never loads as `f32`. Every buffer a run reaches loads, bit for bit (see the saved form of
/// [`ParamStates`](super::ParamStates)): gradients that overflow leave ±∞ in it, and NaN after
/// them.
///
/// ```
/// use chandir::optim::{Optimizer, SgdConfig, SgdState};
/// use ndarray::Array3;
///
/// let sgd = SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() }.init()?;
/// let (mut p, g) = (Array3::<f64>::zeros((4, 2, 3)), Array3::<f64>::ones((4, 2, 3)));
/// let mut state = None;
/// sgd.step(p.view_mut(), g.view(), &mut state)?;
/// let saved = serde_json::to_string(&state).unwrap();
/// assert!(saved.starts_with(r#"{"optimizer":"sgd","dtype":"f64","shape":[4,2,3]"#));
/// let back: Option<SgdState<f64>> = serde_json::from_str(&saved).unwrap();
/// assert_eq!(back, state);
/// assert!(serde_json::from_str::<Option<SgdState<f32>>>(&saved).is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SgdState<A> {
    shape: Vec<usize>,
    momentum_buffer: Option<ArrayD<A>>,
}

impl<A: Element> SgdState<A> {
    /// A state from its parts (e.g. converted from a PyTorch checkpoint): the parameter shape and
    /// the momentum buffer (`None` when momentum is 0), which must have that shape; any value
    /// (±∞, NaN) is one a run can reach.
    ///
    /// ```
    /// use chandir::optim::SgdState;
    /// use ndarray::arr1;
    ///
    /// assert!(SgdState::new(vec![2], Some(arr1(&[0.5_f32, 1.0]).into_dyn())).is_ok());
    /// assert!(SgdState::new(vec![2], Some(arr1(&[f32::INFINITY, 1.0]).into_dyn())).is_ok());
    /// assert!(SgdState::<f32>::new(vec![3], Some(arr1(&[0.5, 1.0]).into_dyn())).is_err());
    /// ```
    pub fn new(shape: Vec<usize>, momentum_buffer: Option<ArrayD<A>>) -> Result<Self, Error> {
        if let Some(buffer) = &momentum_buffer {
            check_buffer("momentum_buffer", buffer, &shape, |_| true, "a float")?;
        }
        Ok(SgdState {
            shape,
            momentum_buffer,
        })
    }

    /// The momentum buffer; `None` when momentum is 0.
    pub fn momentum_buffer(&self) -> Option<&ArrayD<A>> {
        self.momentum_buffer.as_ref()
    }

    /// The shape of the parameter this state belongs to.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl_serde_via_record!(SgdState);

impl<A: Element> Recorded<A> for SgdState<A> {
    fn record(&self) -> StateRecordRef<'_, A> {
        StateRecordRef {
            momentum_buffer: self.momentum_buffer.as_ref().map(BufferRef),
            ..StateRecordRef::new(KIND, &self.shape)
        }
    }

    fn from_record(record: StateRecord<A>) -> Result<Self, Error> {
        record.expect_kind(KIND)?;
        if record.step.is_some() || record.exp_avg.is_some() || record.exp_avg_sq.is_some() {
            return Err(Error::InvalidState {
                reason: format!("an {KIND} state has only a momentum_buffer"),
            });
        }
        let buffer = record.momentum_buffer.map(Buffer::into_array).transpose()?;
        SgdState::new(record.shape, buffer)
    }
}

impl<A: Element> ParamState for SgdState<A> {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl<A: Element> Optimizer<A> for Sgd {
    type State = SgdState<A>;

    fn update(
        &self,
        mut param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<SgdState<A>>,
    ) -> Result<(), Error> {
        let c = &self.config;
        let (lr, wd, mu): (A, A, A) = (cast(c.lr), cast(c.weight_decay), cast(c.momentum));
        let keep = cast::<A>(1.0 - c.dampening);
        let mut direction = grad.to_owned();
        if c.weight_decay != 0.0 {
            Zip::from(&mut direction)
                .and(&param)
                .for_each(|d, &p| *d = *d + wd * p);
        }
        let slot = state.get_or_insert_with(|| SgdState {
            shape: param.shape().to_vec(),
            momentum_buffer: None,
        });
        if c.momentum != 0.0 {
            match &mut slot.momentum_buffer {
                None => slot.momentum_buffer = Some(direction.clone()),
                Some(buffer) => Zip::from(buffer)
                    .and(&direction)
                    .for_each(|b, &d| *b = *b * mu + d * keep),
            }
            let buffer = slot.momentum_buffer.as_ref().expect("set above");
            if c.nesterov {
                Zip::from(&mut direction)
                    .and(buffer)
                    .for_each(|d, &b| *d = *d + mu * b);
            } else {
                direction.assign(buffer);
            }
        }
        Zip::from(&mut param)
            .and(&direction)
            .for_each(|p, &d| *p = *p + (-lr) * d);
        Ok(())
    }
}
