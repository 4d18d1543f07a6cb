//! The whole model in one call: every tensor is one task on rayon's pool, tasks are dealt out
//! largest first to the least-loaded thread, and tensors large enough to be split are still split
//! inside (by [`ChannelDirected::apply`](crate::ChannelDirected::apply) with [`crate::Threading::Auto`]).
//!
//! Each tensor's result depends only on the tensor (the kernels are deterministic and do not
//! depend on the thread count), so the whole-model call is bitwise identical to calling the
//! tensors one by one.

use ndarray::{ArrayViewMut, Dimension};

use crate::threading::{run_balanced, Task};
use crate::{Element, Error, Preconditioner};

/// Smooths every gradient with its own preconditioner (a [`ChannelDirected`](crate::ChannelDirected) or any
/// [`Preconditioner`]), checking all of them first ([`Preconditioner::check`]): on `Err` no tensor
/// has changed. Tensors run in parallel on the current rayon pool, balanced by size; those whose
/// preconditioner has [`crate::Threading::Single`] run one after another on the calling thread.
/// The result is bitwise identical to applying each preconditioner on its own.
///
/// ```
/// use chandir::optim::precondition_each;
/// use chandir::{ChannelDirected, Direction, Metric};
/// use ndarray::{Array2, Array4};
///
/// let mut conv = Array4::<f32>::from_shape_fn((32, 16, 3, 3), |(o, i, h, w)| (o + 2 * i + h * w) as f32);
/// let mut up = Array4::<f32>::ones((16, 32, 2, 2)); // a transposed convolution [in, out, k, k]
/// let mut fc = Array2::<f32>::ones((10, 64));
/// let input_axis = ChannelDirected::new(Metric::default(), Direction::Axis(1));
/// precondition_each([
///     (ChannelDirected::sobolev(1.0), conv.view_mut().into_dyn()),
///     (input_axis, up.view_mut().into_dyn()),
///     (ChannelDirected::sobolev(0.3), fc.view_mut().into_dyn()),
/// ])?;
/// # Ok::<(), chandir::Error>(())
/// ```
pub fn precondition_each<'a, A, D, P, I>(jobs: I) -> Result<(), Error>
where
    A: Element + 'a,
    D: Dimension + 'a,
    P: Preconditioner<A>,
    I: IntoIterator<Item = (P, ArrayViewMut<'a, A, D>)>,
{
    let jobs: Vec<(P, ArrayViewMut<'a, A, D>)> = jobs.into_iter().collect();
    for (preconditioner, grad) in &jobs {
        preconditioner.check(grad.shape())?;
    }
    run_balanced(
        jobs.into_iter()
            .map(|(preconditioner, grad)| Task {
                size: grad.len(),
                threading: preconditioner.threading(),
                job: (preconditioner, grad),
            })
            .collect(),
        |(preconditioner, grad)| preconditioner.precondition(grad.into_dyn()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChannelDirected;

    #[test]
    fn from_outside_the_pool_small_tensors_give_the_bits_of_one_by_one() {
        use ndarray::ArrayD;
        let shapes: [&[usize]; 5] = [
            &[64, 64, 3, 3],
            &[16, 8, 3, 3],
            &[33, 5],
            &[1, 9],
            &[7, 3, 2],
        ];
        let grads: Vec<ArrayD<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(k, shape)| {
                ArrayD::from_shape_fn(*shape, |index| {
                    let i: usize = index.as_array_view().iter().fold(k, |h, &v| h * 31 + v);
                    ((i * 7919) % 1000) as f32 / 37.0 - 13.0
                })
            })
            .collect();
        let cd = ChannelDirected::sobolev(1.0);
        let mut one_by_one = grads.clone();
        one_by_one.iter_mut().for_each(|g| cd.apply(g).unwrap());
        let mut together = grads.clone();
        std::thread::spawn(move || {
            precondition_each(together.iter_mut().map(|g| (cd, g.view_mut()))).unwrap();
            together
        })
        .join()
        .unwrap()
        .iter()
        .zip(&one_by_one)
        .for_each(|(a, b)| {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        });
    }
}
