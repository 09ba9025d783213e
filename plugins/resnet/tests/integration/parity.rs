//! Parity with torchvision: the fixtures of `scripts/fixtures/resnet.py` hold torchvision's eval
//! logits and the weights after two SGD steps, for weights given by a formula of their names
//! (`fixture_value`, identical to the script's).

use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::{
    backbone, find, fixture_value, floats, input, load_fixture, max_abs_diff, sample_diff,
};

fn check_eval<B: Backbone<Config = ResNetConfig>>(arch: &str) {
    let fixture = load_fixture(arch);
    let mut model = backbone::<B>(&fixture);
    let logits = model
        .eval_forward(input(&fixture).view(), WeightSet::Raw)
        .unwrap();
    let diff = max_abs_diff(&logits.data, &floats(&fixture["eval_logits"]));
    assert!(
        diff <= 1e-4,
        "{arch}: eval logits differ from torchvision by {diff}"
    );
}

fn check_sgd<B: Backbone<Config = ResNetConfig>>(arch: &str) {
    let fixture = load_fixture(arch);
    let mut model = backbone::<B>(&fixture);
    let x = input(&fixture);
    let sgd = &fixture["sgd"];
    let lr = sgd["lr"].as_f64().unwrap();
    let mut failures = Vec::new();
    for (step, expected) in sgd["train_logits"].as_array().unwrap().iter().enumerate() {
        let logits = model.forward(x.view()).unwrap();
        let expected = floats(expected);
        let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&logits.data, &expected);
        if diff > 1e-4 * scale {
            failures.push(format!("training logits of step {step} differ by {diff}"));
        }
        let grad = fixture_value(&format!("grad_logits.{step}"), &logits.shape);
        let report = model
            .backward_step(
                grad.view(),
                StepParams {
                    lr,
                    apply_update: true,
                },
            )
            .unwrap();
        assert!(report.applied);
    }
    let weights = model.named_weights(WeightSet::Raw).unwrap();
    for (name, sample) in sgd["tensors"].as_object().unwrap() {
        let diff = sample_diff(sample, find(&weights, name));
        if diff > 1e-5 {
            failures.push(format!("`{name}` after two SGD steps differs by {diff}"));
        }
    }
    assert!(failures.is_empty(), "{arch}: {}", failures.join("; "));
}

#[test]
fn resnet18_eval_logits_match_torchvision() {
    check_eval::<ResNet<18>>("resnet18");
}

#[test]
fn resnet50_eval_logits_match_torchvision() {
    check_eval::<ResNet<50>>("resnet50");
}

#[test]
fn resnet18_sgd_steps_match_torchvision() {
    check_sgd::<ResNet<18>>("resnet18");
}

#[test]
fn resnet50_sgd_steps_match_torchvision() {
    check_sgd::<ResNet<50>>("resnet50");
}
