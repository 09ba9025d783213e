//! Speed of the data stage's building blocks on an ImageNet-sized (500x375) photo-like image:
//! JPEG and PNG decoding, the eval geometry (resize 256 + center crop 224), and the eval loader
//! over a small folder with one and two workers. Run with `cargo bench -p clshost --bench data`.

use std::io::Cursor;
use std::path::Path;

use clshost::data::decode::{DecodeLimits, decode_bytes};
use clshost::data::geometry::EvalGeometry;
use clshost::data::imagefolder::Sample;
use clshost::data::{DataSettings, Loader, LoaderOptions, Pipeline};
use divan::Bencher;
use image::{ImageFormat, RgbImage};

fn main() {
    divan::main();
}

/// Smooth gradients with a little texture, so the JPEG is about the size of a photo's.
fn photo() -> RgbImage {
    RgbImage::from_fn(500, 375, |x, y| {
        let t = (x * 7 + y * 13) % 23;
        image::Rgb([
            ((x * 255 / 500) as u8).wrapping_add(t as u8),
            (y * 255 / 375) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn encoded(format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo())
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

#[divan::bench(args = ["jpg", "png"])]
fn decode(bencher: Bencher, ext: &str) {
    let format = ImageFormat::from_extension(ext).unwrap();
    let bytes = encoded(format);
    let name = format!("photo.{ext}");
    bencher.bench(|| decode_bytes(&bytes, Path::new(&name), &DecodeLimits::default()).unwrap());
}

#[divan::bench]
fn eval_geometry(bencher: Bencher) {
    let image = decode_bytes(
        &encoded(ImageFormat::Png),
        Path::new("photo.png"),
        &DecodeLimits::default(),
    )
    .unwrap();
    let geometry = EvalGeometry {
        resize: 256,
        crop: 224,
    };
    bencher.bench(|| geometry.apply(&image).unwrap());
}

/// One epoch of the eval pipeline over 64 JPEGs in batches of 16.
#[divan::bench(args = [1, 2], sample_count = 10)]
fn eval_epoch(bencher: Bencher, workers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = encoded(ImageFormat::Jpeg);
    let samples: Vec<Sample> = (0..64)
        .map(|i| {
            let path = dir.path().join(format!("{i}.jpg"));
            std::fs::write(&path, &bytes).unwrap();
            Sample { path, label: i % 2 }
        })
        .collect();
    let settings = DataSettings {
        batch_size: 16,
        workers: Some(workers),
        ..DataSettings::default()
    };
    let loader = Loader::new(
        samples,
        Pipeline::eval(&settings).unwrap(),
        LoaderOptions::from_settings(&settings, false, 0),
    )
    .unwrap();
    bencher.bench(|| {
        let mut epoch = loader.epoch(0);
        let mut n = 0;
        while let Some(batch) = epoch.next() {
            let batch = batch.unwrap();
            n += batch.len();
            epoch.recycle(batch);
        }
        n
    });
}
