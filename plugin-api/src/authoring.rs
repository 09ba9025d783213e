//! Writing a plugin in plain Rust.
//!
//! Implement [`Component`] plus one kind trait ([`Backbone`], [`ImageAugment`],
//! [`TensorAugment`], [`BatchAugment`], [`Loss`], [`Metric`] or [`Exporter`]) for a type, derive
//! [`ConfigDoc`] on its config, register it with [`crate::register!`], and call
//! [`crate::export_plugin!`] once in the crate. This module supplies the rest:
//!
//! - the registrations are collected with `inventory` inside the plugin, so the component list
//!   is built from whatever the crate registered;
//! - configs arrive as RON text and are parsed with [`crate::parse_config`] into
//!   [`Component::Config`]; errors carry field paths and positions;
//! - every call into the plugin runs under `catch_unwind`, and a panic comes back to the host as
//!   an [`ErrorKind::Panic`] error with its message and location instead of aborting the run.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    AbiBackbone, AbiBackbone_TO, AbiBatchAugment, AbiBatchAugment_TO, AbiExportedModel,
    AbiExportedModel_TO, AbiExporter, AbiExporter_TO, AbiLoss, AbiLoss_TO, AbiMetric, AbiMetric_TO,
    AbiSampleAugment, AbiSampleAugment_TO, AugmentContext, AugmentStage, BackboneBox,
    BackboneContext, BackboneSummary, BackendReport, BatchAugmentBox, ComponentInfo, ComponentKind,
    ErrorKind, ExportMeta, ExportedModelBox, ExporterBox, ImageU8, LoadReport, LoadWeightsOptions,
    LossBox, LossContext, MetricBox, MetricContext, MetricOutput, MetricReport, ModelGraph,
    NamedTensor, ParamDoc, PluginError, PluginInfo, PluginRoot, PluginRootRef, StepParams,
    StepReport, Tensor, TensorMut, TensorRef, VerifyReport, WeightSet, parse_config,
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

// ---------------------------------------------------------------------------------------------
// Panic containment.

thread_local! {
    /// The message and location of the last panic on this thread, recorded by the plugin's hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is inside [`guard`], where panics are recorded rather than printed.
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per plugin, a panic hook that records the message of a panic inside [`guard`]
/// instead of printing it, so the host reports it as one line. Panics elsewhere (a plugin's own
/// threads, its tests) go to the previous hook as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_GUARD.get() {
                previous(info);
                return;
            }
            let message = crate::panic_message(info.payload());
            let text = match info.location() {
                Some(loc) => format!("{message} (at {}:{})", loc.file(), loc.line()),
                None => message,
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// Runs `f`, turning a panic into an [`ErrorKind::Panic`] error.
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    install_panic_hook();
    let outer = IN_GUARD.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.set(outer);
    match result {
        Ok(result) => result.into(),
        Err(_) => {
            let text = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".to_string());
            RResult::RErr(PluginError::new(
                ErrorKind::Panic,
                format!("panicked: {text}"),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adapters from the authoring traits to the ABI traits.

/// Wraps an authoring-trait value so it implements the matching ABI trait.
struct Adapter<T>(T);

impl<T: Backbone> AbiBackbone for Adapter<T> {
    fn summary(&self) -> RResult<BackboneSummary, PluginError> {
        guard(|| self.0.summary())
    }
    fn forward(&mut self, images: TensorRef<'_>) -> RResult<Tensor, PluginError> {
        guard(|| self.0.forward(images))
    }
    fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> RResult<StepReport, PluginError> {
        guard(|| self.0.backward_step(grad_logits, step))
    }
    fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> RResult<Tensor, PluginError> {
        guard(|| self.0.eval_forward(images, weights))
    }
    fn save_state(&self) -> RResult<RVec<u8>, PluginError> {
        guard(|| self.0.save_state().map(RVec::from))
    }
    fn load_state(&mut self, state: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.load_state(state.as_slice()))
    }
    fn named_weights(&self, weights: WeightSet) -> RResult<RVec<NamedTensor>, PluginError> {
        guard(|| self.0.named_weights(weights).map(RVec::from))
    }
    fn load_weights(
        &mut self,
        weights: RVec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> RResult<LoadReport, PluginError> {
        guard(|| self.0.load_weights(weights.into_vec(), options))
    }
    fn graph(&self, weights: WeightSet) -> RResult<ModelGraph, PluginError> {
        guard(|| self.0.graph(weights))
    }
}

/// An image-stage sample augmentation seen through the ABI.
struct ImageStage<T>(T);

impl<T: ImageAugment> AbiSampleAugment for ImageStage<T> {
    fn stage(&self) -> RResult<AugmentStage, PluginError> {
        RResult::ROk(AugmentStage::Image)
    }
    fn apply_image(&self, image: ImageU8, seed: u64) -> RResult<ImageU8, PluginError> {
        guard(|| self.0.apply(image, seed))
    }
    fn apply_tensor(&self, _tensor: TensorMut<'_>, _seed: u64) -> RResult<(), PluginError> {
        RResult::RErr(stage_error(T::NAME, "image", "tensor"))
    }
}

/// A tensor-stage sample augmentation seen through the ABI.
struct TensorStage<T>(T);

impl<T: TensorAugment> AbiSampleAugment for TensorStage<T> {
    fn stage(&self) -> RResult<AugmentStage, PluginError> {
        RResult::ROk(AugmentStage::Tensor)
    }
    fn apply_image(&self, _image: ImageU8, _seed: u64) -> RResult<ImageU8, PluginError> {
        RResult::RErr(stage_error(T::NAME, "tensor", "image"))
    }
    fn apply_tensor(&self, tensor: TensorMut<'_>, seed: u64) -> RResult<(), PluginError> {
        guard(|| self.0.apply(tensor, seed))
    }
}

/// The error for calling a sample augmentation at the wrong stage (a host bug).
fn stage_error(name: &str, stage: &str, called: &str) -> PluginError {
    PluginError::unsupported(format!(
        "`{name}` runs at the {stage} stage and was called at the {called} stage"
    ))
}

impl<T: BatchAugment> AbiBatchAugment for Adapter<T> {
    fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> RResult<(), PluginError> {
        guard(|| self.0.apply(images, targets, seed))
    }
}

impl<T: Loss> AbiLoss for Adapter<T> {
    fn accepts_soft_targets(&self) -> RResult<bool, PluginError> {
        guard(|| Ok(self.0.accepts_soft_targets()))
    }
    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        grad: TensorMut<'_>,
    ) -> RResult<f64, PluginError> {
        guard(|| self.0.compute(logits, targets, grad))
    }
}

impl<T: Metric> AbiMetric for Adapter<T> {
    fn outputs(&self) -> RResult<RVec<MetricOutput>, PluginError> {
        guard(|| Ok(self.0.outputs().into()))
    }
    fn reset(&mut self) -> RResult<(), PluginError> {
        guard(|| {
            self.0.reset();
            Ok(())
        })
    }
    fn update(
        &mut self,
        logits: TensorRef<'_>,
        labels: RSlice<'_, u32>,
    ) -> RResult<(), PluginError> {
        guard(|| self.0.update(logits, labels.as_slice()))
    }
    fn compute(&self) -> RResult<MetricReport, PluginError> {
        guard(|| self.0.compute())
    }
}

impl<T: Exporter> AbiExporter for Adapter<T> {
    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: RStr<'_>,
    ) -> RResult<RVec<RString>, PluginError> {
        guard(|| {
            let files = self.0.export(graph, meta, Path::new(out_dir.as_str()))?;
            Ok(files
                .into_iter()
                .map(|p| RString::from(p.to_string_lossy().into_owned()))
                .collect())
        })
    }
    fn verify(
        &self,
        files: RSlice<'_, RString>,
        graph: &ModelGraph,
        inputs: TensorRef<'_>,
        expected: TensorRef<'_>,
    ) -> RResult<VerifyReport, PluginError> {
        guard(|| {
            let files: Vec<PathBuf> = files.iter().map(|f| PathBuf::from(f.as_str())).collect();
            self.0.verify(&files, graph, inputs, expected)
        })
    }
}

/// An [`ExportedModel`] behind the ABI trait.
struct Opened(Box<dyn ExportedModel>);

impl AbiExportedModel for Opened {
    fn meta(&self) -> ExportMeta {
        self.0.meta()
    }
    fn run(&mut self, images: TensorRef<'_>) -> RResult<Tensor, PluginError> {
        guard(|| self.0.run(images))
    }
    fn runner(&self) -> RString {
        self.0.runner().into()
    }
}

// ---------------------------------------------------------------------------------------------
// Registration.

/// Parses and checks a component's config.
fn parse_checked<T: Component>(config: &str) -> Result<T::Config, PluginError> {
    let parsed = parse_config::<T::Config>(config)?;
    T::check(&parsed)?;
    Ok(parsed)
}

/// The constructor of a registered component, by kind.
#[derive(Clone, Copy)]
enum Constructor {
    Backbone(fn(&str, &BackboneContext) -> Result<BackboneBox, PluginError>),
    SampleAugment(fn(&str, &AugmentContext) -> Result<crate::SampleAugmentBox, PluginError>),
    BatchAugment(fn(&str, &AugmentContext) -> Result<BatchAugmentBox, PluginError>),
    Loss(fn(&str, &LossContext) -> Result<LossBox, PluginError>),
    Metric(fn(&str, &MetricContext) -> Result<MetricBox, PluginError>),
    Exporter(fn(&str) -> Result<ExporterBox, PluginError>),
}

fn new_backbone<T: Backbone>(
    config: &str,
    ctx: &BackboneContext,
) -> Result<BackboneBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiBackbone_TO::from_value(Adapter(value), TD_Opaque))
}

fn new_image_augment<T: ImageAugment>(
    config: &str,
    ctx: &AugmentContext,
) -> Result<crate::SampleAugmentBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiSampleAugment_TO::from_value(
        ImageStage(value),
        TD_Opaque,
    ))
}

fn new_tensor_augment<T: TensorAugment>(
    config: &str,
    ctx: &AugmentContext,
) -> Result<crate::SampleAugmentBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiSampleAugment_TO::from_value(
        TensorStage(value),
        TD_Opaque,
    ))
}

fn new_batch_augment<T: BatchAugment>(
    config: &str,
    ctx: &AugmentContext,
) -> Result<BatchAugmentBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiBatchAugment_TO::from_value(Adapter(value), TD_Opaque))
}

fn new_loss<T: Loss>(config: &str, ctx: &LossContext) -> Result<LossBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiLoss_TO::from_value(Adapter(value), TD_Opaque))
}

fn new_metric<T: Metric>(config: &str, ctx: &MetricContext) -> Result<MetricBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiMetric_TO::from_value(Adapter(value), TD_Opaque))
}

fn new_exporter<T: Exporter>(config: &str) -> Result<ExporterBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?)?;
    Ok(AbiExporter_TO::from_value(Adapter(value), TD_Opaque))
}

fn open_exported<T: Exporter>(path: &Path) -> Result<Option<ExportedModelBox>, PluginError> {
    Ok(T::open(path)?.map(|model| AbiExportedModel_TO::from_value(Opened(model), TD_Opaque)))
}

/// An exporter's [`Exporter::open`], behind the ABI trait.
type Opener = fn(&Path) -> Result<Option<ExportedModelBox>, PluginError>;

/// One registered component: what [`crate::register!`] submits to the plugin's inventory.
pub struct Registration {
    kind: ComponentKind,
    name: &'static str,
    info: fn(ComponentKind) -> Result<ComponentInfo, PluginError>,
    validate: fn(&str) -> Result<(), PluginError>,
    constructor: Constructor,
    /// An exporter's [`Exporter::open`].
    open: Option<Opener>,
}

inventory::collect!(Registration);

impl Registration {
    const fn of<T: Component>(kind: ComponentKind, constructor: Constructor) -> Self {
        Registration {
            kind,
            name: T::NAME,
            info: component_info::<T>,
            validate: validate::<T>,
            constructor,
            open: None,
        }
    }

    /// Registers a backbone.
    pub const fn backbone<T: Backbone>() -> Self {
        Self::of::<T>(
            ComponentKind::Backbone,
            Constructor::Backbone(new_backbone::<T>),
        )
    }

    /// Registers an image-stage sample augmentation.
    pub const fn image_augment<T: ImageAugment>() -> Self {
        Self::of::<T>(
            ComponentKind::SampleAugment,
            Constructor::SampleAugment(new_image_augment::<T>),
        )
    }

    /// Registers a tensor-stage sample augmentation.
    pub const fn tensor_augment<T: TensorAugment>() -> Self {
        Self::of::<T>(
            ComponentKind::SampleAugment,
            Constructor::SampleAugment(new_tensor_augment::<T>),
        )
    }

    /// Registers a batch augmentation.
    pub const fn batch_augment<T: BatchAugment>() -> Self {
        Self::of::<T>(
            ComponentKind::BatchAugment,
            Constructor::BatchAugment(new_batch_augment::<T>),
        )
    }

    /// Registers a loss.
    pub const fn loss<T: Loss>() -> Self {
        Self::of::<T>(ComponentKind::Loss, Constructor::Loss(new_loss::<T>))
    }

    /// Registers a metric.
    pub const fn metric<T: Metric>() -> Self {
        Self::of::<T>(ComponentKind::Metric, Constructor::Metric(new_metric::<T>))
    }

    /// Registers an exporter.
    pub const fn exporter<T: Exporter>() -> Self {
        let mut registration = Self::of::<T>(
            ComponentKind::Exporter,
            Constructor::Exporter(new_exporter::<T>),
        );
        registration.open = Some(open_exported::<T>);
        registration
    }
}

fn validate<T: Component>(config: &str) -> Result<(), PluginError> {
    parse_checked::<T>(config).map(drop)
}

/// Builds a component's info: defaults come from serializing `Config::default()`.
fn component_info<T: Component>(kind: ComponentKind) -> Result<ComponentInfo, PluginError> {
    let defaults = default_fields::<T>()?;
    let params = <T::Config as ConfigDoc>::PARAMS
        .iter()
        .map(|p| ParamDoc {
            name: p.name.into(),
            default: defaults
                .iter()
                .find(|(name, _)| name == p.name)
                .map(|(_, value)| value.as_str())
                .unwrap_or("")
                .into(),
            doc: p.doc.into(),
        })
        .collect();
    let default_config = ron::ser::to_string_pretty(&T::Config::default(), pretty())
        .map_err(|e| PluginError::internal(format!("cannot write the default config: {e}")))?;
    Ok(ComponentInfo {
        kind,
        name: T::NAME.into(),
        description: T::DESCRIPTION.into(),
        params,
        default_config: default_config.into(),
    })
}

/// RON formatting for default configs: struct names omitted, compact nesting.
fn pretty() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::new()
        .struct_names(false)
        .depth_limit(1)
}

/// The default config's top-level fields as `(name, RON value)` pairs, in declaration order.
///
/// The values are cut from the compact RON serialization of `Config::default()`, so tuples,
/// enum variants and nested structs print exactly as a recipe would write them.
fn default_fields<T: Component>() -> Result<Vec<(String, String)>, PluginError> {
    let text = ron::ser::to_string_pretty(&T::Config::default(), compact())
        .map_err(|e| PluginError::internal(format!("cannot write the default config: {e}")))?;
    Ok(top_level_fields(&text))
}

/// RON on one line, without struct names.
fn compact() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::new()
        .struct_names(false)
        .compact_arrays(true)
        .compact_structs(true)
        .compact_maps(true)
        .new_line("")
        .indentor("")
}

/// Splits `(a: 1, b: (2, 3))` into `[("a", "1"), ("b", "(2, 3)")]`: commas and colons count only
/// at the outermost nesting level and outside strings.
fn top_level_fields(text: &str) -> Vec<(String, String)> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or("");
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in inner.char_indices() {
        match c {
            _ if in_string && escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '(' | '[' | '{' if !in_string => depth += 1,
            ')' | ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter_map(|part| {
            let (name, value) = part.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The root module.

/// The plugin's identity, set once by [`crate::export_plugin!`].
static PLUGIN: OnceLock<(&'static str, &'static str, &'static str)> = OnceLock::new();

/// The plugin's device report, set once by [`crate::export_plugin!`] when it names one.
static DEVICES: OnceLock<DeviceReporter> = OnceLock::new();

/// A function listing the backends a plugin was compiled with; see [`crate::export_plugin!`].
pub type DeviceReporter = fn() -> Result<Vec<BackendReport>, PluginError>;

/// What a plugin's `devices` function may return: the reports, or an error when it cannot tell.
pub trait IntoBackendReports {
    /// The reports, or why there are none.
    fn into_reports(self) -> Result<Vec<BackendReport>, PluginError>;
}

impl IntoBackendReports for Vec<BackendReport> {
    fn into_reports(self) -> Result<Vec<BackendReport>, PluginError> {
        Ok(self)
    }
}

impl IntoBackendReports for Result<Vec<BackendReport>, PluginError> {
    fn into_reports(self) -> Result<Vec<BackendReport>, PluginError> {
        self
    }
}

fn find(kind: ComponentKind, name: &str) -> Result<&'static Registration, PluginError> {
    inventory::iter::<Registration>
        .into_iter()
        .find(|r| r.kind == kind && r.name == name)
        .ok_or_else(|| {
            PluginError::unsupported(format!("this plugin has no {kind} named `{name}`"))
        })
}

extern "C" fn root_info() -> RResult<PluginInfo, PluginError> {
    guard(|| {
        let (name, version, description) = PLUGIN.get().copied().unwrap_or(("", "", ""));
        let mut registrations: Vec<&Registration> =
            inventory::iter::<Registration>.into_iter().collect();
        registrations.sort_by_key(|r| (r.kind, r.name));
        let components = registrations
            .into_iter()
            .map(|r| (r.info)(r.kind).map_err(|e| e.within(r.name)))
            .collect::<Result<RVec<_>, _>>()?;
        Ok(PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            components,
        })
    })
}

extern "C" fn root_devices() -> RResult<RVec<BackendReport>, PluginError> {
    guard(|| {
        DEVICES
            .get()
            .map_or(Ok(Vec::new()), |report| report())
            .map(RVec::from)
    })
}

extern "C" fn root_validate(
    kind: ComponentKind,
    name: RStr<'_>,
    config: RStr<'_>,
) -> RResult<(), PluginError> {
    guard(|| (find(kind, name.as_str())?.validate)(config.as_str()))
}

/// Looks up `name` among the registrations of `kind` and runs its constructor.
macro_rules! construct {
    ($kind:ident, $name:expr, $($arg:expr),*) => {
        guard(|| match find(ComponentKind::$kind, $name.as_str())?.constructor {
            Constructor::$kind(ctor) => ctor($($arg),*),
            _ => unreachable!("registrations of one kind share a constructor kind"),
        })
    };
}

extern "C" fn root_new_backbone(
    name: RStr<'_>,
    config: RStr<'_>,
    ctx: &BackboneContext,
) -> RResult<BackboneBox, PluginError> {
    construct!(Backbone, name, config.as_str(), ctx)
}

extern "C" fn root_new_sample_augment(
    name: RStr<'_>,
    config: RStr<'_>,
    ctx: &AugmentContext,
) -> RResult<crate::SampleAugmentBox, PluginError> {
    construct!(SampleAugment, name, config.as_str(), ctx)
}

extern "C" fn root_new_batch_augment(
    name: RStr<'_>,
    config: RStr<'_>,
    ctx: &AugmentContext,
) -> RResult<BatchAugmentBox, PluginError> {
    construct!(BatchAugment, name, config.as_str(), ctx)
}

extern "C" fn root_new_loss(
    name: RStr<'_>,
    config: RStr<'_>,
    ctx: &LossContext,
) -> RResult<LossBox, PluginError> {
    construct!(Loss, name, config.as_str(), ctx)
}

extern "C" fn root_new_metric(
    name: RStr<'_>,
    config: RStr<'_>,
    ctx: &MetricContext,
) -> RResult<MetricBox, PluginError> {
    construct!(Metric, name, config.as_str(), ctx)
}

extern "C" fn root_new_exporter(
    name: RStr<'_>,
    config: RStr<'_>,
) -> RResult<ExporterBox, PluginError> {
    construct!(Exporter, name, config.as_str())
}

extern "C" fn root_open_model(path: RStr<'_>) -> RResult<ROption<ExportedModelBox>, PluginError> {
    guard(|| {
        let path = Path::new(path.as_str());
        for open in inventory::iter::<Registration>
            .into_iter()
            .filter_map(|r| r.open)
        {
            if let Some(model) = open(path)? {
                return Ok(ROption::RSome(model));
            }
        }
        Ok(ROption::RNone)
    })
}

/// Builds the root module of the plugin that calls it. Used by [`crate::export_plugin!`].
#[doc(hidden)]
pub fn root_module(
    name: &'static str,
    version: &'static str,
    description: &'static str,
    devices: Option<DeviceReporter>,
) -> PluginRootRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    let _ = PLUGIN.set((name, version, description));
    if let Some(devices) = devices {
        let _ = DEVICES.set(devices);
    }
    install_panic_hook();
    PluginRoot {
        info: root_info,
        validate: root_validate,
        new_backbone: root_new_backbone,
        new_sample_augment: root_new_sample_augment,
        new_batch_augment: root_new_batch_augment,
        new_loss: root_new_loss,
        new_metric: root_new_metric,
        new_exporter: root_new_exporter,
        devices: root_devices,
        open_model: root_open_model,
    }
    .leak_into_prefix()
}

/// Registers components with the plugin, one `Kind: Type` pair each. Kinds: `Backbone`,
/// `ImageAugment`, `TensorAugment`, `BatchAugment`, `Loss`, `Metric`, `Exporter`.
///
/// ```text
/// register!(Loss: CrossEntropy, Metric: Accuracy);
/// ```
#[macro_export]
macro_rules! register {
    ($($kind:ident : $ty:ty),+ $(,)?) => {
        $(
            $crate::__private::inventory::submit! {
                $crate::__register_one!($kind, $ty)
            }
        )+
    };
}

/// Maps a `register!` kind to its registration constructor.
#[doc(hidden)]
#[macro_export]
macro_rules! __register_one {
    (Backbone, $ty:ty) => {
        $crate::authoring::Registration::backbone::<$ty>()
    };
    (ImageAugment, $ty:ty) => {
        $crate::authoring::Registration::image_augment::<$ty>()
    };
    (TensorAugment, $ty:ty) => {
        $crate::authoring::Registration::tensor_augment::<$ty>()
    };
    (BatchAugment, $ty:ty) => {
        $crate::authoring::Registration::batch_augment::<$ty>()
    };
    (Loss, $ty:ty) => {
        $crate::authoring::Registration::loss::<$ty>()
    };
    (Metric, $ty:ty) => {
        $crate::authoring::Registration::metric::<$ty>()
    };
    (Exporter, $ty:ty) => {
        $crate::authoring::Registration::exporter::<$ty>()
    };
}

/// Exports the plugin: its root module (name and version from the crate's `Cargo.toml`) and the
/// version handshake. Call it once, at the crate root.
///
/// ```text
/// export_plugin!(description: "Cross-entropy, BCE and focal losses");
/// ```
///
/// A plugin with backbones also names the function reporting the backends it was compiled with
/// and the devices they see (`fn() -> Vec<BackendReport>`, or `Result<Vec<BackendReport>,
/// PluginError>`); it runs, like every entry point, with panics caught. Without it the plugin
/// reports no backends.
///
/// ```text
/// export_plugin!(description: "ResNet backbones", devices: clshost_burn_kit::devices);
/// ```
#[macro_export]
macro_rules! export_plugin {
    (description: $description:expr $(,)?) => {
        $crate::__export_plugin!($description, ::core::option::Option::None);
    };
    (description: $description:expr, devices: $devices:path $(,)?) => {
        $crate::__export_plugin!(
            $description,
            ::core::option::Option::Some(|| {
                $crate::authoring::IntoBackendReports::into_reports($devices())
            })
        );
    };
}

/// The expansion of [`export_plugin!`], given the device reporter as an `Option`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($description:expr, $devices:expr) => {
        fn __clshost_plugin_root() -> $crate::PluginRootRef {
            $crate::authoring::root_module(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
                $description,
                $devices,
            )
        }

        $crate::__export_root_module!($crate::PluginRootRef, __clshost_plugin_root);

        /// The clshost version handshake, read before anything else in this library.
        #[unsafe(no_mangle)]
        pub extern "C" fn clshost_plugin_abi() -> $crate::AbiVersion {
            $crate::AbiVersion::CURRENT
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn guard_turns_a_panic_into_an_error_with_its_location() {
        let line = line!() + 1;
        let result: RResult<(), PluginError> = guard(|| panic!("boom {}", 7));
        let err = result.into_result().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panic);
        assert_eq!(
            err.message.as_str(),
            format!("panicked: boom 7 (at {}:{line})", file!())
        );
        assert!(!IN_GUARD.get(), "the flag is restored after the panic");
    }

    #[test]
    fn the_root_module_reports_the_devices_the_plugin_names() {
        use crate::DeviceEntry;
        fn devices() -> Vec<BackendReport> {
            vec![
                BackendReport::available("cpu", vec![DeviceEntry::new("cpu", "flex", "1 thread")]),
                BackendReport::unavailable("cuda", "no CUDA driver"),
            ]
        }
        let root = root_module(
            "t",
            "1",
            "",
            Some(|| IntoBackendReports::into_reports(devices())),
        );
        let reports = (root.devices().expect("a 1.1 root module has `devices`"))()
            .into_result()
            .unwrap();
        assert_eq!(reports.into_vec(), devices());
    }

    #[test]
    fn top_level_fields_respect_nesting_and_strings() {
        assert_eq!(
            top_level_fields(r#"(a: 1, b: (2, 3), c: "x, (y: \"z", d: Some([1, 2]), e: Bicubic)"#),
            [
                ("a", "1"),
                ("b", "(2, 3)"),
                ("c", r#""x, (y: \"z""#),
                ("d", "Some([1, 2])"),
                ("e", "Bicubic"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert!(top_level_fields("()").is_empty());
    }

    /// A config documented by hand, with a tuple, an enum and an option.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default, rename_all = "snake_case")]
    struct CropConfig {
        scale: (f64, f64),
        mode: Mode,
        size: Option<u32>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Bicubic,
    }

    impl Default for CropConfig {
        fn default() -> Self {
            CropConfig {
                scale: (0.08, 1.0),
                mode: Mode::Bicubic,
                size: None,
            }
        }
    }

    impl ConfigDoc for CropConfig {
        const PARAMS: &'static [Param] = &[
            Param::new("scale", "area range"),
            Param::new("mode", "kernel"),
            Param::new("size", "output size"),
        ];
    }

    struct Crop;

    impl Component for Crop {
        const NAME: &'static str = "crop";
        const DESCRIPTION: &'static str = "test";
        type Config = CropConfig;
    }

    #[test]
    fn params_pair_the_config_docs_with_defaults_as_a_recipe_writes_them() {
        let info = component_info::<Crop>(ComponentKind::SampleAugment).unwrap();
        let params: Vec<(&str, &str, &str)> = info
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.default.as_str(), p.doc.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("scale", "(0.08, 1.0)", "area range"),
                ("mode", "bicubic", "kernel"),
                ("size", "None", "output size")
            ]
        );
        let parsed: CropConfig = parse_config(&info.default_config).unwrap();
        assert_eq!(parsed.scale, (0.08, 1.0));
    }
}
