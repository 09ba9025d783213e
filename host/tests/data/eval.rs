//! The eval path against torchvision (committed fixture from `scripts/fixtures/data.py`): resize
//! of the shorter side with antialiased bilinear, center crop (with padding when the crop is
//! larger), and the whole preset through the loader including normalization.

use std::fs;
use std::path::{Path, PathBuf};

use clshost::data::decode::{DecodeLimits, decode_file};
use clshost::data::geometry::{EvalGeometry, shorter_side_size};
use clshost::data::imagefolder::Sample;
use clshost::data::{DataSettings, Loader, LoaderOptions, OnError, Pipeline};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn cases() -> Vec<Value> {
    let fx: Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("eval.json")).unwrap()).unwrap();
    fx["cases"].as_array().unwrap().clone()
}

fn u32_of(case: &Value, key: &str) -> u32 {
    case[key].as_u64().unwrap() as u32
}

#[test]
fn resize_and_center_crop_match_torchvision() {
    for case in cases() {
        let file = case["file"].as_str().unwrap();
        let image = decode_file(&fixtures().join(file), &DecodeLimits::default()).unwrap();
        let resized = numbers(&case["resized_hw"]);
        assert_eq!(
            shorter_side_size(image.height, image.width, u32_of(&case, "resize")),
            (resized[0] as u32, resized[1] as u32),
            "{file}: resized size"
        );
        let geometry = EvalGeometry {
            resize: u32_of(&case, "resize"),
            crop: u32_of(&case, "crop"),
        };
        let out = geometry.apply(&image).unwrap();
        assert_eq!(
            (out.width, out.height),
            (geometry.crop, geometry.crop),
            "{file}"
        );
        let expected = numbers(&case["geometry_hwc"]);
        assert_eq!(out.data.len(), expected.len(), "{file}");
        // Both sides use Pillow's fixed-point antialiased bilinear; allow one level of rounding.
        let worst = out
            .data
            .iter()
            .zip(&expected)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "{file}: off by {worst} levels");
    }
}

#[test]
fn eval_pipeline_matches_the_torchvision_preset() {
    for case in cases() {
        let file = case["file"].as_str().unwrap();
        let settings = DataSettings {
            eval_resize: u32_of(&case, "resize"),
            eval_crop: u32_of(&case, "crop"),
            batch_size: 1,
            workers: Some(1),
            ..DataSettings::default()
        };
        let samples = vec![Sample {
            path: fixtures().join(file),
            label: 3,
        }];
        let options = LoaderOptions::from_settings(&settings, false, 0);
        assert_eq!(options.on_error, OnError::Skip);
        let loader = Loader::new(samples, Pipeline::eval(&settings).unwrap(), options).unwrap();
        let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let crop = settings.eval_crop as usize;
        assert_eq!(batch.shape, [1, 3, crop, crop]);
        assert_eq!(batch.labels, [3]);
        let expected = numbers(&case["normalized_chw"]);
        // One 8-bit level divided by the smallest std (0.224) is 0.0175.
        let worst = batch
            .images
            .iter()
            .zip(&expected)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1.0 / 255.0 / 0.224 + 1e-5,
            "{file}: off by {worst}"
        );
    }
}
