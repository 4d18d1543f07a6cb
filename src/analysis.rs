//! Why: measurements behind the method. Trained CNN weights are correlated along the output-channel
//! axis but hardly along the input-channel axis (paper Fig 1, 13, 14), and each metric smooths a
//! gradient by convolving it with the columns of `A⁻¹` (paper Fig 2).
//!
//! - [`axis_correlation`]: the Pearson correlation between the slices `w[i]` and `w[j]` of a weight
//!   tensor along one axis (each slice taken as one vector over all the other indices), for every
//!   pair at distance `d = |i − j|` from 1 to a maximum, averaged per distance.
//! - [`output_vs_input`]: the same along axis 0 and axis 1, side by side.
//! - [`slice_moments`]: the mean and standard deviation of every slice, e.g. of every output channel.
//! - [`impulse_response`]: the column of `A⁻¹` at one channel, computed by the crate's own solver.
//!
//! Everything is computed in `f64` whatever the element type. A slice that is constant, or that
//! holds a NaN or an infinity, has no meaningful correlation: every pair involving it is left out of
//! the averages and counted instead, so that no NaN reaches a mean.
//!
//! ```
//! use chandir::analysis::output_vs_input;
//! use ndarray::Array4;
//!
//! // Output channels that are scaled copies of one pattern; input channels without relation.
//! let pattern = |i: usize, h: usize, w: usize| ((i * 7 + h * 5 + w * 3) % 11) as f64;
//! let weights = Array4::from_shape_fn((8, 6, 3, 3), |(o, i, h, w)| (o + 1) as f64 * pattern(i, h, w));
//! let layer = output_vs_input(&weights, 4)?;
//! assert!((layer.output.mean_at(1).unwrap() - 1.0).abs() < 1e-12);
//! assert!(layer.input.mean_at(1).unwrap() < 0.9);
//! # Ok::<(), chandir::Error>(())
//! ```

use ndarray::{Array1, ArrayBase, ArrayView1, Axis, Data, Dimension};
use num_traits::Float;

use crate::{ChannelDirected, Direction, Error, Metric};

/// The Pearson correlation of one pair of slices `first < second` along an axis.
///
/// ```
/// use chandir::analysis::axis_correlation;
/// use ndarray::array;
///
/// let w = array![[1.0_f64, 2.0, 3.0], [2.0, 4.0, 6.5], [3.0, 2.0, 1.0]];
/// let pairs = axis_correlation(&w, 0, 2)?.pairs;
/// assert_eq!((pairs[0].first, pairs[0].second), (0, 1));
/// assert!((pairs[2].correlation + 1.0).abs() < 1e-12); // rows 0 and 2 run in opposite directions
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairCorrelation {
    /// Index of the first slice.
    pub first: usize,
    /// Index of the second slice, `first + distance`.
    pub second: usize,
    /// The correlation, in `[−1, 1]`.
    pub correlation: f64,
}

impl PairCorrelation {
    /// `second − first`.
    ///
    /// ```
    /// let pair = chandir::analysis::PairCorrelation { first: 2, second: 5, correlation: 0.1 };
    /// assert_eq!(pair.distance(), 3);
    /// ```
    pub fn distance(&self) -> usize {
        self.second - self.first
    }
}

/// The correlation of all pairs of slices at one distance `d`.
///
/// ```
/// use chandir::analysis::axis_correlation;
/// use ndarray::array;
///
/// let w = array![[1.0_f64, 2.0], [5.0, 5.0], [2.0, 4.0]];
/// let at_1 = &axis_correlation(&w, 0, 1)?.by_distance[0];
/// assert_eq!((at_1.distance, at_1.pairs, at_1.excluded_pairs), (1, 0, 2)); // row 1 is constant
/// assert_eq!(at_1.mean, None);
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceCorrelation {
    /// The distance `d = |i − j|` along the axis.
    pub distance: usize,
    /// Mean correlation over the [`pairs`](Self::pairs) counted, or `None` if there are none.
    pub mean: Option<f64>,
    /// Mean absolute correlation over the same pairs: unlike [`mean`](Self::mean), positive and
    /// negative correlations do not cancel.
    pub mean_abs: Option<f64>,
    /// Number of pairs in the means.
    pub pairs: usize,
    /// Number of pairs at this distance left out because a slice is constant or not finite.
    pub excluded_pairs: usize,
}

/// Correlation between the slices of a tensor along one axis: the result of [`axis_correlation`].
///
/// ```
/// use chandir::analysis::axis_correlation;
/// use ndarray::Array3;
///
/// let w = Array3::from_shape_fn((5, 4, 4), |(o, i, j)| ((o + 2 * i + 3 * j) % 5) as f32);
/// let corr = axis_correlation(&w, 0, 10)?;
/// assert_eq!(corr.slices, 5);
/// assert_eq!(corr.by_distance.len(), 4); // distances 1..=4: clamped to slices − 1
/// assert_eq!(corr.pairs.len(), 4 + 3 + 2 + 1);
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AxisCorrelation {
    /// The axis along which slices were taken.
    pub axis: usize,
    /// Number of slices, the length of the axis.
    pub slices: usize,
    /// Number of elements in every slice.
    pub slice_len: usize,
    /// One entry per distance `d = 1, 2, …`, up to the requested maximum clamped to `slices − 1`.
    pub by_distance: Vec<DistanceCorrelation>,
    /// Every pair that was counted, ordered by distance then by `first`: the values of a histogram.
    pub pairs: Vec<PairCorrelation>,
    /// Indices of the slices whose elements are all equal (their correlation is undefined).
    pub constant_slices: Vec<usize>,
    /// Indices of the slices holding a NaN or an infinity.
    pub non_finite_slices: Vec<usize>,
}

impl AxisCorrelation {
    /// The mean correlation at distance `d`, or `None` if `d` was not computed or no pair counted.
    ///
    /// ```
    /// use ndarray::array;
    /// let w = array![[1.0_f64, 2.0, 4.0], [2.0, 4.0, 8.0]];
    /// let corr = chandir::analysis::axis_correlation(&w, 0, 1)?;
    /// assert!((corr.mean_at(1).unwrap() - 1.0).abs() < 1e-12);
    /// assert_eq!(corr.mean_at(2), None);
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn mean_at(&self, distance: usize) -> Option<f64> {
        self.at(distance).and_then(|entry| entry.mean)
    }

    /// The entry for distance `d`, if it was computed.
    ///
    /// ```
    /// use ndarray::Array2;
    /// let w = Array2::from_shape_fn((4, 3), |(i, j)| (i * j) as f64);
    /// let corr = chandir::analysis::axis_correlation(&w, 0, 3)?;
    /// assert_eq!(corr.at(2).unwrap().distance, 2);
    /// assert!(corr.at(0).is_none());
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn at(&self, distance: usize) -> Option<&DistanceCorrelation> {
        distance
            .checked_sub(1)
            .and_then(|index| self.by_distance.get(index))
    }

    /// Pairs left out over all distances because a slice is constant or not finite.
    ///
    /// ```
    /// use ndarray::array;
    /// let w = array![[1.0_f64, 2.0], [3.0, 3.0], [1.0, 5.0]];
    /// let corr = chandir::analysis::axis_correlation(&w, 0, 2)?;
    /// assert_eq!(corr.constant_slices, vec![1]);
    /// assert_eq!(corr.excluded_pairs(), 2); // (0, 1) and (1, 2); (0, 2) is counted
    /// # Ok::<(), chandir::Error>(())
    /// ```
    pub fn excluded_pairs(&self) -> usize {
        self.by_distance
            .iter()
            .map(|entry| entry.excluded_pairs)
            .sum()
    }
}

/// The correlation along the output axis (0) and the input axis (1) of one weight tensor: the
/// result of [`output_vs_input`].
///
/// ```
/// use ndarray::Array2;
/// let w = Array2::from_shape_fn((6, 5), |(o, i)| (o * 5 + i * i) as f64);
/// let layer = chandir::analysis::output_vs_input(&w, 2)?;
/// assert_eq!((layer.output.axis, layer.input.axis), (0, 1));
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCorrelation {
    /// Slices `w[o, ..]`, along the output channels.
    pub output: AxisCorrelation,
    /// Slices `w[:, i, ..]`, along the input channels.
    pub input: AxisCorrelation,
}

/// Mean and standard deviation of the elements of one slice: a point of paper Fig 14.
///
/// ```
/// use ndarray::array;
/// let w = array![[1.0_f32, 3.0], [2.0, 2.0]];
/// let moments = chandir::analysis::slice_moments(&w, 0)?;
/// assert_eq!(moments[0], chandir::analysis::SliceMoments { mean: 2.0, std: 1.0 });
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceMoments {
    /// Mean of the slice's elements.
    pub mean: f64,
    /// Population standard deviation (divided by the element count, not count − 1).
    pub std: f64,
}

/// The Pearson correlation between the slices of `weights` along `axis`, for every pair at distance
/// `1 ..= max_distance` (clamped to the number of slices − 1).
///
/// Slices are compared as vectors over all the other indices, in the same order for every slice.
/// Pairs involving a constant slice or one holding NaN or ±∞ are left out and counted in
/// [`DistanceCorrelation::excluded_pairs`]; the slices themselves are listed in
/// [`AxisCorrelation::constant_slices`] and [`AxisCorrelation::non_finite_slices`]. Cost: `O(n·D·m)`
/// for `n` slices of `m` elements, plus one `f64` copy of the tensor.
///
/// Returns [`Error::AxisOutOfRange`] if `axis ≥ weights.ndim()`.
///
/// ```
/// use chandir::analysis::axis_correlation;
/// use ndarray::Array3;
///
/// // w[o] = (o + 1) · base + o: every output slice is an increasing linear function of `base`.
/// let base = |i: usize, k: usize| ((i * 5 + k * 3) % 7) as f32;
/// let w = Array3::from_shape_fn((6, 4, 9), |(o, i, k)| (o + 1) as f32 * base(i, k) + o as f32);
/// let corr = axis_correlation(&w.view(), 0, 3)?;
/// for d in 1..=3 {
///     assert!((corr.mean_at(d).unwrap() - 1.0).abs() < 1e-6);
/// }
/// assert!(axis_correlation(&w, 3, 1).is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn axis_correlation<A, S, D>(
    weights: &ArrayBase<S, D>,
    axis: usize,
    max_distance: usize,
) -> Result<AxisCorrelation, Error>
where
    A: Float,
    S: Data<Elem = A>,
    D: Dimension,
{
    Direction::Axis(axis).axis(weights.ndim())?;
    let slices = weights.len_of(Axis(axis));
    let slice_len = weights.len().checked_div(slices).unwrap_or(0);

    let mut standardized = Vec::with_capacity(slices);
    let mut constant_slices = Vec::new();
    let mut non_finite_slices = Vec::new();
    for (index, slice) in weights.view().into_dyn().axis_iter(Axis(axis)).enumerate() {
        let values: Vec<f64> = slice.iter().map(|&x| to_f64(x)).collect();
        match standardize(values) {
            Ok(unit) => standardized.push(Some(unit)),
            Err(Degenerate::Constant) => {
                constant_slices.push(index);
                standardized.push(None);
            }
            Err(Degenerate::NonFinite) => {
                non_finite_slices.push(index);
                standardized.push(None);
            }
        }
    }

    let max_distance = max_distance.min(slices.saturating_sub(1));
    let mut by_distance = Vec::with_capacity(max_distance);
    let mut pairs = Vec::new();
    for distance in 1..=max_distance {
        let (mut sum, mut sum_abs, mut counted, mut excluded) = (0.0, 0.0, 0, 0);
        for first in 0..slices - distance {
            let second = first + distance;
            match (&standardized[first], &standardized[second]) {
                (Some(x), Some(y)) => {
                    // Rounding can push the dot product of two unit vectors just past ±1.
                    let correlation = dot(x, y).clamp(-1.0, 1.0);
                    sum += correlation;
                    sum_abs += correlation.abs();
                    counted += 1;
                    pairs.push(PairCorrelation {
                        first,
                        second,
                        correlation,
                    });
                }
                _ => excluded += 1,
            }
        }
        let mean_of = |total: f64| (counted > 0).then(|| total / counted as f64);
        by_distance.push(DistanceCorrelation {
            distance,
            mean: mean_of(sum),
            mean_abs: mean_of(sum_abs),
            pairs: counted,
            excluded_pairs: excluded,
        });
    }

    Ok(AxisCorrelation {
        axis,
        slices,
        slice_len,
        by_distance,
        pairs,
        constant_slices,
        non_finite_slices,
    })
}

/// [`axis_correlation`] along axis 0 (output channels) and axis 1 (input channels) of a
/// `[C_out, C_in, ..]` weight, with the same `max_distance`.
///
/// Returns [`Error::AxisOutOfRange`] (for axis 1) if `weights` has rank < 2.
///
/// ```
/// use chandir::analysis::output_vs_input;
/// use ndarray::{Array1, Array4};
///
/// // Output channels vary smoothly (a ramp in o), input channels follow an unrelated pattern.
/// let w = Array4::from_shape_fn((8, 8, 3, 3), |(o, i, h, k)| {
///     o as f64 + ((i * 7 + h * 3 + k * 5) % 11) as f64
/// });
/// let layer = output_vs_input(&w, 2)?;
/// assert!(layer.output.mean_at(1).unwrap() > layer.input.mean_at(1).unwrap());
/// assert!(output_vs_input(&Array1::<f64>::zeros(4), 2).is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn output_vs_input<A, S, D>(
    weights: &ArrayBase<S, D>,
    max_distance: usize,
) -> Result<LayerCorrelation, Error>
where
    A: Float,
    S: Data<Elem = A>,
    D: Dimension,
{
    Direction::Input.axis(weights.ndim())?;
    Ok(LayerCorrelation {
        output: axis_correlation(weights, 0, max_distance)?,
        input: axis_correlation(weights, 1, max_distance)?,
    })
}

/// The mean and population standard deviation of every slice of `weights` along `axis` (axis 0:
/// one point per output channel, paper Fig 14). Computed in two passes in `f64`; a slice holding
/// NaN gives NaN, an empty slice gives NaN.
///
/// Returns [`Error::AxisOutOfRange`] if `axis ≥ weights.ndim()`.
///
/// ```
/// use chandir::analysis::slice_moments;
/// use ndarray::array;
///
/// let w = array![[[1.0_f64, 1.0], [1.0, 1.0]], [[0.0, 2.0], [0.0, 2.0]]];
/// let moments = slice_moments(&w, 0)?;
/// assert_eq!((moments[0].mean, moments[0].std), (1.0, 0.0));
/// assert_eq!((moments[1].mean, moments[1].std), (1.0, 1.0));
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn slice_moments<A, S, D>(
    weights: &ArrayBase<S, D>,
    axis: usize,
) -> Result<Vec<SliceMoments>, Error>
where
    A: Float,
    S: Data<Elem = A>,
    D: Dimension,
{
    Direction::Axis(axis).axis(weights.ndim())?;
    Ok(weights
        .view()
        .into_dyn()
        .axis_iter(Axis(axis))
        .map(|slice| {
            let count = slice.len() as f64;
            let mean = slice.iter().map(|&x| to_f64(x)).sum::<f64>() / count;
            let variance = slice
                .iter()
                .map(|&x| (to_f64(x) - mean).powi(2))
                .sum::<f64>()
                / count;
            SliceMoments {
                mean,
                std: variance.sqrt(),
            }
        })
        .collect())
}

/// The impulse response of `metric` on fibers of length `n`: `x = A⁻¹ e_c`, the column of `A⁻¹` at
/// channel `c`, the weights with which a gradient entry at channel `c` is spread over its neighbours
/// (paper Fig 2). Computed by [`ChannelDirected::apply`] with [`Direction::Output`] on the unit
/// vector `e_c`, so it is exactly what the preconditioner does.
///
/// Returns [`Error::InvalidLambda`] for a bad λ and [`Error::InvalidHyperparameter`] (named
/// `"channel"`) if `channel ≥ n`.
///
/// ```
/// use chandir::analysis::impulse_response;
/// use chandir::{Boundary, Metric};
///
/// let h1 = Metric::SobolevH1 { lambda: 1.0, boundary: Boundary::Neumann };
/// let x = impulse_response(h1, 9, 4)?;
/// assert!((x.sum() - 1.0).abs() < 1e-12); // Neumann keeps the mean
/// assert!(x[4] > x[3] && x[3] > x[2]); // peaked at the channel, decaying away from it
/// assert!((x[3] - x[5]).abs() < 1e-12); // symmetric around it
/// assert_eq!(impulse_response(Metric::H0, 3, 1)?.to_vec(), vec![0.0, 1.0, 0.0]);
/// assert!(impulse_response(h1, 9, 9).is_err());
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn impulse_response(metric: Metric, n: usize, channel: usize) -> Result<Array1<f64>, Error> {
    metric.validate()?;
    if channel >= n {
        return Err(Error::InvalidHyperparameter {
            name: "channel",
            value: channel as f64,
            reason: "the channel must be less than the fiber length n",
        });
    }
    let mut response = Array1::<f64>::zeros(n);
    response[channel] = 1.0;
    ChannelDirected::new(metric, Direction::Output).apply(&mut response)?;
    Ok(response)
}

/// Why a slice has no correlation.
enum Degenerate {
    Constant,
    NonFinite,
}

/// The slice minus its mean, scaled to unit Euclidean norm, so that the dot product of two such
/// vectors is their Pearson correlation.
fn standardize(mut values: Vec<f64>) -> Result<Vec<f64>, Degenerate> {
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Degenerate::NonFinite);
    }
    // Tested exactly: the mean of equal values can round away from them and leave noise to normalize.
    if values.windows(2).all(|pair| pair[0] == pair[1]) {
        return Err(Degenerate::Constant);
    }
    // Pre-scaling by the largest magnitude keeps the sums from overflowing and the squares of tiny
    // deviations from underflowing; the correlation does not depend on scale.
    rescale_to_unit_max(&mut values);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter_mut().for_each(|v| *v -= mean);
    rescale_to_unit_max(&mut values);
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    values.iter_mut().for_each(|v| *v /= norm);
    Ok(values)
}

fn rescale_to_unit_max(values: &mut [f64]) {
    let largest = values.iter().fold(0.0_f64, |acc, v| acc.max(v.abs()));
    if largest > 0.0 {
        values.iter_mut().for_each(|v| *v /= largest);
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    ArrayView1::from(x).dot(&ArrayView1::from(y))
}

fn to_f64<A: Float>(x: A) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s, Array2};

    fn pearson_two_pass(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        sxy / (sxx * syy).sqrt()
    }

    #[test]
    fn standardized_slices_have_zero_mean_and_unit_norm() {
        let Ok(unit) = standardize(vec![3.0, -1.0, 4.0, 1.5, 9.0]) else {
            panic!("a varying slice must standardize");
        };
        assert!(unit.iter().sum::<f64>().abs() < 1e-15);
        assert!((unit.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn equal_values_whose_mean_rounds_are_still_constant() {
        // 0.1 · 3 / 3 ≠ 0.1 in binary: a mean-based variance test would see a tiny non-zero spread.
        let mean = [0.1_f64; 3].iter().sum::<f64>() / 3.0;
        assert_ne!(mean, 0.1, "the premise of this test");
        assert!(matches!(
            standardize(vec![0.1; 3]),
            Err(Degenerate::Constant)
        ));
    }

    #[test]
    fn extreme_magnitudes_neither_overflow_nor_underflow() {
        let x = [1.0, 2.0, 4.0, 3.0];
        let y = [2.0, 1.0, 5.0, 3.5];
        let expected = pearson_two_pass(&x, &y);
        for scale in [1e300, 1e-300, 1e-320] {
            let w = Array2::from_shape_fn((2, 4), |(row, k)| {
                scale * if row == 0 { x[k] } else { y[k] }
            });
            let r = axis_correlation(&w, 0, 1).unwrap().mean_at(1).unwrap();
            // Subnormal inputs (1e-320) carry only a few significant bits.
            let tolerance = if scale < 1e-310 { 1e-2 } else { 1e-12 };
            assert!(
                (r - expected).abs() < tolerance,
                "scale {scale}: {r} vs {expected}"
            );
        }
    }

    #[test]
    fn non_finite_slices_are_excluded_and_listed() {
        let w = array![
            [1.0, 2.0, 3.0],
            [f64::NAN, 1.0, 2.0],
            [1.0, f64::INFINITY, 0.0],
            [3.0, 2.0, 2.5]
        ];
        let corr = axis_correlation(&w, 0, 3).unwrap();
        assert_eq!(corr.non_finite_slices, vec![1, 2]);
        assert!(corr.constant_slices.is_empty());
        assert_eq!(corr.pairs.len(), 1); // only (0, 3) remains
        assert_eq!(corr.excluded_pairs(), 5);
        assert!(corr
            .by_distance
            .iter()
            .flat_map(|e| e.mean)
            .all(f64::is_finite));
    }

    #[test]
    fn strided_views_match_their_contiguous_copies() {
        let w = Array2::from_shape_fn((9, 7), |(i, j)| ((i * 13 + j * j * 7) % 17) as f64);
        let view = w.slice(s![..;-2, 1..]);
        let copy = view.to_owned();
        assert_eq!(
            axis_correlation(&view, 0, 4).unwrap(),
            axis_correlation(&copy, 0, 4).unwrap()
        );
    }

    #[test]
    fn an_empty_axis_gives_no_pairs() {
        let w = Array2::<f32>::zeros((0, 3));
        let corr = axis_correlation(&w, 0, 5).unwrap();
        assert_eq!((corr.slices, corr.slice_len), (0, 0));
        assert!(corr.by_distance.is_empty() && corr.pairs.is_empty());
    }
}
