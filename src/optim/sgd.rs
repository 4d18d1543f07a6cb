//! Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};
use serde::{Deserialize, Serialize};

use super::{cast, check_buffer, check_range, check_shapes, Element, Optimizer};
use crate::Error;

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
        check_range(
            "lr",
            self.lr,
            self.lr >= 0.0 && self.lr.is_finite(),
            "must be finite and >= 0",
        )?;
        check_range(
            "momentum",
            self.momentum,
            self.momentum >= 0.0 && self.momentum.is_finite(),
            "must be finite and >= 0",
        )?;
        check_range(
            "dampening",
            self.dampening,
            self.dampening.is_finite(),
            "must be finite",
        )?;
        check_range(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0 && self.weight_decay.is_finite(),
            "must be finite and >= 0",
        )?;
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

/// SGD with `torch.optim.SGD`'s update rule:
/// `d = g + wd·p`; `b = d` at the first step, then `b ← μ·b + (1 − τ)·d`; `d = d + μ·b` (Nesterov)
/// or `d = b`; `p ← p − lr·d`.
///
/// ```
/// use chandir::optim::{Optimizer, SgdConfig};
/// use ndarray::arr1;
///
/// let sgd = SgdConfig { lr: 0.5, ..Default::default() }.init()?;
/// let mut p = arr1(&[1.0_f64, 2.0]).into_dyn();
/// let g = arr1(&[2.0_f64, 2.0]).into_dyn();
/// let mut state = None;
/// sgd.step(p.view_mut(), g.view(), &mut state)?;
/// assert_eq!(p, arr1(&[0.0, 1.0]).into_dyn());
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    config: SgdConfig,
}

impl Sgd {
    /// The validated hyperparameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// Changes the learning rate (for schedules).
    pub fn set_lr(&mut self, lr: f64) -> Result<(), Error> {
        self.config = SgdConfig { lr, ..self.config }.init()?.config;
        Ok(())
    }
}

/// The momentum buffer of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdState<A> {
    /// `None` when momentum is 0.
    pub momentum_buffer: Option<ArrayD<A>>,
}

impl<A: Element> Optimizer<A> for Sgd {
    type State = SgdState<A>;

    fn check(
        &self,
        param: &ArrayViewD<'_, A>,
        grad: &ArrayViewD<'_, A>,
        state: Option<&SgdState<A>>,
    ) -> Result<(), Error> {
        check_shapes(param, grad)?;
        if let Some(buffer) = state.and_then(|s| s.momentum_buffer.as_ref()) {
            check_buffer("momentum_buffer", &buffer.view(), param)?;
        }
        Ok(())
    }

    fn step(
        &self,
        mut param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<SgdState<A>>,
    ) -> Result<(), Error> {
        self.check(&param.view(), &grad, state.as_ref())?;
        let c = &self.config;
        let (lr, wd, mu): (A, A, A) = (cast(c.lr), cast(c.weight_decay), cast(c.momentum));
        let keep = cast::<A>(1.0 - c.dampening);
        let mut direction = grad.to_owned();
        if c.weight_decay != 0.0 {
            Zip::from(&mut direction)
                .and(&param)
                .for_each(|d, &p| *d = *d + wd * p);
        }
        if c.momentum != 0.0 {
            let slot = state.get_or_insert(SgdState {
                momentum_buffer: None,
            });
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
        } else {
            state.get_or_insert(SgdState {
                momentum_buffer: None,
            });
        }
        Zip::from(&mut param)
            .and(&direction)
            .for_each(|p, &d| *p = *p + (-lr) * d);
        Ok(())
    }
}
