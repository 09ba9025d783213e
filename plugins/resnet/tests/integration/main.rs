//! Integration tests of the resnet plugin, in one binary (the crate has no unit tests: a test
//! build of the library would compile the whole backbone a second time): what the plugin
//! declares, parity with torchvision (in float32, and in bfloat16 mixed precision against
//! `torch.autocast` on the LibTorch backend), the training features (AdamW, clipping,
//! accumulation, EMA, exact resume), weight files, the graph, data-parallel training through an
//! in-memory collective, and the accelerator backends (wgpu on whatever Vulkan the machine has,
//! Mesa's software one in CI; CUDA with `--features cuda` on a GPU machine).
//! `CLSHOST_TEST_DEVICE` moves the torchvision parity tests, the AdamW fixture and the
//! exact-resume test onto another device (CI runs them on `libtorch:cpu` with
//! `--features libtorch`).

#[cfg(any(feature = "wgpu", feature = "cuda", feature = "libtorch"))]
mod accelerator;
mod common;
mod distributed;
mod graph;
mod parity;
mod precision;
mod registry;
mod training;
mod tune;
mod weights;
