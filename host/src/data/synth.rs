//! A procedurally generated ImageFolder, so the quickstart needs no download.
//!
//! Each class is a shape or a texture (`circle`, `square`, `triangle`, `cross`, `ring`,
//! `stripes`, `checker`, `dots`) drawn in a random colour on a random background, at a random
//! position, size and rotation, with per-pixel noise: a small CNN separates them easily, but not
//! from one pixel. Every image depends only on (seed, split, class, index), so the same
//! arguments always write the same files.

use std::f32::consts::PI;
use std::fs;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::seed::splitmix64;

/// Every class the generator can draw, in the order `--classes N` takes them.
pub const CLASSES: [&str; 8] = [
    "circle", "square", "triangle", "cross", "ring", "stripes", "checker", "dots",
];

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Number of classes, at most [`CLASSES`]`.len()`.
    pub classes: usize,
    /// Training images per class.
    pub train: usize,
    /// Validation images per class.
    pub val: usize,
    /// Side of the square images, in pixels.
    pub size: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

/// Why the dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// An option is out of range.
    #[error("{0}")]
    Options(String),
    /// A file or folder could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// The class names, in folder order.
    pub classes: Vec<String>,
    /// Number of images written.
    pub images: usize,
}

/// Writes `out/train/<class>/*.png` and `out/val/<class>/*.png`.
pub fn generate(out: &Path, options: &SynthOptions) -> Result<SynthSummary, SynthError> {
    if options.classes < 2 || options.classes > CLASSES.len() {
        return Err(SynthError::Options(format!(
            "--classes must be between 2 and {}",
            CLASSES.len()
        )));
    }
    if options.size < 8 {
        return Err(SynthError::Options(
            "--size must be at least 8 pixels".into(),
        ));
    }
    if options.train == 0 || options.val == 0 {
        return Err(SynthError::Options(
            "--train and --val must be at least 1".into(),
        ));
    }
    let mut images = 0;
    for (split_id, (split, count)) in [("train", options.train), ("val", options.val)]
        .into_iter()
        .enumerate()
    {
        for (class_id, class) in CLASSES.iter().take(options.classes).enumerate() {
            let dir = out.join(split).join(class);
            fs::create_dir_all(&dir).map_err(|e| write_error(&dir, &e))?;
            for index in 0..count {
                let seed = [split_id as u64, class_id as u64, index as u64]
                    .iter()
                    .fold(splitmix64(options.seed), |h, &p| splitmix64(h ^ p));
                let pixels = render(class_id, options.size, seed);
                let path = dir.join(format!("{class}_{index:04}.png"));
                image::save_buffer(
                    &path,
                    &pixels,
                    options.size,
                    options.size,
                    image::ExtendedColorType::Rgb8,
                )
                .map_err(|e| write_error(&path, &e))?;
                images += 1;
            }
        }
    }
    Ok(SynthSummary {
        classes: CLASSES
            .iter()
            .take(options.classes)
            .map(|c| c.to_string())
            .collect(),
        images,
    })
}

fn write_error(path: &Path, e: &dyn std::fmt::Display) -> SynthError {
    SynthError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A random RGB colour.
fn colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    [
        rng.random_range(0.0..255.0),
        rng.random_range(0.0..255.0),
        rng.random_range(0.0..255.0),
    ]
}

/// Whether the point `(u, v)`, in the shape's own frame scaled so that its radius is 1, is
/// inside the drawing of `class`.
fn inside(class: usize, u: f32, v: f32, period: f32) -> bool {
    match class {
        0 => u * u + v * v <= 1.0,
        1 => u.abs() <= 0.8 && v.abs() <= 0.8,
        2 => v <= 0.6 && u.abs() <= (v + 1.0) * 0.6,
        3 => (u.abs() <= 0.3 && v.abs() <= 1.0) || (v.abs() <= 0.3 && u.abs() <= 1.0),
        4 => {
            let r = (u * u + v * v).sqrt();
            (0.55..=1.0).contains(&r)
        }
        5 => (v / period).floor().rem_euclid(2.0) == 0.0,
        6 => ((u / period).floor() + (v / period).floor()).rem_euclid(2.0) == 0.0,
        _ => {
            let fu = (u / period).rem_euclid(1.0) - 0.5;
            let fv = (v / period).rem_euclid(1.0) - 0.5;
            fu * fu + fv * fv <= 0.09
        }
    }
}

/// Draws one image of `class` as RGB bytes.
fn render(class: usize, size: u32, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let background = colour(&mut rng);
    let mut foreground = colour(&mut rng);
    while foreground
        .iter()
        .zip(&background)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        < 240.0
    {
        foreground = colour(&mut rng);
    }
    let s = size as f32;
    let texture = class >= 5;
    let (cx, cy) = (
        rng.random_range(0.42..0.58) * s,
        rng.random_range(0.42..0.58) * s,
    );
    let radius = if texture {
        s
    } else {
        rng.random_range(0.3..0.4) * s
    };
    let angle: f32 = if texture || class == 0 || class == 4 {
        rng.random_range(-0.15..0.15)
    } else {
        rng.random_range(-PI / 8.0..PI / 8.0)
    };
    let period = rng.random_range(0.12..0.18) * s / radius;
    let noise: f32 = rng.random_range(4.0..16.0);
    let (sin, cos) = angle.sin_cos();
    let mut pixels = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            let dx = (x as f32 + 0.5 - cx) / radius;
            let dy = (y as f32 + 0.5 - cy) / radius;
            let u = cos * dx + sin * dy;
            let v = -sin * dx + cos * dy;
            let base = if inside(class, u, v, period) {
                foreground
            } else {
                background
            };
            for c in base {
                let value = c + rng.random_range(-noise..noise);
                pixels.push(value.clamp(0.0, 255.0) as u8);
            }
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SynthOptions {
        SynthOptions {
            classes: 3,
            train: 2,
            val: 1,
            size: 16,
            seed: 7,
        }
    }

    #[test]
    fn writes_an_imagefolder_with_word_class_names() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(dir.path(), &options()).unwrap();
        assert_eq!(summary.classes, ["circle", "square", "triangle"]);
        assert_eq!(summary.images, 9);
        let folder = crate::data::ImageFolder::scan(&dir.path().join("train")).unwrap();
        assert_eq!(folder.classes, ["circle", "square", "triangle"]);
        assert_eq!(folder.samples.len(), 6);
        let image = image::open(dir.path().join("val/square/square_0000.png")).unwrap();
        assert_eq!((image.width(), image.height()), (16, 16));
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        generate(a.path(), &options()).unwrap();
        generate(b.path(), &options()).unwrap();
        generate(
            c.path(),
            &SynthOptions {
                seed: 8,
                ..options()
            },
        )
        .unwrap();
        let read = |d: &Path| fs::read(d.join("train/circle/circle_0001.png")).unwrap();
        assert_eq!(read(a.path()), read(b.path()));
        assert_ne!(read(a.path()), read(c.path()));
    }

    #[test]
    fn rejects_out_of_range_options() {
        let dir = tempfile::tempdir().unwrap();
        let bad = SynthOptions {
            classes: 9,
            ..options()
        };
        assert!(matches!(
            generate(dir.path(), &bad),
            Err(SynthError::Options(_))
        ));
    }
}
