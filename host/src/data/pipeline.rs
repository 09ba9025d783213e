//! What happens to one sample on its way into a batch: decode (plus the eval geometry on the
//! eval path), the image-stage augmentations in order, normalization with mean and std into
//! `f32` CHW, then the tensor-stage augmentations. The [`Loader`](super::Loader) runs a
//! [`Pipeline`] on its worker threads.

use clshost_plugin_api::{AugmentStage, ImageU8};

use super::decode::DecodeLimits;
use super::geometry::EvalGeometry;
use super::loader::LoaderError;
use super::settings::DataSettings;
use crate::registry::SampleAugment;

/// Per-channel normalization `(v / 255 - mean) / std`, as a lookup table per channel.
pub(super) struct Normalize {
    lut: [[f32; 256]; 3],
}

impl Normalize {
    fn new(mean: [f32; 3], std: [f32; 3]) -> Self {
        let mut lut = [[0.0; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        Normalize { lut }
    }

    /// Writes `image` (HWC u8) into `out` (CHW f32).
    pub(super) fn write(&self, image: &ImageU8, out: &mut [f32]) {
        let plane = image.width as usize * image.height as usize;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in image.data.chunks_exact(3).enumerate() {
            r[i] = self.lut[0][usize::from(px[0])];
            g[i] = self.lut[1][usize::from(px[1])];
            b[i] = self.lut[2][usize::from(px[2])];
        }
    }
}

/// What happens to one sample, from file to normalized tensor.
pub struct Pipeline {
    pub(super) augments: Vec<SampleAugment>,
    /// Index of the first tensor-stage augmentation.
    pub(super) tensor_start: usize,
    pub(super) eval: Option<EvalGeometry>,
    pub(super) height: u32,
    pub(super) width: u32,
    pub(super) normalize: Normalize,
    pub(super) limits: DecodeLimits,
}

impl Pipeline {
    /// A pipeline producing `height` x `width` samples: `augments` (every image-stage one
    /// before every tensor-stage one) with normalization by `mean` and `std` between the stages.
    pub fn new(
        augments: Vec<SampleAugment>,
        height: u32,
        width: u32,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Self, LoaderError> {
        let tensor_start = augments
            .iter()
            .position(|a| a.stage() == AugmentStage::Tensor)
            .unwrap_or(augments.len());
        if let Some(late) = augments[tensor_start..]
            .iter()
            .find(|a| a.stage() == AugmentStage::Image)
        {
            return Err(LoaderError::Order {
                image: late.origin().to_string(),
                tensor: augments[tensor_start].origin().to_string(),
            });
        }
        if height == 0 || width == 0 {
            return Err(LoaderError::Settings(
                "the input size must be at least 1x1".into(),
            ));
        }
        Ok(Pipeline {
            augments,
            tensor_start,
            eval: None,
            height,
            width,
            normalize: Normalize::new(mean, std),
            limits: DecodeLimits::default(),
        })
    }

    /// The training pipeline of `settings`: `augments`, `train_size` input, its mean and std
    /// and decode limits.
    pub fn train(
        augments: Vec<SampleAugment>,
        settings: &DataSettings,
    ) -> Result<Self, LoaderError> {
        let size = settings.train_size;
        Ok(
            Pipeline::new(augments, size, size, settings.mean, settings.std)?
                .with_limits(settings.limits()),
        )
    }

    /// The eval pipeline of `settings`: resize to `eval_resize`, center crop `eval_crop`,
    /// normalize; no augmentation.
    pub fn eval(settings: &DataSettings) -> Result<Self, LoaderError> {
        let crop = settings.eval_crop;
        Ok(
            Pipeline::new(Vec::new(), crop, crop, settings.mean, settings.std)?
                .with_eval_geometry(EvalGeometry {
                    resize: settings.eval_resize,
                    crop,
                })
                .with_limits(settings.limits()),
        )
    }

    /// Applies `geometry` right after decoding (the eval path).
    pub fn with_eval_geometry(mut self, geometry: EvalGeometry) -> Self {
        self.eval = Some(geometry);
        self
    }

    /// Uses `limits` when decoding.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The output `(height, width)` of a sample.
    pub fn size(&self) -> (u32, u32) {
        (self.height, self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_the_formula() {
        let n = Normalize::new([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        let image = ImageU8::new(2, 1, vec![0, 128, 255, 10, 20, 30]).unwrap();
        let mut out = [0.0f32; 6];
        n.write(&image, &mut out);
        let f = |v: f32, m: f32, s: f32| (v / 255.0 - m) / s;
        assert_eq!(
            out,
            [
                f(0.0, 0.485, 0.229),
                f(10.0, 0.485, 0.229),
                f(128.0, 0.456, 0.224),
                f(20.0, 0.456, 0.224),
                f(255.0, 0.406, 0.225),
                f(30.0, 0.406, 0.225),
            ]
        );
    }
}
