//! Batch augmentations `mixup` and `cutmix`, exactly as timm's `Mixup` in `mode="batch"`:
//! sample `i` is mixed with sample `N-1-i` (`x.flip(0)`), lambda is drawn from
//! `Beta(alpha, alpha)`, and the targets are mixed with the same lambda. The host's loss applies
//! label smoothing afterwards (`t * (1 - eps) + eps / C`), which, being linear, equals timm's
//! smoothing of the one-hot rows before mixing.

use clshost_plugin_api::prelude::*;
use rand::Rng;
use rand_distr::{Beta, Distribution};

use crate::rng::{int_inclusive, rng};

/// Checks the `[N, C, H, W]` images and `[N, K]` targets and returns both shapes.
fn batch_shapes(
    images: &TensorMut<'_>,
    targets: &TensorMut<'_>,
) -> Result<([usize; 4], usize), PluginError> {
    let dims = images.dims4()?;
    let (n, k) = targets.dims2()?;
    if n != dims[0] {
        return Err(PluginError::input(format!(
            "{} images but {n} target rows",
            dims[0]
        )));
    }
    Ok((dims, k))
}

/// `x = lam * x + (1 - lam) * x.flip(0)` on the rows of `data` (each `row` elements long).
fn mix_rows(data: &mut [f32], row: usize, lam: f32) {
    let n = data.len() / row;
    let original = data.to_vec();
    let one_minus = 1.0 - lam;
    for i in 0..n {
        let j = n - 1 - i;
        for (dst, (&a, &b)) in data[i * row..(i + 1) * row].iter_mut().zip(
            original[i * row..]
                .iter()
                .zip(&original[j * row..(j + 1) * row]),
        ) {
            *dst = a * lam + b * one_minus;
        }
    }
}

/// MixUp with a forced `lam`: images and targets become `lam * x + (1 - lam) * x.flip(0)`.
pub fn mixup_with(images: &mut [f32], targets: &mut [f32], n: usize, lam: f64) {
    if n == 0 {
        return;
    }
    let lam = lam as f32;
    mix_rows(images, images.len() / n, lam);
    mix_rows(targets, targets.len() / n, lam);
}

/// A CutMix box as rows `y0..y1` and columns `x0..x1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixBox {
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
}

/// timm's `rand_bbox` + `correct_lam`: a box of `int(side * sqrt(1 - lam))` per side centred
/// at a uniform pixel, clipped to the image; with `correct_lam`, lambda becomes one minus the
/// clipped box's area fraction.
pub fn cutmix_box(
    h: usize,
    w: usize,
    lam: f64,
    correct_lam: bool,
    rng: &mut impl Rng,
) -> (MixBox, f64) {
    let ratio = (1.0 - lam).max(0.0).sqrt();
    let (cut_h, cut_w) = ((h as f64 * ratio) as i64, (w as f64 * ratio) as i64);
    let cy = int_inclusive(rng, 0, h as i64 - 1);
    let cx = int_inclusive(rng, 0, w as i64 - 1);
    let clip = |v: i64, n: usize| v.clamp(0, n as i64) as usize;
    let b = MixBox {
        y0: clip(cy - cut_h / 2, h),
        y1: clip(cy + cut_h / 2, h),
        x0: clip(cx - cut_w / 2, w),
        x1: clip(cx + cut_w / 2, w),
    };
    let lam = if correct_lam {
        1.0 - ((b.y1 - b.y0) * (b.x1 - b.x0)) as f64 / (h * w) as f64
    } else {
        lam
    };
    (b, lam)
}

/// CutMix with a forced box and `lam`: the box of each image is taken from image `N-1-i`, and the
/// targets become `lam * t + (1 - lam) * t.flip(0)`.
pub fn cutmix_with(images: &mut [f32], targets: &mut [f32], dims: [usize; 4], b: MixBox, lam: f64) {
    let [n, c, h, w] = dims;
    if n == 0 {
        return;
    }
    let original = images.to_vec();
    for i in 0..n {
        let j = n - 1 - i;
        for ch in 0..c {
            for y in b.y0..b.y1 {
                let dst = ((i * c + ch) * h + y) * w;
                let src = ((j * c + ch) * h + y) * w;
                images[dst + b.x0..dst + b.x1].copy_from_slice(&original[src + b.x0..src + b.x1]);
            }
        }
    }
    mix_rows(targets, targets.len() / n, lam as f32);
}

/// Draws lambda from `Beta(alpha, alpha)`.
fn beta(alpha: f64, rng: &mut impl Rng) -> Result<f64, PluginError> {
    Beta::new(alpha, alpha)
        .map(|d| d.sample(rng))
        .map_err(|e| PluginError::internal(format!("beta({alpha}): {e}")))
}

/// `alpha` must be positive and finite.
fn check_alpha(alpha: f64) -> Result<(), PluginError> {
    if alpha.is_finite() && alpha > 0.0 {
        Ok(())
    } else {
        Err(PluginError::config(
            "alpha",
            format!("must be > 0, got {alpha}"),
        ))
    }
}

/// Config of [`Mixup`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct MixupConfig {
    /// Concentration (> 0) of Beta(alpha, alpha), from which lambda is drawn once per batch.
    pub alpha: f64,
}

impl Default for MixupConfig {
    fn default() -> Self {
        MixupConfig { alpha: 0.8 }
    }
}

/// timm's MixUp (batch mode).
pub struct Mixup {
    alpha: f64,
}

impl Component for Mixup {
    const NAME: &'static str = "mixup";
    const DESCRIPTION: &'static str = "Blends each image and target with the mirrored sample, lambda ~ Beta(alpha, alpha) (timm Mixup)";
    type Config = MixupConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        check_alpha(config.alpha)
    }
}

impl BatchAugment for Mixup {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(Mixup {
            alpha: config.alpha,
        })
    }

    fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> Result<(), PluginError> {
        let (dims, _) = batch_shapes(&images, &targets)?;
        let lam = beta(self.alpha, &mut rng(seed))?;
        mixup_with(
            images.data.into_mut_slice(),
            targets.data.into_mut_slice(),
            dims[0],
            lam,
        );
        Ok(())
    }
}

/// Config of [`Cutmix`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct CutmixConfig {
    /// Concentration (> 0) of Beta(alpha, alpha), from which lambda is drawn once per batch.
    pub alpha: f64,
    /// Set lambda to 1 - (clipped box area / image area), as timm's correct_lam.
    pub correct_lam: bool,
}

impl Default for CutmixConfig {
    fn default() -> Self {
        CutmixConfig {
            alpha: 1.0,
            correct_lam: true,
        }
    }
}

/// timm's CutMix (batch mode).
pub struct Cutmix {
    config: CutmixConfig,
}

impl Component for Cutmix {
    const NAME: &'static str = "cutmix";
    const DESCRIPTION: &'static str =
        "Pastes a box from the mirrored sample, targets mixed by area (timm Mixup with cutmix)";
    type Config = CutmixConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        check_alpha(config.alpha)
    }
}

impl BatchAugment for Cutmix {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(Cutmix { config })
    }

    fn apply(
        &self,
        images: TensorMut<'_>,
        targets: TensorMut<'_>,
        seed: u64,
    ) -> Result<(), PluginError> {
        let (dims, _) = batch_shapes(&images, &targets)?;
        let mut rng = rng(seed);
        let lam = beta(self.config.alpha, &mut rng)?;
        let (b, lam) = cutmix_box(dims[2], dims[3], lam, self.config.correct_lam, &mut rng);
        cutmix_with(
            images.data.into_mut_slice(),
            targets.data.into_mut_slice(),
            dims,
            b,
            lam,
        );
        Ok(())
    }
}
