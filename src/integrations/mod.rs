//! Drop-in optimizer wrappers for deep-learning frameworks, each behind its cargo feature.
//!
//! | feature | module | wraps |
//! |---|---|---|
//! | `burn` | [`burn`] | any `burn::optim::Optimizer` (Sgd, Adam, AdamW, …) |
//! | `candle` | [`candle`] | any `candle_nn::Optimizer` (SGD, AdamW, …) |
//!
//! Both take one [`ChannelDirectedConfig`], and both decide which parameters are smoothed with the
//! crate's one rank rule, [`RankPolicy`]: every parameter of rank ≥ 3 (convolution weights),
//! rank-2 (linear) weights only when asked to, never biases or other rank-0/1 parameters.

#[cfg(feature = "burn")]
pub mod burn;
#[cfg(feature = "candle")]
pub mod candle;

use crate::{Boundary, ChannelDirected, Direction, Metric, RankPolicy};

/// The config of every integration's wrapper: the wrapped optimizer's own config (candle, whose
/// `Optimizer::new` takes one; `()` for burn, whose optimizers are built first) and the
/// [`RankPolicy`] that decides which gradients are smoothed and how.
///
/// burn's `Linear` weight is `[d_input, d_output]`, candle's `[out, in]`: smooth linear weights
/// along their output features with `with_linear_direction(Some(burn::LINEAR_OUTPUT))` or
/// `Some(candle::LINEAR_OUTPUT)`.
///
/// ```
/// use chandir::integrations::ChannelDirectedConfig;
/// use chandir::{Boundary, Direction, Metric};
///
/// let config = ChannelDirectedConfig::new()
///     .with_metric(Metric::SobolevH1 { lambda: 0.5, boundary: Boundary::Periodic })
///     .with_linear_direction(Some(Direction::Axis(1)));
/// assert!(config.preconditioner_for_rank(2).is_some());
/// let for_candle = config.with_inner(0.01_f64); // e.g. candle's SGD learning rate
/// assert_eq!(for_candle.inner, 0.01);
/// assert_eq!(for_candle.policy, config.policy);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelDirectedConfig<C = ()> {
    /// The wrapped optimizer's config: `()` for burn, e.g. `ParamsAdamW` or an `f64` learning rate
    /// for candle.
    pub inner: C,
    /// Which gradients are smoothed, and how.
    pub policy: RankPolicy,
}

impl Default for ChannelDirectedConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelDirectedConfig {
    /// The paper's default ([`RankPolicy::new`]): Sobolev H1 (λ = 1, Neumann) along the output
    /// channels of conv weights; linear weights and biases are left alone.
    pub fn new() -> Self {
        ChannelDirectedConfig {
            inner: (),
            policy: RankPolicy::new(),
        }
    }
}

impl<C> ChannelDirectedConfig<C> {
    /// The same smoothing around the wrapped optimizer's config `inner` (candle).
    pub fn with_inner<I>(self, inner: I) -> ChannelDirectedConfig<I> {
        ChannelDirectedConfig {
            inner,
            policy: self.policy,
        }
    }

    /// Sets the whole rank rule.
    pub fn with_policy(mut self, policy: RankPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the metric (and with it λ).
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.policy = self.policy.with_metric(metric);
        self
    }

    /// Sets λ and keeps the kind of metric: H1 keeps its boundary, re-weighted H0 stays
    /// re-weighted; [`Metric::H0`], which has no λ, becomes H1 with the Neumann boundary.
    /// The shortcut for `with_metric(Metric::SobolevH1 { lambda, boundary: Boundary::Neumann })`
    /// on the default config. λ is checked where the wrapper is built (`init`, `build`).
    ///
    /// ```
    /// use chandir::integrations::ChannelDirectedConfig;
    /// use chandir::{Boundary, Metric};
    ///
    /// let config = ChannelDirectedConfig::new().with_lambda(0.1);
    /// assert_eq!(config.policy.metric, Metric::SobolevH1 { lambda: 0.1, boundary: Boundary::Neumann });
    /// let periodic = ChannelDirectedConfig::new()
    ///     .with_metric(Metric::SobolevH1 { lambda: 1.0, boundary: Boundary::Periodic })
    ///     .with_lambda(3.0);
    /// assert_eq!(periodic.policy.metric, Metric::SobolevH1 { lambda: 3.0, boundary: Boundary::Periodic });
    /// let reweighted = ChannelDirectedConfig::new().with_metric(Metric::ReweightedH0 { lambda: 1.0 });
    /// assert_eq!(reweighted.with_lambda(0.5).policy.metric, Metric::ReweightedH0 { lambda: 0.5 });
    /// assert_eq!(
    ///     ChannelDirectedConfig::new().with_metric(Metric::H0).with_lambda(2.0).policy.metric,
    ///     Metric::SobolevH1 { lambda: 2.0, boundary: Boundary::Neumann },
    /// );
    /// ```
    pub fn with_lambda(self, lambda: f64) -> Self {
        let metric = match self.policy.metric {
            Metric::H0 => Metric::SobolevH1 {
                lambda,
                boundary: Boundary::Neumann,
            },
            Metric::ReweightedH0 { .. } => Metric::ReweightedH0 { lambda },
            Metric::SobolevH1 { boundary, .. } => Metric::SobolevH1 { lambda, boundary },
        };
        self.with_metric(metric)
    }

    /// Sets the fibers of rank ≥ 3 gradients, e.g. `Direction::Axis(1)` for transposed convs.
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.policy = self.policy.with_direction(direction);
        self
    }

    /// Sets the fibers of rank-2 gradients (`None`: leave them alone).
    pub fn with_linear_direction(mut self, direction: Option<Direction>) -> Self {
        self.policy = self.policy.with_linear_direction(direction);
        self
    }

    /// The preconditioner a parameter of rank `rank` gets, or `None` if it is left alone.
    pub fn preconditioner_for_rank(&self, rank: usize) -> Option<ChannelDirected> {
        self.policy.preconditioner_for_rank(rank)
    }
}
