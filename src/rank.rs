//! The one rule that decides, by rank, which parameters are smoothed and how: shared by
//! [`crate::optim::ChannelDirectedOptimizer`] and every integration.

use serde::{Deserialize, Serialize};

use crate::{ChannelDirected, Direction, Error, Metric, Threading};

/// The smallest rank [`RankPolicy::direction`] applies to.
const SMALLEST_CONV_RANK: usize = 3;

/// Which preconditioner, if any, the gradient of a parameter of a given rank gets.
///
/// | rank | typical parameter | preconditioner |
/// |---|---|---|
/// | 0, 1 | biases, norm scales | none |
/// | 2 | linear weights | along [`linear_direction`](Self::linear_direction), none by default |
/// | ≥ 3 | convolution weights `[out, in, k..]` | along [`direction`](Self::direction), axis 0 by default |
///
/// ```
/// use chandir::{ChannelDirected, Direction, RankPolicy};
///
/// let policy = RankPolicy::new();
/// assert_eq!(policy.preconditioner_for_rank(1), None);
/// assert_eq!(policy.preconditioner_for_rank(2), None);
/// assert_eq!(policy.preconditioner_for_rank(4), Some(ChannelDirected::sobolev(1.0)));
///
/// let with_linear = policy.with_linear_direction(Some(Direction::Output));
/// assert_eq!(with_linear.preconditioner_for_rank(2), Some(ChannelDirected::sobolev(1.0)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankPolicy {
    /// The operator of every smoothed gradient; Sobolev H1 with λ = 1 and the Neumann boundary by
    /// default.
    pub metric: Metric,
    /// The fibers of rank ≥ 3 gradients; [`Direction::Output`] (axis 0) by default.
    pub direction: Direction,
    /// The fibers of rank-2 gradients, or `None` (the default) to leave them unsmoothed.
    pub linear_direction: Option<Direction>,
    /// Whether one smoothing call may use several threads (host path only).
    #[serde(default)]
    pub threading: Threading,
}

impl Default for RankPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl From<ChannelDirected> for RankPolicy {
    /// `preconditioner` for rank ≥ 3, nothing for lower ranks.
    fn from(preconditioner: ChannelDirected) -> Self {
        RankPolicy {
            metric: preconditioner.metric,
            direction: preconditioner.direction,
            linear_direction: None,
            threading: preconditioner.threading,
        }
    }
}

impl RankPolicy {
    /// The paper's default: Sobolev H1 (λ = 1, Neumann) along the output channels of conv
    /// weights; linear weights, biases and norms are left alone.
    pub fn new() -> Self {
        RankPolicy::from(ChannelDirected::default())
    }

    /// Sets the metric (and with it λ).
    pub fn with_metric(self, metric: Metric) -> Self {
        RankPolicy { metric, ..self }
    }

    /// Sets the fibers of rank ≥ 3 gradients, e.g. `Direction::Axis(1)` for transposed convs.
    pub fn with_direction(self, direction: Direction) -> Self {
        RankPolicy { direction, ..self }
    }

    /// Sets the fibers of rank-2 gradients (`None`: leave them alone).
    pub fn with_linear_direction(self, linear_direction: Option<Direction>) -> Self {
        RankPolicy {
            linear_direction,
            ..self
        }
    }

    /// Sets the [`Threading`] of the preconditioners it hands out.
    pub fn with_threading(self, threading: Threading) -> Self {
        RankPolicy { threading, ..self }
    }

    /// Whether a parameter of rank `rank` is smoothed by default: convolution weights (rank ≥ 3).
    ///
    /// ```
    /// use chandir::RankPolicy;
    /// assert!(RankPolicy::smooths_by_default(4) && RankPolicy::smooths_by_default(3));
    /// assert!(!RankPolicy::smooths_by_default(2));
    /// ```
    pub fn smooths_by_default(rank: usize) -> bool {
        rank >= SMALLEST_CONV_RANK
    }

    /// The preconditioner for a parameter of rank `rank`, or `None` if it is left alone.
    pub fn preconditioner_for_rank(&self, rank: usize) -> Option<ChannelDirected> {
        let direction = if Self::smooths_by_default(rank) {
            Some(self.direction)
        } else if rank == 2 {
            self.linear_direction
        } else {
            None
        }?;
        Some(self.along(direction))
    }

    /// The policy's metric and threading along `direction`, whatever the rank.
    pub(crate) fn along(&self, direction: Direction) -> ChannelDirected {
        ChannelDirected::new(self.metric, direction).with_threading(self.threading)
    }

    /// Checks everything a wrapper can know before it sees a parameter: λ, the rank-2 direction
    /// against rank 2, and the rank ≥ 3 direction against rank 3, the smallest rank it smooths
    /// (an axis a rank-3 parameter lacks, such as `Axis(3)`, fails there; a rank-3 direction is
    /// one every higher rank has). The integrations' `build`/`init`/`new` call it, so a policy
    /// that passes never fails on a parameter's rank during training.
    ///
    /// ```
    /// use chandir::{Direction, Error, Metric, RankPolicy};
    /// let policy = RankPolicy::new().with_linear_direction(Some(Direction::Axis(2)));
    /// assert!(matches!(policy.validate(), Err(Error::AxisOutOfRange { axis: 2, ndim: 2 })));
    /// let policy = RankPolicy::new().with_direction(Direction::Axis(3));
    /// assert!(matches!(policy.validate(), Err(Error::AxisOutOfRange { axis: 3, ndim: 3 })));
    /// assert!(RankPolicy::new().with_direction(Direction::Axis(2)).validate().is_ok());
    /// let policy = RankPolicy::new().with_metric(Metric::ReweightedH0 { lambda: f64::NAN });
    /// assert!(matches!(policy.validate(), Err(Error::InvalidLambda { .. })));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        self.metric.validate()?;
        self.direction.axis(SMALLEST_CONV_RANK)?;
        match self.linear_direction {
            Some(direction) => direction.axis(2).map(|_| ()),
            None => Ok(()),
        }
    }
}
