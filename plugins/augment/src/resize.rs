//! Resizing 8-bit RGB images as torchvision's `resize` does on a `uint8` tensor.
//!
//! The resampling is `fast_image_resize`'s separable convolution on `U8x3` pixels. With
//! `antialias: true` (torchvision's default) its `Bilinear` and `CatmullRom` (a = -0.5) filters,
//! widened by the scale factor when shrinking, are the kernels torch's antialiased `interpolate`
//! uses (both follow Pillow); without antialiasing the kernel keeps its size, and bicubic uses
//! torch's a = -0.75 cubic.
//!
//! Pass order matters for bicubic: its overshoot is clamped to `u8` between the two passes, and
//! torch (like Pillow) resamples horizontally first, while `fast_image_resize` does the vertical
//! pass first on `u8` images. Bicubic therefore runs as two single-axis resizes, horizontal then
//! vertical, which matches torchvision within one level; bilinear cannot overshoot, so its
//! single two-axis call already matches and is kept for speed.

use std::cell::RefCell;

use clshost_plugin_api::{ImageU8, PluginError};
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{Filter, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};

use crate::geometry::CropBox;

/// The resampling kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Triangle (linear) kernel.
    Bilinear,
    /// Cubic convolution kernel.
    Bicubic,
}

thread_local! {
    /// One resizer per thread, so its scratch buffers are reused between calls.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Torch's non-antialiased bicubic kernel (Keys cubic with a = -0.75).
fn cubic_a075(x: f64) -> f64 {
    const A: f64 = -0.75;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// The `fast_image_resize` algorithm for a torchvision interpolation mode.
fn algorithm(interpolation: Interpolation, antialias: bool) -> Result<ResizeAlg, PluginError> {
    Ok(match (interpolation, antialias) {
        (Interpolation::Bilinear, true) => ResizeAlg::Convolution(FilterType::Bilinear),
        (Interpolation::Bicubic, true) => ResizeAlg::Convolution(FilterType::CatmullRom),
        (Interpolation::Bilinear, false) => ResizeAlg::Interpolation(FilterType::Bilinear),
        (Interpolation::Bicubic, false) => {
            let filter = Filter::new("cubic-0.75", cubic_a075, 2.0)
                .map_err(|e| PluginError::internal(format!("cubic filter: {e:?}")))?;
            ResizeAlg::Interpolation(FilterType::Custom(filter))
        }
    })
}

/// Resizes the `region` of `image` to `height` x `width`, like torchvision's
/// `resized_crop(image, top, left, h, w, [height, width], interpolation, antialias)`: the region
/// is cut out first, so the filter never reads pixels outside it. A region already of the output
/// size is copied unchanged, as torchvision does. The region must lie inside the image.
pub fn resized_crop(
    image: &ImageU8,
    region: CropBox,
    height: u32,
    width: u32,
    interpolation: Interpolation,
    antialias: bool,
) -> Result<ImageU8, PluginError> {
    if !region.inside(image.width, image.height) || region.height == 0 || region.width == 0 {
        return Err(PluginError::input(format!(
            "crop {region:?} is not inside the {}x{} image",
            image.width, image.height
        )));
    }
    if height == 0 || width == 0 {
        return Err(PluginError::input("cannot resize to an empty image"));
    }
    if (region.height, region.width) == (height, width) {
        return Ok(crate::geometry::crop(image, region));
    }
    let src = ImageRef::new(image.width, image.height, &image.data, PixelType::U8x3)
        .map_err(|e| PluginError::input(format!("bad image buffer: {e:?}")))?;
    let view = CroppedImage::new(
        &src,
        region.left as u32,
        region.top as u32,
        region.width,
        region.height,
    )
    .map_err(|e| PluginError::input(format!("bad crop: {e:?}")))?;
    let options = ResizeOptions::new().resize_alg(algorithm(interpolation, antialias)?);
    let run = |src: &CroppedImage<'_, ImageRef<'_>>, dst: &mut Image<'_>| {
        RESIZER
            .with(|r| r.borrow_mut().resize(src, dst, &options))
            .map_err(|e| PluginError::internal(format!("resize failed: {e:?}")))
    };
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let two_pass =
        interpolation == Interpolation::Bicubic && region.width != width && region.height != height;
    if two_pass {
        let mut horizontal = Image::new(width, region.height, PixelType::U8x3);
        run(&view, &mut horizontal)?;
        let data = horizontal.into_vec();
        let mid = ImageRef::new(width, region.height, &data, PixelType::U8x3)
            .map_err(|e| PluginError::internal(format!("intermediate image: {e:?}")))?;
        let mid_view = CroppedImage::new(&mid, 0, 0, width, region.height)
            .map_err(|e| PluginError::internal(format!("intermediate image: {e:?}")))?;
        run(&mid_view, &mut dst)?;
    } else {
        run(&view, &mut dst)?;
    }
    ImageU8::new(width, height, dst.into_vec())
}

/// Resizes the whole image to `height` x `width` (torchvision's `resize` with an explicit size).
pub fn resize(
    image: &ImageU8,
    height: u32,
    width: u32,
    interpolation: Interpolation,
    antialias: bool,
) -> Result<ImageU8, PluginError> {
    let full = CropBox::new(0, 0, image.height, image.width);
    resized_crop(image, full, height, width, interpolation, antialias)
}

/// The output size of torchvision's `resize(size=[shorter])`: the shorter side becomes
/// `shorter`, the longer one keeps the aspect ratio (truncated), and if `max_size` is given and
/// exceeded, the longer side becomes `max_size` instead. Returns `(height, width)`.
pub fn shorter_side_size(
    height: u32,
    width: u32,
    shorter: u32,
    max_size: Option<u32>,
) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let mut new_short = shorter;
    let mut new_long = (f64::from(shorter) * f64::from(long) / f64::from(short)) as u32;
    if let Some(max) = max_size
        && new_long > max
    {
        new_short = (f64::from(max) * f64::from(new_short) / f64::from(new_long)) as u32;
        new_long = max;
    }
    if width <= height {
        (new_long, new_short)
    } else {
        (new_short, new_long)
    }
}
