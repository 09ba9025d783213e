//! Random flips: `horizontal_flip` and `vertical_flip`.

use clshost_plugin_api::prelude::*;

use crate::checks;
use crate::geometry;
use crate::rng::{chance, rng};

/// Config of [`HorizontalFlip`] and [`VerticalFlip`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct FlipConfig {
    /// Probability of flipping, in [0, 1].
    pub p: f64,
}

impl Default for FlipConfig {
    fn default() -> Self {
        FlipConfig { p: 0.5 }
    }
}

/// torchvision's `RandomHorizontalFlip`.
pub struct HorizontalFlip {
    p: f64,
}

impl Component for HorizontalFlip {
    const NAME: &'static str = "horizontal_flip";
    const DESCRIPTION: &'static str =
        "Mirrors the image left-right with probability p (torchvision RandomHorizontalFlip)";
    type Config = FlipConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::probability("p", config.p)
    }
}

impl ImageAugment for HorizontalFlip {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(HorizontalFlip { p: config.p })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        if chance(&mut rng(seed), self.p) {
            geometry::horizontal_flip(&mut image);
        }
        Ok(image)
    }
}

/// torchvision's `RandomVerticalFlip`.
pub struct VerticalFlip {
    p: f64,
}

impl Component for VerticalFlip {
    const NAME: &'static str = "vertical_flip";
    const DESCRIPTION: &'static str =
        "Mirrors the image top-bottom with probability p (torchvision RandomVerticalFlip)";
    type Config = FlipConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::probability("p", config.p)
    }
}

impl ImageAugment for VerticalFlip {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(VerticalFlip { p: config.p })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        if chance(&mut rng(seed), self.p) {
            geometry::vertical_flip(&mut image);
        }
        Ok(image)
    }
}
