//! Fine-tuning controls against PyTorch: a frozen parameter, two parameter groups (one with its
//! own weight decay) and layer-wise learning-rate decay, resolved from name patterns by
//! [`tune::plan`] and applied by the kit's optimizer for three steps of SGD and of AdamW, must
//! give torch.optim's values (`scripts/fixtures/param_groups.py`, float64) within 1e-6: on Burn's
//! CPU backend (the kit's one-pass CPU kernels, which give the bits of the optimizer's tensor
//! expressions) and, with the `libtorch` feature, on LibTorch (ATen's fused kernels, several
//! kernel calls per step for the groups).

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_flex::{Flex, FlexDevice};
use clshost_burn_kit::optim::{Optimizer, Update};
use clshost_burn_kit::tune;
use clshost_plugin_api::{OptimizerKind, OptimizerSpec, ParamGroup, TuneSpec};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/param_groups.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn spec(kind: OptimizerKind) -> OptimizerSpec {
    OptimizerSpec {
        kind,
        momentum: 0.9,
        nesterov: false,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.05,
        norm_bias_weight_decay: 0.0,
        clip_grad_norm: None.into(),
        ema: None.into(),
    }
}

fn tune_spec() -> TuneSpec {
    TuneSpec {
        freeze: vec!["conv1.*".into()].into(),
        groups: vec![
            ParamGroup {
                params: vec!["fc.*".into()].into(),
                lr_scale: 10.0,
                weight_decay: Some(0.0).into(),
            },
            ParamGroup {
                params: vec!["layer1.*".into()].into(),
                lr_scale: 0.5,
                weight_decay: None.into(),
            },
        ]
        .into(),
        layer_decay: Some(0.7).into(),
        freeze_norm_stats: false,
    }
}

/// The fixture's layers: the stem 0, `layer1` 1, the head 2.
fn layer(name: &str) -> Option<usize> {
    Some(match name.split('.').next()? {
        "conv1" | "bn1" => 0,
        "layer1" => 1,
        _ => 2,
    })
}

fn check<B: Backend>(kind: OptimizerKind, expected: &str, device: B::Device) {
    let f = fixture();
    let shapes: Vec<(String, Vec<usize>)> = f["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let shape = p["shape"].as_array().unwrap();
            (
                p["name"].as_str().unwrap().to_string(),
                shape.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
            )
        })
        .collect();
    let params: Vec<(String, u64)> = shapes
        .iter()
        .map(|(n, s)| (n.clone(), s.iter().product::<usize>() as u64))
        .collect();
    let plan = tune::plan(&tune_spec(), &params, layer).unwrap();
    let mut optim = Optimizer::<B>::new(spec(kind));
    optim.rates = plan.rates;
    let tensor = |v: Vec<f32>| {
        let n = v.len();
        Tensor::<B, 1>::from_data(TensorData::new(v, [n]), &device)
    };
    let mut values: HashMap<String, Tensor<B, 1>> = shapes
        .iter()
        .map(|(n, _)| (n.clone(), tensor(floats(&f["initial"][n]))))
        .collect();
    for (step, lr) in f["lrs"].as_array().unwrap().iter().enumerate() {
        let updates = shapes
            .iter()
            .filter(|(name, _)| !plan.frozen.contains(name))
            .map(|(name, shape)| Update {
                name: name.clone(),
                rank: shape.len(),
                param: values.remove(name).unwrap(),
                grad: tensor(floats(&f["grads"][step][name])),
            })
            .collect();
        values.extend(optim.step(updates, lr.as_f64().unwrap()).unwrap());
    }
    for (name, _) in &shapes {
        let got: Vec<f32> = values[name].clone().into_data().to_vec().unwrap();
        let want = floats(&f[expected][name]);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{expected} {name}: {g} vs torch {w}");
        }
    }
    assert!(
        !optim.state.contains_key("conv1.weight"),
        "a frozen parameter has no state"
    );
}

#[test]
fn sgd_parameter_groups_match_torch() {
    check::<Flex>(OptimizerKind::Sgd, "sgd", FlexDevice);
}

#[test]
fn adamw_parameter_groups_match_torch() {
    check::<Flex>(OptimizerKind::AdamW, "adamw", FlexDevice);
}

#[cfg(feature = "libtorch")]
mod libtorch {
    use burn_tch::{LibTorch, LibTorchDevice};
    use clshost_plugin_api::OptimizerKind;

    use super::check;

    #[test]
    fn sgd_parameter_groups_match_torch_with_fused_kernels() {
        check::<LibTorch>(OptimizerKind::Sgd, "sgd", LibTorchDevice::Cpu);
    }

    #[test]
    fn adamw_parameter_groups_match_torch_with_fused_kernels() {
        check::<LibTorch>(OptimizerKind::AdamW, "adamw", LibTorchDevice::Cpu);
    }
}
