//! Data-parallel runs: which process (rank) of a job this one is, and the collectives the ranks
//! run together.
//!
//! A job is launched by an MPI launcher (`mpirun -np 8 clshost run recipe.ron`, Slurm's `srun`,
//! the Kubernetes MPI operator), which starts the same command once per rank and tells each
//! process, through its environment, that it is part of a job. [`World::join`] reads that
//! environment: launched by one, and built with the cargo feature `mpi`, it initializes MPI
//! (`mpi` module) and joins the job; otherwise it is a job of one, where every collective
//! returns its input. A clshost built without MPI refuses to run as one rank of several,
//! rather than training the recipe once per rank side by side.
//!
//! The collectives are MPI's, on host memory: a sum all-reduce of `f32` and `f64` buffers, a
//! broadcast of bytes from rank 0, and an all-gather of `f32` buffers of any length. Every rank
//! must make the same calls in the same order. MPI's errors are fatal: a failed collective
//! (a rank died) ends the process, and the launcher ends the job.
//!
//! [`World::collective`] is the same job as a backbone plugin sees it (plugin ABI 1.5): rank 0's
//! gradients and rank 1's are summed inside the plugin with it.

#[cfg(feature = "mpi")]
mod mpi;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clshost_plugin_api::{AbiCollective, AbiCollective_TO, CollectiveBox, PluginError};
use clshost_plugin_api::{RResult, RSliceMut};
use sha2::{Digest, Sha256};

/// The job could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// Started by a launcher as one of several ranks, without MPI in this build.
    #[error(
        "this process was started by {launcher} as one of {size} ranks, but this clshost was \
         built without MPI; rebuild it with `--features clshost/mpi` (after \
         `scripts/setup-mpi.sh`), or run it without the launcher"
    )]
    NoMpi {
        /// The launcher, in words.
        launcher: String,
        /// The job's size, as the launcher declared it.
        size: u32,
    },
    /// MPI failed to initialize.
    #[error("cannot initialize MPI: {0}")]
    Init(String),
    /// A run is resumed with another number of ranks than it was trained with.
    #[error(
        "{run} was trained with {trained} rank(s) and this job has {job}: resume it with as many \
         (`mpirun -np {trained}`)"
    )]
    WorldSize {
        /// The run directory.
        run: String,
        /// The ranks it was trained with.
        trained: u32,
        /// The ranks of this job.
        job: u32,
    },
    /// Ranks start from different inputs.
    #[error(
        "rank {rank} runs with another {what} than rank 0: every rank must run the same recipe, \
         plugins, data and initial weights (copy them to every machine, at the same paths)"
    )]
    Mismatch {
        /// The first rank that differs.
        rank: u32,
        /// What differs: `recipe`, `plugins`, `dataset`, `initial weights`.
        what: String,
    },
}

/// Which launcher started this process, as its environment says, and the job's size when it
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The launcher, in words.
    pub name: String,
    /// The number of ranks it started, when its variables give it.
    pub size: Option<u32>,
}

impl Launcher {
    /// The launcher named by `var` (an environment lookup): Open MPI's `mpirun`
    /// (`OMPI_COMM_WORLD_SIZE`), a PMI launcher such as MPICH's `mpiexec` or
    /// `srun --mpi=pmi2` (`PMI_SIZE`), or a PMIx one such as `srun --mpi=pmix` (`PMIX_RANK`,
    /// with `SLURM_NTASKS` for the size); `None` when started directly.
    pub fn detect(var: impl Fn(&str) -> Option<String>) -> Option<Launcher> {
        let size = |name: &str| var(name).and_then(|v| v.trim().parse().ok());
        if var("OMPI_COMM_WORLD_SIZE").is_some() {
            return Some(Launcher {
                name: "Open MPI's mpirun".into(),
                size: size("OMPI_COMM_WORLD_SIZE"),
            });
        }
        if var("PMI_SIZE").is_some() {
            return Some(Launcher {
                name: "a PMI launcher (mpiexec, srun)".into(),
                size: size("PMI_SIZE"),
            });
        }
        if var("PMIX_RANK").is_some() {
            return Some(Launcher {
                name: "a PMIx launcher (srun, prterun)".into(),
                size: size("SLURM_NTASKS"),
            });
        }
        None
    }

    /// The launcher of this process, from its environment.
    pub fn from_env() -> Option<Launcher> {
        Launcher::detect(|name| std::env::var(name).ok())
    }
}

/// The processes of this job, and this one's place among them.
pub struct World {
    rank: u32,
    size: u32,
    /// The ranks on this machine, this one included.
    local_size: u32,
    /// Nanoseconds this process has spent in its backbone's all-reduces.
    reducing: Arc<AtomicU64>,
    #[cfg(feature = "mpi")]
    mpi: Option<mpi::Mpi>,
}

impl World {
    /// A job of one process.
    pub fn single() -> World {
        World {
            rank: 0,
            size: 1,
            local_size: 1,
            reducing: Arc::default(),
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// Joins the job this process was launched into (see the module documentation); a job of
    /// one when no launcher started it.
    pub fn join() -> Result<World, DistributedError> {
        let Some(launcher) = Launcher::from_env() else {
            return Ok(World::single());
        };
        World::join_launched(launcher)
    }

    #[cfg(feature = "mpi")]
    fn join_launched(_launcher: Launcher) -> Result<World, DistributedError> {
        let mpi = mpi::Mpi::init()?;
        Ok(World {
            rank: mpi.rank(),
            size: mpi.size(),
            local_size: mpi.local_size(),
            reducing: Arc::default(),
            mpi: Some(mpi),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn join_launched(launcher: Launcher) -> Result<World, DistributedError> {
        match launcher.size {
            Some(size) if size > 1 => Err(DistributedError::NoMpi {
                launcher: launcher.name,
                size,
            }),
            _ => Ok(World::single()),
        }
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The number of ranks on this machine, this one included.
    pub fn local_size(&self) -> u32 {
        self.local_size
    }

    /// Why this machine is oversubscribed, when its ranks may run more CPU threads together
    /// than it has CPUs: each rank's CPU backend uses `RAYON_NUM_THREADS` threads, or every CPU
    /// the rank may run on.
    pub fn oversubscription(&self) -> Option<String> {
        let threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n: &usize| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))?;
        oversubscription(self.local_size as usize, threads, online_cpus()?)
    }

    /// Whether this is rank 0, the one that writes the run directory.
    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    /// Whether there is more than one rank.
    pub fn is_distributed(&self) -> bool {
        self.size > 1
    }

    /// The job in words, when it has more than one rank: `2 ranks (Open MPI v4.1.4)`.
    pub fn describe(&self) -> Option<String> {
        self.is_distributed().then(|| {
            format!(
                "{} ranks ({})",
                self.size,
                World::library().unwrap_or_default()
            )
        })
    }

    /// The MPI library this build uses (its own version line), when built with MPI.
    pub fn library() -> Option<String> {
        #[cfg(feature = "mpi")]
        return Some(mpi::library());
        #[cfg(not(feature = "mpi"))]
        None
    }

    /// Replaces `data` on every rank with the element-wise sum over the ranks.
    pub fn all_reduce_f64(&self, data: &mut [f64]) {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            mpi.all_reduce(data);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = data;
    }

    /// Replaces `data` on every rank with rank 0's (any length).
    pub fn broadcast_bytes(&self, data: &mut Vec<u8>) {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            mpi.broadcast_bytes(data);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = data;
    }

    /// Every rank's `local` (any length each), in rank order.
    pub fn all_gather_f32(&self, local: &[f32]) -> Vec<Vec<f32>> {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            return mpi.all_gather(local);
        }
        vec![local.to_vec()]
    }

    /// Checks that every rank starts from the same inputs: each of `facts` is something that
    /// must be equal on every rank (`recipe` and its text, ...), compared by SHA-256 with rank
    /// 0's. Every rank gets the same answer: the first rank and fact that differ.
    pub fn check_same(&self, facts: &[(&str, &[u8])]) -> Result<(), DistributedError> {
        if !self.is_distributed() {
            return Ok(());
        }
        let digests: Vec<u8> = facts
            .iter()
            .flat_map(|(_, bytes)| Sha256::digest(bytes))
            .collect();
        let mut leader = digests.clone();
        self.broadcast_bytes(&mut leader);
        let differs = facts
            .iter()
            .zip(digests.chunks(32).zip(leader.chunks(32)))
            .position(|(_, (mine, theirs))| mine != theirs);
        // Each rank's first differing fact (1-based; 0 when none), summed into every rank's view.
        let mut found = vec![0.0f64; self.size as usize];
        found[self.rank as usize] = differs.map_or(0.0, |i| (i + 1) as f64);
        self.all_reduce_f64(&mut found);
        match found.iter().position(|&f| f > 0.0) {
            Some(rank) => Err(DistributedError::Mismatch {
                rank: rank as u32,
                what: facts[found[rank] as usize - 1].0.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Ends every rank of the job at once with `code` (MPI_Abort), for an error the other ranks
    /// do not know about and would wait on forever; exits this process alone in a job of one.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self.mpi.is_some() {
            mpi::abort(code);
        }
        std::process::exit(code)
    }

    /// The job as a backbone plugin sees it (plugin ABI 1.5).
    pub fn collective(&self) -> CollectiveBox {
        AbiCollective_TO::from_value(
            Ranks {
                rank: self.rank,
                size: self.size,
                reducing: Arc::clone(&self.reducing),
            },
            abi_stable::sabi_trait::TD_Opaque,
        )
    }

    /// The time this process has spent in the all-reduces of the collectives it handed out.
    pub fn reducing(&self) -> Duration {
        Duration::from_nanos(self.reducing.load(Ordering::Relaxed))
    }
}

/// [`World`]'s collectives for a plugin: MPI's world communicator, which needs no handle.
struct Ranks {
    rank: u32,
    size: u32,
    /// [`World::reducing`].
    reducing: Arc<AtomicU64>,
}

impl AbiCollective for Ranks {
    fn rank(&self) -> u32 {
        self.rank
    }

    fn size(&self) -> u32 {
        self.size
    }

    fn all_reduce_sum(&self, data: RSliceMut<'_, f32>) -> RResult<(), PluginError> {
        let start = Instant::now();
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            let mut data = data;
            mpi::all_reduce_world(data.as_mut_slice());
        }
        #[cfg(not(feature = "mpi"))]
        let _ = data;
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.reducing.fetch_add(nanos, Ordering::Relaxed);
        RResult::ROk(())
    }

    fn broadcast(&self, data: RSliceMut<'_, u8>, root: u32) -> RResult<(), PluginError> {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            let mut data = data;
            mpi::broadcast_world(data.as_mut_slice(), root);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = (data, root);
        RResult::ROk(())
    }
}

/// The CPUs this machine has online (`/proc/cpuinfo`), where the platform says.
pub fn online_cpus() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let n = info
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    (n > 0).then_some(n)
}

/// What to do when `ranks` processes of `threads` threads each share `cpus` CPUs and that is
/// more threads than CPUs.
fn oversubscription(ranks: usize, threads: usize, cpus: usize) -> Option<String> {
    (ranks > 1 && ranks * threads > cpus).then(|| {
        format!(
            "{ranks} ranks share this machine's {cpus} CPUs and each may run {threads} threads: \
             bind each rank to cores of its own (`mpirun --bind-to core`, or `--map-by \
             socket:PE={}`) or cap its threads (`mpirun -x RAYON_NUM_THREADS={}`)",
            (cpus / ranks).max(1),
            (cpus / ranks).max(1)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_threads_than_cpus_on_a_machine_is_oversubscribed() {
        assert_eq!(
            oversubscription(1, 16, 2),
            None,
            "one process is never oversubscribed"
        );
        assert_eq!(oversubscription(2, 1, 2), None);
        assert_eq!(oversubscription(8, 2, 16), None);
        let advice = oversubscription(8, 8, 16).unwrap();
        assert!(advice.starts_with("8 ranks share this machine's 16 CPUs and each may run 8"));
        assert!(advice.contains("RAYON_NUM_THREADS=2"), "{advice}");
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn launchers_are_told_apart_by_their_variables() {
        assert_eq!(Launcher::detect(env(&[])), None);
        let ompi = Launcher::detect(env(&[("OMPI_COMM_WORLD_SIZE", "4")])).unwrap();
        assert_eq!(ompi.size, Some(4));
        assert!(ompi.name.contains("Open MPI"));
        let pmi = Launcher::detect(env(&[("PMI_SIZE", "2"), ("PMI_RANK", "1")])).unwrap();
        assert_eq!(pmi.size, Some(2));
        let pmix = Launcher::detect(env(&[("PMIX_RANK", "0"), ("SLURM_NTASKS", "8")])).unwrap();
        assert_eq!(pmix.size, Some(8));
        let unsized_pmix = Launcher::detect(env(&[("PMIX_RANK", "0")])).unwrap();
        assert_eq!(unsized_pmix.size, None);
    }

    #[test]
    fn a_job_of_one_returns_its_inputs() {
        let world = World::single();
        let mut data = [1.0, 2.0];
        world.all_reduce_f64(&mut data);
        assert_eq!(data, [1.0, 2.0]);
        let mut bytes = vec![1, 2, 3];
        world.broadcast_bytes(&mut bytes);
        assert_eq!(bytes, [1, 2, 3]);
        assert_eq!(world.all_gather_f32(&[1.5]), vec![vec![1.5]]);
        let collective = world.collective();
        let mut grads = [0.5f32, -1.0];
        collective
            .all_reduce_sum(grads.as_mut_slice().into())
            .unwrap();
        assert_eq!(grads, [0.5, -1.0]);
        assert_eq!((collective.rank(), collective.size()), (0, 1));
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn a_build_without_mpi_refuses_to_be_one_rank_of_several() {
        let launcher = Launcher::detect(env(&[("OMPI_COMM_WORLD_SIZE", "2")])).unwrap();
        let err = World::join_launched(launcher).err().unwrap().to_string();
        assert!(err.contains("one of 2 ranks"), "{err}");
        assert!(err.contains("--features clshost/mpi"), "{err}");
        let one = Launcher::detect(env(&[("OMPI_COMM_WORLD_SIZE", "1")])).unwrap();
        assert_eq!(World::join_launched(one).unwrap().size(), 1);
    }
}
