//! `#[derive(ConfigDoc)]` as plugin authors use it: parameter names as serde reads and writes
//! them, docs from the fields' comments, and the component info the host lists.

use clshost_plugin_api::authoring::root_module;
use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{ComponentKind, ParamDoc};

/// Renamed fields, a skipped one, and a doc comment over several lines and paragraphs.
#[derive(Debug, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct SmoothingConfig {
    /// Probability mass moved to the other classes,
    /// in [0, 1).
    ///
    /// 0 disables smoothing.
    pub label_smoothing: f64,
    /// Classes whose weight is doubled.
    #[serde(rename = "boosted")]
    pub boosted_classes: Vec<u32>,
    #[serde(skip)]
    pub cache: Vec<f64>,
    /// Whether the loss is averaged over the batch.
    pub mean_reduction: bool,
}

impl Default for SmoothingConfig {
    fn default() -> Self {
        SmoothingConfig {
            label_smoothing: 0.1,
            boosted_classes: vec![3],
            cache: Vec::new(),
            mean_reduction: true,
        }
    }
}

/// A config without parameters.
#[derive(Debug, Default, Serialize, Deserialize, ConfigDoc)]
pub struct NoConfig;

/// An empty config in braces: it still rejects any parameter a recipe gives it.
#[derive(Debug, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields)]
pub struct EmptyConfig {}

/// A generic config.
#[derive(Debug, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING-KEBAB-CASE")]
pub struct Bounds<T> {
    /// Lowest value.
    pub low_value: T,
}

#[test]
fn params_follow_the_fields_in_order_with_serde_names() {
    assert_eq!(
        SmoothingConfig::PARAMS,
        [
            Param::new(
                "labelSmoothing",
                "Probability mass moved to the other classes, in [0, 1).\n0 disables smoothing."
            ),
            Param::new("boosted", "Classes whose weight is doubled."),
            Param::new(
                "meanReduction",
                "Whether the loss is averaged over the batch."
            ),
        ]
    );
    assert_eq!(
        Bounds::<u8>::PARAMS,
        [Param::new("LOW-VALUE", "Lowest value.")]
    );
    assert!(NoConfig::PARAMS.is_empty());
    assert!(EmptyConfig::PARAMS.is_empty());
}

/// A loss with the derived config, registered so the root module describes it.
pub struct Smoothed;

impl Component for Smoothed {
    const NAME: &'static str = "smoothed";
    const DESCRIPTION: &'static str = "test";
    type Config = SmoothingConfig;
}

impl Loss for Smoothed {
    fn new(_config: SmoothingConfig, _ctx: &LossContext) -> Result<Self, PluginError> {
        Ok(Smoothed)
    }
    fn accepts_soft_targets(&self) -> bool {
        true
    }
    fn compute(
        &self,
        _logits: TensorRef<'_>,
        _targets: TensorRef<'_>,
        _grad: TensorMut<'_>,
    ) -> Result<f64, PluginError> {
        Ok(0.0)
    }
}

/// A loss without parameters.
pub struct Plain;

impl Component for Plain {
    const NAME: &'static str = "plain";
    const DESCRIPTION: &'static str = "test";
    type Config = EmptyConfig;
}

impl Loss for Plain {
    fn new(_config: EmptyConfig, _ctx: &LossContext) -> Result<Self, PluginError> {
        Ok(Plain)
    }
    fn accepts_soft_targets(&self) -> bool {
        true
    }
    fn compute(
        &self,
        _logits: TensorRef<'_>,
        _targets: TensorRef<'_>,
        _grad: TensorMut<'_>,
    ) -> Result<f64, PluginError> {
        Ok(0.0)
    }
}

register!(Loss: Smoothed, Loss: Plain);

#[test]
fn the_host_sees_each_derived_param_with_its_serialized_default() {
    let root = root_module("derive-test", "0.1.0", "test", None);
    let info = root.info()().unwrap();
    let component = |name: &str| {
        info.components
            .iter()
            .find(|c| c.kind == ComponentKind::Loss && c.name == name)
            .unwrap()
            .clone()
    };
    let params: Vec<ParamDoc> = component("smoothed").params.into_vec();
    let row = |name: &str, default: &str, doc: &str| ParamDoc {
        name: name.into(),
        default: default.into(),
        doc: doc.into(),
    };
    assert_eq!(
        params,
        [
            row(
                "labelSmoothing",
                "0.1",
                "Probability mass moved to the other classes, in [0, 1).\n0 disables smoothing."
            ),
            row("boosted", "[3]", "Classes whose weight is doubled."),
            row(
                "meanReduction",
                "true",
                "Whether the loss is averaged over the batch."
            ),
        ]
    );
    assert!(component("plain").params.is_empty());
    let ctx = LossContext { num_classes: 2 };
    let unknown = (root.new_loss())("plain".into(), "(p: 1.0)".into(), &ctx)
        .into_result()
        .err()
        .expect("an empty config rejects parameters");
    assert!(unknown.message.contains("`p`"), "{}", unknown.message);
}
