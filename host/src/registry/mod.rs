//! The plugin registry: discovers plugin files, loads them, and resolves components by name.
//!
//! [`Registry::load`] walks the search path ([`search`]), loads each file ([`load`], once
//! [`file_check`] found it complete), and indexes every component the plugins offer. Component
//! names are unique across all loaded plugins: two files offering the same name is an error naming
//! both. A discovered file that fails to load is recorded in [`Registry::failures`] and skipped; a
//! file named with `--plugin` that fails stops the load.
//!
//! Components are created through the registry and come back as the wrappers of [`components`],
//! which name the plugin and component in every error they return.

pub mod components;
pub mod file_check;
pub mod load;
pub mod search;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use abi_stable::std_types::{RString, RVec};
use clshost_plugin_api::{ComponentInfo, ComponentKind, LoggerInfo, ParamDoc};

pub use components::{
    Backbone, BatchAugment, ComponentError, CreateError, ExportedModel, Exporter, Logger, Loss,
    Metric, ModelFileError, Origin, SampleAugment,
};
pub use load::{DeviceSupport, Library, LoadError};
pub use search::{Candidate, Found, Location, SearchPath, Source};

/// A component kind as the host sees it: the ABI's [`ComponentKind`]s, and loggers, which the
/// ABI (1.4) lists and creates through entry points of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A trainable model.
    Backbone,
    /// A per-sample augmentation.
    SampleAugment,
    /// A batch augmentation.
    BatchAugment,
    /// A loss.
    Loss,
    /// A metric.
    Metric,
    /// A model exporter.
    Exporter,
    /// An experiment tracker (ABI 1.4).
    Logger,
}

impl Kind {
    /// Every kind, in the order the host lists them.
    pub const ALL: [Kind; 7] = [
        Kind::Backbone,
        Kind::SampleAugment,
        Kind::BatchAugment,
        Kind::Loss,
        Kind::Metric,
        Kind::Exporter,
        Kind::Logger,
    ];

    /// The name used in tables, JSON and messages (`backbone`, ..., `logger`).
    pub fn as_str(self) -> &'static str {
        match self.abi() {
            Some(kind) => kind.as_str(),
            None => "logger",
        }
    }

    /// The ABI's kind; `None` for loggers.
    pub fn abi(self) -> Option<ComponentKind> {
        Some(match self {
            Kind::Backbone => ComponentKind::Backbone,
            Kind::SampleAugment => ComponentKind::SampleAugment,
            Kind::BatchAugment => ComponentKind::BatchAugment,
            Kind::Loss => ComponentKind::Loss,
            Kind::Metric => ComponentKind::Metric,
            Kind::Exporter => ComponentKind::Exporter,
            Kind::Logger => return None,
        })
    }
}

impl From<ComponentKind> for Kind {
    fn from(kind: ComponentKind) -> Self {
        match kind {
            ComponentKind::Backbone => Kind::Backbone,
            ComponentKind::SampleAugment => Kind::SampleAugment,
            ComponentKind::BatchAugment => Kind::BatchAugment,
            ComponentKind::Loss => Kind::Loss,
            ComponentKind::Metric => Kind::Metric,
            ComponentKind::Exporter => Kind::Exporter,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin says about one of its components: a [`ComponentInfo`] or a [`LoggerInfo`].
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// Its kind.
    pub kind: Kind,
    /// The name recipes use.
    pub name: RString,
    /// One line saying what it does.
    pub description: RString,
    /// Its parameters, in declaration order.
    pub params: RVec<ParamDoc>,
    /// Its complete default config, as RON.
    pub default_config: RString,
}

impl From<ComponentInfo> for Described {
    fn from(info: ComponentInfo) -> Self {
        Described {
            kind: info.kind.into(),
            name: info.name,
            description: info.description,
            params: info.params,
            default_config: info.default_config,
        }
    }
}

impl From<LoggerInfo> for Described {
    fn from(info: LoggerInfo) -> Self {
        Described {
            kind: Kind::Logger,
            name: info.name,
            description: info.description,
            params: info.params,
            default_config: info.default_config,
        }
    }
}

/// A plugin file that could not be loaded, and why.
#[derive(Debug)]
pub struct Failure {
    /// The file.
    pub path: PathBuf,
    /// Where it was found.
    pub source: Source,
    /// Why it could not be loaded.
    pub error: LoadError,
}

/// A plugin file that failed to load, as `plugins --json` and `doctor --json` show it.
#[derive(Debug, serde::Serialize)]
pub struct FailureView {
    /// The plugin file.
    pub file: String,
    /// Where it was found (`--plugin`, a recipe, the search path).
    pub found_in: &'static str,
    /// Why it failed.
    pub error: String,
}

impl From<&Failure> for FailureView {
    fn from(f: &Failure) -> Self {
        FailureView {
            file: f.path.display().to_string(),
            found_in: f.source.as_str(),
            error: f.error.to_string(),
        }
    }
}

/// An error that stops plugin loading.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A `--plugin-dir` directory cannot be listed.
    #[error(transparent)]
    Dir(#[from] search::DirError),
    /// A file named with `--plugin` failed to load.
    #[error("plugin {}: {error}", path.display())]
    Required {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        error: LoadError,
    },
    /// Two plugins offer a component of the same name.
    #[error(
        "two plugins offer a component named `{name}`: {} ({first_plugin}) and {} \
         ({second_plugin}); remove one of them from the plugin search path",
        first.display(), second.display()
    )]
    Duplicate {
        /// The component name.
        name: String,
        /// The file found first.
        first: PathBuf,
        /// The plugin name in the first file.
        first_plugin: String,
        /// The file found second.
        second: PathBuf,
        /// The plugin name in the second file.
        second_plugin: String,
    },
}

/// A loaded plugin with where it came from.
#[derive(Debug)]
pub struct Plugin {
    /// The library.
    pub library: Library,
    /// Where it was found.
    pub source: Source,
}

/// Every loaded plugin and component.
#[derive(Debug)]
pub struct Registry {
    plugins: Vec<Plugin>,
    /// Component name -> (plugin index, component index).
    index: BTreeMap<String, (usize, usize)>,
    failures: Vec<Failure>,
    load_time: Duration,
}

/// A component together with the plugin offering it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The component's description.
    pub info: &'a Described,
    /// The plugin that offers it.
    pub plugin: &'a Plugin,
}

impl Registry {
    /// Discovers and loads every plugin on `search`.
    pub fn load(search: &SearchPath) -> Result<Registry, RegistryError> {
        let start = Instant::now();
        let mut registry = Registry {
            plugins: Vec::new(),
            index: BTreeMap::new(),
            failures: Vec::new(),
            load_time: Duration::ZERO,
        };
        for Candidate { path, source } in search.candidates()? {
            match load::load(&path) {
                Ok(library) => registry.add(Plugin { library, source })?,
                Err(error) if source.required() => {
                    return Err(RegistryError::Required { path, error });
                }
                Err(error) => {
                    tracing::warn!("skipping plugin {}: {error}", path.display());
                    registry.failures.push(Failure {
                        path,
                        source,
                        error,
                    });
                }
            }
        }
        registry.load_time = start.elapsed();
        Ok(registry)
    }

    fn add(&mut self, plugin: Plugin) -> Result<(), RegistryError> {
        let p = self.plugins.len();
        for (c, info) in plugin.library.components.iter().enumerate() {
            if let Some(&(other, _)) = self.index.get(info.name.as_str()) {
                let first = &self.plugins.get(other).unwrap_or(&plugin).library;
                return Err(RegistryError::Duplicate {
                    name: info.name.to_string(),
                    first: first.path.clone(),
                    first_plugin: first.info.name.to_string(),
                    second: plugin.library.path.clone(),
                    second_plugin: plugin.library.info.name.to_string(),
                });
            }
            self.index.insert(info.name.to_string(), (p, c));
        }
        tracing::debug!(
            "loaded plugin {} {} from {}",
            plugin.library.info.name,
            plugin.library.info.version,
            plugin.library.path.display()
        );
        self.plugins.push(plugin);
        Ok(())
    }

    /// The loaded plugins, in search order.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// Discovered files that failed to load.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// How long discovery and loading took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Every component, sorted by kind then name.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        let mut entries: Vec<Entry<'_>> = self
            .index
            .values()
            .map(|&(p, c)| self.entry(p, c))
            .collect();
        entries.sort_by(|a, b| (a.info.kind, &a.info.name).cmp(&(b.info.kind, &b.info.name)));
        entries
    }

    fn entry(&self, p: usize, c: usize) -> Entry<'_> {
        let plugin = &self.plugins[p];
        Entry {
            info: &plugin.library.components[c],
            plugin,
        }
    }

    /// The component named `name`, of any kind.
    pub fn get(&self, name: &str) -> Option<Entry<'_>> {
        self.index.get(name).map(|&(p, c)| self.entry(p, c))
    }

    /// Names close to `name` (of `kind`, when given), best first, for "did you mean" messages.
    pub fn suggestions(&self, name: &str, kind: Option<Kind>) -> Vec<&str> {
        let mut scored: Vec<(f64, &str)> = self
            .entries()
            .into_iter()
            .filter(|e| kind.is_none_or(|k| e.info.kind == k))
            .map(|e| {
                (
                    strsim::jaro_winkler(name, &e.info.name),
                    e.info.name.as_str(),
                )
            })
            .filter(|(score, _)| *score > 0.75)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }

    /// The component `name` of `kind`, or an error saying what exists instead.
    pub fn resolve(&self, kind: Kind, name: &str) -> Result<Entry<'_>, ResolveError> {
        match self.get(name) {
            Some(entry) if entry.info.kind == kind => Ok(entry),
            Some(entry) => Err(ResolveError::WrongKind {
                name: name.to_string(),
                wanted: kind,
                found: entry.info.kind,
            }),
            None => Err(ResolveError::Unknown {
                name: name.to_string(),
                kind,
                suggestions: self
                    .suggestions(name, Some(kind))
                    .into_iter()
                    .map(String::from)
                    .collect(),
                available: self
                    .entries()
                    .into_iter()
                    .filter(|e| e.info.kind == kind)
                    .map(|e| e.info.name.to_string())
                    .collect(),
            }),
        }
    }
}

/// A component name that does not resolve.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    /// No loaded plugin offers the name.
    #[error("{}", unknown_message(name, *kind, suggestions, available))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The kind asked for.
        kind: Kind,
        /// Close names of that kind.
        suggestions: Vec<String>,
        /// Every name of that kind.
        available: Vec<String>,
    },
    /// The name exists but is another kind of component.
    #[error("`{name}` is a {found}, not a {wanted}")]
    WrongKind {
        /// The name asked for.
        name: String,
        /// The kind asked for.
        wanted: Kind,
        /// The kind it is.
        found: Kind,
    },
}

fn unknown_message(name: &str, kind: Kind, suggestions: &[String], available: &[String]) -> String {
    let mut message = format!("no {kind} named `{name}`");
    if let Some(best) = suggestions.first() {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    if available.is_empty() {
        message.push_str(&format!(
            " (no loaded plugin offers a {kind}; see `clshost plugins`)"
        ));
    } else {
        message.push_str(&format!(" (available: {})", available.join(", ")));
    }
    message
}
