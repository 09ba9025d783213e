//! Parity with torchvision: the fixtures of `scripts/fixtures/resnet.py` hold torchvision's eval
//! logits and the weights after two SGD steps, for weights given by a formula of their names
//! (`fixture_value`, identical to the script's).

use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::{
    backbone_on, find, fixture_value, floats, input, load_fixture, max_abs_diff, sample_diff,
    test_device,
};

/// How far a backbone may land from a fixture: the eval logits and the training logits (both
/// relative to the largest logit, at least 1), and the sampled weights after the steps.
pub struct Tolerance {
    pub eval: f64,
    pub logits: f64,
    pub weights: f64,
}

/// Float32 against torchvision.
const FP32: Tolerance = Tolerance {
    eval: 1e-4,
    logits: 1e-4,
    weights: 1e-5,
};

/// The largest difference between `got` and `expected`, relative to `expected`'s largest
/// magnitude (at least 1).
fn scaled_diff(got: &[f32], expected: &[f64]) -> f64 {
    let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    max_abs_diff(got, expected) / scale
}

/// A fixture (`tests/fixtures/{fixture}.json`) and where the backbone runs against it.
pub struct Case<'a> {
    pub fixture: &'a str,
    pub device: String,
    pub precision: &'a str,
}

impl Case<'_> {
    /// The fixture, and a backbone with its weights on the case's device and precision.
    fn start<B: Backbone<Config = ResNetConfig>>(&self) -> (serde_json::Value, B) {
        let fixture = load_fixture(self.fixture);
        let mut model = backbone_on::<B>(&fixture, &self.device);
        model.set_precision(self.precision).unwrap();
        (fixture, model)
    }
}

/// The eval logits of `B` in `case`; what differs by more than `tol.eval`.
pub fn check_eval<B: Backbone<Config = ResNetConfig>>(
    case: &Case<'_>,
    tol: &Tolerance,
) -> Result<(), String> {
    let (fixture, mut model) = case.start::<B>();
    let logits = model
        .eval_forward(input(&fixture).view(), WeightSet::Raw)
        .unwrap();
    let diff = scaled_diff(&logits.data, &floats(&fixture["eval_logits"]));
    if diff <= tol.eval {
        Ok(())
    } else {
        Err(format!(
            "{}: eval logits differ from torchvision by {diff} (relative)",
            case.fixture
        ))
    }
}

/// Two SGD steps of `B` in `case`: the training logits of each step and the sampled weights
/// after them; what differs by more than `tol`.
pub fn check_sgd<B: Backbone<Config = ResNetConfig>>(
    case: &Case<'_>,
    tol: &Tolerance,
) -> Result<(), String> {
    let (fixture, mut model) = case.start::<B>();
    let x = input(&fixture);
    let sgd = &fixture["sgd"];
    let lr = sgd["lr"].as_f64().unwrap();
    let mut failures = Vec::new();
    for (step, expected) in sgd["train_logits"].as_array().unwrap().iter().enumerate() {
        let logits = model.forward(x.view()).unwrap();
        let diff = scaled_diff(&logits.data, &floats(expected));
        if diff > tol.logits {
            failures.push(format!(
                "training logits of step {step} differ by {diff} (relative)"
            ));
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
        if diff > tol.weights {
            failures.push(format!("`{name}` after two SGD steps differs by {diff}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", case.fixture, failures.join("; ")))
    }
}

/// The float32 case of `fixture` on [`test_device`].
fn fp32(fixture: &str) -> Case<'_> {
    Case {
        fixture,
        device: test_device(),
        precision: "fp32",
    }
}

#[test]
fn resnet18_eval_logits_match_torchvision() {
    check_eval::<ResNet<18>>(&fp32("resnet18"), &FP32).unwrap();
}

#[test]
fn resnet50_eval_logits_match_torchvision() {
    check_eval::<ResNet<50>>(&fp32("resnet50"), &FP32).unwrap();
}

#[test]
fn resnet18_sgd_steps_match_torchvision() {
    check_sgd::<ResNet<18>>(&fp32("resnet18"), &FP32).unwrap();
}

#[test]
fn resnet50_sgd_steps_match_torchvision() {
    check_sgd::<ResNet<50>>(&fp32("resnet50"), &FP32).unwrap();
}
