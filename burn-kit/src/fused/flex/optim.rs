//! The optimizer step on Burn's flex backend (the `cpu` device): each `float32` parameter is
//! updated in one pass by [`clshost_cpu_kernels::sgd_step`] or
//! [`clshost_cpu_kernels::adamw_step`], which compute [`Optimizer::update`]'s expressions with
//! the same float32 operations in the same order, so the bits are the same.
//!
//! Burn's tensor expressions take six passes over every parameter for SGD with momentum and
//! weight decay (and a new tensor for each operation whose input another tensor shares), which
//! was about a tenth of a resnet18 step on two cores. The momentum buffers and moments are
//! updated in place when the optimizer holds them alone (after their first step); the new
//! parameter is a new buffer, because the module still holds the old one until the caller
//! replaces it.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_flex::Flex;
use clshost_cpu_kernels as kernels;
use clshost_plugin_api::OptimizerKind;

use super::{flex, floats, inference};
use crate::fused::{primitive, tensor};
use crate::optim::{Optimizer, Update};

/// Whether `B` is the flex backend, whose steps run here.
pub(crate) fn applies<B: Backend>() -> bool {
    inference::<B>()
}

/// [`Optimizer::step`] on flex (`B` is flex, [`applies`]): the kernels for `float32`
/// parameters, [`Optimizer::update`] for others.
pub(crate) fn step<B: Backend>(
    optim: &mut Optimizer<B>,
    updates: Vec<Update<B>>,
    lr: f64,
) -> Vec<(String, Tensor<B, 1>)> {
    updates
        .into_iter()
        .map(|u| {
            let value = if u.param.dtype() == DType::F32 && u.grad.dtype() == DType::F32 {
                update(optim, &u.name, u.rank, (u.param, u.grad), lr)
            } else {
                optim.update(&u.name, u.rank, u.param, u.grad, lr)
            };
            (u.name, value)
        })
        .collect()
}

/// The values of a state tensor, to be written: taken from it when it holds them alone.
fn owned<B: Backend>(t: Tensor<B, 1>) -> Vec<f32> {
    primitive::<Flex, B, 1>(t)
        .into_data()
        .into_vec::<f32>()
        .unwrap_or_else(|e| unreachable!("optimizer state is float32 like its parameter: {e:?}"))
}

/// A state buffer of `len` values: `state`'s, or new ones (zeros, marked new).
fn buffer<B: Backend>(state: Option<Tensor<B, 1>>, len: usize) -> (Vec<f32>, bool) {
    state.map_or_else(|| (vec![0.0; len], true), |t| (owned(t), false))
}

/// A one-dimensional tensor of `B` (which is flex) holding `values`.
fn vector<B: Backend>(values: Vec<f32>) -> Tensor<B, 1> {
    let len = values.len();
    tensor::<B, Flex, 1>(flex(values, [len]))
}

/// One step of parameter `name` (of `rank` dimensions) from its gradient: its new value.
fn update<B: Backend>(
    optim: &mut Optimizer<B>,
    name: &str,
    rank: usize,
    (param, grad): (Tensor<B, 1>, Tensor<B, 1>),
    lr: f64,
) -> Tensor<B, 1> {
    let spec = *optim.spec();
    let (lr, weight_decay, state) = optim.begin(name, rank, lr);
    let param = primitive::<Flex, B, 1>(param);
    let grad = primitive::<Flex, B, 1>(grad);
    let (param, grad) = (floats(&param), floats(&grad));
    let len = param.len();
    let value = match spec.kind {
        OptimizerKind::Sgd => {
            let mut velocity = (spec.momentum != 0.0).then(|| buffer(state.first.take(), len));
            let sgd = kernels::Sgd {
                lr,
                momentum: spec.momentum,
                weight_decay,
                nesterov: spec.nesterov,
            };
            let buffer = velocity
                .as_mut()
                .map(|(b, fresh)| (b.as_mut_slice(), *fresh));
            let value = kernels::sgd_step(&param, &grad, buffer, sgd);
            state.first = velocity.map(|(b, _)| vector(b));
            value
        }
        OptimizerKind::AdamW => {
            let (mut m, m_fresh) = buffer(state.first.take(), len);
            let (mut v, v_fresh) = buffer(state.second.take(), len);
            let adam = kernels::AdamW {
                lr,
                beta1: spec.beta1,
                beta2: spec.beta2,
                eps: spec.eps,
                weight_decay,
                step: state.step,
            };
            let moments = ((m.as_mut_slice(), m_fresh), (v.as_mut_slice(), v_fresh));
            let value = kernels::adamw_step(&param, &grad, moments, adam);
            state.first = Some(vector(m));
            state.second = Some(vector(v));
            value
        }
    };
    vector(value)
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;
    use burn_flex::Flex;
    use clshost_plugin_api::{OptimizerKind, OptimizerSpec};

    use crate::optim::{Optimizer, Rate, Update};

    /// `len` values in [-1, 1) from `seed`.
    fn values(seed: u32, len: usize) -> Vec<f32> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 * 2.0 - 1.0)
            .collect()
    }

    /// The updates of a step: `p0` a weight, `p1` a bias (no weight decay), `p2` a weight with
    /// its own rate; gradients from the step's number.
    fn updates(params: &[Vec<f32>], step: u32) -> Vec<Update<Flex>> {
        params
            .iter()
            .enumerate()
            .map(|(i, p)| Update {
                name: format!("p{i}"),
                rank: if i == 1 { 1 } else { 2 },
                param: super::vector(p.clone()),
                grad: super::vector(values(step * 7 + i as u32, p.len())),
            })
            .collect()
    }

    /// The one-pass kernels give the bits of [`Optimizer::update`]'s tensor expressions, over
    /// three steps (the first creates the state) of each rule.
    #[test]
    fn the_kernels_give_the_bits_of_the_tensor_expressions() {
        let base = OptimizerSpec {
            kind: OptimizerKind::Sgd,
            momentum: 0.9,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
            norm_bias_weight_decay: 0.0,
            clip_grad_norm: None.into(),
            ema: None.into(),
        };
        let specs = [
            base,
            OptimizerSpec {
                nesterov: true,
                ..base
            },
            OptimizerSpec {
                momentum: 0.0,
                ..base
            },
            OptimizerSpec {
                kind: OptimizerKind::AdamW,
                ..base
            },
        ];
        for spec in specs {
            let mut fused = Optimizer::<Flex>::new(spec);
            let mut generic = Optimizer::<Flex>::new(spec);
            let rate = Rate {
                lr_scale: 0.3,
                weight_decay: Some(0.2),
            };
            for o in [&mut fused, &mut generic] {
                o.rates.insert("p2".into(), rate);
            }
            let mut params: Vec<Vec<f32>> = (0..3).map(|i| values(100 + i, 5000)).collect();
            for step in 0..3 {
                let lr = 0.1 / f64::from(step + 1);
                let expected: Vec<Vec<f32>> = updates(&params, step)
                    .into_iter()
                    .map(|u| {
                        let value = generic.update(&u.name, u.rank, u.param, u.grad, lr);
                        value.into_data().into_vec::<f32>().unwrap()
                    })
                    .collect();
                let got: Vec<Vec<f32>> = super::step(&mut fused, updates(&params, step), lr)
                    .into_iter()
                    .map(|(_, value)| value.into_data().into_vec::<f32>().unwrap())
                    .collect();
                assert!(got == expected, "{:?} step {step} differs", spec.kind);
                params = got;
            }
            let state = |o: &Optimizer<Flex>| -> Vec<TensorData> {
                let s = &o.state["p0"];
                s.first
                    .iter()
                    .chain(&s.second)
                    .map(|t| t.to_data())
                    .collect()
            };
            assert_eq!(state(&fused), state(&generic), "{:?} state", spec.kind);
        }
    }
}
