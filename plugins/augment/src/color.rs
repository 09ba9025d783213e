//! Photometric ops on 8-bit RGB images, computed as torchvision's `transforms.v2.functional`
//! computes them on a `uint8` tensor: in `float32`, clamped, and truncated back to `u8` (rounded
//! where torchvision rounds), so results agree to within one intensity level.

use clshost_plugin_api::ImageU8;

/// torchvision's luma weights, applied in its order: `r*0.2989 + g*0.587 + b*0.114` in f32.
fn luma(p: &[u8]) -> f32 {
    f32::from(p[0]) * 0.2989 + f32::from(p[1]) * 0.587 + f32::from(p[2]) * 0.114
}

/// `_blend(x, y, ratio)` on one value: `x*ratio + y*(1-ratio)`, clamped, truncated.
fn blend(x: u8, y: f32, ratio: f32, one_minus: f32) -> u8 {
    (f32::from(x) * ratio + y * one_minus).clamp(0.0, 255.0) as u8
}

/// The `(ratio, 1 - ratio)` pair as torchvision passes them (both from the f64 factor).
fn ratios(factor: f64) -> (f32, f32) {
    (factor as f32, (1.0 - factor) as f32)
}

/// Multiplies every value by `factor` (`adjust_brightness`).
pub fn adjust_brightness(image: &mut ImageU8, factor: f64) {
    let f = factor as f32;
    for v in image.data.iter_mut() {
        *v = (f32::from(*v) * f).clamp(0.0, 255.0) as u8;
    }
}

/// Blends each pixel with its (floored) grey value (`adjust_saturation`).
pub fn adjust_saturation(image: &mut ImageU8, factor: f64) {
    let (r, m) = ratios(factor);
    for p in image.data.chunks_exact_mut(3) {
        let g = luma(p).floor();
        for v in p.iter_mut() {
            *v = blend(*v, g, r, m);
        }
    }
}

/// Blends the image with the mean of its (floored) grey image (`adjust_contrast`).
pub fn adjust_contrast(image: &mut ImageU8, factor: f64) {
    let n = image.data.len() / 3;
    if n == 0 {
        return;
    }
    let sum: f64 = image
        .data
        .chunks_exact(3)
        .map(|p| f64::from(luma(p).floor()))
        .sum();
    let mean = (sum / n as f64) as f32;
    let (r, m) = ratios(factor);
    for v in image.data.iter_mut() {
        *v = blend(*v, mean, r, m);
    }
}

/// Replaces every pixel by its grey value (truncated), in all three channels
/// (`rgb_to_grayscale(num_output_channels=3)`).
pub fn grayscale(image: &mut ImageU8) {
    for p in image.data.chunks_exact_mut(3) {
        let g = luma(p) as u8;
        p.fill(g);
    }
}

/// Shifts the hue by `factor` turns (in `[-0.5, 0.5]`) through torchvision's float32 RGB -> HSV
/// -> RGB round trip (`adjust_hue`).
pub fn adjust_hue(image: &mut ImageU8, factor: f64) {
    let scale = (1.0f64 / 255.0) as f32;
    let shift = factor as f32;
    let sixth = (1.0f64 / 6.0) as f32;
    for p in image.data.chunks_exact_mut(3) {
        let [r, g, b] = [p[0], p[1], p[2]].map(|v| f32::from(v) * scale);
        let maxc = r.max(g).max(b);
        let minc = r.min(g).min(b);
        let eqc = maxc == minc;
        let range = maxc - minc;
        let s = range / if eqc { 1.0 } else { maxc };
        let div = if eqc { 1.0 } else { range };
        let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
        let h = if maxc == r {
            bc - gc
        } else if maxc == g {
            rc + 2.0 - bc
        } else {
            gc + 4.0 - rc
        };
        let h = (h * sixth + 1.0) % 1.0;
        let h = (h + shift).rem_euclid(1.0);
        let v = maxc;
        let h6 = h * 6.0;
        let i = h6.floor();
        let f = h6 - i;
        let sxf = s * f;
        let one_minus_s = 1.0 - s;
        let q = ((1.0 - sxf) * v).clamp(0.0, 1.0);
        let t = ((sxf + one_minus_s) * v).clamp(0.0, 1.0);
        let pp = (one_minus_s * v).clamp(0.0, 1.0);
        let rgb = match (i as i32).rem_euclid(6) {
            0 => [v, t, pp],
            1 => [q, v, pp],
            2 => [pp, v, t],
            3 => [pp, q, v],
            4 => [t, pp, v],
            _ => [v, pp, q],
        };
        for (dst, x) in p.iter_mut().zip(rgb) {
            *dst = (x * 255.999) as u8;
        }
    }
}

/// Blends the image with a 3x3 smoothed copy (kernel 1/13 around, 5/13 centre; border pixels
/// kept), `adjust_sharpness`.
pub fn adjust_sharpness(image: &mut ImageU8, factor: f64) {
    let (w, h) = (image.width as usize, image.height as usize);
    if w <= 2 || h <= 2 {
        return;
    }
    let alpha = (1.0 - factor) as f32;
    let (a, b) = ((1.0f64 / 13.0) as f32, (5.0f64 / 13.0) as f32);
    let src = image.data.to_vec();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let at = |yy: usize, xx: usize| f32::from(src[(yy * w + xx) * 3 + c]);
                let mut sum = 0.0f32;
                for yy in y - 1..=y + 1 {
                    for xx in x - 1..=x + 1 {
                        let k = if yy == y && xx == x { b } else { a };
                        sum += at(yy, xx) * k;
                    }
                }
                let x0 = at(y, x);
                let out = x0 + alpha * (sum.round_ties_even() - x0);
                image.data[(y * w + x) * 3 + c] = out.clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Keeps the `bits` most significant bits of every value (`posterize`).
pub fn posterize(image: &mut ImageU8, bits: u32) {
    if bits >= 8 {
        return;
    }
    let mask = (((1u32 << bits) - 1) << (8 - bits)) as u8;
    for v in image.data.iter_mut() {
        *v &= mask;
    }
}

/// Inverts every value at or above `threshold` (`solarize`).
pub fn solarize(image: &mut ImageU8, threshold: f64) {
    let t = threshold as f32;
    for v in image.data.iter_mut() {
        if f32::from(*v) >= t {
            *v = 255 - *v;
        }
    }
}

/// `255 - v` everywhere (`invert`).
pub fn invert(image: &mut ImageU8) {
    for v in image.data.iter_mut() {
        *v = 255 - *v;
    }
}

/// Stretches each channel to the full range (`autocontrast`).
pub fn autocontrast(image: &mut ImageU8) {
    for c in 0..3 {
        let values = image.data.iter().skip(c).step_by(3);
        let lo = values.clone().copied().min().unwrap_or(0);
        let hi = values.copied().max().unwrap_or(0);
        let (min, inv_scale) = if lo == hi {
            (0.0f32, 1.0f32)
        } else {
            let lo = f32::from(lo);
            (lo, (f32::from(hi) - lo) * (1.0f64 / 255.0) as f32)
        };
        for v in image.data.iter_mut().skip(c).step_by(3) {
            *v = ((f32::from(*v) - min) / inv_scale).clamp(0.0, 255.0) as u8;
        }
    }
}

/// Equalizes each channel's histogram with PIL's lookup table (`equalize`).
pub fn equalize(image: &mut ImageU8) {
    for c in 0..3 {
        let mut hist = [0u64; 256];
        for &v in image.data.iter().skip(c).step_by(3) {
            hist[v as usize] += 1;
        }
        let total: u64 = hist.iter().sum();
        let last = hist.iter().rposition(|&n| n > 0).map_or(0, |i| hist[i]);
        let step = (total - last) / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut cum = 0u64;
        for (i, &n) in hist.iter().enumerate().take(255) {
            cum += n;
            lut[i + 1] = ((cum + step / 2) / step).min(255) as u8;
        }
        for v in image.data.iter_mut().skip(c).step_by(3) {
            *v = lut[*v as usize];
        }
    }
}

/// torchvision's Gaussian kernel: a softmax over `-(x / sigma)^2` on a float32 linspace of
/// `±(k-1) / (2 sqrt 2)`, which is the normalized Gaussian of standard deviation `sigma`.
pub fn gaussian_kernel(kernel_size: usize, sigma: f64) -> Vec<f32> {
    let lim = (kernel_size as f64 - 1.0) / (2.0 * 2f64.sqrt());
    let xs = crate::geometry::linspace_f32(-lim as f32, lim as f32, kernel_size);
    let s = sigma as f32;
    let logits: Vec<f32> = xs.iter().map(|x| -(x / s).powi(2)).collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Blurs with a separable `kernel_size` Gaussian of standard deviation `sigma`, reflecting at the
/// border, then rounds (`gaussian_blur`). `kernel_size` must be odd and smaller than twice each
/// side (reflect padding).
pub fn gaussian_blur(image: &mut ImageU8, kernel_size: usize, sigma: f64) {
    let k = gaussian_kernel(kernel_size, sigma);
    let r = kernel_size / 2;
    let (w, h) = (image.width as usize, image.height as usize);
    // Source index of each padded position, reflecting at the border.
    let reflect = |n: usize| -> Vec<usize> {
        (0..n + 2 * r)
            .map(|p| {
                let c = p as i64 - r as i64;
                let c = if c < 0 { -c } else { c };
                let c = if c >= n as i64 {
                    2 * (n as i64 - 1) - c
                } else {
                    c
                };
                c.clamp(0, n as i64 - 1) as usize
            })
            .collect()
    };
    let (cols, rows) = (reflect(w), reflect(h));
    let mut tmp = vec![0f32; image.data.len()];
    for (src, dst) in image
        .data
        .chunks_exact(w * 3)
        .zip(tmp.chunks_exact_mut(w * 3))
    {
        for (x, out) in dst.chunks_exact_mut(3).enumerate() {
            let mut acc = [0f32; 3];
            for (kv, &sx) in k.iter().zip(&cols[x..x + kernel_size]) {
                for (a, &v) in acc.iter_mut().zip(&src[sx * 3..sx * 3 + 3]) {
                    *a += kv * f32::from(v);
                }
            }
            out.copy_from_slice(&acc);
        }
    }
    let row = w * 3;
    let mut acc = vec![0f32; row];
    for y in 0..h {
        acc.fill(0.0);
        for (kv, &sy) in k.iter().zip(&rows[y..y + kernel_size]) {
            for (a, &v) in acc.iter_mut().zip(&tmp[sy * row..(sy + 1) * row]) {
                *a += kv * v;
            }
        }
        for (dst, a) in image.data[y * row..(y + 1) * row].iter_mut().zip(&acc) {
            *dst = a.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
}
