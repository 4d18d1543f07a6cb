//! [`MpiCommunicator`]: ranks that are MPI processes, through the `mpi` crate (rsmpi).

use mpi::collective::CommunicatorCollectives;
use mpi::topology::{Communicator as _, SimpleCommunicator};

use super::Communicator;
use crate::Error;

/// The ranks of an MPI communicator (e.g. `universe.world()`), all-gathering with
/// `MPI_Allgather`.
///
/// Each gather first all-gathers the slice lengths, so a rank that passes a slice of another
/// length gets an [`Error::Communication`] on every rank instead of undefined behaviour. MPI's
/// own failures abort the job (MPI's default error handler).
///
/// ```no_run
/// use chandir::shard::{smooth_rows, Communicator, MpiCommunicator};
/// use chandir::Metric;
/// use ndarray::Array2;
///
/// let universe = mpi::initialize().expect("MPI initialized once");
/// let comm = MpiCommunicator::new(universe.world());
/// // a [64, 9] gradient, 64 / size rows per process
/// let rows = 64 / comm.size();
/// let mut part = Array2::<f32>::ones((rows, 9));
/// smooth_rows(&comm, &Metric::default(), &[64, 9], comm.rank() * rows, &mut part)?;
/// # Ok::<(), chandir::Error>(())
/// ```
pub struct MpiCommunicator {
    comm: SimpleCommunicator,
}

impl MpiCommunicator {
    /// Wraps an MPI communicator.
    pub fn new(comm: SimpleCommunicator) -> Self {
        MpiCommunicator { comm }
    }

    /// The wrapped communicator.
    pub fn inner(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

impl std::fmt::Debug for MpiCommunicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiCommunicator")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .finish()
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    fn all_gather(&self, send: &[f64]) -> Result<Vec<f64>, Error> {
        let size = self.size();
        let mut lens = vec![0u64; size];
        self.comm
            .all_gather_into(&(send.len() as u64), &mut lens[..]);
        if lens.iter().any(|&l| l != lens[0]) {
            return Err(Error::Communication {
                reason: format!(
                    "ranks passed slices of different lengths to one all-gather: {lens:?}"
                ),
            });
        }
        let mut recv = vec![0.0_f64; send.len() * size];
        if !send.is_empty() {
            self.comm.all_gather_into(send, &mut recv[..]);
        }
        Ok(recv)
    }
}
