//! Hostile data: symlink loops, unreadable splits, files that are not images, data that
//! `check` must refuse as `run` does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Clshost, stderr, stdout_ok, tiny_scratch};

/// The extensions an empty class folder's error lists.
const EXTENSIONS: &str = "jpg, jpeg, png, bmp, webp, gif, tif, tiff, ppm, pgm";

/// A scratch directory with the tiny dataset and recipe, and its canonical path (what `run`
/// anchors `data.root` to and what a resolved link is reported as).
fn scratch(clshost: &Clshost) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    tiny_scratch(clshost, dir.path());
    let canonical = fs::canonicalize(dir.path()).unwrap();
    (dir, canonical)
}

/// What is under `data/`: each file's bytes, each link's target, each directory (empty).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.join("data")];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            let content = if kind.is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if kind.is_dir() {
                pending.push(path.clone());
                Vec::new()
            } else {
                fs::read(&path).unwrap()
            };
            found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), content);
        }
    }
    found
}

/// The lines of `output`'s stderr that are warnings, without the level.
fn warnings(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter_map(|l| l.strip_prefix(" WARN "))
        .map(str::to_string)
        .collect()
}

/// Overwrites every image of `data/<split>` with text: none can be decoded.
fn spoil(dir: &Path, split: &str) {
    for class in ["circle", "square"] {
        for entry in fs::read_dir(dir.join("data").join(split).join(class)).unwrap() {
            fs::write(entry.unwrap().path(), "hello world\n").unwrap();
        }
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_skipped_with_a_warning_by_check_and_run() {
    let clshost = Clshost::new();
    let (dir, canonical) = scratch(&clshost);
    std::os::unix::fs::symlink("..", dir.path().join("data/train/square/up")).unwrap();
    let before = snapshot(dir.path());
    let warning = |link: &Path| {
        format!(
            "skipping symbolic link {} -> ..: it leads back to {}, which contains it (a loop)",
            link.display(),
            canonical.join("data/train").display()
        )
    };

    let check = clshost.run_in(dir.path(), &["check", "tiny.ron"]);
    assert_eq!(
        stdout_ok(&check),
        "tiny.ron: ok (resnet18 on cpu, 3 epochs; 6 plugins loaded; 12 train / 6 val images in \
         2 classes)\n"
    );
    assert_eq!(
        stderr(&check),
        format!(" WARN {}\n", warning(Path::new("data/train/square/up")))
    );

    let run = clshost.run_in(
        dir.path(),
        &["run", "tiny.ron", "--set", "trainer.epochs=1"],
    );
    let stdout = stdout_ok(&run);
    assert!(
        stdout.contains(", 12 train / 6 val images in 2 classes\n"),
        "{stdout}"
    );
    assert_eq!(
        warnings(&run),
        [warning(&canonical.join("data/train/square/up"))]
    );
    assert_eq!(snapshot(dir.path()), before, "the data is untouched");
}

/// Spoils every image of `split` (`train`, `val`), runs one epoch with `extra` overrides, and
/// asserts that the run fails naming the `count` unreadable `set` images and the first of them,
/// with the data untouched. Returns the run's output.
fn unreadable_split_stops_the_run(split: &str, set: &str, count: usize, extra: &[&str]) -> Output {
    let clshost = Clshost::new();
    let (dir, canonical) = scratch(&clshost);
    spoil(dir.path(), split);
    let before = snapshot(dir.path());
    let args = [&["run", "tiny.ron", "--set", "trainer.epochs=1"][..], extra].concat();
    let run = clshost.run_in(dir.path(), &args);
    assert_eq!(run.status.code(), Some(1));
    let first = canonical.join(format!("data/{split}/circle/circle_0000.png"));
    assert_eq!(
        stderr(&run).lines().last().unwrap(),
        format!(
            "error: every one of the {count} {set} images was unreadable (on_error: skip); the \
             first: {} is not a PNG image (it starts with `hello wo`)",
            first.display()
        )
    );
    assert_eq!(snapshot(dir.path()), before, "the data is untouched");
    run
}

#[test]
fn a_validation_set_of_unreadable_files_stops_the_run() {
    let run = unreadable_split_stops_the_run(
        "val",
        "validation",
        6,
        &["--set", "trainer.monitor=\"loss\""],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        !stdout.contains("best loss") && !stdout.contains("completed"),
        "{stdout}"
    );
    assert_eq!(warnings(&run).len(), 6, "each file is named once");
}

#[test]
fn a_training_set_of_unreadable_files_stops_the_run() {
    unreadable_split_stops_the_run("train", "training", 12, &[]);
}

/// Runs `check` and then `run` on the scratch data; both must fail with exactly `message`
/// (given the data root as `check` names it, `data`, and as `run` does, absolute).
fn check_and_run_refuse(clshost: &Clshost, dir: &Path, message: impl Fn(&str) -> String) {
    let before = snapshot(dir);
    let check = clshost.run_in(dir, &["check", "tiny.ron"]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    assert!(check.stdout.is_empty());
    assert_eq!(stderr(&check), format!("error: {}\n", message("data")));
    let run = clshost.run_in(dir, &["run", "tiny.ron"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let root = fs::canonicalize(dir).unwrap().join("data");
    assert_eq!(
        stderr(&run),
        format!("error: {}\n", message(root.to_str().unwrap()))
    );
    assert_eq!(snapshot(dir), before, "the data is untouched");
}

#[test]
fn check_refuses_a_class_folder_without_images_as_run_does() {
    let clshost = Clshost::new();
    let (dir, _) = scratch(&clshost);
    fs::create_dir(dir.path().join("data/train/triangle")).unwrap();
    fs::write(dir.path().join("data/train/triangle/notes.txt"), "todo").unwrap();
    check_and_run_refuse(&clshost, dir.path(), |root| {
        format!(
            "class `triangle` has no images in {root}/train/triangle (extensions: {EXTENSIONS})"
        )
    });
}

#[test]
fn check_refuses_validation_classes_missing_from_training_as_run_does() {
    let clshost = Clshost::new();
    let (dir, _) = scratch(&clshost);
    let extra = dir.path().join("data/val/triangle");
    fs::create_dir(&extra).unwrap();
    fs::copy(
        dir.path().join("data/val/circle/circle_0000.png"),
        extra.join("triangle_0000.png"),
    )
    .unwrap();
    check_and_run_refuse(&clshost, dir.path(), |root| {
        format!(
            "the classes of {root}/val differ from those of {root}/train: missing [], extra \
             [triangle]"
        )
    });
}

#[test]
fn a_text_file_named_jpg_is_not_a_jpeg_rather_than_truncated() {
    let clshost = Clshost::new();
    let (dir, canonical) = scratch(&clshost);
    fs::write(dir.path().join("data/train/circle/x.jpg"), "hello world\n").unwrap();
    let before = snapshot(dir.path());
    let run = clshost.run_in(
        dir.path(),
        &[
            "run",
            "tiny.ron",
            "--set",
            "trainer.epochs=1",
            "--set",
            "data.on_error=fail",
        ],
    );
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        stderr(&run),
        format!(
            "error: {} is not a JPEG image (it starts with `hello wo`) (data.on_error is `fail`; \
             use `skip` to leave such files out)\n",
            canonical.join("data/train/circle/x.jpg").display()
        )
    );
    assert_eq!(snapshot(dir.path()), before, "the data is untouched");
}
