//! Contact sheets of what the pipeline produces, for `clshost data preview` and the sample
//! sheet of a run (`RUN_DIR/samples.png`): normalized samples are mapped back to 8-bit RGB,
//! enlarged, and laid out in a grid, each with its class name (or a mixed target's two heaviest
//! classes) underneath in an 8x8 bitmap font.

use std::path::{Path, PathBuf};

use clshost_plugin_api::ImageU8;
use font8x8::{BASIC_FONTS, UnicodeFonts};

/// Pixels between tiles and around the sheet.
const GAP: usize = 4;
/// Height of the label strip under each tile.
const LABEL: usize = 12;
/// Side of one glyph.
const GLYPH: usize = 8;

/// One image of the sheet and the text under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// The image.
    pub image: ImageU8,
    /// Its caption.
    pub label: String,
}

/// Why a sheet could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// Nothing to show.
    #[error("no samples to preview")]
    Empty,
    /// The tiles differ in size.
    #[error("preview tiles differ in size: {0}x{1} and {2}x{3}")]
    MixedSizes(u32, u32, u32, u32),
    /// The file could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: image::ImageError,
    },
}

/// Maps a normalized `[3, height, width]` tensor back to 8-bit RGB:
/// `round((v * std + mean) * 255)`, clamped.
pub fn denormalize(chw: &[f32], height: u32, width: u32, mean: [f32; 3], std: [f32; 3]) -> ImageU8 {
    let plane = height as usize * width as usize;
    let mut data = vec![0u8; plane * 3];
    for c in 0..3 {
        for (i, &v) in chw[c * plane..(c + 1) * plane].iter().enumerate() {
            data[i * 3 + c] = ((v * std[c] + mean[c]) * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    ImageU8 {
        width,
        height,
        data: data.into(),
    }
}

/// Draws `text` in white at `(x, y)` of an RGB buffer `width` pixels wide, clipped to
/// `max_chars`; characters the font lacks are drawn as `?`.
fn draw_text(data: &mut [u8], width: usize, x: usize, y: usize, text: &str, max_chars: usize) {
    for (n, ch) in text.chars().take(max_chars).enumerate() {
        let glyph = BASIC_FONTS
            .get(ch)
            .or_else(|| BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..GLYPH {
                if bits & (1 << col) != 0 {
                    let i = ((y + row) * width + x + n * GLYPH + col) * 3;
                    data[i..i + 3].fill(255);
                }
            }
        }
    }
}

/// Lays `tiles` out in rows of `columns`, on a dark background, each with its label below.
pub fn grid(tiles: &[Tile], columns: usize) -> Result<ImageU8, PreviewError> {
    let first = tiles.first().ok_or(PreviewError::Empty)?;
    let (tw, th) = (first.image.width as usize, first.image.height as usize);
    if let Some(t) = tiles
        .iter()
        .find(|t| (t.image.width as usize, t.image.height as usize) != (tw, th))
    {
        return Err(PreviewError::MixedSizes(
            first.image.width,
            first.image.height,
            t.image.width,
            t.image.height,
        ));
    }
    let columns = columns.clamp(1, tiles.len());
    let rows = tiles.len().div_ceil(columns);
    let width = GAP + columns * (tw + GAP);
    let height = GAP + rows * (th + LABEL + GAP);
    let mut data = vec![32u8; width * height * 3];
    for (k, tile) in tiles.iter().enumerate() {
        let x0 = GAP + (k % columns) * (tw + GAP);
        let y0 = GAP + (k / columns) * (th + LABEL + GAP);
        for y in 0..th {
            let src = &tile.image.data[y * tw * 3..(y + 1) * tw * 3];
            let dst = ((y0 + y) * width + x0) * 3;
            data[dst..dst + tw * 3].copy_from_slice(src);
        }
        draw_text(&mut data, width, x0, y0 + th + 2, &tile.label, tw / GLYPH);
    }
    Ok(ImageU8 {
        width: width as u32,
        height: height as u32,
        data: data.into(),
    })
}

/// `image` enlarged `factor` times with nearest-neighbour sampling, so every source pixel stays
/// a visible square (small training inputs such as 32x32 are unreadable at 1:1).
pub fn upscale(image: &ImageU8, factor: u32) -> ImageU8 {
    let f = factor.max(1) as usize;
    let (w, h) = (image.width as usize, image.height as usize);
    let mut data = Vec::with_capacity(w * h * f * f * 3);
    for y in 0..h * f {
        for x in 0..w * f {
            let i = ((y / f) * w + x / f) * 3;
            data.extend_from_slice(&image.data[i..i + 3]);
        }
    }
    ImageU8 {
        width: image.width * f as u32,
        height: image.height * f as u32,
        data: data.into(),
    }
}

/// Tiles are enlarged to at least this many pixels wide, so small inputs and labels show.
pub const MIN_TILE: u32 = 96;

/// The class of a one-hot target row, or the two heaviest classes and their weights.
pub fn caption(row: &[f32], classes: &[String]) -> String {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    match order.as_slice() {
        [a, b, ..] if row[*a] < 0.999 => {
            format!(
                "{} {:.2} {} {:.2}",
                classes[*a], row[*a], classes[*b], row[*b]
            )
        }
        [a, ..] => classes[*a].clone(),
        [] => String::new(),
    }
}

/// The first `count` images of a batch of `shape` (`[N, 3, H, W]`, normalized with `mean` and
/// `std`) as tiles captioned from their target rows (`[N, classes]`).
pub fn batch_tiles(
    images: &[f32],
    shape: [usize; 4],
    targets: &[f32],
    classes: &[String],
    (mean, std): ([f32; 3], [f32; 3]),
    count: usize,
) -> Vec<Tile> {
    let [n, _, h, w] = shape;
    let (plane, c) = (3 * h * w, classes.len());
    (0..n.min(count))
        .map(|k| Tile {
            image: denormalize(
                &images[k * plane..(k + 1) * plane],
                h as u32,
                w as u32,
                mean,
                std,
            ),
            label: caption(&targets[k * c..(k + 1) * c], classes),
        })
        .collect()
}

/// `tiles` enlarged to at least [`MIN_TILE`] pixels wide and laid out in `columns` columns
/// (about as many as rows when `None`).
pub fn sheet(tiles: Vec<Tile>, columns: Option<usize>) -> Result<ImageU8, PreviewError> {
    let first = tiles.first().ok_or(PreviewError::Empty)?;
    let factor = MIN_TILE.div_ceil(first.image.width.max(1));
    let columns = columns.unwrap_or_else(|| (tiles.len() as f64).sqrt().ceil() as usize);
    let tiles: Vec<Tile> = tiles
        .into_iter()
        .map(|t| Tile {
            image: upscale(&t.image, factor),
            label: t.label,
        })
        .collect();
    grid(&tiles, columns)
}

/// `image` as a PNG file's bytes.
pub fn png(image: &ImageU8) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    image::write_buffer_with_format(
        &mut std::io::Cursor::new(&mut bytes),
        &image.data,
        image.width,
        image.height,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// Writes `image` as a PNG file.
pub fn save_png(image: &ImageU8, path: &Path) -> Result<(), PreviewError> {
    let fail = |error| PreviewError::Write {
        path: path.to_path_buf(),
        error,
    };
    let bytes = png(image).map_err(fail)?;
    std::fs::write(path, bytes).map_err(|e| fail(image::ImageError::IoError(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscale_repeats_each_pixel_in_a_square() {
        let image = ImageU8 {
            width: 2,
            height: 1,
            data: vec![1, 2, 3, 4, 5, 6].into(),
        };
        let big = upscale(&image, 2);
        assert_eq!((big.width, big.height), (4, 2));
        let row = [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6];
        assert_eq!(big.data.as_slice(), [row, row].concat().as_slice());
    }

    #[test]
    fn denormalize_inverts_normalization() {
        let (mean, std) = ([0.5, 0.25, 0.0], [0.5, 0.25, 1.0]);
        let pixels = [0u8, 100, 255];
        let chw: Vec<f32> = (0..3)
            .map(|c| (f32::from(pixels[c]) / 255.0 - mean[c]) / std[c])
            .collect();
        let image = denormalize(&chw, 1, 1, mean, std);
        assert_eq!(image.data.as_slice(), &pixels);
    }

    #[test]
    fn grid_places_tiles_and_labels() {
        let tile = |v: u8| Tile {
            image: ImageU8::new(16, 8, vec![v; 16 * 8 * 3]).unwrap(),
            label: "ab".into(),
        };
        let sheet = grid(&[tile(100), tile(200), tile(150)], 2).unwrap();
        assert_eq!((sheet.width, sheet.height), (4 + 2 * 20, 4 + 2 * 24));
        let at = |x: usize, y: usize| sheet.data[(y * sheet.width as usize + x) * 3];
        assert_eq!(at(4, 4), 100);
        assert_eq!(at(24, 4), 200);
        assert_eq!(at(4, 28), 150);
        assert_eq!(at(0, 0), 32);
        let label_white = (0..16).any(|x| (0..8).any(|y| at(4 + x, 4 + 8 + 2 + y) == 255));
        assert!(label_white, "the label is drawn under the first tile");
        assert!(matches!(grid(&[], 2), Err(PreviewError::Empty)));
    }
}
