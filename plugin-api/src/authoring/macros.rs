//! The macros a plugin calls: [`crate::register!`] for each component and
//! [`crate::export_plugin!`] once, with the hidden helpers they expand to.

/// Registers components with the plugin, one `Kind: Type` pair each. Kinds: `Backbone`,
/// `ImageAugment`, `TensorAugment`, `BatchAugment`, `Loss`, `Metric`, `Exporter`, `Logger`.
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
    (Logger, $ty:ty) => {
        $crate::authoring::Registration::logger::<$ty>()
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
