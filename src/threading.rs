//! Threading, decided in one place: whether a call may split its work over rayon's pool
//! ([`Threading`], turned into a [`Par`] once per call and passed down explicitly, as faer passes
//! its `Par`), how large a piece must be to be worth a thread, and the scheduler that deals a
//! whole model's tensors out to the threads ([`run_balanced`]). `layout`, `solve` and the
//! whole-model calls depend on this module; it depends on none of them.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Whether one call may spread its work over threads. Results do not depend on it.
///
/// ```
/// use chandir::{ChannelDirected, Threading};
/// use ndarray::Array4;
///
/// let mut g = Array4::<f32>::ones((256, 256, 3, 3));
/// // Inside a data-parallel loop that already keeps every core busy:
/// ChannelDirected::sobolev(1.0).with_threading(Threading::Single).apply(&mut g)?;
/// // Or cap the threads with a rayon pool of your own:
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// pool.install(|| chandir::precondition(&mut g, 1.0))?;
/// # Ok::<(), chandir::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Threading {
    /// Tensors of at least 65 536 values are split over the threads of the current rayon pool:
    /// the global pool, or the one the call runs in through `ThreadPool::install`. Smaller
    /// tensors stay on the calling thread.
    #[default]
    Auto,
    /// Everything on the calling thread.
    Single,
}

/// Below this many elements work stays on one thread: splitting costs more than it saves.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// What one call may do, decided once from its [`Threading`] and the pool it runs in, and passed
/// to every kernel and walk below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Par {
    parallel: bool,
}

impl Par {
    /// `threading` in the current rayon pool: parallel only for [`Threading::Auto`] in a pool of
    /// more than one thread.
    pub(crate) fn new(threading: Threading) -> Par {
        Par {
            parallel: threading == Threading::Auto && rayon::current_num_threads() > 1,
        }
    }

    /// Whether work of `elements` values may be split.
    pub(crate) fn splits(self, elements: usize) -> bool {
        self.parallel && elements >= PARALLEL_MIN_ELEMENTS
    }

    /// Whether work may be split at all (the caller has sized its pieces).
    pub(crate) fn is_parallel(self) -> bool {
        self.parallel
    }

    /// Elements per piece when `elements` are cut into about four pieces per thread, at least
    /// [`PARALLEL_MIN_ELEMENTS`] each.
    pub(crate) fn piece(self, elements: usize) -> usize {
        (elements / (4 * rayon::current_num_threads())).max(PARALLEL_MIN_ELEMENTS)
    }
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
}
