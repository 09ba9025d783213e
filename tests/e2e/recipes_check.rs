//! `clshost check`: every shipped recipe passes, and each kind of broken recipe fails with the
//! exact message a user sees (file, line, column, field path, suggestion).

use std::fs;
use std::path::Path;

use crate::support::{Clshost, repo_root, stdout_ok};

/// A scratch directory with an ImageFolder root `data/` holding two classes.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "val"] {
        for class in ["cat", "dog"] {
            let folder = dir.path().join("data").join(split).join(class);
            fs::create_dir_all(&folder).unwrap();
            image::RgbImage::new(8, 8)
                .save(folder.join("0.png"))
                .unwrap();
        }
    }
    dir
}

/// Writes `files` into a scratch directory, runs `clshost check <first file> <extra>` there, and
/// returns (exit code, stderr).
fn check(files: &[(&str, &str)], extra: &[&str]) -> (Option<i32>, String) {
    let dir = scratch();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let mut args = vec!["check", files[0].0];
    args.extend(extra);
    let out = Clshost::new()
        .command(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

fn assert_fails(files: &[(&str, &str)], extra: &[&str], expected: &[&str]) {
    let (code, stderr) = check(files, extra);
    assert_eq!(code, Some(1), "{stderr}");
    let mut lines: Vec<String> = expected.iter().map(|l| l.to_string()).collect();
    let problems = match expected.len() {
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    };
    lines.push(format!("error: {problems} in {}", files[0].0));
    assert_eq!(stderr, lines.join("\n") + "\n");
}

const GOOD: &str = r#"(
    data: (root: "data"),
    model: (name: "resnet18"),
    loss: (name: "cross_entropy"),
    metrics: [(name: "accuracy")],
)"#;

#[test]
fn a_good_recipe_passes() {
    let (code, stderr) = check(&[("good.ron", GOOD)], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn syntax_error() {
    assert_fails(
        &[(
            "r.ron",
            "(\n    name: \"t\",\n    data: (root: \"data\", batch_size = 4),\n)",
        )],
        &[],
        &["r.ron:3:37: syntax error: expected `:` after field `batch_size`, found `=`"],
    );
}

#[test]
fn unknown_field() {
    assert_fails(
        &[(
            "r.ron",
            &GOOD.replace("(root: \"data\")", "(root: \"data\", batch_sise: 4)"),
        )],
        &[],
        &[
            "r.ron:2:38: `data.batch_sise`: unknown field `batch_sise`; did you mean `batch_size`? \
           (expected one of `root`, `train_dir`, `val_dir`, `val_split`, `image_size`, \
           `eval_resize`, `eval_crop`, `mean`, `std`, `batch_size`, `eval_batch_size`, `workers`, \
           `cache`, `on_error`)",
        ],
    );
}

#[test]
fn unknown_component() {
    assert_fails(
        &[("r.ron", &GOOD.replace("resnet18", "resnet5"))],
        &[],
        &[
            "r.ron:3:19: `model.name`: no backbone named `resnet5`; did you mean `resnet50`? \
           (available: resnet18, resnet34, resnet50)",
        ],
    );
}

#[test]
fn bad_component_params() {
    let with_aug = |params: &str| {
        GOOD.replace(
            "    loss:",
            &format!("    augment: [(name: \"horizontal_flip\", params: {params})],\n    loss:"),
        )
    };
    assert_fails(
        &[("r.ron", &with_aug("(pp: 0.5)"))],
        &[],
        &[
            "r.ron:4:54: `augment[0].params.pp`: unknown field `pp`; did you mean `p`? (expected \
           one of `p`) (plugin clshost-plugin-augment)",
        ],
    );
    assert_fails(
        &[("r.ron", &with_aug("(p: 1.5)"))],
        &[],
        &[
            "r.ron:4:53: `augment[0].params.p`: must be in [0, 1], got 1.5 (plugin \
           clshost-plugin-augment)",
        ],
    );
}

#[test]
fn missing_data_root() {
    assert_fails(
        &[(
            "r.ron",
            &GOOD.replace("\"data\"", "\"/nonexistent/imagenet\""),
        )],
        &[],
        &["r.ron:2:18: `data.root`: /nonexistent/imagenet does not exist or is not a directory"],
    );
}

#[test]
fn mixup_with_a_hard_label_loss() {
    let recipe = GOOD.replace(
        "    loss: (name: \"cross_entropy\"),",
        "    batch_augment: (entries: [(name: \"mixup\")]),\n    loss: (name: \"focal\"),",
    );
    assert_fails(
        &[("r.ron", &recipe)],
        &[],
        &[
            "r.ron:5:18: `loss.name`: `mixup` needs soft targets but loss `focal` accepts only \
           hard labels: use a loss that accepts soft targets (e.g. `cross_entropy`) or remove \
           the batch augmentation",
        ],
    );
}

#[test]
fn override_of_a_missing_path() {
    assert_fails(
        &[("r.ron", GOOD)],
        &["--set", "trainer.epocs=3"],
        &[
            "--set trainer.epocs=3: `trainer.epocs`: unknown field `epocs`; did you mean \
           `epochs`? (expected one of `epochs`, `device`, `precision`, `clip_grad_norm`, \
           `accumulate`, `ema`, `monitor`, `mode`, `early_stopping`, `checkpoints`, \
           `eval_interval`, `log_interval`, `max_time_minutes`)",
        ],
    );
    assert_fails(
        &[("r.ron", GOOD)],
        &["--set", "augment[2].name=\"flip\""],
        &["--set augment[2].name=\"flip\": `augment` has 0 entries; there is no `augment[2]`"],
    );
}

#[test]
fn base_cycle() {
    let (code, stderr) = check(
        &[
            ("a.ron", "(base: \"b.ron\")"),
            ("b.ron", "(base: \"a.ron\")"),
        ],
        &[],
    );
    assert_eq!(code, Some(1));
    let first = stderr.lines().next().unwrap();
    assert!(first.starts_with("recipe `base` cycle: /"), "{stderr}");
    let chain: Vec<&str> = first
        .trim_start_matches("recipe `base` cycle: ")
        .split(" -> ")
        .map(|p| Path::new(p).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(chain, ["a.ron", "b.ron", "a.ron"]);
    assert_eq!(stderr.lines().nth(1), Some("error: 1 problem in a.ron"));
}

#[test]
fn several_problems_are_reported_at_once() {
    let recipe = GOOD
        .replace("(root: \"data\")", "(root: \"data\", batch_size: 0)")
        .replace("cross_entropy", "cros_entropy")
        .replace(
            "    metrics:",
            "    trainer: (monitor: \"top_1\"),\n    metrics:",
        );
    assert_fails(
        &[("r.ron", &recipe)],
        &[],
        &[
            "r.ron:2:38: `data.batch_size`: must be at least 1",
            "r.ron:4:18: `loss.name`: no loss named `cros_entropy`; did you mean \
             `cross_entropy`? (available: bce, cross_entropy, focal)",
            "r.ron:5:24: `trainer.monitor`: `top_1` is not reported by any configured metric \
             (reported: loss, top1, top5); did you mean `top1`?",
        ],
    );
}

#[test]
fn base_inherits_and_overrides_deep_merge() {
    let child = r#"(base: "good.ron", name: "child", model: (params: (small_input: true)), trainer: (epochs: 3))"#;
    let dir = scratch();
    fs::write(dir.path().join("good.ron"), GOOD).unwrap();
    fs::write(dir.path().join("child.ron"), child).unwrap();
    let out = Clshost::new()
        .command([
            "check",
            "child.ron",
            "--print",
            "--set",
            "trainer.monitor=\"loss\"",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let printed = stdout_ok(&out);
    assert!(printed.contains("name: \"child\""), "{printed}");
    assert!(
        printed.contains(
            "    model: (\n        name: \"resnet18\",\n        params: (small_input: true),\n"
        ),
        "{printed}"
    );
    assert!(printed.contains("epochs: 3,"), "{printed}");
    assert!(printed.contains("monitor: \"loss\","), "{printed}");
    assert!(
        printed.contains("metrics: [(name: \"accuracy\", params: ())]"),
        "{printed}"
    );
    // The resolved recipe is itself a valid recipe that resolves to the same text.
    fs::write(dir.path().join("resolved.ron"), &printed).unwrap();
    let again = Clshost::new()
        .command(["check", "resolved.ron", "--print"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&again), printed);
}

#[test]
fn every_shipped_recipe_checks() {
    let data = scratch();
    // Unquoted, as a shell leaves `--set data.root="/x"`: a value that is not RON, or a bare
    // word for a string field, is taken as a string.
    let root = format!("data.root={}", data.path().join("data").display());
    // The ImageNet recipes name `cuda`, which the default build lacks; which devices a build
    // and machine offer is tested on its own below, so the recipes are checked on the CPU.
    let mut checked = 0;
    for entry in fs::read_dir(repo_root().join("recipes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ron") {
            continue;
        }
        let out = Clshost::new().run([
            "check".as_ref(),
            path.as_os_str(),
            "--set".as_ref(),
            root.as_ref(),
            "--set".as_ref(),
            "trainer.device=cpu".as_ref(),
        ]);
        stdout_ok(&out);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// The device ids the resnet plugin next to the binary offers on this machine, as `doctor` and
/// `check` see them.
fn resnet_device_ids() -> Vec<String> {
    let out = Clshost::new().run(["doctor", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).unwrap();
    json["backends"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["plugins"].as_array().unwrap())
        .filter(|p| p["plugin"] == "clshost-plugin-resnet")
        .flat_map(|p| p["devices"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_device_the_build_lacks() {
    let ids = resnet_device_ids().join(", ");
    assert_fails(
        &[("r.ron", GOOD)],
        &["--set", "trainer.device=\"cuda\""],
        &[&format!(
            "--set trainer.device=\"cuda\": `trainer.device`: device `cuda` is not supported by \
             plugin clshost-plugin-resnet (built with cpu, wgpu); rebuild it with `--features \
             cuda`, or use one of: {ids}"
        )],
    );
}

#[test]
fn a_device_the_machine_lacks() {
    let ids = resnet_device_ids();
    let index = ids.iter().filter(|id| id.starts_with("wgpu:")).count();
    let (code, stderr) = check(
        &[("r.ron", GOOD)],
        &["--set", &format!("trainer.device=\"wgpu:{index}\"")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "--set trainer.device=\"wgpu:{index}\": `trainer.device`: device `wgpu:{index}` is \
             not available to plugin clshost-plugin-resnet: "
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "; use one of: {}\nerror: 1 problem in r.ron\n",
            ids.join(", ")
        )),
        "{stderr}"
    );
}
