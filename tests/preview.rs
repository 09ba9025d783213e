//! `clshost data preview RECIPE`: the sheet shows the recipe's training samples, with its batch
//! augmentation applied in the epochs where training applies it.

use std::fs;
use std::path::Path;

use clshost_e2e::{Clshost, stdout_ok};

/// 16x16 inputs, MixUp on every batch of the first epoch only.
const RECIPE: &str = r#"(
    name: "preview",
    seed: 5,
    data: (
        root: "data",
        image_size: (16, 16),
        eval_resize: 16,
        eval_crop: (16, 16),
        mean: (0.5, 0.5, 0.5),
        std: (0.25, 0.25, 0.25),
        batch_size: 4,
    ),
    model: (name: "resnet18", params: (small_input: true)),
    augment: [(name: "horizontal_flip")],
    batch_augment: (prob: 1.0, entries: [(name: "mixup", params: (alpha: 1.0))], stop_epoch: 1),
    loss: (name: "cross_entropy"),
    metrics: [(name: "accuracy", params: (top_k: [1]))],
)"#;

/// Writes the preview of `args` (after the recipe) into `name` and returns its pixels.
fn preview(clshost: &Clshost, dir: &Path, name: &str, args: &[&str]) -> image::RgbImage {
    let out = clshost
        .command(
            ["data", "preview", "preview.ron", "--out", name]
                .iter()
                .chain(args),
        )
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = stdout_ok(&out);
    assert!(stdout.contains("horizontal_flip"), "{stdout}");
    image::open(dir.join(name)).unwrap().to_rgb8()
}

#[test]
fn a_recipe_preview_shows_its_training_samples_mixed_where_training_mixes() {
    let clshost = Clshost::new();
    let dir = tempfile::tempdir().unwrap();
    let synth = [
        "data",
        "synth",
        "data",
        "--classes",
        "2",
        "--train",
        "6",
        "--val",
        "1",
        "--size",
        "16",
    ];
    stdout_ok(
        &clshost
            .command(synth)
            .current_dir(dir.path())
            .output()
            .unwrap(),
    );
    fs::write(dir.path().join("preview.ron"), RECIPE).unwrap();
    let count = ["--count", "6", "--columns", "3"];

    let mixed = preview(&clshost, dir.path(), "mixed.png", &count);
    // 3 columns and 2 rows of 16x16 tiles enlarged to 96, 4-pixel gaps, 12-pixel labels.
    assert_eq!(mixed.dimensions(), (4 + 3 * 100, 4 + 2 * 112));
    let unmixed = preview(
        &clshost,
        dir.path(),
        "unmixed.png",
        &[&count[..], &["--set", "batch_augment.prob=0.0"]].concat(),
    );
    assert_ne!(mixed, unmixed, "MixUp changed nothing in epoch 0");
    assert_eq!(
        mixed,
        preview(&clshost, dir.path(), "again.png", &count),
        "a preview is deterministic"
    );

    // From `stop_epoch` on, training does not mix, and neither does the preview.
    let late = [&count[..], &["--epoch", "1"]].concat();
    let late_mixed = preview(&clshost, dir.path(), "late.png", &late);
    let late_unmixed = preview(
        &clshost,
        dir.path(),
        "late_unmixed.png",
        &[&late[..], &["--set", "batch_augment.prob=0.0"]].concat(),
    );
    assert_eq!(late_mixed, late_unmixed);
}
