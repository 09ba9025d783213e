//! Crop and resize components: `random_resized_crop`, `resize`, `center_crop`, `random_crop`.

use clshost_plugin_api::prelude::*;
use rand::Rng;

use crate::checks;
use crate::geometry::{self, CropBox, PadMode};
use crate::resize::{self, Interpolation};
use crate::rng::{int_inclusive, rng, round_half_even, uniform};

/// Samples torchvision's `RandomResizedCrop` box for a `height` x `width` image: up to 10 tries
/// of an area fraction uniform in `scale` and a log-uniform aspect ratio (w/h) in `ratio`, with a
/// uniformly placed box; if none fits, the central crop clamped to `ratio` (or the whole image).
pub fn sample_resized_crop(
    height: u32,
    width: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let (h_img, w_img) = (i64::from(height), i64::from(width));
    let area = (h_img * w_img) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = round_half_even((target * aspect).sqrt());
        let h = round_half_even((target / aspect).sqrt());
        if 0 < w && w <= w_img && 0 < h && h <= h_img {
            let top = int_inclusive(rng, 0, h_img - h);
            let left = int_inclusive(rng, 0, w_img - w);
            return CropBox::new(top, left, h as u32, w as u32);
        }
    }
    let in_ratio = w_img as f64 / h_img as f64;
    let (lo, hi) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (h, w) = if in_ratio < lo {
        (round_half_even(w_img as f64 / lo), w_img)
    } else if in_ratio > hi {
        (h_img, round_half_even(h_img as f64 * hi))
    } else {
        (h_img, w_img)
    };
    CropBox::new((h_img - h) / 2, (w_img - w) / 2, h as u32, w as u32)
}

/// Config of [`RandomResizedCrop`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct RandomResizedCropConfig {
    /// Output (height, width); None uses the recipe's training input size.
    pub size: Option<(u32, u32)>,
    /// (min, max) crop area as a fraction of the image area.
    pub scale: (f64, f64),
    /// (min, max) crop aspect ratio width/height, sampled log-uniformly.
    pub ratio: (f64, f64),
    /// Resampling kernel: bilinear or bicubic.
    pub interpolation: Interpolation,
    /// Widen the kernel when downscaling, as torchvision's antialias=True.
    pub antialias: bool,
}

impl Default for RandomResizedCropConfig {
    fn default() -> Self {
        RandomResizedCropConfig {
            size: None,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            interpolation: Interpolation::Bilinear,
            antialias: true,
        }
    }
}

/// torchvision's `RandomResizedCrop`.
pub struct RandomResizedCrop {
    config: RandomResizedCropConfig,
    size: (u32, u32),
}

impl Component for RandomResizedCrop {
    const NAME: &'static str = "random_resized_crop";
    const DESCRIPTION: &'static str =
        "Crops a random area and aspect ratio, then resizes it (torchvision RandomResizedCrop)";
    type Config = RandomResizedCropConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::size("size", config.size)?;
        checks::positive_range("ratio", config.ratio)?;
        let (lo, hi) = config.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(PluginError::config(
                "scale",
                format!("must satisfy 0 < min <= max <= 1, got ({lo}, {hi})"),
            ));
        }
        Ok(())
    }
}

impl ImageAugment for RandomResizedCrop {
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError> {
        let size = checks::size_or_context(config.size, ctx)?;
        Ok(RandomResizedCrop { config, size })
    }

    fn apply(&self, image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let c = &self.config;
        let region =
            sample_resized_crop(image.height, image.width, c.scale, c.ratio, &mut rng(seed));
        let (h, w) = self.size;
        resize::resized_crop(&image, region, h, w, c.interpolation, c.antialias)
    }
}

/// Config of [`Resize`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct ResizeConfig {
    /// Output (height, width); None uses the recipe's training input size. Ignored when
    /// `shorter_side` is given.
    pub size: Option<(u32, u32)>,
    /// If set, resize so the shorter side has this length, keeping the aspect ratio (torchvision
    /// size=int); overrides size.
    pub shorter_side: Option<u32>,
    /// With shorter_side: the longer side is capped at this length.
    pub max_size: Option<u32>,
    /// Resampling kernel: bilinear or bicubic.
    pub interpolation: Interpolation,
    /// Widen the kernel when downscaling, as torchvision's antialias=True.
    pub antialias: bool,
}

impl Default for ResizeConfig {
    fn default() -> Self {
        ResizeConfig {
            size: None,
            shorter_side: None,
            max_size: None,
            interpolation: Interpolation::Bilinear,
            antialias: true,
        }
    }
}

/// torchvision's `Resize`.
pub struct Resize {
    config: ResizeConfig,
    size: (u32, u32),
}

impl Component for Resize {
    const NAME: &'static str = "resize";
    const DESCRIPTION: &'static str =
        "Resizes to a fixed size or a shorter-side length (torchvision Resize)";
    type Config = ResizeConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::size("size", config.size)?;
        if config.shorter_side == Some(0) {
            return Err(PluginError::config("shorter_side", "must be positive"));
        }
        if let (Some(s), Some(m)) = (config.shorter_side, config.max_size)
            && m <= s
        {
            return Err(PluginError::config(
                "max_size",
                format!("must be larger than shorter_side ({s}), got {m}"),
            ));
        }
        Ok(())
    }
}

impl ImageAugment for Resize {
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError> {
        let size = checks::size_or_context(config.size, ctx)?;
        Ok(Resize { config, size })
    }

    fn apply(&self, image: ImageU8, _seed: u64) -> Result<ImageU8, PluginError> {
        let c = &self.config;
        let (h, w) = match c.shorter_side {
            Some(s) => resize::shorter_side_size(image.height, image.width, s, c.max_size),
            None => self.size,
        };
        resize::resize(&image, h, w, c.interpolation, c.antialias)
    }
}

/// Config of [`CenterCrop`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct CenterCropConfig {
    /// Output (height, width); None uses the recipe's training input size. Larger than the image:
    /// zero padded.
    pub size: Option<(u32, u32)>,
}

/// torchvision's `CenterCrop` (zero padding when the crop is larger than the image).
pub struct CenterCrop {
    size: (u32, u32),
}

impl Component for CenterCrop {
    const NAME: &'static str = "center_crop";
    const DESCRIPTION: &'static str = "Crops the centre of the image (torchvision CenterCrop)";
    type Config = CenterCropConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::size("size", config.size)
    }
}

impl ImageAugment for CenterCrop {
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(CenterCrop {
            size: checks::size_or_context(config.size, ctx)?,
        })
    }

    fn apply(&self, image: ImageU8, _seed: u64) -> Result<ImageU8, PluginError> {
        let (h, w) = self.size;
        let region = geometry::center_crop_box(image.height, image.width, h, w);
        Ok(geometry::crop(&image, region))
    }
}

/// Config of [`RandomCrop`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct RandomCropConfig {
    /// Output (height, width); None uses the recipe's training input size.
    pub size: Option<(u32, u32)>,
    /// Pixels of padding added on every side before cropping.
    pub padding: u32,
    /// Pad further (both sides) when the padded image is still smaller than the crop; otherwise
    /// that is an error.
    pub pad_if_needed: bool,
    /// Value (0-255) of constant padding.
    pub fill: u8,
    /// constant, edge, reflect (no edge repeat) or symmetric (edge repeated).
    pub pad_mode: PadMode,
}

impl Default for RandomCropConfig {
    fn default() -> Self {
        RandomCropConfig {
            size: None,
            padding: 0,
            pad_if_needed: false,
            fill: 0,
            pad_mode: PadMode::Constant,
        }
    }
}

/// Pads by `[left, top, right, bottom]` and crops `height` x `width` at `(top, left)` of the padded
/// image: `RandomCrop` with its parameters forced.
pub fn random_crop_with(
    image: &ImageU8,
    padding: [u32; 4],
    mode: PadMode,
    fill: u8,
    region: CropBox,
) -> Result<ImageU8, PluginError> {
    let padded = if padding.iter().any(|&p| p > 0) {
        geometry::pad(image, padding, mode, fill)?
    } else {
        image.clone()
    };
    if !region.inside(padded.width, padded.height) {
        return Err(PluginError::input(format!(
            "crop {region:?} does not fit the padded {}x{} image",
            padded.width, padded.height
        )));
    }
    Ok(geometry::crop(&padded, region))
}

/// torchvision's `RandomCrop`.
pub struct RandomCrop {
    config: RandomCropConfig,
    size: (u32, u32),
}

impl Component for RandomCrop {
    const NAME: &'static str = "random_crop";
    const DESCRIPTION: &'static str =
        "Crops at a random position, optionally after padding (torchvision RandomCrop)";
    type Config = RandomCropConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::size("size", config.size)
    }
}

impl ImageAugment for RandomCrop {
    fn new(config: Self::Config, ctx: &AugmentContext) -> Result<Self, PluginError> {
        let size = checks::size_or_context(config.size, ctx)?;
        Ok(RandomCrop { config, size })
    }

    fn apply(&self, image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let c = &self.config;
        let (ch, cw) = self.size;
        let p = c.padding;
        let mut padding = [p; 4];
        let mut ph = image.height + 2 * p;
        let mut pw = image.width + 2 * p;
        if c.pad_if_needed {
            if ph < ch {
                let diff = ch - ph;
                padding[1] += diff;
                padding[3] += diff;
                ph += 2 * diff;
            }
            if pw < cw {
                let diff = cw - pw;
                padding[0] += diff;
                padding[2] += diff;
                pw += 2 * diff;
            }
        }
        if ph < ch || pw < cw {
            return Err(PluginError::input(format!(
                "the {pw}x{ph} (padded) image is smaller than the {cw}x{ch} crop"
            )));
        }
        let mut rng = rng(seed);
        let top = int_inclusive(&mut rng, 0, i64::from(ph - ch));
        let left = int_inclusive(&mut rng, 0, i64::from(pw - cw));
        random_crop_with(
            &image,
            padding,
            c.pad_mode,
            c.fill,
            CropBox::new(top, left, ch, cw),
        )
    }
}
