//! The data settings of a run: where the images are, how they are split, sized, normalized and
//! batched, and what happens to unreadable files. The recipe's `data` section maps onto
//! [`DataSettings`]; the commands that work without a recipe fill it from flags.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::decode::DecodeLimits;
use super::imagefolder::{ImageFolder, ScanError};
pub use crate::recipe::schema::OnError;

/// The data settings of a run.
///
/// Defaults: `train_dir: "train"`, `val_dir: "val"`, `val_split: None`, `split_seed: 0`,
/// `train_size: 224`, `eval_resize: 256`, `eval_crop: 224`, ImageNet mean and std,
/// `batch_size: 64`, `workers: None` (one per core), `prefetch: None` (two batches per worker),
/// `cache_mb: 0` (no cache), `on_error: skip`, `max_pixels: 178956970`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    /// The dataset directory.
    pub root: PathBuf,
    /// The training ImageFolder under `root`, used when `val_split` is not set.
    pub train_dir: String,
    /// The validation ImageFolder under `root`, used when `val_split` is not set.
    pub val_dir: String,
    /// When set, `root` itself is one ImageFolder, split per class with this fraction going to
    /// validation.
    pub val_split: Option<f64>,
    /// Seed of the stratified split.
    pub split_seed: u64,
    /// Side of the square training input, in pixels.
    pub train_size: u32,
    /// Shorter side after the eval resize, in pixels.
    pub eval_resize: u32,
    /// Side of the eval center crop, in pixels.
    pub eval_crop: u32,
    /// Per-channel mean on the 0..1 scale, subtracted before dividing by `std`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation on the 0..1 scale.
    pub std: [f32; 3],
    /// Samples per batch.
    pub batch_size: usize,
    /// Loader threads; `None` uses one per core.
    pub workers: Option<usize>,
    /// Batches prepared ahead of the trainer (in progress or ready); `None` is two per worker.
    pub prefetch: Option<usize>,
    /// Memory for caching decoded images, in MiB; 0 disables the cache.
    pub cache_mb: u64,
    /// What to do with files that cannot be decoded.
    pub on_error: OnError,
    /// Images declaring more pixels than this are rejected without being decoded.
    pub max_pixels: u64,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            root: PathBuf::new(),
            train_dir: "train".into(),
            val_dir: "val".into(),
            val_split: None,
            split_seed: 0,
            train_size: 224,
            eval_resize: 256,
            eval_crop: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            batch_size: 64,
            workers: None,
            prefetch: None,
            cache_mb: 0,
            on_error: OnError::Skip,
            max_pixels: DecodeLimits::default().max_pixels,
        }
    }
}

/// A setting with an invalid value.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("data.{field}: {message}")]
pub struct SettingsError {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// The number of cores, or 1 when it cannot be told.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl DataSettings {
    /// Checks value ranges.
    pub fn check(&self) -> Result<(), SettingsError> {
        let fail = |field, message: &str| {
            Err(SettingsError {
                field,
                message: message.to_string(),
            })
        };
        if let Some(f) = self.val_split
            && !(f > 0.0 && f < 1.0)
        {
            return fail("val_split", "must be between 0 and 1 (exclusive)");
        }
        if self.train_size == 0 || self.eval_resize == 0 || self.eval_crop == 0 {
            return fail("train_size", "sizes must be at least 1 pixel");
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return fail("std", "every channel must be a positive number");
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return fail("mean", "every channel must be a finite number");
        }
        if self.batch_size == 0 {
            return fail("batch_size", "must be at least 1");
        }
        if self.workers == Some(0) {
            return fail("workers", "must be at least 1");
        }
        if self.prefetch == Some(0) {
            return fail("prefetch", "must be at least 1");
        }
        if self.max_pixels == 0 {
            return fail("max_pixels", "must be at least 1");
        }
        Ok(())
    }

    /// Loader threads: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(cores)
    }

    /// Batches in flight: `prefetch`, or two per worker.
    pub fn prefetch_depth(&self) -> usize {
        self.prefetch.unwrap_or(2 * self.worker_count())
    }

    /// The decode limits these settings ask for.
    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_pixels,
        }
    }

    /// The settings a recipe's `data` section asks for, with the run `seed` as the split seed.
    /// The data stage works on square inputs: a non-square `image_size` or `eval_crop` is an
    /// error naming the field. `cache: true` allows 1 GiB of decoded images.
    pub fn from_recipe(
        data: &crate::recipe::schema::Data,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let square = |field: &'static str, (h, w): (u32, u32)| {
            if h == w {
                Ok(h)
            } else {
                Err(SettingsError {
                    field,
                    message: format!("must be square for now, got ({h}, {w})"),
                })
            }
        };
        // The recipe's `val_split` holds out part of `train_dir`; here it splits `root`.
        let root = match data.val_split {
            Some(_) => data.root.join(&data.train_dir),
            None => data.root.clone(),
        };
        let settings = DataSettings {
            root,
            train_dir: data.train_dir.clone(),
            val_dir: data.val_dir.clone(),
            val_split: data.val_split,
            split_seed: seed,
            train_size: square("image_size", data.image_size)?,
            eval_resize: data.eval_resize,
            eval_crop: square("eval_crop", data.eval_crop)?,
            mean: [data.mean.0, data.mean.1, data.mean.2],
            std: [data.std.0, data.std.1, data.std.2],
            batch_size: data.batch_size as usize,
            workers: data.workers.map(|w| w as usize),
            prefetch: None,
            cache_mb: if data.cache { 1024 } else { 0 },
            on_error: data.on_error,
            max_pixels: DecodeLimits::default().max_pixels,
        };
        settings.check()?;
        Ok(settings)
    }

    /// Scans the training and validation sets: `root/train_dir` and `root/val_dir`, or `root`
    /// split by `val_split`. These are the data checks of both `run` and `check`: they fail,
    /// before any image is decoded, on an unusable folder, a class without images, validation
    /// classes that differ from the training ones, or a split that leaves validation empty.
    pub fn datasets(&self) -> Result<(ImageFolder, ImageFolder), ScanError> {
        match self.val_split {
            Some(fraction) => ImageFolder::scan(&self.root)?.split(fraction, self.split_seed),
            None => {
                let train = ImageFolder::scan(&self.root.join(&self.train_dir))?;
                let val = ImageFolder::scan(&self.root.join(&self.val_dir))?;
                train.check_same_classes(&val)?;
                Ok((train, val))
            }
        }
    }
}
