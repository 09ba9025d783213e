//! The plugin lists every loss with its parameters' defaults, and creates them through the ABI.

use clshost_plugin_api::authoring::{Component, root_module};
use clshost_plugin_api::{ComponentKind, LossContext};
use clshost_plugin_losses::{Bce, CrossEntropy, Focal};

#[test]
fn the_plugin_lists_every_loss_and_declares_soft_target_support() {
    let root = root_module("clshost-plugin-losses", "0.1.0", "test", None);
    let info = root.info()().unwrap();
    let mut names: Vec<&str> = info
        .components
        .iter()
        .inspect(|c| assert_eq!(c.kind, ComponentKind::Loss))
        .map(|c| c.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, [Bce::NAME, CrossEntropy::NAME, Focal::NAME]);
    assert_eq!(info.params_without_default(), Vec::<String>::new());
    let ctx = LossContext { num_classes: 5 };
    for (name, soft) in [("cross_entropy", true), ("bce", true), ("focal", false)] {
        let component = info.components.iter().find(|c| c.name == name).unwrap();
        (root.validate())(
            ComponentKind::Loss,
            name.into(),
            component.default_config.as_rstr(),
        )
        .unwrap();
        let loss = (root.new_loss())(name.into(), "".into(), &ctx).unwrap();
        assert_eq!(loss.accepts_soft_targets().unwrap(), soft, "{name}");
    }
    let err = (root.new_loss())(
        "cross_entropy".into(),
        "(class_weights: Some([1.0, 2.0]))".into(),
        &ctx,
    )
    .into_result()
    .err()
    .unwrap();
    assert_eq!(err.field_path.as_str(), "class_weights");
}
