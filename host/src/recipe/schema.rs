//! The recipe schema: every field a recipe may set, its type and its default.
//!
//! Every struct denies unknown fields and takes defaults for omitted ones, so a recipe only
//! writes what differs from the defaults, and a typo is an error with the closest valid name.
//! Fields that have no sensible default (`data.root`, `model.name`, `loss.name`) are checked by
//! validation instead. `docs/recipes.md` documents each field; keep the two in step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A whole experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    /// Another recipe this one inherits from (resolved away before deserialization).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The experiment's name; the run directory is `<output>/<name>/<timestamp>`.
    pub name: String,
    /// Seed for weights, shuffling, augmentation and splits.
    pub seed: u64,
    /// The dataset and its loading.
    pub data: Data,
    /// The backbone.
    pub model: Model,
    /// Sample augmentations, in order.
    pub augment: Vec<Component>,
    /// Batch augmentations (MixUp, CutMix).
    pub batch_augment: BatchAugment,
    /// The loss.
    pub loss: Component,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// The training loop.
    pub trainer: Trainer,
    /// Metrics computed at each evaluation.
    pub metrics: Vec<Component>,
    /// Exporters run at the end.
    pub export: Vec<Component>,
    /// Experiment trackers the run's events are sent to.
    pub loggers: Vec<Component>,
    /// Extra plugin files or directories, relative to the recipe file.
    pub plugins: Vec<PathBuf>,
    /// The runs directory.
    pub output: PathBuf,
}

/// A component reference: a name resolved against the loaded plugins, and its params, which
/// the plugin parses and validates.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Component {
    /// The component name, as `clshost plugins` lists it.
    pub name: String,
    /// The params, as RON text (filled from the document, not by serde).
    #[serde(skip)]
    pub params: String,
}

/// Where the images are and how they are read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Data {
    /// The ImageFolder root, relative to the working directory.
    pub root: PathBuf,
    /// Training sub-folder of `root`.
    pub train_dir: String,
    /// Validation sub-folder of `root`; ignored when `val_split` is set.
    pub val_dir: String,
    /// Hold out this fraction of `train_dir`, stratified and seeded, instead of using `val_dir`.
    pub val_split: Option<f64>,
    /// Training input size, `(height, width)`.
    pub image_size: (u32, u32),
    /// Evaluation: resize the shorter side to this, then center-crop to `eval_crop`.
    pub eval_resize: u32,
    /// Evaluation crop size, `(height, width)`.
    pub eval_crop: (u32, u32),
    /// Per-channel normalization mean (0..1 scale).
    pub mean: (f32, f32, f32),
    /// Per-channel normalization standard deviation (0..1 scale).
    pub std: (f32, f32, f32),
    /// Training batch size.
    pub batch_size: u32,
    /// Evaluation batch size; defaults to `batch_size`.
    pub eval_batch_size: Option<u32>,
    /// Decoding worker threads; defaults to the number of cores.
    pub workers: Option<u32>,
    /// Keep decoded images in memory (small datasets).
    pub cache: bool,
    /// What to do with an unreadable image.
    pub on_error: OnError,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            root: PathBuf::new(),
            train_dir: "train".into(),
            val_dir: "val".into(),
            val_split: None,
            image_size: (224, 224),
            eval_resize: 256,
            eval_crop: (224, 224),
            mean: (0.485, 0.456, 0.406),
            std: (0.229, 0.224, 0.225),
            batch_size: 64,
            eval_batch_size: None,
            workers: None,
            cache: false,
            on_error: OnError::Skip,
        }
    }
}

/// What to do with a file that cannot be decoded: the recipe's `data.on_error`, and the data
/// stage's setting for commands without a recipe.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Skip it, warn once with its path, count it in the summary.
    #[default]
    Skip,
    /// Stop the run naming the file.
    Fail,
}

/// The backbone and its initialization.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Model {
    /// The backbone component name.
    pub name: String,
    /// The backbone's params (RON, filled from the document).
    #[serde(skip)]
    pub params: String,
    /// Number of classes; defaults to the number of class folders.
    pub num_classes: Option<u32>,
    /// Initial weights, as a weight source (docs/finetuning.md): `torchvision:<arch>.<TAG>`, an
    /// `https://`, `http://` or `file://` URL, or a path to a clshost checkpoint, a
    /// `.safetensors` file or a PyTorch `.pth` state dict.
    pub weights: Option<String>,
    /// Parameters to freeze, as name patterns in order (`*` any characters; `!` keeps what an
    /// earlier pattern froze trainable): `["*", "!fc.*"]` trains only the head.
    pub freeze: Vec<String>,
    /// Epochs trained with `freeze` applied; from then on every parameter trains.
    pub unfreeze_epoch: Option<u32>,
    /// Keep BatchNorm statistics as loaded: normalization layers stay in eval mode in training.
    pub freeze_bn_stats: bool,
}

/// Batch augmentation policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchAugment {
    /// Probability that a batch is augmented at all.
    pub prob: f64,
    /// With two entries: probability of using the second instead of the first (timm's
    /// `switch_prob` between MixUp and CutMix).
    pub switch_prob: f64,
    /// Batch augmentation stops from this epoch on (0-based); `None`: never.
    pub stop_epoch: Option<u32>,
    /// The batch augmentations.
    pub entries: Vec<BatchEntry>,
}

impl Default for BatchAugment {
    fn default() -> Self {
        BatchAugment {
            prob: 1.0,
            switch_prob: 0.5,
            stop_epoch: None,
            entries: Vec::new(),
        }
    }
}

/// One batch augmentation with its own probability.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchEntry {
    /// The component name.
    pub name: String,
    /// The params (RON, filled from the document).
    #[serde(skip)]
    pub params: String,
    /// Probability of applying it when it is the one chosen for a batch.
    pub prob: f64,
}

impl Default for BatchEntry {
    fn default() -> Self {
        BatchEntry {
            name: String::new(),
            params: String::new(),
            prob: 1.0,
        }
    }
}

/// Optimizer algorithm.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    /// SGD with momentum (PyTorch's, dampening 0).
    #[default]
    Sgd,
    /// AdamW (PyTorch's).
    Adamw,
}

/// The optimizer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Optimizer {
    /// The algorithm.
    pub name: OptimizerName,
    /// Peak learning rate (before batch-size scaling).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// AdamW betas.
    pub betas: (f64, f64),
    /// AdamW epsilon.
    pub eps: f64,
    /// Weight decay of weights.
    pub weight_decay: f64,
    /// Weight decay of normalization parameters and biases.
    pub norm_bias_weight_decay: f64,
    /// Parameter groups: a learning-rate scale and weight decay for the parameters matching
    /// name patterns (the first group matching a parameter applies).
    pub param_groups: Vec<ParamGroup>,
    /// Layer-wise learning-rate decay: each layer learns at this times the next one's rate, the
    /// head at the full rate.
    pub layer_decay: Option<f64>,
}

/// A parameter group of the optimizer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParamGroup {
    /// Name patterns of the group's parameters.
    pub params: Vec<String>,
    /// The group learns at this times the schedule's learning rate.
    pub lr_scale: f64,
    /// The group's weight decay (every rank), instead of the optimizer's.
    pub weight_decay: Option<f64>,
}

impl Default for ParamGroup {
    fn default() -> Self {
        ParamGroup {
            params: Vec::new(),
            lr_scale: 1.0,
            weight_decay: None,
        }
    }
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer {
            name: OptimizerName::Sgd,
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-4,
            norm_bias_weight_decay: 0.0,
            param_groups: Vec::new(),
            layer_decay: None,
        }
    }
}

/// Learning-rate schedule shape after warmup.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleName {
    /// Cosine decay to `min_lr`.
    #[default]
    Cosine,
    /// Multiply by `gamma` every `step_epochs`.
    Step,
    /// Multiply by `gamma` at each of `milestones`.
    Multistep,
    /// Constant.
    Constant,
}

/// The learning-rate schedule, stepped every iteration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    /// Shape after warmup.
    pub name: ScheduleName,
    /// Linear warmup length in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// Warmup starts at `lr * warmup_start_factor`.
    pub warmup_start_factor: f64,
    /// Cosine floor.
    pub min_lr: f64,
    /// Step schedule period in epochs.
    pub step_epochs: u32,
    /// Multistep epochs.
    pub milestones: Vec<u32>,
    /// Step and multistep factor.
    pub gamma: f64,
    /// Scale `lr` by `batch_size / scale_lr_batch_size` (the linear scaling rule).
    pub scale_lr_batch_size: Option<u32>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            name: ScheduleName::Cosine,
            warmup_epochs: 0.0,
            warmup_start_factor: 0.1,
            min_lr: 0.0,
            step_epochs: 30,
            milestones: Vec::new(),
            gamma: 0.1,
            scale_lr_batch_size: None,
        }
    }
}

/// Exponential moving average of the weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ema {
    /// Decay per update.
    pub decay: f64,
    /// Update every this many optimizer steps.
    pub interval: u32,
    /// Ramp the decay up over the first updates.
    pub warmup: bool,
}

impl Default for Ema {
    fn default() -> Self {
        Ema {
            decay: 0.9998,
            interval: 1,
            warmup: true,
        }
    }
}

/// Direction of a monitored metric.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// From the metric's own declaration.
    #[default]
    Auto,
    /// Larger is better.
    Max,
    /// Smaller is better.
    Min,
}

/// The precision the backbone computes in.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    Fp32,
    /// Mixed precision: float32 weights and optimizer, bfloat16 convolutions and matrix
    /// products (as `torch.autocast(dtype=torch.bfloat16)`); plugin ABI 1.6, and in the
    /// first-party plugins the LibTorch backend.
    Bf16,
}

impl Precision {
    /// The name recipes and plugins use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Early stopping on the monitored metric.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStopping {
    /// Evaluations without improvement before stopping.
    pub patience: u32,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            patience: 10,
            min_delta: 0.0,
        }
    }
}

/// Which checkpoints to keep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Checkpoints {
    /// Write `last` after every epoch.
    pub last: bool,
    /// Write `best` when the monitored metric improves.
    pub best: bool,
    /// Also keep the best this-many checkpoints by the monitored metric (0: none).
    pub top_k: u32,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints {
            last: true,
            best: true,
            top_k: 0,
        }
    }
}

/// The training loop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Trainer {
    /// Number of epochs.
    pub epochs: u32,
    /// Compute device: `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`, `libtorch:cpu`,
    /// `libtorch:cuda[:N]`.
    pub device: String,
    /// The precision the backbone computes in: `fp32` or `bf16` (mixed precision).
    pub precision: Precision,
    /// Clip the global gradient norm to this.
    pub clip_grad_norm: Option<f64>,
    /// Accumulate gradients over this many batches per optimizer step.
    pub accumulate: u32,
    /// Keep an EMA of the weights and evaluate it too.
    pub ema: Option<Ema>,
    /// The metric scalar that picks the best checkpoint and drives early stopping.
    pub monitor: String,
    /// Direction of `monitor`.
    pub mode: Mode,
    /// Stop when `monitor` stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Which checkpoints to write.
    pub checkpoints: Checkpoints,
    /// Evaluate every this many epochs.
    pub eval_interval: u32,
    /// Log every this many steps.
    pub log_interval: u32,
    /// Stop (after the current epoch, saving `last`) once this many minutes have passed.
    pub max_time_minutes: Option<f64>,
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer {
            epochs: 90,
            device: "cpu".into(),
            precision: Precision::Fp32,
            clip_grad_norm: None,
            accumulate: 1,
            ema: None,
            monitor: "top1".into(),
            mode: Mode::Auto,
            early_stopping: None,
            checkpoints: Checkpoints::default(),
            eval_interval: 1,
            log_interval: 50,
            max_time_minutes: None,
        }
    }
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            base: None,
            name: String::new(),
            seed: 0,
            data: Data::default(),
            model: Model::default(),
            augment: Vec::new(),
            batch_augment: BatchAugment::default(),
            loss: Component::default(),
            optimizer: Optimizer::default(),
            schedule: Schedule::default(),
            trainer: Trainer::default(),
            metrics: Vec::new(),
            export: Vec::new(),
            loggers: Vec::new(),
            plugins: Vec::new(),
            output: PathBuf::from("runs"),
        }
    }
}
