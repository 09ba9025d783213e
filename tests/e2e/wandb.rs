//! The `wandb` logger read by W&B's own reader of offline runs (`wandb leet inspect`, from the
//! `wandb` client that `scripts/setup-wandb.sh` installs; it is the Go `wandb-core` that
//! `wandb sync` uploads with): every record of the transaction log parses, the run's config,
//! every history row (each step's loss, each epoch's values equal to `metrics.jsonl`, the sample
//! sheet and the confusion matrices as images), the summary, the files and the exit code are
//! there; and a run interrupted and resumed is one W&B run in two offline folders.
//!
//! Ignored unless run with `--ignored`, with `CLSHOST_TEST_WANDB` naming the `wandb` command;
//! `.ci/run` does both.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Clshost, stderr, stdout_ok, tiny_run_dir, tiny_tempdir};

const LOGGER: &str =
    "loggers=[(name: \"wandb\", params: (project: \"tiny-e2e\", tags: [\"e2e\"]))]";

/// Runs `wandb leet inspect ARGS FOLDER`.
fn inspect(args: &[&str], folder: &Path) -> String {
    let wandb = std::env::var("CLSHOST_TEST_WANDB")
        .expect("CLSHOST_TEST_WANDB names the wandb command (scripts/setup-wandb.sh)");
    let out = Command::new(wandb)
        .args(["leet", "inspect"])
        .args(args)
        .arg(folder)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Every record of the folder's log, as W&B's reader prints them.
fn records(folder: &Path) -> Vec<Value> {
    inspect(&["--json"], folder)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The records of type `kind`, as their bodies.
fn of(records: &[Value], kind: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["type"] == kind)
        .map(|r| r[kind].clone())
        .collect()
}

/// The run's offline folders, in time order.
fn folders(run: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(run.join("wandb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("offline-run-")
        })
        .collect();
    found.sort();
    found
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

#[test]
#[ignore = "needs W&B's client: CLSHOST_TEST_WANDB=\"$(scripts/setup-wandb.sh)\""]
fn wandb_reads_the_config_history_summary_and_files_of_a_run() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let out = clshost.run_in(scratch.path(), &["run", "tiny.ron", "--set", LOGGER]);
    stdout_ok(&out);
    assert!(!stderr(&out).contains("wandb"), "{}", stderr(&out));
    let run = tiny_run_dir(scratch.path());
    let folders = folders(&run);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let records = records(&folders[0]);
    assert_eq!(records[0]["type"], "header");
    let nums: Vec<i64> = records.iter().map(|r| r["num"].as_i64().unwrap()).collect();
    assert_eq!(nums, (1..=records.len() as i64).collect::<Vec<_>>());

    // The run: the id kept for --resume, the project, the tags, the recipe as config.
    let kept: Value =
        serde_json::from_str(&fs::read_to_string(run.join("loggers/wandb/wandb.json")).unwrap())
            .unwrap();
    let the_run = &of(&records, "run")[0];
    assert_eq!(the_run["run_id"], kept["run_id"]);
    assert_eq!(the_run["project"], "tiny-e2e");
    assert_eq!(the_run["tags"], serde_json::json!(["e2e"]));
    let config = &the_run["config"]["update"];
    assert_eq!(config["optimizer"]["lr"], 0.05);
    assert_eq!(config["trainer"]["epochs"], 3);
    assert_eq!(config["model"]["name"], "resnet18");
    assert_eq!(
        config["clshost"]["plugin_abi"],
        clshost_plugin_api::ABI_VERSION_STRING
    );

    // History: the sample sheet before the first step, then one row per step, each with its
    // loss; each epoch's values and confusion matrix in the row of the step that ends it, the
    // values equal to metrics.jsonl.
    let history = of(&records, "history");
    let steps: Vec<i64> = history
        .iter()
        .map(|h| h["step"]["num"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (0..=9).collect::<Vec<_>>());
    for h in &history[1..] {
        assert!(h["item"]["train/loss"].is_f64(), "{h}");
        assert_eq!(h["item"]["_step"], h["step"]["num"]);
    }
    let image = |step: usize, key: &str| {
        let item = &history[step]["item"];
        assert_eq!(
            item[format!("{key}._type")],
            "image-file",
            "{key} at {step}: {item}"
        );
        let path = folders[0]
            .join("files")
            .join(item[format!("{key}.path")].as_str().unwrap());
        let png = image::open(&path).unwrap();
        assert_eq!(item[format!("{key}.width")], png.width());
        assert_eq!(item[format!("{key}.height")], png.height());
        assert_eq!(
            item[format!("{key}.size")],
            fs::metadata(&path).unwrap().len()
        );
    };
    image(0, "samples/train");
    for step in [3, 6, 9] {
        image(step, "confusion_matrix");
    }
    let rows: Vec<Value> = fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (row, step) in rows.iter().zip([3, 6, 9]) {
        let item = &history[step]["item"];
        for (name, value) in row.as_object().unwrap() {
            let Some(value) = value.as_f64() else {
                continue;
            };
            let got = item[format!("epoch/{name}")].as_f64();
            assert!(
                got.is_some_and(|g| close(g, value)),
                "{name} at {step}: {got:?} vs {value}"
            );
        }
    }

    // The summary, state and exit code as W&B's reader sums the log up.
    let summary: Value =
        serde_json::from_str(&inspect(&["--summary", "--json"], &folders[0])).unwrap();
    assert_eq!(summary["state"], "finished", "{summary}");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["step"], 9);
    let ours: Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert!(close(
        summary["summary"]["best_value"].as_f64().unwrap(),
        ours["best_value"].as_f64().unwrap()
    ));

    // The files: listed for upload, and in the folder's files/.
    let files: Vec<String> = of(&records, "files")
        .iter()
        .flat_map(|f| f["files"].as_array().unwrap().clone())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    for expected in ["recipe.ron", "samples.png", "plots/loss.png"] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} in {files:?}"
        );
    }
    assert!(files.iter().any(|f| f.starts_with("export/")), "{files:?}");
    for f in &files {
        assert!(folders[0].join("files").join(f).is_file(), "{f}");
    }
}

/// A resumed run, whose run record (with 40 000 characters of notes) spans two of the log's
/// 32 KiB blocks.
#[test]
#[ignore = "needs W&B's client: CLSHOST_TEST_WANDB=\"$(scripts/setup-wandb.sh)\""]
fn a_resumed_run_is_one_wandb_run_in_two_offline_folders() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let notes = "n".repeat(40_000);
    let logger = format!("loggers=[(name: \"wandb\", params: (notes: \"{notes}\"))]");
    let out = clshost.run_in(
        scratch.path(),
        &[
            "run",
            "tiny.ron",
            "--stop-after-epoch",
            "1",
            "--set",
            &logger,
        ],
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let run = tiny_run_dir(scratch.path());
    // W&B names folders by the second: the resumed one must not share the first's name.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = clshost.run_in(scratch.path(), &["run", "--resume", run.to_str().unwrap()]);
    stdout_ok(&out);
    let folders = folders(&run);
    assert_eq!(folders.len(), 2, "{folders:?}");
    let (first, second) = (records(&folders[0]), records(&folders[1]));
    let (run_a, run_b) = (&of(&first, "run")[0], &of(&second, "run")[0]);
    assert_eq!(run_a["run_id"], run_b["run_id"]);
    assert_eq!(run_b["notes"], notes.as_str());
    assert_ne!(run_a["resume"], true);
    assert_eq!(run_b["resume"], true);
    assert_eq!(of(&first, "exit")[0]["exit_code"], 130);
    assert_eq!(of(&second, "exit")[0]["exit_code"], 0);
    let steps = |records: &[Value]| -> Vec<i64> {
        of(records, "history")
            .iter()
            .map(|h| h["step"]["num"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(steps(&first), [0, 1, 2, 3]);
    assert_eq!(steps(&second), (4..=9).collect::<Vec<_>>());
}
