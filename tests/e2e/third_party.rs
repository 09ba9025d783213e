//! An out-of-tree plugin, built by its own `cargo build` in its own workspace against nothing but
//! `clshost-plugin-api`, loads next to the first-party plugins, and its exporter runs at the end
//! of a run like a first-party one; its metric's scalar is a column of the epoch table, a column
//! of `metrics.csv` and a curve of `metrics.png`; its logger gets every event of a run, through
//! an interrupt and a resume.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::{
    Clshost, FIRST_PARTY_PLUGINS, build_workspace, plugin_file, stdout_ok, tiny_run_dir,
    tiny_scratch, tiny_tempdir,
};

fn example_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The out-of-tree target directory holds the broken fixtures too: the example's plugin
        // gets a folder of its own, as an installed plugin would.
        let built = build_workspace("examples/third-party-plugin");
        let dir = built.join("acme-plugin");
        fs::create_dir_all(&dir).expect("creating the plugin folder");
        let file = plugin_file("acme");
        fs::copy(built.join(&file), dir.join(&file)).expect("copying the example plugin");
        dir
    })
}

#[test]
fn its_components_are_listed_next_to_first_party_ones() {
    let dir = example_dir();
    let out = Clshost::new().run([
        "--plugin-dir".as_ref(),
        dir.as_os_str(),
        "plugins".as_ref(),
        "--json".as_ref(),
    ]);
    let listing: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("valid JSON");
    let components = listing["components"].as_array().unwrap();
    let find = |name: &str| {
        components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("`{name}` listed in {listing:#}"))
    };
    let poly = find("poly1");
    assert_eq!(poly["kind"], "loss");
    assert_eq!(poly["plugin"], "clshost-plugin-acme");
    assert_eq!(poly["version"], "0.3.0");
    assert_eq!(
        poly["file"],
        dir.join(plugin_file("acme")).display().to_string()
    );
    assert_eq!(find("balanced_accuracy")["kind"], "metric");
    assert_eq!(find("weights_summary")["kind"], "exporter");
    let first_party = listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["found_in"] == "executable directory")
        .count();
    assert_eq!(first_party, FIRST_PARTY_PLUGINS.len(), "{listing:#}");
    assert_eq!(
        listing["failures"].as_array().unwrap().len(),
        0,
        "{listing:#}"
    );
}

#[test]
fn the_plugin_path_variable_finds_it_too() {
    let dir = example_dir();
    let out = Clshost::new()
        .command(["plugins", "poly1"])
        .env("CLSHOST_PLUGIN_PATH", dir)
        .output()
        .unwrap();
    let text = stdout_ok(&out);
    assert!(
        text.starts_with("poly1 (loss) from plugin clshost-plugin-acme 0.3.0\n"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("epsilon"))
        .unwrap_or_else(|| panic!("an epsilon row in:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..2], ["epsilon", "1.0"], "{row}");
}

#[test]
fn its_exporter_writes_and_verifies_at_the_end_of_a_run_and_its_metric_is_a_column_and_a_curve() {
    let dir = example_dir();
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let out = clshost
        .command([
            "--plugin-dir".as_ref(),
            dir.as_os_str(),
            "run".as_ref(),
            "tiny.ron".as_ref(),
            "--set".as_ref(),
            "trainer.epochs=1".as_ref(),
            "--set".as_ref(),
            "export=[(name: \"weights_summary\")]".as_ref(),
            "--set".as_ref(),
            "metrics=[(name: \"accuracy\", params: (top_k: [1])), (name: \"balanced_accuracy\")]"
                .as_ref(),
            "--set".as_ref(),
            "loggers=[(name: \"events_file\")]".as_ref(),
        ])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    let stdout = stdout_ok(&out);
    let header = stdout
        .lines()
        .find(|l| l.starts_with("epoch  train loss"))
        .unwrap_or_else(|| panic!("no table in {stdout}"));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "epoch",
            "train",
            "loss",
            "val",
            "loss",
            "top-1",
            "balanced_accuracy",
            "best",
            "time"
        ]
    );
    let run = tiny_run_dir(scratch.path());
    // Its scalar has its own plot beside the accuracy (which holds only top-k columns).
    let plot = image::open(run.join("plots/metrics.png"))
        .unwrap()
        .to_rgb8();
    let mut colours: Vec<[u8; 3]> = plot.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "metrics.png looks blank");
    let csv = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        csv.lines().next().unwrap().contains(",balanced_accuracy,"),
        "{csv}"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let export = &summary["exports"][0];
    assert_eq!(export["exporter"], "weights_summary", "{summary:#}");
    assert_eq!(export["max_abs_diff"], serde_json::Value::Null);
    let csv = fs::read_to_string(run.join("export/weights_summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "# resnet18 (recipe tiny), classes [circle square], input 3x16x16"
    );
    assert_eq!(lines[1], "tensor,shape,elements,mean,std,mean_abs");
    let tensors = lines.len() - 2;
    assert_eq!(
        export["detail"],
        format!("read back: {tensors} tensors match the model")
    );
    assert!(
        lines.iter().any(|l| l.starts_with("fc.weight,2x512,1024,")),
        "{csv}"
    );

    // The logger saw the whole run: the start with the recipe's fields, the epoch with the
    // values metrics.jsonl holds, the recipe, checkpoint, export and plot files, the end.
    let events = events(&run);
    let start = &events[0];
    assert_eq!(start["event"], "start", "{start}");
    assert_eq!(start["resumed"], false);
    assert_eq!(start["next_step"], 1);
    assert_eq!(start["classes"], serde_json::json!(["circle", "square"]));
    assert_eq!(start["params"]["trainer.epochs"], "1");
    assert_eq!(start["params"]["metrics.1.name"], "\"balanced_accuracy\"");
    assert_eq!(
        start["environment"]["plugin_abi"],
        clshost_plugin_api::ABI_VERSION_STRING
    );
    let epochs: Vec<&serde_json::Value> = of_kind(&events, "epoch");
    let jsonl = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), rows.len());
    for (event, row) in epochs.iter().zip(&rows) {
        assert_eq!(event["epoch"], row["epoch"]);
        for (name, value) in event["scalars"].as_object().unwrap() {
            let expected = row[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} in {row}"));
            assert!((value.as_f64().unwrap() - expected).abs() <= 1e-9 * expected.abs().max(1.0));
        }
        assert!(event["scalars"]["balanced_accuracy"].is_f64(), "{event}");
    }
    let files: Vec<(String, String)> = of_kind(&events, "file")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["relative"].as_str().unwrap().into(),
            )
        })
        .collect();
    let has = |kind: &str, relative: &str| files.contains(&(kind.into(), relative.into()));
    assert!(has("recipe", "recipe.ron"), "{files:?}");
    assert!(has("samples", "samples.png"), "{files:?}");
    assert!(has("checkpoint", "checkpoints/last.ckpt"), "{files:?}");
    assert!(has("checkpoint", "checkpoints/best.ckpt"), "{files:?}");
    assert!(has("export", "export/weights_summary.csv"), "{files:?}");
    assert!(has("plot", "plots/metrics.png"), "{files:?}");
    let end = events.last().unwrap();
    assert_eq!(end["event"], "end", "{end}");
    assert_eq!(end["status"], "completed");
    assert_eq!(end["epochs"], 1);
    assert_eq!(end["summary"]["best_epoch"], 1.0);
}

/// The example logger's events of the run in `run`.
fn events(run: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(run.join("loggers/events_file/events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events whose `event` is `kind`.
fn of_kind<'e>(events: &'e [serde_json::Value], kind: &str) -> Vec<&'e serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// `clshost run` with the example plugin in `scratch` (a [`tiny_scratch`]).
fn run_with_example(clshost: &Clshost, scratch: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--plugin-dir", example_dir().to_str().unwrap(), "run"];
    all.extend_from_slice(args);
    clshost.command(all).current_dir(scratch).output().unwrap()
}

/// A two-epoch tiny run with the example's logger, stopped after epoch 1: its run directory.
fn interrupted_run(clshost: &Clshost, scratch: &Path) -> PathBuf {
    tiny_scratch(clshost, scratch);
    let out = run_with_example(
        clshost,
        scratch,
        &[
            "tiny.ron",
            "--set",
            "trainer.epochs=2",
            "--set",
            "loggers=[(name: \"events_file\")]",
            "--stop-after-epoch",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(130));
    tiny_run_dir(scratch)
}

#[test]
fn its_logger_follows_a_run_through_an_interrupt_and_a_resume() {
    let clshost = Clshost::new();
    let scratch = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(&clshost, scratch.path());
    let run = |args: &[&str]| run_with_example(&clshost, scratch.path(), args);
    let first = events(&run_dir);
    let end = first.last().unwrap();
    assert_eq!(end["status"], "interrupted", "{end}");
    assert!(
        end["message"].as_str().unwrap().contains("resume with"),
        "{end}"
    );

    stdout_ok(&run(&["--resume", run_dir.to_str().unwrap()]));
    let all = events(&run_dir);
    let starts = of_kind(&all, "start");
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["resumed"], true);
    let steps_per_epoch = of_kind(&first, "epoch")[0]["step"].as_u64().unwrap();
    assert_eq!(starts[1]["next_step"], steps_per_epoch + 1);
    let epochs: Vec<u64> = of_kind(&all, "epoch")
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2]);
    let ends: Vec<&str> = of_kind(&all, "end")
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(ends, ["interrupted", "completed"]);
}

/// A logger whose every write fails (its file is `/dev/full`) costs one warning, and the run
/// completes; one that cannot even be created (its file is a directory) is left out, with a
/// warning.
#[cfg(target_os = "linux")]
#[test]
fn a_failing_logger_is_one_warning_and_the_run_completes() {
    let clshost = Clshost::new();
    let scratch = tempfile::tempdir().unwrap();
    let run_dir = interrupted_run(&clshost, scratch.path());
    let file = run_dir.join("loggers/events_file/events.jsonl");
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/full", &file).unwrap();
    // Resumes the run, which completes; its stderr.
    let resume = || {
        let args = ["--resume", run_dir.to_str().unwrap()];
        let out = run_with_example(&clshost, scratch.path(), &args);
        stdout_ok(&out);
        crate::support::stderr(&out)
    };
    let err = resume();
    let warned = err
        .matches("this logger's later errors are not shown")
        .count();
    assert_eq!(warned, 1, "{err}");
    assert!(err.contains("logger `events_file`"), "{err}");
    assert!(run_dir.join("summary.json").is_file());

    fs::remove_file(&file).unwrap();
    fs::create_dir(&file).unwrap();
    let err = resume();
    assert!(err.contains("the run goes on without this logger"), "{err}");
}
