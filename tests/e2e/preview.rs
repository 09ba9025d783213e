//! `clshost data preview RECIPE`: the sheet shows the recipe's training samples, with its batch
//! augmentation applied in the epochs where training applies it.

use std::fs;
use std::path::Path;

use crate::support::{Clshost, TINY_RECIPE, stdout_ok, tiny_scratch};

/// The tiny recipe with MixUp on every batch of the first epoch only.
fn recipe() -> String {
    let mixup = r#"batch_augment: (prob: 1.0, entries: [(name: "mixup", params: (alpha: 1.0))], stop_epoch: 1),
    loss:"#;
    let recipe = TINY_RECIPE.replacen("loss:", mixup, 1);
    assert_ne!(recipe, TINY_RECIPE);
    recipe
}

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
    tiny_scratch(&clshost, dir.path());
    fs::write(dir.path().join("preview.ron"), recipe()).unwrap();
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
