//! The plugin lists every metric with its parameters' defaults, and declares directions.

use clshost_plugin_api::authoring::{Component, root_module};
use clshost_plugin_api::{ComponentKind, MetricContext};
use clshost_plugin_metrics::{
    Accuracy, Auroc, ConfusionMatrix, Ece, F1, PerClassAccuracy, Precision, Recall,
};

#[test]
fn the_plugin_lists_every_metric_with_its_defaults() {
    let root = root_module("clshost-plugin-metrics", "0.1.0", "test", None);
    let info = root.info()().unwrap();
    let mut names: Vec<&str> = info
        .components
        .iter()
        .inspect(|c| assert_eq!(c.kind, ComponentKind::Metric))
        .map(|c| c.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            Accuracy::NAME,
            Auroc::NAME,
            ConfusionMatrix::NAME,
            Ece::NAME,
            F1::NAME,
            PerClassAccuracy::NAME,
            Precision::NAME,
            Recall::NAME
        ]
    );
    assert_eq!(info.params_without_default(), Vec::<String>::new());
    let default_of = |name: &str| {
        let component = info.components.iter().find(|c| c.name == name).unwrap();
        component.params[0].default.replace(' ', "")
    };
    assert_eq!(default_of("accuracy"), "[1,5]");
    assert_eq!(default_of("f1"), "macro");
    assert_eq!(default_of("ece"), "15");
    for c in info.components.iter() {
        (root.validate())(
            ComponentKind::Metric,
            c.name.as_rstr(),
            c.default_config.as_rstr(),
        )
        .unwrap();
    }
    let err =
        (root.validate())(ComponentKind::Metric, "ece".into(), "(bins: 0)".into()).unwrap_err();
    assert_eq!(err.field_path.as_str(), "bins");
}

/// Declared scalar names with `higher_is_better`.
type Outputs = &'static [(&'static str, bool)];

#[test]
fn metrics_are_created_through_the_abi_with_their_directions() {
    let root = root_module("clshost-plugin-metrics", "0.1.0", "test", None);
    let ctx = MetricContext {
        num_classes: 10,
        class_names: (0..10).map(|c| format!("c{c}").into()).collect(),
    };
    let expected: [(&str, &str, Outputs); 6] = [
        ("accuracy", "()", &[("top1", true), ("top5", true)]),
        ("f1", "(average: weighted)", &[("f1_weighted", true)]),
        ("precision", "(average: none)", &[]),
        ("auroc", "()", &[("auroc_macro", true)]),
        ("per_class_accuracy", "()", &[("balanced_accuracy", true)]),
        ("ece", "()", &[("ece", false)]),
    ];
    for (name, config, outputs) in expected {
        let metric = (root.new_metric())(name.into(), config.into(), &ctx).unwrap();
        let declared: Vec<(String, bool)> = metric
            .outputs()
            .unwrap()
            .into_iter()
            .map(|o| (o.name.into_string(), o.higher_is_better))
            .collect();
        let outputs: Vec<(String, bool)> =
            outputs.iter().map(|&(n, h)| (n.to_string(), h)).collect();
        assert_eq!(declared, outputs, "{name}");
    }
}
