//! Layers with PyTorch's parameter names, layouts and semantics, where Burn's own differ, and
//! the [`ForwardContext`] they run in (training or inference, and the seed of a pass).
//!
//! - [`BatchNorm2d`]: `weight`, `bias`, `running_mean`, `running_var`; the running variance is
//!   updated with the unbiased batch variance, as `torch.nn.BatchNorm2d` does (Burn's uses the
//!   biased one).
//! - [`Linear`]: `weight` is `[out, in]` as in PyTorch (Burn's is `[in, out]`).
//! - [`dropout`]: masks drawn from the pass's seed, so a resumed run draws the same ones.
//! - [`conv2d`]: `Conv2d::forward`, except that a strided 1x1 convolution (a ResNet projection
//!   shortcut) runs as a subsampling followed by a stride-1 convolution. Burn 0.21's cubecl
//!   backends (wgpu, CUDA) compute the input gradient of a convolution whose kernel is smaller
//!   than its stride wrong (the direct transposed-convolution kernel of burn-cubecl visits no
//!   input row when `kernel * dilation < stride`), which made every layer below the first
//!   projection shortcut train on wrong gradients there. The rewrite is exact and uses only
//!   operations whose gradients agree on every backend (`tests/backend_ops.rs`).
//!
//! On the LibTorch backend (feature `libtorch`), [`BatchNorm2d`], [`conv2d`] and [`relu`] run
//! ATen's fused kernels forward and backward (the `libtorch` module's `fused` submodule), and on
//! Burn's flex backend (the `cpu` device) these and [`max_pool2d`] run the kit's own CPU kernels
//! ([`clshost_cpu_kernels`], through the `fused` module's `flex`), with the same semantics.
//! Models should call these rather than Burn's `Conv2d::forward`, `activation::relu` and
//! `module::max_pool2d` to get them, and to get mixed precision ([`precision`]): under
//! `trainer.precision: bf16`, [`conv2d`] and [`Linear`] compute in bfloat16.

use burn::module::{Module, Param, RunningState};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d as conv2d_op;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{DType, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fused::flex;
use crate::precision;

/// How a forward pass runs: training or inference, and the seed of its randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardContext {
    /// Training mode: normalization uses batch statistics and updates running ones, dropout is on.
    pub train: bool,
    /// Normalization layers stay in eval mode even in training mode: they normalize with their
    /// running statistics and leave them unchanged (fine-tuning with frozen statistics).
    pub frozen_norm: bool,
    /// Seed for this pass's randomness (dropout masks), derived from the backbone seed and the
    /// number of training passes so far, so a resumed run draws the same masks.
    pub seed: u64,
}

impl ForwardContext {
    /// Inference mode.
    pub const EVAL: ForwardContext = ForwardContext {
        train: false,
        frozen_norm: false,
        seed: 0,
    };

    /// Whether normalization layers use and update batch statistics in this pass.
    pub fn norm_train(&self) -> bool {
        self.train && !self.frozen_norm
    }

    /// A random generator for one use (`stream`) inside this pass; distinct streams are
    /// independent.
    pub fn rng(&self, stream: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        rng
    }
}

/// 2-D batch normalization over the channels of `[N, C, H, W]`, as `torch.nn.BatchNorm2d`.
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    /// Scale, `[C]` (PyTorch `weight`).
    pub weight: Param<Tensor<B, 1>>,
    /// Shift, `[C]` (PyTorch `bias`).
    pub bias: Param<Tensor<B, 1>>,
    /// Running mean, `[C]`.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Weight of the newest batch in the running statistics (PyTorch's default 0.1).
    pub momentum: f64,
    /// Added to the variance before the square root (PyTorch's default 1e-5).
    pub eps: f64,
}

impl<B: Backend> BatchNorm2d<B> {
    /// A layer over `channels` with PyTorch's initialization (scale 1, shift 0, mean 0, var 1).
    pub fn new(channels: usize, device: &B::Device) -> Self {
        BatchNorm2d {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Replaces the running statistics by those of this training pass.
    fn store_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>) {
        self.running_mean.update(mean);
        self.running_var.update(var);
        // `update` parks the value per thread until the next read; merge it now so that
        // visitors (named weights, checkpoints, EMA) see the statistics of this pass.
        self.running_mean.value_sync();
        self.running_var.value_sync();
    }

    /// Moves the running statistics towards a training pass's batch `mean` and biased `var`
    /// over `count` elements per channel, as `torch.nn.BatchNorm2d` does:
    /// `(1 - momentum) * running + momentum * batch`, the variance made unbiased.
    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>, count: usize) {
        let unbiased = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let m = self.momentum;
        let running_mean = self
            .running_mean
            .value_sync()
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m));
        let running_var = self
            .running_var
            .value_sync()
            .mul_scalar(1.0 - m)
            .add(var.detach().mul_scalar(m * unbiased));
        self.store_running(running_mean.detach(), running_var.detach());
    }

    /// Normalizes `x`; in training mode with the batch statistics (and updates the running
    /// ones), otherwise (and with frozen statistics) with the running statistics.
    pub fn forward(&self, x: Tensor<B, 4>, ctx: &ForwardContext) -> Tensor<B, 4> {
        #[cfg(feature = "libtorch")]
        {
            use crate::libtorch::fused;
            if ctx.norm_train() && fused::training::<B>() {
                let running = (
                    self.running_mean.value_sync(),
                    self.running_var.value_sync(),
                );
                let out = fused::batch_norm(
                    x,
                    self.weight.val(),
                    self.bias.val(),
                    running,
                    self.momentum,
                    self.eps,
                );
                self.store_running(out.running_mean, out.running_var);
                return out.output;
            }
            if !ctx.norm_train() && fused::inference::<B>() {
                let running = (self.running_mean.value(), self.running_var.value());
                return fused::batch_norm_eval(
                    x,
                    self.weight.val(),
                    self.bias.val(),
                    running,
                    self.eps,
                );
            }
        }
        if x.dtype() == DType::F32 {
            if ctx.norm_train() && flex::training::<B>() {
                let [n, _, h, w] = x.dims();
                let (weight, bias) = (self.weight.val(), self.bias.val());
                let (out, mean, var) = flex::batch_norm(x, weight, bias, self.eps);
                self.update_running(mean, var, n * h * w);
                return out;
            }
            if !ctx.norm_train() && flex::inference::<B>() {
                let running = (self.running_mean.value(), self.running_var.value());
                let (weight, bias) = (self.weight.val(), self.bias.val());
                return flex::batch_norm_eval(x, weight, bias, running, self.eps);
            }
        }
        let [n, c, h, w] = x.dims();
        let (mean, var) = if ctx.norm_train() {
            let count = n * h * w;
            let flat = x.clone().swap_dims(0, 1).reshape([c, count]);
            let mean = flat.clone().mean_dim(1).reshape([c]);
            let centered = flat.sub(mean.clone().reshape([c, 1]));
            let var = centered.square().mean_dim(1).reshape([c]);
            self.update_running(mean.clone(), var.clone(), count);
            (mean, var)
        } else {
            (self.running_mean.value(), self.running_var.value())
        };
        let scale = self.weight.val().div(var.add_scalar(self.eps).sqrt());
        let shift = self.bias.val().sub(mean.mul(scale.clone()));
        x.mul(scale.reshape([1, c, 1, 1]))
            .add(shift.reshape([1, c, 1, 1]))
    }
}

/// A fully connected layer `y = x W^T + b` with `W` as `[out, in]`, as `torch.nn.Linear`.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// Weight, `[out, in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// Bias, `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Linear<B> {
    /// A zero-initialized layer (the kit sets the initial values).
    pub fn new(inputs: usize, outputs: usize, device: &B::Device) -> Self {
        Linear {
            weight: Param::from_tensor(Tensor::zeros([outputs, inputs], device)),
            bias: Param::from_tensor(Tensor::zeros([outputs], device)),
        }
    }

    /// Applies the layer to `[N, in]`; in bfloat16 under mixed precision ([`precision`]).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let outputs = self.bias.dims()[0];
        let weight = precision::lower(self.weight.val());
        let bias = precision::lower(self.bias.val());
        precision::lower(x)
            .matmul(weight.transpose())
            .add(bias.reshape([1, outputs]))
    }
}

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)` in training
/// mode (as `torch.nn.functional.dropout`); the identity otherwise. `stream` tells apart several
/// dropouts in one model.
pub fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    p: f64,
    ctx: &ForwardContext,
    stream: u64,
) -> Tensor<B, D> {
    if !ctx.train || p <= 0.0 {
        return x;
    }
    let shape = x.shape();
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut rng = ctx.rng(stream);
    let mask: Vec<f32> = (0..shape.num_elements())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
        .collect();
    let mut mask = Tensor::<B, D>::from_data(TensorData::new(mask, shape), &x.device());
    if mask.dtype() != x.dtype() {
        // Under mixed precision, a float32 mask would promote the bfloat16 activations.
        mask = mask.cast(x.dtype());
    }
    x.mul(mask)
}

/// `max(x, 0)`, as `burn::tensor::activation::relu`; when training on the LibTorch backend one
/// ATen pass each way (`relu`, and `threshold_backward` for the gradient) instead of Burn's
/// three, and on flex (`cpu`) one pass of the kit's CPU kernels each way.
pub fn relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "libtorch")]
    if crate::libtorch::fused::training::<B>() {
        return crate::libtorch::fused::relu(x);
    }
    if flex::training::<B>() && x.dtype() == DType::F32 {
        return flex::relu(x);
    }
    burn::tensor::activation::relu(x)
}

/// 2-D max pooling of `[N, C, H, W]`, as `burn::tensor::module::max_pool2d` (same arguments);
/// on flex (`cpu`) without `ceil_mode`, one pass each way of the kit's CPU kernels, with ATen's
/// rules (the first maximum in a window wins a tie, a NaN wins over any number).
pub fn max_pool2d<B: Backend>(
    x: Tensor<B, 4>,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Tensor<B, 4> {
    if !ceil_mode && flex::applies::<B>(x.dtype()) {
        return flex::max_pool2d(x, [kernel_size, stride, padding, dilation]);
    }
    burn::tensor::module::max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
}

/// Applies `conv` to `[N, C, H, W]` as [`Conv2d::forward`] does; a 1x1 convolution with stride
/// `s > 1`, no padding, no dilation and one group runs as `x[:, :, ::s, ::s]` followed by a
/// stride-1 convolution, the same function, to avoid Burn 0.21's wrong input gradient of strided
/// 1x1 convolutions on wgpu and CUDA (see the module documentation). A convolution with
/// symmetric padding runs as one fused node instead on the LibTorch backend (ATen's kernels) and,
/// with one group, on flex (`cpu`; the kit's CPU kernels).
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let symmetric = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    let options =
        symmetric.map(|padding| ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups));
    #[cfg(feature = "libtorch")]
    {
        use crate::libtorch::fused;
        let on_libtorch = fused::training::<B>() || fused::inference::<B>();
        if let Some(options) = options.clone().filter(|_| on_libtorch) {
            let x = precision::lower(x);
            let weight = precision::lower(conv.weight.val());
            let bias = conv.bias.as_ref().map(|b| precision::lower(b.val()));
            return if fused::training::<B>() {
                fused::conv2d(x, weight, bias, options)
            } else {
                conv2d_op(x, weight, bias, options)
            };
        }
    }
    if let Some(options) =
        options.filter(|o| flex::applies::<B>(x.dtype()) && flex::conv_applies(o))
    {
        let bias = conv.bias.as_ref().map(|b| b.val());
        return flex::conv2d(x, conv.weight.val(), bias, &options);
    }
    let unpadded = matches!(conv.padding, PaddingConfig2d::Valid)
        || matches!(conv.padding, PaddingConfig2d::Explicit(0, 0, 0, 0));
    let [sh, sw] = conv.stride;
    if conv.kernel_size != [1, 1]
        || conv.stride == [1, 1]
        || conv.dilation != [1, 1]
        || conv.groups != 1
        || !unpadded
    {
        return conv.forward(x);
    }
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h.div_ceil(sh), w.div_ceil(sw));
    let (ph, pw) = (oh * sh - h, ow * sw - w);
    let x = if ph + pw > 0 {
        x.pad([(0, ph), (0, pw)], PadMode::Constant(0.0))
    } else {
        x
    };
    let sub = x
        .reshape([n, c, oh, sh, ow, sw])
        .narrow(3, 0, 1)
        .narrow(5, 0, 1)
        .reshape([n, c, oh, ow]);
    conv2d_op(
        sub,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    )
}
