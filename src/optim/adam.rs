//! Adam and AdamW.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};
use serde::{Deserialize, Serialize};

use super::{
    cast, check_buffer, check_non_negative, check_range, BufferRef, Element, Optimizer, ParamState,
    Recorded, StateRecord, StateRecordRef,
};
use crate::Error;

/// The optimizer kind written into saved [`AdamState`]s (Adam and AdamW share it).
pub(super) const KIND: &str = "adam";

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
        check_non_negative("lr", self.lr)?;
        let (b1, b2) = self.betas;
        check_range("betas.0", b1, (0.0..1.0).contains(&b1), "must be in [0, 1)")?;
        check_range("betas.1", b2, (0.0..1.0).contains(&b2), "must be in [0, 1)")?;
        check_non_negative("eps", self.eps)?;
        check_non_negative("weight_decay", self.weight_decay)?;
        Ok(Adam { config: self })
    }
}

optimizer_over_config! {
    /// Adam with `torch.optim.Adam`'s update rule (AdamW when [`AdamConfig::decoupled`]):
    /// `m ← m + (1 − β₁)(g − m)`, `v ← β₂v + (1 − β₂)g²`,
    /// `p ← p − (lr/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε)`.
    ///
    /// ```
    /// use chandir::optim::{AdamConfig, Optimizer};
    /// use ndarray::arr1;
    ///
    /// let adam = AdamConfig { lr: 0.1, ..Default::default() }.init()?;
    /// let mut p = arr1(&[1.0_f64]);
    /// let mut state = None;
    /// adam.step(p.view_mut(), arr1(&[3.0]).view(), &mut state)?;
    /// assert!((p[0] - 0.9).abs() < 1e-8); // the first step has size lr
    /// assert_eq!(state.unwrap().step(), 1);
    /// # Ok::<(), chandir::Error>(())
    /// ```
    Adam(AdamConfig)
}

/// The moments and step count of one parameter.
///
/// A saved state says what it is: the optimizer (`"adam"`, for Adam and AdamW), the element type
/// and the parameter shape. Loading checks all of it, so an `f64` state never loads as
/// `AdamState<f32>`, an SGD state never loads as an Adam one, and a state no run could produce
/// (a negative second moment, moments of different shapes) is refused; so is a step from a
/// counter at `u64::MAX`. Every state a run reaches loads, bit for bit (see the saved form of
/// [`ParamStates`](super::ParamStates)): an overflowing gradient leaves `exp_avg_sq = +∞` (and
/// `ε = 0` or `β₂ = 0` can make NaN of it), and the first moment can be ±∞ or NaN.
///
/// ```
/// use chandir::optim::{AdamConfig, AdamState, Optimizer, SgdState};
/// use ndarray::Array2;
///
/// let adam = AdamConfig::default().init()?;
/// let (mut p, g) = (Array2::<f32>::zeros((3, 2)), Array2::<f32>::ones((3, 2)));
/// let mut state = None;
/// adam.step(p.view_mut(), g.view(), &mut state)?;
/// let saved = serde_json::to_string(&state).unwrap();
/// assert!(saved.contains(r#""optimizer":"adam","dtype":"f32","shape":[3,2]"#));
/// let back: Option<AdamState<f32>> = serde_json::from_str(&saved).unwrap();
/// assert_eq!(back, state);
/// // the wrong element type or optimizer is refused, not rounded or dropped
/// assert!(serde_json::from_str::<Option<AdamState<f64>>>(&saved).is_err());
/// assert!(serde_json::from_str::<Option<SgdState<f32>>>(&saved).is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState<A> {
    step: u64,
    exp_avg: ArrayD<A>,
    exp_avg_sq: ArrayD<A>,
}

impl<A: Element> AdamState<A> {
    /// A state from its parts (e.g. converted from a PyTorch checkpoint), checked as a loaded one
    /// is: both moments of one shape, the second never negative (≥ 0, +∞ or NaN, which runs with
    /// overflowing gradients reach). The first moment may hold any value.
    ///
    /// ```
    /// use chandir::optim::AdamState;
    /// use chandir::Error;
    /// use ndarray::{arr1, ArrayD};
    ///
    /// let m = arr1(&[0.1_f64, -0.2]).into_dyn();
    /// assert!(AdamState::new(3, m.clone(), arr1(&[0.01, 0.04]).into_dyn()).is_ok());
    /// assert!(AdamState::new(3, m.clone(), arr1(&[f64::INFINITY, 0.04]).into_dyn()).is_ok());
    /// let negative = AdamState::new(3, m, arr1(&[0.01, -0.04]).into_dyn());
    /// assert!(matches!(negative, Err(Error::InvalidState { .. })));
    /// ```
    pub fn new(step: u64, exp_avg: ArrayD<A>, exp_avg_sq: ArrayD<A>) -> Result<Self, Error> {
        let shape = exp_avg.shape().to_vec();
        check_buffer("exp_avg", &exp_avg, &shape, |_| true, "a float")?;
        // NaN passes, as it must (see above); no run makes a negative moment.
        check_buffer(
            "exp_avg_sq",
            &exp_avg_sq,
            &shape,
            |v| v.is_nan() || v >= A::zero(),
            ">= 0, +inf or NaN",
        )?;
        Ok(AdamState {
            step,
            exp_avg,
            exp_avg_sq,
        })
    }

    /// Steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// First moment (`exp_avg` in PyTorch).
    pub fn exp_avg(&self) -> &ArrayD<A> {
        &self.exp_avg
    }

    /// Second moment (`exp_avg_sq` in PyTorch).
    pub fn exp_avg_sq(&self) -> &ArrayD<A> {
        &self.exp_avg_sq
    }

    /// The shape of the parameter this state belongs to.
    pub fn shape(&self) -> &[usize] {
        self.exp_avg.shape()
    }
}

impl_serde_via_record!(AdamState);

impl<A: Element> Recorded<A> for AdamState<A> {
    fn record(&self) -> StateRecordRef<'_, A> {
        StateRecordRef {
            step: Some(self.step),
            exp_avg: Some(BufferRef(&self.exp_avg)),
            exp_avg_sq: Some(BufferRef(&self.exp_avg_sq)),
            ..StateRecordRef::new(KIND, self.shape())
        }
    }

    fn from_record(record: StateRecord<A>) -> Result<Self, Error> {
        record.expect_kind(KIND)?;
        let missing = |field: &str| Error::InvalidState {
            reason: format!("an {KIND} state needs {field}"),
        };
        if record.momentum_buffer.is_some() {
            return Err(Error::InvalidState {
                reason: format!("an {KIND} state has no momentum_buffer"),
            });
        }
        let step = record.step.ok_or_else(|| missing("step"))?;
        let exp_avg = record.exp_avg.ok_or_else(|| missing("exp_avg"))?;
        let exp_avg = exp_avg.into_array()?;
        let exp_avg_sq = record.exp_avg_sq.ok_or_else(|| missing("exp_avg_sq"))?;
        let exp_avg_sq = exp_avg_sq.into_array()?;
        if exp_avg.shape() != record.shape.as_slice() {
            return Err(Error::InvalidState {
                reason: format!(
                    "exp_avg has shape {:?}, the state says {:?}",
                    exp_avg.shape(),
                    record.shape
                ),
            });
        }
        AdamState::new(step, exp_avg, exp_avg_sq)
    }
}

impl<A: Element> ParamState for AdamState<A> {
    fn shape(&self) -> &[usize] {
        self.exp_avg.shape()
    }

    fn check_next_step(&self) -> Result<(), Error> {
        match self.step.checked_add(1) {
            Some(_) => Ok(()),
            None => Err(Error::InvalidState {
                reason: format!("the step counter is at {} and cannot advance", self.step),
            }),
        }
    }
}

impl<A: Element> Optimizer<A> for Adam {
    type State = AdamState<A>;

    fn update(
        &self,
        mut param: ArrayViewMutD<'_, A>,
        grad: ArrayViewD<'_, A>,
        state: &mut Option<AdamState<A>>,
    ) -> Result<(), Error> {
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
