//! Fine-tuning controls end to end: a run that freezes everything but the head (and the
//! BatchNorm statistics) leaves every frozen tensor of its export bit-identical to the weights it
//! started from; a run that lifts the freeze after an epoch says so and trains the body; a
//! plugin built against ABI 1.2 still loads, and `check` refuses to ask it for controls it
//! cannot apply.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use safetensors::SafeTensors;
use serde_json::Value;

use crate::plugin_failures::fixture;
use crate::support::{TrainedRun, stderr, stdout_ok};

/// The shared tiny run (one epoch) whose export the fine-tuning runs start from.
fn trained() -> &'static TrainedRun {
    static TRAINED: OnceLock<TrainedRun> = OnceLock::new();
    TrainedRun::shared(&TRAINED, "clshost-finetune", &["trainer.epochs=1"])
}

/// The tensors of a safetensors file, by name, as raw bytes.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

/// Trains `tiny.ron` from the shared run's export with `overrides`, into `runs-<name>/`;
/// returns the run's stdout and its export's tensors.
fn finetune(t: &TrainedRun, name: &str, overrides: &[&str]) -> (String, BTreeMap<String, Vec<u8>>) {
    let start = t.run.join("export/model.safetensors");
    let weights = format!("model.weights=\"{}\"", start.display());
    let output = t.dir.join(format!("runs-{name}"));
    let mut args = vec!["--set", &weights, "--output", output.to_str().unwrap()];
    for o in overrides {
        args.extend(["--set", o]);
    }
    let mut all = vec!["tiny.ron"];
    all.extend(args);
    let out = t.output("run", &all);
    let stdout = stdout_ok(&out);
    let run = fs::read_dir(output.join("tiny"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (stdout, tensors(&run.join("export/model.safetensors")))
}

#[test]
fn a_frozen_body_and_its_batchnorm_statistics_stay_bit_identical() {
    let t = trained();
    let start = tensors(&t.run.join("export/model.safetensors"));
    let (stdout, end) = finetune(
        t,
        "frozen",
        &[
            "trainer.epochs=1",
            "model.freeze=[\"*\", \"!fc.*\"]",
            "model.freeze_bn_stats=true",
            "optimizer.param_groups=[(params: [\"fc.*\"], lr_scale: 10.0)]",
        ],
    );
    assert!(
        stdout.starts_with(
            "fine-tuning: 2 parameter tensors train (1026 elements), 60 frozen; parameter groups \
             of 2 tensors\n"
        ),
        "{stdout}"
    );
    assert_eq!(start.len(), end.len());
    for (name, before) in &start {
        if name.starts_with("fc.") {
            assert_ne!(before, &end[name], "{name} should have trained");
        } else {
            assert_eq!(before, &end[name], "{name} should be bit-identical");
        }
    }
}

#[test]
fn lifting_the_freeze_after_an_epoch_trains_the_body() {
    let t = trained();
    let start = tensors(&t.run.join("export/model.safetensors"));
    let (stdout, end) = finetune(
        t,
        "lifted",
        &[
            "trainer.epochs=2",
            "model.freeze=[\"*\", \"!fc.*\"]",
            "model.unfreeze_epoch=Some(1)",
            // The export holds the last epoch's weights, not the best epoch's: on these 6
            // validation images the frozen first epoch can be the best (ties keep the earlier).
            "trainer.checkpoints.best=false",
        ],
    );
    assert!(
        stdout.contains(
            "epoch 2: the freeze rules are lifted: 62 parameter tensors train (11169858 \
             elements), 0 frozen\n"
        ),
        "{stdout}"
    );
    for name in ["conv1.weight", "layer1.0.conv1.weight", "fc.weight"] {
        assert!(
            start[name] != end[name],
            "{name} should have trained:\n{stdout}"
        );
    }
}

#[test]
fn a_plugin_of_abi_1_2_loads_but_cannot_be_asked_to_freeze_or_for_bf16() {
    let t = trained();
    let plugin = fixture("minor_1_2");
    let plugin = plugin.to_str().unwrap();
    let listed: Value = serde_json::from_str(&stdout_ok(
        &t.output("plugins", &["--plugin", plugin, "--json"]),
    ))
    .unwrap();
    let old = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "clshost-plugin-minor_1_2")
        .expect("the 1.2 plugin is listed");
    assert_eq!(old["abi"], "1.2");

    let check = |sets: &[&str]| {
        let mut args = vec!["--plugin", plugin, "tiny.ron"];
        for set in sets {
            args.extend(["--set", *set]);
        }
        t.output("check", &args)
    };
    stdout_ok(&check(&["model=(name: \"old_backbone\")"]));
    let asked = check(&["model=(name: \"old_backbone\", freeze: [\"*\"])"]);
    assert_eq!(asked.status.code(), Some(1));
    let err = stderr(&asked);
    assert!(
        err.contains(
            "`model.freeze`: backbone `old_backbone` comes from plugin clshost-plugin-minor_1_2 \
             (plugin ABI 1.2), which cannot apply fine-tuning controls"
        ) && err.contains("rebuild it against clshost-plugin-api 1.3"),
        "{err}"
    );
    let bf16 = check(&["model=(name: \"old_backbone\")", "trainer.precision=bf16"]);
    assert_eq!(bf16.status.code(), Some(1));
    let err = stderr(&bf16);
    assert!(
        err.contains(
            "`trainer.precision`: backbone `old_backbone` comes from plugin \
             clshost-plugin-minor_1_2 (plugin ABI 1.2), which has no mixed precision (`bf16` \
             needs ABI 1.6)"
        ),
        "{err}"
    );
}
