//! The root module every plugin exports, and the version handshake checked before it is read.
//!
//! Loading a plugin takes three checks, each reported as one line by the host:
//!
//! 1. the library exports [`HANDSHAKE_SYMBOL`], a plain C function returning [`AbiVersion`]
//!    (its absence means "not a clshost plugin");
//! 2. its [`ABI_MAJOR`] equals the host's; any [`ABI_MINOR`] loads, because minor versions only
//!    append fields to prefix types (this root module, the trait-object vtables);
//! 3. abi_stable's layout check of [`PluginRoot`] and every type reachable from it.
//!
//! # Versioning rules
//!
//! - A change that only **appends** a field to [`PluginRoot`] or a method to a component trait
//!   (after the `#[sabi(last_prefix_field)]` marker) bumps [`ABI_MINOR`]. Hosts check whether
//!   such a field is present before using it.
//! - Any other change to a type that crosses the boundary bumps [`ABI_MAJOR`] (and this crate's
//!   major version, which always equals it).

use abi_stable::StableAbi;
use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr};

use crate::{
    AugmentContext, BackboneBox, BackboneContext, BatchAugmentBox, ComponentKind, ExporterBox,
    LossBox, LossContext, MetricBox, MetricContext, PluginError, PluginInfo, SampleAugmentBox,
};

/// The ABI major version: plugins and hosts must agree on it exactly.
pub const ABI_MAJOR: u32 = 1;
/// The ABI minor version: raised when fields or methods are appended.
pub const ABI_MINOR: u32 = 0;
/// `ABI_MAJOR.ABI_MINOR.0`, the version abi_stable's own check sees.
pub const ABI_VERSION_STRING: &str = "1.0.0";

/// The NUL-terminated name of the handshake function every plugin exports.
pub const HANDSHAKE_SYMBOL: &[u8] = b"clshost_plugin_abi\0";

/// The answer of a plugin's handshake function: `extern "C" fn() -> AbiVersion`.
///
/// This struct never changes, so any clshost can read it from any plugin, past or future.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiVersion {
    /// Always [`AbiVersion::MAGIC`]; guards against an unrelated symbol of the same name.
    pub magic: u64,
    /// The plugin's [`ABI_MAJOR`].
    pub major: u32,
    /// The plugin's [`ABI_MINOR`].
    pub minor: u32,
}

impl AbiVersion {
    /// The value of [`AbiVersion::magic`]: "clshost" in ASCII plus a format byte.
    pub const MAGIC: u64 = 0x636c_7368_6f73_7401;

    /// The version this crate implements.
    pub const CURRENT: AbiVersion = AbiVersion {
        magic: Self::MAGIC,
        major: ABI_MAJOR,
        minor: ABI_MINOR,
    };
}

/// The root module: the plugin's description and one constructor per component kind.
///
/// Every constructor takes the component name and its config as RON text, parses the config,
/// and returns the component or a [`PluginError`]. Plugins built with [`crate::export_plugin!`]
/// get all of this generated.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
#[sabi(missing_field(option))]
pub struct PluginRoot {
    /// The plugin's name, version, description and component list.
    pub info: extern "C" fn() -> RResult<PluginInfo, PluginError>,
    /// Parses and checks a component's config without creating the component.
    pub validate: extern "C" fn(
        kind: ComponentKind,
        name: RStr<'_>,
        config: RStr<'_>,
    ) -> RResult<(), PluginError>,
    /// Creates a backbone.
    pub new_backbone: extern "C" fn(
        name: RStr<'_>,
        config: RStr<'_>,
        ctx: &BackboneContext,
    ) -> RResult<BackboneBox, PluginError>,
    /// Creates a sample augmentation.
    pub new_sample_augment: extern "C" fn(
        name: RStr<'_>,
        config: RStr<'_>,
        ctx: &AugmentContext,
    ) -> RResult<SampleAugmentBox, PluginError>,
    /// Creates a batch augmentation.
    pub new_batch_augment: extern "C" fn(
        name: RStr<'_>,
        config: RStr<'_>,
        ctx: &AugmentContext,
    ) -> RResult<BatchAugmentBox, PluginError>,
    /// Creates a loss.
    pub new_loss: extern "C" fn(
        name: RStr<'_>,
        config: RStr<'_>,
        ctx: &LossContext,
    ) -> RResult<LossBox, PluginError>,
    /// Creates a metric.
    pub new_metric: extern "C" fn(
        name: RStr<'_>,
        config: RStr<'_>,
        ctx: &MetricContext,
    ) -> RResult<MetricBox, PluginError>,
    /// Creates an exporter.
    #[sabi(last_prefix_field)]
    pub new_exporter:
        extern "C" fn(name: RStr<'_>, config: RStr<'_>) -> RResult<ExporterBox, PluginError>,
}

impl RootModule for PluginRootRef {
    abi_stable::declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "clshost_plugin";
    const NAME: &'static str = "clshost plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_VERSION_STRING);
}

/// The exported symbol name abi_stable looks up (its `ROOT_MODULE_LOADER_NAME`), spelled out
/// because `#[export_name]` needs a literal. A test keeps it equal to abi_stable's.
#[doc(hidden)]
#[macro_export]
macro_rules! __root_module_symbol {
    () => {
        "_1as_0lib_1header_0root_bmodule_bloader"
    };
}

/// Exports `$ctor` (a `fn() -> $root` where `$root` is an abi_stable root module reference) as
/// the library's abi_stable root module, the way `#[export_root_module]` does, without requiring
/// the plugin crate to depend on abi_stable itself.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_root_module {
    ($root:ty, $ctor:path) => {
        #[unsafe(export_name = $crate::__root_module_symbol!())]
        pub static __CLSHOST_LIB_HEADER: $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module()
            -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader($ctor)
            }
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<$root>(
                    erased_root_module,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_constants_and_crate() {
        assert_eq!(ABI_VERSION_STRING, format!("{ABI_MAJOR}.{ABI_MINOR}.0"));
        let crate_major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
        assert_eq!(
            crate_major, ABI_MAJOR,
            "the crate's major version is the ABI major"
        );
    }

    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            __root_module_symbol!(),
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
