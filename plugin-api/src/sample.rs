//! The augmentation contracts: per-sample augmentations and batch augmentations.
//!
//! A sample augmentation works on one decoded sample, either on the 8-bit image before
//! normalization ([`AugmentStage::Image`]) or on the normalized `f32` CHW tensor after it
//! ([`AugmentStage::Tensor`]). A batch augmentation (MixUp, CutMix) mixes a whole `[N, C, H, W]`
//! batch and its `[N, classes]` target matrix in place. Both are deterministic given the seed the
//! host passes, which the host derives from (recipe seed, epoch, sample or batch index), and
//! neither may use a global random number generator.

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult};

use crate::{ImageU8, PluginError, TensorMut};

/// The data an augmentation is created with.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct AugmentContext {
    /// The training input height the recipe asks for.
    pub input_height: u32,
    /// The training input width the recipe asks for.
    pub input_width: u32,
    /// Per-channel mean used to normalize images (on the 0..1 scale).
    pub mean: [f32; 3],
    /// Per-channel standard deviation used to normalize images (on the 0..1 scale).
    pub std: [f32; 3],
    /// Number of classes (width of the target matrix for batch augmentations).
    pub num_classes: u32,
}

/// Where in the pipeline a sample augmentation runs.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AugmentStage {
    /// On the decoded 8-bit RGB image, before normalization.
    Image,
    /// On the normalized `f32` tensor `[3, H, W]`, after normalization.
    Tensor,
}

/// The sample augmentation contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::ImageAugment`] or [`crate::authoring::TensorAugment`] instead.
#[sabi_trait]
pub trait AbiSampleAugment: Send + Sync {
    /// Which stage the augmentation runs at; the host calls only the matching `apply_*`.
    fn stage(&self) -> RResult<AugmentStage, PluginError>;

    /// Transforms an image (image stage); may change its size.
    fn apply_image(&self, image: ImageU8, seed: u64) -> RResult<ImageU8, PluginError>;

    /// Transforms a normalized `[3, H, W]` tensor in place (tensor stage).
    #[sabi(last_prefix_field)]
    fn apply_tensor(&self, tensor: TensorMut<'_>, seed: u64) -> RResult<(), PluginError>;
}

/// The batch augmentation contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::BatchAugment`] instead.
#[sabi_trait]
pub trait AbiBatchAugment: Send + Sync {
    /// Mixes an `[N, 3, H, W]` batch and its `[N, classes]` soft targets in place.
    #[sabi(last_prefix_field)]
    fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> RResult<(), PluginError>;
}

/// An owned sample augmentation object.
pub type SampleAugmentBox = AbiSampleAugment_TO<'static, RBox<()>>;

/// An owned batch augmentation object.
pub type BatchAugmentBox = AbiBatchAugment_TO<'static, RBox<()>>;
