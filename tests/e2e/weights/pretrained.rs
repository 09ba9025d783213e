//! Weight sources where models are made: `model.weights` in a recipe (checked by `check`, loaded
//! by `run`), and `predict` / `eval --weights` without a run. The weights are a tiny run's
//! safetensors export, served over HTTP from 127.0.0.1 under a hash-carrying name; used without
//! a run they must classify exactly as the run itself does.
//!
//! One test compares with torchvision itself and needs a Python with torch and torchvision
//! (`CLSHOST_TEST_TORCHVISION_PYTHON`, which CI's LibTorch part sets): it is ignored otherwise.

use std::fs;
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;

use super::server::{HUB_COMMIT, Scratch, Server, hub_file};
use super::sha256;
use crate::support::{TrainedRun, stderr, stdout_ok, torchvision_python};

/// The shared tiny run (one epoch) whose export the tests serve.
fn trained() -> &'static TrainedRun {
    static TRAINED: OnceLock<TrainedRun> = OnceLock::new();
    TrainedRun::shared(&TRAINED, "clshost-pretrained", &["trainer.epochs=1"])
}

/// The run's safetensors export, served as `tiny-<hash>.safetensors` and as the Hub
/// repository `org/tiny`'s `model.safetensors`, beside a timm `config.json` that says what the
/// run's recipe says; its URL and name.
fn serve_export(t: &TrainedRun) -> (Server, String, String) {
    let bytes = fs::read(t.run.join("export/model.safetensors")).expect("the run's export");
    let name = format!("tiny-{}.safetensors", &sha256(&bytes)[..10]);
    let hub = hub_file("model.safetensors", bytes.clone(), &sha256(&bytes));
    let config = br#"{"architecture": "resnet18", "num_classes": 2,
        "label_names": ["circle", "square"],
        "pretrained_cfg": {"input_size": [3, 16, 16], "crop_pct": 1.0,
        "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}"#;
    // A small file the Hub keeps in Git: an ETag of 40 hex digits (its Git object id), no
    // X-Linked-Etag.
    let config = (
        "org/tiny/resolve/main/config.json".to_string(),
        config.to_vec(),
        vec![
            ("X-Repo-Commit".to_string(), HUB_COMMIT.to_string()),
            ("ETag".to_string(), format!("\"{}\"", &sha256(config)[..40])),
        ],
    );
    let server = Server::serving(vec![(name.clone(), bytes, Vec::new()), hub, config]);
    let url = server.url(&name);
    (server, url, name)
}

/// `clshost ARGS...` in the run's scratch folder, with `scratch`'s caches.
fn in_run_dir(scratch: &Scratch, t: &TrainedRun, args: &[&str]) -> Output {
    scratch
        .command(None, args)
        .current_dir(&t.dir)
        .output()
        .expect("clshost runs")
}

/// What `--weights` needs to stand for the tiny run: its backbone params, classes and
/// preprocessing.
fn as_the_run(t: &TrainedRun, url: &str) -> Vec<String> {
    fs::write(t.dir.join("classes.txt"), "circle\nsquare\n").unwrap();
    [
        "--weights",
        url,
        "--model",
        "resnet18",
        "--classes",
        "classes.txt",
        "--set",
        "model.params=(small_input: true)",
        "--set",
        "data.eval_resize=16",
        "--set",
        "data.eval_crop=(16, 16)",
        "--set",
        "data.mean=(0.5, 0.5, 0.5)",
        "--set",
        "data.std=(0.25, 0.25, 0.25)",
    ]
    .map(String::from)
    .to_vec()
}

/// Every `--json` line of `out`, parsed.
fn json_lines(out: &Output) -> Vec<Value> {
    stdout_ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn check_says_where_recipe_weights_are_and_run_downloads_and_loads_them() {
    let t = trained();
    let scratch = Scratch::new();
    let (server, url, name) = serve_export(t);
    let weights = format!("model.weights=\"{url}\"");
    let cached = scratch.cache().join(&name);

    let check = in_run_dir(&scratch, t, &["check", "tiny.ron", "--set", &weights]);
    assert!(
        stdout_ok(&check).contains(&format!(
            "model.weights {url}: not on this machine yet: downloaded from {url} to {} when used",
            cached.display()
        )),
        "{}",
        stdout_ok(&check)
    );
    assert_eq!(server.requests(), 0, "check downloads nothing");

    let out = t.dir.join("runs-from-url");
    let run = in_run_dir(
        &scratch,
        t,
        &[
            "-v",
            "run",
            "tiny.ron",
            "--set",
            &weights,
            "--set",
            "trainer.epochs=1",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    stdout_ok(&run);
    assert!(
        stderr(&run).contains(&format!(
            "model.weights: loaded 102 weights from {}",
            cached.display()
        )),
        "{}",
        stderr(&run)
    );
    assert_eq!(server.requests(), 1);
    let run_dir = fs::read_dir(out.join("tiny"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let recipe = fs::read_to_string(run_dir.join("recipe.ron")).unwrap();
    assert!(
        recipe.contains(&format!("weights: Some(\"{url}\")")),
        "{recipe}"
    );

    let again = in_run_dir(&scratch, t, &["check", "tiny.ron", "--set", &weights]);
    assert!(
        stdout_ok(&again).contains(&format!(
            "model.weights {url}: {} in the clshost cache",
            cached.display()
        )),
        "{}",
        stdout_ok(&again)
    );
}

#[test]
fn bad_recipe_weight_sources_are_problems_at_their_line() {
    let t = trained();
    let cases = [
        (
            "torchvision:resnet18.IMAGENET1K_V3",
            "unknown torchvision weights `resnet18.IMAGENET1K_V3` (did you mean \
             `resnet18.IMAGENET1K_V1`",
        ),
        (
            "torchvision:resnet50.DEFAULT",
            "torchvision:resnet50.IMAGENET1K_V2 are weights for resnet50, but model.name is \
             `resnet18`",
        ),
        ("missing.pth", "missing.pth is not a file"),
        (
            "tiny.ron",
            "tiny.ron is neither a clshost checkpoint nor a state dict",
        ),
        (
            "ftp://host/w.pth",
            "unknown weight source `ftp://host/w.pth`",
        ),
    ];
    for (source, message) in cases {
        let recipe = format!(
            "(\n    base: \"tiny.ron\",\n    model: (name: \"resnet18\", weights: \"{source}\"),\n)\n"
        );
        fs::write(t.dir.join("bad-weights.ron"), recipe).unwrap();
        let out = t.output("check", &["bad-weights.ron"]);
        assert!(!out.status.success(), "{source}");
        let err = stderr(&out);
        assert!(
            err.contains("bad-weights.ron:3:")
                && err.contains("model.weights")
                && err.contains(message),
            "{source}: {err}"
        );
    }
}

#[test]
fn predict_and_eval_with_published_weights_match_the_run_they_came_from() {
    let t = trained();
    let (server, url, _) = serve_export(t);
    let scratch = Scratch::new().with_hub(server.base());
    let run = t.run.to_str().unwrap();

    let ran = json_lines(&t.output("predict", &[run, "--json", "--top-k", "2", "data/val"]));
    // The Hub repository's config.json says what --model, --classes and --set say for the URL.
    let hub = [
        "--weights",
        "hf:org/tiny",
        "--set",
        "model.params=(small_input: true)",
    ];
    for given in [as_the_run(t, &url), hub.map(String::from).to_vec()] {
        let source = given[1].clone();
        let mut args = vec!["predict".to_string()];
        args.extend(given);
        args.extend(["--json", "--top-k", "2", "data/val"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let published = json_lines(&in_run_dir(&scratch, t, &args));
        assert_eq!(published.len(), 6);
        assert_eq!(published.len(), ran.len());
        for (p, r) in published.iter().zip(&ran) {
            assert_eq!(p["path"], r["path"]);
            for (a, b) in p["top_k"]
                .as_array()
                .unwrap()
                .iter()
                .zip(r["top_k"].as_array().unwrap())
            {
                assert_eq!(a["class"], b["class"]);
                let (x, y) = (
                    a["probability"].as_f64().unwrap(),
                    b["probability"].as_f64().unwrap(),
                );
                assert!((x - y).abs() < 1e-6, "{source} {}: {x} vs {y}", p["path"]);
            }
        }
    }

    // Class folders named otherwise (ImageNet's WordNet ids): matched by sorted position.
    for (from, to) in [("circle", "n01"), ("square", "n02")] {
        let dest = t.dir.join("val-ids").join(to);
        fs::create_dir_all(&dest).unwrap();
        for entry in fs::read_dir(t.dir.join("data/val").join(from)).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
    let eval_run: Value = serde_json::from_str(&stdout_ok(
        &t.output("eval", &[run, "--data", "data/val", "--json"]),
    ))
    .unwrap();
    for data in ["data/val", "val-ids"] {
        let mut args = vec!["eval".to_string()];
        args.extend(as_the_run(t, &url));
        args.extend(["--data", data, "--json"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = in_run_dir(&scratch, t, &args);
        let eval: Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
        assert_eq!(eval["source"], url.as_str());
        assert_eq!(eval["images"], 6);
        for metric in ["val_loss", "top1", "f1_macro"] {
            let (x, y) = (
                eval["metrics"][metric].as_f64().unwrap(),
                eval_run["metrics"][metric].as_f64().unwrap(),
            );
            assert!(
                (x - y).abs() < 1e-6,
                "{data} {metric}: {x} vs the run's {y}"
            );
        }
    }
}

/// Reads `name` from the torchvision fixture's JSON.
fn floats(json: &Value, name: &str) -> Vec<f64> {
    json[name]
        .as_array()
        .unwrap_or_else(|| panic!("`{name}` in the fixture"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// `scripts/fixtures/pretrained.py` writes a ResNet-18 `.pth` from seeded random weights (and
/// random BatchNorm statistics) with torchvision, a 256x320 image, and torchvision's logits for
/// it through `ResNet18_Weights.IMAGENET1K_V1.transforms()`. `predict --weights` on that file,
/// served over HTTP, must give the same logits within 1e-4: they are compared as log-softmax
/// values minus their mean, which is what the printed probabilities determine.
#[test]
#[ignore = "needs torch and torchvision: set CLSHOST_TEST_TORCHVISION_PYTHON to a python3 with both"]
fn predict_with_torchvision_written_weights_gives_torchvisions_logits() {
    let python = torchvision_python();
    let scratch = Scratch::new();
    let dir = scratch.dir.path().join("fixture");
    let script = crate::support::repo_root().join("scripts/fixtures/pretrained.py");
    let made = std::process::Command::new(python)
        .arg(script)
        .arg(&dir)
        .output()
        .expect("python runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let fixture: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("logits.json")).unwrap()).unwrap();
    let file = fixture["file"].as_str().unwrap();
    let server = Server::start(vec![(file.to_string(), fs::read(dir.join(file)).unwrap())]);
    let classes: String = (0..1000).map(|i| format!("class{i}\n")).collect();
    fs::write(dir.join("classes.txt"), classes).unwrap();

    let out = scratch
        .command(
            None,
            [
                "predict",
                "--weights",
                &server.url(file),
                "--model",
                "resnet18",
                "--classes",
                "classes.txt",
                "--top-k",
                "1000",
                "--json",
                "image.png",
            ],
        )
        .current_dir(&dir)
        .output()
        .expect("clshost runs");
    let prediction: Value = serde_json::from_str(stdout_ok(&out).trim()).unwrap();
    let mut log_p = vec![0.0; 1000];
    for r in prediction["top_k"].as_array().unwrap() {
        log_p[r["index"].as_u64().unwrap() as usize] = r["probability"].as_f64().unwrap().ln();
    }
    let centered = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| x - mean).collect::<Vec<f64>>()
    };
    let want = centered(&floats(&fixture, "logits"));
    let got = centered(&log_p);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "largest logit difference {worst}");
}
