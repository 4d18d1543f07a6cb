//! [burn](https://burn.dev) 0.22: an [`Optimizer`] wrapper that smooths gradients before the inner
//! optimizer's step (feature `burn`).
//!
//! burn 0.22 optimizers implement `burn::optim::Optimizer` (per-parameter step, state passed in),
//! and [`ModuleOptimizer`] drives one over a whole module. [`ChannelDirectedOptimizer`] implements
//! the same trait around any inner optimizer (Sgd, Adam, AdamW, …), so it works everywhere an
//! optimizer does: [`ModuleOptimizer::step`], parameter groups, learning-rate schedulers, records.
//!
//! ```
//! use burn::nn::conv::Conv2dConfig;
//! use burn::optim::{AdamConfig, GradientsParams};
//! use burn::tensor::{Device, Distribution, Tensor};
//! use chandir::integrations::burn::ChannelDirectedConfig;
//!
//! let device = Device::default().autodiff();
//! let mut conv = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
//! let mut optim = ChannelDirectedConfig::new().init(AdamConfig::new().build())?;
//!
//! for _ in 0..2 {
//!     let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
//!     let loss = conv.forward(x).powi_scalar(2).mean();
//!     let grads = GradientsParams::from_grads(loss.backward(), &conv);
//!     conv = optim.step(1e-3, conv, grads); // the weight gradient [8, 3, 3, 3] is smoothed over its 8 outputs
//! }
//! # Ok::<(), chandir::Error>(())
//! ```
//!
//! Which parameters are smoothed, by rank ([`RankPolicy`], the crate's one rule):
//!
//! | rank | burn layer | default |
//! |---|---|---|
//! | 0, 1 | biases, norms | never |
//! | 2 | `Linear` weight `[d_input, d_output]` | off; `with_linear_direction(Some(`[`LINEAR_OUTPUT`]`))` smooths along `d_output` (axis 1) |
//! | ≥ 3 | `Conv{1,2,3}d` weight `[out, in/groups, k..]` | along [`RankPolicy::direction`], axis 0 by default |
//!
//! A transposed convolution's weight is `[in, out/groups, k..]`: give its parameters their own
//! wrapper with `Direction::Axis(1)` in a group, see [`ChannelDirectedConfig::build`].
//!
//! # burn-train's `Learner`
//!
//! The [`ModuleOptimizer`] that [`ChannelDirectedConfig::init`] returns is what burn-train 0.22's
//! `Learner::new(model, optim, lr_scheduler)` takes, so training under `SupervisedTraining`
//! needs one changed line (`examples/burn_learner.rs`, tested in `tests/burn_learner.rs` with
//! the crate's `burn-train` feature):
//!
//! ```text
//! let optim = ChannelDirectedConfig::new().with_lambda(1.0).init(AdamConfig::new().build())?;
//! let learner = Learner::new(model, optim, ConstantLr::new(2e-3));
//! ```
//!
//! # Where the smoothing runs, and what it costs
//!
//! Users change nothing but the backend; [`route`] says which path a gradient takes.
//!
//! | backend | path | cost per smoothed gradient |
//! |---|---|---|
//! | `flex` (pure-Rust CPU) | host, in place | no copy when the gradient is contiguous and unshared (the usual case): the CPU kernel in f64 arithmetic |
//! | CubeCL backends — `wgpu`, `vulkan`, `cuda`, `rocm`, `metal`, `cpu`, with or without `Fusion` — in a build with feature `burn-wgpu`, `burn-vulkan` or `burn-cuda` | device: a CubeCL kernel ([`crate::gpu`]) | one to three launches and a few passes over the gradient in device memory (two reads and two writes, the segmented method one read more), in place when the gradient is unshared; no synchronisation, no transfer. Coefficients are uploaded once per (metric, fiber length, arithmetic) and cached |
//! | the same, where the arithmetic rule asks for f64 and the device has none (e.g. Metal: large λ) | host | a device synchronisation, a download, the CPU kernel, an upload |
//! | CubeCL backends in a build without those features, `ndarray`, `tch`, remote | host | as above |
//!
//! ```ignore
//! // Cargo.toml: chandir = { version = "0.1", features = ["burn-wgpu"] }; needs a GPU (or lavapipe)
//! use burn::tensor::{Device, DeviceKind, Tensor};
//! use chandir::gpu::Arithmetic;
//! use chandir::integrations::burn::{route, Route};
//! use chandir::ChannelDirected;
//!
//! let device = Device::wgpu(DeviceKind::DefaultDevice);
//! let grad = Tensor::<4>::ones([64, 32, 3, 3], &device);
//! assert_eq!(route(&grad, &ChannelDirected::sobolev(1.0))?, Route::Device(Arithmetic::F32));
//! # Ok::<(), chandir::Error>(())
//! ```
//!
//! The device kernels do their arithmetic in f32 where [`crate::gpu::f32_error_bound`] allows
//! (H1 with λ up to about 100 for Neumann, 60 for periodic, every λ for Dirichlet) and in f64 otherwise: every path meets the
//! CPU path's tolerance (f32: `1e-5·max|g|`).

use burn::optim::{LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{DType, Element, Tensor, TensorData};
use ndarray::{ArrayViewMut, IxDyn};

#[cfg(feature = "burn-cube")]
mod cube;

pub use super::ChannelDirectedConfig;
#[cfg(feature = "burn-cube")]
use crate::gpu::launch::DevicePlan;
use crate::gpu::Arithmetic;
#[cfg(feature = "burn-cube")]
use crate::gpu::Method;
use crate::{ChannelDirected, Direction, Error, RankPolicy};

/// The output features of burn's `Linear` weight `[d_input, d_output]`: axis 1. Smooth linear
/// weights along them with
/// `ChannelDirectedConfig::new().with_linear_direction(Some(LINEAR_OUTPUT))`.
///
/// ```
/// use chandir::integrations::burn::{ChannelDirectedConfig, LINEAR_OUTPUT};
/// let config = ChannelDirectedConfig::new().with_linear_direction(Some(LINEAR_OUTPUT));
/// assert_eq!(config.preconditioner_for_rank(2).unwrap().direction, chandir::Direction::Axis(1));
/// ```
pub const LINEAR_OUTPUT: Direction = Direction::Axis(1);

/// burn's side of the shared [`ChannelDirectedConfig`] (with no inner config: burn optimizers are
/// built first and handed to [`init`](Self::init) or [`build`](Self::build)).
impl ChannelDirectedConfig {
    /// Wraps `inner` (e.g. `SgdConfig::new().build()`): the bare optimizer, for
    /// [`ModuleOptimizer::with_group`] or your own loop.
    ///
    /// Returns [`Error::InvalidLambda`] for a bad λ, [`Error::AxisOutOfRange`] for a rank-2
    /// direction beyond axis 1 or a rank ≥ 3 direction beyond axis 2 (e.g. `Axis(3)`, which a
    /// Conv1d weight lacks): [`RankPolicy::validate`]. These are all the settings a step could
    /// fail on, so they fail here, before training, not inside burn's `Optimizer::step`, which has
    /// no error channel. Should smoothing fail there all the same, the step panics with the
    /// parameter's shape and rank and the rule it was smoothed by (burn passes a step no
    /// parameter name or id).
    ///
    /// Transposed convs (`[in, out/groups, k..]`) get their own wrapper along axis 1:
    ///
    /// ```
    /// use burn::module::ParamGroup;
    /// use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    /// use burn::optim::SgdConfig;
    /// use burn::tensor::Device;
    /// use chandir::integrations::burn::ChannelDirectedConfig;
    /// use chandir::Direction;
    ///
    /// let device = Device::default().autodiff();
    /// let encoder = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
    /// let decoder = ConvTranspose2dConfig::new([8, 3], [3, 3]).init(&device);
    ///
    /// let config = ChannelDirectedConfig::new();
    /// let sgd = SgdConfig::new().build();
    /// let optim = config.init(sgd.clone())?.with_group(
    ///     ParamGroup::ids_from_module(decoder.clone()),
    ///     config.with_direction(Direction::Axis(1)).build(sgd)?,
    ///     None,
    /// );
    /// # let _ = (optim, encoder);
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn build<O: Optimizer>(self, inner: O) -> Result<ChannelDirectedOptimizer<O>, Error> {
        self.policy.validate()?;
        Ok(ChannelDirectedOptimizer {
            inner,
            policy: self.policy,
        })
    }

    /// Wraps `inner` and returns the [`ModuleOptimizer`] that steps whole modules, like burn's
    /// `SgdConfig::init`. Gradient clipping configured in the inner config is not carried over
    /// (burn's `build` drops it): add it with [`ModuleOptimizer::with_grad_clipping`]. Errors as
    /// [`build`](Self::build).
    pub fn init<O: Optimizer>(self, inner: O) -> Result<ModuleOptimizer, Error> {
        Ok(self.build(inner)?.into())
    }
}

/// A burn [`Optimizer`] that smooths each gradient with a [`ChannelDirected`] preconditioner
/// (chosen by rank, see [`ChannelDirectedConfig`]) and then lets the inner optimizer step.
///
/// Its per-parameter state *is* the inner optimizer's state, so records
/// ([`ModuleOptimizer::to_record`], `into_bytes`/`from_bytes`) checkpoint it exactly as they would
/// the inner optimizer, and a record saved by one loads into the other.
#[derive(Debug, Clone)]
pub struct ChannelDirectedOptimizer<O> {
    inner: O,
    policy: RankPolicy,
}

impl<O: Optimizer> ChannelDirectedOptimizer<O> {
    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Which gradients are smoothed, and how.
    pub fn policy(&self) -> &RankPolicy {
        &self.policy
    }

    /// The gradient the inner optimizer will see: `grad` smoothed, or unchanged for ranks that are
    /// left alone.
    ///
    /// # Panics
    ///
    /// If smoothing fails, which a policy that [`build`](ChannelDirectedConfig::build) accepted
    /// does not on any rank; the message names the parameter's shape and rank and the rule.
    pub fn precondition<const D: usize>(&self, grad: Tensor<D>) -> Tensor<D> {
        match self.policy.preconditioner_for_rank(D) {
            None => grad,
            Some(preconditioner) => {
                let shape = grad.dims();
                precondition_tensor(grad, &preconditioner)
                    .unwrap_or_else(|err| panic!("{}", step_failure(&shape, &preconditioner, &err)))
            }
        }
    }
}

/// What a failed smoothing inside burn's `Optimizer::step` says: the parameter (by shape and
/// rank: burn passes no name), the rule it was smoothed by, and why.
fn step_failure(shape: &[usize], preconditioner: &ChannelDirected, error: &Error) -> String {
    let rank = shape.len();
    let rule = match rank {
        2 => "the rank-2 rule (linear_direction)",
        _ => "the rank >= 3 rule (direction)",
    };
    format!(
        "chandir: cannot smooth the gradient of the rank-{rank} parameter of shape {shape:?} \
         with {rule}, {:?} along {:?}: {error}",
        preconditioner.metric, preconditioner.direction
    )
}

impl<O: Optimizer> Optimizer for ChannelDirectedOptimizer<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        self.inner.step(lr, tensor, self.precondition(grad), state)
    }

    fn to_device<const D: usize>(
        state: Self::State<D>,
        device: &burn::tensor::Device,
    ) -> Self::State<D> {
        O::to_device(state, device)
    }
}

/// Where [`precondition_tensor`] smooths a gradient.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use chandir::integrations::burn::{route, Route};
/// use chandir::ChannelDirected;
///
/// let grad = Tensor::<4>::ones([8, 3, 3, 3], &Device::flex());
/// assert_eq!(route(&grad, &ChannelDirected::sobolev(1.0))?, Route::Host);
/// assert_eq!(route(&grad, &ChannelDirected::sobolev(0.0))?, Route::Identity);
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Nothing to do: the operator is the identity (λ = 0, `H0`, fibers of length 1) or the
    /// tensor is empty. The gradient is returned as it is.
    Identity,
    /// On the host: read into host memory, smoothed there in f64 arithmetic, moved back. Free of
    /// copies on `flex`; a download and an upload on a GPU.
    Host,
    /// On the device, as a CubeCL kernel with this arithmetic (see [`crate::gpu`]).
    Device(Arithmetic),
}

/// Where [`precondition_tensor`] would smooth `grad`: on the device where it lives on a CubeCL
/// backend that this build runs kernels on (features `burn-wgpu`, `burn-vulkan`, `burn-cuda`)
/// and that has the arithmetic [`crate::gpu::arithmetic`] asks for; on the host otherwise.
///
/// Returns the [`Error`] of [`ChannelDirected::validate`].
pub fn route<const D: usize>(
    grad: &Tensor<D>,
    preconditioner: &ChannelDirected,
) -> Result<Route, Error> {
    Ok(match decide(grad, preconditioner)? {
        Decision::Identity => Route::Identity,
        Decision::Host => Route::Host,
        #[cfg(feature = "burn-cube")]
        Decision::Device(plan) => Route::Device(plan.arithmetic),
    })
}

/// [`route`]'s answer with the device plan it was made from, so that smoothing plans once.
enum Decision {
    Identity,
    Host,
    #[cfg(feature = "burn-cube")]
    Device(DevicePlan),
}

fn decide<const D: usize>(
    grad: &Tensor<D>,
    preconditioner: &ChannelDirected,
) -> Result<Decision, Error> {
    preconditioner.validate(D)?;
    let shape = grad.dims();
    let n = match preconditioner.direction.axis(D)? {
        Some(axis) => shape[axis],
        None => shape.iter().product(),
    };
    let identity = matches!(
        crate::solve::operator(&preconditioner.metric, n),
        crate::solve::Operator::Identity
    );
    if shape.contains(&0) || identity {
        return Ok(Decision::Identity);
    }
    #[cfg(feature = "burn-cube")]
    if cube::on_cube_device(grad) {
        if let Some(plan) = cube::plan(grad, preconditioner, None, Method::Auto, false)? {
            if cube::can_run(grad, &plan) {
                return Ok(Decision::Device(plan));
            }
        }
    }
    Ok(Decision::Host)
}

/// Smooths a gradient tensor on any backend, where it lives when that is a CubeCL device that can
/// run the kernel ([`route`]), in host memory otherwise.
///
/// - **CubeCL backends** (burn's `wgpu`, `vulkan`, `cuda`, `rocm`, `metal`, `cpu`, with or without
///   `Fusion`, in a build with `burn-wgpu`, `burn-vulkan` or `burn-cuda`): a kernel on the device,
///   a few passes over the gradient in device memory; nothing is downloaded. f16/bf16 gradients go
///   through an f32 copy on the device.
/// - **Everything else** (`flex`, `ndarray`, `tch`), and λ that need f64 on a device without it
///   (e.g. Metal): the gradient is read into host memory, smoothed there in place, and moved back with its
///   dtype. On `flex` a contiguous, unshared `grad` is not copied at all; on a GPU that is a
///   device synchronisation, a download and an upload.
///
/// f32 and f64 are smoothed as they are; other float dtypes (f16, bf16, flex32) through an f32
/// copy.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use chandir::integrations::burn::precondition_tensor;
/// use chandir::ChannelDirected;
///
/// let grad = Tensor::<2>::from_data([[1.0_f32], [0.0], [0.0]], &Device::default());
/// let smoothed = precondition_tensor(grad, &ChannelDirected::sobolev(1.0))?;
/// let values = smoothed.into_data().try_to_vec::<f32>().unwrap();
/// assert!((values[0] - 5.0 / 8.0).abs() < 1e-6); // (I + L)⁻¹ e₀ for n = 3
/// # Ok::<(), chandir::Error>(())
/// ```
///
/// Returns the [`Error`] of [`ChannelDirected::apply`] (bad λ, missing axis), before any data moves.
pub fn precondition_tensor<const D: usize>(
    grad: Tensor<D>,
    preconditioner: &ChannelDirected,
) -> Result<Tensor<D>, Error> {
    match decide(&grad, preconditioner)? {
        Decision::Identity => Ok(grad),
        Decision::Host => precondition_on_host(grad, preconditioner),
        #[cfg(feature = "burn-cube")]
        Decision::Device(plan) => Ok(cube::smooth(grad, plan)),
    }
}

/// [`precondition_tensor`] on the device with the arithmetic and method given, for tests and
/// benchmarks: `None` arithmetic follows [`crate::gpu::arithmetic`]; `poison` writes into a fresh
/// NaN-filled output. Returns `Ok(None)` where the device cannot run it (not a CubeCL device,
/// f64 missing) and the gradient unchanged for the identity.
#[doc(hidden)]
#[cfg(feature = "burn-cube")]
pub fn precondition_on_device<const D: usize>(
    grad: Tensor<D>,
    preconditioner: &ChannelDirected,
    arithmetic: Option<Arithmetic>,
    method: Method,
    poison: bool,
) -> Result<Option<Tensor<D>>, Error> {
    preconditioner.validate(D)?;
    if !cube::on_cube_device(&grad) {
        return Ok(None);
    }
    match cube::plan(&grad, preconditioner, arithmetic, method, poison)? {
        None => Ok(Some(grad)),
        Some(plan) if cube::can_run(&grad, &plan) => Ok(Some(cube::smooth(grad, plan))),
        Some(_) => Ok(None),
    }
}

/// The kernels [`precondition_tensor`] launches for `grad` on its device with `method`, and the
/// global memory they move: design figures from the kernel plan ([`crate::gpu::Traffic`]), not
/// timings. `Ok(None)` where no device kernel runs (the identity, the host path).
///
/// ```ignore
/// // On a GPU device: conv weights along the output channels take one launch, one read, one write.
/// let traffic = device_traffic(&grad, &ChannelDirected::sobolev(1.0), Method::Auto)?.unwrap();
/// assert_eq!(traffic.launches, 1);
/// assert!(traffic.bytes_per_gradient_byte() < 2.1);
/// ```
#[cfg(feature = "burn-cube")]
pub fn device_traffic<const D: usize>(
    grad: &Tensor<D>,
    preconditioner: &ChannelDirected,
    method: Method,
) -> Result<Option<crate::gpu::Traffic>, Error> {
    preconditioner.validate(D)?;
    if !cube::on_cube_device(grad) {
        return Ok(None);
    }
    Ok(
        match cube::plan(grad, preconditioner, None, method, false)? {
            Some(plan) if cube::can_run(grad, &plan) => cube::traffic(grad, &plan),
            _ => None,
        },
    )
}

/// A device-to-device copy of `tensor` into a new buffer, through the same backend extension as
/// the kernels (the baseline of `examples/bench_gpu`); `None` off CubeCL devices.
#[doc(hidden)]
#[cfg(feature = "burn-cube")]
pub fn device_copy<const D: usize>(tensor: Tensor<D>) -> Option<Tensor<D>> {
    (cube::on_cube_device(&tensor) && !tensor.device().is_autodiff()).then(|| cube::copy(tensor))
}

/// [`precondition_tensor`]'s host path, whatever the device: download, CPU solve, upload.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use chandir::integrations::burn::precondition_on_host;
/// use chandir::ChannelDirected;
///
/// let grad = Tensor::<2>::from_data([[1.0_f32], [0.0], [0.0]], &Device::default());
/// let smoothed = precondition_on_host(grad, &ChannelDirected::sobolev(1.0))?;
/// assert!((smoothed.into_data().to_vec::<f32>().unwrap()[0] - 5.0 / 8.0).abs() < 1e-6);
/// # Ok::<(), chandir::Error>(())
/// ```
///
/// Returns the [`Error`] of [`ChannelDirected::apply`], before any data moves.
pub fn precondition_on_host<const D: usize>(
    grad: Tensor<D>,
    preconditioner: &ChannelDirected,
) -> Result<Tensor<D>, Error> {
    preconditioner.validate(D)?;
    let device = grad.device();
    let dtype = grad.dtype();
    let shape = grad.dims();
    let mut data = grad.into_data();
    match dtype {
        DType::F64 => apply_to_data::<f64>(&mut data, &shape, preconditioner)?,
        DType::F32 => apply_to_data::<f32>(&mut data, &shape, preconditioner)?,
        _ => {
            let mut widened = data.convert::<f32>();
            apply_to_data::<f32>(&mut widened, &shape, preconditioner)?;
            data = widened.convert_dtype(dtype);
        }
    }
    Ok(Tensor::from_data(data, (&device, dtype)))
}

/// Smooths host data in place through a row-major ndarray view of its buffer.
fn apply_to_data<E>(
    data: &mut TensorData,
    shape: &[usize],
    preconditioner: &ChannelDirected,
) -> Result<(), Error>
where
    E: Element + crate::Element,
{
    let values = data
        .as_mut_slice::<E>()
        .expect("the data has the dtype it was matched on");
    let mut view = ArrayViewMut::from_shape(IxDyn(shape), values)
        .expect("TensorData is contiguous and row-major with the tensor's shape");
    preconditioner.apply(&mut view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metric;

    #[test]
    fn a_failed_step_names_the_shape_the_rank_and_the_rule() {
        let preconditioner = ChannelDirected::new(Metric::default(), Direction::Axis(3));
        let error = Error::AxisOutOfRange { axis: 3, ndim: 3 };
        let message = step_failure(&[8, 3, 5], &preconditioner, &error);
        for part in [
            "rank-3 parameter of shape [8, 3, 5]",
            "the rank >= 3 rule (direction)",
            "along Axis(3)",
            "axis 3 is out of range for a tensor of rank 3",
        ] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
        let linear = step_failure(&[4, 2], &preconditioner, &error);
        assert!(
            linear.contains("the rank-2 rule (linear_direction)"),
            "{linear}"
        );
    }
}
