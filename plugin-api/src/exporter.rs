//! The exporter contract: turn a backbone's graph into files, check them, and (ABI 1.2) open
//! them again to run.

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};

use crate::{ModelGraph, PluginError, Tensor, TensorRef};

/// What an exporter knows about the run besides the graph, so a consumer of the exported file
/// needs nothing else.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ExportMeta {
    /// The recipe's name.
    pub recipe_name: RString,
    /// The resolved recipe, as RON.
    pub recipe: RString,
    /// The backbone component name (`resnet50`).
    pub backbone: RString,
    /// Class names in class-index order.
    pub class_names: RVec<RString>,
    /// Model input height.
    pub input_height: u32,
    /// Model input width.
    pub input_width: u32,
    /// Per-channel normalization mean (0..1 scale).
    pub mean: [f32; 3],
    /// Per-channel normalization standard deviation (0..1 scale).
    pub std: [f32; 3],
    /// Further key/value pairs to record (versions, best metric, ...).
    pub extra: RVec<Tuple2<RString, RString>>,
}

/// The result of checking an exported artifact.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// Largest absolute difference between the artifact's logits and the reference, when the
    /// artifact can be run.
    pub max_abs_diff: ROption<f64>,
    /// One line on what was checked.
    pub detail: RString,
}

/// The exporter contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::Exporter`] instead.
#[sabi_trait]
pub trait AbiExporter: Send + Sync {
    /// Writes the artifact(s) for `graph` into the directory `out_dir` and returns their paths.
    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: RStr<'_>,
    ) -> RResult<RVec<RString>, PluginError>;

    /// Checks the files [`AbiExporter::export`] wrote for `graph`: where the format can be run,
    /// runs it on `inputs` and compares with the backbone's own `expected` logits; otherwise
    /// reads it back and compares it with `graph`.
    #[sabi(last_prefix_field)]
    fn verify(
        &self,
        files: RSlice<'_, RString>,
        graph: &ModelGraph,
        inputs: TensorRef<'_>,
        expected: TensorRef<'_>,
    ) -> RResult<VerifyReport, PluginError>;
}

/// An owned exporter object.
pub type ExporterBox = AbiExporter_TO<'static, RBox<()>>;

/// A file an exporter wrote, opened to run (ABI 1.2): `clshost predict` runs an export through
/// the plugin that reads its format. Plugin authors implement
/// [`crate::authoring::ExportedModel`] instead.
#[sabi_trait]
pub trait AbiExportedModel: Send {
    /// What the file records besides the graph: class names, input size, normalization, and
    /// every other entry in `extra` (`eval_resize`, `recipe`, ...).
    fn meta(&self) -> ExportMeta;

    /// The logits `[N, classes]` of the `[N, 3, H, W]` preprocessed `images`, for any N.
    fn run(&mut self, images: TensorRef<'_>) -> RResult<Tensor, PluginError>;

    /// What runs the file, in a few words (`tract`).
    #[sabi(last_prefix_field)]
    fn runner(&self) -> RString;
}

/// An owned exported model.
pub type ExportedModelBox = AbiExportedModel_TO<'static, RBox<()>>;
