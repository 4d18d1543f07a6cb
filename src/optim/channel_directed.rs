//! The wrapper: take each gradient in a channel-directed metric, then let any optimizer step.

use std::collections::BTreeMap;

use ndarray::{ArrayViewMutD, Dimension};

use super::{check_shapes, Element, Optimizer, ParamStates};
use crate::{ChannelDirected, Error, RankPolicy};

/// How one parameter's gradient is treated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamRule {
    /// Smooth with the wrapper's preconditioner if the tensor has rank ≥ 3 (convolution weights);
    /// leave biases, norms and linear weights (rank ≤ 2) alone.
    Auto,
    /// Never smooth this parameter.
    Skip,
    /// Smooth with this preconditioner whatever the rank (its own λ, metric or axis).
    Use(ChannelDirected),
}

/// Runs a preconditioner on each raw gradient, then the inner optimizer's step: weight decay and
/// momentum see the smoothed gradient, as in the paper (the gradient is computed in the new metric,
/// then any optimizer runs).
///
/// ```
/// use chandir::optim::{AdamConfig, ChannelDirectedOptimizer, ParamRule, ParamStates};
/// use chandir::{ChannelDirected, Direction, Metric};
/// use ndarray::ArrayD;
///
/// let opt = ChannelDirectedOptimizer::new(AdamConfig::default().init()?, ChannelDirected::sobolev(1.0))
///     // opt a linear layer in, with its own λ
///     .with_rule("fc.weight", ParamRule::Use(ChannelDirected::sobolev(0.3)))
///     // a transposed convolution [in, out, k, k]: smooth along axis 1
///     .with_rule("up.weight", ParamRule::Use(ChannelDirected::new(Metric::default(), Direction::Axis(1))));
/// assert_eq!(opt.preconditioner_for("conv.bias", 1), None);
/// assert_eq!(opt.preconditioner_for("fc.weight", 2), Some(ChannelDirected::sobolev(0.3)));
///
/// let mut states = ParamStates::default();
/// let mut w = ArrayD::<f64>::zeros(vec![8, 4]);
/// let mut g = ArrayD::<f64>::ones(vec![8, 4]);
/// opt.step("fc.weight", w.view_mut(), g.view_mut(), &mut states)?;
/// assert!(states.get("fc.weight").is_some());
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChannelDirectedOptimizer<O> {
    inner: O,
    preconditioner: ChannelDirected,
    rules: BTreeMap<String, ParamRule>,
}

impl<O> ChannelDirectedOptimizer<O> {
    /// Wraps `inner`; parameters without a rule follow [`ParamRule::Auto`] with `preconditioner`.
    pub fn new(inner: O, preconditioner: ChannelDirected) -> Self {
        ChannelDirectedOptimizer {
            inner,
            preconditioner,
            rules: BTreeMap::new(),
        }
    }

    /// Sets the rule for the parameter called `name`.
    pub fn with_rule(mut self, name: impl Into<String>, rule: ParamRule) -> Self {
        self.rules.insert(name.into(), rule);
        self
    }

    /// The inner optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The inner optimizer, e.g. to change its learning rate.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// The default preconditioner.
    pub fn preconditioner(&self) -> &ChannelDirected {
        &self.preconditioner
    }

    /// The preconditioner applied to parameter `name` of rank `ndim`, if any.
    pub fn preconditioner_for(&self, name: &str, ndim: usize) -> Option<ChannelDirected> {
        match self.rules.get(name).copied().unwrap_or(ParamRule::Auto) {
            ParamRule::Auto => RankPolicy::from(self.preconditioner).preconditioner_for_rank(ndim),
            ParamRule::Skip => None,
            ParamRule::Use(cd) => Some(cd),
        }
    }

    /// Smooths `grad` in place (per the rule for `name`), then steps `param` with the inner optimizer,
    /// keeping its state in `states[name]`. Everything is validated first: on error neither `param`,
    /// `grad` nor `states` has changed.
    pub fn step<A: Element>(
        &self,
        name: &str,
        param: ArrayViewMutD<'_, A>,
        mut grad: ArrayViewMutD<'_, A>,
        states: &mut ParamStates<O::State>,
    ) -> Result<(), Error>
    where
        O: Optimizer<A>,
    {
        check_shapes(&param.view(), &grad.view())?;
        let preconditioner = self.preconditioner_for(name, param.raw_dim().ndim());
        if let Some(cd) = &preconditioner {
            cd.validate(param.ndim())?;
        }
        self.inner
            .check(&param.view(), &grad.view(), states.get(name))?;
        if let Some(cd) = preconditioner {
            cd.apply(&mut grad)?;
        }
        self.inner.step(param, grad.view(), states.slot(name))
    }
}
