//! Dataset statistics for `clshost data stats`: images per class, the distribution of image
//! sizes, and the per-channel mean and standard deviation a recipe normalizes with.
//!
//! Mean and std are over every pixel of every measured image, on the 0..1 scale, as
//! `torch.stack([ToTensor()(img) for img in ds]).mean/std(dim=(0, 2, 3))` would give for
//! equal-sized images (population std). Sums are kept as exact integers, so the result does not
//! depend on the number of threads.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::decode::{self, DecodeLimits};
use super::imagefolder::ImageFolder;
use super::loader::SkippedFile;

/// Order statistics of one quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Distribution {
    /// Smallest value.
    pub min: u32,
    /// 10th percentile (nearest rank).
    pub p10: u32,
    /// Median (nearest rank).
    pub median: u32,
    /// 90th percentile (nearest rank).
    pub p90: u32,
    /// Largest value.
    pub max: u32,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Distribution {
    /// The distribution of `values` (all zeros when empty).
    pub fn of(values: &mut [u32]) -> Self {
        if values.is_empty() {
            return Distribution::default();
        }
        values.sort_unstable();
        let rank =
            |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Distribution {
            min: values[0],
            p10: rank(0.1),
            median: rank(0.5),
            p90: rank(0.9),
            max: values[values.len() - 1],
            mean: values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64,
        }
    }
}

/// What `clshost data stats` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetStats {
    /// `(class, images)` in label order.
    pub classes: Vec<(String, usize)>,
    /// Images in the folder.
    pub images: usize,
    /// Images decoded and measured.
    pub measured: usize,
    /// Measured images that could not be decoded.
    pub unreadable: Vec<SkippedFile>,
    /// Widths of the measured images, after EXIF orientation.
    pub width: Distribution,
    /// Heights of the measured images, after EXIF orientation.
    pub height: Distribution,
    /// Per-channel mean on the 0..1 scale.
    pub mean: [f64; 3],
    /// Per-channel population standard deviation on the 0..1 scale.
    pub std: [f64; 3],
}

#[derive(Default)]
struct Partial {
    sum: [u64; 3],
    sum_sq: [u64; 3],
    pixels: u64,
    widths: Vec<u32>,
    heights: Vec<u32>,
    unreadable: Vec<SkippedFile>,
}

impl Partial {
    fn add(&mut self, path: &Path, limits: &DecodeLimits) {
        match decode::decode_file(path, limits) {
            Ok(image) => {
                for px in image.data.chunks_exact(3) {
                    for (c, &v) in px.iter().enumerate() {
                        let v = u64::from(v);
                        self.sum[c] += v;
                        self.sum_sq[c] += v * v;
                    }
                }
                self.pixels += u64::from(image.width) * u64::from(image.height);
                self.widths.push(image.width);
                self.heights.push(image.height);
            }
            Err(e) => self.unreadable.push(SkippedFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    fn merge(&mut self, other: Partial) {
        for c in 0..3 {
            self.sum[c] += other.sum[c];
            self.sum_sq[c] += other.sum_sq[c];
        }
        self.pixels += other.pixels;
        self.widths.extend(other.widths);
        self.heights.extend(other.heights);
        self.unreadable.extend(other.unreadable);
    }
}

/// Measures `folder` on `workers` threads. With `limit`, only that many images are decoded,
/// evenly spaced through the folder's order; class counts always cover every image.
pub fn compute(
    folder: &ImageFolder,
    limit: Option<usize>,
    workers: usize,
    limits: &DecodeLimits,
) -> DatasetStats {
    let n = folder.samples.len();
    let take = limit.unwrap_or(n).min(n);
    let picked: Vec<&Path> = (0..take)
        .map(|k| folder.samples[k * n / take.max(1)].path.as_path())
        .collect();
    let next = AtomicUsize::new(0);
    let total = Mutex::new(Partial::default());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                let mut part = Partial::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = picked.get(i) else { break };
                    part.add(path, limits);
                }
                total
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .merge(part);
            });
        }
    });
    let mut total = total
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    total.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    let mut mean = [0.0; 3];
    let mut std = [0.0; 3];
    if total.pixels > 0 {
        let count = total.pixels as f64;
        for c in 0..3 {
            let m = total.sum[c] as f64 / count;
            let var = (total.sum_sq[c] as f64 / count - m * m).max(0.0);
            mean[c] = m / 255.0;
            std[c] = var.sqrt() / 255.0;
        }
    }
    DatasetStats {
        classes: folder
            .classes
            .iter()
            .cloned()
            .zip(folder.class_counts())
            .collect(),
        images: n,
        measured: total.widths.len(),
        unreadable: total.unreadable,
        width: Distribution::of(&mut total.widths),
        height: Distribution::of(&mut total.heights),
        mean,
        std,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=10).rev().collect();
        let d = Distribution::of(&mut v);
        assert_eq!((d.min, d.p10, d.median, d.p90, d.max), (1, 1, 5, 9, 10));
        assert!((d.mean - 5.5).abs() < 1e-12);
        assert_eq!(Distribution::of(&mut []), Distribution::default());
    }
}
