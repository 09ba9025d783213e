//! Host-side handles to plugin components.
//!
//! Each handle wraps the ABI trait object a plugin returned and remembers where it came from
//! ([`Origin`]), so that any error, including a panic caught inside the plugin, reaches the user
//! as one line naming the component, its plugin and file, the operation, and the cause.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use abi_stable::std_types::{RResult, RStr, RString, RVec};
use clshost_plugin_api::{
    AugmentContext, AugmentStage, BackboneBox, BackboneContext, BackboneSummary, BatchAugmentBox,
    CollectiveBox, EpochLog, ExportMeta, ExportedModelBox, ExporterBox, FileLog, ImageU8,
    LoadReport, LoadWeightsOptions, LoggerBox, LoggerContext, LossBox, LossContext, MetricBox,
    MetricContext, MetricOutput, MetricReport, ModelGraph, NamedTensor, PluginError, PluginRootRef,
    RunEnd, RunStart, SampleAugmentBox, StepLog, StepParams, StepReport, Tensor, TensorMut,
    TensorRef, TuneReport, TuneSpec, VerifyReport, WeightSet,
};

use super::{Entry, Kind, Registry, ResolveError};

/// Which component of which plugin file something came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The component kind.
    pub kind: Kind,
    /// The component name.
    pub name: String,
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's file.
    pub path: PathBuf,
}

impl Origin {
    fn of(entry: &Entry<'_>) -> Self {
        Origin {
            kind: entry.info.kind,
            name: entry.info.name.to_string(),
            plugin: entry.plugin.library.info.name.to_string(),
            path: entry.plugin.library.path.clone(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}` (plugin {}, {})",
            self.kind,
            self.name,
            self.plugin,
            self.path.display()
        )
    }
}

/// An error a component returned, with where it came from and what the host was doing. Kept
/// small (shared origin, boxed error) because it travels in `Result`s on hot paths.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{origin}: {operation}: {error}")]
pub struct ComponentError {
    /// The component.
    pub origin: Arc<Origin>,
    /// The operation that failed (`new`, `compute`, ...).
    pub operation: &'static str,
    /// The plugin's error.
    pub error: Box<PluginError>,
}

/// Why a component could not be created.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CreateError {
    /// The name does not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The plugin refused the config or failed while creating it.
    #[error(transparent)]
    Component(#[from] ComponentError),
}

/// The error of a logger entry point that a plugin older than ABI 1.4 lacks.
fn predates_loggers() -> PluginError {
    PluginError::unsupported("this plugin predates loggers (ABI 1.4)")
}

/// Converts a plugin result into a host result naming `origin` and `operation`.
fn named<T>(
    result: RResult<T, PluginError>,
    origin: &Arc<Origin>,
    operation: &'static str,
) -> Result<T, ComponentError> {
    result.into_result().map_err(|error| ComponentError {
        origin: Arc::clone(origin),
        operation,
        error: Box::new(error),
    })
}

impl Registry {
    /// Resolves `name` as a `kind` and runs `create` with the plugin's root module.
    fn create<T>(
        &self,
        kind: Kind,
        name: &str,
        create: impl FnOnce(&Entry<'_>) -> RResult<T, PluginError>,
    ) -> Result<(T, Arc<Origin>), CreateError> {
        let entry = self.resolve(kind, name)?;
        let origin = Arc::new(Origin::of(&entry));
        let value = named(create(&entry), &origin, "new")?;
        Ok((value, origin))
    }

    /// Parses and checks a component's config (RON) without creating the component.
    pub fn validate(&self, kind: Kind, name: &str, config: &str) -> Result<(), CreateError> {
        let (name_, config_) = (RStr::from(name), RStr::from(config));
        self.create(kind, name, |e| {
            let root = &e.plugin.library.root;
            match (kind.abi(), root.validate_logger()) {
                (Some(abi_kind), _) => (root.validate())(abi_kind, name_, config_),
                (None, Some(validate)) => validate(name_, config_),
                // Only a 1.4 plugin lists loggers, and every 1.4 plugin can validate them.
                (None, None) => RResult::RErr(predates_loggers()),
            }
        })
        .map(drop)
    }

    /// Creates a backbone.
    pub fn new_backbone(
        &self,
        name: &str,
        config: &str,
        ctx: &BackboneContext,
    ) -> Result<Backbone, CreateError> {
        let mut found = None;
        let (inner, origin) = self.create(Kind::Backbone, name, |e| {
            let root = e.plugin.library.root;
            found = Some((root, e.plugin.library.abi.minor));
            (root.new_backbone())(name.into(), config.into(), ctx)
        })?;
        let (root, abi_minor) = found.expect("a created backbone came from a plugin");
        Ok(Backbone {
            inner,
            origin,
            root,
            abi_minor,
            precision: "fp32".into(),
        })
    }

    /// Creates a sample augmentation.
    pub fn new_sample_augment(
        &self,
        name: &str,
        config: &str,
        ctx: &AugmentContext,
    ) -> Result<SampleAugment, CreateError> {
        let (inner, origin) = self.create(Kind::SampleAugment, name, |e| {
            (e.plugin.library.root.new_sample_augment())(name.into(), config.into(), ctx)
        })?;
        let stage = named(inner.stage(), &origin, "stage")?;
        Ok(SampleAugment {
            inner,
            origin,
            stage,
        })
    }

    /// Creates a batch augmentation.
    pub fn new_batch_augment(
        &self,
        name: &str,
        config: &str,
        ctx: &AugmentContext,
    ) -> Result<BatchAugment, CreateError> {
        let (inner, origin) = self.create(Kind::BatchAugment, name, |e| {
            (e.plugin.library.root.new_batch_augment())(name.into(), config.into(), ctx)
        })?;
        Ok(BatchAugment { inner, origin })
    }

    /// Creates a loss.
    pub fn new_loss(
        &self,
        name: &str,
        config: &str,
        ctx: &LossContext,
    ) -> Result<Loss, CreateError> {
        let (inner, origin) = self.create(Kind::Loss, name, |e| {
            (e.plugin.library.root.new_loss())(name.into(), config.into(), ctx)
        })?;
        Ok(Loss { inner, origin })
    }

    /// Creates a metric.
    pub fn new_metric(
        &self,
        name: &str,
        config: &str,
        ctx: &MetricContext,
    ) -> Result<Metric, CreateError> {
        let (inner, origin) = self.create(Kind::Metric, name, |e| {
            (e.plugin.library.root.new_metric())(name.into(), config.into(), ctx)
        })?;
        Ok(Metric { inner, origin })
    }

    /// Creates an exporter.
    pub fn new_exporter(&self, name: &str, config: &str) -> Result<Exporter, CreateError> {
        let (inner, origin) = self.create(Kind::Exporter, name, |e| {
            (e.plugin.library.root.new_exporter())(name.into(), config.into())
        })?;
        Ok(Exporter { inner, origin })
    }

    /// Creates a logger.
    pub fn new_logger(
        &self,
        name: &str,
        config: &str,
        ctx: &LoggerContext,
    ) -> Result<Logger, CreateError> {
        let (inner, origin) = self.create(Kind::Logger, name, |e| {
            match e.plugin.library.root.new_logger() {
                Some(new) => new(name.into(), config.into(), ctx),
                None => RResult::RErr(predates_loggers()),
            }
        })?;
        Ok(Logger::new(inner, origin))
    }
}

/// An experiment tracker from a plugin. It is `Send`, so the host can call it on a thread of
/// its own.
pub struct Logger {
    inner: LoggerBox,
    origin: Arc<Origin>,
}

impl Logger {
    /// Wraps a logger object that `origin` created.
    pub fn new(inner: LoggerBox, origin: Arc<Origin>) -> Self {
        Logger { inner, origin }
    }

    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The run starts or resumes.
    pub fn start(&mut self, run: &RunStart) -> Result<(), ComponentError> {
        named(self.inner.start(run), &self.origin, "start")
    }

    /// A logged training step.
    pub fn step(&mut self, step: &StepLog) -> Result<(), ComponentError> {
        named(self.inner.step(step), &self.origin, "step")
    }

    /// An evaluated epoch.
    pub fn epoch(&mut self, epoch: &EpochLog) -> Result<(), ComponentError> {
        named(self.inner.epoch(epoch), &self.origin, "epoch")
    }

    /// A file the run wrote.
    pub fn file(&mut self, file: &FileLog) -> Result<(), ComponentError> {
        named(self.inner.file(file), &self.origin, "file")
    }

    /// The end of the invocation.
    pub fn end(&mut self, end: &RunEnd) -> Result<(), ComponentError> {
        named(self.inner.end(end), &self.origin, "end")
    }
}

/// A trainable model from a plugin.
pub struct Backbone {
    inner: BackboneBox,
    origin: Arc<Origin>,
    /// The root module of the plugin that created it, for the entry points later minors
    /// appended (`tune`, `distribute`, `precision`).
    root: PluginRootRef,
    /// The plugin's ABI minor version.
    abi_minor: u32,
    /// The precision it computes in now (`fp32` until [`Backbone::set_precision`]).
    precision: String,
}

impl Backbone {
    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Where it runs and how big it is.
    pub fn summary(&self) -> Result<BackboneSummary, ComponentError> {
        named(self.inner.summary(), &self.origin, "summary")
    }

    /// Training forward pass.
    pub fn forward(&mut self, images: TensorRef<'_>) -> Result<Tensor, ComponentError> {
        named(self.inner.forward(images), &self.origin, "forward")
    }

    /// Backward pass and optimizer step.
    pub fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> Result<StepReport, ComponentError> {
        named(
            self.inner.backward_step(grad_logits, step),
            &self.origin,
            "backward_step",
        )
    }

    /// Inference forward pass.
    pub fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> Result<Tensor, ComponentError> {
        named(
            self.inner.eval_forward(images, weights),
            &self.origin,
            "eval_forward",
        )
    }

    /// The complete training state.
    pub fn save_state(&self) -> Result<Vec<u8>, ComponentError> {
        named(self.inner.save_state(), &self.origin, "save_state").map(RVec::into_vec)
    }

    /// Restores a saved training state.
    pub fn load_state(&mut self, state: &[u8]) -> Result<(), ComponentError> {
        named(
            self.inner.load_state(state.into()),
            &self.origin,
            "load_state",
        )
    }

    /// The weights in torchvision naming.
    pub fn named_weights(&self, weights: WeightSet) -> Result<Vec<NamedTensor>, ComponentError> {
        named(
            self.inner.named_weights(weights),
            &self.origin,
            "named_weights",
        )
        .map(RVec::into_vec)
    }

    /// Loads weights by name.
    pub fn load_weights(
        &mut self,
        weights: Vec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> Result<LoadReport, ComponentError> {
        named(
            self.inner.load_weights(weights.into(), options),
            &self.origin,
            "load_weights",
        )
    }

    /// The framework-neutral graph.
    pub fn graph(&self, weights: WeightSet) -> Result<ModelGraph, ComponentError> {
        named(self.inner.graph(weights), &self.origin, "graph")
    }

    /// Applies fine-tuning controls through the plugin's `tune` (ABI 1.3); an `Unsupported`
    /// error naming the plugin's ABI when it is older.
    pub fn tune(&mut self, spec: &TuneSpec) -> Result<TuneReport, ComponentError> {
        let result = match self.root.tune() {
            Some(tune) => tune(&mut self.inner, spec),
            None => RResult::RErr(self.predates(
                "has no fine-tuning controls (freezing, parameter groups, layer-wise decay, \
                 frozen normalization statistics need 1.3)",
                3,
            )),
        };
        named(result, &self.origin, "tune")
    }

    /// Makes the backbone train data-parallel through `collective` (the plugin's `distribute`,
    /// ABI 1.5); an `Unsupported` error naming the plugin's ABI when it is older.
    pub fn distribute(&mut self, collective: CollectiveBox) -> Result<(), ComponentError> {
        let result = match self.root.distribute() {
            Some(distribute) => distribute(&mut self.inner, collective),
            None => RResult::RErr(self.predates(
                "cannot train data-parallel (that needs 1.5); run one process, or",
                5,
            )),
        };
        named(result, &self.origin, "distribute")
    }

    /// Makes the backbone compute in `precision` (`fp32`, `bf16`) through the plugin's
    /// `precision` (ABI 1.6); an `Unsupported` error naming the plugin's ABI when it is older.
    /// Only a change is asked of the plugin: every backbone starts in `fp32`, so a plugin older
    /// than 1.6 is never asked anything unless another precision is wanted.
    pub fn set_precision(&mut self, precision: &str) -> Result<(), ComponentError> {
        if precision == self.precision {
            return Ok(());
        }
        let result = match self.root.precision() {
            Some(set) => set(&mut self.inner, precision.into()),
            None => RResult::RErr(self.predates(
                "has no mixed precision (that needs 1.6); train in `fp32`, or",
                6,
            )),
        };
        named(result, &self.origin, "precision")?;
        self.precision = precision.into();
        Ok(())
    }

    /// The error for an entry point the plugin's ABI minor predates: the plugin `lacks` what
    /// minor `needs` added.
    fn predates(&self, lacks: &str, needs: u32) -> PluginError {
        PluginError::unsupported(format!(
            "plugin {} was built against plugin ABI 1.{}, which {lacks} rebuild it against \
             clshost-plugin-api 1.{needs}",
            self.origin.plugin, self.abi_minor
        ))
    }
}

/// A per-sample augmentation from a plugin.
pub struct SampleAugment {
    inner: SampleAugmentBox,
    origin: Arc<Origin>,
    stage: AugmentStage,
}

impl SampleAugment {
    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The pipeline stage it runs at.
    pub fn stage(&self) -> AugmentStage {
        self.stage
    }

    /// Transforms an image (image stage).
    pub fn apply_image(&self, image: ImageU8, seed: u64) -> Result<ImageU8, ComponentError> {
        named(self.inner.apply_image(image, seed), &self.origin, "apply")
    }

    /// Transforms a normalized tensor in place (tensor stage).
    pub fn apply_tensor(&self, tensor: TensorMut<'_>, seed: u64) -> Result<(), ComponentError> {
        named(self.inner.apply_tensor(tensor, seed), &self.origin, "apply")
    }
}

/// A batch augmentation from a plugin.
pub struct BatchAugment {
    inner: BatchAugmentBox,
    origin: Arc<Origin>,
}

impl BatchAugment {
    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Mixes a batch and its targets in place.
    pub fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> Result<(), ComponentError> {
        named(
            self.inner.apply(images, targets, seed),
            &self.origin,
            "apply",
        )
    }
}

/// A loss from a plugin.
pub struct Loss {
    inner: LossBox,
    origin: Arc<Origin>,
}

impl Loss {
    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether soft targets are accepted.
    pub fn accepts_soft_targets(&self) -> Result<bool, ComponentError> {
        named(
            self.inner.accepts_soft_targets(),
            &self.origin,
            "accepts_soft_targets",
        )
    }

    /// Mean loss; writes the gradient of the logits into `grad`.
    pub fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        grad: TensorMut<'_>,
    ) -> Result<f64, ComponentError> {
        named(
            self.inner.compute(logits, targets, grad),
            &self.origin,
            "compute",
        )
    }
}

/// A metric from a plugin.
pub struct Metric {
    inner: MetricBox,
    origin: Arc<Origin>,
}

impl Metric {
    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The scalars it reports.
    pub fn outputs(&self) -> Result<Vec<MetricOutput>, ComponentError> {
        named(self.inner.outputs(), &self.origin, "outputs").map(RVec::into_vec)
    }

    /// Forgets everything accumulated.
    pub fn reset(&mut self) -> Result<(), ComponentError> {
        named(self.inner.reset(), &self.origin, "reset")
    }

    /// Accumulates a batch.
    pub fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), ComponentError> {
        named(
            self.inner.update(logits, labels.into()),
            &self.origin,
            "update",
        )
    }

    /// Reports over everything accumulated.
    pub fn compute(&self) -> Result<MetricReport, ComponentError> {
        named(self.inner.compute(), &self.origin, "compute")
    }
}

/// An exporter from a plugin.
pub struct Exporter {
    inner: ExporterBox,
    origin: Arc<Origin>,
}

impl Exporter {
    /// Which component this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Writes the artifacts into `out_dir`.
    pub fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: &std::path::Path,
    ) -> Result<Vec<PathBuf>, ComponentError> {
        let dir = out_dir.to_string_lossy();
        named(
            self.inner.export(graph, meta, RStr::from(dir.as_ref())),
            &self.origin,
            "export",
        )
        .map(|files| {
            files
                .into_iter()
                .map(|f| PathBuf::from(f.as_str()))
                .collect()
        })
    }

    /// Checks the artifacts written for `graph` against reference logits.
    pub fn verify(
        &self,
        files: &[PathBuf],
        graph: &ModelGraph,
        inputs: TensorRef<'_>,
        expected: TensorRef<'_>,
    ) -> Result<VerifyReport, ComponentError> {
        let files: Vec<RString> = files
            .iter()
            .map(|f| RString::from(f.to_string_lossy().into_owned()))
            .collect();
        named(
            self.inner
                .verify(files.as_slice().into(), graph, inputs, expected),
            &self.origin,
            "verify",
        )
    }
}

/// An exported file opened by the plugin that reads its format (ABI 1.2), ready to run.
pub struct ExportedModel {
    inner: ExportedModelBox,
    /// The plugin that opened it, for errors.
    plugin: String,
    /// The exported file.
    file: PathBuf,
}

/// A plugin failed to open or run an exported file.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{} (plugin {plugin}): {operation}: {error}", file.display())]
pub struct ModelFileError {
    /// The exported file.
    pub file: PathBuf,
    /// The plugin's name.
    pub plugin: String,
    /// What the host asked (`open`, `run`).
    pub operation: &'static str,
    /// The plugin's error.
    pub error: Box<PluginError>,
}

impl ExportedModel {
    /// What the file records besides the graph: class names, input size, normalization, extra
    /// entries.
    pub fn meta(&self) -> ExportMeta {
        self.inner.meta()
    }

    /// What runs it, in the plugin's words (`tract`).
    pub fn runner(&self) -> String {
        self.inner.runner().into_string()
    }

    /// The logits `[N, classes]` of the `[N, 3, H, W]` preprocessed `images`.
    pub fn run(&mut self, images: TensorRef<'_>) -> Result<Tensor, ModelFileError> {
        let result = self.inner.run(images).into_result();
        result.map_err(|error| ModelFileError {
            file: self.file.clone(),
            plugin: self.plugin.clone(),
            operation: "run",
            error: Box::new(error),
        })
    }
}

impl Registry {
    /// Opens the exported file `file` with the first plugin (in search order) that reads its
    /// format; `None` when no loaded plugin does. Plugins older than ABI 1.2 are not asked.
    pub fn open_model(
        &self,
        file: &std::path::Path,
    ) -> Result<Option<ExportedModel>, ModelFileError> {
        let text = file.to_string_lossy();
        for plugin in self.plugins() {
            let Some(open) = plugin.library.root.open_model() else {
                continue;
            };
            let name = plugin.library.info.name.to_string();
            let opened = open(RStr::from(text.as_ref()))
                .into_result()
                .map_err(|error| ModelFileError {
                    file: file.to_path_buf(),
                    plugin: name.clone(),
                    operation: "open",
                    error: Box::new(error),
                })?;
            if let Some(inner) = opened.into_option() {
                return Ok(Some(ExportedModel {
                    inner,
                    plugin: name,
                    file: file.to_path_buf(),
                }));
            }
        }
        Ok(None)
    }
}
