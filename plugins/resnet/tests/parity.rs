//! Parity with torchvision: the fixtures of `scripts/fixtures/resnet.py` hold torchvision's eval
//! logits and the weights after two SGD steps, for weights given by a formula of their names
//! (`fixture_value`, identical to the script's).

use std::path::PathBuf;

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{OptimizerKind, OptimizerSpec};
use clshost_plugin_resnet::ResNet;
use serde_json::Value;

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `n` values in [-1, 1) from the name's hash and the element index (splitmix64).
fn uniform(name: &str, n: usize) -> Vec<f64> {
    let seed = fnv1a64(name);
    (0..n as u64)
        .map(|i| {
            let x = (seed ^ i).wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            2.0 * ((z >> 11) as f64 * 2f64.powi(-53)) - 1.0
        })
        .collect()
}

/// The fixture value of tensor `name` of `shape`, by the script's rules.
fn fixture_value(name: &str, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let u = uniform(name, n);
    let rule = |u: f64| -> f64 {
        if name.ends_with("running_var") {
            1.0 + 0.5 * u
        } else if name.ends_with("running_mean") {
            0.1 * u
        } else if shape.len() == 4 {
            u * (3.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt()
        } else if shape.len() == 2 && name.ends_with("weight") {
            u * (3.0 / shape[1] as f64).sqrt()
        } else if name.ends_with("bn3.weight") {
            0.2 * (1.0 + 0.1 * u)
        } else if name.ends_with("weight") {
            1.0 + 0.1 * u
        } else {
            0.1 * u
        }
    };
    Tensor::new(
        shape.to_vec(),
        u.into_iter().map(|u| rule(u) as f32).collect(),
    )
    .unwrap()
}

fn load_fixture(arch: &str) -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{arch}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn sgd(fixture: &Value) -> OptimizerSpec {
    let s = &fixture["sgd"];
    OptimizerSpec {
        kind: OptimizerKind::Sgd,
        momentum: s["momentum"].as_f64().unwrap(),
        nesterov: false,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: s["weight_decay"].as_f64().unwrap(),
        norm_bias_weight_decay: s["norm_bias_weight_decay"].as_f64().unwrap(),
        clip_grad_norm: None.into(),
        ema: None.into(),
    }
}

/// A backbone of `arch` holding the fixture weights.
fn backbone<B: Backbone<Config = clshost_plugin_resnet::ResNetConfig>>(fixture: &Value) -> B {
    let ctx = BackboneContext {
        num_classes: fixture["num_classes"].as_u64().unwrap() as u32,
        device: "cpu".into(),
        optimizer: sgd(fixture),
        seed: 7,
    };
    let mut model = B::new(Default::default(), &ctx).unwrap();
    let weights: Vec<NamedTensor> = model
        .named_weights(WeightSet::Raw)
        .unwrap()
        .into_iter()
        .map(|w| NamedTensor {
            tensor: fixture_value(&w.name, &w.tensor.shape),
            name: w.name,
        })
        .collect();
    let count = weights.len() as u64;
    let options = LoadWeightsOptions {
        strict: true,
        reinit_mismatched_head: false,
    };
    let report = model.load_weights(weights, options).unwrap();
    assert_eq!(report.loaded, count);
    model
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

fn input(fixture: &Value) -> Tensor {
    let shape: Vec<usize> = floats(&fixture["input_shape"])
        .iter()
        .map(|&d| d as usize)
        .collect();
    fixture_value("input", &shape)
}

fn check_eval<B: Backbone<Config = clshost_plugin_resnet::ResNetConfig>>(arch: &str) {
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

fn check_sgd<B: Backbone<Config = clshost_plugin_resnet::ResNetConfig>>(arch: &str) {
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
        let w = weights.iter().find(|w| w.name.as_str() == name).unwrap();
        let shape: Vec<usize> = floats(&sample["shape"])
            .iter()
            .map(|&d| d as usize)
            .collect();
        assert_eq!(w.tensor.shape.as_slice(), shape.as_slice(), "{name}");
        let indices = floats(&sample["indices"]);
        let expected = floats(&sample["values"]);
        let got: Vec<f32> = indices.iter().map(|&i| w.tensor.data[i as usize]).collect();
        let diff = max_abs_diff(&got, &expected);
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
