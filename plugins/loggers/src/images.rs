//! The images loggers show: a confusion matrix drawn as a heat map, and PNG files read and
//! written with `image`.
//!
//! The matrix is drawn into a plain RGB buffer: one square cell per (true, predicted) pair,
//! coloured from white to dark blue by the share of the true class's row, with the count in
//! the cell and the class names along the axes (rows on the left, columns rotated on top) in an
//! 8x8 bitmap font, when there are at most [`MAX_NAMED_CLASSES`] classes and the cells are big
//! enough. No font files are needed.

use std::io::Cursor;
use std::path::Path;

use clshost_plugin_api::{MetricMatrix, MetricReport, PluginError};
use font8x8::{BASIC_FONTS, UnicodeFonts};
use image::{ImageFormat, ImageReader, Rgb, RgbImage};

/// Above this many classes the matrix has no names and no counts.
pub const MAX_NAMED_CLASSES: usize = 40;
/// The matrix's cells take about this many pixels across.
const GRID: u32 = 512;
/// Side of one glyph.
const GLYPH: u32 = 8;
/// Class names are cut to this many characters.
const NAME_CHARS: usize = 12;
/// Pixels around the drawing and between the names and the cells.
const MARGIN: u32 = 8;
/// The caption under the matrix.
const CAPTION: &str = "rows: true class, columns: predicted";

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
/// The colour of an empty row share, and of a full one.
const LIGHT: [f64; 3] = [247.0, 251.0, 255.0];
const DARK: [f64; 3] = [8.0, 48.0, 107.0];

/// The cell colour for a row share in `[0, 1]`.
fn shade(share: f64) -> [u8; 3] {
    let t = share.clamp(0.0, 1.0);
    std::array::from_fn(|c| (LIGHT[c] + (DARK[c] - LIGHT[c]) * t).round() as u8)
}

/// `name` cut to [`NAME_CHARS`] characters, with `~` marking a cut.
fn fit(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_string()
    } else {
        let mut cut: String = name.chars().take(NAME_CHARS - 1).collect();
        cut.push('~');
        cut
    }
}

/// Draws `text` in `colour`: left to right from `(x, y)`, or, `rotated`, bottom to top with
/// its first character's lower left corner at `(x, y)`. Pixels outside `img` are skipped;
/// characters the font lacks are drawn as `?`.
fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, colour: [u8; 3], rotated: bool) {
    for (n, ch) in (0u32..).zip(text.chars()) {
        let glyph = BASIC_FONTS
            .get(ch)
            .or_else(|| BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in (0u32..).zip(glyph) {
            for col in 0..GLYPH {
                if bits & (1 << col) == 0 {
                    continue;
                }
                let (px, py) = if rotated {
                    (Some(x + row), (y + 1).checked_sub(n * GLYPH + col + 1))
                } else {
                    (Some(x + n * GLYPH + col), Some(y + row))
                };
                if let (Some(px), Some(py)) = (px, py)
                    && px < img.width()
                    && py < img.height()
                {
                    img.put_pixel(px, py, Rgb(colour));
                }
            }
        }
    }
}

/// The first `confusion_matrix` of `reports` that is `classes` x `classes`.
fn find_confusion(reports: &[MetricReport], classes: usize) -> Option<&MetricMatrix> {
    reports.iter().flat_map(|r| r.matrices.iter()).find(|m| {
        m.name.as_str() == "confusion_matrix"
            && m.rows as usize == classes
            && m.cols as usize == classes
    })
}

/// The confusion matrix `counts` (row-major, `classes.len()` squared; rows: true class,
/// columns: predicted) as an image.
pub fn confusion_matrix(classes: &[String], counts: &[f64]) -> RgbImage {
    let n = classes.len().max(1) as u32;
    let cell = (GRID / n).clamp(1, 48);
    let named = classes.len() <= MAX_NAMED_CLASSES;
    let label = if named {
        classes
            .iter()
            .map(|c| fit(c).chars().count() as u32)
            .max()
            .unwrap_or(0)
            * GLYPH
            + MARGIN
    } else {
        0
    };
    let (left, top) = (MARGIN + label, MARGIN + label);
    let width = (left + n * cell + MARGIN).max(2 * MARGIN + CAPTION.len() as u32 * GLYPH);
    let height = top + n * cell + 2 * MARGIN + GLYPH + MARGIN;
    let mut img = RgbImage::from_pixel(width, height, Rgb(WHITE));
    let k = classes.len();
    for (i, row) in counts.chunks(k.max(1)).take(k).enumerate() {
        let total: f64 = row.iter().sum();
        for (j, &count) in row.iter().enumerate() {
            let share = if total > 0.0 { count / total } else { 0.0 };
            let (x0, y0) = (left + j as u32 * cell, top + i as u32 * cell);
            for y in y0..y0 + cell {
                for x in x0..x0 + cell {
                    img.put_pixel(x, y, Rgb(shade(share)));
                }
            }
            let text = format!("{count:.0}");
            let text_width = text.len() as u32 * GLYPH;
            if named && text_width + 2 <= cell && GLYPH + 2 <= cell {
                let colour = if share > 0.5 { WHITE } else { BLACK };
                let (x, y) = (x0 + (cell - text_width) / 2, y0 + (cell - GLYPH) / 2);
                draw_text(&mut img, x, y, &text, colour, false);
            }
        }
    }
    if named {
        for (i, name) in (0u32..).zip(classes) {
            let name = fit(name);
            let middle = i * cell + cell.saturating_sub(GLYPH) / 2;
            let row_x = left - MARGIN - name.chars().count() as u32 * GLYPH;
            draw_text(&mut img, row_x, top + middle, &name, BLACK, false);
            draw_text(
                &mut img,
                left + middle,
                top - MARGIN - 1,
                &name,
                BLACK,
                true,
            );
        }
    }
    draw_text(
        &mut img,
        MARGIN,
        top + n * cell + MARGIN,
        CAPTION,
        BLACK,
        false,
    );
    img
}

/// A PNG file's bytes and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Png {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The confusion matrix of `reports` for `classes` ([`find_confusion`]), drawn and encoded;
/// `None` when no metric reports one.
pub fn confusion_png(
    reports: &[MetricReport],
    classes: &[String],
) -> Result<Option<Png>, PluginError> {
    let Some(matrix) = find_confusion(reports, classes.len()) else {
        return Ok(None);
    };
    let img = confusion_matrix(classes, &matrix.values);
    let (width, height) = img.dimensions();
    Ok(Some(Png {
        bytes: png(&img)?,
        width,
        height,
    }))
}

/// The PNG file at `path`.
pub fn read_png(path: &Path) -> Result<Png, PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::io_at(path, e))?;
    let (width, height) = png_size(&bytes).map_err(|e| PluginError::io_at(path, e))?;
    Ok(Png {
        bytes,
        width,
        height,
    })
}

/// `img` as a PNG file.
pub fn png(img: &RgbImage) -> Result<Vec<u8>, PluginError> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| PluginError::internal(format!("cannot encode a PNG image: {e}")))?;
    Ok(bytes)
}

/// The width and height of the PNG file `bytes`.
pub fn png_size(bytes: &[u8]) -> Result<(u32, u32), String> {
    ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png)
        .into_dimensions()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("class number {i}")).collect()
    }

    #[test]
    fn cells_are_shaded_by_their_rows_share() {
        let classes = names(2);
        let img = confusion_matrix(&classes, &[3.0, 1.0, 0.0, 0.0]);
        let (cell, left) = (48, MARGIN + 12 * GLYPH + MARGIN);
        let corner = |i: u32, j: u32| *img.get_pixel(left + j * cell + 1, left + i * cell + 1);
        assert_eq!(corner(0, 0), Rgb(shade(0.75)));
        assert_eq!(corner(0, 1), Rgb(shade(0.25)));
        assert_eq!(corner(1, 0), Rgb(shade(0.0)), "an empty row is blank");
        assert_eq!(shade(1.0), [8, 48, 107]);
        // The count is written in the cell: its middle has both the cell colour and white.
        let middle: Vec<_> = (0..cell)
            .map(|x| *img.get_pixel(left + x, left + cell / 2))
            .collect();
        assert!(middle.contains(&Rgb(WHITE)) && middle.contains(&Rgb(shade(0.75))));
    }

    #[test]
    fn many_classes_still_draw_and_encode() {
        for n in [1, 40, 41, 1000] {
            let counts = vec![1.0; n * n];
            let img = confusion_matrix(&names(n), &counts);
            let bytes = png(&img).unwrap();
            assert_eq!(png_size(&bytes).unwrap(), img.dimensions(), "{n} classes");
        }
        assert!(png_size(b"not a png").is_err());
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(fit("short"), "short");
        assert_eq!(fit("a very long class name"), "a very long~");
    }
}
