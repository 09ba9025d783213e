//! Translation of a backbone's [`ModelGraph`] into an ONNX `ModelProto`.
//!
//! The graph's operators and attributes already follow ONNX (see `clshost_plugin_api::graph`),
//! so nodes carry over one for one, with these rewrites:
//!
//! - the graph input and output take the configured names (`images`, `logits`), and the input
//!   gets the run's input size with a symbolic `batch` axis (or a fixed batch size);
//! - with `fold_batchnorm`, a `BatchNormalization` that alone reads a `Conv`'s output is folded
//!   into that convolution: `w' = w * s`, `b' = (b - mean) * s + beta` with
//!   `s = gamma / sqrt(var + epsilon)`, computed in f64;
//! - from opset 18, `ReduceMean`'s `axes` attribute becomes an int64 initializer input;
//! - weights no node reads are left out;
//! - with `fp16`, weights are stored as float16 and each is `Cast` to float32 where it is read,
//!   so the file is half the size and the arithmetic stays in float32;
//! - with `softmax`, a `Softmax` over the classes adds a probabilities output;
//! - `metadata_props` record what a consumer needs (see `docs/plugins/export.md`).

use std::collections::{HashMap, HashSet};

use clshost_plugin_api::{AttributeValue, ExportMeta, ModelGraph, PluginError};
use half::f16;
use serde_json::json;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{self, type_proto};

use super::OnnxConfig;

/// The symbol of the dynamic batch axis.
pub(crate) const BATCH: &str = "batch";

/// The IR version that goes with an opset (the newest a runtime of that opset reads).
pub(crate) fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// A weight being prepared for the file.
struct Weight {
    name: String,
    shape: Vec<usize>,
    data: WeightData,
}

/// A weight's elements.
enum WeightData {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

/// A node being prepared for the file.
struct Node {
    op: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attributes: Vec<pb::AttributeProto>,
}

/// An ONNX attribute from a graph attribute.
fn attribute(name: &str, value: &AttributeValue) -> pb::AttributeProto {
    let mut a = pb::AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match value {
        AttributeValue::Int(i) => {
            a.r#type = AttributeType::Int as i32;
            a.i = *i;
        }
        AttributeValue::Float(f) => {
            a.r#type = AttributeType::Float as i32;
            a.f = *f as f32;
        }
        AttributeValue::Ints(v) => {
            a.r#type = AttributeType::Ints as i32;
            a.ints = v.to_vec();
        }
        AttributeValue::Floats(v) => {
            a.r#type = AttributeType::Floats as i32;
            a.floats = v.iter().map(|&f| f as f32).collect();
        }
        AttributeValue::Str(s) => {
            a.r#type = AttributeType::String as i32;
            a.s = s.as_bytes().to_vec();
        }
    }
    a
}

/// An integer attribute.
fn int_attribute(name: &str, value: i64) -> pb::AttributeProto {
    attribute(name, &AttributeValue::Int(value))
}

/// A tensor type with the given dimensions.
fn tensor_type(name: &str, elem: DataType, dims: &[Dimension]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto { dim: dims.to_vec() }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A fixed dimension.
fn fixed(n: i64) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(n)),
        ..Default::default()
    }
}

/// A symbolic dimension.
fn symbol(name: &str) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimParam(name.to_string())),
        ..Default::default()
    }
}

/// The model the exporter writes for `graph`; `check_model` runs on it before it is written.
pub(crate) fn build_model(
    graph: &ModelGraph,
    meta: &ExportMeta,
    config: &OnnxConfig,
) -> Result<pb::ModelProto, PluginError> {
    let ([input], [output]) = (graph.inputs.as_slice(), graph.outputs.as_slice()) else {
        return Err(PluginError::unsupported(format!(
            "the onnx exporter handles one image input and one logits output; the graph has \
             {} inputs and {} outputs",
            graph.inputs.len(),
            graph.outputs.len()
        )));
    };
    let [_, channels, height, width] = input.shape.as_slice() else {
        return Err(PluginError::input(format!(
            "graph input `{}` has shape {:?}, expected [N, C, H, W]",
            input.name,
            input.shape.as_slice()
        )));
    };
    let size = [i64::from(meta.input_height), i64::from(meta.input_width)];
    for (dim, (axis, expected)) in [height, width]
        .into_iter()
        .zip(["height", "width"].iter().zip(size))
    {
        if *dim != -1 && *dim != expected {
            return Err(PluginError::input(format!(
                "graph input {axis} {dim} differs from the run's input {axis} {expected}"
            )));
        }
    }
    let classes = match output.shape.as_slice() {
        [_, c] if *c > 0 => *c,
        shape => {
            return Err(PluginError::input(format!(
                "graph output `{}` has shape {shape:?}, expected [N, classes]",
                output.name
            )));
        }
    };
    if !meta.class_names.is_empty() && meta.class_names.len() as i64 != classes {
        return Err(PluginError::input(format!(
            "{} class names for a model with {classes} outputs",
            meta.class_names.len()
        )));
    }

    let mut weights: Vec<Weight> = graph
        .initializers
        .iter()
        .map(|t| Weight {
            name: t.name.to_string(),
            shape: t.tensor.shape.to_vec(),
            data: WeightData::Float(t.tensor.data.to_vec()),
        })
        .collect();
    let rename = |name: &str| -> String {
        if name == input.name.as_str() {
            config.input_name.clone()
        } else if name == output.name.as_str() {
            config.output_name.clone()
        } else {
            name.to_string()
        }
    };
    let mut nodes: Vec<Node> = graph
        .nodes
        .iter()
        .map(|n| Node {
            op: n.op.to_string(),
            name: n.name.to_string(),
            inputs: n.inputs.iter().map(|i| rename(i)).collect(),
            outputs: n.outputs.iter().map(|o| rename(o)).collect(),
            attributes: n
                .attributes
                .iter()
                .map(|a| attribute(&a.name, &a.value))
                .collect(),
        })
        .collect();
    check_renames(graph, config, &input.name, &output.name)?;

    if config.fold_batchnorm {
        fold_batchnorm(&mut nodes, &mut weights, &config.output_name)?;
    }
    if config.opset >= 18 {
        reduce_mean_axes_as_inputs(&mut nodes, &mut weights);
    }
    let read: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .collect();
    let weights: Vec<Weight> = weights
        .into_iter()
        .filter(|w| read.contains(w.name.as_str()))
        .collect();
    if config.fp16 {
        cast_fp16_weights(&mut nodes, &weights);
    }
    let mut outputs = vec![tensor_type(
        &config.output_name,
        DataType::Float,
        &[batch_dim(config), fixed(classes)],
    )];
    if config.softmax {
        nodes.push(Node {
            op: "Softmax".into(),
            name: "softmax".into(),
            inputs: vec![config.output_name.clone()],
            outputs: vec![config.probabilities_name.clone()],
            attributes: vec![int_attribute("axis", 1)],
        });
        outputs.push(tensor_type(
            &config.probabilities_name,
            DataType::Float,
            &[batch_dim(config), fixed(classes)],
        ));
    }

    let graph = pb::GraphProto {
        name: meta.backbone.to_string(),
        node: nodes.into_iter().map(node_proto).collect(),
        initializer: weights
            .iter()
            .map(|w| tensor_proto(w, config.fp16))
            .collect(),
        input: vec![tensor_type(
            &config.input_name,
            DataType::Float,
            &[
                batch_dim(config),
                fixed(*channels),
                fixed(size[0]),
                fixed(size[1]),
            ],
        )],
        output: outputs,
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: ir_version(config.opset),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: config.opset,
        }],
        producer_name: "clshost".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} image classifier from the clshost recipe `{}`",
            meta.backbone, meta.recipe_name
        ),
        graph: Some(graph),
        metadata_props: metadata(meta, config)?,
        ..Default::default()
    })
}

/// The batch dimension: the `batch` symbol, or the configured fixed size.
fn batch_dim(config: &OnnxConfig) -> Dimension {
    if config.dynamic_batch {
        symbol(BATCH)
    } else {
        fixed(i64::from(config.batch_size))
    }
}

/// Fails when a configured input/output name is already used by another value of the graph.
fn check_renames(
    graph: &ModelGraph,
    config: &OnnxConfig,
    input: &str,
    output: &str,
) -> Result<(), PluginError> {
    let mut taken: HashSet<&str> = graph.initializers.iter().map(|w| w.name.as_str()).collect();
    taken.extend(
        graph
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().map(|o| o.as_str())),
    );
    taken.remove(input);
    taken.remove(output);
    let mut names = vec![
        ("input_name", &config.input_name),
        ("output_name", &config.output_name),
    ];
    if config.softmax {
        names.push(("probabilities_name", &config.probabilities_name));
    }
    for (field, name) in names {
        if taken.contains(name.as_str()) {
            return Err(PluginError::config(
                field,
                format!("`{name}` already names a value or weight of the model"),
            ));
        }
    }
    Ok(())
}

/// Folds every `BatchNormalization` that alone reads a `Conv`'s output into that convolution.
fn fold_batchnorm(
    nodes: &mut Vec<Node>,
    weights: &mut Vec<Weight>,
    graph_output: &str,
) -> Result<(), PluginError> {
    let mut readers: HashMap<String, usize> = HashMap::new();
    for n in nodes.iter() {
        for i in &n.inputs {
            *readers.entry(i.clone()).or_default() += 1;
        }
    }
    let index: HashMap<String, usize> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.clone(), i))
        .collect();
    let float = |name: &str| -> Option<&[f32]> {
        match &weights[*index.get(name)?].data {
            WeightData::Float(v) => Some(v),
            WeightData::Int(_) => None,
        }
    };
    let mut folds = Vec::new();
    for (b, bn) in nodes.iter().enumerate() {
        if bn.op != "BatchNormalization" || bn.outputs.len() != 1 || bn.inputs.len() != 5 {
            continue;
        }
        let x = &bn.inputs[0];
        let Some(c) = nodes[..b]
            .iter()
            .position(|n| n.op == "Conv" && n.outputs == [x.clone()])
        else {
            continue;
        };
        let conv = &nodes[c];
        let alone = |name: &str| readers.get(name) == Some(&1) && index.contains_key(name);
        if readers[x] != 1 || x == graph_output || !alone(&conv.inputs[1]) {
            continue;
        }
        if conv.inputs.get(2).is_some_and(|bias| !alone(bias)) {
            continue;
        }
        let params: Option<Vec<&[f32]>> = bn.inputs[1..].iter().map(|p| float(p)).collect();
        let Some(params) = params else { continue };
        let epsilon = bn
            .attributes
            .iter()
            .find(|a| a.name == "epsilon")
            .map_or(1e-5, |a| f64::from(a.f));
        let out_channels = weights[index[&conv.inputs[1]]].shape[0];
        if params.iter().any(|p| p.len() != out_channels) {
            return Err(PluginError::input(format!(
                "`{}` has parameters of another length than `{}`'s {out_channels} channels",
                bn.name, conv.name
            )));
        }
        let scale: Vec<f64> = (0..out_channels)
            .map(|o| f64::from(params[0][o]) / (f64::from(params[3][o]) + epsilon).sqrt())
            .collect();
        let old_bias = conv.inputs.get(2).and_then(|name| float(name));
        let bias: Vec<f32> = (0..out_channels)
            .map(|o| {
                let b = old_bias.map_or(0.0, |v| f64::from(v[o]));
                ((b - f64::from(params[2][o])) * scale[o] + f64::from(params[1][o])) as f32
            })
            .collect();
        folds.push((c, b, scale, bias));
    }
    let mut removed = HashSet::new();
    for (c, b, scale, bias) in folds {
        let w = index[&nodes[c].inputs[1]];
        if let WeightData::Float(data) = &mut weights[w].data {
            let per_channel = data.len() / scale.len();
            for (o, chunk) in data.chunks_mut(per_channel).enumerate() {
                for v in chunk {
                    *v = (f64::from(*v) * scale[o]) as f32;
                }
            }
        }
        let bias_shape = vec![bias.len()];
        match nodes[c].inputs.get(2).map(|name| index[name]) {
            Some(i) => weights[i].data = WeightData::Float(bias),
            None => {
                let mut name = format!("{}.bias", nodes[c].name);
                while index.contains_key(&name) || readers.contains_key(&name) {
                    name.push_str("_folded");
                }
                weights.push(Weight {
                    name: name.clone(),
                    shape: bias_shape,
                    data: WeightData::Float(bias),
                });
                nodes[c].inputs.push(name);
            }
        }
        nodes[c].outputs = nodes[b].outputs.clone();
        removed.insert(b);
    }
    let mut i = 0;
    nodes.retain(|_| {
        i += 1;
        !removed.contains(&(i - 1))
    });
    Ok(())
}

/// Moves `ReduceMean`'s `axes` attribute to an int64 initializer input (opset 18 and later).
fn reduce_mean_axes_as_inputs(nodes: &mut [Node], weights: &mut Vec<Weight>) {
    for node in nodes.iter_mut().filter(|n| n.op == "ReduceMean") {
        let Some(at) = node.attributes.iter().position(|a| a.name == "axes") else {
            continue;
        };
        let axes = node.attributes.remove(at).ints;
        let name = format!("{}.axes", node.name);
        weights.push(Weight {
            name: name.clone(),
            shape: vec![axes.len()],
            data: WeightData::Int(axes),
        });
        node.inputs.truncate(1);
        node.inputs.push(name);
    }
}

/// Stores float weights as float16: each is read through a `Cast` to float32 placed first.
fn cast_fp16_weights(nodes: &mut Vec<Node>, weights: &[Weight]) {
    let mut casts = Vec::new();
    let mut renamed = HashMap::new();
    for w in weights {
        if let WeightData::Float(_) = w.data {
            let cast = format!("{}.f32", w.name);
            casts.push(Node {
                op: "Cast".into(),
                name: format!("{}.cast", w.name),
                inputs: vec![w.name.clone()],
                outputs: vec![cast.clone()],
                attributes: vec![int_attribute("to", DataType::Float as i64)],
            });
            renamed.insert(w.name.clone(), cast);
        }
    }
    for node in nodes.iter_mut() {
        for input in &mut node.inputs {
            if let Some(cast) = renamed.get(input) {
                input.clone_from(cast);
            }
        }
    }
    casts.append(nodes);
    *nodes = casts;
}

/// The proto of a node.
fn node_proto(n: Node) -> pb::NodeProto {
    pb::NodeProto {
        op_type: n.op,
        name: n.name,
        input: n.inputs,
        output: n.outputs,
        attribute: n.attributes,
        ..Default::default()
    }
}

/// The proto of a weight, little-endian in `raw_data`; float weights as float16 with `fp16`.
fn tensor_proto(w: &Weight, fp16: bool) -> pb::TensorProto {
    let (data_type, raw_data) = match &w.data {
        WeightData::Float(v) if fp16 => (
            DataType::Float16,
            v.iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        WeightData::Float(v) => (
            DataType::Float,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        WeightData::Int(v) => (
            DataType::Int64,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    };
    pb::TensorProto {
        name: w.name.clone(),
        dims: w.shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
}

/// The model's `metadata_props`: what a consumer needs besides the graph.
fn metadata(
    meta: &ExportMeta,
    config: &OnnxConfig,
) -> Result<Vec<pb::StringStringEntryProto>, PluginError> {
    let class_names: Vec<&str> = meta.class_names.iter().map(|c| c.as_str()).collect();
    let mut props = vec![
        ("class_names", json!(class_names).to_string()),
        (
            "input_size",
            json!([meta.input_height, meta.input_width]).to_string(),
        ),
        ("mean", json!(meta.mean).to_string()),
        ("std", json!(meta.std).to_string()),
        ("recipe_name", meta.recipe_name.to_string()),
        ("recipe", meta.recipe.to_string()),
        ("backbone", meta.backbone.to_string()),
        ("input_name", config.input_name.clone()),
        ("output_name", config.output_name.clone()),
        ("fp16_weights", config.fp16.to_string()),
        ("batchnorm_folded", config.fold_batchnorm.to_string()),
    ];
    if config.softmax {
        props.push(("probabilities_name", config.probabilities_name.clone()));
    }
    let mut entries: Vec<pb::StringStringEntryProto> = props
        .into_iter()
        .map(|(key, value)| pb::StringStringEntryProto {
            key: key.to_string(),
            value,
        })
        .collect();
    for pair in meta.extra.iter() {
        if entries.iter().any(|e| e.key == pair.0.as_str()) {
            return Err(PluginError::input(format!(
                "export metadata key `{}` is reserved by the onnx exporter",
                pair.0
            )));
        }
        entries.push(pb::StringStringEntryProto {
            key: pair.0.to_string(),
            value: pair.1.to_string(),
        });
    }
    Ok(entries)
}
