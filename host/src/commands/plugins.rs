//! `clshost plugins`: what the plugin search path offers.
//!
//! Without a name it prints a table of every component (kind, name, plugin, version,
//! description) and how long loading took; with a name it shows that component's parameters,
//! defaults and documentation. `--json` prints the same as JSON for scripts.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::output;
use crate::registry::{Entry, FailureView, Registry, SearchPath};

/// Arguments of `clshost plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Show this component's parameters, defaults and documentation.
    pub name: Option<String>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `clshost plugins`.
pub fn run(search: &SearchPath, args: &PluginsArgs) -> Result<()> {
    let registry = Registry::load(search)?;
    let text = match (&args.name, args.json) {
        (None, false) => listing(&registry, search),
        (None, true) => json(&Listing::new(&registry, search))?,
        (Some(name), json_out) => {
            let entry = registry
                .get(name)
                .with_context(|| unknown(&registry, name))?;
            if json_out {
                json(&ComponentView::new(&entry))?
            } else {
                detail(&entry)
            }
        }
    };
    output::print(&text)?;
    Ok(())
}

fn unknown(registry: &Registry, name: &str) -> String {
    let mut message = format!("no component named `{name}`");
    if let Some(best) = registry.suggestions(name, None).first() {
        let _ = write!(message, "; did you mean `{best}`?");
    }
    message.push_str(" (run `clshost plugins` for the list)");
    message
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// The table of every component, plus a footer with counts, load time and failures.
fn listing(registry: &Registry, search: &SearchPath) -> String {
    let mut out = String::new();
    let entries = registry.entries();
    if entries.is_empty() {
        out.push_str("No plugins found. Searched:\n");
        for dir in search.directories() {
            let _ = writeln!(out, "  {} ({})", dir.path.display(), dir.source.as_str());
        }
    } else {
        let mut t = output::table(&["KIND", "NAME", "PLUGIN", "VERSION", "DESCRIPTION"]);
        for e in &entries {
            t.add_row(vec![
                e.info.kind.as_str(),
                e.info.name.as_str(),
                e.plugin.library.info.name.as_str(),
                e.plugin.library.info.version.as_str(),
                e.info.description.as_str(),
            ]);
        }
        out.push_str(&output::render(&t));
    }
    let _ = writeln!(
        out,
        "\n{} components from {} plugins, loaded in {:.1} ms",
        entries.len(),
        registry.plugins().len(),
        registry.load_time().as_secs_f64() * 1e3
    );
    for f in registry.failures() {
        let _ = writeln!(out, "not loaded: {}: {}", f.path.display(), f.error);
    }
    out
}

/// One component's parameters, defaults and documentation.
fn detail(entry: &Entry<'_>) -> String {
    let info = entry.info;
    let lib = &entry.plugin.library;
    let mut out = format!(
        "{} ({}) from plugin {} {}\n  {}\n  file: {}\n\n",
        info.name,
        info.kind,
        lib.info.name,
        lib.info.version,
        info.description,
        lib.path.display()
    );
    if info.params.is_empty() {
        out.push_str("No parameters.\n");
    } else {
        let mut t = output::table(&["PARAMETER", "DEFAULT", "DESCRIPTION"]);
        for p in info.params.iter() {
            t.add_row(vec![p.name.as_str(), p.default.as_str(), p.doc.as_str()]);
        }
        out.push_str(&output::render(&t));
    }
    let _ = writeln!(out, "\nDefault params (RON):\n{}", info.default_config);
    out
}

/// `clshost plugins --json`.
#[derive(Serialize)]
struct Listing<'a> {
    components: Vec<ComponentView<'a>>,
    plugins: Vec<PluginView<'a>>,
    failures: Vec<FailureView>,
    search_path: Vec<SearchDirView>,
    load_ms: f64,
}

#[derive(Serialize)]
struct ComponentView<'a> {
    kind: &'a str,
    name: &'a str,
    plugin: &'a str,
    version: &'a str,
    description: &'a str,
    file: String,
    params: Vec<ParamView<'a>>,
    default_config: &'a str,
}

#[derive(Serialize)]
struct ParamView<'a> {
    name: &'a str,
    default: &'a str,
    doc: &'a str,
}

#[derive(Serialize)]
struct PluginView<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    abi: String,
    file: String,
    found_in: &'a str,
}

#[derive(Serialize)]
struct SearchDirView {
    dir: String,
    source: &'static str,
}

impl<'a> ComponentView<'a> {
    fn new(e: &Entry<'a>) -> Self {
        let lib = &e.plugin.library;
        ComponentView {
            kind: e.info.kind.as_str(),
            name: &e.info.name,
            plugin: &lib.info.name,
            version: &lib.info.version,
            description: &e.info.description,
            file: lib.path.display().to_string(),
            params: e
                .info
                .params
                .iter()
                .map(|p| ParamView {
                    name: &p.name,
                    default: &p.default,
                    doc: &p.doc,
                })
                .collect(),
            default_config: &e.info.default_config,
        }
    }
}

impl<'a> Listing<'a> {
    fn new(registry: &'a Registry, search: &SearchPath) -> Self {
        Listing {
            components: registry.entries().iter().map(ComponentView::new).collect(),
            plugins: registry
                .plugins()
                .iter()
                .map(|p| PluginView {
                    name: &p.library.info.name,
                    version: &p.library.info.version,
                    description: &p.library.info.description,
                    abi: format!("{}.{}", p.library.abi.major, p.library.abi.minor),
                    file: p.library.path.display().to_string(),
                    found_in: p.source.as_str(),
                })
                .collect(),
            failures: registry.failures().iter().map(FailureView::from).collect(),
            search_path: search
                .directories()
                .into_iter()
                .map(|d| SearchDirView {
                    dir: d.path.display().to_string(),
                    source: d.source.as_str(),
                })
                .collect(),
            load_ms: registry.load_time().as_secs_f64() * 1e3,
        }
    }
}
