//! Decoding: conversions to RGB and EXIF orientation against PIL (committed fixture from
//! `scripts/fixtures/data.py`), every supported format, and bad files: zero-byte, truncated,
//! corrupt, unknown, and decompression bombs.

use std::fs;
use std::path::{Path, PathBuf};

use clshost::data::decode::{DecodeError, DecodeLimits, decode_bytes, decode_file};
use image::{ImageFormat, RgbImage};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data")
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// A 40x24 image with distinct colours in 8x8 blocks.
fn pattern() -> RgbImage {
    RgbImage::from_fn(40, 24, |x, y| {
        let (bx, by) = (x / 8, y / 8);
        image::Rgb([(bx * 60) as u8, (by * 100) as u8, ((bx + by) * 30) as u8])
    })
}

fn encoded(format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(pattern())
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

#[test]
fn conversions_and_orientation_match_pil() {
    let fx: Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("decode.json")).unwrap()).unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let image = decode_file(&fixtures().join(file), &limits()).unwrap();
        let (w, h) = (
            case["width"].as_u64().unwrap(),
            case["height"].as_u64().unwrap(),
        );
        assert_eq!(
            (u64::from(image.width), u64::from(image.height)),
            (w, h),
            "{file}"
        );
        let expected: Vec<u8> = case["rgb_hwc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        // PNG is lossless: exact. JPEG decoders (libjpeg-turbo in PIL, zune-jpeg here) differ by
        // a few levels in their IDCT and colour conversion; the flat 8x8 blocks keep that small.
        let tolerance = if case["kind"] == "png" { 0 } else { 4 };
        let worst = image
            .data
            .iter()
            .zip(&expected)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            worst <= tolerance,
            "{file}: differs from PIL by up to {worst} levels"
        );
    }
}

#[test]
fn every_supported_format_decodes() {
    let reference = pattern();
    for (format, ext, lossless) in [
        (ImageFormat::Png, "png", true),
        (ImageFormat::Bmp, "bmp", true),
        (ImageFormat::Tiff, "tiff", true),
        (ImageFormat::Pnm, "ppm", true),
        (ImageFormat::WebP, "webp", true),
        (ImageFormat::Gif, "gif", false),
        (ImageFormat::Jpeg, "jpg", false),
    ] {
        let bytes = encoded(format);
        let image = decode_bytes(&bytes, Path::new(&format!("x.{ext}")), &limits()).unwrap();
        assert_eq!((image.width, image.height), (40, 24), "{ext}");
        let worst = image
            .data
            .iter()
            .zip(reference.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        // GIF quantizes to a palette; JPEG is lossy. Both stay close on flat blocks.
        let tolerance = if lossless { 0 } else { 24 };
        assert!(worst <= tolerance, "{ext}: off by {worst}");
    }
}

#[test]
fn the_format_comes_from_the_contents_not_the_name() {
    let image = decode_bytes(
        &encoded(ImageFormat::Png),
        Path::new("really.jpg"),
        &limits(),
    )
    .unwrap();
    assert_eq!((image.width, image.height), (40, 24));
}

#[test]
fn zero_byte_truncated_and_corrupt_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    fs::write(&empty, b"").unwrap();
    let err = decode_file(&empty, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Empty { .. }), "{err}");
    assert_eq!(err.path(), empty);

    let jpeg = encoded(ImageFormat::Jpeg);
    let cut = dir.path().join("cut.jpg");
    fs::write(&cut, &jpeg[..jpeg.len() * 2 / 3]).unwrap();
    let err = decode_file(&cut, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("cut.jpg"), "{err}");

    let png = encoded(ImageFormat::Png);
    let cut = dir.path().join("cut.png");
    fs::write(&cut, &png[..png.len() / 2]).unwrap();
    let err = decode_file(&cut, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("cut.png"), "{err}");

    let garbage = dir.path().join("garbage.png");
    let mut bytes = png.clone();
    for b in bytes.iter_mut().skip(60) {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    fs::write(&garbage, &bytes).unwrap();
    assert!(matches!(
        decode_file(&garbage, &limits()).unwrap_err(),
        DecodeError::Corrupt { .. }
    ));

    let text = dir.path().join("notes.bin");
    fs::write(&text, b"this is not an image at all").unwrap();
    assert!(matches!(
        decode_file(&text, &limits()).unwrap_err(),
        DecodeError::NotAnImage { .. }
    ));

    let missing = dir.path().join("missing.png");
    assert!(matches!(
        decode_file(&missing, &limits()).unwrap_err(),
        DecodeError::Io { .. }
    ));
}

/// A 54-byte BMP header declaring a `width` x `height` 24-bit image, with no pixel data.
fn bmp_header(width: u32, height: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&54u32.to_le_bytes()); // file size (a lie)
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    b.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
    b.extend_from_slice(&width.to_le_bytes());
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    b
}

/// A small JPEG whose frame header (SOF) is patched to declare `width` x `height`.
fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = encoded(ImageFormat::Jpeg);
    let sof = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && matches!(w[1], 0xC0 | 0xC2))
        .unwrap();
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

#[test]
fn decompression_bombs_are_rejected_before_allocation() {
    let small = DecodeLimits { max_pixels: 10_000 };
    for (name, bytes) in [
        ("bomb.bmp", bmp_header(60_000, 60_000)),
        ("bomb.jpg", jpeg_declaring(65_000, 65_000)),
    ] {
        // Under the default limit (179 Mpx): 3.6 and 4.2 gigapixels are refused outright.
        let err = decode_bytes(&bytes, Path::new(name), &limits()).unwrap_err();
        match &err {
            DecodeError::TooLarge { width, height, .. } => {
                assert!(*width >= 60_000 && *height >= 60_000, "{err}");
            }
            other => panic!("{name}: expected TooLarge, got {other}"),
        }
        assert!(err.to_string().contains(name), "{err}");
    }
    // A genuine 40x24 image is over a 100-pixel limit too.
    let err = decode_bytes(
        &encoded(ImageFormat::Png),
        Path::new("p.png"),
        &DecodeLimits { max_pixels: 100 },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 40,
                height: 24,
                ..
            }
        ),
        "{err}"
    );
    assert!(decode_bytes(&encoded(ImageFormat::Png), Path::new("p.png"), &small).is_ok());
}
