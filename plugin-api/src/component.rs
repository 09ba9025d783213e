//! What a plugin says about itself: its name, version and the components it offers.

use std::fmt;

use abi_stable::StableAbi;
use abi_stable::std_types::{RString, RVec};

/// The six kinds of component a plugin can offer.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// A trainable model ([`crate::AbiBackbone`]).
    Backbone,
    /// A per-sample augmentation on an image or a normalized tensor ([`crate::AbiSampleAugment`]).
    SampleAugment,
    /// A batch-level augmentation such as MixUp ([`crate::AbiBatchAugment`]).
    BatchAugment,
    /// A loss with its gradient ([`crate::AbiLoss`]).
    Loss,
    /// An epoch-accumulating metric ([`crate::AbiMetric`]).
    Metric,
    /// A model exporter ([`crate::AbiExporter`]).
    Exporter,
}

impl ComponentKind {
    /// Every kind, in the order the host lists them.
    pub const ALL: [ComponentKind; 6] = [
        ComponentKind::Backbone,
        ComponentKind::SampleAugment,
        ComponentKind::BatchAugment,
        ComponentKind::Loss,
        ComponentKind::Metric,
        ComponentKind::Exporter,
    ];

    /// The name used in tables, JSON and messages (`backbone`, `sample_augment`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Backbone => "backbone",
            ComponentKind::SampleAugment => "sample_augment",
            ComponentKind::BatchAugment => "batch_augment",
            ComponentKind::Loss => "loss",
            ComponentKind::Metric => "metric",
            ComponentKind::Exporter => "exporter",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Documentation of one config parameter.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ParamDoc {
    /// The field name as written in a recipe.
    pub name: RString,
    /// Its default value, as RON.
    pub default: RString,
    /// One or two sentences on what it does and which values it takes.
    pub doc: RString,
}

/// Everything the host lists about one component.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ComponentInfo {
    /// Which contract the component implements.
    pub kind: ComponentKind,
    /// The name recipes use to pick it; unique across all loaded plugins.
    pub name: RString,
    /// One line saying what it does.
    pub description: RString,
    /// Its parameters, in declaration order.
    pub params: RVec<ParamDoc>,
    /// The complete default config, as RON.
    pub default_config: RString,
}

/// A plugin's identity and its component list.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginInfo {
    /// The plugin's name (its crate name).
    pub name: RString,
    /// The plugin's own version (its crate version).
    pub version: RString,
    /// One line saying what the plugin offers.
    pub description: RString,
    /// Every component the plugin offers.
    pub components: RVec<ComponentInfo>,
}

impl PluginInfo {
    /// Every parameter, as `component.parameter`, whose default is missing from the component
    /// list: a plugin's tests assert there is none, which shows that the documented names are
    /// the ones the config's serde implementation writes.
    pub fn params_without_default(&self) -> Vec<String> {
        self.components
            .iter()
            .flat_map(|c| {
                c.params
                    .iter()
                    .filter(|p| p.default.is_empty())
                    .map(move |p| format!("{}.{}", c.name, p.name))
            })
            .collect()
    }
}
