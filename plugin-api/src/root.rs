//! The root module every plugin exports, and the version handshake checked before it is read.
//!
//! Loading a plugin takes three checks, each reported as one line by the host:
//!
//! 1. the library exports [`HANDSHAKE_SYMBOL`], a plain C function returning [`AbiVersion`]
//!    (its absence means "not a clshost plugin");
//! 2. its [`ABI_MAJOR`] equals the host's; any [`ABI_MINOR`] loads, because minor versions only
//!    append fields to prefix types (this root module);
//! 3. abi_stable's layout check of the root module and every type reachable from it, against
//!    the layout of the plugin's own minor version: [`PluginRoot`] for the current one,
//!    [`v1_3::PluginRoot`] for 1.3, [`v1_2::PluginRoot`] for 1.2, [`v1_1::PluginRoot`] for 1.1, [`v1_0::PluginRoot`] for 1.0.
//!
//! abi_stable (0.11) accepts a library whose prefix type has *more* fields than the loader's,
//! but rejects one with *fewer* ("too many fields"): an older host reads a newer plugin as is,
//! while a newer host must check an older plugin against that older layout and then read it
//! through the current type, where the appended fields are absent (their accessors return
//! `None`). That is why every past minor's root module stays in this crate.
//!
//! # Versioning rules
//!
//! - A change that only **appends** a field to [`PluginRoot`] (after the
//!   `#[sabi(last_prefix_field)]` marker) bumps [`ABI_MINOR`] and freezes the previous layout
//!   as a `vX_Y` module the host loads older plugins with. Hosts check whether such a field is
//!   present before using it.
//! - Any other change to a type that crosses the boundary bumps [`ABI_MAJOR`] (and this crate's
//!   major version, which always equals it).
//!
//! # History
//!
//! - **1.0**: `info`, `validate` and one constructor per component kind.
//! - **1.1**: appends [`PluginRoot::devices`], the backends the plugin was compiled with and the
//!   devices each one sees. A 1.1 host loads a 1.0 plugin with [`v1_0::PluginRoot`]'s layout;
//!   [`PluginRootRef::devices`] then returns `None`, which hosts read as "this plugin does not
//!   report devices".
//! - **1.2**: appends [`PluginRoot::open_model`], which opens a file one of the plugin's
//!   exporters wrote so the host can run it (`clshost predict model.onnx`). A 1.2 host loads a
//!   1.1 plugin with [`v1_1::PluginRoot`]'s layout; [`PluginRootRef::open_model`] then returns
//!   `None`, and the host asks the other plugins.
//! - **1.3**: appends [`PluginRoot::tune`], which applies fine-tuning controls
//!   ([`crate::TuneSpec`]: freezing by name pattern, parameter groups, layer-wise learning-rate
//!   decay, frozen normalization statistics) to a backbone the plugin created. A 1.3 host loads
//!   a 1.2 plugin with [`v1_2::PluginRoot`]'s layout; [`PluginRootRef::tune`] then returns
//!   `None`, and a recipe asking for fine-tuning controls is refused by `clshost check`.
//! - **1.4**: appends the logger kind ([`crate::AbiLogger`]): [`PluginRoot::loggers`] lists the
//!   plugin's loggers, [`PluginRoot::validate_logger`] checks one's config and
//!   [`PluginRoot::new_logger`] creates one. Loggers have entry points of their own because
//!   [`crate::ComponentKind`], an exhaustive enum, cannot gain a variant within major 1. A 1.4
//!   host loads a 1.3 plugin with [`v1_3::PluginRoot`]'s layout; its `loggers` then reads as
//!   absent, which hosts read as "this plugin offers no loggers".
//! - **1.5**: appends [`PluginRoot::distribute`], which hands a backbone the plugin created a
//!   [`crate::AbiCollective`] (rank, size, all-reduce and broadcast of host memory) so it trains
//!   data-parallel: gradients are summed across ranks before each optimizer step, and a rank
//!   without a batch in a window steps with a zero-row gradient. A 1.5 host loads a 1.4 plugin
//!   with [`v1_4::PluginRoot`]'s layout; [`PluginRootRef::distribute`] then returns `None`, and
//!   a distributed run with that backbone is refused before it starts.
//! - **1.6**: appends [`PluginRoot::precision`], which sets the precision a backbone the plugin
//!   created computes in (`fp32`, or `bf16` for mixed precision: float32 weights and optimizer,
//!   bfloat16 convolutions and matrix products, as `torch.autocast`). A 1.6 host loads a 1.5
//!   plugin with [`v1_5::PluginRoot`]'s layout; [`PluginRootRef::precision`] then returns
//!   `None`, and a recipe asking for another precision than `fp32` is refused before training.

use abi_stable::StableAbi;
use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RStr, RVec};

use crate::{
    BackendReport, CollectiveBox, ExportedModelBox, LoggerBox, LoggerContext, LoggerInfo,
    PluginError,
};

/// The ABI major version: plugins and hosts must agree on it exactly.
pub const ABI_MAJOR: u32 = 1;
/// The ABI minor version: raised when fields or methods are appended.
pub const ABI_MINOR: u32 = 6;
/// `ABI_MAJOR.ABI_MINOR.0`, the version abi_stable's own check sees.
pub const ABI_VERSION_STRING: &str = "1.6.0";

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

/// Defines `PluginRoot` (and `PluginRootRef`) with the ABI 1.0 fields followed by `$appended`:
/// the current root module and each frozen past minor share one definition of what they have in
/// common, and keep the type name abi_stable compares.
macro_rules! plugin_root {
    ($(#[$doc:meta])* appended: { $($appended:tt)* }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(::abi_stable::StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
        #[sabi(missing_field(option))]
        pub struct PluginRoot {
            /// The plugin's name, version, description and component list.
            pub info: extern "C" fn() -> RResult<$crate::PluginInfo, $crate::PluginError>,
            /// Parses and checks a component's config without creating the component.
            pub validate: extern "C" fn(
                kind: $crate::ComponentKind,
                name: RStr<'_>,
                config: RStr<'_>,
            ) -> RResult<(), $crate::PluginError>,
            /// Creates a backbone.
            pub new_backbone: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &$crate::BackboneContext,
            ) -> RResult<$crate::BackboneBox, $crate::PluginError>,
            /// Creates a sample augmentation.
            pub new_sample_augment: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &$crate::AugmentContext,
            ) -> RResult<$crate::SampleAugmentBox, $crate::PluginError>,
            /// Creates a batch augmentation.
            pub new_batch_augment: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &$crate::AugmentContext,
            ) -> RResult<$crate::BatchAugmentBox, $crate::PluginError>,
            /// Creates a loss.
            pub new_loss: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &$crate::LossContext,
            ) -> RResult<$crate::LossBox, $crate::PluginError>,
            /// Creates a metric.
            pub new_metric: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &$crate::MetricContext,
            ) -> RResult<$crate::MetricBox, $crate::PluginError>,
            /// Creates an exporter.
            #[sabi(last_prefix_field)]
            pub new_exporter: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
            ) -> RResult<$crate::ExporterBox, $crate::PluginError>,
            $($appended)*
        }
    };
}

plugin_root! {
    /// The root module: the plugin's description, one constructor per component kind, (ABI
    /// 1.1) its device report, (ABI 1.2) the reader of its exporters' files, (ABI 1.3) the
    /// fine-tuning controls of its backbones, (ABI 1.4) its loggers, (ABI 1.5) data-parallel
    /// training and (ABI 1.6) the precision of its backbones.
    ///
    /// Every constructor takes the component name and its config as RON text, parses the
    /// config, and returns the component or a [`PluginError`]. Plugins built with
    /// [`crate::export_plugin!`] get all of this generated.
    appended: {
        /// ABI 1.1: the backends this plugin was compiled with, each with the devices it can use
        /// now or why it has none (see [`BackendReport`]). Plugins without backbones report an
        /// empty list. Absent from 1.0 plugins: the accessor [`PluginRootRef::devices`] returns
        /// `None`.
        pub devices: extern "C" fn() -> RResult<RVec<BackendReport>, PluginError>,
        /// ABI 1.2: opens the file at `path` to run it, when one of this plugin's exporters
        /// writes that format (`RNone` otherwise); an error when the file is of its format but
        /// unusable. Absent from older plugins: [`PluginRootRef::open_model`] returns `None`.
        pub open_model:
            extern "C" fn(path: RStr<'_>) -> RResult<ROption<ExportedModelBox>, PluginError>,
        /// ABI 1.3: applies fine-tuning controls (freezing, parameter groups, layer-wise
        /// learning-rate decay, frozen normalization statistics) to `backbone`, which this
        /// plugin's `new_backbone` created; an `Unsupported` error when that backbone cannot.
        /// Absent from older plugins: [`PluginRootRef::tune`] returns `None`.
        pub tune: extern "C" fn(
            backbone: &mut crate::BackboneBox,
            spec: &crate::TuneSpec,
        ) -> RResult<crate::TuneReport, PluginError>,
        /// ABI 1.4: the plugin's loggers (an empty list for a plugin without any). Absent from
        /// older plugins: [`PluginRootRef::loggers`] returns `None`.
        pub loggers: extern "C" fn() -> RResult<RVec<LoggerInfo>, PluginError>,
        /// ABI 1.4: parses and checks a logger's config without creating the logger.
        pub validate_logger:
            extern "C" fn(name: RStr<'_>, config: RStr<'_>) -> RResult<(), PluginError>,
        /// ABI 1.4: creates a logger.
        pub new_logger: extern "C" fn(
            name: RStr<'_>,
            config: RStr<'_>,
            ctx: &LoggerContext,
        ) -> RResult<LoggerBox, PluginError>,
        /// ABI 1.5: makes `backbone`, which this plugin's `new_backbone` created, train
        /// data-parallel through `collective` (see [`crate::AbiCollective`] for the contract);
        /// an `Unsupported` error when that backbone cannot. Absent from older plugins:
        /// [`PluginRootRef::distribute`] returns `None`.
        pub distribute: extern "C" fn(
            backbone: &mut crate::BackboneBox,
            collective: CollectiveBox,
        ) -> RResult<(), PluginError>,
        /// ABI 1.6: makes `backbone`, which this plugin's `new_backbone` created, compute in the
        /// precision called `precision` from now on: `fp32`, or `bf16` (mixed precision: weights,
        /// gradients and optimizer state in float32, convolutions and matrix products in
        /// bfloat16, as `torch.autocast(dtype=torch.bfloat16)`); an `Unsupported` error when
        /// that backbone, or its device, cannot. Absent from older plugins:
        /// [`PluginRootRef::precision`] returns `None`.
        pub precision: extern "C" fn(
            backbone: &mut crate::BackboneBox,
            precision: RStr<'_>,
        ) -> RResult<(), PluginError>,
    }
}

impl RootModule for PluginRootRef {
    abi_stable::declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "clshost_plugin";
    const NAME: &'static str = "clshost plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_VERSION_STRING);
}

/// Defines a past minor's frozen `PluginRoot` (its fields after the 1.0 ones are `$appended`),
/// loadable as the root module of a plugin of that minor (`$version`), and its `upgrade` to
/// the current type.
macro_rules! past_minor {
    ($version:literal, $(#[$doc:meta])* appended: { $($appended:tt)* }) => {
        plugin_root! {
            $(#[$doc])*
            appended: { $($appended)* }
        }

        impl RootModule for PluginRootRef {
            abi_stable::declare_root_module_statics! {PluginRootRef}
            const BASE_NAME: &'static str = super::PluginRootRef::BASE_NAME;
            const NAME: &'static str = super::PluginRootRef::NAME;
            const VERSION_STRINGS: VersionStrings = VersionStrings::new($version);
        }

        impl PluginRootRef {
            /// The same module seen through the current type; the fields later minors
            /// appended read as absent.
            pub fn upgrade(self) -> super::PluginRootRef {
                // SAFETY: a past minor's layout is a prefix of the current one (a test checks
                // it with abi_stable), and prefix-type accessors read the instance's own field
                // count.
                super::PluginRootRef(unsafe { self.0.cast() })
            }
        }
    };
}

/// The root module exactly as ABI 1.5 defined it, for loading 1.5 plugins, whose `precision`
/// reads as absent.
#[doc(hidden)]
pub mod v1_5 {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{ROption, RResult, RStr, RVec};

    use crate::{
        BackendReport, CollectiveBox, ExportedModelBox, LoggerBox, LoggerContext, LoggerInfo,
        PluginError,
    };

    past_minor! {
        "1.5.0",
        /// [`super::PluginRoot`] without the fields ABI 1.6 appended.
        appended: {
            /// The device report, as in [`super::PluginRoot::devices`].
            pub devices: extern "C" fn() -> RResult<RVec<BackendReport>, PluginError>,
            /// The file reader, as in [`super::PluginRoot::open_model`].
            pub open_model:
                extern "C" fn(path: RStr<'_>) -> RResult<ROption<ExportedModelBox>, PluginError>,
            /// The fine-tuning controls, as in [`super::PluginRoot::tune`].
            pub tune: extern "C" fn(
                backbone: &mut crate::BackboneBox,
                spec: &crate::TuneSpec,
            ) -> RResult<crate::TuneReport, PluginError>,
            /// The loggers, as in [`super::PluginRoot::loggers`].
            pub loggers: extern "C" fn() -> RResult<RVec<LoggerInfo>, PluginError>,
            /// As in [`super::PluginRoot::validate_logger`].
            pub validate_logger:
                extern "C" fn(name: RStr<'_>, config: RStr<'_>) -> RResult<(), PluginError>,
            /// As in [`super::PluginRoot::new_logger`].
            pub new_logger: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &LoggerContext,
            ) -> RResult<LoggerBox, PluginError>,
            /// As in [`super::PluginRoot::distribute`].
            pub distribute: extern "C" fn(
                backbone: &mut crate::BackboneBox,
                collective: CollectiveBox,
            ) -> RResult<(), PluginError>,
        }
    }
}

/// The root module exactly as ABI 1.4 defined it, for loading 1.4 plugins, whose `distribute`
/// reads as absent.
#[doc(hidden)]
pub mod v1_4 {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{ROption, RResult, RStr, RVec};

    use crate::{
        BackendReport, ExportedModelBox, LoggerBox, LoggerContext, LoggerInfo, PluginError,
    };

    past_minor! {
        "1.4.0",
        /// [`super::PluginRoot`] without the fields ABI 1.5 appended.
        appended: {
            /// The device report, as in [`super::PluginRoot::devices`].
            pub devices: extern "C" fn() -> RResult<RVec<BackendReport>, PluginError>,
            /// The file reader, as in [`super::PluginRoot::open_model`].
            pub open_model:
                extern "C" fn(path: RStr<'_>) -> RResult<ROption<ExportedModelBox>, PluginError>,
            /// The fine-tuning controls, as in [`super::PluginRoot::tune`].
            pub tune: extern "C" fn(
                backbone: &mut crate::BackboneBox,
                spec: &crate::TuneSpec,
            ) -> RResult<crate::TuneReport, PluginError>,
            /// The loggers, as in [`super::PluginRoot::loggers`].
            pub loggers: extern "C" fn() -> RResult<RVec<LoggerInfo>, PluginError>,
            /// As in [`super::PluginRoot::validate_logger`].
            pub validate_logger:
                extern "C" fn(name: RStr<'_>, config: RStr<'_>) -> RResult<(), PluginError>,
            /// As in [`super::PluginRoot::new_logger`].
            pub new_logger: extern "C" fn(
                name: RStr<'_>,
                config: RStr<'_>,
                ctx: &LoggerContext,
            ) -> RResult<LoggerBox, PluginError>,
        }
    }
}

/// The root module exactly as ABI 1.3 defined it, for loading 1.3 plugins, whose loggers read
/// as absent.
#[doc(hidden)]
pub mod v1_3 {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{ROption, RResult, RStr, RVec};

    use crate::{BackendReport, ExportedModelBox, PluginError};

    past_minor! {
        "1.3.0",
        /// [`super::PluginRoot`] without the fields ABI 1.4 appended.
        appended: {
            /// The device report, as in [`super::PluginRoot::devices`].
            pub devices: extern "C" fn() -> RResult<RVec<BackendReport>, PluginError>,
            /// The file reader, as in [`super::PluginRoot::open_model`].
            pub open_model:
                extern "C" fn(path: RStr<'_>) -> RResult<ROption<ExportedModelBox>, PluginError>,
            /// The fine-tuning controls, as in [`super::PluginRoot::tune`].
            pub tune: extern "C" fn(
                backbone: &mut crate::BackboneBox,
                spec: &crate::TuneSpec,
            ) -> RResult<crate::TuneReport, PluginError>,
        }
    }
}

/// The root module exactly as ABI 1.2 defined it, for loading 1.2 plugins, whose `tune` (and
/// later fields) read as absent.
#[doc(hidden)]
pub mod v1_2 {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{ROption, RResult, RStr, RVec};

    use crate::{BackendReport, ExportedModelBox, PluginError};

    past_minor! {
        "1.2.0",
        /// [`super::PluginRoot`] without the fields ABI 1.3 appended.
        appended: {
            /// The device report, as in [`super::PluginRoot::devices`].
            pub devices: extern "C" fn() -> RResult<RVec<BackendReport>, PluginError>,
            /// The file reader, as in [`super::PluginRoot::open_model`].
            pub open_model:
                extern "C" fn(path: RStr<'_>) -> RResult<ROption<ExportedModelBox>, PluginError>,
        }
    }
}

/// The root module exactly as ABI 1.1 defined it, for loading 1.1 plugins: abi_stable rejects a
/// library whose prefix type has fewer fields than the loader's, so a newer host checks a 1.1
/// plugin against this layout and then reads it as a [`PluginRootRef`] whose `open_model` (and
/// later fields) are absent.
#[doc(hidden)]
pub mod v1_1 {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{RResult, RStr, RVec};

    use crate::{BackendReport, PluginError};

    past_minor! {
        "1.1.0",
        /// [`super::PluginRoot`] without the fields ABI 1.2 appended.
        appended: {
            /// The device report, as in [`super::PluginRoot::devices`].
            pub devices: extern "C" fn() -> RResult<RVec<BackendReport>, PluginError>,
        }
    }
}

/// The root module exactly as ABI 1.0 defined it, for loading 1.0 plugins, whose `devices` (and
/// later fields) read as absent.
#[doc(hidden)]
pub mod v1_0 {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{RResult, RStr};

    past_minor! {
        "1.0.0",
        /// [`super::PluginRoot`] without the fields ABI 1.1 and later appended.
        appended: {}
    }
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

    /// What abi_stable 0.11.3 does with appended fields (see `check_fields` in abi_stable's
    /// `abi_checking.rs`: an interface with more prefix-type fields than the implementation is a
    /// `FieldCountMismatch`): an older host accepts a newer plugin, a newer host rejects an older
    /// plugin's layout, and only past the check, through the frozen layout, would the appended
    /// fields read as `None`. Checked for each past minor against the current layout.
    #[test]
    fn appending_a_field_is_compatible_in_one_direction_only() {
        use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
        use abi_stable::type_layout::TypeLayout;

        let past: [(&str, &'static TypeLayout); 6] = [
            ("1.0", <v1_0::PluginRootRef as StableAbi>::LAYOUT),
            ("1.1", <v1_1::PluginRootRef as StableAbi>::LAYOUT),
            ("1.2", <v1_2::PluginRootRef as StableAbi>::LAYOUT),
            ("1.3", <v1_3::PluginRootRef as StableAbi>::LAYOUT),
            ("1.4", <v1_4::PluginRootRef as StableAbi>::LAYOUT),
            ("1.5", <v1_5::PluginRootRef as StableAbi>::LAYOUT),
        ];
        let current = <PluginRootRef as StableAbi>::LAYOUT;
        for (minor, layout) in past {
            check_layout_compatibility(layout, current)
                .unwrap_or_else(|e| panic!("a {minor} host accepts a 1.6 root module: {e}"));
            let rejected = check_layout_compatibility(current, layout)
                .expect_err("a 1.6 host rejects an older root module's layout");
            assert!(rejected.to_string().contains("too many fields"), "{minor}");
        }
    }

    /// An older plugin, read through its frozen layout and upgraded, has none of the fields
    /// appended after its minor; the current authored root module has them all.
    #[test]
    fn older_root_modules_read_their_appended_fields_as_absent() {
        use abi_stable::prefix_type::PrefixTypeTrait;

        let authored = crate::authoring::root_module("new", "1", "", None);
        let v10 = v1_0::PluginRoot {
            info: authored.info(),
            validate: authored.validate(),
            new_backbone: authored.new_backbone(),
            new_sample_augment: authored.new_sample_augment(),
            new_batch_augment: authored.new_batch_augment(),
            new_loss: authored.new_loss(),
            new_metric: authored.new_metric(),
            new_exporter: authored.new_exporter(),
        }
        .leak_into_prefix()
        .upgrade();
        assert!(v10.devices().is_none());
        assert!(v10.open_model().is_none());
        let v11 = v1_1::PluginRoot {
            info: authored.info(),
            validate: authored.validate(),
            new_backbone: authored.new_backbone(),
            new_sample_augment: authored.new_sample_augment(),
            new_batch_augment: authored.new_batch_augment(),
            new_loss: authored.new_loss(),
            new_metric: authored.new_metric(),
            new_exporter: authored.new_exporter(),
            devices: authored
                .devices()
                .expect("the current root module has `devices`"),
        }
        .leak_into_prefix()
        .upgrade();
        assert!(v11.devices().is_some());
        assert!(v11.open_model().is_none());
        assert!(v11.tune().is_none());
        let v12 = v1_2::PluginRoot {
            info: authored.info(),
            validate: authored.validate(),
            new_backbone: authored.new_backbone(),
            new_sample_augment: authored.new_sample_augment(),
            new_batch_augment: authored.new_batch_augment(),
            new_loss: authored.new_loss(),
            new_metric: authored.new_metric(),
            new_exporter: authored.new_exporter(),
            devices: authored
                .devices()
                .expect("the current root module has `devices`"),
            open_model: authored
                .open_model()
                .expect("the current root module has `open_model`"),
        }
        .leak_into_prefix()
        .upgrade();
        assert!(v12.open_model().is_some());
        assert!(v12.tune().is_none());
        let v13 = v1_3::PluginRoot {
            info: authored.info(),
            validate: authored.validate(),
            new_backbone: authored.new_backbone(),
            new_sample_augment: authored.new_sample_augment(),
            new_batch_augment: authored.new_batch_augment(),
            new_loss: authored.new_loss(),
            new_metric: authored.new_metric(),
            new_exporter: authored.new_exporter(),
            devices: authored
                .devices()
                .expect("the current root module has `devices`"),
            open_model: authored
                .open_model()
                .expect("the current root module has `open_model`"),
            tune: authored.tune().expect("the current root module has `tune`"),
        }
        .leak_into_prefix()
        .upgrade();
        assert!(v13.tune().is_some());
        assert!(v13.loggers().is_none());
        assert!(v13.new_logger().is_none());
        let v14 = v1_4::PluginRoot {
            info: authored.info(),
            validate: authored.validate(),
            new_backbone: authored.new_backbone(),
            new_sample_augment: authored.new_sample_augment(),
            new_batch_augment: authored.new_batch_augment(),
            new_loss: authored.new_loss(),
            new_metric: authored.new_metric(),
            new_exporter: authored.new_exporter(),
            devices: authored
                .devices()
                .expect("the current root module has `devices`"),
            open_model: authored
                .open_model()
                .expect("the current root module has `open_model`"),
            tune: authored.tune().expect("the current root module has `tune`"),
            loggers: authored
                .loggers()
                .expect("the current root module has `loggers`"),
            validate_logger: authored
                .validate_logger()
                .expect("the current root module has `validate_logger`"),
            new_logger: authored
                .new_logger()
                .expect("the current root module has `new_logger`"),
        }
        .leak_into_prefix()
        .upgrade();
        assert!(v14.new_logger().is_some());
        assert!(v14.distribute().is_none());
        let v15 = v1_5::PluginRoot {
            info: authored.info(),
            validate: authored.validate(),
            new_backbone: authored.new_backbone(),
            new_sample_augment: authored.new_sample_augment(),
            new_batch_augment: authored.new_batch_augment(),
            new_loss: authored.new_loss(),
            new_metric: authored.new_metric(),
            new_exporter: authored.new_exporter(),
            devices: authored
                .devices()
                .expect("the current root module has `devices`"),
            open_model: authored
                .open_model()
                .expect("the current root module has `open_model`"),
            tune: authored.tune().expect("the current root module has `tune`"),
            loggers: authored
                .loggers()
                .expect("the current root module has `loggers`"),
            validate_logger: authored
                .validate_logger()
                .expect("the current root module has `validate_logger`"),
            new_logger: authored
                .new_logger()
                .expect("the current root module has `new_logger`"),
            distribute: authored
                .distribute()
                .expect("the current root module has `distribute`"),
        }
        .leak_into_prefix()
        .upgrade();
        assert!(v15.distribute().is_some());
        assert!(v15.precision().is_none());
        assert!(authored.open_model().is_some());
        assert!(authored.tune().is_some());
        assert!(authored.loggers().is_some());
        assert!(authored.validate_logger().is_some());
        assert!(authored.new_logger().is_some());
        assert!(authored.distribute().is_some());
        assert!(authored.precision().is_some());
    }

    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            __root_module_symbol!(),
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
