//! burn devices by the names the GPU examples and tests take (`--device`, `--backend`,
//! `CHANDIR_TEST_DEVICE`), so the three agree on them.

use burn::tensor::Device;
#[cfg(any(feature = "burn-wgpu", feature = "burn-vulkan"))]
use burn::tensor::DeviceKind;

/// The device called `name`, if this build has it: `flex` always; `wgpu` (the default adapter)
/// and `wgpu-cpu` (a CPU adapter such as Mesa's lavapipe) with `burn-wgpu`; `vulkan` and
/// `vulkan-cpu` with `burn-vulkan`; `cuda` with `burn-cuda`.
pub fn by_name(name: &str) -> Option<Device> {
    Some(match name {
        "flex" => Device::flex(),
        #[cfg(feature = "burn-wgpu")]
        "wgpu" => Device::wgpu(DeviceKind::DefaultDevice),
        #[cfg(feature = "burn-wgpu")]
        "wgpu-cpu" => Device::wgpu(DeviceKind::Cpu),
        #[cfg(feature = "burn-vulkan")]
        "vulkan" => Device::vulkan(DeviceKind::DefaultDevice),
        #[cfg(feature = "burn-vulkan")]
        "vulkan-cpu" => Device::vulkan(DeviceKind::Cpu),
        #[cfg(feature = "burn-cuda")]
        "cuda" => Device::cuda(0),
        _ => return None,
    })
}
