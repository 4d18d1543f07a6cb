//! Adam and AdamW.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};
use serde::{Deserialize, Serialize};

use super::{cast, check_buffer, check_range, check_shapes, Element, Optimizer};
use crate::Error;

/// Hyperparameters of [`Adam`], defaults as in `torch.optim.Adam`; `decoupled = true` is AdamW.
///
/// ```
/// use chandir::optim::AdamConfig;
/// let adamw = AdamConfig::adamw(1e-3, 0.01).init()?;
/// assert!(adamw.config().decoupled);
/// assert!(AdamConfig { betas: (1.0, 0.999), ..Default::default() }.init().is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moments (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay (default 0): an L2 term in the gradient, or decoupled (AdamW).
    pub weight_decay: f64,
    /// AdamW: decay the weights directly, `p ← p·(1 − lr·wd)`, instead of adding `wd·p` to the gradient.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

impl AdamConfig {
    /// AdamW with `torch.optim.AdamW`'s other defaults.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        AdamConfig {
            lr,
            weight_decay,
            decoupled: true,
            ..Default::default()
        }
    }

    /// Validates the hyperparameters and builds the optimizer.
    pub fn init(self) -> Result<Adam, Error> {
        check_range(
            "lr",
            self.lr,
            self.lr >= 0.0 && self.lr.is_finite(),
            "must be finite and >= 0",
        )?;
        let (b1, b2) = self.betas;
        check_range("betas.0", b1, (0.0..1.0).contains(&b1), "must be in [0, 1)")?;
        check_range("betas.1", b2, (0.0..1.0).contains(&b2), "must be in [0, 1)")?;
        check_range(
            "eps",
            self.eps,
            self.eps >= 0.0 && self.eps.is_finite(),
            "must be finite and >= 0",
        )?;
        check_range(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0 && self.weight_decay.is_finite(),
            "must be finite and >= 0",
        )?;
        Ok(Adam { config: self })
    }
}

/// Adam with `torch.optim.Adam`'s update rule (AdamW when [`AdamConfig::decoupled`]):
/// `m ← m + (1 − β₁)(g − m)`, `v ← β₂v + (1 − β₂)g²`,
/// `p ← p − (lr/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε)`.
///
/// ```
/// use chandir::optim::{AdamConfig, Optimizer};
/// use ndarray::arr1;
///
/// let adam = AdamConfig { lr: 0.1, ..Default::default() }.init()?;
/// let mut p = arr1(&[1.0_f64]).into_dyn();
/// let mut state = None;
/// adam.step(p.view_mut(), arr1(&[3.0]).into_dyn().view(), &mut state)?;
/// assert!((p[[0]] - 0.9).abs() < 1e-8); // the first step has size lr
/// assert_eq!(state.unwrap().step, 1);
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    config: AdamConfig,
}

impl Adam {
    /// The validated hyperparameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Changes the learning rate (for schedules).
    pub fn set_lr(&mut self, lr: f64) -> Result<(), Error> {
        self.config = AdamConfig { lr, ..self.config }.init()?.config;
        Ok(())
    }
}

/// The moments and step count of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamState<A> {
    /// Steps taken.
    pub step: u64,
    /// First moment.
    pub exp_avg: ArrayD<A>,
    /// Second moment.
    pub exp_avg_sq: ArrayD<A>,
}

impl<A: Element> Optimizer<A> for Adam {
    type State = AdamState<A>;

    fn check(
        &self,
        param: &ArrayViewD<'_, A>,
        grad: &ArrayViewD<'_, A>,
        state: Option<&AdamState<A>>,
    ) -> Result<(), Error> {
        check_shapes(param, grad)?;
        if let Some(s) = state {
            check_buffer("exp_avg", &s.exp_avg.view(), param)?;
            check_buffer("exp_avg_sq", &s.exp_avg_sq.view(), param)?;
        }
        Ok(())
    }

    fn step(
        &self,
        mut param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<AdamState<A>>,
    ) -> Result<(), Error> {
        self.check(&param.view(), &grad, state.as_ref())?;
        let c = &self.config;
        let (b1, b2) = c.betas;
        let s = state.get_or_insert_with(|| AdamState {
            step: 0,
            exp_avg: ArrayD::zeros(param.raw_dim()),
            exp_avg_sq: ArrayD::zeros(param.raw_dim()),
        });
        s.step += 1;
        let step = s.step as f64;
        let mut grad = grad.to_owned();
        if c.weight_decay != 0.0 {
            if c.decoupled {
                let decay = cast::<A>(1.0 - c.lr * c.weight_decay);
                param.mapv_inplace(|p| p * decay);
            } else {
                let wd = cast::<A>(c.weight_decay);
                Zip::from(&mut grad)
                    .and(&param)
                    .for_each(|g, &p| *g = *g + wd * p);
            }
        }
        let (w1, keep2, w2) = (cast::<A>(1.0 - b1), cast::<A>(b2), cast::<A>(1.0 - b2));
        Zip::from(&mut s.exp_avg)
            .and(&mut s.exp_avg_sq)
            .and(&grad)
            .for_each(|m, v, &g| {
                *m = *m + w1 * (g - *m);
                *v = *v * keep2 + w2 * g * g;
            });
        let step_size = cast::<A>(c.lr / (1.0 - b1.powf(step)));
        let correction2_sqrt = cast::<A>((1.0 - b2.powf(step)).sqrt());
        let eps = cast::<A>(c.eps);
        Zip::from(&mut param)
            .and(&s.exp_avg)
            .and(&s.exp_avg_sq)
            .for_each(|p, &m, &v| {
                *p = *p - step_size * (m / (v.sqrt() / correction2_sqrt + eps));
            });
        Ok(())
    }
}
