//! Reading the committed torchvision/timm fixtures (written by `scripts/fixtures/augment.py`).
//! Each test crate uses a subset of these helpers.
#![allow(dead_code)]

use clshost_plugin_api::ImageU8;
use serde_json::Value;

/// Loads `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("valid JSON")
}

/// Decodes `{h, w, hex}` into an image.
pub fn image(v: &Value) -> ImageU8 {
    let hex = v["hex"].as_str().expect("hex");
    let data = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex byte"))
        .collect();
    ImageU8::new(
        v["w"].as_u64().expect("w") as u32,
        v["h"].as_u64().expect("h") as u32,
        data,
    )
    .expect("consistent image")
}

/// A list of floats.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// A list of integers.
pub fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("integer"))
        .collect()
}

/// The largest absolute difference between two images and how many values differ by more than
/// `tolerance`; panics when their sizes differ.
pub fn compare(got: &ImageU8, want: &ImageU8, tolerance: u8) -> (u8, usize) {
    assert_eq!(
        (got.width, got.height),
        (want.width, want.height),
        "image size"
    );
    let diffs = got
        .data
        .iter()
        .zip(want.data.iter())
        .map(|(a, b)| a.abs_diff(*b));
    let max = diffs.clone().max().unwrap_or(0);
    (max, diffs.filter(|d| *d > tolerance).count())
}

/// Asserts that every value is within `tolerance` of torchvision's.
#[track_caller]
pub fn assert_close(got: &ImageU8, want: &ImageU8, tolerance: u8, what: &str) {
    let (max, over) = compare(got, want, tolerance);
    assert_eq!(
        over, 0,
        "{what}: {over} values differ by more than {tolerance} (max {max})"
    );
}
