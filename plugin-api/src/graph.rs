//! The framework-neutral description of a model's computation, which exporters consume.
//!
//! A [`ModelGraph`] is a list of nodes in topological order, each an operator with named inputs
//! and outputs, plus the named weights the nodes read. Operators and attributes follow ONNX
//! naming and semantics (opset 17) so that every exporter reads them the same way:
//!
//! | op | inputs | attributes |
//! |---|---|---|
//! | `Conv` | x, weight `[O, I/group, kH, kW]`, optional bias | `kernel_shape`, `strides`, `pads` (top, left, bottom, right), `dilations`, `group` |
//! | `BatchNormalization` | x, scale, bias, running mean, running var | `epsilon`, `momentum` |
//! | `Relu` | x | |
//! | `MaxPool` | x | `kernel_shape`, `strides`, `pads` |
//! | `GlobalAveragePool` | x | |
//! | `Add` | a, b | |
//! | `Flatten` | x | `axis` |
//! | `Gemm` | x, weight `[out, in]`, bias | `transB` = 1 |
//!
//! A backbone may emit other ONNX operators; an exporter that does not know one reports it.

use abi_stable::StableAbi;
use abi_stable::std_types::{RString, RVec};

use crate::Tensor;

/// A tensor with a name, such as a weight in torchvision naming (`layer1.0.conv1.weight`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The name, dot-separated as in a PyTorch state dict.
    pub name: RString,
    /// The value.
    pub tensor: Tensor,
}

/// A graph input or output: its name and shape, with `-1` for a dynamic dimension.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// The value's name, referenced by nodes.
    pub name: RString,
    /// Its shape; `-1` marks a dynamic dimension such as the batch.
    pub shape: RVec<i64>,
}

/// The value of a node attribute.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum AttributeValue {
    /// One integer.
    Int(i64),
    /// One float.
    Float(f64),
    /// A list of integers.
    Ints(RVec<i64>),
    /// A list of floats.
    Floats(RVec<f64>),
    /// A string.
    Str(RString),
}

/// A named attribute of a node.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Attribute {
    /// The attribute name, as in ONNX (`kernel_shape`, `epsilon`, ...).
    pub name: RString,
    /// Its value.
    pub value: AttributeValue,
}

/// One operator application.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GraphNode {
    /// The operator, as an ONNX op type (`Conv`, `Relu`, ...).
    pub op: RString,
    /// A unique node name, usually the module path (`layer1.0.conv1`).
    pub name: RString,
    /// Names of the values or weights it reads, in the operator's input order.
    pub inputs: RVec<RString>,
    /// Names of the values it produces.
    pub outputs: RVec<RString>,
    /// Its attributes.
    pub attributes: RVec<Attribute>,
}

/// A whole model: inputs, outputs, nodes in topological order, and the weights they read.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ModelGraph {
    /// The graph inputs (for classifiers: one `[N, 3, H, W]` image batch).
    pub inputs: RVec<ValueInfo>,
    /// The graph outputs (for classifiers: one `[N, classes]` logits matrix).
    pub outputs: RVec<ValueInfo>,
    /// The nodes, each after the nodes that produce its inputs.
    pub nodes: RVec<GraphNode>,
    /// The weights nodes read by name.
    pub initializers: RVec<NamedTensor>,
}
