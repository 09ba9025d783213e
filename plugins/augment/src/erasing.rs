//! `random_erasing`: erases a random rectangle of the normalized `[3, H, W]` tensor
//! (torchvision's `RandomErasing`, with timm's per-channel random mode added).

use clshost_plugin_api::prelude::*;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::checks;
use crate::geometry::CropBox;
use crate::rng::{chance, int_inclusive, rng, round_half_even, uniform};

/// What the erased rectangle is filled with (on the normalized scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseValue {
    /// Zeros, i.e. the dataset mean colour.
    Zero,
    /// One standard-normal value per channel (timm's `mode="rand"`).
    Random,
    /// A standard-normal value per element (torchvision's `value="random"`, timm's `"pixel"`).
    PerPixel,
}

/// Fills `region` of the `[c, h, w]` tensor with `fill(channel, row, column)`: `erase` with its
/// box and values forced.
pub fn erase_with(
    data: &mut [f32],
    [c, h, w]: [usize; 3],
    region: CropBox,
    mut fill: impl FnMut(usize, usize, usize) -> f32,
) -> Result<(), PluginError> {
    if !region.inside(w as u32, h as u32) || data.len() != c * h * w {
        return Err(PluginError::input(format!(
            "cannot erase {region:?} from a [{c}, {h}, {w}] tensor"
        )));
    }
    let (top, left) = (region.top as usize, region.left as usize);
    for ch in 0..c {
        for y in 0..region.height as usize {
            for x in 0..region.width as usize {
                data[(ch * h + top + y) * w + left + x] = fill(ch, y, x);
            }
        }
    }
    Ok(())
}

/// Samples torchvision's erasing box for an `h` x `w` tensor: up to 10 tries of an area fraction
/// uniform in `scale` and a log-uniform aspect ratio in `ratio`, the box strictly smaller than
/// the tensor; `None` when every try fails (nothing is erased).
pub fn sample_erase_box(
    h: usize,
    w: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> Option<CropBox> {
    let area = (h * w) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let erase_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let eh = round_half_even((erase_area * aspect).sqrt());
        let ew = round_half_even((erase_area / aspect).sqrt());
        if !(eh < h as i64 && ew < w as i64) || eh <= 0 || ew <= 0 {
            continue;
        }
        let top = int_inclusive(rng, 0, h as i64 - eh);
        let left = int_inclusive(rng, 0, w as i64 - ew);
        return Some(CropBox::new(top, left, eh as u32, ew as u32));
    }
    None
}

/// Config of [`RandomErasing`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct RandomErasingConfig {
    /// Probability of erasing, in [0, 1].
    pub p: f64,
    /// (min, max) erased area as a fraction of the image, within (0, 1).
    pub scale: (f64, f64),
    /// (min, max) aspect ratio (height/width) of the box, sampled log-uniformly.
    pub ratio: (f64, f64),
    /// zero (the mean colour), random (one normal value per channel) or per_pixel (a normal value
    /// per element).
    pub value: EraseValue,
}

impl Default for RandomErasingConfig {
    fn default() -> Self {
        RandomErasingConfig {
            p: 0.5,
            scale: (0.02, 0.33),
            ratio: (0.3, 3.3),
            value: EraseValue::Zero,
        }
    }
}

/// torchvision's `RandomErasing` on the normalized tensor.
pub struct RandomErasing {
    config: RandomErasingConfig,
}

impl Component for RandomErasing {
    const NAME: &'static str = "random_erasing";
    const DESCRIPTION: &'static str =
        "Erases a random rectangle of the normalized tensor (torchvision RandomErasing)";
    type Config = RandomErasingConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::probability("p", config.p)?;
        checks::positive_range("ratio", config.ratio)?;
        let (lo, hi) = config.scale;
        if !(lo > 0.0 && lo <= hi && hi < 1.0) {
            return Err(PluginError::config(
                "scale",
                format!("must satisfy 0 < min <= max < 1, got ({lo}, {hi})"),
            ));
        }
        Ok(())
    }
}

impl TensorAugment for RandomErasing {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(RandomErasing { config })
    }

    fn apply(&self, tensor: TensorMut<'_>, seed: u64) -> Result<(), PluginError> {
        let c = &self.config;
        let shape: [usize; 3] = tensor.shape.as_slice().try_into().map_err(|_| {
            PluginError::input(format!(
                "expected a [C, H, W] tensor, got {:?}",
                tensor.shape
            ))
        })?;
        let mut rng = rng(seed);
        if !chance(&mut rng, c.p) {
            return Ok(());
        }
        let Some(region) = sample_erase_box(shape[1], shape[2], c.scale, c.ratio, &mut rng) else {
            return Ok(());
        };
        let data = tensor.data.into_mut_slice();
        match c.value {
            EraseValue::Zero => erase_with(data, shape, region, |_, _, _| 0.0),
            EraseValue::Random => {
                let values: Vec<f32> = (0..shape[0]).map(|_| rng.sample(StandardNormal)).collect();
                erase_with(data, shape, region, |ch, _, _| values[ch])
            }
            EraseValue::PerPixel => {
                erase_with(data, shape, region, |_, _, _| rng.sample(StandardNormal))
            }
        }
    }
}
