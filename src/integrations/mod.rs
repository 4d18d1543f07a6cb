//! Drop-in optimizer wrappers for deep-learning frameworks, each behind its cargo feature.
//!
//! | feature | module | wraps |
//! |---|---|---|
//! | `burn` | [`burn`] | any `burn::optim::Optimizer` (Sgd, Adam, AdamW, …) |
//! | `candle` | [`candle`] | any `candle_nn::Optimizer` (SGD, AdamW, …) |
//!
//! Both smooth the gradient of every parameter of rank ≥ 3 (convolution weights) before the
//! wrapped optimizer sees it, leave rank-2 (linear) weights alone unless asked to, and never touch
//! biases or other rank-0/1 parameters.

#[cfg(feature = "burn")]
pub mod burn;
#[cfg(feature = "candle")]
pub mod candle;

use crate::{ChannelDirected, Direction, Error, Metric};

/// Which preconditioner, if any, a parameter of a given rank gets: shared by every integration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RankPolicy {
    /// The operator applied to every smoothed gradient.
    pub(crate) metric: Metric,
    /// The fibers of rank ≥ 3 gradients.
    pub(crate) direction: Direction,
    /// The fibers of rank-2 gradients, or `None` to leave them unsmoothed.
    pub(crate) linear_direction: Option<Direction>,
}

impl RankPolicy {
    pub(crate) fn new() -> Self {
        RankPolicy {
            metric: Metric::default(),
            direction: Direction::Output,
            linear_direction: None,
        }
    }

    /// The preconditioner for a parameter of rank `rank`, or `None` if it is left alone.
    pub(crate) fn for_rank(&self, rank: usize) -> Option<ChannelDirected> {
        match rank {
            0 | 1 => None,
            2 => self
                .linear_direction
                .map(|direction| ChannelDirected::new(self.metric, direction)),
            _ => Some(ChannelDirected::new(self.metric, self.direction)),
        }
    }

    /// Checks λ and the rank-2 direction (whose rank is known); a rank ≥ 3 direction such as
    /// `Axis(3)` can only be checked against each parameter.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.metric.validate()?;
        match self.linear_direction {
            Some(direction) => direction.axis(2).map(|_| ()),
            None => Ok(()),
        }
    }
}
