//! Integration tests of the resnet plugin, in one binary: parity with torchvision, the training
//! features (AdamW, clipping, accumulation, EMA, exact resume), weight files, the graph, and the
//! wgpu backend on whatever Vulkan the machine has (Mesa's software one in CI).

mod common;
mod graph;
mod parity;
mod training;
mod weights;
#[cfg(feature = "wgpu")]
mod wgpu;
