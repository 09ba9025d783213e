//! The `resnet` plugin: `resnet18`, `resnet34` and `resnet50` backbones with torchvision's
//! architecture and weight names, trained on Burn through the Burn kit (CPU, wgpu or CUDA).

pub mod model;

use std::path::Path;

use clshost_burn_kit::{BurnBackbone, describe, read_state_dict};
use clshost_plugin_api::prelude::*;

pub use model::{Architecture, ResNet as ResNetModel, ResNetFamily};

/// The config of every ResNet backbone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    /// Number of output classes. Default None: the number of classes in the data; when set it must
    /// equal it.
    pub num_classes: Option<u32>,
    /// Path to a torchvision state dict (.pth/.pt pickle or .safetensors) loaded after
    /// initialization, e.g. torchvision's ImageNet weights. Keys `*.num_batches_tracked` are
    /// ignored.
    pub weights: Option<String>,
    /// When `weights` has a classifier (`fc.*`) of another class count, keep a freshly initialized
    /// one (logged) instead of failing.
    pub reinit_head: bool,
    /// Fail when `weights` has missing, unexpected or mis-shaped keys (other than a re-initialized
    /// head); when false, load what fits and log the rest.
    pub strict_weights: bool,
    /// Initialize the last BatchNorm scale of every residual branch to 0 (torchvision's
    /// `zero_init_residual`), so each block starts as the identity.
    pub zero_init_residual: bool,
    /// CIFAR-style stem for 32x32 images: a 3x3 stride-1 `conv1` and no max-pool, instead of the
    /// 7x7 stride-2 convolution and 3x3 stride-2 max-pool.
    pub small_input: bool,
    /// Dropout probability on the pooled features before `fc`, in [0, 1). Masks are drawn from the
    /// seed and the step, so resumed runs draw the same ones.
    pub drop_rate: f64,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        ResNetConfig {
            num_classes: None,
            weights: None,
            reinit_head: true,
            strict_weights: true,
            zero_init_residual: false,
            small_input: false,
            drop_rate: 0.0,
        }
    }
}

/// Checks the values serde cannot.
fn check_config(config: &ResNetConfig) -> Result<(), PluginError> {
    if !(0.0..1.0).contains(&config.drop_rate) {
        return Err(PluginError::config("drop_rate", "must be in [0, 1)"));
    }
    if config.num_classes == Some(0) {
        return Err(PluginError::config("num_classes", "must be at least 1"));
    }
    match config.weights.as_deref() {
        Some("") => return Err(PluginError::config("weights", "is an empty path")),
        Some(source) if is_weight_source(source) => {
            return Err(PluginError::config(
                "weights",
                format!(
                    "`{source}` is a weight source, which the host finds or downloads: write it \
                     as the recipe's model.weights (params.weights takes a local path)"
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Whether `text` names a weight source the host resolves (a zoo name, a Hub file, a URL)
/// rather than a local path.
fn is_weight_source(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "torchvision:",
        "hf:",
        "hf-hub:",
        "http://",
        "https://",
        "file://",
    ]
    .iter()
    .any(|scheme| lower.starts_with(scheme))
}

/// A torchvision ResNet of depth `DEPTH` (18, 34 or 50) as a backbone component.
pub struct ResNet<const DEPTH: usize> {
    inner: BurnBackbone<ResNetFamily>,
}

/// The component name of a depth.
const fn name_of(depth: usize) -> &'static str {
    match depth {
        18 => "resnet18",
        34 => "resnet34",
        _ => "resnet50",
    }
}

/// The component description of a depth.
const fn description_of(depth: usize) -> &'static str {
    match depth {
        18 => "ResNet-18 (basic blocks), torchvision-compatible weights and names",
        34 => "ResNet-34 (basic blocks), torchvision-compatible weights and names",
        _ => {
            "ResNet-50 (bottleneck blocks, stride on the 3x3), torchvision-compatible weights and names"
        }
    }
}

impl<const DEPTH: usize> ResNet<DEPTH> {
    /// The family this component builds from `config`.
    pub fn family(config: &ResNetConfig) -> Result<ResNetFamily, PluginError> {
        let arch = Architecture::of_depth(DEPTH)
            .ok_or_else(|| PluginError::internal(format!("no ResNet of depth {DEPTH}")))?;
        Ok(ResNetFamily {
            arch,
            small_input: config.small_input,
            drop_rate: config.drop_rate,
            zero_init_residual: config.zero_init_residual,
        })
    }

    /// The underlying Burn backbone.
    pub fn backbone(&self) -> &BurnBackbone<ResNetFamily> {
        &self.inner
    }
}

impl<const DEPTH: usize> Component for ResNet<DEPTH> {
    const NAME: &'static str = name_of(DEPTH);
    const DESCRIPTION: &'static str = description_of(DEPTH);
    type Config = ResNetConfig;

    fn check(config: &ResNetConfig) -> Result<(), PluginError> {
        check_config(config)
    }
}

impl<const DEPTH: usize> Backbone for ResNet<DEPTH> {
    fn new(config: ResNetConfig, ctx: &BackboneContext) -> Result<Self, PluginError> {
        check_config(&config)?;
        if let Some(n) = config.num_classes
            && n != ctx.num_classes
        {
            return Err(PluginError::config(
                "num_classes",
                format!("is {n} but the data has {} classes", ctx.num_classes),
            ));
        }
        let mut inner = BurnBackbone::new(Self::family(&config)?, ctx)?;
        if let Some(path) = &config.weights {
            let weights = read_state_dict(Path::new(path))?;
            let options = LoadWeightsOptions {
                strict: config.strict_weights,
                reinit_mismatched_head: config.reinit_head,
            };
            let report = inner
                .load_weights(weights, options)
                .map_err(|e| PluginError::config("weights", format!("`{path}`: {e}")))?;
            if !config.strict_weights {
                tracing::warn!("weights `{path}`: {}", describe(&report));
            }
        }
        Ok(ResNet { inner })
    }

    fn summary(&self) -> Result<BackboneSummary, PluginError> {
        self.inner.summary()
    }

    fn forward(&mut self, images: TensorRef<'_>) -> Result<Tensor, PluginError> {
        self.inner.forward(images)
    }

    fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> Result<StepReport, PluginError> {
        self.inner.backward_step(grad_logits, step)
    }

    fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> Result<Tensor, PluginError> {
        self.inner.eval_forward(images, weights)
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        self.inner.save_state()
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError> {
        self.inner.load_state(state)
    }

    fn named_weights(&self, weights: WeightSet) -> Result<Vec<NamedTensor>, PluginError> {
        self.inner.named_weights(weights)
    }

    fn load_weights(
        &mut self,
        weights: Vec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> Result<LoadReport, PluginError> {
        self.inner.load_weights(weights, options)
    }

    fn graph(&self, weights: WeightSet) -> Result<ModelGraph, PluginError> {
        self.inner.graph(weights)
    }

    fn tune(&mut self, spec: &TuneSpec) -> Result<TuneReport, PluginError> {
        self.inner.tune(spec)
    }

    fn distribute(&mut self, collective: CollectiveBox) -> Result<(), PluginError> {
        self.inner.distribute(collective)
    }

    fn set_precision(&mut self, precision: &str) -> Result<(), PluginError> {
        self.inner.set_precision(precision)
    }
}

register!(Backbone: ResNet<18>, Backbone: ResNet<34>, Backbone: ResNet<50>);
export_plugin!(
    description: "ResNet-18/34/50 backbones (torchvision-compatible) on Burn: CPU, wgpu, CUDA",
    devices: clshost_burn_kit::devices,
);
