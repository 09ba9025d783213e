//! Opening one plugin library and checking that this host can talk to it.
//!
//! The checks run in an order where each one can only be reached when the previous one passed,
//! so every failure is reported as one line that names the cause:
//!
//! 1. the file is a complete library: everything its headers name lies inside it
//!    ([`file_check`]), so the loader cannot crash on a half-finished copy;
//! 2. the file opens as a shared library;
//! 3. it exports the `clshost_plugin_abi` handshake with the right magic number;
//! 4. its ABI major version equals the host's;
//! 5. abi_stable's own header, version and layout checks of the root module pass, against the
//!    layout of the plugin's minor version (a 1.0 or 1.1 plugin is checked against that minor's
//!    frozen root module and read without the fields later minors appended);
//! 6. its `info()` answers, and (ABI 1.4) its `loggers()`.
//!
//! Libraries are never unloaded: component objects and error messages may point into them.

use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, RawLibrary, lib_header_from_raw_library};
use clshost_plugin_api::{
    ABI_MAJOR, ABI_MINOR, AbiVersion, BackendReport, HANDSHAKE_SYMBOL, PluginError, PluginInfo,
    PluginRootRef, v1_0, v1_1, v1_2, v1_3, v1_4, v1_5,
};

use super::Described;
use super::file_check::{self, FileError};

/// Why a library could not be loaded as a plugin.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoadError {
    /// The file is empty, truncated, damaged or not a library at all.
    #[error(transparent)]
    File(#[from] FileError),
    /// The dynamic loader refused the file.
    #[error("cannot be opened: {0}")]
    Open(String),
    /// The file has no handshake symbol.
    #[error("not a clshost plugin (it exports no `clshost_plugin_abi` handshake)")]
    NotAPlugin,
    /// The handshake symbol exists but returns garbage.
    #[error("not a clshost plugin (its `clshost_plugin_abi` handshake has the wrong magic number)")]
    BadMagic,
    /// The plugin was built for another ABI major version.
    #[error(
        "built for plugin ABI {plugin_major}.{plugin_minor}, but this clshost uses ABI \
         {ABI_MAJOR}.{ABI_MINOR}: rebuild it against clshost-plugin-api {ABI_MAJOR}.x"
    )]
    AbiMajor {
        /// The plugin's major version.
        plugin_major: u32,
        /// The plugin's minor version.
        plugin_minor: u32,
    },
    /// The plugin uses an abi_stable version whose header this host cannot read.
    #[error("built with an incompatible abi_stable version: {0}")]
    AbiStable(String),
    /// The layout of the plugin's ABI types differs from the host's despite equal versions.
    #[error(
        "ABI layout mismatch: it says ABI {plugin_major}.{plugin_minor} but its types differ from \
         this clshost's (built against a modified clshost-plugin-api?); rebuild it against \
         clshost-plugin-api {ABI_MAJOR}.{ABI_MINOR} (run with -vv for the layout report)"
    )]
    Layout {
        /// The plugin's major version.
        plugin_major: u32,
        /// The plugin's minor version.
        plugin_minor: u32,
    },
    /// The root module failed to initialize or to describe itself.
    #[error("failed to start: {0}")]
    Init(String),
}

/// A loaded plugin library.
pub struct Library {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Its ABI version from the handshake.
    pub abi: AbiVersion,
    /// Its root module.
    pub root: PluginRootRef,
    /// What it says about itself; its `components` are moved into [`Library::components`].
    pub info: PluginInfo,
    /// Every component it offers, loggers included, in the order it lists them.
    pub components: Vec<Described>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("abi", &self.abi)
            .field("info", &self.info)
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

/// What a plugin says about the compute devices its backends can use.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceSupport {
    /// The plugin was built for ABI 1.0, before plugins reported devices.
    NotReported,
    /// Its device report failed; the one-line reason.
    Failed(String),
    /// One report per backend compiled into it (none for plugins without backbones).
    Reported(Vec<BackendReport>),
}

impl Library {
    /// Asks the plugin which backends it was compiled with and which devices they see. Plugins
    /// older than ABI 1.1 are not asked; an error or a panic in the plugin becomes
    /// [`DeviceSupport::Failed`].
    pub fn devices(&self) -> DeviceSupport {
        match self.root.devices() {
            None => DeviceSupport::NotReported,
            Some(devices) => match devices().into_result() {
                Ok(reports) => DeviceSupport::Reported(reports.into_vec()),
                Err(e) => DeviceSupport::Failed(e.to_string()),
            },
        }
    }
}

/// The handshake function every plugin exports.
type Handshake = extern "C" fn() -> AbiVersion;

/// Loads the library at `path` and runs every check of this module on it.
pub fn load(path: &Path) -> Result<Library, LoadError> {
    file_check::check(path)?;
    let raw = RawLibrary::load_at(path).map_err(|e| LoadError::Open(open_reason(&e)))?;
    // Never unloaded: objects and strings from the plugin may outlive any handle we keep.
    let raw: &'static RawLibrary = Box::leak(Box::new(raw));

    // SAFETY: the handshake's signature is fixed forever by the ABI crate (see `AbiVersion`);
    // a library exporting this symbol name promises it.
    let handshake =
        unsafe { raw.get::<Handshake>(HANDSHAKE_SYMBOL) }.map_err(|_| LoadError::NotAPlugin)?;
    let abi = handshake();
    if abi.magic != AbiVersion::MAGIC {
        return Err(LoadError::BadMagic);
    }
    if abi.major != ABI_MAJOR {
        return Err(LoadError::AbiMajor {
            plugin_major: abi.major,
            plugin_minor: abi.minor,
        });
    }

    // SAFETY: the library stays loaded for the life of the process (leaked above).
    let header = unsafe { lib_header_from_raw_library(raw) }.map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => {
            LoadError::Init("it exports no abi_stable root module".to_string())
        }
        other => LoadError::AbiStable(first_line(&other.to_string())),
    })?;
    let root = match abi.minor {
        0 => header
            .init_root_module::<v1_0::PluginRootRef>()
            .map(v1_0::PluginRootRef::upgrade),
        1 => header
            .init_root_module::<v1_1::PluginRootRef>()
            .map(v1_1::PluginRootRef::upgrade),
        2 => header
            .init_root_module::<v1_2::PluginRootRef>()
            .map(v1_2::PluginRootRef::upgrade),
        3 => header
            .init_root_module::<v1_3::PluginRootRef>()
            .map(v1_3::PluginRootRef::upgrade),
        4 => header
            .init_root_module::<v1_4::PluginRootRef>()
            .map(v1_4::PluginRootRef::upgrade),
        5 => header
            .init_root_module::<v1_5::PluginRootRef>()
            .map(v1_5::PluginRootRef::upgrade),
        _ => header.init_root_module::<PluginRootRef>(),
    };
    let root = root.map_err(|e| match e {
        LibraryError::AbiInstability(report) => {
            tracing::debug!("layout report for {}:\n{report}", path.display());
            LoadError::Layout {
                plugin_major: abi.major,
                plugin_minor: abi.minor,
            }
        }
        other => LoadError::Init(first_line(&other.to_string())),
    })?;
    let init = |e: PluginError| LoadError::Init(e.to_string());
    let mut info = (root.info())().into_result().map_err(init)?;
    let mut components: Vec<Described> = std::mem::take(&mut info.components)
        .into_iter()
        .map(Described::from)
        .collect();
    if let Some(loggers) = root.loggers() {
        let loggers = loggers().into_result().map_err(init)?;
        components.extend(loggers.into_iter().map(Described::from));
    }
    Ok(Library {
        path: path.to_path_buf(),
        abi,
        root,
        info,
        components,
    })
}

/// The loader's reason, without the path (the caller prints it once), with what to do when it
/// is about PyTorch's libraries.
fn open_reason(error: &LibraryError) -> String {
    let reason = match error {
        LibraryError::OpenError { err, .. } => err.to_string(),
        other => first_line(&other.to_string()),
    };
    match libtorch_hint(&reason) {
        Some(hint) => format!("{reason}; {hint}"),
        None => reason,
    }
}

/// What to do when the dynamic loader cannot resolve PyTorch's libraries, which a plugin built
/// with the LibTorch backend links: they are missing, or they are another version than the one
/// the plugin was built against.
fn libtorch_hint(reason: &str) -> Option<&'static str> {
    let missing = ["libtorch", "libc10"]
        .iter()
        .any(|lib| reason.starts_with(lib) && reason.contains("cannot open shared object"));
    // Itanium-mangled names in the at::, c10:: and torch:: namespaces.
    let mismatched = reason.contains("undefined symbol")
        && ["_ZN2at", "_ZN3c10", "_ZN5torch", "_ZNK2at", "_ZNK3c10"]
            .iter()
            .any(|ns| reason.contains(ns));
    if missing {
        Some(
            "the plugin was built with the LibTorch backend and its libtorch is gone: run \
             `scripts/setup-libtorch.sh` (it installs torch under target/libtorch) and rebuild \
             the plugin, or add a torch installation's `torch/lib` to LD_LIBRARY_PATH",
        )
    } else if mismatched {
        Some(
            "the libtorch found is not the version the plugin was built against: rebuild the \
             plugin after `eval \"$(scripts/setup-libtorch.sh)\"`",
        )
    } else {
        None
    }
}

/// The first non-empty line of a multi-line message.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::libtorch_hint;

    #[test]
    fn a_missing_or_mismatched_libtorch_says_what_to_install() {
        let missing = libtorch_hint(
            "libtorch_cpu.so: cannot open shared object file: No such file or directory",
        )
        .unwrap();
        assert!(missing.contains("scripts/setup-libtorch.sh"), "{missing}");
        let mismatched = libtorch_hint(
            "/p/libclshost_plugin_resnet.so: undefined symbol: _ZN2at4_ops10conv2d4callERKNS_6TensorE",
        )
        .unwrap();
        assert!(mismatched.contains("not the version"), "{mismatched}");
        for other in [
            "libfoo.so: cannot open shared object file: No such file or directory",
            "/p/x.so: undefined symbol: _ZN3foo3barEv",
            "file too short",
        ] {
            assert_eq!(libtorch_hint(other), None, "{other}");
        }
    }
}
