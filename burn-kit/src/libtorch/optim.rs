//! The optimizer step on the LibTorch backend: ATen's fused multi-tensor SGD and AdamW kernels
//! (what `torch.optim.SGD(fused=True)` and `AdamW(fused=True)` run) update the parameters and
//! their momentum buffers or moments in place, in one pass over each tensor.
//!
//! The generic rules ([`Optimizer::update`]) are Burn tensor expressions: for SGD with momentum
//! and weight decay that is six passes over every parameter and three new tensors of its size per
//! step, where the fused kernel makes one pass and allocates nothing (`torch.optim.SGD`'s default
//! per-tensor loop, which `scripts/bench/train_torch.py` runs, makes four passes).
//!
//! Burn's tensors are values: a tensor whose memory another tensor shares (burn-tch counts the
//! sharers of each storage) must keep its elements. A parameter is updated in place only when
//! nothing but the [`Update`] and the module parameter it was read from hold its memory, and
//! otherwise on a copy; the caller gives the module the result either way. After the first step
//! (and once after each refresh of the evaluation copy, which shares the weights) every
//! parameter of a training session is its module's alone.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_tch::{LibTorch, Storage, TchTensor};
use clshost_plugin_api::{OptimizerKind, OptimizerSpec, PluginError};
use tch::Kind;

use super::aten;
use super::fused::inference;
use crate::fused::{primitive, tensor};
use crate::optim::{Optimizer, ParamState, Update};

/// Whether `B` is the LibTorch backend, whose steps run here.
pub(crate) fn applies<B: Backend>() -> bool {
    inference::<B>()
}

/// `t` when at most `holders` tensors share its memory and it is dense, else a copy of it that
/// only the returned tensor holds: a tensor the fused kernels may write.
fn writable(t: TchTensor, holders: usize) -> TchTensor {
    let alone = matches!(&t.storage,
        Storage::Owned { buffer_ref } if Arc::strong_count(buffer_ref) <= holders);
    if alone && t.tensor.is_contiguous() {
        t
    } else {
        copy(&t.tensor)
    }
}

/// `t` when it is dense, else a dense copy: a tensor the fused kernels may read.
fn dense(t: TchTensor) -> TchTensor {
    if t.tensor.is_contiguous() {
        t
    } else {
        copy(&t.tensor)
    }
}

/// A dense copy of `t`.
fn copy(t: &tch::Tensor) -> TchTensor {
    let mut copy = tch::Tensor::empty(t.size(), (t.kind(), t.device()));
    copy.copy_(t);
    TchTensor::new(copy)
}

/// A new tensor of `like`'s shape, kind and device, filled with zeros.
fn zeros(like: &TchTensor) -> TchTensor {
    TchTensor::new(like.tensor.zeros_like())
}

/// The LibTorch tensor behind `t` (`B` is LibTorch, [`applies`]).
fn unwrap<B: Backend>(t: Tensor<B, 1>) -> TchTensor {
    primitive::<LibTorch, B, 1>(t)
}

/// `t` as a tensor of `B` (which is LibTorch).
fn wrap<B: Backend>(t: TchTensor) -> Tensor<B, 1> {
    tensor::<B, LibTorch, 1>(t)
}

/// What sets the parameters of one kernel call apart, besides the learning rate and weight
/// decay.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    /// SGD: whether the momentum buffers are new (the step fills them with the gradients).
    Sgd { fresh: bool },
    /// AdamW: the step count, bias corrections included.
    AdamW { step: u64 },
}

/// One parameter of a step, ready for the kernels.
struct Job {
    /// Its place in the step's updates.
    index: usize,
    name: String,
    /// Its step count, this step included.
    step: u64,
    param: TchTensor,
    grad: TchTensor,
    /// SGD's momentum buffer, or AdamW's first moment.
    first: Option<TchTensor>,
    /// AdamW's second moment.
    second: Option<TchTensor>,
}

/// Parameters that one kernel call updates.
struct Group {
    lr: f64,
    weight_decay: f64,
    kernel: Kernel,
    jobs: Vec<Job>,
}

/// [`Optimizer::step`] on the LibTorch backend (`B` is LibTorch, [`applies`]).
pub(crate) fn step<B: Backend>(
    optim: &mut Optimizer<B>,
    updates: Vec<Update<B>>,
    lr: f64,
) -> Result<Vec<(String, Tensor<B, 1>)>, PluginError> {
    let spec = *optim.spec();
    let mut groups: Vec<Group> = Vec::new();
    for (index, update) in updates.into_iter().enumerate() {
        let (lr, weight_decay) = optim.rate(&update.name, update.rank, lr);
        let state = optim.state.remove(&update.name);
        let step = state.as_ref().map_or(0, |s| s.step) + 1;
        let (first, second) = state.map_or((None, None), |s| (s.first, s.second));
        // The optimizer holds its state alone.
        let first = first.map(|t| writable(unwrap(t), 1));
        let second = second.map(|t| writable(unwrap(t), 1));
        // The module's parameter and `update.param` hold the parameter's memory.
        let param = writable(unwrap(update.param), 2);
        let (kernel, first, second) = match spec.kind {
            OptimizerKind::Sgd if spec.momentum == 0.0 => {
                (Kernel::Sgd { fresh: false }, None, None)
            }
            OptimizerKind::Sgd => match first {
                Some(buffer) => (Kernel::Sgd { fresh: false }, Some(buffer), None),
                None => (Kernel::Sgd { fresh: true }, Some(zeros(&param)), None),
            },
            OptimizerKind::AdamW => (
                Kernel::AdamW { step },
                Some(first.unwrap_or_else(|| zeros(&param))),
                Some(second.unwrap_or_else(|| zeros(&param))),
            ),
        };
        let job = Job {
            index,
            name: update.name,
            step,
            param,
            grad: dense(unwrap(update.grad)),
            first,
            second,
        };
        match groups
            .iter_mut()
            .find(|g| g.lr == lr && g.weight_decay == weight_decay && g.kernel == kernel)
        {
            Some(group) => group.jobs.push(job),
            None => groups.push(Group {
                lr,
                weight_decay,
                kernel,
                jobs: vec![job],
            }),
        }
    }
    let mut updated = Vec::new();
    for group in groups {
        run(&spec, &group)?;
        for job in group.jobs {
            optim.state.insert(
                job.name.clone(),
                ParamState {
                    step: job.step,
                    first: job.first.map(wrap),
                    second: job.second.map(wrap),
                },
            );
            updated.push((job.index, job.name, wrap(job.param)));
        }
    }
    updated.sort_by_key(|(index, _, _)| *index);
    Ok(updated
        .into_iter()
        .map(|(_, name, value)| (name, value))
        .collect())
}

/// Runs the fused kernel of `spec`'s optimizer over one group.
fn run(spec: &OptimizerSpec, group: &Group) -> Result<(), PluginError> {
    let tensors = |pick: fn(&Job) -> Option<&TchTensor>| -> Vec<&tch::Tensor> {
        group
            .jobs
            .iter()
            .filter_map(|j| pick(j).map(|t| &t.tensor))
            .collect()
    };
    let params = tensors(|j| Some(&j.param));
    let grads = tensors(|j| Some(&j.grad));
    let firsts = tensors(|j| j.first.as_ref());
    let result = match group.kernel {
        Kernel::Sgd { fresh } => aten::fused_sgd(
            &params,
            &grads,
            &firsts,
            aten::Sgd {
                lr: group.lr,
                momentum: spec.momentum,
                weight_decay: group.weight_decay,
                nesterov: spec.nesterov,
                first_step: fresh,
            },
        ),
        Kernel::AdamW { step } => {
            let device = params.first().map_or(tch::Device::Cpu, |p| p.device());
            // One float32 scalar, as `torch.optim`'s fused AdamW keeps each step count.
            let count = tch::Tensor::full(Vec::<i64>::new(), step as f64, (Kind::Float, device));
            aten::fused_adamw(
                &params,
                &grads,
                (&firsts, &tensors(|j| j.second.as_ref())),
                &vec![&count; params.len()],
                aten::AdamW {
                    lr: group.lr,
                    beta1: spec.beta1,
                    beta2: spec.beta2,
                    weight_decay: group.weight_decay,
                    eps: spec.eps,
                },
            )
        }
    };
    result.map_err(|e| PluginError::device(format!("the fused optimizer step failed: {e}")))
}
