//! MixUp and CutMix against timm's `Mixup(mode="batch")`, label smoothing folded in, and random
//! erasing against torchvision's `erase`, all with forced parameters.

mod common;

use clshost_plugin_augment::erasing::erase_with;
use clshost_plugin_augment::geometry::CropBox;
use clshost_plugin_augment::mix::{MixBox, cutmix_with, mixup_with};
use common::{fixture, floats, ints};

/// One-hot rows, as the host builds the targets.
fn one_hot(labels: &[i64], classes: usize) -> Vec<f32> {
    let mut t = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        t[i * classes + l as usize] = 1.0;
    }
    t
}

/// The loss's label smoothing, applied after mixing: `t * (1 - eps) + eps / C`.
fn smooth(t: &[f32], eps: f64, classes: usize) -> Vec<f64> {
    t.iter()
        .map(|&v| f64::from(v) * (1.0 - eps) + eps / classes as f64)
        .collect()
}

#[test]
fn mixup_and_cutmix_match_timm_with_smoothing_after_mixing() {
    let f = fixture("mixing.json");
    let shape: Vec<usize> = ints(&f["shape"]).iter().map(|&v| v as usize).collect();
    let dims = [shape[0], shape[1], shape[2], shape[3]];
    let classes = f["classes"].as_u64().expect("classes") as usize;
    let input: Vec<f32> = floats(&f["input"]).iter().map(|&v| v as f32).collect();
    for c in f["cases"].as_array().expect("cases") {
        let mode = c["mode"].as_str().expect("mode");
        let lam = c["lam"].as_f64().expect("lam");
        let eps = c["smoothing"].as_f64().expect("smoothing");
        let labels = ints(&c["labels"]);
        let mut images = input.clone();
        let mut targets = one_hot(&labels, classes);
        if mode == "mixup" {
            mixup_with(&mut images, &mut targets, dims[0], lam);
        } else {
            let b = ints(&c["box"]);
            let mix_box = MixBox {
                y0: b[0] as usize,
                y1: b[1] as usize,
                x0: b[2] as usize,
                x1: b[3] as usize,
            };
            let area = ((b[1] - b[0]) * (b[3] - b[2])) as f64;
            let corrected = 1.0 - area / (dims[2] * dims[3]) as f64;
            assert!(
                (corrected - lam).abs() < 1e-12,
                "timm's lambda is the box-corrected one"
            );
            cutmix_with(&mut images, &mut targets, dims, mix_box, lam);
        }
        for (i, (g, w)) in images.iter().zip(floats(&c["output"])).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < 1e-5,
                "{mode} image value {i}: {g} vs {w}"
            );
        }
        let smoothed = smooth(&targets, eps, classes);
        let want = floats(&c["target"]);
        for (i, (g, w)) in smoothed.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-5,
                "{mode} eps={eps} target {i}: {g} vs {w}"
            );
        }
        for row in smoothed.chunks(classes) {
            assert!(
                (row.iter().sum::<f64>() - 1.0).abs() < 1e-5,
                "a smoothed mixed row sums to 1"
            );
        }
    }
}

#[test]
fn erase_matches_torchvision() {
    let f = fixture("erasing.json");
    let shape: Vec<usize> = ints(&f["shape"]).iter().map(|&v| v as usize).collect();
    let input: Vec<f32> = floats(&f["input"]).iter().map(|&v| v as f32).collect();
    for c in f["cases"].as_array().expect("cases") {
        let b = ints(&c["box"]);
        let value: Vec<f32> = floats(&c["value"]).iter().map(|&v| v as f32).collect();
        let mut data = input.clone();
        let region = CropBox::new(b[0], b[1], b[2] as u32, b[3] as u32);
        erase_with(
            &mut data,
            [shape[0], shape[1], shape[2]],
            region,
            |ch, _, _| value[ch],
        )
        .expect("erases");
        let want: Vec<f32> = floats(&c["output"]).iter().map(|&v| v as f32).collect();
        assert_eq!(data, want, "erase {b:?}");
    }
}
