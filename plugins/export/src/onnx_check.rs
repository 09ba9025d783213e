//! The structural check of an ONNX model, run on every file the `onnx` exporter writes and
//! reads back: what `onnx.checker` with shape inference establishes for the operators the
//! exporter emits.
//!
//! It checks that the model declares an opset and a graph; that every initializer's data fills
//! its shape; that every node input is a graph input, an initializer or an earlier node's output
//! (so the nodes are in topological order) and every value is defined once; and it infers every
//! value's element type and shape, node by node, failing where an operator's inputs disagree
//! (a convolution whose weight expects other channels, an `Add` of different shapes, a `Gemm`
//! whose inner sizes differ) or where a graph output's declared shape is not the inferred one.
//! Symbolic dimensions (the dynamic batch) are carried through by name.

use std::collections::{HashMap, HashSet};
use std::fmt;

use clshost_plugin_api::PluginError;
use tract_onnx::pb::attribute_proto::AttributeType;
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
    /// The graph outputs, by name, with their inferred types.
    pub outputs: Vec<(String, ValueType)>,
}

/// The opsets the checker (and the exporter) accept.
pub(crate) const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// An error about the model as a whole.
fn invalid(message: impl fmt::Display) -> PluginError {
    PluginError::input(format!("invalid ONNX model: {message}"))
}

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
    let mut env = Env::default();
    let mut inputs = Vec::new();
    for input in &graph.input {
        let ty = declared_type(input)?
            .ok_or_else(|| invalid(format!("graph input `{}` declares no shape", input.name)))?;
        env.define(&input.name, ty.clone(), "graph input")?;
        inputs.push((input.name.clone(), ty));
    }
    for init in &graph.initializer {
        let (ty, ints) = initializer_type(init)?;
        env.define(&init.name, ty, "initializer")?;
        if let Some(ints) = ints {
            env.constants.insert(init.name.clone(), ints);
        }
    }
    for node in &graph.node {
        check_node(node, opset, &mut env).map_err(|e| {
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
        let inferred = env.values.get(&output.name).ok_or_else(|| {
            invalid(format!(
                "graph output `{}` is produced by no node",
                output.name
            ))
        })?;
        if let Some(declared) = declared_type(output)?
            && declared != *inferred
        {
            return Err(invalid(format!(
                "graph output `{}` is declared {declared} but computes {inferred}",
                output.name
            )));
        }
        outputs.push((output.name.clone(), inferred.clone()));
    }
    if outputs.is_empty() {
        return Err(invalid("the graph has no outputs"));
    }
    Ok(CheckSummary {
        opset,
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
        inputs,
        outputs,
    })
}

/// The values defined so far and the contents of integer initializers.
#[derive(Default)]
struct Env {
    values: HashMap<String, ValueType>,
    constants: HashMap<String, Vec<i64>>,
}

impl Env {
    fn define(&mut self, name: &str, ty: ValueType, what: &str) -> Result<(), PluginError> {
        if name.is_empty() {
            return Err(invalid(format!("a {what} has an empty name")));
        }
        if self.values.insert(name.to_string(), ty).is_some() {
            return Err(invalid(format!("`{name}` is defined more than once")));
        }
        Ok(())
    }
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

/// An initializer's type, after checking its data fills its shape, and its contents when it
/// holds integers.
fn initializer_type(t: &pb::TensorProto) -> Result<(ValueType, Option<Vec<i64>>), PluginError> {
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
    let ints = (elem == DataType::Int64).then(|| {
        if t.raw_data.is_empty() {
            t.int64_data.clone()
        } else {
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("chunks of 8 bytes")))
                .collect()
        }
    });
    let shape = t.dims.iter().map(|&d| Dim::Known(d)).collect();
    Ok((ValueType { elem, shape }, ints))
}

/// A node's attributes, by name, with typed accessors.
struct Attrs<'a>(&'a [pb::AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str, ty: AttributeType) -> Result<Option<&pb::AttributeProto>, String> {
        match self.0.iter().find(|a| a.name == name) {
            Some(a) if a.r#type == ty as i32 => Ok(Some(a)),
            Some(_) => Err(format!(
                "attribute `{name}` is not of type {}",
                ty.as_str_name()
            )),
            None => Ok(None),
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self.get(name, AttributeType::Int)?.map_or(default, |a| a.i))
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    fn string(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .get(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// An `ints` attribute of exactly `len` values, or `default` repeated.
    fn ints_of(&self, name: &str, len: usize, default: i64) -> Result<Vec<i64>, String> {
        match self.ints(name)? {
            Some(v) if v.len() == len => Ok(v),
            Some(v) => Err(format!("`{name}` has {} values, expected {len}", v.len())),
            None => Ok(vec![default; len]),
        }
    }
}

/// Checks one node against the values defined so far and defines its outputs.
fn check_node(node: &pb::NodeProto, opset: i64, env: &mut Env) -> Result<(), PluginError> {
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(PluginError::unsupported(format!(
            "operator domain `{}` is not supported",
            node.domain
        )));
    }
    let mut inputs = Vec::with_capacity(node.input.len());
    for name in &node.input {
        if name.is_empty() {
            inputs.push(None);
            continue;
        }
        let ty = env.values.get(name).ok_or_else(|| {
            PluginError::input(format!(
                "reads `{name}`, which no graph input, initializer or earlier node defines"
            ))
        })?;
        inputs.push(Some(ty.clone()));
    }
    let attrs = Attrs(&node.attribute);
    let constant = |i: usize| {
        node.input
            .get(i)
            .and_then(|n| env.constants.get(n))
            .cloned()
    };
    let outputs = infer(&node.op_type, &inputs, &attrs, opset, constant).map_err(|e| match e {
        Infer::Invalid(m) => PluginError::input(m),
        Infer::Unsupported(m) => PluginError::unsupported(m),
    })?;
    if node.output.len() != outputs.len() {
        return Err(PluginError::input(format!(
            "has {} outputs, the exporter's operators produce {}",
            node.output.len(),
            outputs.len()
        )));
    }
    for (name, ty) in node.output.iter().zip(outputs) {
        if name.is_empty() {
            return Err(PluginError::input("has an output with an empty name"));
        }
        if env.values.contains_key(name) {
            return Err(PluginError::input(format!(
                "writes `{name}`, which is already defined"
            )));
        }
        env.values.insert(name.clone(), ty);
    }
    Ok(())
}

/// Why inference failed.
enum Infer {
    /// The node is malformed or its inputs disagree.
    Invalid(String),
    /// The node is valid ONNX the checker does not handle.
    Unsupported(String),
}

impl From<String> for Infer {
    fn from(message: String) -> Self {
        Infer::Invalid(message)
    }
}

/// The input at `i`, which must be present.
fn required(inputs: &[Option<ValueType>], i: usize) -> Result<&ValueType, Infer> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| Infer::Invalid(format!("input {i} is missing")))
}

/// Checks the input count is within `min..=max`.
fn arity(inputs: &[Option<ValueType>], min: usize, max: usize) -> Result<(), Infer> {
    if (min..=max).contains(&inputs.len()) {
        Ok(())
    } else if min == max {
        Err(Infer::Invalid(format!(
            "has {} inputs, expected {min}",
            inputs.len()
        )))
    } else {
        Err(Infer::Invalid(format!(
            "has {} inputs, expected {min} to {max}",
            inputs.len()
        )))
    }
}

/// Checks a value is a floating-point tensor of rank `rank` (any rank when `None`).
fn float_of_rank(ty: &ValueType, what: &str, rank: Option<usize>) -> Result<(), Infer> {
    if !matches!(ty.elem, DataType::Float | DataType::Float16) {
        return Err(Infer::Invalid(format!(
            "{what} is {ty}, not a float tensor"
        )));
    }
    match rank {
        Some(r) if ty.shape.len() != r => {
            Err(Infer::Invalid(format!("{what} is {ty}, expected rank {r}")))
        }
        _ => Ok(()),
    }
}

/// Checks every input has the same element type as the first.
fn same_elem(inputs: &[Option<ValueType>]) -> Result<(), Infer> {
    let mut present = inputs.iter().flatten();
    if let Some(first) = present.next()
        && let Some(other) = present.find(|t| t.elem != first.elem)
    {
        return Err(Infer::Invalid(format!(
            "mixes element types {} and {}",
            first.elem.as_str_name(),
            other.elem.as_str_name()
        )));
    }
    Ok(())
}

/// Checks two dimensions can be the same size; a symbol matches only itself.
fn same_dim(a: &Dim, b: &Dim, what: &str) -> Result<(), Infer> {
    if a == b {
        Ok(())
    } else {
        Err(Infer::Invalid(format!("{what}: {a} differs from {b}")))
    }
}

/// Checks a 1-D per-channel parameter has `channels` elements.
fn per_channel(ty: &ValueType, what: &str, channels: &Dim) -> Result<(), Infer> {
    float_of_rank(ty, what, Some(1))?;
    same_dim(
        &ty.shape[0],
        channels,
        &format!("{what} length vs channels"),
    )
}

/// The output size of a pooling or convolution window along one axis.
fn window_out(
    size: &Dim,
    kernel: i64,
    stride: i64,
    dilation: i64,
    pad: (i64, i64),
    ceil: bool,
) -> Result<Dim, Infer> {
    if kernel < 1 || stride < 1 || dilation < 1 || pad.0 < 0 || pad.1 < 0 {
        return Err(Infer::Invalid(format!(
            "kernel {kernel}, stride {stride}, dilation {dilation} and pads {pad:?} must be positive"
        )));
    }
    let Dim::Known(n) = size else {
        return Ok(Dim::Named(format!("window({size})")));
    };
    let span = n + pad.0 + pad.1 - dilation * (kernel - 1) - 1;
    if span < 0 {
        return Err(Infer::Invalid(format!(
            "the window ({kernel} with dilation {dilation}) is larger than the padded input ({})",
            n + pad.0 + pad.1
        )));
    }
    let out = if ceil {
        (span + stride - 1) / stride + 1
    } else {
        span / stride + 1
    };
    Ok(Dim::Known(out))
}

/// The spatial output of a 2-D window operator with attributes `attrs`.
fn window_2d(
    x: &ValueType,
    kernel: [i64; 2],
    attrs: &Attrs<'_>,
    with_dilations: bool,
) -> Result<[Dim; 2], Infer> {
    if let Some(pad) = attrs.string("auto_pad")?
        && pad != "NOTSET"
    {
        return Err(Infer::Unsupported(format!(
            "auto_pad `{pad}` is not supported"
        )));
    }
    let strides = attrs.ints_of("strides", 2, 1)?;
    let pads = attrs.ints_of("pads", 4, 0)?;
    let dilations = if with_dilations {
        attrs.ints_of("dilations", 2, 1)?
    } else {
        vec![1, 1]
    };
    let ceil = attrs.int("ceil_mode", 0)? == 1;
    Ok([0, 1]
        .map(|i| {
            window_out(
                &x.shape[2 + i],
                kernel[i],
                strides[i],
                dilations[i],
                (pads[i], pads[i + 2]),
                ceil,
            )
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .try_into()
        .expect("two spatial axes"))
}

/// Multiplies dimensions, symbolically where one is a symbol.
fn product(dims: &[Dim]) -> Dim {
    let known: i64 = dims
        .iter()
        .filter_map(|d| match d {
            Dim::Known(n) => Some(*n),
            Dim::Named(_) => None,
        })
        .product();
    let named: Vec<&str> = dims
        .iter()
        .filter_map(|d| match d {
            Dim::Named(s) => Some(s.as_str()),
            Dim::Known(_) => None,
        })
        .collect();
    match (named.as_slice(), known) {
        ([], n) => Dim::Known(n),
        ([s], 1) => Dim::Named((*s).to_string()),
        (names, n) => Dim::Named(format!("{}*{n}", names.join("*"))),
    }
}

/// Normalizes an axis that may count from the end.
fn axis(axis: i64, rank: usize, allow_end: bool) -> Result<usize, Infer> {
    let r = rank as i64;
    let max = if allow_end { r } else { r - 1 };
    let a = if axis < 0 { axis + r } else { axis };
    if (0..=max).contains(&a) {
        Ok(a as usize)
    } else {
        Err(Infer::Invalid(format!(
            "axis {axis} is out of range for rank {rank}"
        )))
    }
}

/// The broadcast of two shapes (numpy rules); symbols broadcast only with themselves or 1.
fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, Infer> {
    let rank = a.len().max(b.len());
    let at = |s: &[Dim], i: usize| -> Dim {
        (i + s.len())
            .checked_sub(rank)
            .map_or(Dim::Known(1), |j| s[j].clone())
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (Dim::Known(1), y) => Ok(y),
            (x, Dim::Known(1)) => Ok(x),
            (x, y) => Err(Infer::Invalid(format!(
                "shapes {} and {} do not broadcast ({x} vs {y})",
                fmt_shape(a),
                fmt_shape(b)
            ))),
        })
        .collect()
}

/// A shape as `[a, b, c]`.
fn fmt_shape(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(Dim::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Infers a node's output types; see the module documentation.
fn infer(
    op: &str,
    inputs: &[Option<ValueType>],
    attrs: &Attrs<'_>,
    opset: i64,
    constant: impl Fn(usize) -> Option<Vec<i64>>,
) -> Result<Vec<ValueType>, Infer> {
    let out = |elem: DataType, shape: Vec<Dim>| Ok(vec![ValueType { elem, shape }]);
    match op {
        "Conv" => {
            arity(inputs, 2, 3)?;
            same_elem(inputs)?;
            let x = required(inputs, 0)?;
            let w = required(inputs, 1)?;
            float_of_rank(x, "the input", Some(4))?;
            float_of_rank(w, "the weight", Some(4))?;
            let dims: Vec<i64> = w
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => Ok(*n),
                    Dim::Named(_) => Err(Infer::Invalid("the weight shape is symbolic".into())),
                })
                .collect::<Result<_, _>>()?;
            let group = attrs.int("group", 1)?;
            if group < 1 || dims[0] % group != 0 {
                return Err(Infer::Invalid(format!(
                    "group {group} does not divide the {} output channels",
                    dims[0]
                )));
            }
            same_dim(
                &x.shape[1],
                &Dim::Known(dims[1] * group),
                "input channels vs weight channels x group",
            )?;
            let kernel = [dims[2], dims[3]];
            if let Some(k) = attrs.ints("kernel_shape")?
                && k != kernel
            {
                return Err(Infer::Invalid(format!(
                    "kernel_shape {k:?} differs from the weight's {kernel:?}"
                )));
            }
            if let Some(Some(b)) = inputs.get(2) {
                per_channel(b, "the bias", &Dim::Known(dims[0]))?;
            }
            let [h, w_out] = window_2d(x, kernel, attrs, true)?;
            out(
                x.elem,
                vec![x.shape[0].clone(), Dim::Known(dims[0]), h, w_out],
            )
        }
        "BatchNormalization" => {
            arity(inputs, 5, 5)?;
            same_elem(inputs)?;
            let x = required(inputs, 0)?;
            float_of_rank(x, "the input", None)?;
            if x.shape.len() < 2 {
                return Err(Infer::Invalid(format!("the input {x} has no channel axis")));
            }
            for (i, what) in ["the scale", "the bias", "the mean", "the variance"]
                .iter()
                .enumerate()
            {
                per_channel(required(inputs, i + 1)?, what, &x.shape[1])?;
            }
            if attrs.int("training_mode", 0)? != 0 {
                return Err(Infer::Unsupported("training_mode is not supported".into()));
            }
            out(x.elem, x.shape.clone())
        }
        "Relu" | "Sigmoid" | "Identity" => {
            arity(inputs, 1, 1)?;
            let x = required(inputs, 0)?;
            float_of_rank(x, "the input", None)?;
            out(x.elem, x.shape.clone())
        }
        "Softmax" => {
            arity(inputs, 1, 1)?;
            let x = required(inputs, 0)?;
            float_of_rank(x, "the input", None)?;
            let default = if opset >= 13 { -1 } else { 1 };
            axis(attrs.int("axis", default)?, x.shape.len(), false)?;
            out(x.elem, x.shape.clone())
        }
        "Cast" => {
            arity(inputs, 1, 1)?;
            let x = required(inputs, 0)?;
            let to = attrs
                .get("to", AttributeType::Int)?
                .ok_or_else(|| Infer::Invalid("has no `to` attribute".into()))?;
            let to = i32::try_from(to.i).map_err(|_| Infer::Invalid("bad `to`".into()))?;
            out(
                data_type(to).map_err(|e| Infer::Invalid(e.message.to_string()))?,
                x.shape.clone(),
            )
        }
        "MaxPool" | "AveragePool" => {
            arity(inputs, 1, 1)?;
            let x = required(inputs, 0)?;
            float_of_rank(x, "the input", Some(4))?;
            let kernel = attrs
                .ints("kernel_shape")?
                .ok_or_else(|| Infer::Invalid("has no kernel_shape".into()))?;
            let kernel: [i64; 2] = kernel
                .try_into()
                .map_err(|_| Infer::Invalid("kernel_shape must have 2 values".into()))?;
            let [h, w] = window_2d(x, kernel, attrs, op == "MaxPool")?;
            out(x.elem, vec![x.shape[0].clone(), x.shape[1].clone(), h, w])
        }
        "GlobalAveragePool" => {
            arity(inputs, 1, 1)?;
            let x = required(inputs, 0)?;
            float_of_rank(x, "the input", None)?;
            if x.shape.len() < 3 {
                return Err(Infer::Invalid(format!("the input {x} has no spatial axes")));
            }
            let mut shape = x.shape[..2].to_vec();
            shape.resize(x.shape.len(), Dim::Known(1));
            out(x.elem, shape)
        }
        "ReduceMean" => {
            let x = required(inputs, 0)?;
            float_of_rank(x, "the input", None)?;
            let axes = if opset >= 18 {
                arity(inputs, 1, 2)?;
                if attrs.ints("axes")?.is_some() {
                    return Err(Infer::Invalid(
                        "from opset 18 `axes` is an input, not an attribute".into(),
                    ));
                }
                match inputs.get(1) {
                    Some(Some(_)) => Some(constant(1).ok_or_else(|| {
                        Infer::Unsupported("`axes` must be an int64 initializer".into())
                    })?),
                    _ => None,
                }
            } else {
                arity(inputs, 1, 1)?;
                attrs.ints("axes")?
            };
            let rank = x.shape.len();
            let axes: HashSet<usize> = match axes {
                Some(a) => a
                    .iter()
                    .map(|&a| axis(a, rank, false))
                    .collect::<Result<_, _>>()?,
                None => (0..rank).collect(),
            };
            let keep = attrs.int("keepdims", 1)? != 0;
            let shape = x
                .shape
                .iter()
                .enumerate()
                .filter_map(|(i, d)| match (axes.contains(&i), keep) {
                    (false, _) => Some(d.clone()),
                    (true, true) => Some(Dim::Known(1)),
                    (true, false) => None,
                })
                .collect();
            out(x.elem, shape)
        }
        "Add" => {
            arity(inputs, 2, 2)?;
            same_elem(inputs)?;
            let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
            float_of_rank(a, "the first input", None)?;
            out(a.elem, broadcast(&a.shape, &b.shape)?)
        }
        "Flatten" => {
            arity(inputs, 1, 1)?;
            let x = required(inputs, 0)?;
            let at = axis(attrs.int("axis", 1)?, x.shape.len(), true)?;
            out(
                x.elem,
                vec![product(&x.shape[..at]), product(&x.shape[at..])],
            )
        }
        "Gemm" => {
            arity(inputs, 2, 3)?;
            same_elem(inputs)?;
            let a = required(inputs, 0)?;
            let b = required(inputs, 1)?;
            float_of_rank(a, "A", Some(2))?;
            float_of_rank(b, "B", Some(2))?;
            let (m, ka) = if attrs.int("transA", 0)? != 0 {
                (&a.shape[1], &a.shape[0])
            } else {
                (&a.shape[0], &a.shape[1])
            };
            let (kb, n) = if attrs.int("transB", 0)? != 0 {
                (&b.shape[1], &b.shape[0])
            } else {
                (&b.shape[0], &b.shape[1])
            };
            same_dim(ka, kb, "inner sizes of A and B")?;
            let shape = vec![m.clone(), n.clone()];
            if let Some(Some(c)) = inputs.get(2) {
                let full = broadcast(&shape, &c.shape)?;
                if full != shape {
                    return Err(Infer::Invalid(format!(
                        "C {c} does not broadcast to {}",
                        fmt_shape(&shape)
                    )));
                }
            }
            out(a.elem, shape)
        }
        _ => Err(Infer::Unsupported(format!(
            "operator `{op}` is not one the exporter supports"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(dims: &[i64]) -> Vec<Dim> {
        dims.iter().map(|&d| Dim::Known(d)).collect()
    }

    #[test]
    fn window_sizes_follow_the_onnx_formula() {
        // 224 input, 7x7 stride 2 pad 3 (resnet stem): 112; 3x3 stride 2 pad 1 max-pool: 56.
        let out = window_out(&Dim::Known(224), 7, 2, 1, (3, 3), false).ok();
        assert_eq!(out, Some(Dim::Known(112)));
        let out = window_out(&Dim::Known(112), 3, 2, 1, (1, 1), false).ok();
        assert_eq!(out, Some(Dim::Known(56)));
        let out = window_out(&Dim::Known(5), 2, 2, 1, (0, 0), true).ok();
        assert_eq!(out, Some(Dim::Known(3)));
        assert!(window_out(&Dim::Known(2), 5, 1, 1, (0, 0), false).is_err());
    }

    #[test]
    fn products_and_broadcasts_keep_symbols() {
        let batch = Dim::Named("batch".into());
        assert_eq!(product(&[batch.clone(), Dim::Known(1)]), batch);
        assert_eq!(product(&known(&[512, 1, 1])), Dim::Known(512));
        let a = vec![batch.clone(), Dim::Known(8)];
        assert_eq!(broadcast(&a, &known(&[8])).ok(), Some(a.clone()));
        assert!(broadcast(&a, &known(&[4])).is_err());
        assert!(broadcast(&a, &[Dim::Named("other".into()), Dim::Known(8)]).is_err());
    }
}
