//! The auto-augment family with torchvision's op set and magnitude tables:
//! `auto_augment` (ImageNet, CIFAR-10 and SVHN policies), `rand_augment`,
//! `trivial_augment_wide` and `aug_mix`.

use clshost_plugin_api::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, Gamma};

use crate::checks;
use crate::color;
use crate::geometry::{self, Sampling, linspace_f32};
use crate::rng::{int_inclusive, rng};

/// One image operation of the auto-augment family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Leaves the image unchanged.
    Identity,
    /// Horizontal shear by `magnitude` (the tangent), about the top-left corner.
    ShearX,
    /// Vertical shear by `magnitude` (the tangent), about the top-left corner.
    ShearY,
    /// Horizontal translation by `int(magnitude)` pixels.
    TranslateX,
    /// Vertical translation by `int(magnitude)` pixels.
    TranslateY,
    /// Rotation by `magnitude` degrees about the centre.
    Rotate,
    /// Brightness factor `1 + magnitude`.
    Brightness,
    /// Saturation factor `1 + magnitude`.
    Color,
    /// Contrast factor `1 + magnitude`.
    Contrast,
    /// Sharpness factor `1 + magnitude`.
    Sharpness,
    /// Keeps `int(magnitude)` bits.
    Posterize,
    /// Inverts values at or above `255 * magnitude`.
    Solarize,
    /// Per-channel contrast stretch.
    AutoContrast,
    /// Per-channel histogram equalization.
    Equalize,
    /// `255 - v`.
    Invert,
}

impl Op {
    /// torchvision's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::ShearX => "ShearX",
            Op::ShearY => "ShearY",
            Op::TranslateX => "TranslateX",
            Op::TranslateY => "TranslateY",
            Op::Rotate => "Rotate",
            Op::Brightness => "Brightness",
            Op::Color => "Color",
            Op::Contrast => "Contrast",
            Op::Sharpness => "Sharpness",
            Op::Posterize => "Posterize",
            Op::Solarize => "Solarize",
            Op::AutoContrast => "AutoContrast",
            Op::Equalize => "Equalize",
            Op::Invert => "Invert",
        }
    }

    /// Every op, in torchvision's order.
    pub const ALL: [Op; 15] = [
        Op::Identity,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateX,
        Op::TranslateY,
        Op::Rotate,
        Op::Brightness,
        Op::Color,
        Op::Contrast,
        Op::Sharpness,
        Op::Posterize,
        Op::Solarize,
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
    ];

    /// The op with torchvision's `name`.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Applies `op` with an explicit (already signed) `magnitude`, exactly as torchvision's
/// `_apply_image_or_video_transform` does on a uint8 tensor with zero fill.
pub fn apply_op(image: ImageU8, op: Op, magnitude: f64, sampling: Sampling) -> ImageU8 {
    let mut image = image;
    match op {
        Op::Identity => {}
        Op::ShearX | Op::ShearY => {
            let deg = magnitude.atan().to_degrees();
            let shear = if op == Op::ShearX {
                [deg, 0.0]
            } else {
                [0.0, deg]
            };
            image = geometry::affine(&image, 0.0, [0.0; 2], 1.0, shear, Some([0.0; 2]), sampling);
        }
        Op::TranslateX | Op::TranslateY => {
            let t = magnitude.trunc();
            let translate = if op == Op::TranslateX {
                [t, 0.0]
            } else {
                [0.0, t]
            };
            image = geometry::affine(&image, 0.0, translate, 1.0, [0.0; 2], None, sampling);
        }
        Op::Rotate => image = geometry::rotate(&image, magnitude, sampling),
        Op::Brightness => color::adjust_brightness(&mut image, 1.0 + magnitude),
        Op::Color => color::adjust_saturation(&mut image, 1.0 + magnitude),
        Op::Contrast => color::adjust_contrast(&mut image, 1.0 + magnitude),
        Op::Sharpness => color::adjust_sharpness(&mut image, 1.0 + magnitude),
        Op::Posterize => color::posterize(&mut image, magnitude.max(0.0) as u32),
        Op::Solarize => color::solarize(&mut image, 255.0 * magnitude),
        Op::AutoContrast => color::autocontrast(&mut image),
        Op::Equalize => color::equalize(&mut image),
        Op::Invert => color::invert(&mut image),
    }
    image
}

/// Which torchvision magnitude table to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `TrivialAugmentWide`'s wide ranges.
    TrivialAugmentWide,
    /// `RandAugment`'s ranges.
    RandAugment,
    /// `AutoAugment`'s ranges (same as RandAugment's).
    AutoAugment,
    /// `AugMix`'s ranges.
    AugMix,
}

/// torchvision's `(8 - arange(n) / ((n - 1) / d)).round().int()` in float32.
fn posterize_bits(base: f32, divisor: f64, bins: usize) -> Vec<f64> {
    let step = ((bins as f64 - 1.0) / divisor) as f32;
    (0..bins)
        .map(|i| f64::from((base - i as f32 / step).round_ties_even()))
        .collect()
}

/// The magnitude table of `op` in `family` for an image of `height` x `width`, with `bins`
/// entries, and whether the magnitude gets a random sign; `None` for ops without a magnitude.
pub fn magnitudes(
    family: Family,
    op: Op,
    bins: usize,
    height: u32,
    width: u32,
) -> (Option<Vec<f64>>, bool) {
    let lin = |end: f64| {
        Some(
            linspace_f32(0.0, end as f32, bins)
                .into_iter()
                .map(f64::from)
                .collect::<Vec<_>>(),
        )
    };
    let (w, h) = (f64::from(width), f64::from(height));
    let wide = family == Family::TrivialAugmentWide;
    match op {
        Op::ShearX | Op::ShearY => (lin(if wide { 0.99 } else { 0.3 }), true),
        Op::TranslateX | Op::TranslateY => {
            let side = if op == Op::TranslateX { w } else { h };
            let end = match family {
                Family::TrivialAugmentWide => 32.0,
                Family::AugMix => side / 3.0,
                _ => 150.0 / 331.0 * side,
            };
            (lin(end), true)
        }
        Op::Rotate => (lin(if wide { 135.0 } else { 30.0 }), true),
        Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => {
            (lin(if wide { 0.99 } else { 0.9 }), true)
        }
        Op::Posterize => {
            let bits = match family {
                Family::TrivialAugmentWide => posterize_bits(8.0, 6.0, bins),
                Family::AugMix => posterize_bits(4.0, 4.0, bins),
                _ => posterize_bits(8.0, 4.0, bins),
            };
            (Some(bits), false)
        }
        Op::Solarize => (
            Some(
                linspace_f32(1.0, 0.0, bins)
                    .into_iter()
                    .map(f64::from)
                    .collect(),
            ),
            false,
        ),
        Op::Identity | Op::AutoContrast | Op::Equalize | Op::Invert => (None, false),
    }
}

/// Picks the magnitude at `bin` of `op`'s table and gives it a random sign where torchvision
/// does (`rand <= 0.5` negates).
fn signed_magnitude(
    family: Family,
    op: Op,
    bins: usize,
    bin: usize,
    image: &ImageU8,
    rng: &mut impl Rng,
) -> f64 {
    match magnitudes(family, op, bins, image.height, image.width) {
        (Some(table), signed) => {
            let m = table[bin];
            if signed && rng.random::<f64>() <= 0.5 {
                -m
            } else {
                m
            }
        }
        (None, _) => 0.0,
    }
}

/// The ops of TrivialAugmentWide and RandAugment.
const WIDE_OPS: [Op; 14] = [
    Op::Identity,
    Op::ShearX,
    Op::ShearY,
    Op::TranslateX,
    Op::TranslateY,
    Op::Rotate,
    Op::Brightness,
    Op::Color,
    Op::Contrast,
    Op::Sharpness,
    Op::Posterize,
    Op::Solarize,
    Op::AutoContrast,
    Op::Equalize,
];

/// Config of [`TrivialAugmentWide`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct TrivialAugmentWideConfig {
    /// Number of magnitude levels (>= 2).
    pub num_magnitude_bins: u32,
    /// Sampling of shear/translate/rotate: nearest or bilinear.
    pub interpolation: Sampling,
}

impl Default for TrivialAugmentWideConfig {
    fn default() -> Self {
        TrivialAugmentWideConfig {
            num_magnitude_bins: 31,
            interpolation: Sampling::Nearest,
        }
    }
}

/// torchvision's `TrivialAugmentWide`: one uniformly chosen op at a uniformly chosen magnitude.
pub struct TrivialAugmentWide {
    config: TrivialAugmentWideConfig,
}

impl Component for TrivialAugmentWide {
    const NAME: &'static str = "trivial_augment_wide";
    const DESCRIPTION: &'static str =
        "One random op at a random magnitude (torchvision TrivialAugmentWide)";
    type Config = TrivialAugmentWideConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::at_least("num_magnitude_bins", config.num_magnitude_bins, 2)
    }
}

impl ImageAugment for TrivialAugmentWide {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(TrivialAugmentWide { config })
    }

    fn apply(&self, image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let mut rng = rng(seed);
        let op = WIDE_OPS[rng.random_range(0..WIDE_OPS.len())];
        let bins = self.config.num_magnitude_bins as usize;
        let bin = rng.random_range(0..bins);
        let family = Family::TrivialAugmentWide;
        let m = signed_magnitude(family, op, bins, bin, &image, &mut rng);
        Ok(apply_op(image, op, m, self.config.interpolation))
    }
}

/// Config of [`RandAugment`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct RandAugmentConfig {
    /// Number of ops applied in sequence.
    pub num_ops: u32,
    /// Magnitude bin of every op, below num_magnitude_bins.
    pub magnitude: u32,
    /// Number of magnitude levels (>= 2).
    pub num_magnitude_bins: u32,
    /// Sampling of shear/translate/rotate: nearest or bilinear.
    pub interpolation: Sampling,
}

impl Default for RandAugmentConfig {
    fn default() -> Self {
        RandAugmentConfig {
            num_ops: 2,
            magnitude: 9,
            num_magnitude_bins: 31,
            interpolation: Sampling::Nearest,
        }
    }
}

/// torchvision's `RandAugment`: `num_ops` uniformly chosen ops at a fixed magnitude.
pub struct RandAugment {
    config: RandAugmentConfig,
}

impl Component for RandAugment {
    const NAME: &'static str = "rand_augment";
    const DESCRIPTION: &'static str =
        "num_ops random ops at a fixed magnitude (torchvision RandAugment)";
    type Config = RandAugmentConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        checks::at_least("num_magnitude_bins", config.num_magnitude_bins, 2)?;
        if config.magnitude >= config.num_magnitude_bins {
            return Err(PluginError::config(
                "magnitude",
                format!(
                    "must be below num_magnitude_bins ({}), got {}",
                    config.num_magnitude_bins, config.magnitude
                ),
            ));
        }
        Ok(())
    }
}

impl ImageAugment for RandAugment {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(RandAugment { config })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let c = &self.config;
        let mut rng = rng(seed);
        let bins = c.num_magnitude_bins as usize;
        for _ in 0..c.num_ops {
            let op = WIDE_OPS[rng.random_range(0..WIDE_OPS.len())];
            let m = signed_magnitude(
                Family::RandAugment,
                op,
                bins,
                c.magnitude as usize,
                &image,
                &mut rng,
            );
            image = apply_op(image, op, m, c.interpolation);
        }
        Ok(image)
    }
}

/// The learned AutoAugment policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The ImageNet policy.
    Imagenet,
    /// The CIFAR-10 policy.
    Cifar10,
    /// The SVHN policy.
    Svhn,
}

/// One step of a sub-policy: the op, its probability and its magnitude bin (of 10).
type Step = (Op, f64, usize);

/// torchvision's sub-policies (pairs of steps) for `policy`.
pub fn sub_policies(policy: Policy) -> &'static [[Step; 2]] {
    use Op::*;
    const IMAGENET: [[Step; 2]; 25] = [
        [(Posterize, 0.4, 8), (Rotate, 0.6, 9)],
        [(Solarize, 0.6, 5), (AutoContrast, 0.6, 0)],
        [(Equalize, 0.8, 0), (Equalize, 0.6, 0)],
        [(Posterize, 0.6, 7), (Posterize, 0.6, 6)],
        [(Equalize, 0.4, 0), (Solarize, 0.2, 4)],
        [(Equalize, 0.4, 0), (Rotate, 0.8, 8)],
        [(Solarize, 0.6, 3), (Equalize, 0.6, 0)],
        [(Posterize, 0.8, 5), (Equalize, 1.0, 0)],
        [(Rotate, 0.2, 3), (Solarize, 0.6, 8)],
        [(Equalize, 0.6, 0), (Posterize, 0.4, 6)],
        [(Rotate, 0.8, 8), (Color, 0.4, 0)],
        [(Rotate, 0.4, 9), (Equalize, 0.6, 0)],
        [(Equalize, 0.0, 0), (Equalize, 0.8, 0)],
        [(Invert, 0.6, 0), (Equalize, 1.0, 0)],
        [(Color, 0.6, 4), (Contrast, 1.0, 8)],
        [(Rotate, 0.8, 8), (Color, 1.0, 2)],
        [(Color, 0.8, 8), (Solarize, 0.8, 7)],
        [(Sharpness, 0.4, 7), (Invert, 0.6, 0)],
        [(ShearX, 0.6, 5), (Equalize, 1.0, 0)],
        [(Color, 0.4, 0), (Equalize, 0.6, 0)],
        [(Equalize, 0.4, 0), (Solarize, 0.2, 4)],
        [(Solarize, 0.6, 5), (AutoContrast, 0.6, 0)],
        [(Invert, 0.6, 0), (Equalize, 1.0, 0)],
        [(Color, 0.6, 4), (Contrast, 1.0, 8)],
        [(Equalize, 0.8, 0), (Equalize, 0.6, 0)],
    ];
    const CIFAR10: [[Step; 2]; 25] = [
        [(Invert, 0.1, 0), (Contrast, 0.2, 6)],
        [(Rotate, 0.7, 2), (TranslateX, 0.3, 9)],
        [(Sharpness, 0.8, 1), (Sharpness, 0.9, 3)],
        [(ShearY, 0.5, 8), (TranslateY, 0.7, 9)],
        [(AutoContrast, 0.5, 0), (Equalize, 0.9, 0)],
        [(ShearY, 0.2, 7), (Posterize, 0.3, 7)],
        [(Color, 0.4, 3), (Brightness, 0.6, 7)],
        [(Sharpness, 0.3, 9), (Brightness, 0.7, 9)],
        [(Equalize, 0.6, 0), (Equalize, 0.5, 0)],
        [(Contrast, 0.6, 7), (Sharpness, 0.6, 5)],
        [(Color, 0.7, 7), (TranslateX, 0.5, 8)],
        [(Equalize, 0.3, 0), (AutoContrast, 0.4, 0)],
        [(TranslateY, 0.4, 3), (Sharpness, 0.2, 6)],
        [(Brightness, 0.9, 6), (Color, 0.2, 8)],
        [(Solarize, 0.5, 2), (Invert, 0.0, 0)],
        [(Equalize, 0.2, 0), (AutoContrast, 0.6, 0)],
        [(Equalize, 0.2, 0), (Equalize, 0.6, 0)],
        [(Color, 0.9, 9), (Equalize, 0.6, 0)],
        [(AutoContrast, 0.8, 0), (Solarize, 0.2, 8)],
        [(Brightness, 0.1, 3), (Color, 0.7, 0)],
        [(Solarize, 0.4, 5), (AutoContrast, 0.9, 0)],
        [(TranslateY, 0.9, 9), (TranslateY, 0.7, 9)],
        [(AutoContrast, 0.9, 0), (Solarize, 0.8, 3)],
        [(Equalize, 0.8, 0), (Invert, 0.1, 0)],
        [(TranslateY, 0.7, 9), (AutoContrast, 0.9, 0)],
    ];
    const SVHN: [[Step; 2]; 25] = [
        [(ShearX, 0.9, 4), (Invert, 0.2, 0)],
        [(ShearY, 0.9, 8), (Invert, 0.7, 0)],
        [(Equalize, 0.6, 0), (Solarize, 0.6, 6)],
        [(Invert, 0.9, 0), (Equalize, 0.6, 0)],
        [(Equalize, 0.6, 0), (Rotate, 0.9, 3)],
        [(ShearX, 0.9, 4), (AutoContrast, 0.8, 0)],
        [(ShearY, 0.9, 8), (Invert, 0.4, 0)],
        [(ShearY, 0.9, 5), (Solarize, 0.2, 6)],
        [(Invert, 0.9, 0), (AutoContrast, 0.8, 0)],
        [(Equalize, 0.6, 0), (Rotate, 0.9, 3)],
        [(ShearX, 0.9, 4), (Solarize, 0.3, 3)],
        [(ShearY, 0.8, 8), (Invert, 0.7, 0)],
        [(Equalize, 0.9, 0), (TranslateY, 0.6, 6)],
        [(Invert, 0.9, 0), (Equalize, 0.6, 0)],
        [(Contrast, 0.3, 3), (Rotate, 0.8, 4)],
        [(Invert, 0.8, 0), (TranslateY, 0.0, 2)],
        [(ShearY, 0.7, 6), (Solarize, 0.4, 8)],
        [(Invert, 0.6, 0), (Rotate, 0.8, 4)],
        [(ShearY, 0.3, 7), (TranslateX, 0.9, 3)],
        [(ShearX, 0.1, 6), (Invert, 0.6, 0)],
        [(Solarize, 0.7, 2), (TranslateY, 0.6, 7)],
        [(ShearY, 0.8, 4), (Invert, 0.8, 0)],
        [(ShearX, 0.7, 9), (TranslateY, 0.8, 3)],
        [(ShearY, 0.8, 5), (AutoContrast, 0.7, 0)],
        [(ShearX, 0.7, 2), (Invert, 0.1, 0)],
    ];
    match policy {
        Policy::Imagenet => &IMAGENET,
        Policy::Cifar10 => &CIFAR10,
        Policy::Svhn => &SVHN,
    }
}

/// Config of [`AutoAugment`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct AutoAugmentConfig {
    /// imagenet, cifar10 or svhn.
    pub policy: Policy,
    /// Sampling of shear/translate/rotate: nearest or bilinear.
    pub interpolation: Sampling,
}

impl Default for AutoAugmentConfig {
    fn default() -> Self {
        AutoAugmentConfig {
            policy: Policy::Imagenet,
            interpolation: Sampling::Nearest,
        }
    }
}

/// torchvision's `AutoAugment`: one random sub-policy, each of its two steps applied with its
/// probability.
pub struct AutoAugment {
    config: AutoAugmentConfig,
}

impl Component for AutoAugment {
    const NAME: &'static str = "auto_augment";
    const DESCRIPTION: &'static str =
        "A random sub-policy of a learned AutoAugment policy (torchvision AutoAugment)";
    type Config = AutoAugmentConfig;
}

impl ImageAugment for AutoAugment {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(AutoAugment { config })
    }

    fn apply(&self, mut image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let mut rng = rng(seed);
        let policies = sub_policies(self.config.policy);
        let steps = policies[rng.random_range(0..policies.len())];
        for (op, p, bin) in steps {
            if rng.random::<f64>() > p {
                continue;
            }
            let m = signed_magnitude(Family::AutoAugment, op, 10, bin, &image, &mut rng);
            image = apply_op(image, op, m, self.config.interpolation);
        }
        Ok(image)
    }
}

/// AugMix's ops (`all_ops` adds the last four).
const AUGMIX_OPS: [Op; 13] = [
    Op::ShearX,
    Op::ShearY,
    Op::TranslateX,
    Op::TranslateY,
    Op::Rotate,
    Op::Posterize,
    Op::Solarize,
    Op::AutoContrast,
    Op::Equalize,
    Op::Brightness,
    Op::Color,
    Op::Contrast,
    Op::Sharpness,
];

/// Mixes `m0 * image + sum_i weights[i] * chain_i(image)` in float32 and truncates to u8:
/// `AugMix` with its chains (op, signed magnitude) and weights forced.
pub fn aug_mix_with(
    image: &ImageU8,
    chains: &[Vec<(Op, f64)>],
    m0: f64,
    weights: &[f64],
    sampling: Sampling,
) -> ImageU8 {
    let m0 = m0 as f32;
    let mut mix: Vec<f32> = image.data.iter().map(|&v| m0 * f32::from(v)).collect();
    for (chain, &w) in chains.iter().zip(weights) {
        let mut aug = image.clone();
        for &(op, m) in chain {
            aug = apply_op(aug, op, m, sampling);
        }
        let w = w as f32;
        for (acc, &v) in mix.iter_mut().zip(aug.data.iter()) {
            *acc += w * f32::from(v);
        }
    }
    let mut out = image.clone();
    for (dst, v) in out.data.iter_mut().zip(mix) {
        *dst = v.clamp(0.0, 255.0) as u8;
    }
    out
}

/// Draws from a Dirichlet distribution with every concentration `alpha`.
fn dirichlet(alpha: f64, n: usize, rng: &mut impl Rng) -> Result<Vec<f64>, PluginError> {
    let gamma = Gamma::new(alpha, 1.0)
        .map_err(|e| PluginError::internal(format!("gamma({alpha}): {e}")))?;
    let draws: Vec<f64> = (0..n).map(|_| gamma.sample(rng)).collect();
    let sum: f64 = draws.iter().sum();
    Ok(if sum > 0.0 {
        draws.iter().map(|d| d / sum).collect()
    } else {
        vec![1.0 / n as f64; n]
    })
}

/// Config of [`AugMix`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct AugMixConfig {
    /// Ops draw their magnitude bin uniformly below this (1-10).
    pub severity: u32,
    /// Number of chains mixed (>= 1).
    pub mixture_width: u32,
    /// Ops per chain; <= 0 draws 1 to 3 per chain.
    pub chain_depth: i32,
    /// Concentration (> 0) of the Beta weight of the original and the Dirichlet weights of the
    /// chains.
    pub alpha: f64,
    /// Also use brightness, color, contrast and sharpness.
    pub all_ops: bool,
    /// Sampling of shear/translate/rotate: nearest or bilinear.
    pub interpolation: Sampling,
}

impl Default for AugMixConfig {
    fn default() -> Self {
        AugMixConfig {
            severity: 3,
            mixture_width: 3,
            chain_depth: -1,
            alpha: 1.0,
            all_ops: true,
            interpolation: Sampling::Bilinear,
        }
    }
}

/// torchvision's `AugMix`.
pub struct AugMix {
    config: AugMixConfig,
}

impl Component for AugMix {
    const NAME: &'static str = "aug_mix";
    const DESCRIPTION: &'static str =
        "Mixes the image with several random op chains (torchvision AugMix)";
    type Config = AugMixConfig;

    fn check(config: &Self::Config) -> Result<(), PluginError> {
        if !(1..=10).contains(&config.severity) {
            return Err(PluginError::config(
                "severity",
                format!("must be in 1..=10, got {}", config.severity),
            ));
        }
        checks::at_least("mixture_width", config.mixture_width, 1)?;
        if !(config.alpha.is_finite() && config.alpha > 0.0) {
            return Err(PluginError::config(
                "alpha",
                format!("must be > 0, got {}", config.alpha),
            ));
        }
        Ok(())
    }
}

impl ImageAugment for AugMix {
    fn new(config: Self::Config, _ctx: &AugmentContext) -> Result<Self, PluginError> {
        Ok(AugMix { config })
    }

    fn apply(&self, image: ImageU8, seed: u64) -> Result<ImageU8, PluginError> {
        let c = &self.config;
        let mut rng = rng(seed);
        let ops: &[Op] = if c.all_ops {
            &AUGMIX_OPS
        } else {
            &AUGMIX_OPS[..9]
        };
        let width = c.mixture_width as usize;
        let m = dirichlet(c.alpha, 2, &mut rng)?;
        let weights: Vec<f64> = dirichlet(c.alpha, width, &mut rng)?
            .into_iter()
            .map(|w| w * m[1])
            .collect();
        let mut chains = Vec::with_capacity(width);
        for _ in 0..width {
            let depth = if c.chain_depth > 0 {
                c.chain_depth as i64
            } else {
                int_inclusive(&mut rng, 1, 3)
            };
            let mut chain = Vec::with_capacity(depth as usize);
            for _ in 0..depth {
                let op = ops[rng.random_range(0..ops.len())];
                let bin = rng.random_range(0..c.severity as usize);
                let mag = signed_magnitude(Family::AugMix, op, 10, bin, &image, &mut rng);
                chain.push((op, mag));
            }
            chains.push(chain);
        }
        Ok(aug_mix_with(
            &image,
            &chains,
            m[0],
            &weights,
            c.interpolation,
        ))
    }
}
