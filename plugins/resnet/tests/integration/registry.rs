//! What the plugin declares: its three depths, each with every config parameter and its default,
//! and the config values serde cannot reject.

use clshost_plugin_api::authoring::root_module;
use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::{ResNet, ResNetConfig};

#[test]
fn every_depth_lists_the_config_params_with_their_defaults() {
    let root = root_module("clshost-plugin-resnet", "0.1.0", "test", None);
    let info = root.info()().unwrap();
    let names: Vec<&str> = info.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["resnet18", "resnet34", "resnet50"]);
    assert_eq!(
        [ResNet::<18>::NAME, ResNet::<34>::NAME, ResNet::<50>::NAME],
        ["resnet18", "resnet34", "resnet50"]
    );
    for component in &info.components {
        let params: Vec<&str> = component.params.iter().map(|p| p.name.as_str()).collect();
        let fields: Vec<&str> = ResNetConfig::PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(params, fields, "{}", component.name);
    }
    assert_eq!(info.params_without_default(), Vec::<String>::new());
}

#[test]
fn bad_values_are_rejected_with_their_field() {
    for (config, field) in [
        (
            ResNetConfig {
                drop_rate: 1.0,
                ..ResNetConfig::default()
            },
            "drop_rate",
        ),
        (
            ResNetConfig {
                num_classes: Some(0),
                ..ResNetConfig::default()
            },
            "num_classes",
        ),
        (
            ResNetConfig {
                weights: Some("torchvision:resnet18".into()),
                ..ResNetConfig::default()
            },
            "weights",
        ),
    ] {
        let err = ResNet::<18>::check(&config).unwrap_err();
        assert_eq!(err.field_path.as_str(), field, "{config:?}");
    }
}
