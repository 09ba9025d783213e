//! The stable plugin ABI of clshost.
//!
//! Every backbone, augmentation, loss, metric, exporter and logger that clshost uses lives in a
//! plugin: a shared library (`cdylib`) loaded at run time. This crate is the only thing a plugin
//! and the host share. It defines:
//!
//! - the **stable data types** that cross the boundary ([`Tensor`], [`TensorRef`], [`ImageU8`],
//!   [`ModelGraph`], [`MetricReport`], [`PluginError`], ...), all `#[repr(C)]` and checked by
//!   [`abi_stable`] when a plugin is loaded;
//! - the six **component contracts** as `#[sabi_trait]` objects ([`AbiBackbone`],
//!   [`AbiSampleAugment`], [`AbiBatchAugment`], [`AbiLoss`], [`AbiMetric`], [`AbiExporter`]),
//!   and since ABI 1.4 the **logger** contract ([`AbiLogger`]), which hands a run's events to
//!   an experiment tracker;
//! - since ABI 1.5, the **collective** ([`AbiCollective`]) the host hands a backbone trained
//!   data-parallel, to average gradients across processes;
//! - the **root module** every plugin exports ([`PluginRoot`]) and the version handshake on top of
//!   abi_stable's own layout checks ([`AbiVersion`]);
//! - the **device report** a plugin gives about the backends it was compiled with
//!   ([`BackendReport`], [`DeviceEntry`]; ABI 1.1);
//! - **authoring support**, so a plugin author writes plain Rust: implement one of the traits in
//!   [`authoring`] (for example [`Loss`](authoring::Loss)) for a type, [`register!`] it, and
//!   call [`export_plugin!`] once. Configs are parsed from RON with serde and
//!   `deny_unknown_fields`, `#[derive(ConfigDoc)]` documents their parameters from the fields'
//!   doc comments ([`ConfigDoc`]), errors carry field paths and positions, and every entry point
//!   catches panics.
//!
//! Burn tensors, devices, serde types and anything else without a stable layout never cross:
//! tensors cross as host memory (a shape plus a flat `f32` buffer) and configs cross as RON text.
//!
//! # A minimal plugin
//!
//! ```
//! use clshost_plugin_api::prelude::*;
//!
//! /// Mean squared error between softmax probabilities and the targets (Brier score).
//! pub struct Brier {
//!     scale: f64,
//! }
//!
//! /// The config: each field's doc comment documents its parameter in `clshost plugins brier`.
//! #[derive(Debug, Serialize, Deserialize, ConfigDoc)]
//! #[serde(deny_unknown_fields, default)]
//! pub struct BrierConfig {
//!     /// Factor on the loss and its gradient; 1 is the plain Brier score.
//!     pub scale: f64,
//! }
//!
//! impl Default for BrierConfig {
//!     fn default() -> Self {
//!         BrierConfig { scale: 1.0 }
//!     }
//! }
//!
//! impl Component for Brier {
//!     const NAME: &'static str = "brier";
//!     const DESCRIPTION: &'static str = "Brier score between softmax probabilities and targets";
//!     type Config = BrierConfig;
//! }
//!
//! impl Loss for Brier {
//!     fn new(config: BrierConfig, _ctx: &LossContext) -> Result<Self, PluginError> {
//!         Ok(Brier { scale: config.scale })
//!     }
//!     fn accepts_soft_targets(&self) -> bool {
//!         true
//!     }
//!     fn compute(
//!         &self,
//!         logits: TensorRef<'_>,
//!         targets: TensorRef<'_>,
//!         mut grad: TensorMut<'_>,
//!     ) -> Result<f64, PluginError> {
//!         let (n, c) = logits.dims2()?;
//!         let scale = self.scale / n as f64;
//!         let mut total = 0.0;
//!         for (i, row) in logits.data.chunks(c).enumerate() {
//!             let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
//!             let exp: Vec<f64> = row.iter().map(|&x| f64::from(x - max).exp()).collect();
//!             let sum: f64 = exp.iter().sum();
//!             let p: Vec<f64> = exp.iter().map(|e| e / sum).collect();
//!             let t = &targets.data[i * c..(i + 1) * c];
//!             let d: Vec<f64> = p.iter().zip(t).map(|(p, &t)| p - f64::from(t)).collect();
//!             total += d.iter().map(|d| d * d).sum::<f64>();
//!             let dot: f64 = d.iter().zip(&p).map(|(d, p)| d * p).sum();
//!             for j in 0..c {
//!                 grad.data[i * c + j] = (2.0 * p[j] * (d[j] - dot) * scale) as f32;
//!             }
//!         }
//!         Ok(total * scale)
//!     }
//! }
//!
//! register!(Loss: Brier);
//! export_plugin!(description: "An example plugin with one loss");
//! # fn main() {}
//! ```

pub mod authoring;
mod backbone;
mod collective;
mod component;
mod config;
mod device;
mod error;
mod exporter;
mod graph;
mod logger;
mod loss;
mod metric;
mod root;
mod sample;
mod tensor;

pub use authoring::ConfigDoc;
pub use backbone::{
    AbiBackbone, AbiBackbone_TO, BackboneBox, BackboneContext, BackboneSummary, EmaSpec,
    LoadReport, LoadWeightsOptions, OptimizerKind, OptimizerSpec, ParamGroup, ShapeMismatch,
    StepParams, StepReport, TuneReport, TuneSpec, WeightSet,
};
pub use clshost_plugin_api_derive::ConfigDoc;
pub use collective::{AbiCollective, AbiCollective_TO, CollectiveBox};
pub use component::{ComponentInfo, ComponentKind, ParamDoc, PluginInfo};
pub use config::{check_file_name, parse_config};
pub use device::{BackendReport, DeviceEntry};
pub use error::{ErrorKind, PluginError, TextPosition, panic_message};
pub use exporter::{
    AbiExportedModel, AbiExportedModel_TO, AbiExporter, AbiExporter_TO, ExportMeta,
    ExportedModelBox, ExporterBox, VerifyReport,
};
pub use graph::{Attribute, AttributeValue, GraphNode, ModelGraph, NamedTensor, ValueInfo};
pub use logger::{
    AbiLogger, AbiLogger_TO, EpochLog, FileLog, LoggerBox, LoggerContext, LoggerInfo, RunEnd,
    RunStart, Scalar, StepLog, TextEntry,
};
pub use loss::{AbiLoss, AbiLoss_TO, LossBox, LossContext};
pub use metric::{
    AbiMetric, AbiMetric_TO, MetricBox, MetricContext, MetricMatrix, MetricOutput, MetricReport,
    MetricScalar, MetricVector,
};
pub use root::{
    ABI_MAJOR, ABI_MINOR, ABI_VERSION_STRING, AbiVersion, HANDSHAKE_SYMBOL, PluginRoot,
    PluginRootRef, v1_0, v1_1, v1_2, v1_3, v1_4, v1_5,
};
pub use sample::{
    AbiBatchAugment, AbiBatchAugment_TO, AbiSampleAugment, AbiSampleAugment_TO, AugmentContext,
    AugmentStage, BatchAugmentBox, SampleAugmentBox,
};
pub use tensor::{ImageU8, Tensor, TensorMut, TensorRef};

pub use abi_stable::std_types::{ROption, RResult, RSlice, RSliceMut, RStr, RString, RVec, Tuple2};

/// Everything a plugin author needs, in one import: `use clshost_plugin_api::prelude::*;`.
pub mod prelude {
    pub use crate::authoring::{
        Backbone, BatchAugment, Component, ExportedModel, Exporter, ImageAugment, Logger, Loss,
        Metric, Param, TensorAugment,
    };
    pub use crate::{
        AbiCollective, AugmentContext, BackboneContext, BackboneSummary, BackendReport,
        CollectiveBox, ConfigDoc, DeviceEntry, EpochLog, ExportMeta, FileLog, ImageU8, LoadReport,
        LoadWeightsOptions, LoggerContext, LossContext, MetricContext, MetricMatrix, MetricOutput,
        MetricReport, MetricScalar, MetricVector, ModelGraph, NamedTensor, PluginError, ROption,
        RString, RVec, RunEnd, RunStart, Scalar, StepLog, StepParams, StepReport, Tensor,
        TensorMut, TensorRef, TextEntry, TuneReport, TuneSpec, VerifyReport, WeightSet,
        check_file_name, export_plugin, register,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Re-exports used by the macros of this crate. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
    pub use inventory;
}
