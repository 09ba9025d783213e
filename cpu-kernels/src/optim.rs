//! One optimizer step over a parameter in a single pass: `torch.optim.SGD` and `AdamW`'s rules
//! with the Burn kit's arithmetic.
//!
//! The kit's generic optimizer (`clshost_burn_kit::optim::Optimizer::update`) writes each rule
//! as Burn tensor expressions, one pass over the parameter per operation (six for SGD with
//! momentum and weight decay, eleven for AdamW). These functions compute the same float32
//! operations in the same order element by element (the scalars rounded to `f32` as Burn rounds
//! a scalar operand), so they give the same bits, reading each input once and writing the new
//! parameter and the state once.

use rayon::prelude::*;

use crate::MIN_TASK;

/// One SGD step's settings, as `torch.optim.SGD` takes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// The parameter's learning rate.
    pub lr: f64,
    /// The momentum factor (0: no momentum buffer).
    pub momentum: f64,
    /// The L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// One AdamW step's settings, as `torch.optim.AdamW` takes them, with the step count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    /// The parameter's learning rate.
    pub lr: f64,
    /// The decay of the first moment.
    pub beta1: f64,
    /// The decay of the second moment.
    pub beta2: f64,
    /// The term added to the denominator.
    pub eps: f64,
    /// The decoupled weight decay.
    pub weight_decay: f64,
    /// The step's number, from 1 (it sets the bias corrections).
    pub step: u64,
}

/// A state buffer of a step: its values and whether they are new (the step then sets them
/// instead of decaying them, as PyTorch does on a parameter's first step).
pub type State<'a> = (&'a mut [f32], bool);

/// The parameter after one SGD step from `grad`, updating the momentum `buffer` in place
/// (`None` when the momentum is 0):
///
/// `d = grad + param * weight_decay`; `buffer = buffer * momentum + d` (`d` when new);
/// `d = d + buffer * momentum` with Nesterov, else `buffer`; the result is `param - d * lr`.
///
/// # Panics
///
/// When the lengths differ.
pub fn sgd_step(param: &[f32], grad: &[f32], buffer: Option<State<'_>>, sgd: Sgd) -> Vec<f32> {
    assert_eq!(param.len(), grad.len(), "gradient length");
    let (wd, momentum, lr) = (sgd.weight_decay as f32, sgd.momentum as f32, sgd.lr as f32);
    let rule = |p: f32, g: f32, buf: Option<(&mut f32, bool)>| {
        let mut d = if sgd.weight_decay != 0.0 {
            g + p * wd
        } else {
            g
        };
        if let Some((b, fresh)) = buf {
            *b = if fresh { d } else { *b * momentum + d };
            d = if sgd.nesterov { d + *b * momentum } else { *b };
        }
        p - d * lr
    };
    let mut out = vec![0.0f32; param.len()];
    let tasks = out
        .par_chunks_mut(MIN_TASK)
        .zip(param.par_chunks(MIN_TASK).zip(grad.par_chunks(MIN_TASK)));
    match buffer {
        Some((buffer, fresh)) => {
            assert_eq!(buffer.len(), param.len(), "momentum buffer length");
            tasks
                .zip(buffer.par_chunks_mut(MIN_TASK))
                .for_each(|((dst, (p, g)), b)| {
                    for (d, ((&p, &g), b)) in dst.iter_mut().zip(p.iter().zip(g).zip(b)) {
                        *d = rule(p, g, Some((b, fresh)));
                    }
                });
        }
        None => tasks.for_each(|(dst, (p, g))| {
            for (d, (&p, &g)) in dst.iter_mut().zip(p.iter().zip(g)) {
                *d = rule(p, g, None);
            }
        }),
    }
    out
}

/// The parameter after one AdamW step from `grad`, updating the moments `(first, second)` in
/// place:
///
/// `p = param * (1 - lr * weight_decay)`; `m = m * β1 + grad * (1 - β1)`;
/// `v = v * β2 + grad² * (1 - β2)` (without the decayed terms when new);
/// the result is `p - m / (sqrt(v) / sqrt(1 - β2^t) + eps) * (lr / (1 - β1^t))`.
///
/// # Panics
///
/// When the lengths differ.
pub fn adamw_step(
    param: &[f32],
    grad: &[f32],
    (first, second): (State<'_>, State<'_>),
    adam: AdamW,
) -> Vec<f32> {
    assert_eq!(param.len(), grad.len(), "gradient length");
    assert_eq!(first.0.len(), param.len(), "first moment length");
    assert_eq!(second.0.len(), param.len(), "second moment length");
    let t = i32::try_from(adam.step).unwrap_or(i32::MAX);
    let decay = (1.0 - adam.lr * adam.weight_decay) as f32;
    let (b1, b2) = (adam.beta1 as f32, adam.beta2 as f32);
    let (g1, g2) = ((1.0 - adam.beta1) as f32, (1.0 - adam.beta2) as f32);
    let bias2_sqrt = (1.0 - adam.beta2.powi(t)).sqrt() as f32;
    let (eps, scale) = (
        adam.eps as f32,
        (adam.lr / (1.0 - adam.beta1.powi(t))) as f32,
    );
    let ((m, m_fresh), (v, v_fresh)) = (first, second);
    let mut out = vec![0.0f32; param.len()];
    out.par_chunks_mut(MIN_TASK)
        .zip(param.par_chunks(MIN_TASK).zip(grad.par_chunks(MIN_TASK)))
        .zip(m.par_chunks_mut(MIN_TASK).zip(v.par_chunks_mut(MIN_TASK)))
        .for_each(|((dst, (p, g)), (m, v))| {
            let values = p.iter().zip(g).zip(m.iter_mut().zip(v.iter_mut()));
            for (d, ((&p, &g), (m, v))) in dst.iter_mut().zip(values) {
                let p = if adam.weight_decay != 0.0 {
                    p * decay
                } else {
                    p
                };
                *m = if m_fresh { g * g1 } else { *m * b1 + g * g1 };
                *v = if v_fresh {
                    g * g * g2
                } else {
                    *v * b2 + g * g * g2
                };
                *d = p - *m / (v.sqrt() / bias2_sqrt + eps) * scale;
            }
        });
    out
}
