//! Optimizer runs and states as bit patterns, for the tests that compare them bit for bit
//! (saved and loaded, stepped one by one or all at once).

use chandir::optim::{
    AdamState, ChannelDirectedOptimizer, Element, Optimizer, ParamStates, SgdConfig, SgdState,
};
use ndarray::ArrayD;

/// The bit patterns of a float type.
pub trait FloatBits: Element {
    fn bits(self) -> u64;
}

impl FloatBits for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl FloatBits for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// Every value of `array` as bits, in logical order.
pub fn bits<A: FloatBits>(array: &ArrayD<A>) -> Vec<u64> {
    array.iter().map(|v| v.bits()).collect()
}

/// What a state holds, as bits: the step counter (Adam), the shape, then every buffer in order.
pub trait StateBits {
    fn state_bits(&self) -> Vec<u64>;
}

impl<A: FloatBits> StateBits for AdamState<A> {
    fn state_bits(&self) -> Vec<u64> {
        let mut out = vec![self.step()];
        out.extend(self.shape().iter().map(|&n| n as u64));
        out.extend(self.exp_avg().iter().map(|v| v.bits()));
        out.extend(self.exp_avg_sq().iter().map(|v| v.bits()));
        out
    }
}

impl<A: FloatBits> StateBits for SgdState<A> {
    fn state_bits(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.shape().iter().map(|&n| n as u64).collect();
        if let Some(buffer) = self.momentum_buffer() {
            // A marker, so that "no buffer" and "an empty buffer" differ.
            out.push(u64::MAX);
            out.extend(buffer.iter().map(|v| v.bits()));
        }
        out
    }
}

/// Steps the parameter `"w"` through `grads` (each cloned: the step smooths it in place).
pub fn step_through<A, O>(
    opt: &ChannelDirectedOptimizer<O>,
    param: &mut ArrayD<A>,
    states: &mut ParamStates<O::State>,
    grads: &[ArrayD<A>],
) where
    A: Element,
    O: Optimizer<A>,
{
    for g in grads {
        opt.step("w", param.view_mut(), g.clone().view_mut(), states)
            .unwrap();
    }
}

/// SGD as ResNet recipes train: learning rate 0.05, Nesterov momentum 0.9, weight decay 5e-4.
pub fn nesterov_sgd() -> SgdConfig {
    SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        ..Default::default()
    }
}
