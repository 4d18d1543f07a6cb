//! [`ThreadCommunicator`]: ranks that are threads of one process, for tests and benchmarks.

use std::sync::{Arc, Condvar, Mutex};

use super::Communicator;
use crate::Error;

/// One rank of a group of threads that all-gather through a shared buffer (a mutex and a
/// condition variable from `std`). Make the group with [`ThreadCommunicator::group`] and move one
/// handle into each thread.
///
/// Every rank must make the same sequence of calls, as with MPI. A rank that passes a slice of
/// another length makes that gather fail on every rank; a handle dropped while others wait (its
/// thread ended or panicked) makes their gathers fail instead of hanging.
///
/// ```
/// use chandir::shard::{Communicator, ThreadCommunicator};
///
/// let group = ThreadCommunicator::group(3);
/// let gathered: Vec<Vec<f64>> = std::thread::scope(|s| {
///     let handles: Vec<_> = group
///         .iter()
///         .map(|comm| s.spawn(move || comm.all_gather(&[comm.rank() as f64; 2]).unwrap()))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert!(gathered.iter().all(|g| g == &[0.0, 0.0, 1.0, 1.0, 2.0, 2.0]));
/// ```
#[derive(Debug)]
pub struct ThreadCommunicator {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// What each rank has put in for the current round.
    slots: Vec<Option<Vec<f64>>>,
    arrived: usize,
    /// The result of the round, while the ranks collect it.
    result: Option<Arc<Result<Vec<f64>, String>>>,
    collected: usize,
    /// A handle was dropped: no further round can complete.
    closed: bool,
}

impl ThreadCommunicator {
    /// `size ≥ 1` handles, rank `0..size` in order.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn group(size: usize) -> Vec<ThreadCommunicator> {
        assert!(size >= 1, "a group needs at least one rank");
        let shared = Arc::new(Shared {
            size,
            state: Mutex::new(State {
                slots: vec![None; size],
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        (0..size)
            .map(|rank| ThreadCommunicator {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }
}

fn lost() -> Error {
    Error::Communication {
        reason: "a thread of the group panicked while gathering".into(),
    }
}

fn closed() -> Error {
    Error::Communication {
        reason: "a rank of the thread group left (its handle was dropped) before this gather"
            .into(),
    }
}

impl Communicator for ThreadCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_gather(&self, send: &[f64]) -> Result<Vec<f64>, Error> {
        let shared = &*self.shared;
        let mut state = shared.state.lock().map_err(|_| lost())?;
        // Wait for the previous round to be collected by every rank.
        while state.result.is_some() {
            state = shared.changed.wait(state).map_err(|_| lost())?;
        }
        if state.closed {
            return Err(closed());
        }
        state.slots[self.rank] = Some(send.to_vec());
        state.arrived += 1;
        if state.arrived == shared.size {
            let slots: Vec<Vec<f64>> = state
                .slots
                .iter_mut()
                .map(|s| s.take().unwrap_or_default())
                .collect();
            let len = slots[0].len();
            let result = if slots.iter().all(|s| s.len() == len) {
                Ok(slots.concat())
            } else {
                let lens: Vec<usize> = slots.iter().map(Vec::len).collect();
                Err(format!(
                    "ranks passed slices of different lengths to one all-gather: {lens:?}"
                ))
            };
            state.result = Some(Arc::new(result));
            state.arrived = 0;
            state.collected = 0;
            shared.changed.notify_all();
        } else {
            while state.result.is_none() {
                if state.closed {
                    // Take our slice back: this round will never complete.
                    state.slots[self.rank] = None;
                    state.arrived -= 1;
                    return Err(closed());
                }
                state = shared.changed.wait(state).map_err(|_| lost())?;
            }
        }
        let result = Arc::clone(state.result.as_ref().expect("a completed round"));
        state.collected += 1;
        if state.collected == shared.size {
            state.result = None;
            shared.changed.notify_all();
        }
        drop(state);
        match &*result {
            Ok(values) => Ok(values.clone()),
            Err(reason) => Err(Error::Communication {
                reason: reason.clone(),
            }),
        }
    }
}

impl Drop for ThreadCommunicator {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.closed = true;
        }
        self.shared.changed.notify_all();
    }
}
