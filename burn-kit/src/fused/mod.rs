//! Layers the kit runs as single autodiff nodes with their own backward, per backend, where
//! Burn's generic path is slow: [`flex`] on Burn's CPU backend (the `cpu` device), and the
//! `libtorch` module's `fused` on ATen (feature `libtorch`).
//!
//! The layers in [`crate::nn`] stay generic over Burn's `Backend` and ask at run time whether `B`
//! is exactly one of these backends (a `TypeId` comparison); the tensors then move between `B`
//! and that type through `Any`, which checks the type again (no unsafe cast). This module holds
//! what both share: those moves, and recording a node of Burn's autodiff graph.

pub(crate) mod flex;

use std::any::{Any, TypeId};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// Whether `B` is exactly `X`.
pub(crate) fn is<B: 'static, X: 'static>() -> bool {
    TypeId::of::<B>() == TypeId::of::<X>()
}

/// `value` as `T`; the caller has checked with [`is`] that it is one.
fn cast<S: 'static, T: 'static>(value: S) -> T {
    match (Box::new(value) as Box<dyn Any>).downcast::<T>() {
        Ok(value) => *value,
        Err(_) => unreachable!("the backend type was checked before the cast"),
    }
}

/// The primitive of `t` on backend `X` (which `B` is).
pub(crate) fn primitive<X: Backend, B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<X> {
    cast(t.into_primitive().tensor())
}

/// A tensor of `B` (which `X` is) from a primitive of `X`.
pub(crate) fn tensor<B: Backend, X: Backend, const D: usize>(p: FloatTensor<X>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(cast(p)))
}

/// The autodiff node of `op` over `parents` with output `output`: tracked with `state` when a
/// parent needs a gradient, a plain result otherwise.
pub(crate) fn node<X, O, S, const N: usize>(
    op: O,
    parents: [&FloatTensor<Autodiff<X>>; N],
    state: S,
    output: FloatTensor<X>,
) -> FloatTensor<Autodiff<X>>
where
    X: Backend,
    O: Backward<X, N, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    match op
        .prepare::<NoCheckpointing>(parents.map(|p| p.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// The autodiff node of a convolution of `x` by `weight` and, when there is one, `bias`:
/// `ops.0`'s backward without a bias, `ops.1`'s with one.
pub(crate) fn conv_node<X, O2, O3, S>(
    ops: (O2, O3),
    [x, weight]: [&FloatTensor<Autodiff<X>>; 2],
    bias: Option<&FloatTensor<Autodiff<X>>>,
    state: S,
    output: FloatTensor<X>,
) -> FloatTensor<Autodiff<X>>
where
    X: Backend,
    O2: Backward<X, 2, State = S>,
    O3: Backward<X, 3, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    match bias {
        Some(bias) => node(ops.1, [x, weight, bias], state, output),
        None => node(ops.0, [x, weight], state, output),
    }
}
