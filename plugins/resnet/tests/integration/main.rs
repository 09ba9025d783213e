//! Integration tests of the resnet plugin, in one binary: parity with torchvision, the training
//! features (AdamW, clipping, accumulation, EMA, exact resume), weight files, the graph, and the
//! accelerator backends (wgpu on whatever Vulkan the machine has, Mesa's software one in CI;
//! CUDA with `--features cuda` on a GPU machine). `CLSHOST_TEST_DEVICE` moves the torchvision
//! parity tests onto another device.

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod accelerator;
mod common;
mod graph;
mod parity;
mod training;
mod weights;
