//! The whole model in one call: every tensor is one task on rayon's pool, tasks are dealt out
//! largest first to the least-loaded thread, and tensors large enough to be split are still split
//! inside (by [`ChannelDirected::apply`] with [`Threading::Auto`]).
//!
//! Each tensor's result depends only on the tensor (the kernels are deterministic and do not
//! depend on the thread count), so the whole-model call is bitwise identical to calling the
//! tensors one by one.

use ndarray::{ArrayViewMut, Dimension};
use num_traits::Float;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::layout::PARALLEL_MIN_ELEMENTS;
use crate::{ChannelDirected, Error, Threading};

/// Smooths every gradient with its own preconditioner, validating all of them first: on `Err`
/// no tensor has changed. Tensors run in parallel on the current rayon pool, balanced by size;
/// those whose preconditioner has [`Threading::Single`] run one after another on the calling
/// thread. The result is bitwise identical to applying each preconditioner on its own.
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
pub fn precondition_each<'a, A, D, I>(jobs: I) -> Result<(), Error>
where
    A: Float + Send + Sync + 'a,
    D: Dimension + 'a,
    I: IntoIterator<Item = (ChannelDirected, ArrayViewMut<'a, A, D>)>,
{
    let jobs: Vec<(ChannelDirected, ArrayViewMut<'a, A, D>)> = jobs.into_iter().collect();
    for (preconditioner, grad) in &jobs {
        preconditioner.validate(grad.ndim())?;
    }
    run_balanced(
        jobs.into_iter()
            .map(|(preconditioner, grad)| Task {
                size: grad.len(),
                threading: preconditioner.threading,
                job: (preconditioner, grad),
            })
            .collect(),
        |(preconditioner, mut grad)| preconditioner.apply(&mut grad),
    )
}

/// One unit of work for [`run_balanced`].
pub(crate) struct Task<T> {
    /// Elements the task touches: its cost.
    pub(crate) size: usize,
    /// [`Threading::Single`] tasks stay on the calling thread.
    pub(crate) threading: Threading,
    pub(crate) job: T,
}

/// Runs every task: those with [`Threading::Auto`] spread over the current rayon pool, dealt out
/// largest first to the least-loaded of one bin per thread, the others one after another on the
/// calling thread. Returns the first error (tasks are meant to be validated before).
pub(crate) fn run_balanced<T, E, F>(tasks: Vec<Task<T>>, work: F) -> Result<(), E>
where
    T: Send,
    E: Send,
    F: Fn(T) -> Result<(), E> + Sync,
{
    let (parallel, single): (Vec<Task<T>>, Vec<Task<T>>) = tasks
        .into_iter()
        .partition(|task| task.threading == Threading::Auto);
    let threads = rayon::current_num_threads();
    if threads <= 1 || parallel.len() <= 1 {
        parallel.into_iter().try_for_each(|task| work(task.job))?;
    } else if rayon::current_thread_index().is_none()
        && parallel
            .iter()
            .all(|task| task.size < PARALLEL_MIN_ELEMENTS)
    {
        share_with_caller(parallel, threads, &work)?;
    } else {
        balance(parallel, threads)
            .into_par_iter()
            .with_max_len(1)
            .try_for_each(|bin| bin.into_iter().try_for_each(&work))?;
    }
    single.into_iter().try_for_each(|task| work(task.job))
}

/// Called from outside the pool (a training loop's own thread), the caller would sleep while
/// the pool wakes up, a cost comparable to a small model's whole call: here it takes tasks too,
/// largest first from one queue that `threads - 1` pool workers drain with it. Only for tensors
/// below [`PARALLEL_MIN_ELEMENTS`], which no kernel splits: a split from outside the pool would
/// send the caller to sleep.
fn share_with_caller<T, E, F>(mut tasks: Vec<Task<T>>, threads: usize, work: &F) -> Result<(), E>
where
    T: Send,
    E: Send,
    F: Fn(T) -> Result<(), E> + Sync,
{
    tasks.sort_by_key(|task| std::cmp::Reverse(task.size));
    let queue: Vec<Mutex<Option<T>>> = tasks
        .into_iter()
        .map(|task| Mutex::new(Some(task.job)))
        .collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<E>> = Mutex::new(None);
    let drain = || {
        while let Some(slot) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
            let job = lock(slot)
                .take()
                .expect("the queue hands out each task once");
            if let Err(err) = work(job) {
                lock(&failure).get_or_insert(err);
            }
        }
    };
    rayon::in_place_scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| drain());
        }
        drain();
    });
    match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// A lock that a panic elsewhere does not poison for us: the data is a plain slot.
fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Longest-processing-time-first: sorts by size, largest first, and gives each task to the bin
/// with the least work so far. Empty bins are dropped.
fn balance<T>(mut tasks: Vec<Task<T>>, bins: usize) -> Vec<Vec<T>> {
    tasks.sort_by_key(|task| std::cmp::Reverse(task.size));
    let mut loads = vec![0usize; bins];
    let mut out: Vec<Vec<T>> = (0..bins).map(|_| Vec::new()).collect();
    for task in tasks {
        let lightest = (0..bins)
            .min_by_key(|&bin| loads[bin])
            .expect("at least one bin");
        // An empty tensor still costs a call.
        loads[lightest] = loads[lightest].saturating_add(task.size.max(1));
        out[lightest].push(task.job);
    }
    out.retain(|bin| !bin.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(sizes: &[usize]) -> Vec<Task<usize>> {
        sizes
            .iter()
            .enumerate()
            .map(|(index, &size)| Task {
                size,
                threading: Threading::Auto,
                job: index,
            })
            .collect()
    }

    #[test]
    fn balance_deals_largest_first_to_the_lightest_bin() {
        let sizes = [5, 1, 9, 3, 3, 7];
        let bins = balance(tasks(&sizes), 2);
        // 9 → A, 7 → B, 5 → B (7 < 9), 3 → A (9 < 12), 3 → A (12 ≤ 12, first lightest), 1 → B
        assert_eq!(bins, vec![vec![2, 3, 4], vec![5, 0, 1]]);
        let loads: Vec<usize> = bins
            .iter()
            .map(|bin| bin.iter().map(|&i| sizes[i]).sum())
            .collect();
        assert_eq!(loads, vec![15, 13]);
    }

    #[test]
    fn balance_keeps_every_task_once_and_drops_empty_bins() {
        let bins = balance(tasks(&[4, 0, 2]), 8);
        assert_eq!(bins.len(), 3);
        let mut all: Vec<usize> = bins.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
    }

    #[test]
    fn the_caller_shares_the_queue_each_task_runs_once_and_errors_come_back() {
        // From a plain thread, as a training loop calls: the caller drains the queue with the pool.
        std::thread::spawn(|| {
            let runs: Vec<AtomicUsize> = (0..40).map(|_| AtomicUsize::new(0)).collect();
            let sizes: Vec<usize> = (0..40).map(|i| (i * 37) % 11).collect();
            for threads in [2, 3, 8] {
                share_with_caller(tasks(&sizes), threads, &|index: usize| {
                    runs[index].fetch_add(1, Ordering::Relaxed);
                    Ok::<(), ()>(())
                })
                .unwrap();
            }
            assert!(runs.iter().all(|count| count.load(Ordering::Relaxed) == 3));
            let failed = share_with_caller(tasks(&sizes), 2, &|index: usize| match index {
                7 => Err(index),
                _ => Ok(()),
            });
            assert_eq!(failed, Err(7));
        })
        .join()
        .unwrap();
    }

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
