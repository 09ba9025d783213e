//! SGD and AdamW with PyTorch's update rules, a weight-decay split between weights and
//! normalization/bias parameters, and global-norm gradient clipping.
//!
//! Written here rather than taken from `burn-optim` because Burn's optimizers apply one weight
//! decay to every parameter, clip each gradient on its own instead of by the global norm, and
//! keep their state keyed by parameter ids that change between runs; this one keys its state by
//! weight name, which makes checkpoints portable and resumes exact.
//!
//! [`Optimizer::step`] runs the rules as tensor expressions on every backend but two: on
//! LibTorch, ATen's fused multi-tensor kernels update the parameters and their state in place
//! (the `libtorch` module's `optim` submodule); on flex (the `cpu` device), the kit's CPU
//! kernels compute the same expressions in one pass over each parameter (`fused::flex::optim`).

use std::collections::HashMap;

use burn::tensor::ElementConversion;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use clshost_plugin_api::{OptimizerKind, OptimizerSpec, PluginError};

/// The optimizer state of one parameter.
#[derive(Debug, Clone)]
pub struct ParamState<B: Backend> {
    /// Number of updates applied to this parameter.
    pub step: u64,
    /// SGD momentum buffer (`momentum_buffer` in PyTorch), or AdamW first moment (`exp_avg`).
    pub first: Option<Tensor<B, 1>>,
    /// AdamW second moment (`exp_avg_sq`).
    pub second: Option<Tensor<B, 1>>,
}

/// The learning rate and weight decay of one parameter in a parameter group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The parameter's learning rate is the step's times this.
    pub lr_scale: f64,
    /// Its weight decay, instead of the spec's.
    pub weight_decay: Option<f64>,
}

/// An optimizer over named, flattened parameters.
#[derive(Debug, Clone)]
pub struct Optimizer<B: Backend> {
    spec: OptimizerSpec,
    /// Per-parameter state by weight name.
    pub state: HashMap<String, ParamState<B>>,
    /// Parameters with their own rate (parameter groups, layer-wise decay), by name; the others
    /// use the step's learning rate and the spec's weight decay.
    pub rates: HashMap<String, Rate>,
}

/// One parameter for [`Optimizer::step`].
#[derive(Debug, Clone)]
pub struct Update<B: Backend> {
    /// Its weight name.
    pub name: String,
    /// Its number of dimensions in the module (it decides the weight decay).
    pub rank: usize,
    /// Its value, flattened.
    pub param: Tensor<B, 1>,
    /// Its gradient, flattened.
    pub grad: Tensor<B, 1>,
}

/// Checks an optimizer spec's values.
pub fn check_spec(spec: &OptimizerSpec) -> Result<(), PluginError> {
    let in_unit = |v: f64| (0.0..1.0).contains(&v);
    if !(spec.momentum >= 0.0 && spec.momentum < 1.0) {
        return Err(PluginError::config(
            "optimizer.momentum",
            "must be in [0, 1)",
        ));
    }
    if spec.nesterov && spec.momentum <= 0.0 {
        return Err(PluginError::config(
            "optimizer.nesterov",
            "needs a momentum above 0",
        ));
    }
    if spec.kind == OptimizerKind::AdamW && !(in_unit(spec.beta1) && in_unit(spec.beta2)) {
        return Err(PluginError::config("optimizer.betas", "must be in [0, 1)"));
    }
    if spec.kind == OptimizerKind::AdamW && (spec.eps.is_nan() || spec.eps <= 0.0) {
        return Err(PluginError::config("optimizer.eps", "must be above 0"));
    }
    if !(spec.weight_decay >= 0.0 && spec.norm_bias_weight_decay >= 0.0) {
        return Err(PluginError::config(
            "optimizer.weight_decay",
            "must be 0 or more",
        ));
    }
    if let Some(max) = spec.clip_grad_norm.into_option()
        && (max.is_nan() || max <= 0.0)
    {
        return Err(PluginError::config(
            "optimizer.clip_grad_norm",
            "must be above 0",
        ));
    }
    if let Some(ema) = spec.ema.into_option() {
        if !(ema.decay >= 0.0 && ema.decay < 1.0) {
            return Err(PluginError::config(
                "optimizer.ema.decay",
                "must be in [0, 1)",
            ));
        }
        if ema.update_interval == 0 {
            return Err(PluginError::config(
                "optimizer.ema.update_interval",
                "must be 1 or more",
            ));
        }
    }
    Ok(())
}

impl<B: Backend> Optimizer<B> {
    /// A fresh optimizer; `spec` should have passed [`check_spec`].
    pub fn new(spec: OptimizerSpec) -> Self {
        Optimizer {
            spec,
            state: HashMap::new(),
            rates: HashMap::new(),
        }
    }

    /// The spec it runs.
    pub fn spec(&self) -> &OptimizerSpec {
        &self.spec
    }

    /// The weight decay of a parameter of `rank` dimensions: tensors of rank 1 or less are
    /// normalization parameters and biases.
    pub fn weight_decay(&self, rank: usize) -> f64 {
        if rank <= 1 {
            self.spec.norm_bias_weight_decay
        } else {
            self.spec.weight_decay
        }
    }

    /// The learning rate and weight decay of parameter `name` (of `rank` dimensions) in a step
    /// with learning rate `lr`: scaled (and with the weight decay) of the parameter's [`Rate`]
    /// when it has one, as a PyTorch parameter group's.
    pub fn rate(&self, name: &str, rank: usize, lr: f64) -> (f64, f64) {
        match self.rates.get(name) {
            Some(rate) => (
                lr * rate.lr_scale,
                rate.weight_decay.unwrap_or(self.weight_decay(rank)),
            ),
            None => (lr, self.weight_decay(rank)),
        }
    }

    /// The learning rate and weight decay of parameter `name` (of `rank` dimensions) in a step
    /// with learning rate `lr`, and its state with this step counted.
    pub(crate) fn begin(
        &mut self,
        name: &str,
        rank: usize,
        lr: f64,
    ) -> (f64, f64, &mut ParamState<B>) {
        let (lr, wd) = self.rate(name, rank, lr);
        let state = self.state.entry(name.to_string()).or_insert(ParamState {
            step: 0,
            first: None,
            second: None,
        });
        state.step += 1;
        (lr, wd, state)
    }

    /// One optimizer step with learning rate `lr` over `updates`: their updated values, by
    /// name, in the same order.
    ///
    /// On the LibTorch backend ATen's fused kernels update each parameter in place when nothing
    /// but `param` and the module parameter it was read from (which the caller then replaces by
    /// the result) holds its memory, and a copy of it otherwise; on flex the CPU kernels compute
    /// [`Optimizer::update`]'s expressions in one pass (the same bits); other backends compute
    /// the expressions.
    pub fn step(
        &mut self,
        updates: Vec<Update<B>>,
        lr: f64,
    ) -> Result<Vec<(String, Tensor<B, 1>)>, PluginError> {
        #[cfg(feature = "libtorch")]
        if crate::libtorch::optim::applies::<B>() {
            return crate::libtorch::optim::step(self, updates, lr);
        }
        if crate::fused::flex::optim::applies::<B>() {
            return Ok(crate::fused::flex::optim::step(self, updates, lr));
        }
        Ok(updates
            .into_iter()
            .map(|u| {
                let value = self.update(&u.name, u.rank, u.param, u.grad, lr);
                (u.name, value)
            })
            .collect())
    }

    /// The updated value of parameter `name` (of `rank` dimensions) from its gradient, as one
    /// `torch.optim.SGD` / `torch.optim.AdamW` step with learning rate `lr` at the parameter's
    /// [`Optimizer::rate`], computed as tensor expressions on any backend.
    pub fn update(
        &mut self,
        name: &str,
        rank: usize,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        lr: f64,
    ) -> Tensor<B, 1> {
        let spec = self.spec;
        let (lr, wd, state) = self.begin(name, rank, lr);
        match spec.kind {
            OptimizerKind::Sgd => {
                let mut d = if wd != 0.0 {
                    grad.add(param.clone().mul_scalar(wd))
                } else {
                    grad
                };
                if spec.momentum != 0.0 {
                    let buf = match state.first.take() {
                        Some(buf) => buf.mul_scalar(spec.momentum).add(d.clone()),
                        None => d.clone(),
                    };
                    d = if spec.nesterov {
                        d.add(buf.clone().mul_scalar(spec.momentum))
                    } else {
                        buf.clone()
                    };
                    state.first = Some(buf);
                }
                param.sub(d.mul_scalar(lr))
            }
            OptimizerKind::AdamW => {
                let param = if wd != 0.0 {
                    param.mul_scalar(1.0 - lr * wd)
                } else {
                    param
                };
                let (b1, b2) = (spec.beta1, spec.beta2);
                let m = match state.first.take() {
                    Some(m) => m.mul_scalar(b1).add(grad.clone().mul_scalar(1.0 - b1)),
                    None => grad.clone().mul_scalar(1.0 - b1),
                };
                let v = match state.second.take() {
                    Some(v) => v.mul_scalar(b2).add(grad.square().mul_scalar(1.0 - b2)),
                    None => grad.square().mul_scalar(1.0 - b2),
                };
                let t = state.step as i32;
                let bias1 = 1.0 - b1.powi(t);
                let bias2_sqrt = (1.0 - b2.powi(t)).sqrt();
                let denom = v.clone().sqrt().div_scalar(bias2_sqrt).add_scalar(spec.eps);
                let update = m.clone().div(denom).mul_scalar(lr / bias1);
                state.first = Some(m);
                state.second = Some(v);
                param.sub(update)
            }
        }
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` (coefficient `max_norm / (norm + 1e-6)`, capped at 1).
/// Returns the norm before clipping.
pub fn clip_global_norm<B: Backend>(grads: &mut [(String, Tensor<B, 1>)], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (_, g) in grads.iter_mut() {
            *g = g.clone().mul_scalar(coef);
        }
    }
    norm
}

/// The L2 norm of all gradients together.
pub fn global_norm<B: Backend>(grads: &[(String, Tensor<B, 1>)]) -> f64 {
    let squares: Vec<Tensor<B, 1>> = grads
        .iter()
        .map(|(_, g)| g.clone().square().sum())
        .collect();
    if squares.is_empty() {
        return 0.0;
    }
    let total: f64 = Tensor::cat(squares, 0).sum().into_scalar().elem();
    total.sqrt()
}
