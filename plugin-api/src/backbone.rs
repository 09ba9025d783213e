//! The backbone contract: a trainable model that owns its device, autodiff and optimizer state.
//!
//! Per training step the host calls [`AbiBackbone::forward`] (the backbone keeps the autodiff
//! graph), computes the loss and its gradient with a loss plugin, then calls
//! [`AbiBackbone::backward_step`] with that gradient. The backbone backpropagates
//! `sum(logits * grad)`, accumulates gradients, and applies its optimizer when asked.

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RString, RVec};

use crate::{ModelGraph, NamedTensor, PluginError, Tensor, TensorRef};

/// Which optimizer algorithm a backbone runs.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with momentum, as `torch.optim.SGD` (dampening 0).
    Sgd,
    /// Adam with decoupled weight decay, as `torch.optim.AdamW`.
    AdamW,
}

/// Exponential moving average of the weights, kept by the backbone.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct EmaSpec {
    /// Decay per update: `ema = decay * ema + (1 - decay) * weights`.
    pub decay: f64,
    /// Update the average every this many optimizer steps.
    pub update_interval: u32,
    /// Ramp the decay up as `min(decay, (1 + n) / (10 + n))` over the first updates.
    pub warmup: bool,
}

/// How a backbone optimizes its weights. The learning rate is not here: the host passes it with
/// every step, from its schedule.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    /// The algorithm.
    pub kind: OptimizerKind,
    /// SGD momentum (0 for plain SGD).
    pub momentum: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// AdamW first-moment decay.
    pub beta1: f64,
    /// AdamW second-moment decay.
    pub beta2: f64,
    /// AdamW denominator epsilon.
    pub eps: f64,
    /// Weight decay for weight matrices and kernels.
    pub weight_decay: f64,
    /// Weight decay for normalization parameters and biases (commonly 0).
    pub norm_bias_weight_decay: f64,
    /// Clip the global L2 norm of the gradients to this value before each update.
    pub clip_grad_norm: ROption<f64>,
    /// Keep an exponential moving average of the weights.
    pub ema: ROption<EmaSpec>,
}

/// What a backbone is created with, besides its own config.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct BackboneContext {
    /// Number of output classes (from the data unless the recipe gives it).
    pub num_classes: u32,
    /// The compute device: `cpu`, `wgpu`, `wgpu:N`, `cuda` or `cuda:N`.
    pub device: RString,
    /// The optimizer to run in [`AbiBackbone::backward_step`].
    pub optimizer: OptimizerSpec,
    /// Seed for weight initialization and any randomness inside the model (dropout).
    pub seed: u64,
}

/// Which copy of the weights an operation uses.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSet {
    /// The weights the optimizer updates.
    Raw,
    /// The exponential moving average (an error when EMA is off).
    Ema,
}

/// The arguments of one backward step.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct StepParams {
    /// Learning rate for this step, from the host's schedule.
    pub lr: f64,
    /// Apply the optimizer after accumulating this gradient; `false` only accumulates
    /// (gradient accumulation over several micro-batches).
    pub apply_update: bool,
}

/// What happened in one backward step.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Whether the optimizer was applied.
    pub applied: bool,
    /// The global gradient L2 norm before clipping, when the update was applied and it was
    /// computed.
    pub grad_norm: ROption<f64>,
}

/// A few facts about a created backbone, for logs and the run summary.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct BackboneSummary {
    /// The device it actually runs on, in words (`cpu (flex, 2 threads)`, `cuda:0 (H100)`).
    pub device: RString,
    /// Number of trainable parameters.
    pub num_parameters: u64,
}

/// How [`AbiBackbone::load_weights`] treats keys that do not fit.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct LoadWeightsOptions {
    /// Fail when any key is missing, unexpected or mis-shaped (after head re-initialization).
    pub strict: bool,
    /// Keep the fresh initialization of a classifier head whose shape differs (another class
    /// count) instead of failing.
    pub reinit_mismatched_head: bool,
}

/// A weight whose shape differs between the file and the model.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ShapeMismatch {
    /// The weight name.
    pub name: RString,
    /// Its shape in the model.
    pub expected: RVec<usize>,
    /// Its shape in the file.
    pub found: RVec<usize>,
}

/// What [`AbiBackbone::load_weights`] did with each key.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct LoadReport {
    /// Number of weights loaded.
    pub loaded: u64,
    /// Model weights the file lacked (left as initialized).
    pub missing: RVec<RString>,
    /// File keys the model has no weight for (ignored).
    pub unexpected: RVec<RString>,
    /// Keys whose shapes differ (not loaded).
    pub mismatched: RVec<ShapeMismatch>,
    /// Head weights left freshly initialized because of a class-count change.
    pub reinitialized: RVec<RString>,
}

/// A learning-rate scale and weight decay for the parameters matching some name patterns (a
/// parameter group, as in PyTorch's optimizers).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ParamGroup {
    /// Name patterns (see [`TuneSpec`]); the group holds the parameters any of them matches.
    pub params: RVec<RString>,
    /// The group's learning rate is the step's times this.
    pub lr_scale: f64,
    /// The group's weight decay, instead of the optimizer's (for every rank).
    pub weight_decay: ROption<f64>,
}

/// Fine-tuning controls (ABI 1.3), applied with the root module's
/// [`tune`](crate::PluginRoot::tune) to a backbone the same plugin created; each call replaces
/// the previous controls.
///
/// Names are the ones [`AbiBackbone::named_weights`] uses (`layer1.0.conv1.weight`). A pattern
/// matches a whole name, `*` standing for any run of characters (dots included), every other
/// character for itself: `conv1.weight`, `layer1.*`, `*.bn1.*`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct TuneSpec {
    /// Freeze rules in order, gitignore-style: a trainable parameter is frozen when the last
    /// pattern matching it is a plain one, and stays trainable when it is a `!` one or none
    /// matches (`["*", "!fc.*"]` freezes all but the head). A frozen parameter gets no gradient,
    /// no optimizer state and no update.
    pub freeze: RVec<RString>,
    /// Parameter groups; a parameter takes the first group matching it, else the optimizer's
    /// own learning rate and weight decay.
    pub groups: RVec<ParamGroup>,
    /// Layer-wise learning-rate decay: the parameters of the `i`th of `n` layers (the model's own
    /// grouping, from the stem to the head) learn at `decay^(n - 1 - i)` times the rate,
    /// multiplied with their group's scale.
    pub layer_decay: ROption<f64>,
    /// Keep normalization statistics frozen: batch normalization layers normalize with their
    /// running statistics and do not update them in training passes (eval mode).
    pub freeze_norm_stats: bool,
}

/// What [`TuneSpec`] selected.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct TuneReport {
    /// Parameter tensors frozen.
    pub frozen: u64,
    /// Parameter tensors left trainable.
    pub trainable: u64,
    /// Trainable elements (the count an optimizer updates).
    pub trainable_elements: u64,
    /// Parameter tensors in each of [`TuneSpec::groups`], in order.
    pub group_sizes: RVec<u64>,
    /// With [`TuneSpec::layer_decay`], the number of layers the model groups its parameters in.
    pub layers: u64,
}

/// The backbone contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::Backbone`] instead.
#[sabi_trait]
pub trait AbiBackbone: Send {
    /// Where it runs and how big it is.
    fn summary(&self) -> RResult<BackboneSummary, PluginError>;

    /// Training forward pass of an `[N, 3, H, W]` batch; returns `[N, classes]` logits and keeps
    /// the autodiff graph for the next [`AbiBackbone::backward_step`].
    fn forward(&mut self, images: TensorRef<'_>) -> RResult<Tensor, PluginError>;

    /// Backpropagates `sum(logits * grad_logits)` through the graph of the last `forward`,
    /// accumulates the gradients, and applies the optimizer when `step.apply_update` is set.
    fn backward_step(
        &mut self,
        grad_logits: TensorRef<'_>,
        step: StepParams,
    ) -> RResult<StepReport, PluginError>;

    /// Inference forward pass (no autodiff, normalization layers in eval mode).
    fn eval_forward(
        &mut self,
        images: TensorRef<'_>,
        weights: WeightSet,
    ) -> RResult<Tensor, PluginError>;

    /// The complete training state (weights, optimizer state, EMA, step count) as bytes, enough
    /// to resume exactly. The host writes it to disk atomically.
    fn save_state(&self) -> RResult<RVec<u8>, PluginError>;

    /// Restores a state written by [`AbiBackbone::save_state`].
    fn load_state(&mut self, state: RSlice<'_, u8>) -> RResult<(), PluginError>;

    /// The weights and buffers in torchvision naming.
    fn named_weights(&self, weights: WeightSet) -> RResult<RVec<NamedTensor>, PluginError>;

    /// Loads weights by name (a PyTorch state dict converted to host tensors), reporting every
    /// key that did not fit.
    fn load_weights(
        &mut self,
        weights: RVec<NamedTensor>,
        options: LoadWeightsOptions,
    ) -> RResult<LoadReport, PluginError>;

    /// The framework-neutral computation graph with the chosen weights, for exporters.
    #[sabi(last_prefix_field)]
    fn graph(&self, weights: WeightSet) -> RResult<ModelGraph, PluginError>;
}

/// An owned backbone object as handed to the host.
pub type BackboneBox = AbiBackbone_TO<'static, RBox<()>>;
