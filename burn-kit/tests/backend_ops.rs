//! The convolutions of a ResNet, forward and backward, on wgpu against the CPU (flex, whose
//! gradients match PyTorch's: the resnet plugin's parity tests). Needs a Vulkan driver; CI has
//! Mesa's software lavapipe. Burn's cubecl kernels are shared by wgpu and CUDA, so what holds
//! here holds for CUDA too (`scripts/gpu-check.sh` runs the resnet-level check on both).
#![cfg(feature = "wgpu")]

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, Wgpu};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::module::conv2d as conv2d_op;
use burn::tensor::ops::ConvOptions;
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

/// A convolution: input shape, then `[out, in, k, k]`, stride, padding.
#[derive(Clone, Copy, Debug)]
struct Case {
    input: [usize; 4],
    kernel: [usize; 4],
    stride: usize,
    padding: usize,
}

/// Output, input gradient and weight gradient of `case` for the loss `sum(y * g)`, computed by
/// `apply` on backend `B`.
fn grads<B: AutodiffBackend>(
    device: &B::Device,
    case: Case,
    apply: impl Fn(&Conv2d<B>, Tensor<B, 4>) -> Tensor<B, 4>,
) -> [Vec<f32>; 3] {
    let [out, inp, k, _] = case.kernel;
    let mut conv: Conv2d<B> = Conv2dConfig::new([inp, out], [k, k])
        .with_stride([case.stride, case.stride])
        .with_padding(PaddingConfig2d::Explicit(
            case.padding,
            case.padding,
            case.padding,
            case.padding,
        ))
        .with_bias(false)
        .init(device);
    conv.weight = conv
        .weight
        .map(|_| Tensor::from_data(values(case.kernel, 2), device).require_grad());
    let x = Tensor::<B, 4>::from_data(values(case.input, 1), device).require_grad();
    let y = apply(&conv, x.clone());
    let g = Tensor::<B, 4>::from_data(values(y.dims(), 3), device);
    let all = (y.clone() * g).sum().backward();
    let host = |t: Tensor<B::InnerBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
    [
        host(y.inner()),
        host(x.grad(&all).unwrap()),
        host(conv.weight.val().grad(&all).unwrap()),
    ]
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every convolution shape of torchvision's ResNets, small.
const RESNET_CONVS: [Case; 7] = [
    // stem: 7x7 stride 2, and the 3x3 stem of `small_input`
    Case {
        input: [2, 3, 16, 16],
        kernel: [4, 3, 7, 7],
        stride: 2,
        padding: 3,
    },
    Case {
        input: [2, 3, 8, 8],
        kernel: [4, 3, 3, 3],
        stride: 1,
        padding: 1,
    },
    // 3x3 convolutions of blocks, and the strided first one of a stage
    Case {
        input: [2, 8, 6, 6],
        kernel: [8, 8, 3, 3],
        stride: 1,
        padding: 1,
    },
    Case {
        input: [2, 4, 8, 8],
        kernel: [8, 4, 3, 3],
        stride: 2,
        padding: 1,
    },
    // bottleneck 1x1, and projection shortcuts: 1x1 stride 2 on even and odd sizes
    Case {
        input: [2, 8, 4, 4],
        kernel: [4, 8, 1, 1],
        stride: 1,
        padding: 0,
    },
    Case {
        input: [2, 4, 8, 8],
        kernel: [8, 4, 1, 1],
        stride: 2,
        padding: 0,
    },
    Case {
        input: [3, 4, 7, 5],
        kernel: [8, 4, 1, 1],
        stride: 2,
        padding: 0,
    },
];

#[test]
fn resnet_convolutions_agree_with_the_cpu_forward_and_backward() {
    let mut failures = Vec::new();
    for case in RESNET_CONVS {
        let cpu = grads::<Autodiff<Flex>>(&FlexDevice, case, conv2d);
        let gpu = grads::<Autodiff<Wgpu>>(&WgpuDevice::DefaultDevice, case, conv2d);
        for (what, c, g) in [
            ("output", &cpu[0], &gpu[0]),
            ("input gradient", &cpu[1], &gpu[1]),
            ("weight gradient", &cpu[2], &gpu[2]),
        ] {
            let d = max_diff(c, g);
            if d > 1e-4 {
                failures.push(format!("{case:?}: {what} differs by {d}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Burn's own convolution with stride 2 and no padding, without the workaround.
fn plain_strided_1x1<B: AutodiffBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let options = ConvOptions::new([2, 2], [0, 0], [1, 1], 1);
    conv2d_op(x, conv.weight.val(), None, options)
}

/// Pins the Burn 0.21 bug `nn::conv2d` works around: when this fails, Burn computes the input
/// gradient of a strided 1x1 convolution right on wgpu, and the workaround can go. The wrong
/// kernel is the one used without `autotune`; with it, autotuning may or may not pick it.
#[cfg(not(feature = "autotune"))]
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
