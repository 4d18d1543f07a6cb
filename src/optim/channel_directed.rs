//! The wrapper: take each gradient in a channel-directed metric, then let any optimizer step.

use std::collections::BTreeMap;

use ndarray::{ArrayViewMut, Dimension};

use super::{check_shapes, Element, Optimizer, ParamStates, UNNAMED};
use crate::threading::{run_balanced, Task};
use crate::{ChannelDirected, Error, Preconditioner, RankPolicy};

/// How one parameter's gradient is treated, for a wrapper whose preconditioners are `P`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamRule<P = ChannelDirected> {
    /// Smooth with the wrapper's preconditioner if the tensor has rank ≥ 3 (convolution weights);
    /// leave biases, norms and linear weights (rank ≤ 2) alone.
    Auto,
    /// Never smooth this parameter.
    Skip,
    /// Smooth with this preconditioner whatever the rank (its own λ, metric or axis).
    Use(P),
}

/// Runs a preconditioner on each raw gradient, then the inner optimizer's step: weight decay and
/// momentum see the smoothed gradient, as in the paper (the gradient is computed in the new metric,
/// then any optimizer runs).
///
/// The preconditioner is a [`ChannelDirected`] by default, and any [`Preconditioner`] (and
/// `Clone`: each rule holds its own) of yours otherwise; the optimizer any [`Optimizer`], a
/// `Box<dyn DynOptimizer>` chosen at run time included (see [`DynOptimizer`](super::DynOptimizer)).
///
/// ```
/// use chandir::optim::{AdamConfig, ChannelDirectedOptimizer, ParamRule, ParamStates};
/// use chandir::{ChannelDirected, Direction, Metric};
/// use ndarray::Array2;
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
/// let mut w = Array2::<f64>::zeros((8, 4));
/// let mut g = Array2::<f64>::ones((8, 4));
/// opt.step("fc.weight", w.view_mut(), g.view_mut(), &mut states)?;
/// assert!(states.get("fc.weight").is_some());
/// # Ok::<(), chandir::Error>(())
/// ```
///
/// A preconditioner of your own wraps SGD or Adam the same way:
///
/// ```
/// use chandir::optim::{ChannelDirectedOptimizer, ParamStates, SgdConfig};
/// use chandir::{Error, Preconditioner};
/// use ndarray::{Array4, ArrayViewMutD};
///
/// /// Clips every gradient value to [-1, 1].
/// #[derive(Clone)]
/// struct Clip;
/// impl Preconditioner<f32> for Clip {
///     fn precondition(&self, mut grad: ArrayViewMutD<'_, f32>) -> Result<(), Error> {
///         grad.mapv_inplace(|g| g.clamp(-1.0, 1.0));
///         Ok(())
///     }
/// }
///
/// let opt = ChannelDirectedOptimizer::new(SgdConfig { lr: 0.1, ..Default::default() }.init()?, Clip);
/// let (mut w, mut g) = (Array4::<f32>::zeros((8, 4, 3, 3)), Array4::<f32>::from_elem((8, 4, 3, 3), 5.0));
/// opt.step("conv.weight", w.view_mut(), g.view_mut(), &mut ParamStates::default())?;
/// assert!((w[[0, 0, 0, 0]] + 0.1).abs() < 1e-7); // the clipped gradient stepped
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChannelDirectedOptimizer<O, P = ChannelDirected> {
    inner: O,
    preconditioner: P,
    rules: BTreeMap<String, ParamRule<P>>,
}

impl<O> ChannelDirectedOptimizer<O, ChannelDirected> {
    /// Checks every setting that can be checked before a parameter is seen, so that a run can
    /// refuse a bad configuration before training: λ of the default preconditioner and of every
    /// [`ParamRule::Use`], and the default direction against rank 3, the smallest rank
    /// [`ParamRule::Auto`] smooths ([`RankPolicy::validate`]). A `Use` rule's axis needs the
    /// parameter's rank: [`step`](Self::step) checks it, before anything is written.
    ///
    /// ```
    /// use chandir::optim::{ChannelDirectedOptimizer, ParamRule, SgdConfig};
    /// use chandir::{ChannelDirected, Direction, Error, Metric};
    ///
    /// let sgd = SgdConfig::default().init()?;
    /// let hwio = ChannelDirected::new(Metric::default(), Direction::Axis(3));
    /// // Auto would smooth rank-3 parameters along an axis they lack:
    /// let auto = ChannelDirectedOptimizer::new(sgd, hwio);
    /// assert!(matches!(auto.validate(), Err(Error::AxisOutOfRange { axis: 3, ndim: 3 })));
    /// // a rule per HWIO weight instead:
    /// let per_weight = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0))
    ///     .with_rule("conv.weight", ParamRule::Use(hwio));
    /// assert!(per_weight.validate().is_ok());
    /// let bad = per_weight.with_rule("fc.weight", ParamRule::Use(ChannelDirected::sobolev(-1.0)));
    /// assert!(matches!(bad.validate(), Err(Error::InvalidLambda { .. })));
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        RankPolicy::from(self.preconditioner).validate()?;
        for rule in self.rules.values() {
            if let ParamRule::Use(cd) = rule {
                cd.metric.validate()?;
            }
        }
        Ok(())
    }
}

impl<O, P: Clone> ChannelDirectedOptimizer<O, P> {
    /// Wraps `inner`; parameters without a rule follow [`ParamRule::Auto`] with `preconditioner`.
    pub fn new(inner: O, preconditioner: P) -> Self {
        ChannelDirectedOptimizer {
            inner,
            preconditioner,
            rules: BTreeMap::new(),
        }
    }

    /// Sets the rule for the parameter called `name`.
    pub fn with_rule(mut self, name: impl Into<String>, rule: ParamRule<P>) -> Self {
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
    pub fn preconditioner(&self) -> &P {
        &self.preconditioner
    }

    /// The preconditioner applied to parameter `name` of rank `ndim`, if any: its rule's, or for
    /// [`ParamRule::Auto`] the default one on convolution weights (rank ≥ 3, the crate's one rank
    /// rule, [`RankPolicy`]).
    pub fn preconditioner_for(&self, name: &str, ndim: usize) -> Option<P> {
        match self.rules.get(name) {
            None | Some(ParamRule::Auto) => {
                RankPolicy::smooths_by_default(ndim).then(|| self.preconditioner.clone())
            }
            Some(ParamRule::Skip) => None,
            Some(ParamRule::Use(p)) => Some(p.clone()),
        }
    }

    /// Smooths `grad` in place (per the rule for `name`), then steps `param` with the inner optimizer,
    /// keeping its state in `states[name]`. Everything is validated first: on error neither `param`,
    /// `grad` nor `states` has changed. Any rank works (`Array4` views as well as `ArrayViewMutD`).
    pub fn step<A, D>(
        &self,
        name: &str,
        param: ArrayViewMut<'_, A, D>,
        mut grad: ArrayViewMut<'_, A, D>,
        states: &mut ParamStates<O::State>,
    ) -> Result<(), Error>
    where
        A: Element,
        D: Dimension,
        O: Optimizer<A>,
        P: Preconditioner<A>,
    {
        let preconditioner = self.check_one(name, &param, &grad, states)?;
        if let Some(p) = preconditioner {
            p.precondition(grad.view_mut().into_dyn())?;
        }
        self.inner
            .step(param, grad.view(), states.slot(name))
            .map_err(|error| named(error, name))
    }

    /// Steps every `(name, param, grad)` of a model in one call: each gradient is smoothed per its
    /// rule and the inner optimizer steps its parameter, with the tensors spread over the current
    /// rayon pool, largest first to the least-loaded thread (tensors large enough are still split
    /// inside). Install a pool (`ThreadPool::install`) to cap the threads; a wrapper whose
    /// preconditioner has [`Threading::Single`](crate::Threading::Single) keeps the parameters it
    /// does not smooth, and those it smooths with a `Single` preconditioner, on the calling thread.
    ///
    /// The result, parameters, gradients and states, is bitwise identical to calling
    /// [`step`](Self::step) on each parameter in turn. Everything (shapes, preconditioners, states,
    /// distinct names) is validated before anything is written: on error nothing has changed. The
    /// inner optimizer's [`check`](Optimizer::check) must accept exactly what its `step` accepts,
    /// as [`Sgd`](super::Sgd)'s and [`Adam`](super::Adam)'s do.
    ///
    /// ```
    /// use chandir::optim::{ChannelDirectedOptimizer, ParamStates, SgdConfig};
    /// use chandir::ChannelDirected;
    /// use ndarray::{Array1, Array4};
    ///
    /// let sgd = SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() }.init()?;
    /// let opt = ChannelDirectedOptimizer::new(sgd, ChannelDirected::sobolev(1.0));
    /// let mut states = ParamStates::default();
    ///
    /// let (mut w1, mut w2) = (Array4::<f32>::zeros((32, 16, 3, 3)), Array4::<f32>::zeros((64, 32, 3, 3)));
    /// let mut bias = Array1::<f32>::zeros(64);
    /// let (mut g1, mut g2) = (Array4::<f32>::ones((32, 16, 3, 3)), Array4::<f32>::ones((64, 32, 3, 3)));
    /// let mut g_bias = Array1::<f32>::ones(64);
    /// opt.step_all(
    ///     [
    ///         ("conv1.weight", w1.view_mut().into_dyn(), g1.view_mut().into_dyn()),
    ///         ("conv2.weight", w2.view_mut().into_dyn(), g2.view_mut().into_dyn()),
    ///         ("conv2.bias", bias.view_mut().into_dyn(), g_bias.view_mut().into_dyn()),
    ///     ],
    ///     &mut states,
    /// )?;
    /// assert_eq!(states.len(), 3);
    /// assert!((w2[[0, 0, 0, 0]] + 0.1).abs() < 1e-6); // constant gradients pass through H1 Neumann
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn step_all<'a, A, D, N, I>(
        &self,
        params: I,
        states: &mut ParamStates<O::State>,
    ) -> Result<(), Error>
    where
        A: Element,
        D: Dimension + 'a,
        N: AsRef<str> + Send,
        O: Optimizer<A>,
        P: Preconditioner<A>,
        I: IntoIterator<Item = (N, ArrayViewMut<'a, A, D>, ArrayViewMut<'a, A, D>)>,
    {
        let params: Vec<Param<'a, N, A, D>> = params.into_iter().collect();
        // Parameters in name order: to find repeated names, and to take each one's state slot
        // from the (name-ordered) map in one walk.
        let mut order: Vec<usize> = (0..params.len()).collect();
        order.sort_by(|&a, &b| params[a].0.as_ref().cmp(params[b].0.as_ref()));
        for pair in order.windows(2) {
            let name = params[pair[0]].0.as_ref();
            if name == params[pair[1]].0.as_ref() {
                return Err(Error::DuplicateParam {
                    name: name.to_owned(),
                });
            }
        }

        let mut preconditioners = Vec::with_capacity(params.len());
        for (name, param, grad) in &params {
            preconditioners.push(self.check_one(name.as_ref(), param, grad, states)?);
        }

        for &index in &order {
            states.slot(params[index].0.as_ref());
        }
        let mut slots: Vec<Option<&mut Option<O::State>>> =
            (0..params.len()).map(|_| None).collect();
        let mut wanted = order.iter().peekable();
        for (key, slot) in states.states.iter_mut() {
            if let Some(&&index) = wanted.peek() {
                if params[index].0.as_ref() == key {
                    slots[index] = Some(slot);
                    wanted.next();
                }
            }
        }

        let default_threading = self.preconditioner.threading();
        let tasks = params
            .into_iter()
            .zip(preconditioners)
            .zip(slots)
            .map(|(((name, param, grad), preconditioner), slot)| Task {
                size: param.len(),
                threading: preconditioner
                    .as_ref()
                    .map_or(default_threading, |p| p.threading()),
                job: (
                    name,
                    param,
                    grad,
                    preconditioner,
                    slot.expect("every name has a slot"),
                ),
            })
            .collect();
        run_balanced(tasks, |(name, param, mut grad, preconditioner, slot)| {
            if let Some(p) = preconditioner {
                p.precondition(grad.view_mut().into_dyn())?;
            }
            self.inner
                .step(param, grad.view(), slot)
                .map_err(|error| named(error, name.as_ref()))
        })
    }

    /// Smooths every `(name, grad)` per its rule, in one call, without stepping: the tensors are
    /// spread over the current rayon pool as in [`step_all`](Self::step_all), and the result is
    /// bitwise identical to applying [`preconditioner_for`](Self::preconditioner_for) to each.
    /// All preconditioners are validated first: on error no gradient has changed.
    ///
    /// ```
    /// use chandir::optim::{ChannelDirectedOptimizer, SgdConfig};
    /// use chandir::ChannelDirected;
    /// use ndarray::{Array1, Array4};
    ///
    /// let opt = ChannelDirectedOptimizer::new(SgdConfig::default().init()?, ChannelDirected::sobolev(1.0));
    /// let mut conv = Array4::<f64>::from_shape_fn((8, 4, 3, 3), |(o, ..)| o as f64);
    /// let mut bias = Array1::<f64>::from_shape_fn(8, |o| o as f64);
    /// opt.precondition_all([("conv.weight", conv.view_mut().into_dyn()), ("conv.bias", bias.view_mut().into_dyn())])?;
    /// assert!(conv[[0, 0, 0, 0]] > 0.0); // smoothed: channel 0 moved towards its neighbours
    /// assert_eq!(bias[0], 0.0); // rank 1: left alone
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn precondition_all<'a, A, D, N, I>(&self, grads: I) -> Result<(), Error>
    where
        A: Element,
        D: Dimension + 'a,
        N: AsRef<str>,
        P: Preconditioner<A>,
        I: IntoIterator<Item = (N, ArrayViewMut<'a, A, D>)>,
    {
        super::precondition_each(grads.into_iter().filter_map(|(name, grad)| {
            self.preconditioner_for(name.as_ref(), grad.ndim())
                .map(|p| (p, grad))
        }))
    }

    /// Validates one parameter (shapes, its preconditioner, the inner optimizer's check of its
    /// state) and returns its preconditioner.
    fn check_one<A, D>(
        &self,
        name: &str,
        param: &ArrayViewMut<'_, A, D>,
        grad: &ArrayViewMut<'_, A, D>,
        states: &ParamStates<O::State>,
    ) -> Result<Option<P>, Error>
    where
        A: Element,
        D: Dimension,
        O: Optimizer<A>,
        P: Preconditioner<A>,
    {
        check_shapes(param.shape(), grad.shape())?;
        let preconditioner = self.preconditioner_for(name, param.ndim());
        if let Some(p) = &preconditioner {
            p.check(param.shape())?;
        }
        self.inner
            .check(&param.view(), &grad.view(), states.get(name))
            .map_err(|error| named(error, name))?;
        Ok(preconditioner)
    }
}

/// One `(name, param, grad)` of a whole-model call.
type Param<'a, N, A, D> = (N, ArrayViewMut<'a, A, D>, ArrayViewMut<'a, A, D>);

/// Puts the parameter's name into a state mismatch reported by an optimizer that does not know it.
fn named(error: Error, name: &str) -> Error {
    match error {
        Error::StateMismatch { param, reason } if param == UNNAMED => Error::StateMismatch {
            param: name.to_owned(),
            reason,
        },
        other => other,
    }
}
