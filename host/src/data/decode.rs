//! Decoding image files into 8-bit RGB.
//!
//! Decoding goes through the `image` crate (JPEG by its zune-jpeg decoder, PNG, BMP, WebP, GIF
//! (first frame), TIFF, PPM/PGM). The format is recognised from the file's contents (every
//! supported format starts with a signature), whatever its extension says; a file whose
//! contents match no format is not an image, and the error says which format its extension
//! promised and how the file starts. Every input ends as [`ImageU8`]: grayscale is replicated to three
//! channels, alpha is dropped (as PIL's `convert("RGB")` does), 16-bit channels are scaled to
//! 8 bits, CMYK JPEGs are converted to RGB, and the EXIF orientation is applied.
//!
//! Safety against bad files:
//! - the declared size is checked against [`DecodeLimits`] before any pixel buffer exists, so a
//!   decompression bomb (a small file declaring a huge image) is rejected, never allocated;
//! - a JPEG whose entropy-coded data ends before its end-of-image marker is reported as
//!   truncated (zune-jpeg would silently fill the missing part with gray, unlike PIL);
//! - zero-byte files, files that are not images (a text file named `x.jpg`) and decoder errors
//!   are errors naming the file.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use clshost_plugin_api::ImageU8;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Limits on what a file may declare, checked before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest accepted `width * height`.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// PIL's decompression-bomb error threshold: 2 x 89,478,485 pixels.
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 178_956_970,
        }
    }
}

/// Why a file could not be decoded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The file is empty.
    #[error("{} is an empty file", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The contents start with no supported format's signature.
    #[error(
        "{} is not {} (it starts with `{start}`)",
        path.display(),
        expected.map_or_else(|| "an image in a supported format".to_string(), |f| format!("a {f} image"))
    )]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// The format its extension names, when it names a supported one.
        expected: Option<&'static str>,
        /// Its first bytes, ASCII with the rest escaped.
        start: String,
    },
    /// The declared size exceeds the limit.
    #[error(
        "{} declares a {width}x{height} image, more than the limit of {limit} pixels \
         (possible decompression bomb)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The pixel limit.
        limit: u64,
    },
    /// The JPEG data ends before its end-of-image marker.
    #[error("{} is truncated: its JPEG data ends before the end-of-image marker", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// The decoder rejected the data.
    #[error("cannot decode {}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
}

impl DecodeError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::Io { path, .. }
            | DecodeError::Empty { path }
            | DecodeError::NotAnImage { path, .. }
            | DecodeError::TooLarge { path, .. }
            | DecodeError::Truncated { path }
            | DecodeError::Corrupt { path, .. } => path,
        }
    }
}

/// Reads and decodes the image file at `path`.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<ImageU8, DecodeError> {
    let bytes = std::fs::read(path).map_err(|error| DecodeError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    decode_bytes(&bytes, path, limits)
}

/// Decodes the contents of an image file; `path` names it in errors, and its extension the
/// format a file that is not an image was expected to be in.
pub fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    limits: &DecodeLimits,
) -> Result<ImageU8, DecodeError> {
    let corrupt = |e: image::ImageError| DecodeError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if bytes.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| DecodeError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    if reader.format().is_none() {
        return Err(DecodeError::NotAnImage {
            path: path.to_path_buf(),
            expected: ImageFormat::from_path(path).ok().and_then(format_name),
            start: bytes[..bytes.len().min(8)].escape_ascii().to_string(),
        });
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_complete(bytes) {
        return Err(DecodeError::Truncated {
            path: path.to_path_buf(),
        });
    }
    // Headers only: no pixel buffer exists until the size has been checked.
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    let too_large = || DecodeError::TooLarge {
        path: path.to_path_buf(),
        width,
        height,
        limit: limits.max_pixels,
    };
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(too_large());
    }
    let mut image_limits = Limits::no_limits();
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(1 << 29));
    decoder.set_limits(image_limits).map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(),
        e => corrupt(e),
    })?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    ImageU8::new(width, height, rgb.into_raw()).map_err(|e| DecodeError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The name of a supported format, as users know it; `None` for the formats not decoded here.
fn format_name(format: ImageFormat) -> Option<&'static str> {
    Some(match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::Bmp => "BMP",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Pnm => "PNM",
        _ => return None,
    })
}

/// Reads the width and height a file declares, without decoding its pixels.
pub fn dimensions(path: &Path) -> Result<(u32, u32), DecodeError> {
    let reader = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|error| DecodeError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    reader.into_dimensions().map_err(|e| DecodeError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Whether a JPEG stream reaches its end-of-image marker: walks the marker segments (skipping
/// each by its length, so embedded EXIF thumbnails are passed over) and the entropy-coded scans
/// (where `FF` is always followed by a stuffed `00` or a restart marker) until `FF D9`.
fn jpeg_complete(data: &[u8]) -> bool {
    let mut i = 2;
    while i + 1 < data.len() {
        if data[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = data[i + 1];
        match marker {
            0xD9 => return true,
            0xFF | 0x00 | 0x01 | 0xD0..=0xD7 => i += 1,
            _ => {
                if i + 3 >= data.len() {
                    return false;
                }
                let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
                i += 2 + len;
                if marker == 0xDA {
                    while i + 1 < data.len()
                        && (data[i] != 0xFF || matches!(data[i + 1], 0x00 | 0xD0..=0xD7))
                    {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_walk_skips_segments_and_scans() {
        // SOI, APP1 whose payload holds FF D9, SOS with stuffed FF 00 and a restart marker, EOI.
        let complete = [
            0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF,
            0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD9,
        ];
        assert!(jpeg_complete(&complete));
        assert!(!jpeg_complete(&complete[..complete.len() - 2]));
        assert!(!jpeg_complete(&complete[..8]));
    }

    #[test]
    fn a_text_file_named_like_an_image_is_not_an_image() {
        let err = decode_bytes(
            b"hello world\n",
            Path::new("d/x.jpg"),
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/x.jpg is not a JPEG image (it starts with `hello wo`)"
        );
        let err =
            decode_bytes(b"\0\x01ab", Path::new("y.dat"), &DecodeLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "y.dat is not an image in a supported format (it starts with `\\x00\\x01ab`)"
        );
    }
}
