//! Hostile runs: kills and full disks during export, two processes in one run directory,
//! damaged checkpoints, a run killed in its first epoch, bad recipe values.

use std::fs;
use std::path::{Path, PathBuf};

use crate::plugin_failures::fixture;
use crate::support::{Clshost, interrupt, stderr, stdout_ok, tiny_scratch};
use clshost::train::Checkpoint;
use clshost_plugin_loggers::tensorboard::proto::What;
use clshost_plugin_loggers::tensorboard::records::read_events;
use safetensors::SafeTensors;

/// A scratch directory with the tiny dataset and recipe.
fn scratch(clshost: &Clshost) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny_scratch(clshost, dir.path());
    dir
}

/// The only run directory under `dir/runs/tiny/`.
fn the_run(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = fs::read_dir(dir.join("runs/tiny"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

/// The names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that `RUN/export/` holds exactly the `safetensors` exporter's files, whole (the
/// weights parse, with the classifier in them), and that the run's checkpoints load.
fn assert_whole_export_and_checkpoints(run: &Path) {
    assert_eq!(
        entries(&run.join("export")),
        ["model.json", "model.safetensors"]
    );
    let bytes = fs::read(run.join("export/model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).expect("a whole safetensors file");
    assert!(file.names().iter().any(|n| n.starts_with("fc.")));
    for ckpt in ["last.ckpt", "best.ckpt"] {
        Checkpoint::load(&run.join("checkpoints").join(ckpt)).unwrap();
    }
}

#[test]
fn an_export_cut_off_midway_leaves_no_torn_file_in_export() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let panics = fixture("panics");
    let export = |by: &str| {
        let list = format!(
            "export=[(name: \"safetensors\"), (name: \"cut_off_mid_export\", params: (by: {by}))]"
        );
        let args = ["--plugin", panics.to_str().unwrap(), "run", "tiny.ron"];
        let set = ["--set", &list, "--set", "trainer.epochs=1"];
        let out = clshost.run_in(dir.path(), &[&args[..], &set].concat());
        let run = the_run(dir.path());
        let moved = dir.path().join(format!("runs/{by}"));
        fs::rename(&run, &moved).unwrap();
        (out, run, moved)
    };

    // Killed while writing its file: the file the exporter before it wrote is whole, and the
    // torn one never reached `export/`.
    let (out, _, run) = export("kill");
    assert_eq!(
        out.status.code(),
        None,
        "killed by a signal: {}",
        stderr(&out)
    );
    assert_whole_export_and_checkpoints(&run);
    assert_eq!(
        fs::metadata(run.join(".export-staging/model.safetensors"))
            .unwrap()
            .len(),
        64 * 1024,
        "the torn file stays in the staging folder"
    );

    // A full disk: the error names the file and its cause once; the staging folder is gone.
    let (out, written, run) = export("full_disk");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let cause = "No space left on device (os error 28)";
    assert_eq!(err.matches(cause).count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "export failed (the checkpoints are saved): exporter `cut_off_mid_export` (plugin \
             clshost-plugin-panics, {}): export: {}: {cause}",
            panics.display(),
            written.join(".export-staging/model.safetensors").display()
        )),
        "{err}"
    );
    assert_whole_export_and_checkpoints(&run);
    assert!(!run.join(".export-staging").exists());
}

#[test]
fn a_second_process_in_a_live_run_directory_is_refused_with_the_holder_pid() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let live = clshost.live_run(dir.path());
    let run = the_run(dir.path());
    let run_arg = run.to_str().unwrap();
    let second = clshost.run_in(dir.path(), &["run", "--resume", run_arg]);
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    let holder = format!("process {} on host ", live.id());
    assert!(
        err.starts_with(&format!("error: {} is in use by {holder}", run.display())),
        "{err}"
    );
    assert!(err.contains("before resuming it"), "{err}");

    // The live run was not disturbed: interrupted, it saves `last` and exits 130; then the
    // directory is free to resume.
    interrupt(&live);
    let out = live.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let last = Checkpoint::load(&run.join("checkpoints/last.ckpt")).unwrap();
    let stop = (last.host.epoch + 1).to_string();
    let resumed = clshost.run_in(
        dir.path(),
        &["run", "--resume", run_arg, "--stop-after-epoch", &stop],
    );
    assert_eq!(resumed.status.code(), Some(130), "{}", stderr(&resumed));
}

#[test]
fn a_damaged_checkpoint_is_refused_by_name() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let out = clshost.run_in(dir.path(), &["run", "tiny.ron", "--stop-after-epoch", "1"]);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let run = the_run(dir.path());
    // Damaged in place, as a disk damages a file: once per file, since names of one state
    // share a file.
    let mut files = std::collections::HashSet::new();
    for name in ["best.ckpt", "last.ckpt"] {
        let path = run.join("checkpoints").join(name);
        if !files.insert(std::os::unix::fs::MetadataExt::ino(
            &fs::metadata(&path).unwrap(),
        )) {
            continue;
        }
        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
    }
    let damaged = |path: &Path| {
        format!(
            "error: {} is damaged: its CRC-32C checksum is ",
            path.display()
        )
    };

    let best = run.join("checkpoints/best.ckpt");
    let out = clshost.run_in(
        dir.path(),
        &["eval", best.to_str().unwrap(), "--data", "data/val"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&damaged(&best)[7..]), "{err}");
    assert!(err.contains("use a checkpoint of another epoch"), "{err}");

    let last = run.join("checkpoints/last.ckpt");
    let out = clshost.run_in(dir.path(), &["run", "--resume", run.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with(&damaged(&last)), "{err}");
}

/// The `train/loss` steps TensorBoard shows for `run`: the event files in name order, each
/// `SessionLog` START at step `s` dropping what earlier files hold from step `s` on (as
/// TensorBoard's `EventAccumulator` purges orphaned data).
fn train_loss_steps(run: &Path) -> Vec<i64> {
    let dir = run.join("tensorboard");
    let mut steps: Vec<i64> = Vec::new();
    for name in entries(&dir) {
        for event in read_events(&dir.join(name)).unwrap() {
            match &event.what {
                Some(What::SessionLog(s)) if s.status == 1 => steps.retain(|&k| k < event.step),
                Some(What::Summary(s)) if s.value.iter().any(|v| v.tag == "train/loss") => {
                    steps.push(event.step);
                }
                _ => {}
            }
        }
    }
    steps
}

#[test]
fn a_run_killed_in_its_first_epoch_resumes_without_duplicate_steps_or_lost_time() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    // Diverging at its second step leaves what a kill in epoch 1 does: `last` is the
    // checkpoint from before the first step, and the event file holds step 1.
    let out = clshost.run_in(
        dir.path(),
        &["run", "tiny.ron", "--set", "optimizer.lr=1e38"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = the_run(dir.path());
    assert_eq!(
        Checkpoint::load(&run.join("checkpoints/last.ckpt"))
            .unwrap()
            .host
            .global_step,
        0
    );
    assert!(train_loss_steps(&run).contains(&1));
    let recipe = fs::read_to_string(run.join("recipe.ron")).unwrap();
    fs::write(run.join("recipe.ron"), recipe.replace("1e38", "0.05")).unwrap();

    let run_arg = run.to_str().unwrap();
    let paused = clshost.run_in(
        dir.path(),
        &["run", "--resume", run_arg, "--stop-after-epoch", "1"],
    );
    assert_eq!(paused.status.code(), Some(130), "{}", stderr(&paused));
    let first = Checkpoint::load(&run.join("checkpoints/last.ckpt"))
        .unwrap()
        .host;
    assert!(first.wall_seconds > 0.0);
    stdout_ok(&clshost.run_in(dir.path(), &["run", "--resume", run_arg]));

    // Three epochs of three steps, each step once.
    assert_eq!(train_loss_steps(&run), (1..=9).collect::<Vec<_>>());
    // The run's wall time spans both invocations.
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(run.join("summary.json")).unwrap()).unwrap();
    let last = Checkpoint::load(&run.join("checkpoints/last.ckpt"))
        .unwrap()
        .host;
    let later: f64 = last.history[1..].iter().map(|r| r.seconds).sum();
    let wall = summary["wall_seconds"].as_f64().unwrap();
    assert!(
        wall >= first.wall_seconds + later,
        "{wall} vs {} + {later}",
        first.wall_seconds
    );
}

#[test]
fn bad_values_names_and_paths_fail_check_with_their_place() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let check = |set: &str| {
        let out = clshost.run_in(dir.path(), &["check", "tiny.ron", "--set", set]);
        assert_eq!(out.status.code(), Some(1), "{set}: {}", stderr(&out));
        stderr(&out)
    };
    let err = check("optimizer.lr=inf");
    assert!(
        err.contains("--set optimizer.lr=inf: `optimizer.lr`: must be a finite number"),
        "{err}"
    );
    let err = check("trainer..epochs=3");
    assert!(
        err.contains("`trainer..epochs` is not a path like `data.root`"),
        "{err}"
    );
    let err = check("name=../../x");
    assert!(
        err.contains("`name`: must be one plain folder name (no `/`, `\\`, `.` or `..`)"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn component_errors_are_shown_beside_schema_errors() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let recipe = fs::read_to_string(dir.path().join("tiny.ron"))
        .unwrap()
        .replace("epochs: 3,", "epochz: 3,")
        .replace("\"cross_entropy\"", "\"cross_entropyy\"");
    fs::write(dir.path().join("broken.ron"), recipe).unwrap();
    let out = clshost.run_in(dir.path(), &["check", "broken.ron"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`trainer.epochz`: unknown field `epochz`"),
        "{err}"
    );
    assert!(err.contains("`loss.name`: "), "{err}");
    assert!(err.contains("did you mean `cross_entropy`?"), "{err}");
    assert!(err.contains("error: 2 problems in broken.ron"), "{err}");
}

#[test]
fn a_run_refused_after_checking_leaves_no_run_directory() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let out = clshost.run_in(
        dir.path(),
        &["run", "tiny.ron", "--init-from", "missing.safetensors"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: --init-from missing.safetensors: weights file missing.safetensors does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists(), "{err}");
    // A class count the data does not have is refused by `check` already.
    let out = clshost.run_in(
        dir.path(),
        &["check", "tiny.ron", "--set", "model.num_classes=5"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`model.num_classes`: is 5 but ") && err.contains(" has 2 class folders"),
        "{err}"
    );
}

#[test]
fn validation_logits_that_are_not_finite_stop_the_run_with_epoch_and_step() {
    let clshost = Clshost::new();
    let dir = scratch(&clshost);
    let out = clshost.run_in(
        dir.path(),
        &["run", "tiny.ron", "--set", "optimizer.lr=1e6"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let run = the_run(dir.path());
    let last = run.join("checkpoints/last.ckpt");
    // Which non-finite value the diverged weights give depends on the CPU's arithmetic.
    assert!(
        ["NaN", "inf", "-inf"]
            .iter()
            .any(|value| err.contains(&format!(
                "error: the validation logits of the raw weights hold {value} at epoch 1, step 3: \
             training diverged (lower `optimizer.lr`, add warmup or `trainer.clip_grad_norm`); \
             the checkpoint written before it is kept ({})",
                last.display()
            ))),
        "{err}"
    );
    assert_eq!(Checkpoint::load(&last).unwrap().host.global_step, 0);
    assert!(!run.join("summary.json").exists());
}
