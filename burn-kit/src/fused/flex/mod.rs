//! Convolution, batch normalization, ReLU and max pooling on Burn's flex backend (the `cpu`
//! device), each one autodiff node whose forward and backward are the [`clshost_cpu_kernels`]
//! loops.
//!
//! Burn's generic path on flex computes a convolution's input gradient as a transposed
//! convolution and its weight gradient as a convolution of the batch-and-channel-swapped tensors
//! (copied element by element into that layout first), the kit's generic
//! [`BatchNorm2d`](crate::nn::BatchNorm2d) takes about ten tensor passes each way, ReLU's
//! backward three, and burn-flex's max pooling checks the bounds of every window element (15 ms
//! for resnet18's stem pooling at 64x64 batch 32). The kernels compute the same values with one
//! matrix product per gradient and plain loops elsewhere (checked against PyTorch in their own
//! tests, and through the ResNet plugin's torchvision parity tests, which run on this backend).
//!
//! Only `float32` tensors, one-group convolutions with symmetric padding and pooling without
//! `ceil_mode` come here; the layers in [`crate::nn`] check [`conv_applies`], `ceil_mode` and the
//! dtype and keep Burn's path otherwise.
//! The [`optim`] submodule runs the optimizer step on the same backend.

pub(crate) mod optim;

use std::borrow::Cow;

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};
use clshost_cpu_kernels as kernels;

use super::{conv_node, is, node, primitive, tensor};

/// The training backend of the `cpu` device.
type Train = Autodiff<Flex>;

/// Whether `B` is the flex autodiff backend (a training pass on `cpu`).
pub(crate) fn training<B: Backend>() -> bool {
    is::<B, Train>()
}

/// Whether `B` is the plain flex backend (an inference pass on `cpu`).
pub(crate) fn inference<B: Backend>() -> bool {
    is::<B, Flex>()
}

/// Whether a tensor of `B` with `dtype` runs here in a training (or inference) pass.
pub(crate) fn applies<B: Backend>(dtype: DType) -> bool {
    dtype == DType::F32 && (training::<B>() || inference::<B>())
}

/// Whether a convolution with `options` runs here: one group (the kernels have no grouped
/// product).
pub(crate) fn conv_applies(options: &ConvOptions<2>) -> bool {
    options.groups == 1
}

/// The elements of `t` in row-major order: borrowed when its storage is already that.
fn floats(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            t.to_contiguous()
                .into_data()
                .into_vec::<f32>()
                .unwrap_or_else(|e| {
                    unreachable!("a float32 tensor was checked before it came here: {e:?}")
                }),
        ),
    }
}

/// A flex tensor of `shape` holding `values`.
fn flex(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The gradients the kernels compute for a node whose parents are `[input, weight]` or
/// `[input, weight, bias]`: those the parents ask for.
fn needs(parents: &[Option<NodeId>]) -> kernels::Needs {
    let asks = |i: usize| parents.get(i).is_some_and(Option::is_some);
    kernels::Needs {
        input: asks(0),
        weight: asks(1),
        bias: asks(2),
    }
}

/// Registers the gradients computed for the parents that asked for one, shaped as `shapes`
/// (the three sequences in the parents' order; extra entries after the last parent are ignored).
fn register<'a>(
    parents: impl IntoIterator<Item = Option<NodeId>>,
    computed: impl IntoIterator<Item = Option<Vec<f32>>>,
    shapes: impl IntoIterator<Item = &'a [usize]>,
    grads: &mut Gradients,
) {
    for ((parent, grad), shape) in parents.into_iter().zip(computed).zip(shapes) {
        if let (Some(id), Some(grad)) = (parent, grad) {
            grads.register::<Flex>(id, flex(grad, shape));
        }
    }
}

/// The kernels' geometry of a convolution of `x` (`[N, C, H, W]`) by `weight`.
fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> kernels::Conv2d {
    let [n, c, h, w] = x.layout().shape().dims();
    let [co, _, kh, kw] = weight.layout().shape().dims();
    kernels::Conv2d {
        batch: n,
        in_channels: c,
        in_size: [h, w],
        out_channels: co,
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
    }
}

/// The convolution of `x` by `weight` (and `bias`) on flex tensors.
fn conv_forward(
    conv: &kernels::Conv2d,
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    let bias = bias.map(floats);
    let out = kernels::conv2d_forward(conv, &floats(x), &floats(weight), bias.as_deref());
    let [oh, ow] = conv.out_size();
    flex(out, [conv.batch, conv.out_channels, oh, ow])
}

/// What the convolution's backward pass needs.
#[derive(Debug, Clone)]
struct ConvState {
    input: FlexTensor,
    weight: FlexTensor,
    conv: kernels::Conv2d,
}

/// The backward of a convolution with `N - 2` biases (none or one).
#[derive(Debug)]
struct ConvBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        let s = ops.state;
        let needs = needs(&parents);
        let computed = kernels::conv2d_backward(
            &s.conv,
            &floats(&s.input),
            &floats(&s.weight),
            &floats(&grad),
            needs,
        );
        // The bias, when there is one, is the third parent; without one the zip stops at two.
        let bias_shape = [s.conv.out_channels];
        register(
            parents,
            [computed.input, computed.weight, computed.bias],
            [
                s.input.layout().shape().as_slice(),
                s.weight.layout().shape().as_slice(),
                &bias_shape[..],
            ],
            grads,
        );
    }
}

/// A 2-D convolution on flex (check [`applies`] and [`conv_applies`] first): the kernels'
/// forward, and in a training pass one node whose backward computes every gradient its inputs
/// need.
pub(crate) fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: &ConvOptions<2>,
) -> Tensor<B, 4> {
    if inference::<B>() {
        let (x, weight) = (primitive::<Flex, B, 4>(x), primitive::<Flex, B, 4>(weight));
        let bias = bias.map(primitive::<Flex, B, 1>);
        let conv = geometry(&x, &weight, options);
        return tensor::<B, Flex, 4>(conv_forward(&conv, &x, &weight, bias.as_ref()));
    }
    let x = primitive::<Train, B, 4>(x);
    let weight = primitive::<Train, B, 4>(weight);
    let bias = bias.map(primitive::<Train, B, 1>);
    let conv = geometry(&x.primitive, &weight.primitive, options);
    let output = conv_forward(
        &conv,
        &x.primitive,
        &weight.primitive,
        bias.as_ref().map(|b| &b.primitive),
    );
    let state = ConvState {
        input: x.primitive.clone(),
        weight: weight.primitive.clone(),
        conv,
    };
    let ops = (ConvBackward::<2>, ConvBackward::<3>);
    let out = conv_node(ops, [&x, &weight], bias.as_ref(), state, output);
    tensor::<B, Train, 4>(out)
}

/// The backward of a ReLU, from its output.
#[derive(Debug)]
struct ReluBackward;

impl Backward<Flex, 1> for ReluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let [Some(parent)] = ops.parents {
            let output = &ops.state;
            let input_grad = kernels::relu_backward(&floats(&grad), &floats(output));
            let shape = output.layout().shape().to_vec();
            grads.register::<Flex>(parent.id, flex(input_grad, shape));
        }
    }
}

/// ReLU in a training pass on flex (check [`training`] and the dtype first): one pass each way.
pub(crate) fn relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = primitive::<Train, B, D>(x);
    let shape = x.primitive.layout().shape().to_vec();
    let output = flex(kernels::relu(&floats(&x.primitive)), shape);
    tensor::<B, Train, D>(node(ReluBackward, [&x], output.clone(), output))
}

/// What max pooling's backward pass needs: the geometry, the input's shape and the position of
/// each output's input element in its plane.
#[derive(Debug, Clone)]
struct PoolState {
    pool: kernels::Pool2d,
    shape: [usize; 4],
    indices: Vec<u32>,
}

/// The backward of a max pooling: each output's gradient added to the element it took.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let [Some(parent)] = ops.parents {
            let s = &ops.state;
            let dx = kernels::max_pool2d_backward(&s.pool, &floats(&grad), &s.indices);
            grads.register::<Flex>(parent.id, flex(dx, s.shape));
        }
    }
}

/// 2-D max pooling on flex (check [`applies`] first; PyTorch's output size without
/// `ceil_mode`): the kernels' forward, and in a training pass one node whose backward routes
/// each output's gradient to the element it took.
pub(crate) fn max_pool2d<B: Backend>(
    x: Tensor<B, 4>,
    [kernel, stride, padding, dilation]: [[usize; 2]; 4],
) -> Tensor<B, 4> {
    let shape @ [n, c, h, w] = x.dims();
    let pool = kernels::Pool2d {
        planes: n * c,
        in_size: [h, w],
        kernel,
        stride,
        padding,
        dilation,
    };
    let [oh, ow] = pool.out_size();
    let out_shape = [n, c, oh, ow];
    if inference::<B>() {
        let x = primitive::<Flex, B, 4>(x);
        let (output, _) = kernels::max_pool2d(&pool, &floats(&x), false);
        return tensor::<B, Flex, 4>(flex(output, out_shape));
    }
    let x = primitive::<Train, B, 4>(x);
    let (output, indices) = kernels::max_pool2d(&pool, &floats(&x.primitive), true);
    let state = PoolState {
        pool,
        shape,
        indices: indices.unwrap_or_default(),
    };
    let output = node(PoolBackward, [&x], state, flex(output, out_shape));
    tensor::<B, Train, 4>(output)
}

/// What batch normalization's backward pass needs.
#[derive(Debug, Clone)]
struct NormState {
    input: FlexTensor,
    weight: FlexTensor,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    dims: kernels::NormDims,
}

/// The backward of a training-mode batch normalization (input, scale, shift).
#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<NormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        let s = ops.state;
        let needs = needs(&parents);
        let computed = kernels::batch_norm_backward(
            &floats(&grad),
            &floats(&s.input),
            s.dims,
            &floats(&s.weight),
            (&s.mean, &s.invstd),
            needs,
        );
        let channels = [s.dims.channels];
        register(
            parents,
            [computed.input, computed.weight, computed.bias],
            [
                s.input.layout().shape().as_slice(),
                &channels[..],
                &channels[..],
            ],
            grads,
        );
    }
}

/// The dimensions of `x`, `[N, C, H, W]`, for the normalization kernels.
fn norm_dims(x: &FlexTensor) -> kernels::NormDims {
    let [batch, channels, h, w] = x.layout().shape().dims();
    kernels::NormDims {
        batch,
        channels,
        positions: h * w,
    }
}

/// Training-mode batch normalization on flex (check [`training`] and the dtype first): the
/// output, one node whose backward is the kernels', and the batch mean and biased variance from
/// which the caller updates the running statistics.
pub(crate) fn batch_norm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let device = x.device();
    let x = primitive::<Train, B, 4>(x);
    let weight = primitive::<Train, B, 1>(weight);
    let bias = primitive::<Train, B, 1>(bias);
    let dims = norm_dims(&x.primitive);
    let out = kernels::batch_norm_train(
        &floats(&x.primitive),
        dims,
        &floats(&weight.primitive),
        &floats(&bias.primitive),
        eps,
    );
    let stat = |values: Vec<f32>| {
        Tensor::<B, 1>::from_data(TensorData::new(values, [dims.channels]), &device)
    };
    let var = stat(out.var);
    let shape = x.primitive.layout().shape().to_vec();
    let output = flex(out.output, shape);
    let state = NormState {
        input: x.primitive.clone(),
        weight: weight.primitive.clone(),
        mean: out.mean.clone(),
        invstd: out.invstd,
        dims,
    };
    let output = node(NormBackward, [&x, &weight, &bias], state, output);
    (tensor::<B, Train, 4>(output), stat(out.mean), var)
}

/// Inference-mode batch normalization on flex (check [`inference`] and the dtype first): one
/// pass with the running statistics.
pub(crate) fn batch_norm_eval<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    running: (Tensor<B, 1>, Tensor<B, 1>),
    eps: f64,
) -> Tensor<B, 4> {
    let x = primitive::<Flex, B, 4>(x);
    let [weight, bias, mean, var] =
        [weight, bias, running.0, running.1].map(primitive::<Flex, B, 1>);
    let out = kernels::batch_norm_eval(
        &floats(&x),
        norm_dims(&x),
        &floats(&weight),
        &floats(&bias),
        (&floats(&mean), &floats(&var)),
        eps,
    );
    let shape = x.layout().shape().to_vec();
    tensor::<B, Flex, 4>(flex(out, shape))
}
