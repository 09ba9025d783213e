//! Geometric ops on 8-bit RGB images with torchvision's exact semantics: crops (zero outside the
//! image), padding, flips, and affine warps sampled like torchvision's tensor `affine`/`rotate`
//! (an inverse matrix in `f64`, a `float32` sampling grid and `grid_sample` with zero padding).

use clshost_plugin_api::{ImageU8, PluginError};
use serde::{Deserialize, Serialize};

use crate::rng::round_half_even;

/// A rectangle in pixel coordinates; `top`/`left` may be negative or the box may extend past the
/// image, where crops read zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: i64,
    /// First column.
    pub left: i64,
    /// Number of rows.
    pub height: u32,
    /// Number of columns.
    pub width: u32,
}

impl CropBox {
    /// A box from its top-left corner and size.
    pub fn new(top: i64, left: i64, height: u32, width: u32) -> Self {
        CropBox {
            top,
            left,
            height,
            width,
        }
    }

    /// Whether the box lies inside a `width` x `height` image.
    pub fn inside(&self, width: u32, height: u32) -> bool {
        self.top >= 0
            && self.left >= 0
            && self.top + i64::from(self.height) <= i64::from(height)
            && self.left + i64::from(self.width) <= i64::from(width)
    }
}

/// An all-zero image.
pub fn blank(width: u32, height: u32) -> ImageU8 {
    ImageU8 {
        width,
        height,
        data: vec![0; width as usize * height as usize * 3].into(),
    }
}

/// Cuts `region` out of the image, like torchvision's `crop`: parts outside the image are zero.
pub fn crop(image: &ImageU8, region: CropBox) -> ImageU8 {
    let mut out = blank(region.width, region.height);
    let (iw, ih) = (i64::from(image.width), i64::from(image.height));
    let x0 = region.left.clamp(0, iw);
    let x1 = (region.left + i64::from(region.width)).clamp(0, iw);
    if x0 >= x1 {
        return out;
    }
    let row_bytes = (x1 - x0) as usize * 3;
    for oy in 0..region.height as i64 {
        let sy = region.top + oy;
        if sy < 0 || sy >= ih {
            continue;
        }
        let src = (sy * iw + x0) as usize * 3;
        let dst = (oy * i64::from(region.width) + (x0 - region.left)) as usize * 3;
        out.data[dst..dst + row_bytes].copy_from_slice(&image.data[src..src + row_bytes]);
    }
    out
}

/// The box torchvision's `center_crop` takes: the anchor is `round((in - out) / 2)` with halves
/// rounded to even; a crop larger than the image reaches outside it (zero padding).
pub fn center_crop_box(image_height: u32, image_width: u32, height: u32, width: u32) -> CropBox {
    let top = round_half_even((f64::from(image_height) - f64::from(height)) / 2.0);
    let left = round_half_even((f64::from(image_width) - f64::from(width)) / 2.0);
    CropBox::new(top, left, height, width)
}

/// How `pad` fills the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// A constant value.
    Constant,
    /// Repeats the edge pixel.
    Edge,
    /// Mirrors without repeating the edge pixel (`dcb|abcd|cba`).
    Reflect,
    /// Mirrors repeating the edge pixel (`cba|abcd|dcb`).
    Symmetric,
}

/// Maps a coordinate outside `0..n` back inside for the mirroring and edge modes.
fn source_index(c: i64, n: i64, mode: PadMode) -> Option<i64> {
    if (0..n).contains(&c) {
        return Some(c);
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(c.clamp(0, n - 1)),
        PadMode::Reflect => Some(if c < 0 { -c } else { 2 * (n - 1) - c }.clamp(0, n - 1)),
        PadMode::Symmetric => Some(if c < 0 { -c - 1 } else { 2 * n - 1 - c }.clamp(0, n - 1)),
    }
}

/// Pads by `[left, top, right, bottom]` pixels, like torchvision's `pad`. Reflect and symmetric
/// padding must be smaller than the image (reflect: at most size - 1).
pub fn pad(
    image: &ImageU8,
    padding: [u32; 4],
    mode: PadMode,
    fill: u8,
) -> Result<ImageU8, PluginError> {
    let [left, top, right, bottom] = padding.map(i64::from);
    let (iw, ih) = (i64::from(image.width), i64::from(image.height));
    let limit = match mode {
        PadMode::Reflect => Some(iw.min(ih) - 1),
        PadMode::Symmetric => Some(iw.min(ih)),
        _ => None,
    };
    if let Some(limit) = limit
        && [left, top, right, bottom].iter().any(|&p| p > limit)
    {
        return Err(PluginError::input(format!(
            "{mode:?} padding of {padding:?} is too large for a {iw}x{ih} image"
        )));
    }
    let (ow, oh) = (iw + left + right, ih + top + bottom);
    let mut out = vec![fill; (ow * oh) as usize * 3];
    let cols: Vec<Option<i64>> = (0..ow).map(|x| source_index(x - left, iw, mode)).collect();
    for y in 0..oh {
        let Some(sy) = source_index(y - top, ih, mode) else {
            continue;
        };
        for (x, sx) in cols.iter().enumerate() {
            if let Some(sx) = sx {
                let s = ((sy * iw + sx) * 3) as usize;
                let d = ((y * ow) as usize + x) * 3;
                out[d..d + 3].copy_from_slice(&image.data[s..s + 3]);
            }
        }
    }
    ImageU8::new(ow as u32, oh as u32, out)
}

/// Mirrors left to right.
pub fn horizontal_flip(image: &mut ImageU8) {
    let w = image.width as usize;
    for row in image.data.chunks_exact_mut(w * 3) {
        row.as_chunks_mut::<3>().0.reverse();
    }
}

/// Mirrors top to bottom.
pub fn vertical_flip(image: &mut ImageU8) {
    let row = image.width as usize * 3;
    let h = image.height as usize;
    for y in 0..h / 2 {
        let (upper, lower) = image.data.split_at_mut((h - 1 - y) * row);
        upper[y * row..(y + 1) * row].swap_with_slice(&mut lower[..row]);
    }
}

/// How an affine warp samples the source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The nearest source pixel.
    Nearest,
    /// Bilinear interpolation of the four neighbours.
    Bilinear,
}

/// torchvision's `_get_inverse_affine_matrix`: the output-to-input matrix (row-major 2x3) of
/// `T * C * R(angle) * S(scale) * Shear * C^-1`, with `center` relative to the image centre,
/// angles in degrees.
pub fn inverse_affine_matrix(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    scale: f64,
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear[0].to_radians(), shear[1].to_radians());
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(a * sx.tan() + rot.sin());
    let c = (rot - sy).sin() / sy.cos();
    let d = rot.cos() - c * sx.tan();
    let mut m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0];
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty);
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty);
    m
}

/// torch's float32 `linspace`: the first half counts up from `start`, the second down from `end`.
pub fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// Warps the image with an output-to-input matrix as torchvision's tensor `affine` does (same
/// output size, zeros outside the source): a float32 grid through `grid_sample` with
/// `align_corners=False`, then rounding half to even.
pub fn warp_affine(image: &ImageU8, matrix: [f64; 6], sampling: Sampling) -> ImageU8 {
    let (w, h) = (image.width as usize, image.height as usize);
    let t = matrix.map(|v| v as f32);
    let (hw, hh) = (0.5 * w as f32, 0.5 * h as f32);
    let a = [
        t[0] / hw,
        t[1] / hw,
        t[2] / hw,
        t[3] / hh,
        t[4] / hh,
        t[5] / hh,
    ];
    let xs = linspace_f32((1.0 - w as f32) * 0.5, (w as f32 - 1.0) * 0.5, w);
    let ys = linspace_f32((1.0 - h as f32) * 0.5, (h as f32 - 1.0) * 0.5, h);
    let (sw, sh) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = blank(image.width, image.height);
    let src = &image.data;
    let pixel = |x: i64, y: i64| -> Option<&[u8]> {
        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            let i = (y as usize * w + x as usize) * 3;
            Some(&src[i..i + 3])
        } else {
            None
        }
    };
    for (oy, &y) in ys.iter().enumerate() {
        for (ox, &x) in xs.iter().enumerate() {
            let gx = x * a[0] + y * a[1] + a[2];
            let gy = x * a[3] + y * a[4] + a[5];
            let ix = (gx + 1.0) * sw - 0.5;
            let iy = (gy + 1.0) * sh - 0.5;
            let o = (oy * w + ox) * 3;
            match sampling {
                Sampling::Nearest => {
                    let (nx, ny) = (ix.round_ties_even() as i64, iy.round_ties_even() as i64);
                    if let Some(p) = pixel(nx, ny) {
                        out.data[o..o + 3].copy_from_slice(p);
                    }
                }
                Sampling::Bilinear => {
                    let (x0, y0) = (ix.floor(), iy.floor());
                    let (fx, fy) = (ix - x0, iy - y0);
                    let (x0, y0) = (x0 as i64, y0 as i64);
                    let corners = [
                        (x0, y0, (1.0 - fx) * (1.0 - fy)),
                        (x0 + 1, y0, fx * (1.0 - fy)),
                        (x0, y0 + 1, (1.0 - fx) * fy),
                        (x0 + 1, y0 + 1, fx * fy),
                    ];
                    let mut acc = [0f32; 3];
                    for (cx, cy, wgt) in corners {
                        if let Some(p) = pixel(cx, cy) {
                            for (a, &v) in acc.iter_mut().zip(p) {
                                *a += f32::from(v) * wgt;
                            }
                        }
                    }
                    for (dst, a) in out.data[o..o + 3].iter_mut().zip(acc) {
                        *dst = a.round_ties_even().clamp(0.0, 255.0) as u8;
                    }
                }
            }
        }
    }
    out
}

/// torchvision's `affine(image, angle, translate, scale, shear, center)` with zero fill; `center`
/// is in pixel coordinates (`None`: the image centre).
pub fn affine(
    image: &ImageU8,
    angle: f64,
    translate: [f64; 2],
    scale: f64,
    shear: [f64; 2],
    center: Option<[f64; 2]>,
    sampling: Sampling,
) -> ImageU8 {
    let center = center.map_or([0.0, 0.0], |[x, y]| {
        [
            x - f64::from(image.width) * 0.5,
            y - f64::from(image.height) * 0.5,
        ]
    });
    let matrix = inverse_affine_matrix(center, angle, translate, scale, shear);
    warp_affine(image, matrix, sampling)
}

/// Rotates by `angle` degrees counter-clockwise about the centre, keeping the size, like
/// torchvision's `rotate(expand=False)` with zero fill (including its exact fast paths for 0, 180
/// and, on square images, 90 and 270 degrees).
pub fn rotate(image: &ImageU8, angle: f64, sampling: Sampling) -> ImageU8 {
    let angle = angle.rem_euclid(360.0);
    let square = image.width == image.height;
    if angle == 0.0 {
        return image.clone();
    }
    if angle == 180.0 {
        let mut out = image.clone();
        horizontal_flip(&mut out);
        vertical_flip(&mut out);
        return out;
    }
    if square && (angle == 90.0 || angle == 270.0) {
        let n = image.width as usize;
        let mut out = blank(image.width, image.height);
        for y in 0..n {
            for x in 0..n {
                // Counter-clockwise by 90: out[y][x] = in[x][n-1-y]; by 270: in[n-1-x][y].
                let (sy, sx) = if angle == 90.0 {
                    (x, n - 1 - y)
                } else {
                    (n - 1 - x, y)
                };
                let (s, d) = ((sy * n + sx) * 3, (y * n + x) * 3);
                out.data[d..d + 3].copy_from_slice(&image.data[s..s + 3]);
            }
        }
        return out;
    }
    let matrix = inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0]);
    warp_affine(image, matrix, sampling)
}
