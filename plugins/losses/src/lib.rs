//! The `losses` plugin: `cross_entropy`, `bce` and `focal`.
//!
//! Each loss returns the mean loss of a batch of `[N, C]` logits against `[N, C]` target
//! probabilities and writes the exact gradient with respect to the logits. Everything is
//! accumulated in f64 with a log-sum-exp (or softplus) formulation, so large logits neither
//! overflow nor lose precision. Values and gradients are checked against PyTorch on committed
//! fixtures (`scripts/fixtures/losses.py`).

pub mod bce;
pub mod cross_entropy;
pub mod focal;
mod targets;

pub use bce::{Bce, BceConfig};
pub use cross_entropy::{CrossEntropy, CrossEntropyConfig};
pub use focal::{Focal, FocalConfig};

use clshost_plugin_api::prelude::*;

register!(Loss: CrossEntropy, Loss: Bce, Loss: Focal);
export_plugin!(description: "Cross-entropy (soft targets, label smoothing, class weights), BCE and focal losses");
