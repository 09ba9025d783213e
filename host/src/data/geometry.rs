//! The evaluation geometry: resize the shorter side, then center crop, exactly as torchvision's
//! eval preset (`transforms._presets.ImageClassification`) does on a `uint8` image.
//!
//! Resizing is `fast_image_resize`'s separable convolution with its `Bilinear` filter widened
//! by the scale factor when shrinking: the antialiased bilinear kernel of Pillow and of torch's
//! `interpolate(..., antialias=True)` on `uint8`. The output size follows torchvision's
//! `resize(size=[s])`: the shorter side becomes `s`, the longer one `int(s * long / short)`. The
//! center crop takes `int(round((H - h) / 2))` rows from the top and as many columns from the
//! left, padding with zeros first when the image is smaller than the crop.

use std::cell::RefCell;

use clshost_plugin_api::ImageU8;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// Why a geometry operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeometryError {
    /// A target size of zero.
    #[error("cannot resize or crop to an empty image")]
    EmptyTarget,
    /// The image buffer does not match its size, or the resizer failed.
    #[error("resize failed: {0}")]
    Resize(String),
}

thread_local! {
    /// One resizer per thread, so its scratch buffers are reused.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resize-then-crop settings of the eval path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalGeometry {
    /// The shorter side after resizing (torchvision's `resize_size`, 256 for ImageNet).
    pub resize: u32,
    /// The side of the square center crop (`crop_size`, 224 for ImageNet).
    pub crop: u32,
}

impl EvalGeometry {
    /// Resizes `image`'s shorter side to `resize`, then crops the center `crop` x `crop`.
    pub fn apply(&self, image: &ImageU8) -> Result<ImageU8, GeometryError> {
        let (height, width) = shorter_side_size(image.height, image.width, self.resize);
        let resized = resize(image, height, width)?;
        center_crop(&resized, self.crop, self.crop)
    }
}

/// torchvision's output size for `resize(size=[shorter])`, as `(height, width)`.
pub fn shorter_side_size(height: u32, width: u32, shorter: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| {
        u32::try_from(u64::from(shorter) * u64::from(long) / u64::from(short.max(1)))
            .unwrap_or(u32::MAX)
    };
    if width <= height {
        (scaled(height, width), shorter)
    } else {
        (shorter, scaled(width, height))
    }
}

/// Resizes `image` to `height` x `width` with antialiased bilinear filtering. An image already
/// of that size is returned unchanged, as torchvision does.
pub fn resize(image: &ImageU8, height: u32, width: u32) -> Result<ImageU8, GeometryError> {
    if height == 0 || width == 0 {
        return Err(GeometryError::EmptyTarget);
    }
    if (image.height, image.width) == (height, width) {
        return Ok(image.clone());
    }
    let src = ImageRef::new(image.width, image.height, &image.data, PixelType::U8x3)
        .map_err(|e| GeometryError::Resize(format!("{e:?}")))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .map_err(|e| GeometryError::Resize(format!("{e:?}")))?;
    ImageU8::new(width, height, dst.into_vec()).map_err(|e| GeometryError::Resize(e.to_string()))
}

/// torchvision's `center_crop(image, [height, width])`: pads with zeros (evenly, the extra
/// pixel going to the bottom and right) when the image is smaller, then takes the center.
pub fn center_crop(image: &ImageU8, height: u32, width: u32) -> Result<ImageU8, GeometryError> {
    if height == 0 || width == 0 {
        return Err(GeometryError::EmptyTarget);
    }
    // Offsets of the crop in the unpadded image; negative where padding comes first.
    let offset = |have: u32, want: u32| -> i64 {
        if want > have {
            -i64::from((want - have) / 2)
        } else {
            (f64::from(have - want) / 2.0).round_ties_even() as i64
        }
    };
    let top = offset(image.height, height);
    let left = offset(image.width, width);
    let mut data = vec![0u8; height as usize * width as usize * 3];
    let row_bytes = width as usize * 3;
    for y in 0..height as i64 {
        let sy = y + top;
        if sy < 0 || sy >= i64::from(image.height) {
            continue;
        }
        let x0 = left.max(0);
        let x1 = (left + i64::from(width)).min(i64::from(image.width));
        if x1 <= x0 {
            continue;
        }
        let src_start = (sy as usize * image.width as usize + x0 as usize) * 3;
        let dst_start = y as usize * row_bytes + (x0 - left) as usize * 3;
        let n = (x1 - x0) as usize * 3;
        data[dst_start..dst_start + n].copy_from_slice(&image.data[src_start..src_start + n]);
    }
    ImageU8::new(width, height, data).map_err(|e| GeometryError::Resize(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: u32, height: u32) -> ImageU8 {
        let data = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        ImageU8::new(width, height, data).unwrap()
    }

    #[test]
    fn shorter_side_truncates_the_longer_one() {
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert_eq!(shorter_side_size(53, 37, 24), (34, 24));
        assert_eq!(shorter_side_size(10, 10, 4), (4, 4));
    }

    #[test]
    fn center_crop_cuts_and_pads() {
        let image = ramp(5, 4);
        let crop = center_crop(&image, 2, 3).unwrap();
        // top = round(2 / 2) = 1, left = round(2 / 2) = 1
        let expected: Vec<u8> = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
            .iter()
            .flat_map(|&(y, x)| {
                let i = (y * 5 + x) * 3;
                image.data[i..i + 3].to_vec()
            })
            .collect();
        assert_eq!(crop.data.as_slice(), expected.as_slice());
        let padded = center_crop(&ramp(1, 1), 3, 3).unwrap();
        let mut expected = vec![0u8; 27];
        expected[12..15].copy_from_slice(&[0, 1, 2]);
        assert_eq!(padded.data.as_slice(), expected.as_slice());
    }
}
