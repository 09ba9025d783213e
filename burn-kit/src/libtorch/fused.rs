//! Convolution, training-mode batch normalization and ReLU on `Autodiff<LibTorch>` with ATen's
//! fused kernels, as PyTorch's own autograd runs them.
//!
//! burn-tch implements no convolution backward, so Burn's autodiff falls back to a transposed
//! convolution for the input gradient and a convolution with batch and channels swapped for the
//! weight gradient; the kit's generic [`BatchNorm2d`](crate::nn::BatchNorm2d) is about ten
//! separate tensor passes forward and as many backward; and Burn's ReLU backward is a comparison,
//! a copy and a masked fill. Here each layer is one autodiff node whose forward is ATen's
//! `conv2d` / `native_batch_norm` / `relu` and whose backward is one call to ATen's
//! `convolution_backward` / `native_batch_norm_backward` ([`aten`](super::aten)) /
//! `threshold_backward`.
//!
//! Under mixed precision ([`crate::precision`]) the same nodes run on bfloat16 activations:
//! convolutions get bfloat16 inputs and weights, and batch normalization bfloat16 inputs with
//! float32 parameters and statistics (ATen's mixed-type kernels, as under `torch.autocast`).
//!
//! The layers in [`crate::nn`] call these when the model runs on the LibTorch backend; the model
//! code stays generic over Burn's `Backend`: [`training`] tells whether `B` is exactly
//! `Autodiff<LibTorch>` ([`crate::fused`] holds how the tensors move between the two).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};
use burn_tch::{LibTorch, TchTensor};

use super::aten;
use crate::fused::{conv_node, is, node, primitive, tensor};

/// The training backend these ops are written for.
type Train = Autodiff<LibTorch>;

/// Whether `B` is the LibTorch autodiff backend (a training pass on `libtorch:*`).
pub(crate) fn training<B: Backend>() -> bool {
    is::<B, Train>()
}

/// Whether `B` is the plain LibTorch backend (an inference pass on `libtorch:*`).
pub(crate) fn inference<B: Backend>() -> bool {
    is::<B, LibTorch>()
}

/// Registers the gradients ATen computed for the parents that asked for one.
fn register<const N: usize>(
    parents: [Option<burn::backend::autodiff::NodeId>; N],
    grads_out: aten::Grads,
    grads: &mut Gradients,
) {
    for (parent, grad) in parents.into_iter().zip(grads_out) {
        if let (Some(id), Some(grad)) = (parent, grad) {
            grads.register::<LibTorch>(id, TchTensor::new(grad));
        }
    }
}

/// The gradient `grad` in the dtype of `like`, the tensor it is the gradient of. Under mixed
/// precision an operation outside the kit (a float32 constant times a bfloat16 activation) can
/// hand back a gradient in another dtype than its tensor's, which ATen's fused backward kernels
/// refuse; PyTorch's autograd casts such gradients the same way.
fn matching(grad: TchTensor, like: &tch::Tensor) -> tch::Tensor {
    if grad.tensor.kind() == like.kind() {
        grad.tensor
    } else {
        grad.tensor.to_kind(like.kind())
    }
}

/// What the convolution's backward pass needs.
#[derive(Debug, Clone)]
struct ConvState {
    input: TchTensor,
    weight: TchTensor,
    conv: aten::Conv2d,
}

/// The backward of a convolution with `N - 2` biases (none or one).
#[derive(Debug)]
struct ConvBackward<const N: usize>;

impl<const N: usize> Backward<LibTorch, N> for ConvBackward<N> {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        let mut mask = [false; 3];
        for (m, p) in mask.iter_mut().zip(&parents) {
            *m = p.is_some();
        }
        let s = ops.state;
        let grad = matching(grad, &s.input.tensor);
        let computed = aten::conv2d_backward(
            &grad,
            &s.input.tensor,
            &s.weight.tensor,
            N == 3,
            s.conv,
            mask,
        )
        .unwrap_or_else(|e| panic!("ATen's convolution backward failed: {e}"));
        let mut ids = [None; 3];
        ids[..N].copy_from_slice(&parents);
        register(ids, computed, grads);
    }
}

/// Converts Burn's options to ATen's.
fn aten_conv(options: &ConvOptions<2>) -> aten::Conv2d {
    let pair = |v: [usize; 2]| v.map(|x| x as i64);
    aten::Conv2d {
        stride: pair(options.stride),
        padding: pair(options.padding),
        dilation: pair(options.dilation),
        groups: options.groups as i64,
    }
}

/// A 2-D convolution in a training pass on `Autodiff<LibTorch>` (check [`training`] first):
/// ATen's forward, and one `convolution_backward` for every gradient its inputs need.
pub(crate) fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let x = primitive::<Train, B, 4>(x);
    let weight = primitive::<Train, B, 4>(weight);
    let bias = bias.map(primitive::<Train, B, 1>);
    let output = <LibTorch as ModuleOps<LibTorch>>::conv2d(
        x.primitive.clone(),
        weight.primitive.clone(),
        bias.as_ref().map(|b| b.primitive.clone()),
        options.clone(),
    );
    let state = ConvState {
        input: x.primitive.clone(),
        weight: weight.primitive.clone(),
        conv: aten_conv(&options),
    };
    let ops = (ConvBackward::<2>, ConvBackward::<3>);
    let out = conv_node(ops, [&x, &weight], bias.as_ref(), state, output);
    tensor::<B, Train, 4>(out)
}

/// The backward of a ReLU, from its output.
#[derive(Debug)]
struct ReluBackward;

impl Backward<LibTorch, 1> for ReluBackward {
    type State = TchTensor;

    fn backward(self, ops: Ops<TchTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        if let [Some(parent)] = ops.parents {
            // ATen's `threshold_backward(grad, output, 0)`: the gradient where the output is
            // above 0, as PyTorch's ReLU backward.
            let grad = matching(grad, &ops.state.tensor);
            let input_grad = ops.state.tensor.threshold_backward(&grad, 0.0);
            grads.register::<LibTorch>(parent.id, TchTensor::new(input_grad));
        }
    }
}

/// ReLU in a training pass on `Autodiff<LibTorch>` (check [`training`] first): ATen's `relu`,
/// and one `threshold_backward` for the gradient.
pub(crate) fn relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = primitive::<Train, B, D>(x);
    let output = TchTensor::new(x.primitive.tensor.relu());
    tensor::<B, Train, D>(node(ReluBackward, [&x], output.clone(), output))
}

/// What batch normalization's backward pass needs.
#[derive(Debug, Clone)]
struct NormState {
    input: TchTensor,
    weight: TchTensor,
    save_mean: TchTensor,
    save_invstd: TchTensor,
    eps: f64,
}

/// The backward of a training-mode batch normalization (input, scale, shift).
#[derive(Debug)]
struct NormBackward;

impl Backward<LibTorch, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<NormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        let s = ops.state;
        let grad = matching(grad, &s.input.tensor);
        let computed = aten::batch_norm_backward(
            &grad,
            &s.input.tensor,
            &s.weight.tensor,
            (&s.save_mean.tensor, &s.save_invstd.tensor),
            s.eps,
            parents.map(|p| p.is_some()),
        )
        .unwrap_or_else(|e| panic!("ATen's batch-norm backward failed: {e}"));
        register(parents, computed, grads);
    }
}

/// The output of a training-mode batch normalization and the updated running statistics.
pub(crate) struct NormOutput<B: Backend> {
    /// The normalized input.
    pub output: Tensor<B, 4>,
    /// The new running mean.
    pub running_mean: Tensor<B, 1>,
    /// The new running variance (updated with the unbiased batch variance).
    pub running_var: Tensor<B, 1>,
}

/// Training-mode batch normalization on `Autodiff<LibTorch>` (check [`training`] first):
/// ATen's `native_batch_norm` normalizes with the batch statistics and updates copies of the
/// running ones exactly as `torch.nn.BatchNorm2d` does; its backward is one
/// `native_batch_norm_backward`.
pub(crate) fn batch_norm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    running: (Tensor<B, 1>, Tensor<B, 1>),
    momentum: f64,
    eps: f64,
) -> NormOutput<B> {
    let x = primitive::<Train, B, 4>(x);
    let weight = primitive::<Train, B, 1>(weight);
    let bias = primitive::<Train, B, 1>(bias);
    // Copies, because ATen updates the running statistics in place and Burn's tensors may share
    // their storage (the EMA, a checkpoint being written).
    let mean = primitive::<Train, B, 1>(running.0).primitive.tensor.copy();
    let var = primitive::<Train, B, 1>(running.1).primitive.tensor.copy();
    let (output, save_mean, save_invstd) = x.primitive.tensor.native_batch_norm(
        Some(&weight.primitive.tensor),
        Some(&bias.primitive.tensor),
        Some(&mean),
        Some(&var),
        true,
        momentum,
        eps,
    );
    let state = NormState {
        input: x.primitive.clone(),
        weight: weight.primitive.clone(),
        save_mean: TchTensor::new(save_mean),
        save_invstd: TchTensor::new(save_invstd),
        eps,
    };
    let output = TchTensor::new(output);
    let out = node(NormBackward, [&x, &weight, &bias], state, output);
    let stat = |t: tch::Tensor| tensor::<B, Train, 1>(<FloatTensor<Train>>::new(TchTensor::new(t)));
    NormOutput {
        output: tensor::<B, Train, 4>(out),
        running_mean: stat(mean),
        running_var: stat(var),
    }
}

/// Inference-mode batch normalization on the plain LibTorch backend (check [`inference`]
/// first): one ATen pass with the running statistics.
pub(crate) fn batch_norm_eval<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    running: (Tensor<B, 1>, Tensor<B, 1>),
    eps: f64,
) -> Tensor<B, 4> {
    let x = primitive::<LibTorch, B, 4>(x);
    let [weight, bias, mean, var] =
        [weight, bias, running.0, running.1].map(primitive::<LibTorch, B, 1>);
    let output = x.tensor.batch_norm(
        Some(&weight.tensor),
        Some(&bias.tensor),
        Some(&mean.tensor),
        Some(&var.tensor),
        false,
        0.0,
        eps,
        true,
    );
    tensor::<B, LibTorch, 4>(TchTensor::new(output))
}
