//! Colour components: `color_jitter`, `random_grayscale`, `gaussian_blur`.

use clshost_plugin_api::prelude::*;
use rand::seq::SliceRandom;

use crate::checks;
use crate::color;
use crate::rng::{chance, rng, uniform};

/// Config of [`ColorJitter`]; a strength of 0 disables that adjustment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitterConfig {
    /// Strength b >= 0: factor uniform in [max(0, 1-b), 1+b]; 0 disables.
    pub brightness: f64,
    /// Strength c >= 0: factor uniform in [max(0, 1-c), 1+c]; 0 disables.
    pub contrast: f64,
    /// Strength s >= 0: factor uniform in [max(0, 1-s), 1+s]; 0 disables.
    pub saturation: f64,
    /// Strength h in [0, 0.5]: hue shift uniform in [-h, h] turns; 0 disables.
    pub hue: f64,
}

/// Applies brightness (0), contrast (1), saturation (2) and hue (3) in `order`, skipping the
/// adjustments whose factor is `None`: `ColorJitter` with its parameters forced.
pub fn color_jitter_with(image: &mut ImageU8, order: [usize; 4], factors: [Option<f64>; 4]) {
    for i in order {
        let Some(f) = factors[i] else { continue };
        match i {
            0 => color::adjust_brightness(image, f),
            1 => color::adjust_contrast(image, f),
            2 => color::adjust_saturation(image, f),
            _ => color::adjust_hue(image, f),
        }
    }
}

/// torchvision's `ColorJitter`: brightness, contrast, saturation and hue in a random order, each
/// with a uniformly drawn factor.
pub struct ColorJitter {
    ranges: [Option<(f64, f64)>; 4],
}

impl Component for ColorJitter {
    const NAME: &'static str = "color_jitter";
    const DESCRIPTION: &'static str =
        "Random brightness, contrast, saturation and hue in random order (torchvision ColorJitter)";
    type Config = ColorJitterConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        for (field, v) in [
            ("brightness", config.brightness),
            ("contrast", config.contrast),
            ("saturation", config.saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(PluginError::config(field, format!("must be >= 0, got {v}")));
            }
        }
        if !(0.0..=0.5).contains(&config.hue) {
            return Err(PluginError::config(
                "hue",
                format!("must be in [0, 0.5], got {}", config.hue),
            ));
        }
        Ok(())
    }
}

impl ImageAugment for ColorJitter {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        let factor = |s: f64| (s > 0.0).then(|| ((1.0 - s).max(0.0), 1.0 + s));
        Ok(ColorJitter {
            ranges: [
                factor(config.brightness),
                factor(config.contrast),
                factor(config.saturation),
                (config.hue > 0.0).then_some((-config.hue, config.hue)),
            ],
        })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let mut rng = rng(seed);
        let mut order = [0, 1, 2, 3];
        order.shuffle(&mut rng);
        let factors = self
            .ranges
            .map(|r| r.map(|(lo, hi)| uniform(&mut rng, lo, hi)));
        color_jitter_with(&mut image, order, factors);
        Ok(image)
    }
}

/// Config of [`RandomGrayscale`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct RandomGrayscaleConfig {
    /// Probability of converting, in [0, 1].
    pub p: f64,
}

impl Default for RandomGrayscaleConfig {
    fn default() -> Self {
        RandomGrayscaleConfig { p: 0.1 }
    }
}

/// torchvision's `RandomGrayscale` (three equal channels).
pub struct RandomGrayscale {
    p: f64,
}

impl Component for RandomGrayscale {
    const NAME: &'static str = "random_grayscale";
    const DESCRIPTION: &'static str =
        "Converts to grey (kept as 3 channels) with probability p (torchvision RandomGrayscale)";
    type Config = RandomGrayscaleConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::probability("p", config.p)
    }
}

impl ImageAugment for RandomGrayscale {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(RandomGrayscale { p: config.p })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        if chance(&mut rng(seed), self.p) {
            color::grayscale(&mut image);
        }
        Ok(image)
    }
}

/// Config of [`GaussianBlur`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianBlurConfig {
    /// Odd kernel size in pixels (must be smaller than twice each image side).
    pub kernel_size: u32,
    /// (min, max) standard deviation in pixels, drawn uniformly per image.
    pub sigma: (f64, f64),
    /// Probability of blurring, in [0, 1] (torchvision's GaussianBlur always blurs: p = 1).
    pub p: f64,
}

impl Default for GaussianBlurConfig {
    fn default() -> Self {
        GaussianBlurConfig {
            kernel_size: 5,
            sigma: (0.1, 2.0),
            p: 1.0,
        }
    }
}

/// torchvision's `GaussianBlur`, applied with probability `p`.
pub struct GaussianBlur {
    config: GaussianBlurConfig,
}

impl Component for GaussianBlur {
    const NAME: &'static str = "gaussian_blur";
    const DESCRIPTION: &'static str =
        "Gaussian blur with a random sigma, reflect padding (torchvision GaussianBlur)";
    type Config = GaussianBlurConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        if config.kernel_size % 2 == 0 {
            return Err(PluginError::config(
                "kernel_size",
                format!("must be odd, got {}", config.kernel_size),
            ));
        }
        checks::positive_range("sigma", config.sigma)?;
        checks::probability("p", config.p)
    }
}

impl ImageAugment for GaussianBlur {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(GaussianBlur { config })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let c = &self.config;
        let mut rng = rng(seed);
        if !chance(&mut rng, c.p) {
            return Ok(image);
        }
        let k = c.kernel_size as usize;
        if k / 2 >= image.width.min(image.height) as usize {
            return Err(PluginError::input(format!(
                "kernel_size {k} is too large for a {}x{} image",
                image.width, image.height
            )));
        }
        let sigma = uniform(&mut rng, c.sigma.0, c.sigma.1);
        color::gaussian_blur(&mut image, k, sigma);
        Ok(image)
    }
}
