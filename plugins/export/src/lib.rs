//! First-party exporters: they turn a backbone's framework-neutral graph into files.
//!
//! - `safetensors` ([`safetensors_format`]): the weights in torchvision naming, loadable with
//!   `model.load_state_dict(safetensors.torch.load_file(...))`, plus a JSON sidecar with what a
//!   consumer needs to preprocess inputs and name outputs.

pub mod safetensors_format;

use clshost_plugin_api::{export_plugin, register};

register!(Exporter: safetensors_format::SafetensorsExporter);
export_plugin!(description: "Exporters: safetensors weights with a JSON sidecar");
