//! The device path: a burn backend extension whose CubeCL implementation runs
//! [`crate::gpu`]'s kernels, lazily inside burn's `Fusion` wrapper.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, DispatchDevice};
use burn::tensor::{DType, Tensor};
use burn_cubecl::CubeBackend;

use crate::gpu::launch::{self, DevicePlan, Operator};
use crate::gpu::{arithmetic_for_bound, Arithmetic, Method, Traffic};
use crate::{ChannelDirected, Error};

/// Smoothing as a backend operation: the CubeCL backend runs the kernels; `Fusion` records the
/// operation (same shape and dtype out) and runs it in stream order.
#[backend_extension(Cube: cfg(feature = "burn-cube"), Fusion: cfg(feature = "burn-cube"))]
pub trait ChannelDirectedBackend: Backend {
    /// `grad` smoothed as `plan` says.
    #[fusion(dtype = grad, shape = grad)]
    fn channel_directed_smooth(grad: FloatTensor<Self>, plan: DevicePlan) -> FloatTensor<Self>;

    /// A device-to-device copy of `tensor` into a new buffer: the baseline of the benchmarks.
    #[fusion(dtype = tensor, shape = tensor)]
    fn channel_directed_copy(tensor: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ChannelDirectedBackend for CubeBackend {
    fn channel_directed_smooth(grad: FloatTensor<Self>, plan: DevicePlan) -> FloatTensor<Self> {
        crate::gpu::launch::smooth(grad, &plan)
    }

    fn channel_directed_copy(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        tensor.copy()
    }
}

/// A device-to-device copy of `tensor` (on a CubeCL device, not behind autodiff).
pub(super) fn copy<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::channel_directed_copy(tensor.into_dispatch()))
}

/// Whether `grad` lives on a CubeCL device (possibly behind autodiff).
pub(super) fn on_cube_device<const D: usize>(grad: &Tensor<D>) -> bool {
    matches!(grad.device().inner().as_dispatch(), DispatchDevice::Cube(_))
}

/// The plan for `grad` on its CubeCL device (arithmetic `forced`, or the rule's), or `None` where
/// the operator is the identity or the tensor empty. Whether the device can run it is
/// [`can_run`]'s question. Errors for a direction the tensor lacks.
pub(super) fn plan<const D: usize>(
    grad: &Tensor<D>,
    preconditioner: &ChannelDirected,
    forced: Option<Arithmetic>,
    method: Method,
    poison: bool,
) -> Result<Option<DevicePlan>, Error> {
    let shape = grad.dims();
    let axis = preconditioner.direction.axis(D)?;
    let len: usize = shape.iter().product();
    if len == 0 {
        return Ok(None);
    }
    let (outer, n, inner) = match axis {
        None => (1, len, 1),
        Some(axis) => (
            shape[..axis].iter().product(),
            shape[axis],
            shape[axis + 1..].iter().product(),
        ),
    };
    let Some(operator) = Operator::of(&preconditioner.metric, n) else {
        return Ok(None);
    };
    let rule = match grad.dtype() {
        DType::F64 => Arithmetic::F64,
        // The bound cached with the sweep: recomputing it costs O(n) per gradient and step.
        _ => arithmetic_for_bound(operator.f32_error_bound(n)),
    };
    Ok(Some(DevicePlan {
        operator,
        arithmetic: forced.unwrap_or(rule),
        outer,
        n,
        inner,
        method,
        poison,
    }))
}

/// Whether the device of `grad` can run `plan` (f64 arithmetic where the plan asks for it).
pub(super) fn can_run<const D: usize>(grad: &Tensor<D>, plan: &DevicePlan) -> bool {
    let stored = matches!(
        grad.dtype(),
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Flex32
    );
    stored && (plan.arithmetic == Arithmetic::F32 || grad.device().supports_dtype(DType::F64))
}

/// Runs `plan` on the device of `grad`; narrower floats go through an f32 copy on the device.
pub(super) fn smooth<const D: usize>(grad: Tensor<D>, plan: DevicePlan) -> Tensor<D> {
    if grad.device().is_autodiff() {
        return Tensor::from_inner(smooth(grad.inner(), plan));
    }
    let dtype = grad.dtype();
    let stored = match dtype {
        DType::F32 | DType::F64 => grad,
        _ => grad.cast(DType::F32),
    };
    let output = Tensor::from_dispatch(Dispatch::channel_directed_smooth(
        stored.into_dispatch(),
        plan,
    ));
    if output.dtype() == dtype {
        output
    } else {
        output.cast(dtype)
    }
}

/// The kernels `plan` launches on the device of `grad` and the global memory they move.
pub(super) fn traffic<const D: usize>(grad: &Tensor<D>, plan: &DevicePlan) -> Option<Traffic> {
    let device = grad.device();
    let inner = device.inner();
    let DispatchDevice::Cube(device) = inner.as_dispatch() else {
        return None;
    };
    let shared = device.client().properties().hardware.max_shared_memory_size;
    let storage = if grad.dtype() == DType::F64 { 8 } else { 4 };
    Some(launch::traffic(
        plan,
        launch::kernels(plan, shared),
        storage,
    ))
}
