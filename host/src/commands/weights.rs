//! `clshost weights`: the pretrained checkpoints clshost knows, and fetching one.
//!
//! `clshost weights list` prints every torchvision checkpoint of the zoo (name, architecture,
//! published accuracy, eval preprocessing, file) and whether it is cached and where, and the
//! cache folders (the Hugging Face Hub's among them);
//! `clshost weights info NAME` shows one in detail, with its class names; `clshost weights
//! fetch NAME|hf:REPO|URL|PATH` resolves a weight source as training will (a cache, PyTorch's
//! or the Hub's cache, or a download) and prints the file's path. See [`crate::weights`] for the
//! sources and caches.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output;
use crate::weights::cache::{CACHE_VAR, MIRROR_VAR, TORCH_HOME_VAR};
use crate::weights::hub::{ENDPOINT_VAR, HOME_VAR, HUB_CACHE_VAR};
use crate::weights::zoo::{self, CHECKPOINTS, DEFAULT_TAG, Preprocessing};
use crate::weights::{Cache, Checkpoint, HubError, Origin, Resolved, SourceError, WeightSource};

/// How many class names `weights info` prints as text.
const SHOWN_CLASSES: usize = 5;

/// Arguments of `clshost weights`.
#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WeightsCommand,
}

/// The `weights` subcommands.
#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Every known checkpoint, with its accuracy, eval preprocessing, and where it is cached.
    List(ListArgs),
    /// One checkpoint in detail: URL, hash, accuracy, preprocessing, classes, cache.
    Info(InfoArgs),
    /// Find or download a checkpoint and print the path of its file.
    Fetch(FetchArgs),
}

/// Arguments of `clshost weights list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `clshost weights info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The checkpoint: `resnet50.IMAGENET1K_V2`, `resnet50.DEFAULT`, with or without
    /// `torchvision:` in front.
    pub name: String,
    /// Print one JSON object (with every class name) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `clshost weights fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// A weight source: a checkpoint name (`resnet50.DEFAULT`, `torchvision:` optional), a
    /// Hugging Face Hub file (`hf:timm/resnet50.a1_in1k`), an `https://`/`http://` or `file://`
    /// URL, or a path.
    pub source: String,
    /// Print one JSON object (source, path, where it was found) instead of the path.
    #[arg(long)]
    pub json: bool,
}

/// Runs `clshost weights`; `quiet` hides the download progress bar.
pub fn run(args: &WeightsArgs, quiet: bool) -> Result<()> {
    let cache = Cache::from_env()?;
    let text = match &args.command {
        WeightsCommand::List(a) => list(&cache, a)?,
        WeightsCommand::Info(a) => info(&cache, a)?,
        WeightsCommand::Fetch(a) => fetch(&cache, a, quiet)?,
    };
    output::print(&text)?;
    Ok(())
}

/// The caches and every checkpoint, as `weights list --json` prints them.
#[derive(Serialize)]
struct Listing {
    cache_dir: String,
    torch_checkpoints: Option<String>,
    mirror: Option<String>,
    hub_cache: String,
    hub_endpoint: String,
    weights: Vec<Entry>,
}

/// One checkpoint, as `weights list --json` and `weights info --json` print it.
#[derive(Serialize)]
struct Entry {
    name: String,
    arch: &'static str,
    tag: &'static str,
    default: bool,
    url: String,
    download_url: String,
    file: &'static str,
    sha256_prefix: &'static str,
    acc1: f64,
    acc5: f64,
    params: u64,
    preprocessing: Preprocessing,
    classes: usize,
    /// Every class name, in output order (`info` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    class_names: Option<&'static [&'static str]>,
    cached: Option<CachedView>,
}

/// Where a checkpoint's file is.
#[derive(Serialize)]
struct CachedView {
    path: String,
    origin: Origin,
}

impl From<Resolved> for CachedView {
    fn from(r: Resolved) -> Self {
        CachedView {
            path: r.path.display().to_string(),
            origin: r.origin,
        }
    }
}

impl Entry {
    fn new(cache: &Cache, c: &'static Checkpoint) -> Entry {
        Entry {
            name: format!("torchvision:{}", c.name()),
            arch: c.arch,
            tag: c.tag,
            default: c.is_default(),
            url: c.url(),
            download_url: cache.url_of(c),
            file: c.file,
            sha256_prefix: c.sha256_prefix,
            acc1: c.acc1,
            acc5: c.acc5,
            params: c.params,
            preprocessing: c.preprocessing,
            classes: c.classes().len(),
            class_names: None,
            cached: cache.find(c.file).map(CachedView::from),
        }
    }

    /// `resize 232, crop 224`.
    fn eval(&self) -> String {
        format!(
            "resize {}, crop {}",
            self.preprocessing.resize, self.preprocessing.crop
        )
    }
}

fn list(cache: &Cache, args: &ListArgs) -> Result<String> {
    let listing = Listing {
        cache_dir: cache.dir().display().to_string(),
        torch_checkpoints: cache.torch_checkpoints().map(|d| d.display().to_string()),
        mirror: cache.mirror().map(str::to_string),
        hub_cache: cache.hub().cache_dir().display().to_string(),
        hub_endpoint: cache.hub().endpoint().to_string(),
        weights: CHECKPOINTS.iter().map(|c| Entry::new(cache, c)).collect(),
    };
    if args.json {
        return Ok(serde_json::to_string_pretty(&listing)? + "\n");
    }
    let mut t = output::table(&["NAME", "ARCH", "ACC@1", "EVAL", "FILE", "CACHED"]);
    for e in &listing.weights {
        t.add_row(vec![
            e.name.clone(),
            e.arch.to_string(),
            format!("{:.3}", e.acc1),
            e.eval(),
            e.file.to_string(),
            e.cached
                .as_ref()
                .map_or_else(|| "no".to_string(), |c| c.path.clone()),
        ]);
    }
    let mut out = output::render(&t);
    let defaults: Vec<String> = CHECKPOINTS
        .iter()
        .filter(|c| c.is_default())
        .map(|c| format!("{}.{DEFAULT_TAG} = {}", c.arch, c.tag))
        .collect();
    let _ = writeln!(out, "\n{}", defaults.join(", "));
    out.push_str(
        "All are ImageNet-1k classifiers (1000 classes); EVAL: bilinear resize of the shorter \
         side, centre crop, ImageNet mean and std.\n",
    );
    let _ = writeln!(out, "clshost cache: {} ({CACHE_VAR})", listing.cache_dir);
    match &listing.torch_checkpoints {
        Some(dir) => {
            let _ = writeln!(out, "PyTorch cache: {dir} ({TORCH_HOME_VAR}; read only)");
        }
        None => {
            let _ = writeln!(
                out,
                "PyTorch cache: unknown (no {TORCH_HOME_VAR} or home folder)"
            );
        }
    }
    let base = listing.mirror.as_deref().unwrap_or(zoo::TORCHVISION_BASE);
    let _ = writeln!(out, "downloads from: {base} ({MIRROR_VAR})");
    let _ = writeln!(
        out,
        "hf: sources: {} ({HUB_CACHE_VAR} or {HOME_VAR}), from {} ({ENDPOINT_VAR})",
        listing.hub_cache, listing.hub_endpoint
    );
    Ok(out)
}

/// The checkpoint `name` (`torchvision:` optional), or an error naming the closest ones.
fn checkpoint(name: &str) -> Result<&'static Checkpoint, SourceError> {
    let name = name.strip_prefix("torchvision:").unwrap_or(name);
    zoo::find(name).ok_or_else(|| SourceError::UnknownName {
        name: name.to_string(),
        suggestions: zoo::suggestions(name),
    })
}

fn info(cache: &Cache, args: &InfoArgs) -> Result<String> {
    let c = checkpoint(&args.name)?;
    let mut entry = Entry::new(cache, c);
    if args.json {
        entry.class_names = Some(c.classes());
        return Ok(serde_json::to_string_pretty(&entry)? + "\n");
    }
    let p = &entry.preprocessing;
    let mut out = String::new();
    let alias = if entry.default {
        format!(" (also torchvision:{}.{DEFAULT_TAG})", c.arch)
    } else {
        String::new()
    };
    let _ = writeln!(out, "{}{alias}", entry.name);
    let _ = writeln!(out, "  architecture  {} ({} parameters)", c.arch, c.params);
    let _ = writeln!(
        out,
        "  ImageNet-1k   acc@1 {:.3}, acc@5 {:.3} (as torchvision publishes them)",
        c.acc1, c.acc5
    );
    let _ = writeln!(
        out,
        "  eval          resize the shorter side to {} ({}), centre crop {}x{}, mean {:?}, \
         std {:?}",
        p.resize, p.interpolation, p.crop, p.crop, p.mean, p.std
    );
    let classes = c.classes();
    let _ = writeln!(
        out,
        "  classes       {}: {}, ...",
        classes.len(),
        classes[..SHOWN_CLASSES.min(classes.len())].join(", ")
    );
    let _ = writeln!(out, "  url           {}", entry.url);
    if entry.download_url != entry.url {
        let _ = writeln!(
            out,
            "  downloaded    from {} ({MIRROR_VAR})",
            entry.download_url
        );
    }
    let _ = writeln!(
        out,
        "  file          {} (SHA-256 starting with {})",
        c.file, c.sha256_prefix
    );
    match &entry.cached {
        Some(cached) => {
            let _ = writeln!(out, "  cached        {} ({})", cached.path, cached.origin);
        }
        None => {
            let _ = writeln!(
                out,
                "  cached        no; `clshost weights fetch {}` downloads it to {}",
                c.name(),
                cache.dir().join(c.file).display()
            );
        }
    }
    Ok(out)
}

/// A fetch argument as a source: a bare name that is no existing path and is close to a
/// checkpoint name counts as one (`resnet50.DEFAULT`); anything else parses as a source.
fn fetch_source(text: &str) -> Result<WeightSource, SourceError> {
    let bare = !text.contains([':', '/', '\\']) && !Path::new(text).exists();
    if bare && (zoo::find(text).is_some() || !zoo::suggestions(text).is_empty()) {
        return checkpoint(text).map(WeightSource::Torchvision);
    }
    text.parse()
}

/// What `weights fetch --json` prints.
#[derive(Serialize)]
struct Fetched {
    source: String,
    path: String,
    origin: Origin,
}

fn fetch(cache: &Cache, args: &FetchArgs, quiet: bool) -> Result<String> {
    let source = fetch_source(&args.source)?;
    let progress = !quiet && std::io::stderr().is_terminal();
    let resolved = cache.resolve(&source, progress)?;
    // What `predict`/`eval --weights` read beside the weights, so a copied cache holds both;
    // the weights are what was asked for, so the config's failures only warn.
    if let WeightSource::Hub(file) = &source
        && file.file.is_none()
    {
        match cache.hub().config(file, progress) {
            Ok(_) | Err(HubError::Offline { .. }) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    tracing::info!(
        "{source}: {} ({})",
        resolved.path.display(),
        resolved.origin
    );
    if args.json {
        let fetched = Fetched {
            source: source.to_string(),
            path: resolved.path.display().to_string(),
            origin: resolved.origin,
        };
        return Ok(serde_json::to_string_pretty(&fetched)? + "\n");
    }
    Ok(format!("{}\n", resolved.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_takes_bare_checkpoint_names_and_anything_a_source_can_be() {
        let v2 = WeightSource::Torchvision(&CHECKPOINTS[3]);
        assert_eq!(fetch_source("resnet50.DEFAULT").unwrap(), v2);
        assert_eq!(fetch_source("torchvision:resnet50.DEFAULT").unwrap(), v2);
        let typo = fetch_source("resnet50.IMAGENET1K_V3").unwrap_err();
        assert!(matches!(typo, SourceError::UnknownName { .. }), "{typo:?}");
        assert_eq!(
            fetch_source("tiny.pth").unwrap(),
            WeightSource::File("tiny.pth".into())
        );
        assert!(matches!(
            fetch_source("http://127.0.0.1:1/tiny.pth").unwrap(),
            WeightSource::Url { .. }
        ));
    }
}
