//! `clshost predict` end to end: on a run directory, a checkpoint and the run's ONNX export, all
//! from one tiny training run that the tests share ([`TrainedRun`], trained once per test process
//! in `target/tmp/clshost-predict/`); directory walks, unreadable images, and bad MODEL paths.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::support::{Clshost, TrainedRun, clshost_binary, stderr, stdout_ok};
use serde_json::Value;

/// The tiny recipe of the run tests, for two epochs, with an EMA of the weights and two ONNX
/// exports: a dynamic batch, and a fixed batch of 4 (which predict runs in chunks, padding the
/// last). The eval path resizes to 18 and crops 16, so predictions depend on `eval_resize` being
/// applied (and read back from the ONNX metadata). The loss picks the best epoch: unlike top-1 on
/// 6 images, it does not tie between raw and EMA weights, and here the EMA ones win (asserted).
const OVERRIDES: [&str; 5] = [
    "trainer.epochs=2",
    "data.eval_resize=18",
    "trainer.monitor=\"loss\"",
    "trainer.ema=(decay: 0.5, warmup: false)",
    "export=[(name: \"onnx\"), \
     (name: \"onnx\", params: (file_name: \"fixed.onnx\", dynamic_batch: false, batch_size: 4))]",
];

/// The shared trained run.
fn trained() -> &'static TrainedRun {
    static TRAINED: OnceLock<TrainedRun> = OnceLock::new();
    TrainedRun::shared(&TRAINED, "clshost-predict", &OVERRIDES)
}

/// The validation images, in torchvision's order.
fn val_images(t: &TrainedRun) -> Vec<String> {
    let mut files = Vec::new();
    for class in ["circle", "square"] {
        let mut names: Vec<String> = fs::read_dir(t.dir.join("data/val").join(class))
            .unwrap()
            .map(|e| {
                format!(
                    "data/val/{class}/{}",
                    e.unwrap().file_name().to_string_lossy()
                )
            })
            .collect();
        names.sort();
        files.extend(names);
    }
    files
}

/// `--json` output: one object per line.
fn json_lines(out: &Output) -> Vec<Value> {
    stdout_ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Probability by (path, class index).
fn probabilities(lines: &[Value]) -> BTreeMap<(String, u64), f64> {
    let mut map = BTreeMap::new();
    for line in lines {
        for r in line["top_k"].as_array().unwrap() {
            let key = (
                line["path"].as_str().unwrap().to_string(),
                r["index"].as_u64().unwrap(),
            );
            map.insert(key, r["probability"].as_f64().unwrap());
        }
    }
    map
}

#[test]
fn run_dir_checkpoint_and_onnx_agree_and_json_has_the_documented_shape() {
    let t = trained();
    let images = val_images(t);
    let predict_json = |model: &Path| {
        let mut args = vec![model.to_str().unwrap(), "--json"];
        args.extend(images.iter().map(String::as_str));
        json_lines(&t.output("predict", &args))
    };
    let from_run = predict_json(&t.run);

    assert_eq!(from_run.len(), images.len());
    for (line, path) in from_run.iter().zip(&images) {
        let obj = line.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["path", "top_k"]);
        assert_eq!(line["path"], path.as_str());
        let top = line["top_k"].as_array().unwrap();
        // --top-k 5 with 2 classes: both, most probable first, summing to 1.
        assert_eq!(top.len(), 2);
        let p: Vec<f64> = top
            .iter()
            .map(|r| r["probability"].as_f64().unwrap())
            .collect();
        assert!(p[0] >= p[1], "{line}");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-9, "{line}");
        for r in top {
            let index = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["class"], ["circle", "square"][index]);
            assert_eq!(r.as_object().unwrap().len(), 3);
        }
    }

    // The run chose its best weights; predict must run the same ones (EMA here).
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(t.run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["best_weights"], "ema", "{summary}");

    let from_ckpt = predict_json(&t.run.join("checkpoints/best.ckpt"));
    assert_eq!(from_ckpt, from_run);

    let from_run = probabilities(&from_run);
    for file in ["model.onnx", "fixed.onnx"] {
        let from_onnx = probabilities(&predict_json(&t.run.join("export").join(file)));
        assert_eq!(
            from_onnx.keys().collect::<Vec<_>>(),
            from_run.keys().collect::<Vec<_>>()
        );
        for (key, p) in &from_run {
            let q = from_onnx[key];
            assert!(
                (p - q).abs() < 1e-4,
                "{file} {key:?}: run dir {p}, onnx {q}"
            );
        }
    }
}

#[test]
fn directories_are_walked_and_text_output_lists_top_k() {
    let t = trained();
    fs::write(t.dir.join("data/val/notes.txt"), "not an image").unwrap();
    let run = t.run.to_str().unwrap();
    let out = t.output("predict", &[run, "data/val", "--top-k", "1"]);
    let text = stdout_ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    let images = val_images(t);
    assert_eq!(lines.len(), 2 * images.len(), "{text}");
    for (pair, path) in lines.chunks(2).zip(&images) {
        assert_eq!(pair[0], path);
        let (p, class) = pair[1].trim().split_once("  ").unwrap();
        let p: f64 = p.parse().unwrap();
        assert!((0.5..=1.0).contains(&p), "{text}");
        assert!(["circle", "square"].contains(&class), "{text}");
    }
}

#[test]
fn unreadable_images_are_named_and_skipped() {
    let t = trained();
    let bad = t.dir.join("corrupt.png");
    fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let good = &val_images(t)[0];
    let run = t.run.to_str().unwrap();

    let out = t.output("predict", &[run, "corrupt.png", good, "--json"]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["path"], good.as_str());
    let err = stderr(&out);
    assert!(err.contains("corrupt.png"), "{err}");
    assert!(err.contains("1 of 2 images could not be read"), "{err}");

    let out = t.output("predict", &[run, "corrupt.png", "missing.jpg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("corrupt.png") && err.contains("missing.jpg"),
        "{err}"
    );
    assert!(
        err.contains("error: none of the 2 images could be read"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_away_from_its_run_needs_its_recipe() {
    let t = trained();
    let lone = t.dir.join("lone");
    fs::create_dir_all(&lone).unwrap();
    fs::copy(t.run.join("checkpoints/last.ckpt"), lone.join("last.ckpt")).unwrap();
    let good = &val_images(t)[0];
    let out = t.output("predict", &["lone/last.ckpt", good]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("lone/last.ckpt holds the weights but not the recipe"),
        "{err}"
    );
    fs::copy(t.run.join("recipe.ron"), lone.join("recipe.ron")).unwrap();
    let text = stdout_ok(&t.output("predict", &["lone/last.ckpt", good, "--top-k", "1"]));
    assert!(text.starts_with(&format!("{good}\n  ")), "{text}");
}

#[test]
fn bad_model_paths_are_clear_errors() {
    let clshost = Clshost::new();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("weights.bin"), b"neither").unwrap();
    fs::create_dir(dir.path().join("empty")).unwrap();
    let cases = [
        ("nowhere", "error: MODEL nowhere does not exist"),
        (
            "empty",
            "error: empty is not a run directory: it has no recipe.ron",
        ),
        (
            "weights.bin",
            "error: weights.bin is not a run directory, a clshost checkpoint or an .onnx file",
        ),
    ];
    for (model, message) in cases {
        let out = clshost
            .command(["predict", model, "x.png"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{model}");
        assert_eq!(stderr(&out).trim_end(), message);
    }
}

#[test]
fn an_onnx_file_without_a_plugin_that_opens_it_is_a_clear_error() {
    let t = trained();
    // A clshost with no plugins beside it and an empty data directory: nothing opens `.onnx`.
    let lone = t.dir.join("lone");
    fs::create_dir_all(&lone).unwrap();
    let exe = lone.join(format!("clshost{}", std::env::consts::EXE_SUFFIX));
    // A hard link, not a copy: a copy's write handle, inherited by a child another test forks
    // at that moment, makes executing the file fail with ETXTBSY ("Text file busy").
    let _ = fs::remove_file(&exe);
    if fs::hard_link(clshost_binary(), &exe).is_err() {
        fs::copy(clshost_binary(), &exe).unwrap();
    }
    let model = t.run.join("export/model.onnx");
    let out = Command::new(&exe)
        .args(["predict", model.to_str().unwrap(), &val_images(t)[0]])
        .current_dir(&t.dir)
        .env_remove("CLSHOST_PLUGIN_PATH")
        .env("HOME", &lone)
        .env("XDG_DATA_HOME", &lone)
        .env("XDG_RUNTIME_DIR", &lone)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "error: no loaded plugin opens {}: the `onnx` exporter's plugin \
             (clshost-plugin-export, plugin ABI 1.2 or later) runs .onnx files; put it on the \
             plugin search path (`clshost plugins` lists what is loaded)",
            model.display()
        )
    );
}
