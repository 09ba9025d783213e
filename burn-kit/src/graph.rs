//! Building the framework-neutral [`ModelGraph`] exporters consume, with ONNX operator names and
//! attributes (see `clshost_plugin_api::ModelGraph`).
//!
//! A model's [`ClassifierModel::graph`](crate::ClassifierModel::graph) adds one node per
//! operation; a node reading a layer names it by its module path (`layer1.0.conv1`) and reads
//! that layer's weights under their own names (`layer1.0.conv1.weight`), which the kit then
//! attaches as initializers.

use std::collections::HashSet;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use clshost_plugin_api::{
    Attribute, AttributeValue, GraphNode, ModelGraph, NamedTensor, PluginError, RString, RVec,
    ValueInfo,
};

use crate::nn::BatchNorm2d;

/// Accumulates graph nodes in topological order.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<GraphNode>,
}

fn ints(values: &[usize]) -> AttributeValue {
    AttributeValue::Ints(values.iter().map(|&v| v as i64).collect())
}

fn attr(name: &str, value: AttributeValue) -> Attribute {
    Attribute {
        name: name.into(),
        value,
    }
}

/// The `(top, left, bottom, right)` padding of a layer, which must be explicit or valid.
fn pads(padding: &PaddingConfig2d, layer: &str) -> Result<[usize; 4], PluginError> {
    match padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(t, l, b, r) => Ok([*t, *l, *b, *r]),
        PaddingConfig2d::Same => Err(PluginError::unsupported(format!(
            "`{layer}` uses `same` padding, which the graph cannot express; use explicit padding"
        ))),
    }
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node `op` named `name` reading `inputs`; returns its output value's name (`name`).
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<Attribute>,
    ) -> String {
        self.nodes.push(GraphNode {
            op: op.into(),
            name: name.into(),
            inputs: inputs.iter().map(|&i| RString::from(i)).collect(),
            outputs: RVec::from(vec![RString::from(name)]),
            attributes: attributes.into(),
        });
        name.to_string()
    }

    /// A `Conv` node for the Burn convolution at module path `name`.
    pub fn conv2d<B: Backend>(
        &mut self,
        name: &str,
        input: &str,
        conv: &Conv2d<B>,
    ) -> Result<String, PluginError> {
        let weight = format!("{name}.weight");
        let bias = format!("{name}.bias");
        let mut inputs = vec![input, weight.as_str()];
        if conv.bias.is_some() {
            inputs.push(bias.as_str());
        }
        let attributes = vec![
            attr("kernel_shape", ints(&conv.kernel_size)),
            attr("strides", ints(&conv.stride)),
            attr("pads", ints(&pads(&conv.padding, name)?)),
            attr("dilations", ints(&conv.dilation)),
            attr("group", AttributeValue::Int(conv.groups as i64)),
        ];
        Ok(self.node("Conv", name, &inputs, attributes))
    }

    /// A `BatchNormalization` node (inference form) for the layer at module path `name`.
    pub fn batch_norm<B: Backend>(
        &mut self,
        name: &str,
        input: &str,
        bn: &BatchNorm2d<B>,
    ) -> String {
        let names =
            ["weight", "bias", "running_mean", "running_var"].map(|p| format!("{name}.{p}"));
        let mut inputs = vec![input];
        inputs.extend(names.iter().map(String::as_str));
        let attributes = vec![
            attr("epsilon", AttributeValue::Float(bn.eps)),
            attr("momentum", AttributeValue::Float(1.0 - bn.momentum)),
        ];
        self.node("BatchNormalization", name, &inputs, attributes)
    }

    /// A `Relu` node.
    pub fn relu(&mut self, name: &str, input: &str) -> String {
        self.node("Relu", name, &[input], Vec::new())
    }

    /// A `MaxPool` node with `(top, left, bottom, right)` padding.
    pub fn max_pool(
        &mut self,
        name: &str,
        input: &str,
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
    ) -> String {
        let attributes = vec![
            attr("kernel_shape", ints(&kernel)),
            attr("strides", ints(&stride)),
            attr("pads", ints(&pads)),
        ];
        self.node("MaxPool", name, &[input], attributes)
    }

    /// A `GlobalAveragePool` node.
    pub fn global_average_pool(&mut self, name: &str, input: &str) -> String {
        self.node("GlobalAveragePool", name, &[input], Vec::new())
    }

    /// An `Add` node.
    pub fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Add", name, &[a, b], Vec::new())
    }

    /// A `Flatten` node keeping the first `axis` dimensions apart.
    pub fn flatten(&mut self, name: &str, input: &str, axis: i64) -> String {
        self.node(
            "Flatten",
            name,
            &[input],
            vec![attr("axis", AttributeValue::Int(axis))],
        )
    }

    /// A `Gemm` node (`transB = 1`) for the linear layer at module path `name`.
    pub fn gemm(&mut self, name: &str, input: &str) -> String {
        let weight = format!("{name}.weight");
        let bias = format!("{name}.bias");
        self.node(
            "Gemm",
            name,
            &[input, &weight, &bias],
            vec![attr("transB", AttributeValue::Int(1))],
        )
    }

    /// The finished graph: one `[N, 3, H, W]` input named `input`, the logits output `output`
    /// with `classes` columns, and `weights` as initializers. Fails when a node reads a value
    /// that is neither a graph input, an earlier node's output nor a weight, or when a weight
    /// is unused.
    pub fn finish(
        self,
        input: &str,
        output: &str,
        classes: usize,
        weights: Vec<NamedTensor>,
    ) -> Result<ModelGraph, PluginError> {
        let weight_names: HashSet<&str> = weights.iter().map(|w| w.name.as_str()).collect();
        let mut known: HashSet<&str> = HashSet::from([input]);
        let mut used: HashSet<&str> = HashSet::new();
        for node in &self.nodes {
            for i in node.inputs.iter() {
                if weight_names.contains(i.as_str()) {
                    used.insert(i.as_str());
                } else if !known.contains(i.as_str()) {
                    return Err(PluginError::internal(format!(
                        "graph node `{}` reads `{i}`, which nothing defines",
                        node.name
                    )));
                }
            }
            known.extend(node.outputs.iter().map(RString::as_str));
        }
        if !known.contains(output) {
            return Err(PluginError::internal(format!(
                "no graph node produces `{output}`"
            )));
        }
        if let Some(unused) = weights.iter().find(|w| !used.contains(w.name.as_str())) {
            return Err(PluginError::internal(format!(
                "weight `{}` is read by no graph node",
                unused.name
            )));
        }
        Ok(ModelGraph {
            inputs: RVec::from(vec![ValueInfo {
                name: input.into(),
                shape: RVec::from(vec![-1, 3, -1, -1]),
            }]),
            outputs: RVec::from(vec![ValueInfo {
                name: output.into(),
                shape: RVec::from(vec![-1, classes as i64]),
            }]),
            nodes: self.nodes.into(),
            initializers: weights.into(),
        })
    }
}
