//! `clshost eval` end to end, on one tiny training run that the tests share ([`TrainedRun`],
//! trained once per test process in `target/tmp/clshost-eval/`): the run's own validation folder
//! gives back the run's `metrics.jsonl` values for the same weights, from the run directory and
//! from a checkpoint; `--json` has the documented fields; a subset of the classes with an
//! unreadable image is evaluated; an unknown class folder is a clear error.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use crate::support::{TrainedRun, stderr, stdout_ok};
use serde_json::Value;

/// Two epochs with an EMA of the weights, monitoring the loss (the EMA weights win, as in the
/// predict tests), and no exports.
const OVERRIDES: [&str; 4] = [
    "trainer.epochs=2",
    "trainer.monitor=\"loss\"",
    "trainer.ema=(decay: 0.5, warmup: false)",
    "export=[]",
];

/// The shared trained run.
fn trained() -> &'static TrainedRun {
    static TRAINED: OnceLock<TrainedRun> = OnceLock::new();
    TrainedRun::shared(&TRAINED, "clshost-eval", &OVERRIDES)
}

/// The `--json` object of a successful `clshost eval`.
fn eval_json(t: &TrainedRun, model: &Path, data: &str) -> Value {
    let out = t.output("eval", &[model.to_str().unwrap(), "--data", data, "--json"]);
    serde_json::from_str(&stdout_ok(&out)).unwrap()
}

/// The run's `metrics.jsonl` row of `epoch`.
fn history_row(t: &TrainedRun, epoch: u64) -> Value {
    fs::read_to_string(t.run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|row| row["epoch"] == epoch)
        .unwrap()
}

/// Every metric of `report` equals the same column of `row`, and the columns the tests rely on
/// are among them.
fn assert_reproduces(report: &Value, row: &Value) {
    let metrics = report["metrics"].as_object().unwrap();
    for name in ["val_loss", "top1", "f1_macro", "ema_val_loss", "ema_top1"] {
        assert!(metrics.contains_key(name), "{name} in {report}");
    }
    for (name, value) in metrics {
        let (got, want) = (value.as_f64().unwrap(), row[name].as_f64().unwrap());
        assert!((got - want).abs() < 1e-6, "{name}: eval {got}, run {want}");
    }
}

#[test]
fn the_run_val_folder_reproduces_the_run_metrics_with_documented_json() {
    let t = trained();
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(t.run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["best_weights"], "ema", "{summary}");
    let best_epoch = summary["best_epoch"].as_u64().unwrap();

    let report = eval_json(t, &t.run, "data/val");
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "checkpoint",
            "data",
            "epoch",
            "images",
            "metrics",
            "model",
            "per_class",
            "skipped",
            "source",
            "weights"
        ]
    );
    assert_eq!(report["source"], Value::Null);
    assert_eq!(report["model"], "resnet18");
    assert_eq!(report["epoch"], best_epoch);
    assert_eq!(report["weights"], "ema");
    assert_eq!(report["data"], "data/val");
    assert_eq!(report["images"], 6);
    assert_eq!(report["skipped"], 0);
    assert!(
        report["checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("checkpoints/best.ckpt"),
        "{report}"
    );
    let per_class = report["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 2);
    for (line, class) in per_class.iter().zip(["circle", "square"]) {
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["class", "f1", "precision", "recall", "support"]);
        assert_eq!(line["class"], class);
        assert_eq!(line["support"], 3);
    }
    assert_reproduces(&report, &history_row(t, best_epoch));

    // The checkpoint form, on `last` (the final epoch's weights), with a smaller batch.
    let last = t.run.join("checkpoints/last.ckpt");
    let out = t.output(
        "eval",
        &[
            last.to_str().unwrap(),
            "--data",
            "data/val",
            "--json",
            "--batch",
            "2",
        ],
    );
    let report: Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    assert_eq!(report["epoch"], 2);
    assert_reproduces(&report, &history_row(t, 2));
}

#[test]
fn text_output_shows_the_training_tables() {
    let t = trained();
    let text = stdout_ok(&t.output("eval", &[t.run.to_str().unwrap(), "--data", "data/val"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("resnet18 from "), "{text}");
    assert!(lines[0].ends_with("on data/val: 6 images"), "{text}");
    let header: Vec<&str> = lines[1]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["val loss", "top-1", "F1", "EMA top-1"], "{text}");
    assert_eq!(lines[2].split_whitespace().count(), 4, "{text}");
    assert_eq!(lines[4], "per class (EMA weights):", "{text}");
    assert!(lines[5].starts_with("class   precision"), "{text}");
    assert!(lines[6].starts_with("circle "), "{text}");
    assert!(lines[7].starts_with("square "), "{text}");
}

#[test]
fn a_subset_of_classes_is_evaluated_and_unreadable_images_skipped() {
    let t = trained();
    let subset = t.dir.join("subset/square");
    fs::create_dir_all(&subset).unwrap();
    for entry in fs::read_dir(t.dir.join("data/val/square")).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, subset.join(path.file_name().unwrap())).unwrap();
    }
    fs::write(subset.join("corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = t.output(
        "eval",
        &[t.run.to_str().unwrap(), "--data", "subset", "--json"],
    );
    let report: Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    assert_eq!(report["images"], 3);
    assert_eq!(report["skipped"], 1);
    let support: Vec<&Value> = report["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["support"])
        .collect();
    assert_eq!(support, [0, 3]);
    let err = stderr(&out);
    assert!(err.contains("corrupt.png"), "{err}");
    assert!(err.contains("1 of 4 images could not be read"), "{err}");
}

#[test]
fn a_class_the_model_does_not_know_and_an_onnx_file_are_clear_errors() {
    let t = trained();
    for class in ["circle", "triangle"] {
        let dir = t.dir.join("other").join(class);
        fs::create_dir_all(&dir).unwrap();
        let image = fs::read_dir(t.dir.join("data/val/circle"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fs::copy(image, dir.join("a.png")).unwrap();
    }
    let run = t.run.to_str().unwrap();
    let out = t.output("eval", &[run, "--data", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: class folder `triangle` of other is not a class of the model (its classes: \
         circle, square)"
    );

    fs::write(t.dir.join("model.onnx"), b"not read").unwrap();
    let out = t.output("eval", &["model.onnx", "--data", "data/val"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: model.onnx is an .onnx export, which holds no loss or metrics; give the run \
         directory or one of its checkpoints"
    );
}
