//! Writing a plugin in plain Rust.
//!
//! Implement [`Component`] plus one kind trait ([`Backbone`], [`ImageAugment`],
//! [`TensorAugment`], [`BatchAugment`], [`Loss`], [`Metric`], [`Exporter`] or [`Logger`]) for a
//! type, derive
//! [`ConfigDoc`] on its config, register it with [`crate::register!`], and call
//! [`crate::export_plugin!`] once in the crate. This module supplies the rest:
//!
//! - the registrations are collected with `inventory` inside the plugin, so the component list
//!   is built from whatever the crate registered;
//! - configs arrive as RON text and are parsed with [`crate::parse_config`] into
//!   [`Component::Config`]; errors carry field paths and positions;
//! - every call into the plugin runs under `catch_unwind`, and a panic comes back to the host as
//!   an [`ErrorKind::Panic`](crate::ErrorKind::Panic) error with its message and location
//!   instead of aborting the run.
//!
//! This module holds the traits an author implements; its submodules the machinery behind them:
//! `guard` (panic containment), `adapters` (authoring traits to ABI traits), `registry` (what
//! `register!` submits, and the constructors), `params` (parameter docs and defaults for the
//! component list), `root` (the root module's entry points) and `macros`.

mod adapters;
mod guard;
mod macros;
mod params;
mod registry;
mod root;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use guard::guard;
pub use registry::Registration;
pub use root::{DeviceReporter, IntoBackendReports, root_module};

use crate::{
    AugmentContext, BackboneContext, BackboneSummary, CollectiveBox, EpochLog, ExportMeta, FileLog,
    ImageU8, LoadReport, LoadWeightsOptions, LoggerContext, LossContext, MetricContext,
    MetricOutput, MetricReport, ModelGraph, NamedTensor, PluginError, RunEnd, RunStart, StepLog,
    StepParams, StepReport, Tensor, TensorMut, TensorRef, TuneReport, TuneSpec, VerifyReport,
    WeightSet,
};

/// Documentation of one field of a [`Component::Config`]: its name as written in a recipe, and
/// what it does. Defaults are taken from `Config::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The field name.
    pub name: &'static str,
    /// One or two sentences: meaning, unit, accepted values.
    pub doc: &'static str,
}

impl Param {
    /// Documents the field `name`.
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        Param { name, doc }
    }
}

/// The documentation of a config's parameters, which `clshost plugins NAME` lists with their
/// defaults.
///
/// Derive it: `#[derive(ConfigDoc)]` makes one [`Param`] of each field, in declaration order,
/// named as a recipe writes it (honouring serde's `rename` and `rename_all`, leaving out `skip`
/// and `skip_deserializing` fields) and documented by the field's `///` comment, whose lines are
/// joined with spaces (a blank line starts a new line). An empty or unit struct has no
/// parameters. Write each doc for the user of `clshost plugins`: what the parameter does, its
/// unit, the values it takes.
///
/// ```
/// use clshost_plugin_api::prelude::*;
///
/// #[derive(Debug, Default, Serialize, Deserialize, ConfigDoc)]
/// #[serde(deny_unknown_fields, default)]
/// pub struct PolyConfig {
///     /// Weight of the (1 - p_t) term;
///     /// 0 is plain cross-entropy.
///     pub epsilon: f64,
///     /// Class weights, or `None` for equal weights.
///     #[serde(rename = "weight")]
///     pub class_weights: Option<Vec<f32>>,
/// }
///
/// assert_eq!(
///     PolyConfig::PARAMS,
///     [
///         Param::new("epsilon", "Weight of the (1 - p_t) term; 0 is plain cross-entropy."),
///         Param::new("weight", "Class weights, or `None` for equal weights."),
///     ]
/// );
/// ```
///
/// The derive refuses a field without a doc comment:
///
/// ```compile_fail
/// use clshost_plugin_api::prelude::*;
///
/// #[derive(Default, Serialize, Deserialize, ConfigDoc)]
/// #[serde(deny_unknown_fields, default)]
/// pub struct Undocumented {
///     pub epsilon: f64,
/// }
/// ```
///
/// and a struct without `#[serde(deny_unknown_fields)]`, so that a misspelt parameter in a recipe
/// is an error rather than ignored:
///
/// ```compile_fail
/// use clshost_plugin_api::prelude::*;
///
/// #[derive(Default, Serialize, Deserialize, ConfigDoc)]
/// #[serde(default)]
/// pub struct Lenient {
///     /// Weight of the (1 - p_t) term.
///     pub epsilon: f64,
/// }
/// ```
///
/// It also refuses enums, tuple structs, `#[serde(flatten)]` fields and names that differ
/// between serializing and deserializing. For such a config, or to write the list yourself,
/// implement the trait by hand and keep its entries in step with the fields (the derive's checks
/// do not apply then):
///
/// ```
/// use clshost_plugin_api::prelude::*;
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields, default)]
/// pub struct RangeConfig {
///     pub range: (f64, f64),
/// }
///
/// impl ConfigDoc for RangeConfig {
///     const PARAMS: &'static [Param] = &[Param::new("range", "(min, max), min <= max.")];
/// }
/// ```
pub trait ConfigDoc {
    /// Every parameter a recipe may set, in declaration order.
    const PARAMS: &'static [Param];
}

/// What every component declares: its name, description and config type.
pub trait Component: Sized + Send + 'static {
    /// The name recipes use; must be unique across every plugin a user loads.
    const NAME: &'static str;
    /// One line saying what the component does.
    const DESCRIPTION: &'static str;
    /// The config, parsed from RON: a struct with `#[serde(deny_unknown_fields, default)]` whose
    /// parameters are documented by `#[derive(ConfigDoc)]` (see [`ConfigDoc`]).
    type Config: DeserializeOwned + Serialize + Default + ConfigDoc;

    /// Checks values that parse but are invalid (a probability above 1, an empty range).
    /// Runs before the component is created and on `clshost check`.
    fn check(_config: &Self::Config) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A trainable model. See [`crate::AbiBackbone`] for the meaning of each method.
pub trait Backbone: Component {
    /// Creates the model on the device the context names.
    fn new(config: Self::Config, ctx: &BackboneContext) -> Result<Self, PluginError>;
    /// Where it runs and how big it is.
    fn summary(&self) -> Result<BackboneSummary, PluginError>;
    /// Training forward pass, keeping the autodiff graph.
    fn forward(&mut self, images: TensorRef<'_>) -> Result<Tensor, PluginError>;
    /// Backward pass from the gradient of the logits, then an optimizer step when asked.
    fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> Result<StepReport, PluginError>;
    /// Inference forward pass.
    fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> Result<Tensor, PluginError>;
    /// The complete training state as bytes.
    fn save_state(&self) -> Result<Vec<u8>, PluginError>;
    /// Restores a state written by `save_state`.
    fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError>;
    /// The weights in torchvision naming.
    fn named_weights(&self, weights: WeightSet) -> Result<Vec<NamedTensor>, PluginError>;
    /// Loads weights by name.
    fn load_weights(
        &mut self,
        weights: Vec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> Result<LoadReport, PluginError>;
    /// The framework-neutral graph.
    fn graph(&self, weights: WeightSet) -> Result<ModelGraph, PluginError>;
    /// Applies fine-tuning controls (ABI 1.3; see [`crate::TuneSpec`]), replacing earlier ones.
    /// The default refuses them, so a backbone that cannot freeze or group its parameters says
    /// so instead of training all of them at one rate.
    fn tune(&mut self, spec: &TuneSpec) -> Result<TuneReport, PluginError> {
        let _ = spec;
        Err(PluginError::unsupported(format!(
            "backbone `{}` has no fine-tuning controls (freezing, parameter groups, layer-wise \
             decay, frozen normalization statistics)",
            Self::NAME
        )))
    }
    /// Trains data-parallel from now on through `collective` (ABI 1.5; see
    /// [`crate::AbiCollective`] for what `backward_step` must then do). The default refuses, so
    /// a backbone that cannot average its gradients across ranks says so instead of training
    /// each rank apart.
    fn distribute(&mut self, collective: CollectiveBox) -> Result<(), PluginError> {
        drop(collective);
        Err(PluginError::unsupported(format!(
            "backbone `{}` cannot train data-parallel (it does not average its gradients across \
             processes)",
            Self::NAME
        )))
    }
    /// Computes in the precision called `precision` from now on (ABI 1.6): `fp32`, or `bf16`
    /// for mixed precision (float32 weights, gradients and optimizer state; bfloat16
    /// convolutions and matrix products, as `torch.autocast`). The default accepts `fp32` only,
    /// so a backbone without mixed precision says so instead of training in float32 unasked.
    fn set_precision(&mut self, precision: &str) -> Result<(), PluginError> {
        if precision == "fp32" {
            return Ok(());
        }
        Err(PluginError::unsupported(format!(
            "backbone `{}` computes in `fp32` only, not in `{precision}`",
            Self::NAME
        )))
    }
}

/// A sample augmentation on the 8-bit image, before normalization.
pub trait ImageAugment: Component + Sync {
    /// Creates the augmentation.
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError>;
    /// Transforms one image, drawing all randomness from `seed`.
    fn apply(&self, image: ImageU8, seed: u64) -> Result<ImageU8, PluginError>;
}

/// A sample augmentation on the normalized `[3, H, W]` tensor, after normalization.
pub trait TensorAugment: Component + Sync {
    /// Creates the augmentation.
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError>;
    /// Transforms one tensor in place, drawing all randomness from `seed`.
    fn apply(&self, tensor: TensorMut<'_>, seed: u64) -> Result<(), PluginError>;
}

/// A batch augmentation (MixUp, CutMix).
pub trait BatchAugment: Component + Sync {
    /// Creates the augmentation.
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError>;
    /// Mixes `[N, 3, H, W]` images and `[N, classes]` targets in place.
    fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> Result<(), PluginError>;
}

/// A loss with its gradient.
pub trait Loss: Component + Sync {
    /// Creates the loss.
    fn new(config: Self::Config, ctx: &LossContext) -> Result<Self, PluginError>;
    /// Whether soft (mixed) targets are accepted.
    fn accepts_soft_targets(&self) -> bool;
    /// Mean loss of the batch; writes `d loss / d logits` into `grad`.
    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        grad: TensorMut<'_>,
    ) -> Result<f64, PluginError>;
}

/// An epoch-accumulating metric.
pub trait Metric: Component {
    /// Creates the metric.
    fn new(config: Self::Config, ctx: &MetricContext) -> Result<Self, PluginError>;
    /// The scalars `compute` reports.
    fn outputs(&self) -> Vec<MetricOutput>;
    /// Forgets everything accumulated.
    fn reset(&mut self);
    /// Accumulates logits and their true labels.
    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError>;
    /// Reports over everything accumulated.
    fn compute(&self) -> Result<MetricReport, PluginError>;
}

/// An experiment tracker (ABI 1.4): gets a run's events, in order, on a thread of its own.
/// Every method but [`Logger::new`] defaults to doing nothing, so a logger implements what it
/// sends. An error is shown to the user as a warning (once per logger) and never ends the run;
/// see [`crate::AbiLogger`] for the events.
pub trait Logger: Component {
    /// Creates the logger. Keep it cheap and offline: connect on [`Logger::start`], so that a
    /// tracker that is down costs a warning, not the run.
    fn new(config: Self::Config, ctx: &LoggerContext) -> Result<Self, PluginError>;
    /// The run starts or resumes.
    fn start(&mut self, run: &RunStart) -> Result<(), PluginError> {
        let _ = run;
        Ok(())
    }
    /// A logged training step.
    fn step(&mut self, step: &StepLog) -> Result<(), PluginError> {
        let _ = step;
        Ok(())
    }
    /// An evaluated epoch.
    fn epoch(&mut self, epoch: &EpochLog) -> Result<(), PluginError> {
        let _ = epoch;
        Ok(())
    }
    /// A file the run wrote.
    fn file(&mut self, file: &FileLog) -> Result<(), PluginError> {
        let _ = file;
        Ok(())
    }
    /// The end of the invocation; flush here.
    fn end(&mut self, end: &RunEnd) -> Result<(), PluginError> {
        let _ = end;
        Ok(())
    }
}

/// A model exporter.
pub trait Exporter: Component + Sync {
    /// Creates the exporter.
    fn new(config: Self::Config) -> Result<Self, PluginError>;
    /// Writes the artifact(s) into `out_dir`, returning their paths.
    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: &Path,
    ) -> Result<Vec<PathBuf>, PluginError>;
    /// Checks the artifact written for `graph` against the backbone's own logits (or, for
    /// formats that cannot be run, against `graph` itself).
    fn verify(
        &self,
        files: &[PathBuf],
        graph: &ModelGraph,
        inputs: TensorRef<'_>,
        expected: TensorRef<'_>,
    ) -> Result<VerifyReport, PluginError>;
    /// Opens the file at `path` to run it, when it is of the format this exporter writes and
    /// that format can run (ABI 1.2; `clshost predict` runs exports this way). `Ok(None)` says
    /// "not mine": the default, for formats that hold no runnable model. An error says the file
    /// is of this format but unusable.
    fn open(_path: &Path) -> Result<Option<Box<dyn ExportedModel>>, PluginError> {
        Ok(None)
    }
}

/// An exported file opened to run, as [`Exporter::open`] returns it.
pub trait ExportedModel: Send + 'static {
    /// What the file records besides the graph: class names, input size, normalization, and
    /// every other entry in `extra` (for clshost's exports: `eval_resize`, `recipe`, ...).
    fn meta(&self) -> ExportMeta;
    /// The logits `[N, classes]` of the `[N, 3, H, W]` preprocessed `images`, for any N.
    fn run(&mut self, images: TensorRef<'_>) -> Result<Tensor, PluginError>;
    /// What runs the file, in a few words (`tract`).
    fn runner(&self) -> String;
}
