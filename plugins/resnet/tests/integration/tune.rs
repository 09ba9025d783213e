//! Fine-tuning controls (plugin ABI 1.3) on a real ResNet-18: frozen parameters stay
//! bit-identical through training steps while the others change, frozen BatchNorm statistics
//! stay as they were (and move without the option, as in PyTorch, where freezing a parameter
//! leaves its layer's statistics training), lifting the freeze trains everything, and patterns
//! that match nothing are errors.

use clshost_plugin_api::ParamGroup;
use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::{
    context, find, fixture_value, load_fixture_weights, momentum_sgd, test_device,
};

fn model() -> ResNet<18> {
    let config = ResNetConfig {
        small_input: true,
        ..ResNetConfig::default()
    };
    let mut model =
        ResNet::<18>::new(config, &context(5, &test_device(), momentum_sgd(1e-4))).unwrap();
    load_fixture_weights(&mut model);
    model
}

/// Two SGD steps on a fixed batch.
fn train(model: &mut ResNet<18>) {
    let x = fixture_value("input", &[2, 3, 16, 16]);
    for step in 0..2 {
        let logits = model.forward(x.view()).unwrap();
        let grad = fixture_value(&format!("grad_logits.{step}"), &logits.shape);
        let params = StepParams {
            lr: 0.1,
            apply_update: true,
        };
        model.backward_step(grad.view(), params).unwrap();
    }
}

fn freeze(patterns: &[&str], freeze_norm_stats: bool) -> TuneSpec {
    TuneSpec {
        freeze: patterns.iter().map(|p| (*p).into()).collect(),
        freeze_norm_stats,
        ..TuneSpec::default()
    }
}

#[test]
fn frozen_parameters_and_statistics_stay_bit_identical_while_the_rest_trains() {
    let mut m = model();
    let before = m.named_weights(WeightSet::Raw).unwrap();
    let report = m.tune(&freeze(&["*", "!fc.*"], true)).unwrap();
    assert_eq!((report.frozen, report.trainable), (60, 2));
    assert_eq!(report.trainable_elements, 5 * 512 + 5);
    assert_eq!(m.summary().unwrap().num_parameters, 5 * 512 + 5);
    train(&mut m);
    let after = m.named_weights(WeightSet::Raw).unwrap();
    for (b, a) in before.iter().zip(&after) {
        if b.name.starts_with("fc.") {
            assert_ne!(b.tensor, a.tensor, "{} should have trained", b.name);
        } else {
            assert_eq!(b.tensor, a.tensor, "{} should be unchanged", b.name);
        }
    }
}

#[test]
fn without_frozen_statistics_a_frozen_layer_still_updates_them() {
    let mut m = model();
    let before = m.named_weights(WeightSet::Raw).unwrap();
    m.tune(&freeze(&["*", "!fc.*"], false)).unwrap();
    train(&mut m);
    let after = m.named_weights(WeightSet::Raw).unwrap();
    let name = "layer1.0.bn1.running_mean";
    assert_ne!(find(&before, name), find(&after, name));
    let name = "layer1.0.bn1.weight";
    assert_eq!(find(&before, name), find(&after, name));
}

#[test]
fn lifting_the_freeze_trains_everything_and_groups_scale_the_rate() {
    // Trained with only the head first, as `unfreeze_epoch` does: the stem, whose input needs
    // no gradient, must get one once its weight does.
    let mut frozen = model();
    frozen.tune(&freeze(&["*", "!fc.*"], false)).unwrap();
    train(&mut frozen);
    let before = frozen.named_weights(WeightSet::Raw).unwrap();
    let report = frozen.tune(&TuneSpec::default()).unwrap();
    assert_eq!(report.frozen, 0);
    train(&mut frozen);
    let after = frozen.named_weights(WeightSet::Raw).unwrap();
    for name in ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight"] {
        assert_ne!(
            find(&before, name),
            find(&after, name),
            "{name} should have trained"
        );
    }

    // A head group at lr_scale 0 leaves the head unchanged and trains the body.
    let mut grouped = model();
    let spec = TuneSpec {
        groups: vec![ParamGroup {
            params: vec!["fc.*".into()].into(),
            lr_scale: 0.0,
            weight_decay: Some(0.0).into(),
        }]
        .into(),
        ..TuneSpec::default()
    };
    assert_eq!(grouped.tune(&spec).unwrap().group_sizes.as_slice(), [2]);
    let before = grouped.named_weights(WeightSet::Raw).unwrap();
    train(&mut grouped);
    let after = grouped.named_weights(WeightSet::Raw).unwrap();
    assert_eq!(find(&before, "fc.weight"), find(&after, "fc.weight"));
    assert_ne!(find(&before, "conv1.weight"), find(&after, "conv1.weight"));
}

#[test]
fn a_pattern_matching_nothing_and_layer_decay_are_checked() {
    let mut m = model();
    let err = m.tune(&freeze(&["layer5.*"], false)).unwrap_err();
    assert_eq!(
        err.message.as_str(),
        "pattern `layer5.*` matches no parameter of this model (names look like `conv1.weight`)"
    );
    let spec = TuneSpec {
        layer_decay: Some(0.5).into(),
        ..TuneSpec::default()
    };
    // ResNet-18: the stem, 8 basic blocks and the head.
    assert_eq!(m.tune(&spec).unwrap().layers, 10);
}
