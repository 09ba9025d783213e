//! The root module a plugin exports: its identity and device report, set once by
//! [`crate::export_plugin!`], and the `extern "C"` entry points that find a registered component
//! by kind and name and run its constructor under [`guard`].

use std::path::Path;
use std::sync::OnceLock;

use abi_stable::std_types::{ROption, RResult, RStr, RVec};

use super::guard::{guard, install_panic_hook};
use super::registry::{Constructor, Kind, Registration};
use crate::{
    AugmentContext, BackboneBox, BackboneContext, BackendReport, BatchAugmentBox, CollectiveBox,
    ComponentKind, ExportedModelBox, ExporterBox, LoggerBox, LoggerContext, LoggerInfo, LossBox,
    LossContext, MetricBox, MetricContext, PluginError, PluginInfo, PluginRoot, PluginRootRef,
    TuneReport, TuneSpec,
};

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

fn find(kind: Kind, name: &str) -> Result<&'static Registration, PluginError> {
    inventory::iter::<Registration>
        .into_iter()
        .find(|r| r.kind == kind && r.name == name)
        .ok_or_else(|| {
            let kind = match kind {
                Kind::Component(kind) => kind.as_str(),
                Kind::Logger => "logger",
            };
            PluginError::unsupported(format!("this plugin has no {kind} named `{name}`"))
        })
}

/// Every registration, sorted by kind and name.
fn registrations() -> Vec<&'static Registration> {
    let mut registrations: Vec<&Registration> =
        inventory::iter::<Registration>.into_iter().collect();
    registrations.sort_by_key(|r| (r.kind, r.name));
    registrations
}

extern "C" fn root_info() -> RResult<PluginInfo, PluginError> {
    guard(|| {
        let (name, version, description) = PLUGIN.get().copied().unwrap_or(("", "", ""));
        let components = registrations()
            .into_iter()
            .filter_map(|r| match r.kind {
                Kind::Component(kind) => Some((kind, r)),
                Kind::Logger => None,
            })
            .map(|(kind, r)| {
                (r.documented)()
                    .map(|d| d.component(kind, r.name, r.description))
                    .map_err(|e| e.within(r.name))
            })
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
    guard(|| (find(Kind::Component(kind), name.as_str())?.validate)(config.as_str()))
}

extern "C" fn root_loggers() -> RResult<RVec<LoggerInfo>, PluginError> {
    guard(|| {
        registrations()
            .into_iter()
            .filter(|r| r.kind == Kind::Logger)
            .map(|r| {
                (r.documented)()
                    .map(|d| d.logger(r.name, r.description))
                    .map_err(|e| e.within(r.name))
            })
            .collect()
    })
}

extern "C" fn root_validate_logger(name: RStr<'_>, config: RStr<'_>) -> RResult<(), PluginError> {
    guard(|| (find(Kind::Logger, name.as_str())?.validate)(config.as_str()))
}

/// Looks up `name` among the registrations of a kind (a `ComponentKind` variant, or a [`Kind`]
/// followed by `=>` and the constructor variant) and runs its constructor.
macro_rules! construct {
    ($variant:ident, $name:expr, $($arg:expr),*) => {
        construct!(Kind::Component(ComponentKind::$variant) => $variant, $name, $($arg),*)
    };
    ($kind:expr => $variant:ident, $name:expr, $($arg:expr),*) => {
        guard(|| match find($kind, $name.as_str())?.constructor {
            Constructor::$variant(ctor) => ctor($($arg),*),
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

extern "C" fn root_new_logger(
    name: RStr<'_>,
    config: RStr<'_>,
    ctx: &LoggerContext,
) -> RResult<LoggerBox, PluginError> {
    construct!(Kind::Logger => Logger, name, config.as_str(), ctx)
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

extern "C" fn root_tune(
    backbone: &mut BackboneBox,
    spec: &TuneSpec,
) -> RResult<TuneReport, PluginError> {
    guard(|| {
        for tune in inventory::iter::<Registration>
            .into_iter()
            .filter_map(|r| r.tune)
        {
            if let Some(report) = tune(backbone, spec) {
                return report;
            }
        }
        Err(PluginError::input(
            "tune: the backbone was not created by this plugin",
        ))
    })
}

extern "C" fn root_distribute(
    backbone: &mut BackboneBox,
    collective: CollectiveBox,
) -> RResult<(), PluginError> {
    guard(|| {
        let mut collective = collective;
        for distribute in inventory::iter::<Registration>
            .into_iter()
            .filter_map(|r| r.distribute)
        {
            match distribute(backbone, collective) {
                Ok(done) => return done,
                Err(back) => collective = back,
            }
        }
        Err(PluginError::input(
            "distribute: the backbone was not created by this plugin",
        ))
    })
}

extern "C" fn root_precision(
    backbone: &mut BackboneBox,
    precision: RStr<'_>,
) -> RResult<(), PluginError> {
    guard(|| {
        inventory::iter::<Registration>
            .into_iter()
            .filter_map(|r| r.precision)
            .find_map(|set| set(backbone, precision.as_str()))
            .unwrap_or_else(|| {
                Err(PluginError::input(
                    "precision: the backbone was not created by this plugin",
                ))
            })
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
        tune: root_tune,
        loggers: root_loggers,
        validate_logger: root_validate_logger,
        new_logger: root_new_logger,
        distribute: root_distribute,
        precision: root_precision,
    }
    .leak_into_prefix()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
