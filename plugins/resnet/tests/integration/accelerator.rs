//! An accelerator backend against the CPU one: a training step and an evaluation of a small
//! ResNet should agree within float tolerance. The device is `CLSHOST_TEST_DEVICE` when it names
//! one other than the CPU (`cuda`, `wgpu:1`; `scripts/gpu-check.sh` sets it), else `wgpu`.
//! wgpu needs a Vulkan driver; CI has Mesa's software lavapipe (`apt-get install
//! mesa-vulkan-drivers libvulkan1`). This test found Burn 0.21's wrong input gradient of strided
//! 1x1 convolutions on wgpu and CUDA, which `clshost_burn_kit::nn::conv2d` works around.

use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::{
    context, fixture_value, load_fixture_weights, max_abs_diff, momentum_sgd, test_device,
};

fn run(device: &str) -> (Tensor, Tensor, Vec<NamedTensor>) {
    let spec = momentum_sgd(1e-4);
    let config = ResNetConfig {
        small_input: true,
        ..ResNetConfig::default()
    };
    let mut model = ResNet::<18>::new(config, &context(4, device, spec))
        .unwrap_or_else(|e| panic!("cannot create a backbone on `{device}`: {e}"));
    load_fixture_weights(&mut model);
    let x = fixture_value("wgpu.input", &[2, 3, 16, 16]);
    let logits = model.forward(x.view()).unwrap();
    let grad = fixture_value("wgpu.grad", &logits.shape);
    model
        .backward_step(
            grad.view(),
            StepParams {
                lr: 0.01,
                apply_update: true,
            },
        )
        .unwrap();
    let eval = model.eval_forward(x.view(), WeightSet::Raw).unwrap();
    (logits, eval, model.named_weights(WeightSet::Raw).unwrap())
}

fn diff(a: &Tensor, b: &Tensor) -> f64 {
    let b: Vec<f64> = b.data.iter().map(|&v| f64::from(v)).collect();
    max_abs_diff(&a.data, &b)
}

#[test]
fn an_accelerator_training_step_matches_the_cpu() {
    let device = match test_device().as_str() {
        "cpu" => "wgpu".to_string(),
        other => other.to_string(),
    };
    let (cpu_logits, cpu_eval, cpu_weights) = run("cpu");
    let (gpu_logits, gpu_eval, gpu_weights) = run(&device);
    let mut failures = Vec::new();
    for (what, d, tol) in [
        ("training logits", diff(&gpu_logits, &cpu_logits), 1e-3),
        (
            "eval logits after the step",
            diff(&gpu_eval, &cpu_eval),
            1e-3,
        ),
    ] {
        if d > tol {
            failures.push(format!("{device}: {what} differ by {d}"));
        }
    }
    for (g, c) in gpu_weights.iter().zip(&cpu_weights) {
        assert_eq!(g.name, c.name);
        let d = diff(&g.tensor, &c.tensor);
        if d > 1e-4 {
            failures.push(format!(
                "{device}: `{}` differs by {d} after the step",
                g.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
