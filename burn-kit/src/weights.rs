//! Reading a PyTorch state dict from a `.pth`/`.pt` pickle or a `.safetensors` file into named
//! host tensors, ready for [`BurnBackbone::load_weights`](crate::BurnBackbone::load_weights),
//! and describing what of them did not fit.

use std::path::Path;

use clshost_plugin_api::{LoadReport, NamedTensor, PluginError, RString};
use clshost_state_dict::StateDictError;

/// Keys of a PyTorch state dict that are accepted and ignored (BatchNorm's batch counter).
pub(crate) fn is_ignored_key(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}

/// A one-line account of what did not fit.
pub fn describe(report: &LoadReport) -> String {
    let mut parts = Vec::new();
    if !report.missing.is_empty() {
        let names: Vec<&str> = report.missing.iter().map(RString::as_str).collect();
        parts.push(format!("missing {}", names.join(", ")));
    }
    if !report.unexpected.is_empty() {
        let names: Vec<&str> = report.unexpected.iter().map(RString::as_str).collect();
        parts.push(format!("unexpected {}", names.join(", ")));
    }
    for m in report.mismatched.iter() {
        parts.push(format!(
            "`{}` is {:?} in the file but {:?} in the model",
            m.name,
            m.found.as_slice(),
            m.expected.as_slice()
        ));
    }
    if parts.is_empty() {
        "everything fits".to_string()
    } else {
        parts.join("; ")
    }
}

/// Reads every tensor of a state dict file, converted to `f32`, sorted by name: `.safetensors`,
/// or `.pth` / `.pt` / `.bin` (PyTorch pickle), as [`clshost_state_dict::read`] does.
pub fn read_state_dict(path: &Path) -> Result<Vec<NamedTensor>, PluginError> {
    clshost_state_dict::read(path).map_err(|e| match e {
        StateDictError::Io { .. } => PluginError::io(e.to_string()),
        _ => PluginError::input(e.to_string()),
    })
}
