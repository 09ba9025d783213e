//! First-party exporters: they turn a backbone's framework-neutral graph into files.
//!
//! - `safetensors` ([`safetensors_format`]): the weights in torchvision naming, loadable with
//!   `model.load_state_dict(safetensors.torch.load_file(...))`, plus a JSON sidecar with what a
//!   consumer needs to preprocess inputs and name outputs.
//! - `onnx` ([`onnx`]): an ONNX model (opset 17 by default, dynamic batch, optional folded
//!   BatchNorm, float16 weights and softmax output) with the class names, input size and
//!   normalization in its `metadata_props`, checked structurally and run back with tract-onnx.

pub mod onnx;
pub mod safetensors_format;

use clshost_plugin_api::{export_plugin, register};

register!(Exporter: safetensors_format::SafetensorsExporter, Exporter: onnx::OnnxExporter);
export_plugin!(description: "Exporters: ONNX (verified with tract) and safetensors with a JSON sidecar");
