//! `clshost bench data`: the data pipeline without a model.
//!
//! It runs the training data pipeline (RandomResizedCrop + horizontal flip +
//! normalize, the first two from the augmentation plugins on the search path) over an
//! ImageFolder for a few epochs and reports images per second and the time spent in each stage.
//! `scripts/bench/data_torchvision.py` measures the same pipeline with torchvision on the same
//! folder, so the two figures compare directly.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::assemble::components::augment_context;
use crate::data::settings::cores;
use crate::data::{
    DataSettings, ImageFolder, Loader, LoaderOptions, OnError, Pipeline, StageTimes,
};
use crate::output;
use crate::registry::{Registry, SearchPath};

/// Arguments of `clshost bench data`.
#[derive(Debug, Args)]
pub struct BenchDataArgs {
    /// The ImageFolder to read (`DIR/<class>/<image>`).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Side of the square crops, in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Loader threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Passes over the folder.
    #[arg(long, default_value_t = 2)]
    pub epochs: u64,
    /// Seed of the shuffles and augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The augmentations of the measured pipeline, in order.
const AUGMENTS: [&str; 2] = ["random_resized_crop", "horizontal_flip"];

/// The result of `clshost bench data`.
#[derive(Debug, Serialize)]
struct Report {
    root: String,
    images: usize,
    classes: usize,
    size: u32,
    batch: usize,
    workers: usize,
    epochs: u64,
    pipeline: Vec<&'static str>,
    seconds: f64,
    images_per_second: f64,
    epoch_images_per_second: Vec<f64>,
    stage_ms_per_image: StageMs,
    skipped: usize,
}

/// Worker time per image in each stage, in milliseconds.
#[derive(Debug, Serialize)]
struct StageMs {
    decode: f64,
    augment: f64,
    collate: f64,
}

impl StageMs {
    fn of(t: &StageTimes) -> Self {
        let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / t.samples.max(1) as f64;
        StageMs {
            decode: per(t.decode),
            augment: per(t.augment),
            collate: per(t.collate),
        }
    }
}

/// Runs `clshost bench data`.
pub fn run(search: &SearchPath, args: &BenchDataArgs) -> Result<()> {
    let folder = ImageFolder::scan(&args.root)?;
    let registry = Registry::load(search)?;
    // The data settings' defaults (ImageNet normalization, as in torchvision's reference
    // recipe) at the measured size.
    let settings = DataSettings {
        train_size: args.size,
        ..DataSettings::default()
    };
    let ctx = augment_context(&settings, folder.classes.len() as u32);
    let augments = AUGMENTS
        .iter()
        .map(|name| Ok(registry.new_sample_augment(name, "()", &ctx)?))
        .collect::<Result<Vec<_>>>()
        .context("the data benchmark needs the augmentation plugin (clshost-plugin-augment)")?;
    let pipeline = Pipeline::train(augments, &settings)?;
    let workers = args.workers.unwrap_or_else(cores);
    let options = LoaderOptions {
        batch_size: args.batch,
        workers,
        prefetch: 2 * workers,
        shuffle: true,
        seed: args.seed,
        on_error: OnError::Skip,
        cache_bytes: 0,
    };
    let classes = folder.classes.len();
    let loader = Loader::new(folder.samples, pipeline, options)?;
    let mut epoch_rates = Vec::new();
    let mut images = 0usize;
    let start = Instant::now();
    for epoch in 0..args.epochs {
        let t0 = Instant::now();
        let mut seen = 0usize;
        let mut batches = loader.epoch(epoch);
        while let Some(batch) = batches.next() {
            let batch = batch?;
            seen += batch.len();
            batches.recycle(batch);
        }
        let secs = t0.elapsed().as_secs_f64();
        tracing::info!("epoch {epoch}: {seen} images in {secs:.2} s");
        epoch_rates.push(seen as f64 / secs);
        images += seen;
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = Report {
        root: args.root.display().to_string(),
        images: loader.len(),
        classes,
        size: args.size,
        batch: args.batch,
        workers,
        epochs: args.epochs,
        pipeline: AUGMENTS.iter().copied().chain(["normalize"]).collect(),
        seconds,
        images_per_second: images as f64 / seconds,
        epoch_images_per_second: epoch_rates,
        stage_ms_per_image: StageMs::of(&loader.stage_times()),
        skipped: loader.skipped().len(),
    };
    Ok(output::print_report(args.json, &report, text)?)
}

fn text(r: &Report) -> String {
    let rates: Vec<String> = r
        .epoch_images_per_second
        .iter()
        .map(|v| format!("{v:.1}"))
        .collect();
    let s = &r.stage_ms_per_image;
    format!(
        "{} images in {} classes from {}\n\
         pipeline: {} at {}x{}, batch {}, {} workers, {} epochs\n\
         {:.1} images/s overall ({:.2} s); per epoch: {}\n\
         worker time per image: decode {:.3} ms, augment {:.3} ms, collate {:.3} ms\n\
         skipped files: {}\n",
        r.images,
        r.classes,
        r.root,
        r.pipeline.join(" + "),
        r.size,
        r.size,
        r.batch,
        r.workers,
        r.epochs,
        r.images_per_second,
        r.seconds,
        rates.join(", "),
        s.decode,
        s.augment,
        s.collate,
        r.skipped
    )
}
