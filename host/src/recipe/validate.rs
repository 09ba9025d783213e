//! Validation: everything that can be checked before any data is read or any model is built.
//!
//! - value rules (positive sizes, probabilities in `[0, 1]`, every number of the recipe's own
//!   fields finite, a `name` that is one plain folder name);
//! - the device: when the backbone's plugin reports its backends (ABI 1.1), `trainer.device`
//!   must be one of the devices it sees now, or a bare backend name with at least one device;
//!   otherwise (older plugins) only its syntax is checked;
//! - `model.weights` is a weight source that parses (a known zoo name, a usable URL), a local
//!   file there in a format `run` reads, and not another zoo architecture's weights;
//! - fine-tuning controls have sane values, and the backbone's plugin can apply them (ABI 1.3);
//! - the data root exists and holds at least two class folders;
//! - every component name resolves to a component of the right kind (unknown names list the
//!   closest available ones), and every component's params pass its plugin's checks;
//! - cross-field rules: a batch augmentation needs a loss that accepts soft targets, and the
//!   monitored metric must be one a configured metric reports.

use std::path::PathBuf;

use clshost_plugin_api::{BackendReport, LossContext, MetricContext};

use super::doc::{Node, Value};
use super::schema::{Component, Precision, Recipe};
use super::{Problem, Resolved, section_of, typed};
use crate::assemble::components::backbone_context;
use crate::data::imagefolder::class_folders;
use crate::registry::{CreateError, DeviceSupport, Kind, Library, Registry};
use crate::train::checkpoint::is_checkpoint;
use crate::weights::WeightSource;

/// The folder whose sub-folders are the training classes.
pub fn train_folder(resolved: &Resolved) -> PathBuf {
    resolved
        .recipe
        .data
        .root
        .join(&resolved.recipe.data.train_dir)
}

/// The problems of the components named by the sections of a recipe that could be typed
/// (`typed(section)` says which): unknown names and params their plugins refuse. For a recipe
/// with schema errors elsewhere, so that those do not hide these.
pub fn component_problems(
    resolved: &Resolved,
    registry: &Registry,
    typed: impl Fn(&str) -> bool,
) -> Vec<Problem> {
    let mut v = Validator {
        resolved,
        problems: Vec::new(),
    };
    for (kind, path, c) in named_components(&resolved.recipe) {
        if typed(section_of(&path)) {
            v.check(registry, kind, &path, c.0, c.1);
        }
    }
    v.problems
}

/// Every component the recipe names, in recipe order: its kind, its path, and its name and
/// params.
fn named_components(r: &Recipe) -> Vec<(Kind, String, (&str, &str))> {
    fn listed<'r>(
        kind: Kind,
        section: &'static str,
        items: impl Iterator<Item = (&'r str, &'r str)>,
    ) -> impl Iterator<Item = (Kind, String, (&'r str, &'r str))> {
        items
            .enumerate()
            .map(move |(i, item)| (kind, format!("{section}[{i}]"), item))
    }
    fn pair(c: &Component) -> (&str, &str) {
        (&c.name, &c.params)
    }
    let entries = r.batch_augment.entries.iter();
    std::iter::once((
        Kind::Backbone,
        "model".to_string(),
        (r.model.name.as_str(), r.model.params.as_str()),
    ))
    .chain(listed(
        Kind::SampleAugment,
        "augment",
        r.augment.iter().map(pair),
    ))
    .chain(listed(
        Kind::BatchAugment,
        "batch_augment.entries",
        entries.map(|e| (e.name.as_str(), e.params.as_str())),
    ))
    .chain(listed(Kind::Exporter, "export", r.export.iter().map(pair)))
    .chain(std::iter::once((
        Kind::Loss,
        "loss".to_string(),
        (r.loss.name.as_str(), r.loss.params.as_str()),
    )))
    .chain(listed(Kind::Metric, "metrics", r.metrics.iter().map(pair)))
    .chain(listed(Kind::Logger, "loggers", r.loggers.iter().map(pair)))
    .collect()
}

/// Runs every check; an empty list means the recipe is good to run.
pub fn validate(resolved: &Resolved, registry: &Registry) -> Vec<Problem> {
    let mut v = Validator {
        resolved,
        problems: Vec::new(),
    };
    v.values();
    v.finite();
    v.device(registry);
    v.weights();
    v.tuning(registry);
    v.precision(registry);
    let classes = v.data();
    v.components(registry, classes);
    v.problems
}

struct Validator<'a> {
    resolved: &'a Resolved,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        let origin = self.resolved.origin_of(path);
        self.problems.push(Problem::new(origin, path, message));
    }

    fn require(&mut self, ok: bool, path: &str, message: &str) {
        if !ok {
            self.problem(path, message.to_string());
        }
    }

    /// RON reads `inf` and `NaN`, which no field of the recipe means (components check their
    /// own params).
    fn finite(&mut self) {
        let mut paths = Vec::new();
        non_finite(&typed::to_doc(&self.resolved.recipe), "", &mut paths);
        for path in paths {
            self.problem(&path, "must be a finite number");
        }
    }

    fn values(&mut self) {
        let r = &self.resolved.recipe;
        let unit = |p: f64| (0.0..=1.0).contains(&p);
        let name = r.name.as_str();
        self.require(
            !name.is_empty() && !matches!(name, "." | "..") && !name.contains(['/', '\\', '\0']),
            "name",
            "must be one plain folder name (no `/`, `\\`, `.` or `..`): the run directory is \
             `<output>/<name>/<timestamp>`",
        );
        self.require(
            r.data.batch_size > 0,
            "data.batch_size",
            "must be at least 1",
        );
        self.require(
            r.data.eval_batch_size != Some(0),
            "data.eval_batch_size",
            "must be at least 1",
        );
        self.require(
            r.data.workers != Some(0),
            "data.workers",
            "must be at least 1",
        );
        self.require(
            r.data.image_size.0 > 0 && r.data.image_size.1 > 0,
            "data.image_size",
            "must be positive",
        );
        self.require(
            r.data.eval_crop.0 > 0 && r.data.eval_crop.1 > 0,
            "data.eval_crop",
            "must be positive",
        );
        self.require(
            r.data.eval_resize >= r.data.eval_crop.0.min(r.data.eval_crop.1),
            "data.eval_resize",
            "must be at least the smaller side of `eval_crop`",
        );
        let std = [r.data.std.0, r.data.std.1, r.data.std.2];
        self.require(
            std.iter().all(|&s| s > 0.0),
            "data.std",
            "every channel must be positive",
        );
        if let Some(split) = r.data.val_split {
            self.require(
                split > 0.0 && split < 1.0,
                "data.val_split",
                "must be between 0 and 1",
            );
        }
        self.require(r.optimizer.lr > 0.0, "optimizer.lr", "must be positive");
        self.require(
            r.optimizer.momentum >= 0.0,
            "optimizer.momentum",
            "must not be negative",
        );
        self.require(
            (0.0..1.0).contains(&r.optimizer.betas.0) && (0.0..1.0).contains(&r.optimizer.betas.1),
            "optimizer.betas",
            "both must be in [0, 1)",
        );
        self.require(
            r.optimizer.weight_decay >= 0.0,
            "optimizer.weight_decay",
            "must not be negative",
        );
        self.require(
            r.schedule.warmup_epochs >= 0.0,
            "schedule.warmup_epochs",
            "must not be negative",
        );
        self.require(
            r.schedule.warmup_start_factor > 0.0 && r.schedule.warmup_start_factor <= 1.0,
            "schedule.warmup_start_factor",
            "must be in (0, 1]",
        );
        self.require(
            r.schedule.step_epochs > 0,
            "schedule.step_epochs",
            "must be at least 1",
        );
        self.require(
            r.schedule.milestones.windows(2).all(|w| w[0] < w[1]),
            "schedule.milestones",
            "must be increasing",
        );
        self.require(
            r.schedule.scale_lr_batch_size != Some(0),
            "schedule.scale_lr_batch_size",
            "must be at least 1",
        );
        self.require(
            unit(r.batch_augment.prob),
            "batch_augment.prob",
            "must be in [0, 1]",
        );
        self.require(
            unit(r.batch_augment.switch_prob),
            "batch_augment.switch_prob",
            "must be in [0, 1]",
        );
        for (i, e) in r.batch_augment.entries.iter().enumerate() {
            self.require(
                unit(e.prob),
                &format!("batch_augment.entries[{i}].prob"),
                "must be in [0, 1]",
            );
        }
        if r.batch_augment.entries.len() > 2 {
            self.problem(
                "batch_augment.entries",
                "at most two entries: the first, and the second used with `switch_prob`",
            );
        }
        self.require(r.trainer.epochs > 0, "trainer.epochs", "must be at least 1");
        self.require(
            r.trainer.accumulate > 0,
            "trainer.accumulate",
            "must be at least 1",
        );
        self.require(
            r.trainer.eval_interval > 0,
            "trainer.eval_interval",
            "must be at least 1",
        );
        self.require(
            r.trainer.log_interval > 0,
            "trainer.log_interval",
            "must be at least 1",
        );
        if let Some(clip) = r.trainer.clip_grad_norm {
            self.require(clip > 0.0, "trainer.clip_grad_norm", "must be positive");
        }
        if let Some(ema) = &r.trainer.ema {
            self.require(
                ema.decay > 0.0 && ema.decay < 1.0,
                "trainer.ema.decay",
                "must be in (0, 1)",
            );
            self.require(
                ema.interval > 0,
                "trainer.ema.interval",
                "must be at least 1",
            );
        }
    }

    /// Checks `trainer.device` against the backends the backbone's plugin was built with and the
    /// devices they see, or only its syntax when the plugin does not report them. `cpu` is not
    /// checked against the report: asking a plugin for it opens every GPU API it was built
    /// with (Vulkan prints to stderr, takes time), and a backbone without a CPU backend says
    /// so when it is created.
    fn device(&mut self, registry: &Registry) {
        let r = &self.resolved.recipe;
        let device = r.trainer.device.as_str();
        let reported = backbone_library(registry, &r.model.name)
            .filter(|_| device != "cpu")
            .and_then(|library| match library.devices() {
                DeviceSupport::Reported(reports) if !reports.is_empty() => {
                    Some((library.info.name.to_string(), reports))
                }
                _ => None,
            });
        let problem = match reported {
            Some((plugin, reports)) => device_problem(device, &plugin, &reports),
            None => (!valid_device(device)).then(|| {
                format!(
                    "unknown device `{device}`: use `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`, \
                     `libtorch:cpu`, `libtorch:cuda` or `libtorch:cuda:N`"
                )
            }),
        };
        if let Some(message) = problem {
            self.problem("trainer.device", message);
        }
    }

    /// Checks `model.weights`: a weight source that parses, a local file that exists in a
    /// format `run` reads, and zoo weights made for `model.name`'s architecture.
    fn weights(&mut self) {
        let model = &self.resolved.recipe.model;
        let Some(text) = model.weights.as_deref() else {
            return;
        };
        let problem = match text.parse::<WeightSource>() {
            Err(e) => Some(e.to_string()),
            Ok(WeightSource::File(path)) if !path.is_file() => {
                Some(format!("{} is not a file", path.display()))
            }
            Ok(WeightSource::File(path))
                if !is_checkpoint(&path) && clshost_state_dict::Format::of(&path).is_none() =>
            {
                Some(format!(
                    "{} is neither a clshost checkpoint nor a state dict (.safetensors, .pth, \
                     .pt or .bin)",
                    path.display()
                ))
            }
            Ok(WeightSource::Torchvision(c)) if c.is_for_another_arch_than(&model.name) => {
                Some(format!(
                    "torchvision:{} are weights for {}, but model.name is `{}`",
                    c.name(),
                    c.arch,
                    model.name
                ))
            }
            Ok(_) => None,
        };
        if let Some(message) = problem {
            self.problem("model.weights", message);
        }
    }

    /// Checks the fine-tuning controls (`model.freeze`, `unfreeze_epoch`, `freeze_bn_stats`,
    /// `optimizer.param_groups`, `layer_decay`): their values, and that the backbone's plugin
    /// has the entry point that applies them (ABI 1.3). Their patterns are checked against the
    /// model's parameter names when the run builds it.
    fn tuning(&mut self, registry: &Registry) {
        let r = &self.resolved.recipe;
        let (m, o) = (&r.model, &r.optimizer);
        if m.unfreeze_epoch.is_some() && m.freeze.is_empty() {
            self.problem(
                "model.unfreeze_epoch",
                "needs `model.freeze` patterns to lift",
            );
        }
        if let Some(d) = o.layer_decay
            && !(d > 0.0 && d <= 1.0)
        {
            self.problem(
                "optimizer.layer_decay",
                "must be in (0, 1]: each layer learns at this times the rate of the next",
            );
        }
        for (i, group) in o.param_groups.iter().enumerate() {
            let at = format!("optimizer.param_groups[{i}]");
            if group.params.is_empty() {
                self.problem(&format!("{at}.params"), "must name at least one pattern");
            }
            if group.lr_scale < 0.0 {
                self.problem(&format!("{at}.lr_scale"), "must be 0 or more");
            }
            if group.weight_decay.is_some_and(|w| w < 0.0) {
                self.problem(&format!("{at}.weight_decay"), "must be 0 or more");
            }
        }
        let asked = [
            ("model.freeze", !m.freeze.is_empty()),
            ("model.freeze_bn_stats", m.freeze_bn_stats),
            ("optimizer.param_groups", !o.param_groups.is_empty()),
            ("optimizer.layer_decay", o.layer_decay.is_some()),
        ];
        let Some((first, _)) = asked.iter().find(|(_, on)| *on) else {
            return;
        };
        if let Some(library) = backbone_library(registry, &m.name)
            && library.root.tune().is_none()
        {
            self.problem(
                first,
                predates(
                    &m.name,
                    library,
                    "cannot apply fine-tuning controls (freezing, parameter groups, layer-wise \
                     decay, frozen BatchNorm statistics need ABI 1.3)",
                    3,
                ),
            );
        }
    }

    /// Checks `trainer.precision` when it is not `fp32`: the backbone's plugin must have the
    /// entry point (ABI 1.6), and the backbone, built on the recipe's device, must accept it
    /// there (the first-party plugins run `bf16` on the LibTorch backend only). The backbone is
    /// built only for this, and only when the device is valid.
    fn precision(&mut self, registry: &Registry) {
        let r = &self.resolved.recipe;
        let precision = r.trainer.precision;
        if precision == Precision::Fp32 {
            return;
        }
        let Some(library) = backbone_library(registry, &r.model.name) else {
            return;
        };
        if library.root.precision().is_none() {
            let lacks = format!(
                "has no mixed precision (`{}` needs ABI 1.6)",
                precision.name()
            );
            let message = predates(&r.model.name, library, &lacks, 6);
            self.problem("trainer.precision", message + ", or train in `fp32`");
            return;
        }
        if self.problems.iter().any(|p| p.path == "trainer.device") {
            return;
        }
        let ctx = backbone_context(r, r.model.num_classes.unwrap_or(2));
        // A backbone that cannot be built is reported by the run, with its own message.
        if let Ok(mut backbone) = registry.new_backbone(&r.model.name, &r.model.params, &ctx)
            && let Err(e) = backbone.set_precision(precision.name())
        {
            self.problem("trainer.precision", e.error.to_string());
        }
    }

    /// Checks the data root; returns the class names when they can be read.
    fn data(&mut self) -> Option<Vec<String>> {
        let data = &self.resolved.recipe.data;
        if data.root.as_os_str().is_empty() {
            self.problem(
                "data.root",
                "required: the ImageFolder root (set it in the recipe or with --set data.root=\"/path\")",
            );
            return None;
        }
        if !data.root.is_dir() {
            self.problem(
                "data.root",
                format!(
                    "{} does not exist or is not a directory",
                    data.root.display()
                ),
            );
            return None;
        }
        let train = train_folder(self.resolved);
        let classes = match class_folders(&train) {
            Ok(c) => c,
            Err(e) => {
                self.problem("data.train_dir", e.to_string());
                return None;
            }
        };
        if classes.len() < 2 {
            self.problem(
                "data.root",
                format!(
                    "{} needs at least two class folders, found {}",
                    train.display(),
                    classes.len()
                ),
            );
            return None;
        }
        if let Some(n) = self.resolved.recipe.model.num_classes
            && n as usize != classes.len()
        {
            self.problem(
                "model.num_classes",
                format!(
                    "is {n} but {} has {} class folders",
                    train.display(),
                    classes.len()
                ),
            );
        }
        if data.val_split.is_none() {
            let val = data.root.join(&data.val_dir);
            if !val.is_dir() {
                self.problem(
                    "data.val_dir",
                    format!(
                        "{} does not exist: add it, or hold out part of the training images with `val_split`",
                        val.display()
                    ),
                );
            }
        }
        Some(classes)
    }

    fn component_problem(&mut self, path: &str, error: CreateError) {
        match error {
            CreateError::Resolve(e) => self.problem(&format!("{path}.name"), e.to_string()),
            CreateError::Component(e) => {
                let field = e.error.field_path.as_str();
                let full = match field {
                    "" => format!("{path}.params"),
                    f if f.starts_with('[') => format!("{path}.params{f}"),
                    f => format!("{path}.params.{f}"),
                };
                let message = format!("{} (plugin {})", e.error.message, e.origin.plugin);
                self.problem(&full, message);
            }
        }
    }

    fn check(
        &mut self,
        registry: &Registry,
        kind: Kind,
        path: &str,
        name: &str,
        params: &str,
    ) -> bool {
        if name.is_empty() {
            self.problem(
                &format!("{path}.name"),
                format!("required: the {kind} to use (see `clshost plugins`)"),
            );
            return false;
        }
        match registry.validate(kind, name, params) {
            Ok(()) => true,
            Err(e) => {
                self.component_problem(path, e);
                false
            }
        }
    }

    /// A batch augmentation needs a loss that accepts soft targets.
    fn soft_targets(&mut self, registry: &Registry, num_classes: u32) {
        let r = &self.resolved.recipe;
        let soft = registry
            .new_loss(&r.loss.name, &r.loss.params, &LossContext { num_classes })
            .map_err(|e| e.to_string())
            .and_then(|loss| loss.accepts_soft_targets().map_err(|e| e.to_string()));
        match soft {
            Ok(true) => {}
            Ok(false) => {
                let names: Vec<&str> = r
                    .batch_augment
                    .entries
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect();
                self.problem(
                    "loss.name",
                    format!(
                        "`{}` needs soft targets but loss `{}` accepts only hard labels: use a \
                         loss that accepts soft targets (e.g. `cross_entropy`) or remove the \
                         batch augmentation",
                        names.join("` and `"),
                        r.loss.name
                    ),
                );
            }
            Err(e) => self.problem("loss", e),
        }
    }

    fn components(&mut self, registry: &Registry, classes: Option<Vec<String>>) {
        let r = &self.resolved.recipe;
        let num_classes = r
            .model
            .num_classes
            .or(classes.as_ref().map(|c| c.len() as u32))
            .unwrap_or(2);
        let class_names: Vec<String> =
            classes.unwrap_or_else(|| (0..num_classes).map(|i| i.to_string()).collect());
        let mut reported: Vec<String> = vec!["loss".to_string()];
        let ctx = MetricContext {
            num_classes,
            class_names: class_names.iter().map(|c| c.as_str().into()).collect(),
        };
        for (kind, path, (name, params)) in named_components(r) {
            if !self.check(registry, kind, &path, name, params) {
                continue;
            }
            match kind {
                Kind::Loss if !r.batch_augment.entries.is_empty() => {
                    self.soft_targets(registry, num_classes);
                }
                Kind::Metric => match registry.new_metric(name, params, &ctx) {
                    Ok(metric) => match metric.outputs() {
                        Ok(outputs) => {
                            reported.extend(outputs.into_iter().map(|o| o.name.to_string()));
                        }
                        Err(e) => self.problem(&path, e.to_string()),
                    },
                    Err(e) => self.component_problem(&path, e),
                },
                _ => {}
            }
        }
        if !reported.contains(&r.trainer.monitor) {
            let mut message = format!(
                "`{}` is not reported by any configured metric (reported: {})",
                r.trainer.monitor,
                reported.join(", ")
            );
            if let Some(best) = reported
                .iter()
                .map(|n| (strsim::jaro_winkler(&r.trainer.monitor, n), n))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
            {
                message.push_str(&format!("; did you mean `{}`?", best.1));
            }
            self.problem("trainer.monitor", message);
        }
    }
}

/// The library of the plugin that offers the backbone `name`, when one does.
fn backbone_library<'r>(registry: &'r Registry, name: &str) -> Option<&'r Library> {
    registry
        .get(name)
        .filter(|e| e.info.kind == Kind::Backbone)
        .map(|e| &e.plugin.library)
}

/// The problem of asking backbone `model`, from the plugin `library`, for what its ABI minor
/// `lacks` and minor `needs` added.
fn predates(model: &str, library: &Library, lacks: &str, needs: u32) -> String {
    format!(
        "backbone `{model}` comes from plugin {} (plugin ABI 1.{}), which {lacks}; rebuild it \
         against clshost-plugin-api 1.{needs}",
        library.info.name, library.abi.minor
    )
}

/// Collects the paths under `node` (at `path`) of the numbers that are not finite, leaving out
/// components' `params`.
fn non_finite(node: &Node, path: &str, out: &mut Vec<String>) {
    match &node.value {
        Value::Atom(text) => {
            if text.parse::<f64>().is_ok_and(|v| !v.is_finite()) {
                out.push(path.to_string());
            }
        }
        Value::Struct { fields, .. } => {
            for f in fields.iter().filter(|f| f.name != "params") {
                let inner = match path {
                    "" => f.name.clone(),
                    _ => format!("{path}.{}", f.name),
                };
                non_finite(&f.value, &inner, out);
            }
        }
        Value::Tuple { name, items } if name.as_deref() == Some("Some") => {
            for item in items {
                non_finite(item, path, out);
            }
        }
        Value::Tuple { items, .. } | Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                non_finite(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(_) => {}
    }
}

/// Why `device` cannot be used with a plugin that reports `reports`, or `None` when it can: it
/// is the id of a device the plugin sees, or a bare backend name with at least one device.
pub fn device_problem(device: &str, plugin: &str, reports: &[BackendReport]) -> Option<String> {
    let backend = device.split(':').next().unwrap_or(device);
    let ids: Vec<&str> = reports
        .iter()
        .flat_map(|r| r.devices.iter().map(|d| d.id.as_str()))
        .collect();
    let usable = (!ids.is_empty()).then(|| format!("use one of: {}", ids.join(", ")));
    let Some(report) = reports.iter().find(|r| r.backend.as_str() == backend) else {
        let built: Vec<&str> = reports.iter().map(|r| r.backend.as_str()).collect();
        let rebuild = rebuild_flags(backend).map(|flags| format!("rebuild it with {flags}"));
        let remedies: Vec<String> = rebuild.into_iter().chain(usable).collect();
        let mut message = format!(
            "device `{device}` is not supported by plugin {plugin} (built with {})",
            built.join(", ")
        );
        if !remedies.is_empty() {
            message.push_str(&format!("; {}", remedies.join(", or ")));
        }
        return Some(message);
    };
    // A bare `cuda` or `libtorch:cuda` means ordinal 0.
    let first = format!("{device}:0");
    let ok = report
        .devices
        .iter()
        .any(|d| d.id.as_str() == device || d.id.as_str() == first)
        || (device == backend && !report.devices.is_empty());
    if ok {
        return None;
    }
    let mut message = format!("device `{device}` is not available to plugin {plugin}: ");
    if report.devices.is_empty() {
        let reason = report
            .problem
            .as_ref()
            .into_option()
            .map_or("no device found", |p| p.as_str());
        message.push_str(reason);
    } else {
        let seen: Vec<String> = report
            .devices
            .iter()
            .map(|d| format!("{} ({})", d.id, d.name))
            .collect();
        message.push_str(&format!("its {backend} devices are {}", seen.join(", ")));
        if let Some(remark) = report.problem.as_ref().into_option() {
            message.push_str(&format!(" ({remark})"));
        }
    }
    if let Some(usable) = usable {
        message.push_str(&format!("; {usable}"));
    }
    Some(message)
}

/// How to rebuild a first-party plugin with `backend`: its cargo feature, and for `libtorch` the
/// setup its build needs; `None` for a backend the first-party plugins do not have.
pub fn rebuild_flags(backend: &str) -> Option<String> {
    match backend {
        "wgpu" | "cuda" => Some(format!("`--features {backend}`")),
        "libtorch" => {
            Some("`--features libtorch` after `eval \"$(scripts/setup-libtorch.sh)\"`".to_string())
        }
        _ => None,
    }
}

/// Whether `device` is `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`, `libtorch:cpu`,
/// `libtorch:cuda` or `libtorch:cuda:N`.
pub fn valid_device(device: &str) -> bool {
    let ordinal = |i: Option<&str>| i.is_none_or(|i| i.parse::<u32>().is_ok());
    let parts: Vec<&str> = device.split(':').collect();
    match parts.as_slice() {
        ["cpu"] | ["libtorch", "cpu"] => true,
        ["wgpu" | "cuda", rest @ ..] | ["libtorch", "cuda", rest @ ..] if rest.len() <= 1 => {
            ordinal(rest.first().copied())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use clshost_plugin_api::{DeviceEntry, ROption};

    use super::*;

    fn reports() -> Vec<BackendReport> {
        vec![
            BackendReport::available("cpu", vec![DeviceEntry::new("cpu", "flex", "2 threads")]),
            BackendReport::available(
                "wgpu",
                vec![DeviceEntry::new("wgpu", "llvmpipe", "Vulkan, Cpu")],
            ),
            BackendReport::unavailable("cuda", "no CUDA driver library (libcuda.so.1) found"),
        ]
    }

    #[test]
    fn listed_ids_and_bare_backends_with_a_device_are_accepted() {
        for device in ["cpu", "wgpu"] {
            assert_eq!(device_problem(device, "p", &reports()), None, "{device}");
        }
    }

    #[test]
    fn a_backend_the_plugin_was_not_built_with_names_the_remedies() {
        let without_cuda = &reports()[..2];
        assert_eq!(
            device_problem("cuda:1", "p", without_cuda).unwrap(),
            "device `cuda:1` is not supported by plugin p (built with cpu, wgpu); rebuild it with \
             `--features cuda`, or use one of: cpu, wgpu"
        );
        assert_eq!(
            device_problem("tpu", "p", without_cuda).unwrap(),
            "device `tpu` is not supported by plugin p (built with cpu, wgpu); use one of: cpu, wgpu"
        );
    }

    #[test]
    fn a_compiled_backend_without_that_device_says_why() {
        assert_eq!(
            device_problem("cuda", "p", &reports()).unwrap(),
            "device `cuda` is not available to plugin p: no CUDA driver library (libcuda.so.1) \
             found; use one of: cpu, wgpu"
        );
        assert_eq!(
            device_problem("wgpu:0", "p", &reports()).unwrap(),
            "device `wgpu:0` is not available to plugin p: its wgpu devices are wgpu (llvmpipe); \
             use one of: cpu, wgpu"
        );
    }

    #[test]
    fn libtorch_devices_are_checked_like_the_others() {
        for good in [
            "cpu",
            "wgpu:1",
            "cuda",
            "libtorch:cpu",
            "libtorch:cuda",
            "libtorch:cuda:1",
        ] {
            assert!(valid_device(good), "{good}");
        }
        for bad in [
            "libtorch",
            "libtorch:gpu",
            "libtorch:cpu:0",
            "libtorch:cuda:x",
            "cuda:0:1",
            "cpu:0",
        ] {
            assert!(!valid_device(bad), "{bad}");
        }
        let torch = vec![BackendReport::available(
            "libtorch",
            vec![
                DeviceEntry::new("libtorch:cpu", "ATen", "2 threads"),
                DeviceEntry::new("libtorch:cuda:0", "CUDA device 0", "cuDNN"),
            ],
        )];
        for device in ["libtorch:cpu", "libtorch:cuda", "libtorch:cuda:0"] {
            assert_eq!(device_problem(device, "p", &torch), None, "{device}");
        }
        assert!(
            device_problem("libtorch:cuda:1", "p", &torch)
                .unwrap()
                .starts_with("device `libtorch:cuda:1` is not available to plugin p: its libtorch")
        );
        let cpu_only = vec![BackendReport {
            problem: ROption::RSome("libtorch sees no CUDA device".into()),
            ..BackendReport::available(
                "libtorch",
                vec![DeviceEntry::new("libtorch:cpu", "ATen", "2 threads")],
            )
        }];
        assert_eq!(
            device_problem("libtorch:cuda", "p", &cpu_only).unwrap(),
            "device `libtorch:cuda` is not available to plugin p: its libtorch devices are \
             libtorch:cpu (ATen) (libtorch sees no CUDA device); use one of: libtorch:cpu"
        );
        assert_eq!(
            device_problem("libtorch:cpu", "p", &reports()[..2]).unwrap(),
            "device `libtorch:cpu` is not supported by plugin p (built with cpu, wgpu); rebuild it \
             with `--features libtorch` after `eval \"$(scripts/setup-libtorch.sh)\"`, or use one \
             of: cpu, wgpu"
        );
    }
}
