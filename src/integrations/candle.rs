//! [candle](https://github.com/huggingface/candle) 0.11: a [`candle_nn::Optimizer`] wrapper that
//! smooths gradients before the inner optimizer's step, and in-place smoothing of candle tensors
//! (feature `candle`).
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
//! use chandir::integrations::candle::{ChannelDirectedConfig, ChannelDirectedOptimizer};
//!
//! let device = Device::Cpu;
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
//! let conv = candle_nn::conv2d(3, 8, 3, Default::default(), vb.pp("conv"))?;
//!
//! let config = ChannelDirectedConfig::new().with_inner(ParamsAdamW::default());
//! let mut optim = ChannelDirectedOptimizer::<AdamW>::new(varmap.all_vars(), config)?;
//!
//! for _ in 0..2 {
//!     let x = Tensor::randn(0f32, 1., (2, 3, 8, 8), &device)?;
//!     let loss = conv.forward(&x)?.sqr()?.mean_all()?;
//!     optim.backward_step(&loss)?; // the weight gradient [8, 3, 3, 3] is smoothed over its 8 outputs
//! }
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! Which parameters are smoothed, by rank ([`RankPolicy`], the crate's one rule):
//!
//! | rank | candle layer | default |
//! |---|---|---|
//! | 0, 1 | biases, norms | never |
//! | 2 | `Linear` weight `[out, in]` | off; `with_linear_direction(Some(`[`LINEAR_OUTPUT`]`))` smooths along `out` (axis 0) |
//! | ≥ 3 | `Conv{1,2}d` weight `[out, in/groups, k..]` | along [`RankPolicy::direction`], axis 0 by default |
//!
//! A transposed convolution's weight is `[in, out/groups, k..]`: route it through axis 1 with
//! [`ChannelDirectedOptimizer::set_direction_for`].
//!
//! Copies: `Optimizer::step` borrows the gradients, which may share storage with other tensors
//! (candle hands the same gradient to both operands of an addition), so the wrapper smooths a
//! copy of each gradient it changes. The copies of one step are smoothed together on rayon's
//! pool, whole tensors balanced by size as in [`crate::optim::precondition_each`], with bitwise
//! the result of smoothing them one by one. [`precondition_in_place`] smooths a tensor you own
//! with no copy at all on the CPU.

use std::collections::HashMap;

use candle_core::backend::BackendStorage;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Tensor, TensorId, Var};
use candle_nn::Optimizer;
use ndarray::{ArrayViewMut, IxDyn, ShapeBuilder};

pub use super::ChannelDirectedConfig;
use crate::optim::ParamRule;
use crate::threading::{run_balanced, Task};
use crate::{ChannelDirected, Direction, RankPolicy};

/// The output features of candle's `Linear` weight `[out, in]`: axis 0. Smooth linear weights
/// along them with `config.with_linear_direction(Some(LINEAR_OUTPUT))`.
///
/// ```
/// use candle_nn::ParamsAdamW;
/// use chandir::integrations::candle::{ChannelDirectedConfig, LINEAR_OUTPUT};
/// let config = ChannelDirectedConfig::new()
///     .with_inner(ParamsAdamW::default())
///     .with_linear_direction(Some(LINEAR_OUTPUT));
/// assert_eq!(config.preconditioner_for_rank(2).unwrap().direction, chandir::Direction::Output);
/// ```
pub const LINEAR_OUTPUT: Direction = Direction::Output;

/// A [`candle_nn::Optimizer`] that smooths the gradient of each of its variables with a
/// [`ChannelDirected`] preconditioner (chosen by rank, see [`ChannelDirectedConfig`], or set per
/// variable) and then lets the inner optimizer `O` step on the smoothed gradients.
///
/// Gradients of tensors that are not its variables pass through untouched.
#[derive(Debug)]
pub struct ChannelDirectedOptimizer<O> {
    inner: O,
    vars: Vec<Var>,
    policy: RankPolicy,
    overrides: HashMap<TensorId, ParamRule>,
}

impl<O: Optimizer> Optimizer for ChannelDirectedOptimizer<O> {
    type Config = ChannelDirectedConfig<O::Config>;

    /// Wraps `O::new(vars, config.inner)`. Fails for a bad λ, a rank-2 direction beyond axis 1
    /// or a rank ≥ 3 direction beyond axis 2 ([`RankPolicy::validate`]), before any step.
    fn new(vars: Vec<Var>, config: Self::Config) -> candle_core::Result<Self> {
        let policy = config.policy;
        policy.validate().map_err(candle_core::Error::wrap)?;
        let vars: Vec<Var> = vars
            .into_iter()
            .filter(|var| var.dtype().is_float())
            .collect();
        Ok(ChannelDirectedOptimizer {
            inner: O::new(vars.clone(), config.inner)?,
            vars,
            policy,
            overrides: HashMap::new(),
        })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let mut smoothed = GradStore::default();
        for id in grads.get_ids() {
            if let Some(grad) = grads.get_id(*id) {
                smoothed.insert_id(*id, grad.clone());
            }
        }
        // Host copies first, then every copy smoothed at once on rayon's pool, balanced by size
        // (as `optim::precondition_each`): bitwise the result of smoothing them one by one.
        let mut copies = Vec::new();
        for var in &self.vars {
            let (Some(preconditioner), Some(grad)) = (self.preconditioner_for(var), grads.get(var))
            else {
                continue;
            };
            check(grad, &preconditioner)?;
            copies.push((var, grad, preconditioner, host_copy(grad)?));
        }
        let tasks = copies
            .iter()
            .map(|(_, _, preconditioner, host)| Task {
                size: host.elem_count(),
                threading: preconditioner.threading,
                // A candle tensor is a handle: smoothing this clone smooths `host`'s storage.
                job: (*preconditioner, host.clone()),
            })
            .collect();
        run_balanced(tasks, |(preconditioner, host)| {
            host.inplace_op1(&PreconditionOp(preconditioner))
        })?;
        for (var, grad, _, host) in copies {
            smoothed.insert(var, host.to_dtype(grad.dtype())?.to_device(grad.device())?);
        }
        self.inner.step(&smoothed)
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr)
    }
}

impl<O: Optimizer> ChannelDirectedOptimizer<O> {
    /// Overrides the rank rule for one variable with a [`ParamRule`], the per-parameter model
    /// the ndarray wrapper ([`crate::optim::ChannelDirectedOptimizer::with_rule`]) takes too:
    /// [`ParamRule::Use`] smooths it with its own preconditioner (metric, λ, direction),
    /// [`ParamRule::Skip`] leaves it alone, [`ParamRule::Auto`] restores the rank rule. Fails,
    /// changing nothing, if `var` is not one of the optimizer's variables, or if the
    /// preconditioner's λ is invalid or its axis is one `var` lacks.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{Optimizer, VarBuilder, VarMap, SGD};
    /// use chandir::integrations::candle::{ChannelDirectedConfig, ChannelDirectedOptimizer};
    /// use chandir::optim::ParamRule;
    /// use chandir::{ChannelDirected, Direction, Metric};
    ///
    /// let varmap = VarMap::new();
    /// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    /// let _deconv = candle_nn::conv_transpose2d(8, 3, 3, Default::default(), vb.pp("deconv"))?;
    /// let _head = candle_nn::linear(16, 10, vb.pp("head"))?;
    /// let mut optim = ChannelDirectedOptimizer::<SGD>::new(varmap.all_vars(), ChannelDirectedConfig::new().with_inner(0.01))?;
    /// let vars = varmap.data().lock().unwrap().clone();
    /// // a transposed conv [in, out, k, k]: along axis 1, with its own λ
    /// let deconv = ChannelDirected::new(Metric::default(), Direction::Axis(1));
    /// optim.set_rule_for(&vars["deconv.weight"], ParamRule::Use(deconv))?;
    /// // a linear weight [out, in] with a weaker λ
    /// optim.set_rule_for(&vars["head.weight"], ParamRule::Use(ChannelDirected::sobolev(0.3)))?;
    /// assert_eq!(optim.preconditioner_for(&vars["head.weight"]), Some(ChannelDirected::sobolev(0.3)));
    /// // an axis the bias lacks is refused
    /// assert!(optim.set_rule_for(&vars["head.bias"], ParamRule::Use(deconv)).is_err());
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn set_rule_for(&mut self, var: &Var, rule: ParamRule) -> candle_core::Result<()> {
        if !self.vars.iter().any(|own| own.id() == var.id()) {
            candle_core::bail!("set_rule_for: the variable is not optimized by this optimizer")
        }
        if let ParamRule::Use(preconditioner) = &rule {
            preconditioner
                .validate(var.rank())
                .map_err(candle_core::Error::wrap)?;
        }
        self.overrides.insert(var.id(), rule);
        Ok(())
    }

    /// Overrides the rank rule's direction for one variable, keeping the config's metric and λ:
    /// `Some(direction)` smooths it along `direction` (e.g. `Direction::Axis(1)` for a
    /// transposed-conv weight `[in, out/groups, k..]`), `None` leaves it unsmoothed. Shorthand for
    /// [`set_rule_for`](Self::set_rule_for).
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{Optimizer, VarBuilder, VarMap, SGD};
    /// use chandir::integrations::candle::{ChannelDirectedConfig, ChannelDirectedOptimizer};
    /// use chandir::Direction;
    ///
    /// let varmap = VarMap::new();
    /// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    /// let _deconv = candle_nn::conv_transpose2d(8, 3, 3, Default::default(), vb.pp("deconv"))?;
    /// let mut optim = ChannelDirectedOptimizer::<SGD>::new(varmap.all_vars(), ChannelDirectedConfig::new().with_inner(0.01))?;
    /// let weight = varmap.data().lock().unwrap()["deconv.weight"].clone();
    /// optim.set_direction_for(&weight, Some(Direction::Axis(1)))?;
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn set_direction_for(
        &mut self,
        var: &Var,
        direction: Option<Direction>,
    ) -> candle_core::Result<()> {
        let rule = match direction {
            Some(direction) => ParamRule::Use(self.policy.along(direction)),
            None => ParamRule::Skip,
        };
        self.set_rule_for(var, rule)
    }

    /// The preconditioner `var`'s gradient gets, or `None` if it is left alone.
    pub fn preconditioner_for(&self, var: &Var) -> Option<ChannelDirected> {
        match self.overrides.get(&var.id()) {
            None | Some(ParamRule::Auto) => self.policy.preconditioner_for_rank(var.rank()),
            Some(ParamRule::Skip) => None,
            Some(ParamRule::Use(preconditioner)) => Some(*preconditioner),
        }
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The wrapped optimizer, e.g. to change its hyperparameters.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// The wrapped optimizer, with its state.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

/// Smooths `grad` in place, on any device and float dtype.
///
/// On the CPU with f32 or f64 the smoothing runs directly on the tensor's storage, whatever its
/// strides and offset, without copying (a [`candle_core::InplaceOp1`]). Elsewhere (CUDA, Metal,
/// f16, bf16) it smooths a host copy in f32 and writes it back, which needs `grad` contiguous.
///
/// Every tensor sharing `grad`'s storage sees the change: use it on tensors you own, e.g. a
/// gradient removed from the `GradStore`. Integer dtypes and bad settings (λ, axis) are refused
/// before anything is written.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use chandir::integrations::candle::precondition_in_place;
/// use chandir::ChannelDirected;
///
/// let grad = Tensor::new(&[[1.0_f64], [0.0], [0.0]], &Device::Cpu)?;
/// precondition_in_place(&grad, &ChannelDirected::sobolev(1.0))?;
/// let smoothed: Vec<Vec<f64>> = grad.to_vec2()?;
/// assert!((smoothed[0][0] - 5.0 / 8.0).abs() < 1e-15); // (I + L)⁻¹ e₀ for n = 3
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn precondition_in_place(
    grad: &Tensor,
    preconditioner: &ChannelDirected,
) -> candle_core::Result<()> {
    check(grad, preconditioner)?;
    if grad.device().is_cpu() && matches!(grad.dtype(), DType::F32 | DType::F64) {
        return grad.inplace_op1(&PreconditionOp(*preconditioner));
    }
    let smoothed = preconditioned(grad, preconditioner)?;
    grad.slice_set(&smoothed, 0, 0)
}

/// A smoothed copy of `grad` on `grad`'s device with `grad`'s dtype; `grad` is left as it was.
///
/// f64 is smoothed in f64, every other float dtype in f32; integer dtypes and bad settings are
/// refused.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use chandir::integrations::candle::preconditioned;
/// use chandir::{ChannelDirected, Direction, Metric};
///
/// let grad = Tensor::new(&[[1.0_f32, 0.0], [3.0, 0.0]], &Device::Cpu)?;
/// let cd = ChannelDirected::new(Metric::ReweightedH0 { lambda: 1.0 }, Direction::Output);
/// let smoothed = preconditioned(&grad, &cd)?;
/// assert_eq!(smoothed.to_vec2::<f32>()?, vec![vec![1.5, 0.0], vec![2.5, 0.0]]);
/// assert_eq!(grad.to_vec2::<f32>()?, vec![vec![1.0, 0.0], vec![3.0, 0.0]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn preconditioned(
    grad: &Tensor,
    preconditioner: &ChannelDirected,
) -> candle_core::Result<Tensor> {
    check(grad, preconditioner)?;
    let host = host_copy(grad)?;
    host.inplace_op1(&PreconditionOp(*preconditioner))?;
    host.to_dtype(grad.dtype())?.to_device(grad.device())
}

/// A CPU copy of `grad` in its work dtype (f64 stays f64, every other float becomes f32), sharing
/// no storage with `grad`.
fn host_copy(grad: &Tensor) -> candle_core::Result<Tensor> {
    let work_dtype = if grad.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    // A CPU tensor already in the work dtype would come back sharing its storage: copy it.
    if grad.device().is_cpu() && grad.dtype() == work_dtype {
        grad.detach().copy()
    } else {
        grad.detach().to_device(&Device::Cpu)?.to_dtype(work_dtype)
    }
}

/// Refuses integer dtypes and settings that [`ChannelDirected::apply`] would refuse.
fn check(grad: &Tensor, preconditioner: &ChannelDirected) -> candle_core::Result<()> {
    if !grad.dtype().is_float() {
        candle_core::bail!(
            "channel-directed preconditioning needs a float tensor, got {:?}",
            grad.dtype()
        )
    }
    preconditioner
        .validate(grad.rank())
        .map_err(candle_core::Error::wrap)
}

/// The in-place op: [`ChannelDirected::apply`] on an ndarray view of the CPU storage.
struct PreconditionOp(ChannelDirected);

impl InplaceOp1 for PreconditionOp {
    fn name(&self) -> &'static str {
        "channel-directed"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        match storage {
            CpuStorage::F32(values) => apply_strided(&self.0, values, layout),
            CpuStorage::F64(values) => apply_strided(&self.0, values, layout),
            other => candle_core::bail!(
                "channel-directed: the in-place op takes f32 or f64, got {:?}",
                other.dtype()
            ),
        }
    }
}

/// Applies `preconditioner` to the elements of `values` that `layout` addresses.
fn apply_strided<A: crate::Element>(
    preconditioner: &ChannelDirected,
    values: &mut [A],
    layout: &Layout,
) -> candle_core::Result<()> {
    let shape = IxDyn(layout.dims()).strides(IxDyn(layout.stride()));
    let tail = values.get_mut(layout.start_offset()..).ok_or_else(|| {
        candle_core::Error::msg("channel-directed: layout offset past the storage")
    })?;
    // ndarray checks that the strided view stays inside the storage and never aliases itself.
    let mut view = ArrayViewMut::from_shape(shape, tail).map_err(candle_core::Error::wrap)?;
    preconditioner
        .apply(&mut view)
        .map_err(candle_core::Error::wrap)
}
