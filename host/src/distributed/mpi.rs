//! The collectives on MPI (cargo feature `mpi`), through rsmpi, the maintained Rust binding to
//! the system's Open MPI or MPICH.
//!
//! MPI is initialized with `MPI_THREAD_FUNNELED`: only the thread that initialized it (the
//! training thread) calls MPI, the data loader's and loggers' threads never do. Every call goes
//! to `MPI_COMM_WORLD`, so the plugin side of the collective needs no handle.

use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::datatype::{Equivalence, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use super::DistributedError;

/// Bytes broadcast per MPI call: counts are C `int`s.
const BROADCAST_CHUNK: usize = 1 << 30;

/// An initialized MPI; finalized when dropped.
pub struct Mpi {
    _universe: Universe,
    world: SimpleCommunicator,
}

impl Mpi {
    /// Initializes MPI and joins its world.
    pub fn init() -> Result<Mpi, DistributedError> {
        let (universe, _threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| DistributedError::Init("MPI was already initialized".into()))?;
        let world = universe.world();
        Ok(Mpi {
            _universe: universe,
            world,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> u32 {
        self.world.rank() as u32
    }

    /// The number of ranks.
    pub fn size(&self) -> u32 {
        self.world.size() as u32
    }

    /// The number of ranks on this machine (those sharing its memory), this one included.
    pub fn local_size(&self) -> u32 {
        self.world.split_shared(self.world.rank()).size() as u32
    }

    /// Sums `data` over the ranks, in place.
    pub fn all_reduce(&self, data: &mut [f64]) {
        sum_in_place(&self.world, data);
    }

    /// Rank 0's `data` on every rank.
    pub fn broadcast_bytes(&self, data: &mut Vec<u8>) {
        let mut len = data.len() as u64;
        self.world.process_at_rank(0).broadcast_into(&mut len);
        data.resize(len as usize, 0);
        broadcast_in_chunks(&self.world, data, 0);
    }

    /// Every rank's `local`, in rank order.
    pub fn all_gather(&self, local: &[f32]) -> Vec<Vec<f32>> {
        let mut counts = vec![0i32; self.world.size() as usize];
        self.world
            .all_gather_into(&(local.len() as i32), &mut counts[..]);
        let displs: Vec<i32> = counts
            .iter()
            .scan(0, |offset, &c| {
                let at = *offset;
                *offset += c;
                Some(at)
            })
            .collect();
        let total = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![0f32; total];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(local, &mut partition);
        }
        let mut out = Vec::with_capacity(counts.len());
        let mut rest = all.as_slice();
        for &c in &counts {
            let (head, tail) = rest.split_at(c as usize);
            out.push(head.to_vec());
            rest = tail;
        }
        out
    }
}

/// The MPI library and its version, from the start of its own version text (`Open MPI
/// v4.1.4`, `MPICH Version: 4.0.2`).
pub fn library() -> String {
    mpi::environment::library_version()
        .ok()
        .and_then(|v| {
            let first = v.lines().next()?.split(',').next()?;
            Some(first.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an MPI library that does not say its version".into())
}

/// Ends every process of `MPI_COMM_WORLD` with `code`.
pub fn abort(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}

/// Sums `data` over the ranks of `MPI_COMM_WORLD`, in place.
pub fn all_reduce_world(data: &mut [f32]) {
    sum_in_place(&SimpleCommunicator::world(), data);
}

/// Rank `root`'s `data` on every rank of `MPI_COMM_WORLD`.
pub fn broadcast_world(data: &mut [u8], root: u32) {
    broadcast_in_chunks(&SimpleCommunicator::world(), data, root);
}

/// Sums `data` over the ranks of `comm`, in place.
fn sum_in_place<T: Equivalence + Copy>(comm: &SimpleCommunicator, data: &mut [T]) {
    let send = data.to_vec();
    comm.all_reduce_into(&send[..], data, SystemOperation::sum());
}

/// Rank `root`'s `data` on every rank of `comm`, in chunks whose counts fit MPI's `int`.
fn broadcast_in_chunks(comm: &SimpleCommunicator, data: &mut [u8], root: u32) {
    let root = comm.process_at_rank(root as i32);
    for chunk in data.chunks_mut(BROADCAST_CHUNK) {
        root.broadcast_into(chunk);
    }
}
