//! Loading PyTorch state dicts: both file formats, the load report, head re-initialization, and
//! the `weights` parameter.

use clshost_burn_kit::read_state_dict;
use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::{context, find, fixture_path, fixture_value, momentum_sgd};

#[test]
fn pth_and_safetensors_read_the_same_tensors() {
    let pth = read_state_dict(&fixture_path("partial.pth")).unwrap();
    let st = read_state_dict(&fixture_path("partial.safetensors")).unwrap();
    assert_eq!(pth, st);
    let names: Vec<&str> = pth.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bn1.num_batches_tracked",
            "bn1.weight",
            "extra.weight",
            "fc.bias",
            "fc.weight"
        ]
    );
    assert_eq!(
        find(&pth, "fc.weight"),
        &fixture_value("fc.weight", &[10, 512])
    );
    assert_eq!(find(&pth, "bn1.num_batches_tracked").data.as_slice(), [7.0]);
}

#[test]
fn the_report_names_every_key_that_does_not_fit() {
    let mut model = ResNet::<18>::new(
        ResNetConfig::default(),
        &context(5, "cpu", momentum_sgd(0.0)),
    )
    .unwrap();
    let before = model.named_weights(WeightSet::Raw).unwrap();
    let weights = read_state_dict(&fixture_path("partial.pth")).unwrap();

    let keep_head = LoadWeightsOptions {
        strict: false,
        reinit_mismatched_head: false,
    };
    let report = model.load_weights(weights.clone(), keep_head).unwrap();
    assert_eq!(report.loaded, 1);
    assert_eq!(report.unexpected.as_slice(), ["extra.weight"]);
    let mismatched: Vec<(&str, &[usize], &[usize])> = report
        .mismatched
        .iter()
        .map(|m| (m.name.as_str(), m.expected.as_slice(), m.found.as_slice()))
        .collect();
    assert_eq!(
        mismatched,
        [
            ("fc.weight", &[5, 512][..], &[10, 512][..]),
            ("fc.bias", &[5][..], &[10][..])
        ]
    );
    assert_eq!(report.missing.len(), before.len() - 3);
    assert!(
        report
            .missing
            .iter()
            .any(|m| m == "layer4.1.bn2.running_var")
    );
    assert!(report.reinitialized.is_empty());
    let after = model.named_weights(WeightSet::Raw).unwrap();
    assert_eq!(
        find(&after, "bn1.weight"),
        &fixture_value("bn1.weight", &[64])
    );
    assert_eq!(find(&after, "fc.weight"), find(&before, "fc.weight"));

    let reinit = LoadWeightsOptions {
        strict: false,
        reinit_mismatched_head: true,
    };
    let report = model.load_weights(weights.clone(), reinit).unwrap();
    assert_eq!(report.reinitialized.as_slice(), ["fc.weight", "fc.bias"]);
    assert!(report.mismatched.is_empty());
    let bound = 1.0 / 512f32.sqrt();
    let fc = find(&model.named_weights(WeightSet::Raw).unwrap(), "fc.weight").clone();
    assert_eq!(fc.shape.as_slice(), [5, 512]);
    assert!(fc.data.iter().all(|v| v.abs() <= bound));

    let strict = LoadWeightsOptions {
        strict: true,
        reinit_mismatched_head: true,
    };
    let err = model.load_weights(weights, strict).unwrap_err();
    assert!(err.message.contains("unexpected extra.weight"), "{err}");
}

#[test]
fn the_weights_param_loads_a_file_at_creation() {
    let config = ResNetConfig {
        weights: Some(fixture_path("partial.safetensors").display().to_string()),
        strict_weights: false,
        ..ResNetConfig::default()
    };
    let model = ResNet::<18>::new(config.clone(), &context(5, "cpu", momentum_sgd(0.0))).unwrap();
    let weights = model.named_weights(WeightSet::Raw).unwrap();
    assert_eq!(
        find(&weights, "bn1.weight"),
        &fixture_value("bn1.weight", &[64])
    );

    let strict = ResNetConfig {
        strict_weights: true,
        ..config
    };
    let err = ResNet::<18>::new(strict, &context(5, "cpu", momentum_sgd(0.0)))
        .err()
        .unwrap();
    assert_eq!(err.field_path.as_str(), "weights");

    let source = ResNetConfig {
        weights: Some("torchvision:resnet18.DEFAULT".into()),
        ..ResNetConfig::default()
    };
    let err = ResNet::<18>::new(source, &context(5, "cpu", momentum_sgd(0.0)))
        .err()
        .unwrap();
    assert_eq!(err.field_path.as_str(), "weights");
    assert!(
        err.message
            .contains("write it as the recipe's model.weights"),
        "{err}"
    );
}

#[test]
fn zero_init_residual_and_small_input_shape_the_model() {
    let config = ResNetConfig {
        zero_init_residual: true,
        small_input: true,
        ..ResNetConfig::default()
    };
    let model = ResNet::<50>::new(config, &context(3, "cpu", momentum_sgd(0.0))).unwrap();
    let weights = model.named_weights(WeightSet::Raw).unwrap();
    assert!(
        find(&weights, "layer2.1.bn3.weight")
            .data
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        find(&weights, "layer2.1.bn2.weight")
            .data
            .iter()
            .all(|&v| v == 1.0)
    );
    assert_eq!(
        find(&weights, "conv1.weight").shape.as_slice(),
        [64, 3, 3, 3]
    );
    assert_eq!(find(&weights, "fc.weight").shape.as_slice(), [3, 2048]);
    // torchvision resnet50(num_classes=3) with a 3x3 conv1 has 23 506 499 parameters.
    let summary = model.summary().unwrap();
    assert_eq!(summary.num_parameters, 23_506_499);
}
