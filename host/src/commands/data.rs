//! `clshost data`: look at a dataset before training on it.
//!
//! `clshost data stats` prints class counts, the distribution of image sizes, and the mean and
//! std to normalize with. `clshost data preview` writes a PNG grid of training samples after the
//! augmentations, each labelled with its class. `clshost data synth` generates a small dataset
//! of shapes and textures, the quickstart's. Until recipes drive it, the preview pipeline is
//! given on the command line with repeated `--augment NAME[=RON params]` options.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use clshost_plugin_api::AugmentContext;
use serde::Serialize;

use crate::data::preview::{self, Tile};
use crate::data::settings::cores;
use crate::data::stats::{self, DatasetStats, Distribution};
use crate::data::synth::{self, SynthOptions};
use crate::data::{DecodeLimits, ImageFolder, Loader, LoaderOptions, OnError, Pipeline};
use crate::output;
use crate::registry::{Registry, SampleAugment, SearchPath};

/// Arguments of `clshost data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Class counts, image sizes, and the mean/std to put in a recipe.
    Stats(StatsArgs),
    /// Write a grid of augmented training samples with their labels to a PNG file.
    Preview(PreviewArgs),
    /// Generate a small ImageFolder of shapes and textures (the quickstart dataset).
    Synth(SynthArgs),
}

/// Arguments of `clshost data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The folder to write `train/<class>/*.png` and `val/<class>/*.png` into.
    pub out: PathBuf,
    /// Number of classes (2 to 8): circle, square, triangle, cross, ring, stripes, checker, dots.
    #[arg(long, default_value_t = 4)]
    pub classes: usize,
    /// Training images per class.
    #[arg(long, default_value_t = 200)]
    pub train: usize,
    /// Validation images per class.
    #[arg(long, default_value_t = 50)]
    pub val: usize,
    /// Side of the square images, in pixels.
    #[arg(long, default_value_t = 32)]
    pub size: u32,
    /// Seed of every random choice; the same arguments always write the same files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `clshost data stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The ImageFolder (`DIR/<class>/<image>`).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Decode only this many images (evenly spaced) for sizes and mean/std; class counts
    /// always cover every image.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Decoding threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `clshost data preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The ImageFolder (`DIR/<class>/<image>`).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// A sample augmentation, as `NAME` or `NAME=(RON params)`, in pipeline order
    /// (repeatable). Default: `random_resized_crop` then `horizontal_flip`.
    #[arg(long = "augment", value_name = "NAME[=PARAMS]")]
    pub augments: Vec<String>,
    /// Side of the square samples, in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// Number of samples.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Samples per row (default: about the square root of the count).
    #[arg(long)]
    pub columns: Option<usize>,
    /// Seed of the sample choice and augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epoch whose augmentations to show.
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// ImageNet normalization, used by the preview pipeline.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Runs `clshost data`.
pub fn run(search: &SearchPath, args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Stats(a) => stats(a),
        DataCommand::Preview(a) => preview(search, a),
        DataCommand::Synth(a) => synth(a),
    }
}

fn synth(args: &SynthArgs) -> Result<()> {
    let options = SynthOptions {
        classes: args.classes,
        train: args.train,
        val: args.val,
        size: args.size,
        seed: args.seed,
    };
    let summary = synth::generate(&args.out, &options)?;
    output::print(&format!(
        "wrote {} images of {}x{} pixels in {} classes ({}) to {}\n",
        summary.images,
        args.size,
        args.size,
        summary.classes.len(),
        summary.classes.join(", "),
        args.out.display()
    ))?;
    Ok(())
}

fn stats(args: &StatsArgs) -> Result<()> {
    if args.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    let folder = ImageFolder::scan(&args.root)?;
    let workers = args.workers.unwrap_or_else(cores);
    let s = stats::compute(&folder, args.limit, workers, &DecodeLimits::default());
    let text = if args.json {
        serde_json::to_string_pretty(&StatsView::new(&folder, &s))? + "\n"
    } else {
        stats_text(&folder, &s)
    };
    output::print(&text)?;
    Ok(())
}

/// `clshost data stats --json`.
#[derive(Serialize)]
struct StatsView<'a> {
    root: String,
    images: usize,
    classes: Vec<ClassView<'a>>,
    skipped_hidden: usize,
    skipped_not_image: usize,
    measured: usize,
    unreadable: Vec<UnreadableView>,
    width: DistView,
    height: DistView,
    mean: [f64; 3],
    std: [f64; 3],
}

#[derive(Serialize)]
struct ClassView<'a> {
    name: &'a str,
    images: usize,
}

#[derive(Serialize)]
struct UnreadableView {
    file: String,
    reason: String,
}

#[derive(Serialize)]
struct DistView {
    min: u32,
    p10: u32,
    median: u32,
    p90: u32,
    max: u32,
    mean: f64,
}

impl From<&Distribution> for DistView {
    fn from(d: &Distribution) -> Self {
        DistView {
            min: d.min,
            p10: d.p10,
            median: d.median,
            p90: d.p90,
            max: d.max,
            mean: d.mean,
        }
    }
}

impl<'a> StatsView<'a> {
    fn new(folder: &ImageFolder, s: &'a DatasetStats) -> Self {
        StatsView {
            root: folder.root.display().to_string(),
            images: s.images,
            classes: s
                .classes
                .iter()
                .map(|(name, images)| ClassView {
                    name,
                    images: *images,
                })
                .collect(),
            skipped_hidden: folder.skipped.hidden,
            skipped_not_image: folder.skipped.not_image,
            measured: s.measured,
            unreadable: s
                .unreadable
                .iter()
                .map(|u| UnreadableView {
                    file: u.path.display().to_string(),
                    reason: u.reason.clone(),
                })
                .collect(),
            width: (&s.width).into(),
            height: (&s.height).into(),
            mean: s.mean,
            std: s.std,
        }
    }
}

fn stats_text(folder: &ImageFolder, s: &DatasetStats) -> String {
    let mut out = format!(
        "{} images in {} classes under {}\n",
        s.images,
        s.classes.len(),
        folder.root.display()
    );
    if folder.skipped.hidden + folder.skipped.not_image > 0 {
        let _ = writeln!(
            out,
            "skipped {} hidden entries and {} files that are not images",
            folder.skipped.hidden, folder.skipped.not_image
        );
    }
    let width = s.classes.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    out.push_str("\nclass counts:\n");
    for (label, (class, n)) in s.classes.iter().enumerate() {
        let _ = writeln!(out, "  {label:>4}  {class:<width$}  {n}");
    }
    let _ = writeln!(out, "\nmeasured {} images", s.measured);
    for (name, d) in [("width", &s.width), ("height", &s.height)] {
        let _ = writeln!(
            out,
            "  {name:<6}  min {}  p10 {}  median {}  p90 {}  max {}  mean {:.1}",
            d.min, d.p10, d.median, d.p90, d.max, d.mean
        );
    }
    let f = |v: [f64; 3]| format!("({:.4}, {:.4}, {:.4})", v[0], v[1], v[2]);
    let _ = writeln!(
        out,
        "\nfor the recipe:\n  mean: {},\n  std: {},",
        f(s.mean),
        f(s.std)
    );
    if !s.unreadable.is_empty() {
        let _ = writeln!(out, "\n{} unreadable files:", s.unreadable.len());
        for u in &s.unreadable {
            let _ = writeln!(out, "  {}", u.reason);
        }
    }
    out
}

/// Splits `NAME=PARAMS` into the name and its RON params (`()` when absent).
fn parse_augment(spec: &str) -> (&str, &str) {
    match spec.split_once('=') {
        Some((name, params)) => (name.trim(), params.trim()),
        None => (spec.trim(), "()"),
    }
}

fn preview(search: &SearchPath, args: &PreviewArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let folder = ImageFolder::scan(&args.root)?;
    let registry = Registry::load(search)?;
    let ctx = AugmentContext {
        input_height: args.size,
        input_width: args.size,
        mean: MEAN,
        std: STD,
        num_classes: folder.classes.len() as u32,
    };
    let specs: Vec<&str> = if args.augments.is_empty() {
        vec!["random_resized_crop", "horizontal_flip"]
    } else {
        args.augments.iter().map(String::as_str).collect()
    };
    let augments = specs
        .iter()
        .map(|spec| {
            let (name, params) = parse_augment(spec);
            registry
                .new_sample_augment(name, params, &ctx)
                .with_context(|| format!("--augment {spec}"))
        })
        .collect::<Result<Vec<SampleAugment>>>()?;
    let pipeline = Pipeline::new(augments, args.size, args.size, MEAN, STD)?;
    let workers = cores();
    let options = LoaderOptions {
        batch_size: args.count,
        workers,
        prefetch: 1,
        shuffle: true,
        seed: args.seed,
        on_error: OnError::Skip,
        cache_bytes: 0,
    };
    let classes = folder.classes.clone();
    let loader = Loader::new(folder.samples, pipeline, options)?;
    let batch = loader
        .epoch(args.epoch)
        .next()
        .context("no image in the folder could be decoded")??;
    let plane = 3 * args.size as usize * args.size as usize;
    let tiles: Vec<Tile> = batch
        .labels
        .iter()
        .enumerate()
        .map(|(k, &label)| Tile {
            image: preview::denormalize(
                &batch.images[k * plane..(k + 1) * plane],
                args.size,
                args.size,
                MEAN,
                STD,
            ),
            label: classes[label as usize].clone(),
        })
        .collect();
    let columns = args
        .columns
        .unwrap_or_else(|| (tiles.len() as f64).sqrt().ceil() as usize);
    let sheet = preview::grid(&tiles, columns)?;
    preview::save_png(&sheet, &args.out)?;
    output::print(&format!(
        "wrote {} ({} samples, {}x{} pixels; pipeline: {})\n",
        args.out.display(),
        tiles.len(),
        sheet.width,
        sheet.height,
        specs.join(", ")
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_specs_split_at_the_first_equals() {
        assert_eq!(parse_augment("horizontal_flip"), ("horizontal_flip", "()"));
        assert_eq!(
            parse_augment("random_erasing=(p: 1.0, value: \"a=b\")"),
            ("random_erasing", "(p: 1.0, value: \"a=b\")")
        );
    }
}
