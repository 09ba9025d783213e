//! The layers of a ResNet, forward and backward, on another backend against the CPU (flex, whose
//! gradients match PyTorch's: the resnet plugin's parity tests):
//!
//! - the convolutions on wgpu (needs a Vulkan driver; CI has Mesa's software lavapipe). Burn's
//!   cubecl kernels are shared by wgpu and CUDA, so what holds here holds for CUDA too
//!   (`scripts/gpu-check.sh` runs the resnet-level check on both);
//! - the convolutions and batch normalization on LibTorch (feature `libtorch`), where the kit
//!   runs ATen's fused kernels forward and backward instead of Burn's generic autodiff.
#![cfg(any(feature = "wgpu", feature = "libtorch"))]

use burn::backend::Autodiff;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use burn_flex::{Flex, FlexDevice};
use clshost_burn_kit::nn::conv2d;

/// Values in [-1, 1) from a seed (a 64-bit LCG), so both backends see the same numbers.
fn values(shape: [usize; 4], seed: u64) -> TensorData {
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 23) as f32 * 2.0 - 1.0
        })
        .collect();
    TensorData::new(v, shape)
}

/// A convolution: input shape, then `[out, in, k, k]`, stride, padding, whether it has a bias.
#[derive(Clone, Copy, Debug)]
struct Case {
    input: [usize; 4],
    kernel: [usize; 4],
    stride: usize,
    padding: usize,
    bias: bool,
}

/// Output, input gradient, weight gradient and bias gradient (empty without a bias) of `case`
/// for the loss `sum(y * g)`, computed by `apply` on backend `B`.
fn grads<B: AutodiffBackend>(
    device: &B::Device,
    case: Case,
    apply: impl Fn(&Conv2d<B>, Tensor<B, 4>) -> Tensor<B, 4>,
) -> [Vec<f32>; 4] {
    let [out, inp, k, _] = case.kernel;
    let mut conv: Conv2d<B> = Conv2dConfig::new([inp, out], [k, k])
        .with_stride([case.stride, case.stride])
        .with_padding(PaddingConfig2d::Explicit(
            case.padding,
            case.padding,
            case.padding,
            case.padding,
        ))
        .with_bias(case.bias)
        .init(device);
    conv.weight = conv
        .weight
        .map(|_| Tensor::from_data(values(case.kernel, 2), device).require_grad());
    conv.bias = conv.bias.map(|b| {
        b.map(|_| {
            let v = values([1, 1, 1, case.kernel[0]], 4);
            Tensor::<B, 4>::from_data(v, device)
                .reshape([case.kernel[0]])
                .require_grad()
        })
    });
    let x = Tensor::<B, 4>::from_data(values(case.input, 1), device).require_grad();
    let y = apply(&conv, x.clone());
    let g = Tensor::<B, 4>::from_data(values(y.dims(), 3), device);
    let all = (y.clone() * g).sum().backward();
    let host = |t: Tensor<B::InnerBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
    let bias = conv.bias.as_ref().map_or_else(Vec::new, |b| {
        let g = b.val().grad(&all).unwrap();
        g.into_data().to_vec::<f32>().unwrap()
    });
    [
        host(y.inner()),
        host(x.grad(&all).unwrap()),
        host(conv.weight.val().grad(&all).unwrap()),
        bias,
    ]
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every convolution shape of torchvision's ResNets, small, and one with a bias.
const RESNET_CONVS: [Case; 8] = [
    // stem: 7x7 stride 2, and the 3x3 stem of `small_input`
    Case {
        input: [2, 3, 16, 16],
        kernel: [4, 3, 7, 7],
        stride: 2,
        padding: 3,
        bias: false,
    },
    Case {
        input: [2, 3, 8, 8],
        kernel: [4, 3, 3, 3],
        stride: 1,
        padding: 1,
        bias: false,
    },
    // 3x3 convolutions of blocks, and the strided first one of a stage
    Case {
        input: [2, 8, 6, 6],
        kernel: [8, 8, 3, 3],
        stride: 1,
        padding: 1,
        bias: false,
    },
    Case {
        input: [2, 4, 8, 8],
        kernel: [8, 4, 3, 3],
        stride: 2,
        padding: 1,
        bias: false,
    },
    // bottleneck 1x1, and projection shortcuts: 1x1 stride 2 on even and odd sizes
    Case {
        input: [2, 8, 4, 4],
        kernel: [4, 8, 1, 1],
        stride: 1,
        padding: 0,
        bias: false,
    },
    Case {
        input: [2, 4, 8, 8],
        kernel: [8, 4, 1, 1],
        stride: 2,
        padding: 0,
        bias: false,
    },
    Case {
        input: [3, 4, 7, 5],
        kernel: [8, 4, 1, 1],
        stride: 2,
        padding: 0,
        bias: false,
    },
    Case {
        input: [2, 3, 9, 9],
        kernel: [5, 3, 3, 3],
        stride: 2,
        padding: 1,
        bias: true,
    },
];

/// Where `kit::nn::conv2d` on `B` differs from the CPU by more than 1e-4, for every case.
fn convolution_differences<B: AutodiffBackend>(device: &B::Device) -> Vec<String> {
    let mut failures = Vec::new();
    for case in RESNET_CONVS {
        let cpu = grads::<Autodiff<Flex>>(&FlexDevice, case, conv2d);
        let other = grads::<B>(device, case, conv2d);
        let names = [
            "output",
            "input gradient",
            "weight gradient",
            "bias gradient",
        ];
        for ((what, c), o) in names.iter().zip(&cpu).zip(&other) {
            let d = max_diff(c, o);
            if d > 1e-4 {
                failures.push(format!("{case:?}: {what} differs by {d}"));
            }
        }
    }
    failures
}

#[cfg(feature = "wgpu")]
#[test]
fn resnet_convolutions_agree_with_the_cpu_forward_and_backward() {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    let failures = convolution_differences::<Autodiff<Wgpu>>(&WgpuDevice::DefaultDevice);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(feature = "libtorch")]
mod libtorch {
    use burn::module::{AutodiffModule, Param, RunningState};
    use burn_tch::{LibTorch, LibTorchDevice};
    use clshost_burn_kit::ForwardContext;
    use clshost_burn_kit::nn::BatchNorm2d;

    use super::*;

    #[test]
    fn fused_convolutions_agree_with_the_cpu_forward_and_backward() {
        let failures = convolution_differences::<Autodiff<LibTorch>>(&LibTorchDevice::Cpu);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The first convolution of a network sees an input that needs no gradient: the fused
    /// backward computes only the weight's.
    #[test]
    fn a_fused_convolution_of_an_input_without_gradient_gives_the_weight_gradient() {
        let case = RESNET_CONVS[0];
        let expected = grads::<Autodiff<LibTorch>>(&LibTorchDevice::Cpu, case, conv2d);
        let device = LibTorchDevice::Cpu;
        let conv: Conv2d<Autodiff<LibTorch>> = Conv2dConfig::new([3, 4], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .with_bias(false)
            .init(&device);
        let conv = Conv2d {
            weight: conv
                .weight
                .map(|_| Tensor::from_data(values(case.kernel, 2), &device).require_grad()),
            ..conv
        };
        let x = Tensor::<Autodiff<LibTorch>, 4>::from_data(values(case.input, 1), &device);
        let y = conv2d(&conv, x.clone());
        let g = Tensor::from_data(values(y.dims(), 3), &device);
        let all = (y * g).sum().backward();
        assert!(x.grad(&all).is_none());
        let w = conv.weight.val().grad(&all).unwrap();
        assert!(max_diff(&w.into_data().to_vec::<f32>().unwrap(), &expected[2]) < 1e-5);
    }

    /// ReLU's output and input gradient for `sum(relu(x) * g)` on backend `B`.
    fn relu_results<B: AutodiffBackend>(device: &B::Device) -> [Vec<f32>; 2] {
        let x = Tensor::<B, 4>::from_data(values([2, 3, 4, 4], 11), device).require_grad();
        let y = clshost_burn_kit::nn::relu(x.clone());
        let g = Tensor::<B, 4>::from_data(values([2, 3, 4, 4], 12), device);
        let all = (y.clone() * g).sum().backward();
        let host = |t: Tensor<B::InnerBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        [host(y.inner()), host(x.grad(&all).unwrap())]
    }

    #[test]
    fn fused_relu_agrees_with_the_cpu() {
        let cpu = relu_results::<Autodiff<Flex>>(&FlexDevice);
        let torch = relu_results::<Autodiff<LibTorch>>(&LibTorchDevice::Cpu);
        assert_eq!(cpu, torch);
    }

    /// A batch-norm layer on backend `B` with scale, shift and running statistics from seeds.
    fn norm<B: AutodiffBackend>(device: &B::Device) -> BatchNorm2d<B> {
        let vector = |seed: u64, offset: f32| {
            let v: Vec<f32> = values([1, 1, 1, 3], seed)
                .to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(|x| x * 0.5 + offset)
                .collect();
            Tensor::<B, 1>::from_data(TensorData::new(v, [3]), device)
        };
        BatchNorm2d {
            weight: Param::from_tensor(vector(5, 1.0)),
            bias: Param::from_tensor(vector(6, 0.0)),
            running_mean: RunningState::new(vector(7, 0.0)),
            running_var: RunningState::new(vector(8, 1.0)),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Training output, input/scale/shift gradients, running statistics after the pass, and an
    /// inference output with them, on backend `B`.
    fn norm_results<B: AutodiffBackend>(device: &B::Device) -> Vec<Vec<f32>> {
        let layer = norm::<B>(device);
        let x = Tensor::<B, 4>::from_data(values([4, 3, 5, 5], 9), device).require_grad();
        let train = ForwardContext {
            train: true,
            frozen_norm: false,
            seed: 0,
        };
        let y = layer.forward(x.clone(), &train);
        let g = Tensor::<B, 4>::from_data(values([4, 3, 5, 5], 10), device);
        let all = (y.clone() * g).sum().backward();
        let host4 = |t: Tensor<B::InnerBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
        let host1 = |t: Tensor<B::InnerBackend, 1>| t.into_data().to_vec::<f32>().unwrap();
        let inference = layer.valid();
        let eval = inference.forward(x.clone().inner(), &ForwardContext::EVAL);
        vec![
            host4(y.inner()),
            host4(x.grad(&all).unwrap()),
            host1(layer.weight.val().grad(&all).unwrap()),
            host1(layer.bias.val().grad(&all).unwrap()),
            host1(inference.running_mean.value()),
            host1(inference.running_var.value()),
            host4(eval),
        ]
    }

    #[test]
    fn fused_batch_norm_agrees_with_the_cpu_in_training_and_inference() {
        let cpu = norm_results::<Autodiff<Flex>>(&FlexDevice);
        let torch = norm_results::<Autodiff<LibTorch>>(&LibTorchDevice::Cpu);
        let names = [
            "output",
            "input gradient",
            "scale gradient",
            "shift gradient",
            "running mean",
            "running variance",
            "inference output",
        ];
        let failures: Vec<String> = names
            .iter()
            .zip(cpu.iter().zip(&torch))
            .filter_map(|(what, (c, t))| {
                // Relative to the largest value: the scale gradient sums 100 products, whose
                // float32 rounding depends on the CPU's vector width (1.7e-5 of 20.8 on an AMD EPYC).
                let largest = c.iter().fold(1.0f32, |m, x| m.max(x.abs()));
                let d = max_diff(c, t);
                (d > 1e-5 * largest).then(|| format!("{what} differs by {d} (largest {largest})"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("; "));
    }
}

/// Pins the Burn 0.21 bug `nn::conv2d` works around: when the test fails, Burn computes the input
/// gradient of a strided 1x1 convolution right on wgpu, and the workaround can go. The wrong
/// kernel is the one used without `autotune`; with it, autotuning may or may not pick it.
#[cfg(all(feature = "wgpu", not(feature = "autotune")))]
mod strided_1x1_bug {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    use burn::tensor::module::conv2d as conv2d_op;
    use burn::tensor::ops::ConvOptions;

    use super::*;

    /// Burn's own convolution with stride 2 and no padding, without the workaround.
    fn plain_strided_1x1<B: AutodiffBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let options = ConvOptions::new([2, 2], [0, 0], [1, 1], 1);
        conv2d_op(x, conv.weight.val(), None, options)
    }

    #[test]
    fn burn_0_21_gets_the_input_gradient_of_a_strided_1x1_convolution_wrong_on_wgpu() {
        let case = RESNET_CONVS[5];
        let cpu = grads::<Autodiff<Flex>>(&FlexDevice, case, plain_strided_1x1);
        let gpu = grads::<Autodiff<Wgpu>>(&WgpuDevice::DefaultDevice, case, plain_strided_1x1);
        assert!(max_diff(&cpu[0], &gpu[0]) < 1e-4, "the forward agrees");
        assert!(
            max_diff(&cpu[1], &gpu[1]) > 0.1,
            "the input gradient now agrees: remove the workaround in nn::conv2d"
        );
    }
}
