//! Reading a PyTorch state dict from a `.pth`/`.pt` pickle or a `.safetensors` file into named
//! host tensors, ready for [`BurnBackbone::load_weights`](crate::BurnBackbone::load_weights),
//! and describing what of them did not fit.

use std::path::Path;

use burn_store::pytorch::PytorchReader;
use clshost_plugin_api::{LoadReport, NamedTensor, PluginError, RString, Tensor};
use safetensors::tensor::{Dtype, SafeTensors};

/// Reads every tensor of a state dict file, converted to `f32`, sorted by name. The format is
/// chosen by the extension: `.safetensors`, or `.pth` / `.pt` / `.bin` (PyTorch pickle, the zip
/// format of `torch.save` and the legacy one). A dict nested under `state_dict` or `model` (as
/// training checkpoints often store it) is found too.
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

pub fn read_state_dict(path: &Path) -> Result<Vec<NamedTensor>, PluginError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut tensors = match ext.as_str() {
        "safetensors" => read_safetensors(path)?,
        "pth" | "pt" | "bin" => read_pytorch(path)?,
        _ => {
            return Err(PluginError::input(format!(
                "`{}`: unknown weights format; expected .safetensors, .pth, .pt or .bin",
                path.display()
            )));
        }
    };
    if tensors.is_empty() {
        return Err(PluginError::input(format!(
            "`{}` holds no tensors",
            path.display()
        )));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

fn read_pytorch(path: &Path) -> Result<Vec<NamedTensor>, PluginError> {
    let open = |key: Option<&str>| {
        let reader = match key {
            None => PytorchReader::new(path),
            Some(key) => PytorchReader::with_top_level_key(path, key),
        };
        reader.map_err(|e| PluginError::io(format!("cannot read `{}`: {e}", path.display())))
    };
    let mut reader = open(None)?;
    if reader.is_empty() {
        for key in ["state_dict", "model"] {
            if let Ok(nested) = open(Some(key))
                && !nested.is_empty()
            {
                reader = nested;
                break;
            }
        }
    }
    reader
        .into_tensors()
        .into_iter()
        .map(|(name, snapshot)| {
            let data = snapshot.to_data().map_err(|e| {
                PluginError::input(format!("`{}`: cannot read `{name}`: {e:?}", path.display()))
            })?;
            let shape = data.shape.to_vec();
            let values = data.convert::<f32>().to_vec::<f32>().map_err(|e| {
                PluginError::input(format!(
                    "`{}`: cannot convert `{name}`: {e:?}",
                    path.display()
                ))
            })?;
            Ok(NamedTensor {
                name: name.into(),
                tensor: Tensor::new(shape, values)?,
            })
        })
        .collect()
}

fn read_safetensors(path: &Path) -> Result<Vec<NamedTensor>, PluginError> {
    let bytes = std::fs::read(path)
        .map_err(|e| PluginError::io(format!("cannot read `{}`: {e}", path.display())))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| PluginError::input(format!("`{}`: {e}", path.display())))?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let raw = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => {
                    return Err(PluginError::input(format!(
                        "`{}`: tensor `{name}` has unsupported type {other:?}",
                        path.display()
                    )));
                }
            };
            Ok(NamedTensor {
                name: name.into(),
                tensor: Tensor::new(view.shape().to_vec(), values)?,
            })
        })
        .collect()
}
