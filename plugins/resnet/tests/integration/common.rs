//! Helpers shared by the integration tests: the fixture value formula of
//! `scripts/fixtures/resnet.py`, fixture loading and backbone construction.

use std::path::PathBuf;

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{OptimizerKind, OptimizerSpec};
use clshost_plugin_resnet::ResNetConfig;
use serde_json::Value;

/// 64-bit FNV-1a of a name.
pub fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `n` values in [-1, 1) from the name's hash and the element index (splitmix64).
pub fn uniform(name: &str, n: usize) -> Vec<f64> {
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
pub fn fixture_value(name: &str, shape: &[usize]) -> Tensor {
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
        } else if name.ends_with("bn2.weight") || name.ends_with("bn3.weight") {
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

/// The device the parity tests run on: `CLSHOST_TEST_DEVICE` (`cuda`, `wgpu:1`, ...), else `cpu`.
/// `scripts/gpu-check.sh` runs the prebuilt test binary with it set.
pub fn test_device() -> String {
    std::env::var("CLSHOST_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

/// The file `tests/fixtures/{name}`. The crate directory comes from `CARGO_MANIFEST_DIR` at run
/// time when set (a prebuilt test binary run from another checkout), else from the build.
pub fn fixture_path(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/fixtures")
        .join(name)
}

/// The JSON fixture `tests/fixtures/{arch}.json`.
pub fn load_fixture(arch: &str) -> Value {
    let path = fixture_path(&format!("{arch}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The fixture's SGD settings.
pub fn sgd(fixture: &Value) -> OptimizerSpec {
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

/// SGD with momentum 0.9 and `weight_decay` on weights (none on normalization and biases).
pub fn momentum_sgd(weight_decay: f64) -> OptimizerSpec {
    OptimizerSpec {
        kind: OptimizerKind::Sgd,
        momentum: 0.9,
        nesterov: false,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay,
        norm_bias_weight_decay: 0.0,
        clip_grad_norm: None.into(),
        ema: None.into(),
    }
}

/// A context on `device` with `classes` outputs.
pub fn context(classes: u32, device: &str, optimizer: OptimizerSpec) -> BackboneContext {
    BackboneContext {
        num_classes: classes,
        device: device.into(),
        optimizer,
        seed: 7,
    }
}

/// Replaces every weight of `model` by its fixture value.
pub fn load_fixture_weights<B: Backbone>(model: &mut B) {
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
}

/// A default-config backbone on `device` with the fixture's SGD settings and weights.
pub fn backbone_on<B: Backbone<Config = ResNetConfig>>(fixture: &Value, device: &str) -> B {
    let classes = fixture["num_classes"].as_u64().unwrap() as u32;
    let mut model = B::new(
        ResNetConfig::default(),
        &context(classes, device, sgd(fixture)),
    )
    .unwrap_or_else(|e| panic!("cannot create a backbone on `{device}`: {e}"));
    load_fixture_weights(&mut model);
    model
}

/// A sample of a tensor as the script writes it: `shape`, `indices`, `values`; the largest
/// difference between the sampled values and `tensor`.
pub fn sample_diff(sample: &Value, tensor: &Tensor) -> f64 {
    let shape: Vec<usize> = floats(&sample["shape"])
        .iter()
        .map(|&d| d as usize)
        .collect();
    assert_eq!(tensor.shape.as_slice(), shape.as_slice());
    let got: Vec<f32> = floats(&sample["indices"])
        .iter()
        .map(|&i| tensor.data[i as usize])
        .collect();
    max_abs_diff(&got, &floats(&sample["values"]))
}

/// The tensor named `name` in `weights`.
pub fn find<'a>(weights: &'a [NamedTensor], name: &str) -> &'a Tensor {
    &weights
        .iter()
        .find(|w| w.name.as_str() == name)
        .unwrap()
        .tensor
}

/// The largest absolute difference between `a` and `b`.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

/// The fixture's input batch.
pub fn input(fixture: &Value) -> Tensor {
    let shape: Vec<usize> = floats(&fixture["input_shape"])
        .iter()
        .map(|&d| d as usize)
        .collect();
    fixture_value("input", &shape)
}
