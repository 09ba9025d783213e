//! `clshost data`: look at a dataset before training on it.
//!
//! `clshost data stats` prints class counts, the distribution of image sizes, and the mean and
//! std to normalize with. `clshost data preview RECIPE` writes a PNG grid of the training samples
//! a recipe's run trains on (its loader, sample augmentations and batch augmentation policy,
//! for a chosen epoch), each labelled with its class or, when mixed, its two heaviest classes;
//! without a recipe, the pipeline is given with `--root` and repeated `--augment` options.
//! `clshost data synth` generates a small dataset of shapes and textures, the quickstart's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::assemble::components::{augment_context, batch_augments, from_spec};
use crate::assemble::loaders::train_loader;
use crate::assemble::{anchor_paths, load_valid};
use crate::data::preview::{self, Tile};
use crate::data::settings::cores;
use crate::data::stats::{self, DatasetStats, Distribution};
use crate::data::synth::{self, SynthOptions};
use crate::data::{
    DataSettings, DecodeLimits, ImageFolder, Loader, LoaderOptions, OnError, Pipeline,
};
use crate::output;
use crate::registry::{Registry, SampleAugment, SearchPath};
use crate::train::mixing::{mix, mixing_in, one_hot};

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
    /// The recipe whose training pipeline to show: its data, sample and batch augmentations,
    /// input size, normalization and seed, exactly as `clshost run` trains.
    #[arg(value_name = "RECIPE", required_unless_present = "root")]
    pub recipe: Option<PathBuf>,
    /// Override a recipe field with a RON value, as in `clshost run` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE", requires = "recipe")]
    pub overrides: Vec<String>,
    /// Without a recipe: the ImageFolder (`DIR/<class>/<image>`).
    #[arg(long, value_name = "DIR", conflicts_with = "recipe")]
    pub root: Option<PathBuf>,
    /// Without a recipe: a sample augmentation, as `NAME` or `NAME=(RON params)`, in pipeline
    /// order (repeatable). Default: `random_resized_crop` then `horizontal_flip`.
    #[arg(
        long = "augment",
        value_name = "NAME[=PARAMS]",
        conflicts_with = "recipe"
    )]
    pub augments: Vec<String>,
    /// Without a recipe: side of the square samples, in pixels.
    #[arg(long, default_value_t = 224, conflicts_with = "recipe")]
    pub size: u32,
    /// Without a recipe: seed of the sample choice and augmentations (a recipe has its own).
    #[arg(long, default_value_t = 0, conflicts_with = "recipe")]
    pub seed: u64,
    /// Number of samples.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Samples per row (default: about the square root of the count).
    #[arg(long)]
    pub columns: Option<usize>,
    /// Epoch (from 0) whose augmentations to show.
    #[arg(long, default_value_t = 0)]
    pub epoch: u32,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

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

fn preview(search: &SearchPath, args: &PreviewArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let (tiles, pipeline) = match (&args.recipe, &args.root) {
        (Some(recipe), _) => recipe_samples(search, args, recipe)?,
        (None, Some(root)) => folder_samples(search, args, root)?,
        (None, None) => bail!("give a recipe, or --root DIR"),
    };
    if tiles.is_empty() {
        bail!("no image in the training set could be decoded");
    }
    let count = tiles.len();
    let sheet = preview::sheet(tiles, args.columns)?;
    preview::save_png(&sheet, &args.out)?;
    output::print(&format!(
        "wrote {} ({} samples of epoch {}, {}x{} pixels; pipeline: {})\n",
        args.out.display(),
        count,
        args.epoch,
        sheet.width,
        sheet.height,
        pipeline
    ))?;
    Ok(())
}

/// The first `--count` training samples of `--epoch` as a recipe's run trains on them: its
/// loader (shuffling, sample augmentations) and its batch augmentation policy. Mixed samples
/// are captioned with their two largest target weights.
fn recipe_samples(
    search: &SearchPath,
    args: &PreviewArgs,
    path: &Path,
) -> Result<(Vec<Tile>, String)> {
    let (mut resolved, registry) = load_valid(search, path, &args.overrides)?;
    anchor_paths(&mut resolved)?;
    let recipe = &resolved.recipe;
    let settings = DataSettings::from_recipe(&recipe.data, recipe.seed)?;
    let (train_set, _) = settings.datasets()?;
    let classes = train_set.classes.clone();
    let ctx = augment_context(&settings, classes.len() as u32);
    let loader = train_loader(recipe, &registry, &settings, train_set.samples, &ctx)?;
    let mixers = batch_augments(recipe, &registry, &ctx)?;
    let mixing = mixing_in(recipe, &mixers, args.epoch);
    let c = classes.len();
    let mut tiles = Vec::with_capacity(args.count);
    for batch in loader.epoch(u64::from(args.epoch)) {
        let mut batch = batch?;
        let mut targets = one_hot(&batch.labels, c);
        if mixing {
            mix(recipe, &mixers, c, args.epoch, &mut batch, &mut targets)?;
        }
        tiles.extend(preview::batch_tiles(
            &batch.images,
            batch.shape,
            &targets,
            &classes,
            (settings.mean, settings.std),
            args.count - tiles.len(),
        ));
        if tiles.len() == args.count {
            break;
        }
    }
    let mut stages: Vec<&str> = recipe.augment.iter().map(|a| a.name.as_str()).collect();
    if mixing {
        stages.extend(recipe.batch_augment.entries.iter().map(|e| e.name.as_str()));
    }
    Ok((tiles, format!("{} ({})", stages.join(", "), path.display())))
}

/// The first `--count` samples of a folder through the `--augment` pipeline, shuffled with
/// `--seed`, normalized with ImageNet's mean and std.
fn folder_samples(
    search: &SearchPath,
    args: &PreviewArgs,
    root: &Path,
) -> Result<(Vec<Tile>, String)> {
    let folder = ImageFolder::scan(root)?;
    let registry = Registry::load(search)?;
    // The data settings' defaults (ImageNet normalization) at the preview size.
    let settings = DataSettings {
        train_size: args.size,
        ..DataSettings::default()
    };
    let ctx = augment_context(&settings, folder.classes.len() as u32);
    let specs: Vec<&str> = if args.augments.is_empty() {
        vec!["random_resized_crop", "horizontal_flip"]
    } else {
        args.augments.iter().map(String::as_str).collect()
    };
    let augments = specs
        .iter()
        .map(|spec| {
            let c = from_spec(spec);
            registry
                .new_sample_augment(&c.name, &c.params, &ctx)
                .with_context(|| format!("--augment {spec}"))
        })
        .collect::<Result<Vec<SampleAugment>>>()?;
    let pipeline = Pipeline::train(augments, &settings)?;
    let options = LoaderOptions {
        batch_size: args.count,
        workers: cores(),
        prefetch: 1,
        shuffle: true,
        seed: args.seed,
        on_error: OnError::Skip,
        cache_bytes: 0,
    };
    let classes = folder.classes.clone();
    let loader = Loader::new(folder.samples, pipeline, options)?;
    let Some(batch) = loader.epoch(u64::from(args.epoch)).next() else {
        return Ok((Vec::new(), specs.join(", ")));
    };
    let batch = batch?;
    let tiles = preview::batch_tiles(
        &batch.images,
        batch.shape,
        &one_hot(&batch.labels, classes.len()),
        &classes,
        (settings.mean, settings.std),
        args.count,
    );
    Ok((tiles, specs.join(", ")))
}
