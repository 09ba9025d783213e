//! The collective (ABI 1.5): how a backbone trained data-parallel talks to the other processes
//! of its job.
//!
//! In a data-parallel run (`mpirun -np W clshost run recipe.ron`) every process, or *rank*,
//! holds the same backbone and trains it on its own share of each batch window; the gradients
//! must be averaged across ranks before each optimizer step. Gradients live inside the backbone
//! plugin, so the host hands the backbone an [`AbiCollective`] with the root module's
//! [`distribute`](crate::PluginRoot::distribute). The host implements it on its MPI
//! communicator; the plugin only calls it.
//!
//! The contract of a backbone that accepted a collective:
//!
//! - on every `backward_step` that applies the optimizer, it sums its accumulated gradients
//!   across ranks with [`AbiCollective::all_reduce_sum`] (the host has already divided each
//!   rank's logit gradient by the number of micro-batches in the window, so the sum is the
//!   mean), before clipping, so every rank applies the same update;
//! - a rank that has no batch in a window calls `backward_step` with a gradient of zero rows and
//!   no `forward` before it: the backbone contributes zeros to the reduction and applies the
//!   update with the others;
//! - every rank makes the same calls in the same order, since a collective blocks until all
//!   ranks have entered it.
//!
//! Buffers are host memory. A GPU plugin copies its gradients to the host for the reduction; it
//! may instead set up its own device collective (NCCL) once, from an identifier that rank 0
//! creates and sends to the others with [`AbiCollective::broadcast`].

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult, RSliceMut};

use crate::PluginError;

/// The processes of a data-parallel job, as a backbone sees them (ABI 1.5).
#[sabi_trait]
pub trait AbiCollective: Send {
    /// This process's rank, from 0.
    fn rank(&self) -> u32;

    /// The number of ranks in the job.
    fn size(&self) -> u32;

    /// Replaces `data` on every rank with the element-wise sum of every rank's `data`. All ranks
    /// pass buffers of the same length.
    fn all_reduce_sum(&self, data: RSliceMut<'_, f32>) -> RResult<(), PluginError>;

    /// Replaces `data` on every rank with rank `root`'s `data`. All ranks pass buffers of the
    /// same length.
    #[sabi(last_prefix_field)]
    fn broadcast(&self, data: RSliceMut<'_, u8>, root: u32) -> RResult<(), PluginError>;
}

/// An owned collective, as handed to a backbone.
pub type CollectiveBox = AbiCollective_TO<'static, RBox<()>>;
