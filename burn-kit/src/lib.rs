//! The Burn kit: turns a Burn module into a clshost backbone.
//!
//! A model author writes a Burn module from images to logits ([`ClassifierModel`]) and a
//! [`ModelFamily`] that builds and initializes it; [`BurnBackbone`] then provides the whole
//! backbone contract of the plugin ABI:
//!
//! - the device from the recipe: `cpu` (Burn's flex backend, multi-threaded and SIMD), `wgpu` /
//!   `wgpu:N`, `cuda` / `cuda:N` (cargo features `wgpu`, on by default, and `cuda`); a device the
//!   build or machine lacks is a clear error naming what is available, and [`devices()`] reports
//!   what this build and machine offer, for the plugin's ABI 1.1 device report; with the
//!   `libtorch` feature, `libtorch:cpu` and `libtorch:cuda[:N]` run on PyTorch's ATen kernels
//!   (module `libtorch`, built with that feature);
//! - training passes keeping the autodiff graph, backward from the gradient of the logits,
//!   gradient accumulation, and inference passes without autodiff ([`session`]);
//! - SGD and AdamW with PyTorch's update rules, separate weight decay for normalization and bias
//!   parameters, global-norm clipping ([`optim`]), and an EMA of the weights;
//! - checkpoints of the complete training state that resume exactly ([`state`]);
//! - weights by name in PyTorch naming, loading a `.pth` or `.safetensors` state dict with a
//!   report of what did not fit ([`weights`]), and the framework-neutral graph ([`graph`]);
//! - fine-tuning controls (plugin ABI 1.3): freezing by name pattern, parameter groups,
//!   layer-wise learning-rate decay and frozen normalization statistics ([`tune`]);
//! - data-parallel training (plugin ABI 1.5): gradients summed across ranks in one collective
//!   call before each optimizer step ([`distribute`]);
//! - mixed precision (plugin ABI 1.6): convolutions and linear layers in bfloat16 on the
//!   LibTorch backend, as `torch.autocast` runs them ([`precision`]).
//!
//! [`nn`] holds layers whose names and semantics match PyTorch where Burn's differ.

pub mod backbone;
pub mod convert;
pub mod device;
pub mod devices;
pub mod distribute;
mod fused;
pub mod graph;
#[cfg(feature = "libtorch")]
pub mod libtorch;
pub mod model;
pub mod nn;
pub mod optim;
pub mod params;
pub mod precision;
pub mod session;
pub mod state;
pub mod tune;
pub mod weights;

pub use backbone::BurnBackbone;
pub use device::{DeviceChoice, TorchDevice, available_devices};
pub use devices::devices;
pub use graph::GraphBuilder;
pub use model::{ClassifierModel, ModelFamily};
pub use nn::ForwardContext;
pub use precision::Precision;
pub use weights::{describe, read_state_dict};

pub use burn;
pub use rand_chacha::ChaCha8Rng;
