//! The `tensorboard` logger read by TensorBoard's own Python reader (`EventAccumulator`,
//! installed by `scripts/setup-tensorboard.sh`, driven by `scripts/fixtures/tensorboard_read.py`):
//! every value of every `metrics.jsonl` row and every training step, the sample sheet and the
//! confusion matrices (raw and EMA) as images, the recipe's fields as hyperparameters and the
//! run's status; and a run interrupted and resumed shows each step once.
//!
//! Ignored unless run with `--ignored`, with `CLSHOST_TEST_TENSORBOARD_PYTHON` naming a Python
//! that has `tensorboard`; `.ci/run` does both.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Clshost, paused_tiny_run, stderr, stdout_ok, tiny_run_dir, tiny_tempdir};

/// What TensorBoard's reader loads from the run's `tensorboard/` directory.
fn tensorboard_reads(run: &Path) -> Value {
    let python = std::env::var("CLSHOST_TEST_TENSORBOARD_PYTHON").expect(
        "CLSHOST_TEST_TENSORBOARD_PYTHON names a Python with tensorboard \
         (scripts/setup-tensorboard.sh)",
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fixtures/tensorboard_read.py");
    let out = Command::new(python)
        .arg(script)
        .arg(run.join("tensorboard"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `(step, value)` points TensorBoard has for `tag`.
fn points(read: &Value, tag: &str) -> Vec<(i64, f64)> {
    read["scalars"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tag"] == tag)
        .map(|s| (s["step"].as_i64().unwrap(), s["value"].as_f64().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs TensorBoard: CLSHOST_TEST_TENSORBOARD_PYTHON=\"$(scripts/setup-tensorboard.sh)\""]
fn tensorboard_reads_every_scalar_image_and_hyperparameter_of_a_run() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let out = clshost.run_in(
        scratch.path(),
        &[
            "run",
            "tiny.ron",
            "--set",
            "trainer.epochs=2",
            "--set",
            "trainer.ema=(decay: 0.9)",
        ],
    );
    stdout_ok(&out);
    let run = tiny_run_dir(scratch.path());
    let read = tensorboard_reads(&run);

    // Every value of every epoch row (EMA's columns included), at the step that ends the epoch
    // (3 steps per epoch), as the f32 TensorBoard keeps.
    let rows: Vec<Value> = fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut columns = 0;
    for (name, _) in rows[0].as_object().unwrap() {
        let expected: Vec<(i64, f32)> = (3..)
            .step_by(3)
            .zip(&rows)
            .filter_map(|(step, r)| Some((step, r[name].as_f64()? as f32)))
            .collect();
        let got: Vec<(i64, f32)> = points(&read, &format!("epoch/{name}"))
            .into_iter()
            .map(|(step, v)| (step, v as f32))
            .collect();
        assert_eq!(got, expected, "{name}");
        columns += 1;
    }
    assert!(columns >= 10, "{columns} columns, EMA's included");
    let steps: Vec<i64> = points(&read, "train/loss").iter().map(|p| p.0).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);

    // The sample sheet before the first step, its size as on disk; the confusion matrices after
    // each evaluation.
    let sheet = image::open(run.join("samples.png")).unwrap();
    let images: Vec<(String, i64, u64, u64)> = read["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["png_size"], serde_json::json!([i["width"], i["height"]]));
            (
                i["tag"].as_str().unwrap().to_string(),
                i["step"].as_i64().unwrap(),
                i["width"].as_u64().unwrap(),
                i["height"].as_u64().unwrap(),
            )
        })
        .collect();
    let tags: Vec<(&str, i64)> = images.iter().map(|i| (i.0.as_str(), i.1)).collect();
    assert_eq!(
        tags,
        [
            ("confusion_matrix", 3),
            ("confusion_matrix", 6),
            ("confusion_matrix/ema", 3),
            ("confusion_matrix/ema", 6),
            ("samples/train", 0)
        ]
    );
    let last = images.last().unwrap();
    assert_eq!(
        (last.2, last.3),
        (u64::from(sheet.width()), u64::from(sheet.height()))
    );

    // The recipe's fields as typed hyperparameters, and the run's status.
    let hparams = &read["hparams"]["_hparams_/session_start_info"]["session_start_info"]["hparams"];
    assert_eq!(hparams["optimizer.lr"], 0.05);
    assert_eq!(hparams["trainer.epochs"], 2.0);
    assert_eq!(hparams["model.name"], "resnet18");
    assert_eq!(hparams["optimizer.name"], "sgd");
    let end = &read["hparams"]["_hparams_/session_end_info"]["session_end_info"];
    assert_eq!(end["status"], "STATUS_SUCCESS", "{end}");
}

#[test]
#[ignore = "needs TensorBoard: CLSHOST_TEST_TENSORBOARD_PYTHON=\"$(scripts/setup-tensorboard.sh)\""]
fn tensorboard_shows_an_interrupted_and_resumed_run_once() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let run = paused_tiny_run(&clshost, scratch.path());
    let out = clshost.run_in(scratch.path(), &["run", "--resume", run.to_str().unwrap()]);
    stdout_ok(&out);
    let read = tensorboard_reads(&run);
    let steps: Vec<i64> = points(&read, "train/loss").iter().map(|p| p.0).collect();
    assert_eq!(steps, (1..=9).collect::<Vec<_>>());
    let epochs: Vec<(i64, f64)> = points(&read, "epoch/epoch");
    assert_eq!(epochs, [(3, 1.0), (6, 2.0), (9, 3.0)]);
    // The interrupted invocation wrote no session end: the one TensorBoard reads is the
    // resumed invocation's.
    let end = &read["hparams"]["_hparams_/session_end_info"]["session_end_info"];
    assert_eq!(end["status"], "STATUS_SUCCESS", "{end}");
}
