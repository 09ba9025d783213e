//! The exported graph: torchvision's structure in ONNX operators, with every weight attached.

use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{AttributeValue, GraphNode, OptimizerKind, OptimizerSpec};
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::context;

fn spec() -> OptimizerSpec {
    OptimizerSpec {
        kind: OptimizerKind::Sgd,
        momentum: 0.0,
        nesterov: false,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        norm_bias_weight_decay: 0.0,
        clip_grad_norm: None.into(),
        ema: None.into(),
    }
}

fn ints(node: &GraphNode, name: &str) -> Vec<i64> {
    match &node
        .attributes
        .iter()
        .find(|a| a.name == name)
        .unwrap()
        .value
    {
        AttributeValue::Ints(v) => v.to_vec(),
        other => panic!("{name} is {other:?}"),
    }
}

fn node<'a>(graph: &'a ModelGraph, name: &str) -> &'a GraphNode {
    graph.nodes.iter().find(|n| n.name == name).unwrap()
}

fn count(graph: &ModelGraph, op: &str) -> usize {
    graph.nodes.iter().filter(|n| n.op == op).count()
}

#[test]
fn resnet18_graph_has_torchvisions_structure() {
    let model = ResNet::<18>::new(ResNetConfig::default(), &context(7, "cpu", spec())).unwrap();
    let graph = model.graph(WeightSet::Raw).unwrap();
    // torchvision resnet18: 20 convolutions and BatchNorms (17 + 3 downsample), 8 residual adds.
    assert_eq!(count(&graph, "Conv"), 20);
    assert_eq!(count(&graph, "BatchNormalization"), 20);
    assert_eq!(count(&graph, "Add"), 8);
    assert_eq!(count(&graph, "MaxPool"), 1);
    assert_eq!(count(&graph, "Gemm"), 1);
    let conv1 = node(&graph, "conv1");
    assert_eq!(conv1.inputs.as_slice(), ["input", "conv1.weight"]);
    assert_eq!(ints(conv1, "kernel_shape"), [7, 7]);
    assert_eq!(ints(conv1, "strides"), [2, 2]);
    assert_eq!(ints(conv1, "pads"), [3, 3, 3, 3]);
    let down = node(&graph, "layer2.0.downsample.0");
    assert_eq!(ints(down, "kernel_shape"), [1, 1]);
    assert_eq!(ints(down, "strides"), [2, 2]);
    let fc = graph.nodes.last().unwrap();
    assert_eq!(fc.inputs.as_slice(), ["flatten", "fc.weight", "fc.bias"]);
    assert_eq!(graph.outputs[0].shape.as_slice(), [-1, 7]);
    let weights = model.named_weights(WeightSet::Raw).unwrap();
    assert_eq!(graph.initializers.to_vec(), weights);
}

#[test]
fn resnet50_graph_strides_the_3x3_and_small_input_drops_the_pool() {
    let config = ResNetConfig {
        small_input: true,
        ..ResNetConfig::default()
    };
    let model = ResNet::<50>::new(config, &context(2, "cpu", spec())).unwrap();
    let graph = model.graph(WeightSet::Raw).unwrap();
    assert_eq!(count(&graph, "Conv"), 53);
    assert_eq!(count(&graph, "Add"), 16);
    assert_eq!(count(&graph, "MaxPool"), 0);
    assert_eq!(ints(node(&graph, "conv1"), "kernel_shape"), [3, 3]);
    assert_eq!(ints(node(&graph, "layer3.0.conv1"), "strides"), [1, 1]);
    assert_eq!(ints(node(&graph, "layer3.0.conv2"), "strides"), [2, 2]);
    assert!(model.graph(WeightSet::Ema).is_err());
}
