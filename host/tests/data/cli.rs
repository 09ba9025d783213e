//! The data commands through the `clshost` binary: `data stats` (class counts, sizes, and a
//! mean/std known in closed form), `data preview` (the PNG sheet), and `bench data --json`.

use std::path::Path;
use std::process::{Command, Output};

use image::{ImageFormat, RgbImage};
use serde_json::Value;

fn clshost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clshost"))
        .args([
            "--plugin-dir",
            crate::common::augment_plugin_dir().to_str().unwrap(),
        ])
        .args(args)
        .env_remove("CLSHOST_PLUGIN_PATH")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "clshost failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Class `dark`: three 40x30 images of (0, 51, 102); class `light`: one 60x20 image of
/// (255, 204, 153). Pixel counts 3600 and 1200.
fn folder(root: &Path) {
    for (class, n, (w, h), rgb) in [
        ("dark", 3, (40, 30), [0u8, 51, 102]),
        ("light", 1, (60, 20), [255u8, 204, 153]),
    ] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            RgbImage::from_pixel(w, h, image::Rgb(rgb))
                .save_with_format(root.join(class).join(format!("{i}.png")), ImageFormat::Png)
                .unwrap();
        }
    }
}

#[test]
fn stats_reports_counts_sizes_and_normalization() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let root = dir.path().to_str().unwrap();
    let s = stdout_json(&clshost(&["data", "stats", "--root", root, "--json"]));
    assert_eq!(s["images"], 4);
    assert_eq!(s["classes"][0]["name"], "dark");
    assert_eq!(s["classes"][0]["images"], 3);
    assert_eq!(s["classes"][1]["images"], 1);
    assert_eq!(s["width"]["min"], 40);
    assert_eq!(s["width"]["max"], 60);
    assert_eq!(s["height"]["median"], 30);
    // Pixel-weighted over 3600 dark and 1200 light pixels: the mean of channel c is
    // (3 * dark + light) / 4 and the std is |light - dark| * sqrt(3) / 4, on the 0..1 scale.
    let (dark, light) = ([0.0, 51.0, 102.0], [255.0, 204.0, 153.0]);
    for c in 0..3 {
        let mean = (3.0 * dark[c] + light[c]) / 4.0 / 255.0;
        let std = f64::abs(light[c] - dark[c]) * 3f64.sqrt() / 4.0 / 255.0;
        assert!(
            (s["mean"][c].as_f64().unwrap() - mean).abs() < 1e-9,
            "mean {c}"
        );
        assert!(
            (s["std"][c].as_f64().unwrap() - std).abs() < 1e-9,
            "std {c}"
        );
    }
    let text = clshost(&["data", "stats", "--root", root]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("mean: (0.2500, 0.3500, 0.4500)"), "{text}");
}

#[test]
fn preview_writes_a_labelled_grid() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let out = dir.path().join("grid.png");
    let run = clshost(&[
        "data",
        "preview",
        "--root",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "16",
        "--count",
        "4",
        "--columns",
        "2",
        "--augment",
        "random_resized_crop=(scale: (0.5, 1.0))",
        "--augment",
        "horizontal_flip",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let sheet = image::open(&out).unwrap().to_rgb8();
    // 2 columns and 2 rows of 16x16 tiles enlarged 6 times (to 96 pixels, the least tile
    // width), 4-pixel gaps, 12-pixel label strips.
    assert_eq!(sheet.dimensions(), (4 + 2 * 100, 4 + 2 * 112));
    let colours: Vec<[u8; 3]> = (0..4)
        .map(|k| {
            sheet
                .get_pixel(4 + (k % 2) * 100 + 48, 4 + (k / 2) * 112 + 48)
                .0
        })
        .collect();
    assert!(
        colours
            .iter()
            .all(|c| *c == [0, 51, 102] || *c == [255, 204, 153]),
        "{colours:?}"
    );

    let bad = clshost(&[
        "data",
        "preview",
        "--root",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--augment",
        "horizontal_flip",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("needs 224x224"), "{err}");
}

#[test]
fn bench_data_prints_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    std::fs::write(dir.path().join("light/broken.png"), b"").unwrap();
    let r = stdout_json(&clshost(&[
        "bench",
        "data",
        "--root",
        dir.path().to_str().unwrap(),
        "--size",
        "24",
        "--batch",
        "2",
        "--workers",
        "2",
        "--epochs",
        "3",
        "--json",
    ]));
    assert_eq!(r["images"], 5);
    assert_eq!(r["classes"], 2);
    assert_eq!(r["epochs"], 3);
    assert_eq!(r["skipped"], 1);
    assert_eq!(r["epoch_images_per_second"].as_array().unwrap().len(), 3);
    assert!(r["images_per_second"].as_f64().unwrap() > 0.0);
    for stage in ["decode", "augment", "collate"] {
        assert!(r["stage_ms_per_image"][stage].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(
        r["pipeline"],
        serde_json::json!(["random_resized_crop", "horizontal_flip", "normalize"])
    );
}
