//! ImageFolder scanning: class order and sample order against torchvision (committed fixture
//! from `scripts/fixtures/data.py`), skipped entries, symbolic links (followed, except back
//! into the dataset), the errors raised before training, and the seeded stratified split.

use std::fs;
use std::path::Path;

use clshost::data::imagefolder::{ImageFolder, ScanError, Skipped, SkippedLink, class_folders};
use clshost::data::settings::DataSettings;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name);
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"pixels are not read while scanning").unwrap();
}

/// A folder with `per_class` files in each of `classes`.
fn folder(root: &Path, classes: &[&str], per_class: usize) {
    for c in classes {
        for i in 0..per_class {
            touch(&root.join(c).join(format!("{i:03}.png")));
        }
    }
}

#[test]
fn classes_and_samples_follow_torchvision() {
    let fx = fixture("classes.json");
    let dir = tempfile::tempdir().unwrap();
    for pair in fx["files"].as_array().unwrap() {
        touch(
            &dir.path()
                .join(pair[0].as_str().unwrap())
                .join(pair[1].as_str().unwrap()),
        );
    }
    let ds = ImageFolder::scan(dir.path()).unwrap();
    let classes: Vec<&str> = fx["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(ds.classes, classes);
    for (name, idx) in fx["class_to_idx"].as_object().unwrap() {
        assert_eq!(ds.classes[idx.as_u64().unwrap() as usize], *name);
    }
    let expected: Vec<(String, u32)> = fx["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap().to_string(),
                s[1].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let got: Vec<(String, u32)> = ds
        .samples
        .iter()
        .map(|s| {
            let rel = s.path.strip_prefix(dir.path()).unwrap();
            (rel.to_str().unwrap().to_string(), s.label)
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        ds.skipped,
        Skipped {
            hidden: 0,
            not_image: 1,
            links: Vec::new(),
        }
    );
}

#[test]
fn hidden_entries_and_non_images_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["cat", "dog"], 2);
    touch(&dir.path().join("cat/.DS_Store"));
    touch(&dir.path().join("cat/.hidden.png"));
    touch(&dir.path().join(".ipynb_checkpoints/x.png"));
    touch(&dir.path().join("dog/readme.md"));
    touch(&dir.path().join("labels.csv"));
    let ds = ImageFolder::scan(dir.path()).unwrap();
    assert_eq!(ds.classes, ["cat", "dog"]);
    assert_eq!(ds.samples.len(), 4);
    assert_eq!(
        ds.skipped,
        Skipped {
            hidden: 3,
            not_image: 2,
            links: Vec::new(),
        }
    );
    assert_eq!(ds.class_counts(), [2, 2]);
}

#[test]
fn unusable_folders_are_clear_errors() {
    let missing = Path::new("/nonexistent/clshost/data");
    let err = ImageFolder::scan(missing).unwrap_err();
    assert!(matches!(err, ScanError::Unreadable { .. }));
    assert!(
        err.to_string().contains("/nonexistent/clshost/data"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::scan(dir.path()).unwrap_err();
    assert!(matches!(err, ScanError::NoClasses { .. }), "{err}");

    folder(dir.path(), &["only"], 3);
    let err = ImageFolder::scan(dir.path()).unwrap_err();
    assert!(err.to_string().contains("only one class (only)"), "{err}");

    fs::create_dir_all(dir.path().join("empty/sub")).unwrap();
    touch(&dir.path().join("empty/notes.txt"));
    let err = ImageFolder::scan(dir.path()).unwrap_err();
    match &err {
        ScanError::EmptyClass { class, path } => {
            assert_eq!(class, "empty");
            assert_eq!(path, &dir.path().join("empty"));
        }
        other => panic!("expected EmptyClass, got {other}"),
    }
}

#[test]
fn split_is_stratified_seeded_and_disjoint() {
    let dir = tempfile::tempdir().unwrap();
    for (c, n) in [("a", 10), ("b", 20), ("c", 3)] {
        folder(dir.path(), &[c], n);
    }
    let ds = ImageFolder::scan(dir.path()).unwrap();
    let (train, val) = ds.split(0.2, 7).unwrap();
    // round(10 * .2) = 2, round(20 * .2) = 4, round(3 * .2) = 1 (at least one)
    assert_eq!(val.class_counts(), [2, 4, 1]);
    assert_eq!(train.class_counts(), [8, 16, 2]);
    assert_eq!(train.classes, ds.classes);
    let mut all: Vec<_> = train.samples.iter().chain(&val.samples).cloned().collect();
    all.sort_by(|x, y| x.path.cmp(&y.path));
    let mut original = ds.samples.clone();
    original.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(all, original, "the parts cover the folder exactly once");

    let again = ds.split(0.2, 7).unwrap();
    assert_eq!(again.1, val, "same seed, same split");
    let other = ds.split(0.2, 8).unwrap();
    assert_ne!(other.1.samples, val.samples, "another seed, another split");
    assert!(matches!(ds.split(1.0, 0), Err(ScanError::BadFraction(_))));
}

#[test]
fn settings_read_train_and_val_folders_with_the_same_classes() {
    let dir = tempfile::tempdir().unwrap();
    folder(&dir.path().join("train"), &["a", "b"], 3);
    folder(&dir.path().join("val"), &["a", "b"], 1);
    let settings = DataSettings {
        root: dir.path().to_path_buf(),
        ..DataSettings::default()
    };
    settings.check().unwrap();
    let (train, val) = settings.datasets().unwrap();
    assert_eq!((train.samples.len(), val.samples.len()), (6, 2));

    folder(&dir.path().join("val"), &["c"], 1);
    let err = settings.datasets().unwrap_err();
    assert!(err.to_string().contains("extra [c]"), "{err}");

    let split = DataSettings {
        root: dir.path().join("train"),
        val_split: Some(0.34),
        ..settings
    };
    let (train, val) = split.datasets().unwrap();
    assert_eq!((train.samples.len(), val.samples.len()), (4, 2));
}

#[test]
fn settings_reject_bad_values() {
    let bad = DataSettings {
        batch_size: 0,
        ..DataSettings::default()
    };
    assert_eq!(bad.check().unwrap_err().field, "batch_size");
    let bad = DataSettings {
        std: [0.2, 0.0, 0.2],
        ..DataSettings::default()
    };
    assert_eq!(bad.check().unwrap_err().field, "std");
    let bad = DataSettings {
        val_split: Some(1.5),
        ..DataSettings::default()
    };
    assert_eq!(bad.check().unwrap_err().field, "val_split");
}

#[test]
fn a_split_that_holds_out_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 1);
    let err = ImageFolder::scan(dir.path())
        .unwrap()
        .split(0.2, 0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "val_split 0.2 holds out no image of {}: every class has a single image, and a \
             class needs two to give one to validation",
            dir.path().display()
        )
    );
}

/// The paths of `ds`'s samples relative to `root`, with their labels.
fn relative(ds: &ImageFolder, root: &Path) -> Vec<(String, u32)> {
    ds.samples
        .iter()
        .map(|s| {
            let rel = s.path.strip_prefix(root).unwrap();
            (rel.to_str().unwrap().to_string(), s.label)
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_skipped_and_reported() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    folder(&root, &["circle", "square"], 2);
    // Up to the root, to the class itself, to `/`: each leads back to a directory holding it.
    symlink("..", root.join("square/up")).unwrap();
    symlink(".", root.join("circle/self")).unwrap();
    symlink("/", root.join("circle/rootfs")).unwrap();
    let ds = ImageFolder::scan(&root).unwrap();
    assert_eq!(ds.classes, ["circle", "square"]);
    assert_eq!(
        relative(&ds, &root),
        [
            ("circle/000.png".to_string(), 0),
            ("circle/001.png".to_string(), 0),
            ("square/000.png".to_string(), 1),
            ("square/001.png".to_string(), 1),
        ]
    );
    let canonical = fs::canonicalize(&root).unwrap();
    let link = |path: &str, target: &str, leads_to: &Path| SkippedLink {
        path: root.join(path),
        target: Some(target.into()),
        leads_to: leads_to.to_path_buf(),
        loops: true,
    };
    assert_eq!(
        ds.skipped.links,
        [
            link("circle/rootfs", "/", Path::new("/")),
            link("circle/self", ".", &canonical.join("circle")),
            link("square/up", "..", &canonical),
        ]
    );
    assert_eq!(
        ds.skipped.links[2].to_string(),
        format!(
            "skipping symbolic link {} -> ..: it leads back to {}, which contains it (a loop)",
            root.join("square/up").display(),
            canonical.display()
        )
    );
}

#[cfg(unix)]
#[test]
fn links_into_another_class_or_to_a_directory_already_scanned_are_skipped() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    folder(&root, &["circle", "square"], 1);
    folder(dir.path(), &["extra"], 2);
    symlink("../circle", root.join("square/more")).unwrap();
    symlink("../../extra", root.join("square/a")).unwrap();
    symlink("../../extra", root.join("square/b")).unwrap();
    let ds = ImageFolder::scan(&root).unwrap();
    assert_eq!(
        relative(&ds, &root),
        [
            ("circle/000.png".to_string(), 0),
            ("square/000.png".to_string(), 1),
            ("square/a/000.png".to_string(), 1),
            ("square/a/001.png".to_string(), 1),
        ]
    );
    let canonical = fs::canonicalize(dir.path()).unwrap();
    let messages: Vec<String> = ds.skipped.links.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            format!(
                "skipping symbolic link {} -> ../../extra: it leads to {}, which is already part \
                 of this dataset",
                root.join("square/b").display(),
                canonical.join("extra").display()
            ),
            format!(
                "skipping symbolic link {} -> ../circle: it leads to {}, which is already part \
                 of this dataset",
                root.join("square/more").display(),
                canonical.join("train/circle").display()
            ),
        ]
    );
}

#[cfg(unix)]
#[test]
fn linked_datasets_are_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    folder(&root, &["cat"], 1);
    folder(&dir.path().join("store"), &["dogs", "shared"], 2);
    // A class folder that is a link, and one directory linked from inside both classes.
    symlink("../store/dogs", root.join("dog")).unwrap();
    symlink("../../store/shared", root.join("cat/shared")).unwrap();
    symlink("../shared", dir.path().join("store/dogs/shared")).unwrap();
    let ds = ImageFolder::scan(&root).unwrap();
    assert_eq!(ds.classes, ["cat", "dog"]);
    assert_eq!(ds.class_counts(), [3, 4]);
    assert!(ds.skipped.links.is_empty(), "{:?}", ds.skipped.links);
}

#[cfg(unix)]
#[test]
fn a_class_folder_linking_back_to_the_root_is_not_a_class() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 1);
    symlink(".", dir.path().join("all")).unwrap();
    assert_eq!(class_folders(dir.path()).unwrap(), ["a", "b"]);
    let ds = ImageFolder::scan(dir.path()).unwrap();
    assert_eq!(ds.classes, ["a", "b"]);
    assert_eq!(ds.skipped.links.len(), 1);
    assert!(ds.skipped.links[0].loops);
}
