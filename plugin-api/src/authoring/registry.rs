//! Registration: what [`crate::register!`] submits to the plugin's inventory for each
//! component (its kind, name, docs, config check and constructor), and the constructors that
//! parse a config and wrap the new component in its ABI trait object.

use std::path::Path;

use abi_stable::sabi_trait::{TD_CanDowncast, TD_Opaque};

use super::adapters::{Adapter, ImageStage, Opened, TensorStage};
use super::params::{Documented, documented};
use super::{
    Backbone, BatchAugment, Component, Exporter, ImageAugment, Logger, Loss, Metric, TensorAugment,
};
use crate::{
    AbiBackbone_TO, AbiBatchAugment_TO, AbiExportedModel_TO, AbiExporter_TO, AbiLogger_TO,
    AbiLoss_TO, AbiMetric_TO, AbiSampleAugment_TO, AugmentContext, BackboneBox, BackboneContext,
    BatchAugmentBox, CollectiveBox, ComponentKind, ExportedModelBox, ExporterBox, LoggerBox,
    LoggerContext, LossBox, LossContext, MetricBox, MetricContext, PluginError, TuneReport,
    TuneSpec, parse_config,
};

/// Parses and checks a component's config.
fn parse_checked<T: Component>(config: &str) -> Result<T::Config, PluginError> {
    let parsed = parse_config::<T::Config>(config)?;
    T::check(&parsed)?;
    Ok(parsed)
}

/// The constructor of a registered component, by kind.
#[derive(Clone, Copy)]
pub(super) enum Constructor {
    Backbone(fn(&str, &BackboneContext) -> Result<BackboneBox, PluginError>),
    SampleAugment(fn(&str, &AugmentContext) -> Result<crate::SampleAugmentBox, PluginError>),
    BatchAugment(fn(&str, &AugmentContext) -> Result<BatchAugmentBox, PluginError>),
    Loss(fn(&str, &LossContext) -> Result<LossBox, PluginError>),
    Metric(fn(&str, &MetricContext) -> Result<MetricBox, PluginError>),
    Exporter(fn(&str) -> Result<ExporterBox, PluginError>),
    Logger(fn(&str, &LoggerContext) -> Result<LoggerBox, PluginError>),
}

/// What a registration is: a component of one of the kinds of ABI 1.0, or (ABI 1.4) a logger,
/// which has entry points of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Component(ComponentKind),
    Logger,
}

fn new_backbone<T: Backbone>(
    config: &str,
    ctx: &BackboneContext,
) -> Result<BackboneBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    // Downcastable, so that the root module's `tune` can reach the backbone's own type.
    Ok(AbiBackbone_TO::from_value(Adapter(value), TD_CanDowncast))
}

/// [`Backbone::tune`] of `backbone` when it is a `T` (created by [`new_backbone::<T>`]);
/// `None` when it is another type.
fn tune_backbone<T: Backbone>(
    backbone: &mut BackboneBox,
    spec: &TuneSpec,
) -> Option<Result<TuneReport, PluginError>> {
    let adapter = backbone.obj.downcast_as_mut::<Adapter<T>>().ok()?;
    Some(adapter.0.tune(spec))
}

/// A backbone type's [`Backbone::tune`], behind the ABI: `None` for a backbone of another type.
pub(super) type Tuner = fn(&mut BackboneBox, &TuneSpec) -> Option<Result<TuneReport, PluginError>>;

/// [`Backbone::distribute`] of `backbone` when it is a `T`; the collective back when it is
/// another type, for the next registration to try.
fn distribute_backbone<T: Backbone>(
    backbone: &mut BackboneBox,
    collective: CollectiveBox,
) -> Result<Result<(), PluginError>, CollectiveBox> {
    match backbone.obj.downcast_as_mut::<Adapter<T>>() {
        Ok(adapter) => Ok(adapter.0.distribute(collective)),
        Err(_) => Err(collective),
    }
}

/// A backbone type's [`Backbone::distribute`], behind the ABI.
pub(super) type Distributor =
    fn(&mut BackboneBox, CollectiveBox) -> Result<Result<(), PluginError>, CollectiveBox>;

/// [`Backbone::set_precision`] of `backbone` when it is a `T`; `None` for a backbone of another
/// type.
fn set_backbone_precision<T: Backbone>(
    backbone: &mut BackboneBox,
    precision: &str,
) -> Option<Result<(), PluginError>> {
    let adapter = backbone.obj.downcast_as_mut::<Adapter<T>>().ok()?;
    Some(adapter.0.set_precision(precision))
}

/// A backbone type's [`Backbone::set_precision`], behind the ABI.
pub(super) type PrecisionSetter = fn(&mut BackboneBox, &str) -> Option<Result<(), PluginError>>;

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

fn new_logger<T: Logger>(config: &str, ctx: &LoggerContext) -> Result<LoggerBox, PluginError> {
    let value = T::new(parse_checked::<T>(config)?, ctx)?;
    Ok(AbiLogger_TO::from_value(Adapter(value), TD_Opaque))
}

fn open_exported<T: Exporter>(path: &Path) -> Result<Option<ExportedModelBox>, PluginError> {
    Ok(T::open(path)?.map(|model| AbiExportedModel_TO::from_value(Opened(model), TD_Opaque)))
}

/// An exporter's [`Exporter::open`], behind the ABI trait.
pub(super) type Opener = fn(&Path) -> Result<Option<ExportedModelBox>, PluginError>;

/// One registered component: what [`crate::register!`] submits to the plugin's inventory.
pub struct Registration {
    pub(super) kind: Kind,
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) documented: fn() -> Result<Documented, PluginError>,
    pub(super) validate: fn(&str) -> Result<(), PluginError>,
    pub(super) constructor: Constructor,
    /// An exporter's [`Exporter::open`].
    pub(super) open: Option<Opener>,
    /// A backbone's [`Backbone::tune`].
    pub(super) tune: Option<Tuner>,
    /// A backbone's [`Backbone::distribute`].
    pub(super) distribute: Option<Distributor>,
    /// A backbone's [`Backbone::set_precision`].
    pub(super) precision: Option<PrecisionSetter>,
}

inventory::collect!(Registration);

impl Registration {
    const fn of<T: Component>(kind: ComponentKind, constructor: Constructor) -> Self {
        Self::registered::<T>(Kind::Component(kind), constructor)
    }

    const fn registered<T: Component>(kind: Kind, constructor: Constructor) -> Self {
        Registration {
            kind,
            name: T::NAME,
            description: T::DESCRIPTION,
            documented: documented::<T>,
            validate: validate::<T>,
            constructor,
            open: None,
            tune: None,
            distribute: None,
            precision: None,
        }
    }

    /// Registers a backbone.
    pub const fn backbone<T: Backbone>() -> Self {
        let mut registration = Self::of::<T>(
            ComponentKind::Backbone,
            Constructor::Backbone(new_backbone::<T>),
        );
        registration.tune = Some(tune_backbone::<T>);
        registration.distribute = Some(distribute_backbone::<T>);
        registration.precision = Some(set_backbone_precision::<T>);
        registration
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

    /// Registers a logger (ABI 1.4).
    pub const fn logger<T: Logger>() -> Self {
        Self::registered::<T>(Kind::Logger, Constructor::Logger(new_logger::<T>))
    }
}

fn validate<T: Component>(config: &str) -> Result<(), PluginError> {
    parse_checked::<T>(config).map(drop)
}
