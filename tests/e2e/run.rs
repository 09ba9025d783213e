//! `clshost run` end to end on a tiny generated dataset: the run directory's files (metrics,
//! checkpoints with top-k, TensorBoard events, plots), exact resume, interrupts, a diverging
//! loss, and a broken recipe.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Clshost, TINY_RECIPE, interrupt, stderr, stdout_ok, tiny_tempdir};
use clshost::report::plots::{CURVE_SIZE, MATRIX_SIZE};
use clshost::train::Checkpoint;
use clshost_plugin_loggers::tensorboard::proto::{Value, What};
use clshost_plugin_loggers::tensorboard::records::{Scalar, read_events, scalars, values};
use safetensors::SafeTensors;

/// A scratch directory with the tiny dataset and recipe.
fn run(clshost: &Clshost, dir: &Path, args: &[&str]) -> Output {
    clshost
        .command(["run"].iter().chain(args))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The run directories under `runs/<name>/`, oldest first.
fn run_dirs(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir.join("runs").join(name))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The names of the files in `dir` starting with `prefix`, sorted.
fn names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Every scalar of every TensorBoard event file of `run`, files in name order.
fn board(run: &Path) -> Vec<Scalar> {
    let dir = run.join("tensorboard");
    names(&dir, "events.out.tfevents.")
        .iter()
        .flat_map(|n| scalars(&read_events(&dir.join(n)).unwrap()))
        .collect()
}

/// The (step, value) points of `tag`.
fn series(board: &[Scalar], tag: &str) -> Vec<(i64, f32)> {
    board
        .iter()
        .filter(|s| s.tag == tag)
        .map(|s| (s.step, s.value))
        .collect()
}

#[test]
fn a_tiny_run_writes_every_run_directory_file() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    let out = run(
        &clshost,
        dir.path(),
        &["tiny.ron", "--set", "trainer.epochs=2"],
    );
    let stdout = stdout_ok(&out);
    let runs = run_dirs(dir.path(), "tiny");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let stamp = run.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(stamp.len(), 15, "YYYYmmdd-HHMMSS: {stamp}");

    let recipe = fs::read_to_string(run.join("recipe.ron")).unwrap();
    assert!(recipe.contains("epochs: 2"), "{recipe}");

    let plugins: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("plugins.json")).unwrap()).unwrap();
    let plugins = plugins.as_array().unwrap();
    assert_eq!(plugins.len(), 6, "{plugins:?}");
    for p in plugins {
        assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
        assert!(Path::new(p["file"].as_str().unwrap()).is_file());
        assert!(!p["version"].as_str().unwrap().is_empty());
    }

    let csv = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,train_loss,lr,val_loss,top1,f1_macro,seconds,images_per_s"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[2].starts_with("2,"));
    let jsonl = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[1]["top1"].as_f64().unwrap() >= 0.0);

    let last = Checkpoint::load(&run.join("checkpoints/last.ckpt")).unwrap();
    assert_eq!(last.host.epoch, 2);
    assert_eq!(last.host.history.len(), 2);
    assert!(!last.backbone.is_empty());
    let best = Checkpoint::load(&run.join("checkpoints/best.ckpt")).unwrap();
    assert_eq!(Some(best.host.epoch), last.host.monitor.best_epoch);
    // top_k: 2 over two evaluations keeps both, best first, each the state after its epoch.
    let checkpoints = run.join("checkpoints");
    assert_eq!(
        names(&checkpoints, "epoch-"),
        ["epoch-001.ckpt", "epoch-002.ckpt"]
    );
    assert_eq!(last.host.top_k.len(), 2);
    assert_eq!(Some(last.host.top_k[0].epoch), last.host.monitor.best_epoch);
    for epoch in [1, 2] {
        let file = checkpoints.join(format!("epoch-00{epoch}.ckpt"));
        assert_eq!(Checkpoint::load(&file).unwrap().host.epoch, epoch);
    }

    // TensorBoard: one file; 3 steps per epoch (12 images, batches of 4), logged every step;
    // each epoch's row at the step that ends it.
    let events = names(&run.join("tensorboard"), "events.out.tfevents.");
    assert_eq!(events.len(), 1, "{events:?}");
    let first = read_events(&run.join("tensorboard").join(&events[0])).unwrap();
    assert!(matches!(&first[0].what, Some(What::FileVersion(v)) if v == "brain.Event:2"));
    let board = board(run);
    let steps = |tag| series(&board, tag).iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(steps("train/loss"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps("train/lr"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps("train/images_per_s").len(), 6);
    for (column, tag) in [("val_loss", "epoch/val_loss"), ("top1", "epoch/top1")] {
        let expected: Vec<(i64, f32)> = rows
            .iter()
            .zip([3, 6])
            .map(|(r, step)| (step, r[column].as_f64().unwrap() as f32))
            .collect();
        assert_eq!(series(&board, tag), expected, "{tag}");
    }
    for tag in [
        "epoch/epoch",
        "epoch/train_loss",
        "epoch/lr",
        "epoch/f1_macro",
        "epoch/seconds",
    ] {
        assert_eq!(series(&board, tag).len(), 2, "{tag}");
    }
    // The sheet of the first batch (4 images, 2x2, enlarged to 96 pixels), and TensorBoard's
    // images: the sheet before the first step, the confusion matrix after each evaluation.
    let sheet = image::open(run.join("samples.png")).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (4 + 2 * 100, 4 + 2 * 112));
    let pictures: Vec<(String, i64)> = values(&first)
        .filter(|(_, v)| matches!(v.value, Some(Value::Image(_))))
        .map(|(step, v)| (v.tag.clone(), step))
        .collect();
    let expected = [
        ("samples/train", 0),
        ("confusion_matrix", 3),
        ("confusion_matrix", 6),
    ];
    assert_eq!(pictures, expected.map(|(t, s)| (t.to_string(), s)));

    // Plots: valid PNGs of the documented sizes, not blank.
    for (name, size) in [
        ("loss.png", CURVE_SIZE),
        ("accuracy.png", CURVE_SIZE),
        ("metrics.png", CURVE_SIZE),
        ("lr.png", CURVE_SIZE),
        ("confusion_matrix.png", MATRIX_SIZE),
    ] {
        let img = image::open(run.join("plots").join(name)).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), size, "{name}");
        let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 20, "{name}: {} colours", colours.len());
    }

    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ending"], "completed");
    assert_eq!(summary["epochs"], 2);
    assert_eq!(summary["skipped_files"], 0);
    let export = &summary["exports"][0];
    assert_eq!(export["exporter"], "safetensors");
    let file = PathBuf::from(export["files"][0].as_str().unwrap());
    assert!(
        file.starts_with(run.join("export")) && file.is_file(),
        "{file:?}"
    );

    assert!(stdout.contains("epoch  train loss"), "{stdout}");
    assert!(
        stdout.contains("precision") && stdout.contains("support"),
        "{stdout}"
    );
    assert!(
        stdout.contains("circle") && stdout.contains("square"),
        "{stdout}"
    );
    assert!(stdout.contains("run completed after 2 epochs"), "{stdout}");
}

/// Asserts that two ResNet backbone states (the Burn kit's safetensors buffers: weights,
/// optimizer state, counters in the metadata) are bit-identical. The metadata is compared as a
/// map: its order in the header is not part of the state.
fn assert_same_state(a: &[u8], b: &[u8]) {
    let (_, meta_a) = SafeTensors::read_metadata(a).unwrap();
    let (_, meta_b) = SafeTensors::read_metadata(b).unwrap();
    assert_eq!(meta_a.metadata(), meta_b.metadata(), "counters differ");
    let (ta, tb) = (
        SafeTensors::deserialize(a).unwrap(),
        SafeTensors::deserialize(b).unwrap(),
    );
    let mut names = ta.names();
    names.sort();
    let mut names_b = tb.names();
    names_b.sort();
    assert_eq!(names, names_b);
    for name in names {
        let (x, y) = (ta.tensor(name).unwrap(), tb.tensor(name).unwrap());
        assert_eq!(x.shape(), y.shape(), "{name}");
        assert!(x.data() == y.data(), "`{name}` differs after resume");
    }
}

#[test]
fn a_run_stopped_after_epoch_2_and_resumed_ends_bit_identical() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    stdout_ok(&run(&clshost, dir.path(), &["tiny.ron"]));
    let out = run(
        &clshost,
        dir.path(),
        &["tiny.ron", "--stop-after-epoch", "2"],
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let runs = run_dirs(dir.path(), "tiny");
    assert_eq!(runs.len(), 2);
    let (whole, parted) = (&runs[0], &runs[1]);
    assert!(
        stderr(&out).contains(&format!(
            "resume with: clshost run --resume {}",
            parted.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!parted.join("summary.json").exists());
    let paused = Checkpoint::load(&parted.join("checkpoints/last.ckpt")).unwrap();
    assert_eq!(paused.host.epoch, 2);

    let resume = parted.to_string_lossy().into_owned();
    stdout_ok(&run(&clshost, dir.path(), &["--resume", &resume]));
    let a = Checkpoint::load(&whole.join("checkpoints/last.ckpt")).unwrap();
    let b = Checkpoint::load(&parted.join("checkpoints/last.ckpt")).unwrap();
    assert_same_state(&a.backbone, &b.backbone);
    assert_eq!(a.host.global_step, b.host.global_step);
    assert_eq!(a.host.monitor, b.host.monitor);
    let strip = |c: &Checkpoint| {
        c.host
            .history
            .iter()
            .map(|r| (r.epoch, r.train_loss, r.lr))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    for (x, y) in a.host.history.iter().zip(&b.host.history) {
        assert_close_values(x.epoch, &x.values, &y.values);
    }

    // Top-k: the same two of three epochs kept, with the same bookkeeping.
    assert_eq!(a.host.top_k, b.host.top_k);
    assert_eq!(a.host.top_k.len(), 2);
    let kept = names(&whole.join("checkpoints"), "epoch-");
    assert_eq!(kept.len(), 2);
    assert_eq!(kept, names(&parted.join("checkpoints"), "epoch-"));

    // TensorBoard: the resumed run appended a second file that starts a session at step 7;
    // together they hold the uninterrupted run's steps, each once, with the same training
    // values.
    let files = names(&parted.join("tensorboard"), "events.out.tfevents.");
    assert_eq!(files.len(), 2, "{files:?}");
    let second = read_events(&parted.join("tensorboard").join(&files[1])).unwrap();
    assert!(matches!(&second[1].what, Some(What::SessionLog(s)) if s.status == 1));
    assert_eq!(second[1].step, 7);
    let (whole_board, parted_board) = (board(whole), board(parted));
    for tag in ["train/loss", "train/lr"] {
        assert_eq!(
            series(&whole_board, tag),
            series(&parted_board, tag),
            "{tag}"
        );
    }
    let steps = |b: &[Scalar]| {
        series(b, "epoch/val_loss")
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(&whole_board), [3, 6, 9]);
    assert_eq!(steps(&parted_board), [3, 6, 9]);
}

/// Asserts that two epochs' evaluation values have the same names and agree within a relative
/// 1e-12. Training is bit-exact, but two processes evaluating the same weights on the CPU have
/// been seen to differ in the last bit of an f64 `val_loss` (CI, 1 ulp): Burn's CPU kernels do
/// not promise bit-identical f32 results across processes, and a confident sample's loss
/// carries such noise into the sum.
fn assert_close_values(epoch: u32, a: &[(String, Option<f64>)], b: &[(String, Option<f64>)]) {
    assert_eq!(a.len(), b.len(), "epoch {epoch}: {a:?} vs {b:?}");
    for ((name, x), (name_b, y)) in a.iter().zip(b) {
        assert_eq!(name, name_b, "epoch {epoch}");
        match (x, y) {
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                "epoch {epoch} `{name}`: {x} vs {y}"
            ),
            _ => assert_eq!(x, y, "epoch {epoch} `{name}`"),
        }
    }
}

#[test]
fn ctrl_c_saves_last_and_exits_130() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    let child = clshost.live_run(dir.path());
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("resume with: clshost run --resume"), "{err}");
    let run = &run_dirs(dir.path(), "tiny")[0];
    let last = Checkpoint::load(&run.join("checkpoints/last.ckpt")).unwrap();
    assert!(last.host.epoch >= 1 && last.host.epoch < 1000);
}

#[test]
fn a_diverging_loss_stops_and_keeps_the_checkpoint_before_it() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    let out = run(
        &clshost,
        dir.path(),
        &["tiny.ron", "--set", "optimizer.lr=1e38"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("training diverged"), "{err}");
    assert!(
        err.contains("at epoch ") && err.contains(", step "),
        "{err}"
    );
    let run = &run_dirs(dir.path(), "tiny")[0];
    let last = Checkpoint::load(&run.join("checkpoints/last.ckpt")).unwrap();
    assert!(last.host.history.iter().all(|r| r.train_loss.is_finite()));
    assert!(!run.join("summary.json").exists());
}

#[test]
fn an_unknown_recipe_field_fails_before_any_work() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    let broken = TINY_RECIPE.replace("trainer: (epochs: 3,", "trainer: (epochz: 3,");
    fs::write(dir.path().join("broken.ron"), broken).unwrap();
    let out = run(&clshost, dir.path(), &["broken.ron"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`trainer.epochz`: unknown field"), "{err}");
    assert!(err.contains("did you mean `epochs`?"), "{err}");
    assert!(!dir.path().join("runs").exists(), "no run directory");
}

#[test]
fn bf16_on_a_device_without_it_fails_before_any_work() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    let out = run(
        &clshost,
        dir.path(),
        &["tiny.ron", "--set", "trainer.precision=bf16"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("trainer.precision")
            && err.contains("precision `bf16` runs on the LibTorch backend only")
            && err.contains("or train in `fp32`"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists(), "no run directory");
    let typo = run(
        &clshost,
        dir.path(),
        &["tiny.ron", "--set", "trainer.precision=bf61"],
    );
    let err = stderr(&typo);
    assert_eq!(typo.status.code(), Some(1), "{err}");
    assert!(err.contains("`trainer.precision`"), "{err}");
}

/// `trainer.precision: bf16` on `libtorch:cpu`, through the host: the run says so, trains,
/// evaluates in bfloat16, and its ONNX export is checked against the float32 forward (the
/// exported model computes in float32). Needs the resnet plugin built with the LibTorch backend:
/// `.ci/run` runs it with `CLSHOST_TEST_FEATURES=clshost-plugin-resnet/libtorch` after
/// `eval "$(scripts/setup-libtorch.sh)"`.
#[test]
#[ignore = "needs CLSHOST_TEST_FEATURES=clshost-plugin-resnet/libtorch (a LibTorch build)"]
fn bf16_on_libtorch_trains_and_exports_a_float32_model() {
    let clshost = Clshost::new();
    let dir = tiny_tempdir(&clshost);
    let out = run(
        &clshost,
        dir.path(),
        &[
            "tiny.ron",
            "--set",
            "trainer.device=libtorch:cpu",
            "--set",
            "trainer.precision=bf16",
            "--set",
            "export=[(name: \"onnx\")]",
        ],
    );
    let stdout = stdout_ok(&out);
    assert!(
        stdout.contains("on libtorch:cpu (torch ") && stdout.contains(" in bf16 mixed precision,"),
        "{stdout}"
    );
    let run = &run_dirs(dir.path(), "tiny")[0];
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ending"], "completed", "{summary}");
    assert_eq!(summary["exports"][0]["exporter"], "onnx", "{summary}");
    let diff = summary["exports"][0]["max_abs_diff"].as_f64().unwrap();
    assert!(
        diff < 1e-4,
        "the ONNX model is {diff} from the float32 forward"
    );
    let last = Checkpoint::load(&run.join("checkpoints/last.ckpt")).unwrap();
    assert_eq!(last.host.history.len(), 3);
    assert!(last.host.history.iter().all(|r| r.train_loss.is_finite()));
}
