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

#[cfg(test)]
mod tests {
    use clshost_plugin_api::authoring::root_module;

    #[test]
    fn every_exporter_is_listed_with_its_parameters_defaults() {
        let root = root_module("clshost-plugin-export", "0.1.0", "test", None);
        let info = root.info()().unwrap();
        let names: Vec<&str> = info.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["onnx", "safetensors"]);
        for component in &info.components {
            assert!(!component.params.is_empty(), "{}", component.name);
        }
        assert_eq!(info.params_without_default(), Vec::<String>::new());
    }
}
