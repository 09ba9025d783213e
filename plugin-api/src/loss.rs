//! The loss contract: a mean loss over a batch and its exact gradient with respect to the logits.

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult};

use crate::{PluginError, TensorMut, TensorRef};

/// The data a loss is created with.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct LossContext {
    /// Number of classes (width of the logits and target matrices).
    pub num_classes: u32,
}

/// The loss contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::Loss`] instead.
#[sabi_trait]
pub trait AbiLoss: Send + Sync {
    /// Whether targets may be soft (rows of probabilities from MixUp or CutMix) rather than
    /// one-hot rows. The host refuses batch augmentations with a loss that says no.
    fn accepts_soft_targets(&self) -> RResult<bool, PluginError>;

    /// Computes the mean loss of `[N, classes]` logits against `[N, classes]` targets (each row
    /// sums to 1) and writes `d loss / d logits` into `grad`, which has the logits' shape.
    #[sabi(last_prefix_field)]
    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        grad: TensorMut<'_>,
    ) -> RResult<f64, PluginError>;
}

/// An owned loss object.
pub type LossBox = AbiLoss_TO<'static, RBox<()>>;
