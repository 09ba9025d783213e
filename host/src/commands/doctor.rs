//! `clshost doctor [--json]`: what this installation can do, for the user whose GPU isn't used.
//!
//! It reports the clshost and plugin ABI versions, the CPU count, the MPI library and the job
//! this process is in (data-parallel training: `mpirun -np 2 clshost doctor` shows each rank),
//! every place on the plugin search path with the plugin files found there (and which are
//! shadowed), the plugins loaded and those that failed with the reason, and for each backend
//! (`cpu`, `wgpu`, `cuda`, `libtorch`, and any other a plugin reports) which plugins were built
//! with it and the devices it sees, or why none. A short verdict per backend ends the text. It exits 0 whatever it finds: a machine without a GPU is a
//! finding, not a failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use clap::Args;
use clshost_plugin_api::{ABI_VERSION_STRING, BackendReport, DeviceEntry};
use serde::Serialize;

use crate::distributed::{Launcher, World, online_cpus};
use crate::output;
use crate::recipe::validate::rebuild_flags;
use crate::registry::{DeviceSupport, FailureView, Kind, Location, Plugin, Registry, SearchPath};

/// The backends first-party backbones can be built with, always shown in the verdict.
const KNOWN_BACKENDS: [&str; 4] = ["cpu", "wgpu", "cuda", "libtorch"];

/// Arguments of `clshost doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `clshost doctor`.
pub fn run(search: &SearchPath, args: &DoctorArgs) -> Result<()> {
    let report = Report::gather(search);
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.text()
    };
    output::print(&text)?;
    Ok(())
}

/// Everything `clshost doctor` found; `--json` prints it as is.
#[derive(Serialize)]
struct Report {
    clshost_version: &'static str,
    abi: &'static str,
    cpu: Cpu,
    distributed: Distributed,
    search_path: Vec<LocationView>,
    /// Why the plugins could not be loaded at all (two plugins offering one name, a `--plugin`
    /// file that fails), when that happened.
    registry_error: Option<String>,
    plugins: Vec<PluginView>,
    failures: Vec<FailureView>,
    backends: Vec<BackendView>,
    verdict: Vec<String>,
}

#[derive(Serialize)]
struct Cpu {
    /// Logical CPUs the system has online, where the platform says (`/proc/cpuinfo`).
    logical: Option<usize>,
    /// What `std::thread::available_parallelism` allows this process (affinity, cgroup quota):
    /// the thread count the data loader and the CPU backend default to.
    available_parallelism: Option<usize>,
}

/// Data-parallel training: the MPI library this build uses, and the job this process is in.
#[derive(Serialize)]
struct Distributed {
    /// The MPI library (`Open MPI v4.1.4`); `None` in a build without the `mpi` feature.
    mpi: Option<String>,
    /// The launcher that started this process, when one did.
    launcher: Option<String>,
    /// This process's rank in its job.
    rank: u32,
    /// The number of ranks in its job.
    size: u32,
    /// The ranks of its job on this machine, itself included.
    local_ranks: u32,
    /// Why this machine runs more CPU threads than it has CPUs, when it does.
    oversubscribed: Option<String>,
    /// Why this process cannot take part in its job, when it cannot.
    problem: Option<String>,
}

impl Distributed {
    fn gather() -> Distributed {
        let launcher = Launcher::from_env().map(|l| l.name);
        let world = World::join();
        let problem = world.as_ref().err().map(ToString::to_string);
        let world = world.unwrap_or_else(|_| World::single());
        Distributed {
            mpi: World::library(),
            launcher,
            rank: world.rank(),
            size: world.size(),
            local_ranks: world.local_size(),
            oversubscribed: world.oversubscription(),
            problem,
        }
    }

    fn text(&self) -> String {
        let library = match &self.mpi {
            Some(mpi) => format!("MPI ({mpi})"),
            None => "not built with MPI (rebuild with `--features clshost/mpi`)".to_string(),
        };
        let job = match (&self.problem, &self.launcher) {
            (Some(problem), _) => problem.clone(),
            (None, Some(launcher)) => format!(
                "this process is rank {} of {} ({} on this machine), started by {launcher}",
                self.rank, self.size, self.local_ranks
            ),
            (None, None) => "started directly: one process (launch with `mpirun -np N`)".into(),
        };
        let warning = self
            .oversubscribed
            .as_ref()
            .map_or(String::new(), |w| format!("  warning: {w}\n"));
        format!("Data-parallel training: {library}; {job}\n{warning}")
    }
}

#[derive(Serialize)]
struct LocationView {
    path: String,
    source: &'static str,
    exists: bool,
    /// Why the directory cannot be listed, when it cannot.
    error: Option<String>,
    files: Vec<FileView>,
}

#[derive(Serialize)]
struct FileView {
    file: String,
    shadowed_by: Option<String>,
}

#[derive(Serialize)]
struct PluginView {
    name: String,
    version: String,
    abi: String,
    abi_minor: u32,
    file: String,
    found_in: &'static str,
    components: BTreeMap<&'static str, usize>,
    /// `reported`, `not reported (ABI 1.0)`, or the error of its device report.
    devices: String,
}

/// One backend, with each plugin built with it.
#[derive(Serialize)]
struct BackendView {
    backend: String,
    plugins: Vec<ProviderView>,
}

#[derive(Serialize)]
struct ProviderView {
    plugin: String,
    devices: Vec<DeviceView>,
    problem: Option<String>,
}

#[derive(Serialize)]
struct DeviceView {
    id: String,
    name: String,
    detail: String,
}

impl From<&DeviceEntry> for DeviceView {
    fn from(d: &DeviceEntry) -> Self {
        DeviceView {
            id: d.id.to_string(),
            name: d.name.to_string(),
            detail: d.detail.to_string(),
        }
    }
}

impl Report {
    fn gather(search: &SearchPath) -> Report {
        let (registry, registry_error) = match Registry::load(search) {
            Ok(registry) => (Some(registry), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let plugins = registry.as_ref().map_or(&[][..], Registry::plugins);
        let supports: Vec<DeviceSupport> = plugins.iter().map(|p| p.library.devices()).collect();
        let backends = backends(plugins, &supports);
        let verdict = verdict(&backends);
        Report {
            clshost_version: env!("CARGO_PKG_VERSION"),
            abi: ABI_VERSION_STRING,
            cpu: Cpu {
                logical: online_cpus(),
                available_parallelism: std::thread::available_parallelism().ok().map(usize::from),
            },
            distributed: Distributed::gather(),
            search_path: search.survey().iter().map(LocationView::new).collect(),
            registry_error,
            plugins: plugins
                .iter()
                .zip(&supports)
                .map(|(p, s)| PluginView::new(p, s))
                .collect(),
            failures: registry
                .iter()
                .flat_map(Registry::failures)
                .map(FailureView::from)
                .collect(),
            backends,
            verdict,
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "clshost {} (plugin ABI {})",
            self.clshost_version, self.abi
        );
        let count = |n: Option<usize>| n.map_or("unknown".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "CPUs: {} logical, {} available to this process\n",
            count(self.cpu.logical),
            count(self.cpu.available_parallelism)
        );
        out.push_str(&self.distributed.text());
        out.push('\n');

        out.push_str("Plugin search path, in order:\n");
        for (i, l) in self.search_path.iter().enumerate() {
            let state = match (&l.error, l.files.len()) {
                (Some(e), _) => e.clone(),
                (None, 0) => "no plugin files".to_string(),
                (None, 1) => "1 plugin file".to_string(),
                (None, n) => format!("{n} plugin files"),
            };
            let _ = writeln!(out, "  {}. {} ({}): {state}", i + 1, l.path, l.source);
            for f in &l.files {
                match &f.shadowed_by {
                    Some(first) => {
                        let _ = writeln!(out, "       {} (shadowed by {first})", f.file);
                    }
                    None => {
                        let _ = writeln!(out, "       {}", f.file);
                    }
                }
            }
        }

        let _ = writeln!(out, "\nPlugins loaded: {}", self.plugins.len());
        if let Some(e) = &self.registry_error {
            let _ = writeln!(out, "  cannot load the plugins: {e}");
        }
        for p in &self.plugins {
            let components: Vec<String> = p
                .components
                .iter()
                .map(|(kind, n)| match (n, kind.ends_with('s')) {
                    (1, _) => format!("1 {kind}"),
                    (n, true) => format!("{n} {kind}es"),
                    (n, false) => format!("{n} {kind}s"),
                })
                .collect();
            let _ = writeln!(
                out,
                "  {} {} (ABI {}): {}; devices {}\n      {}",
                p.name,
                p.version,
                p.abi,
                components.join(", "),
                p.devices,
                p.file
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "Not loaded: {}", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(out, "  {} ({}): {}", f.file, f.found_in, f.error);
            }
        }

        out.push_str("\nBackends:\n");
        if self.backends.is_empty() {
            out.push_str("  no loaded plugin reports any\n");
        }
        for b in &self.backends {
            let _ = writeln!(out, "  {}", b.backend);
            for p in &b.plugins {
                let _ = writeln!(out, "    in {}:", p.plugin);
                for d in &p.devices {
                    let _ = writeln!(out, "      {:<8} {} [{}]", d.id, d.name, d.detail);
                }
                if let Some(problem) = &p.problem {
                    let _ = writeln!(out, "      {problem}");
                }
            }
        }

        out.push_str("\nVerdict:\n");
        for line in &self.verdict {
            let _ = writeln!(out, "  {line}");
        }
        out
    }
}

impl LocationView {
    fn new(l: &Location) -> Self {
        let (error, files) = match &l.listing {
            Ok(files) => (
                None,
                files
                    .iter()
                    .map(|f| FileView {
                        file: f.path.display().to_string(),
                        shadowed_by: f.shadowed_by.as_ref().map(|p| p.display().to_string()),
                    })
                    .collect(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Some("does not exist".to_string()), Vec::new())
            }
            Err(e) => (Some(format!("cannot be listed: {e}")), Vec::new()),
        };
        LocationView {
            path: l.path.display().to_string(),
            source: l.source.as_str(),
            exists: l.path.exists(),
            error,
            files,
        }
    }
}

impl PluginView {
    fn new(p: &Plugin, support: &DeviceSupport) -> Self {
        let lib = &p.library;
        let components = Kind::ALL
            .iter()
            .map(|&kind| {
                let n = lib.components.iter().filter(|c| c.kind == kind).count();
                (kind.as_str(), n)
            })
            .filter(|&(_, n)| n > 0)
            .collect();
        let devices = match support {
            DeviceSupport::NotReported => {
                format!("not reported (ABI {}.{})", lib.abi.major, lib.abi.minor)
            }
            DeviceSupport::Failed(e) => format!("report failed: {e}"),
            DeviceSupport::Reported(r) if r.is_empty() => "reported: no backends".to_string(),
            DeviceSupport::Reported(r) => {
                let names: Vec<&str> = r.iter().map(|b| b.backend.as_str()).collect();
                format!("reported: {}", names.join(", "))
            }
        };
        PluginView {
            name: lib.info.name.to_string(),
            version: lib.info.version.to_string(),
            abi: format!("{}.{}", lib.abi.major, lib.abi.minor),
            abi_minor: lib.abi.minor,
            file: lib.path.display().to_string(),
            found_in: p.source.as_str(),
            components,
            devices,
        }
    }
}

/// Every backend some plugin reports, the first-party ones first, each with its providers.
fn backends(plugins: &[Plugin], supports: &[DeviceSupport]) -> Vec<BackendView> {
    let mut out: Vec<BackendView> = Vec::new();
    for (plugin, support) in plugins.iter().zip(supports) {
        let DeviceSupport::Reported(reports) = support else {
            continue;
        };
        for report in reports {
            let provider = provider(plugin, report);
            match out
                .iter_mut()
                .find(|b| b.backend == report.backend.as_str())
            {
                Some(b) => b.plugins.push(provider),
                None => out.push(BackendView {
                    backend: report.backend.to_string(),
                    plugins: vec![provider],
                }),
            }
        }
    }
    out.sort_by_key(|b| {
        let known = KNOWN_BACKENDS.iter().position(|k| *k == b.backend);
        (known.unwrap_or(KNOWN_BACKENDS.len()), b.backend.clone())
    });
    out
}

fn provider(plugin: &Plugin, report: &BackendReport) -> ProviderView {
    ProviderView {
        plugin: plugin.library.info.name.to_string(),
        devices: report.devices.iter().map(DeviceView::from).collect(),
        problem: report.problem.as_ref().map(|p| p.to_string()).into_option(),
    }
}

/// One line per backend: its devices, or why there are none.
fn verdict(backends: &[BackendView]) -> Vec<String> {
    let mut lines = Vec::new();
    for name in KNOWN_BACKENDS {
        if !backends.iter().any(|b| b.backend == name) {
            let flags = rebuild_flags(name).unwrap_or_else(|| format!("`--features {name}`"));
            lines.push(format!(
                "{name}: not built into any loaded plugin (first-party plugins: rebuild with \
                 {flags})"
            ));
        }
    }
    for b in backends {
        let mut devices: Vec<&DeviceView> = Vec::new();
        for d in b.plugins.iter().flat_map(|p| &p.devices) {
            if !devices.iter().any(|seen| seen.id == d.id) {
                devices.push(d);
            }
        }
        let line = if devices.is_empty() {
            let reasons: Vec<&str> = b
                .plugins
                .iter()
                .filter_map(|p| p.problem.as_deref())
                .collect();
            match reasons.first() {
                Some(reason) => format!("{}: not available: {reason}", b.backend),
                None => format!("{}: not available (no reason given)", b.backend),
            }
        } else {
            let unit = if devices.len() == 1 {
                "device"
            } else {
                "devices"
            };
            let listed: Vec<String> = devices
                .iter()
                .map(|d| format!("{} = {} [{}]", d.id, d.name, d.detail))
                .collect();
            format!(
                "{}: {} {unit}: {}",
                b.backend,
                devices.len(),
                listed.join("; ")
            )
        };
        lines.push(line);
    }
    let order = |line: &String| {
        KNOWN_BACKENDS
            .iter()
            .position(|k| line.starts_with(&format!("{k}:")))
            .unwrap_or(KNOWN_BACKENDS.len())
    };
    lines.sort_by_key(order);
    lines
}
