//! The `augment` plugin: the augmentations of modern ImageNet recipes with the semantics of
//! torchvision's `transforms.v2` and timm, on 8-bit RGB images.
//!
//! Every op is a pure function with explicit parameters (in [`geometry`], [`color`],
//! [`resize`], [`autoaug`], [`erasing`] and [`mix`]) plus a component that draws those parameters
//! from the seed the host passes. Components:
//!
//! - image stage: `random_resized_crop`, `resize`, `center_crop`, `random_crop`,
//!   `horizontal_flip`, `vertical_flip`, `color_jitter`, `random_grayscale`, `gaussian_blur`,
//!   `auto_augment`, `rand_augment`, `trivial_augment_wide`, `aug_mix`;
//! - tensor stage: `random_erasing`;
//! - batch: `mixup`, `cutmix`.

use clshost_plugin_api::prelude::*;

pub mod autoaug;
mod checks;
pub mod color;
pub mod crop;
pub mod erasing;
pub mod flip;
pub mod geometry;
pub mod mix;
pub mod photometric;
pub mod resize;
pub mod rng;

register!(
    ImageAugment: crop::RandomResizedCrop,
    ImageAugment: crop::Resize,
    ImageAugment: crop::CenterCrop,
    ImageAugment: crop::RandomCrop,
    ImageAugment: flip::HorizontalFlip,
    ImageAugment: flip::VerticalFlip,
    ImageAugment: photometric::ColorJitter,
    ImageAugment: photometric::RandomGrayscale,
    ImageAugment: photometric::GaussianBlur,
    ImageAugment: autoaug::AutoAugment,
    ImageAugment: autoaug::RandAugment,
    ImageAugment: autoaug::TrivialAugmentWide,
    ImageAugment: autoaug::AugMix,
    TensorAugment: erasing::RandomErasing,
    BatchAugment: mix::Mixup,
    BatchAugment: mix::Cutmix,
);

export_plugin!(
    description: "torchvision/timm augmentations on u8 images, random erasing, MixUp and CutMix"
);
