//! The structural check of an ONNX model, run on every file the `onnx` exporter writes and
//! reads back: what `onnx.checker` establishes that tract, which loads and runs the file, does
//! not.
//!
//! It checks that the model declares an IR version and an opset in range and has a graph; that
//! every initializer's data fills its shape; that every node is one of the operators the
//! exporter writes, reads only graph inputs, initializers and earlier nodes' outputs (so the
//! nodes are in topological order), and that every value is defined once; and that every graph
//! output is computed. Element types and shapes are tract's part: [`check_model`] ends with
//! tract's type and shape analysis of the whole graph ([`super::run::analyse`], a symbolic
//! batch taken as 1), which fails where an operator's inputs disagree (a convolution whose
//! weight expects other channels; an `Add` of shapes that do not broadcast, reported at the
//! first node that needs the sum's shape), and compares each graph output's declared shape with
//! the one tract infers. Symbolic dimensions (the dynamic batch) match any size.

use std::collections::HashSet;
use std::fmt;

use clshost_plugin_api::PluginError;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension;
use tract_onnx::pb::{self, type_proto};

/// One dimension of a shape: a size, or a symbol such as the dynamic `batch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    /// A known size.
    Known(i64),
    /// A symbolic size, by name.
    Named(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Named(s) => f.write_str(s),
        }
    }
}

/// A value's element type and shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ValueType {
    /// The element type.
    pub elem: DataType,
    /// The dimensions, outermost first.
    pub shape: Vec<Dim>,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        write!(f, "{}[{}]", self.elem.as_str_name(), dims.join(", "))
    }
}

/// What a successful check saw.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CheckSummary {
    /// The default-domain opset.
    pub opset: i64,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of initializers.
    pub initializers: usize,
    /// The graph inputs, by name.
    pub inputs: Vec<(String, ValueType)>,
    /// The graph outputs, by name, with their declared types (`None`: no shape declared).
    pub outputs: Vec<(String, Option<ValueType>)>,
}

/// The opsets the checker (and the exporter) accept.
pub(crate) const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// An error about the model as a whole.
fn invalid(message: impl fmt::Display) -> PluginError {
    PluginError::input(format!("invalid ONNX model: {message}"))
}

/// The operators the exporter writes (`onnx_build.rs`); a node of any other is refused.
const OPERATORS: [&str; 14] = [
    "Conv",
    "BatchNormalization",
    "Relu",
    "Sigmoid",
    "Identity",
    "Softmax",
    "Cast",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Add",
    "Flatten",
    "Gemm",
];

/// Checks `model`; see the module documentation for what is checked.
pub(crate) fn check_model(model: &pb::ModelProto) -> Result<CheckSummary, PluginError> {
    if model.ir_version < 7 {
        return Err(invalid(format!(
            "IR version {} is older than 7 (opset 13)",
            model.ir_version
        )));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| invalid("no opset of the default domain is imported"))?;
    if !OPSETS.contains(&opset) {
        return Err(invalid(format!(
            "opset {opset} is outside the supported {}..={}",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| invalid("the model has no graph"))?;
    let mut defined = Defined::default();
    let mut inputs = Vec::new();
    for input in &graph.input {
        let ty = declared_type(input)?
            .ok_or_else(|| invalid(format!("graph input `{}` declares no shape", input.name)))?;
        defined.define(&input.name, "graph input")?;
        inputs.push((input.name.clone(), ty));
    }
    for init in &graph.initializer {
        check_initializer(init)?;
        defined.define(&init.name, "initializer")?;
    }
    for node in &graph.node {
        check_node(node, &mut defined).map_err(|e| {
            PluginError::new(
                e.kind,
                format!(
                    "invalid ONNX model: node `{}` ({}): {}",
                    node.name, node.op_type, e.message
                ),
            )
        })?;
    }
    let mut outputs = Vec::new();
    for output in &graph.output {
        if !defined.names.contains(&output.name) {
            return Err(invalid(format!(
                "graph output `{}` is produced by no node",
                output.name
            )));
        }
        outputs.push((output.name.clone(), declared_type(output)?));
    }
    if outputs.is_empty() {
        return Err(invalid("the graph has no outputs"));
    }
    let [(_, input)] = inputs.as_slice() else {
        return Err(invalid(format!(
            "the graph has {} inputs, the exporter writes one image input",
            inputs.len()
        )));
    };
    // A symbolic dimension (the dynamic batch) is analysed at size 1.
    let input_shape: Vec<usize> = input
        .shape
        .iter()
        .map(|d| match d {
            Dim::Known(n) => usize::try_from(*n).unwrap_or(0),
            Dim::Named(_) => 1,
        })
        .collect();
    let inferred = super::run::analyse(model, &input_shape)?;
    for ((name, declared), shape) in outputs.iter().zip(&inferred) {
        let Some(declared) = declared else { continue };
        let fits = declared.shape.len() == shape.len()
            && declared.shape.iter().zip(shape).all(|(d, &n)| match d {
                Dim::Known(k) => *k == n as i64,
                Dim::Named(_) => true,
            });
        if !fits {
            return Err(invalid(format!(
                "graph output `{name}` is declared {declared} but computes {shape:?}"
            )));
        }
    }
    Ok(CheckSummary {
        opset,
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
        inputs,
        outputs,
    })
}

/// The names of the values defined so far.
#[derive(Default)]
struct Defined {
    names: HashSet<String>,
}

impl Defined {
    fn define(&mut self, name: &str, what: &str) -> Result<(), PluginError> {
        if name.is_empty() {
            return Err(invalid(format!("a {what} has an empty name")));
        }
        if !self.names.insert(name.to_string()) {
            return Err(invalid(format!("`{name}` is defined more than once")));
        }
        Ok(())
    }
}

/// Checks one node against the values defined so far and defines its outputs.
fn check_node(node: &pb::NodeProto, defined: &mut Defined) -> Result<(), PluginError> {
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(PluginError::unsupported(format!(
            "operator domain `{}` is not supported",
            node.domain
        )));
    }
    if !OPERATORS.contains(&node.op_type.as_str()) {
        return Err(PluginError::unsupported(format!(
            "operator `{}` is not one the exporter supports",
            node.op_type
        )));
    }
    for name in node.input.iter().filter(|n| !n.is_empty()) {
        if !defined.names.contains(name) {
            return Err(PluginError::input(format!(
                "reads `{name}`, which no graph input, initializer or earlier node defines"
            )));
        }
    }
    for name in &node.output {
        if name.is_empty() {
            return Err(PluginError::input("has an output with an empty name"));
        }
        if defined.names.contains(name) {
            return Err(PluginError::input(format!(
                "writes `{name}`, which is already defined"
            )));
        }
        defined.names.insert(name.clone());
    }
    Ok(())
}

/// The element type of `elem_type` as stored in a proto, if it is one the checker knows.
fn data_type(code: i32) -> Result<DataType, PluginError> {
    match DataType::try_from(code) {
        Ok(t @ (DataType::Float | DataType::Float16 | DataType::Int64)) => Ok(t),
        Ok(t) => Err(PluginError::unsupported(format!(
            "element type {} is not supported",
            t.as_str_name()
        ))),
        Err(_) => Err(invalid(format!("unknown element type code {code}"))),
    }
}

/// The declared type of a graph input or output, `None` when it declares no shape.
fn declared_type(info: &pb::ValueInfoProto) -> Result<Option<ValueType>, PluginError> {
    let Some(type_proto::Value::TensorType(tensor)) =
        info.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(invalid(format!(
            "`{}` is not declared as a tensor",
            info.name
        )));
    };
    let elem = data_type(tensor.elem_type)?;
    let Some(shape) = &tensor.shape else {
        return Ok(None);
    };
    let dims = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(dimension::Value::DimValue(n)) if *n >= 0 => Ok(Dim::Known(*n)),
            Some(dimension::Value::DimParam(s)) if !s.is_empty() => Ok(Dim::Named(s.clone())),
            _ => Err(invalid(format!(
                "`{}` has a dimension without size or name",
                info.name
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(ValueType { elem, shape: dims }))
}

/// Checks that an initializer's data fills its shape, in a type the exporter writes.
fn check_initializer(t: &pb::TensorProto) -> Result<(), PluginError> {
    let elem = data_type(t.data_type)?;
    if t.dims.iter().any(|&d| d < 0) {
        return Err(invalid(format!(
            "initializer `{}` has a negative dimension",
            t.name
        )));
    }
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(PluginError::unsupported(format!(
            "initializer `{}` is stored outside the model file",
            t.name
        )));
    }
    let numel: i64 = t.dims.iter().product();
    let width = match elem {
        DataType::Float16 => 2,
        DataType::Float => 4,
        _ => 8,
    };
    let (stored, unit) = if !t.raw_data.is_empty() {
        (t.raw_data.len() as i64, width)
    } else {
        let typed = match elem {
            DataType::Float => t.float_data.len(),
            DataType::Float16 => t.int32_data.len(),
            _ => t.int64_data.len(),
        };
        (typed as i64, 1)
    };
    if stored != numel * unit {
        return Err(invalid(format!(
            "initializer `{}` of shape {:?} needs {} {}, holds {stored}",
            t.name,
            t.dims,
            numel * unit,
            if unit == 1 { "elements" } else { "bytes" }
        )));
    }
    Ok(())
}
