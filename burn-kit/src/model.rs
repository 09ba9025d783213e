//! What a model author implements: a Burn module from images to logits, and its family (how to
//! build it, initialize it, and describe it as a graph).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use clshost_plugin_api::PluginError;
use rand_chacha::ChaCha8Rng;

use crate::graph::GraphBuilder;
use crate::nn::ForwardContext;

/// A Burn module that classifies images: `[N, 3, H, W]` in, `[N, classes]` logits out.
///
/// Its float parameters and buffers are named by their module path (`layer1.0.conv1.weight`),
/// which is also their name in [`named_weights`](crate::BurnBackbone::named_weights) and in
/// checkpoints; name fields as the PyTorch model does and use the layers of [`crate::nn`] for
/// normalization and linear layers, so names, layouts and semantics match PyTorch.
pub trait ClassifierModel<B: Backend>: Module<B> {
    /// Computes the logits of an image batch.
    fn forward(&self, images: Tensor<B, 4>, ctx: &ForwardContext) -> Tensor<B, 2>;

    /// Describes the computation as nodes of `graph`, reading `input`; returns the name of the
    /// logits value. Weights are referenced by their names (see [`GraphBuilder`]).
    fn graph(&self, graph: &mut GraphBuilder, input: &str) -> Result<String, PluginError>;
}

/// A family of models: what the kit needs to build one on any backend.
pub trait ModelFamily: Send + 'static {
    /// The model type on backend `B`.
    type Model<B: Backend>: ClassifierModel<B>;

    /// Builds the model on `device` with `num_classes` outputs. Parameter values may be
    /// anything: the kit then sets every weight [`ModelFamily::initial_value`] returns a value for.
    fn init<B: Backend>(&self, num_classes: usize, device: &B::Device) -> Self::Model<B>;

    /// The initial value of the weight `name` of shape `shape`, drawn from `rng` (seeded from the
    /// backbone seed and the name, so it does not depend on the device or on the order of
    /// weights). `None` keeps the value [`ModelFamily::init`] gave.
    fn initial_value(&self, name: &str, shape: &[usize], rng: &mut ChaCha8Rng) -> Option<Vec<f32>>;

    /// Whether `name` belongs to the classifier head, which may be left freshly initialized when
    /// loaded weights were trained for another number of classes.
    fn is_head(&self, name: &str) -> bool;

    /// The layer of weight `name` for layer-wise learning-rate decay, counted from the input:
    /// the stem is layer 0 and the head the last one, as timm groups a model's blocks. `None`
    /// (the default) means the family does not group its weights, and a `layer_decay` asked of
    /// it is refused.
    fn layer(&self, name: &str) -> Option<usize> {
        let _ = name;
        None
    }
}
