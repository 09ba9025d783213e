//! Reading a PyTorch state dict into the plugin API's [`NamedTensor`]s, every value as `f32`.
//!
//! Two formats, chosen by the file's extension:
//!
//! - `.pth`, `.pt`, `.bin`: PyTorch's pickles, as `torch.save` writes them (the zip format and
//!   the legacy one), read with `burn-store`'s pickle reader. A dict nested under `state_dict`
//!   or `model`, as training checkpoints often store it, is found too.
//! - `.safetensors`: Hugging Face's format, with `f32`, `f64`, `f16`, `bf16` and `i64` tensors.
//!
//! Both the host (`model.weights`, `--init-from`, `--weights`) and the Burn kit (a backbone's
//! own `weights` param) read weights through this crate, so a file loads the same everywhere.
//! Tensors come back sorted by name.

use std::path::{Path, PathBuf};

use burn_store::pytorch::PytorchReader;
use clshost_plugin_api::{NamedTensor, Tensor};
use safetensors::tensor::{Dtype, SafeTensors};

/// Why a state dict could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        cause: std::io::Error,
    },
    /// The extension names no format this crate reads.
    #[error("`{path}`: unknown weights format; expected .safetensors, .pth, .pt or .bin")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a valid file of its format, or holds a tensor that cannot be converted.
    #[error("`{path}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file holds no tensors.
    #[error("`{path}` holds no tensors")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The formats, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.safetensors`.
    Safetensors,
    /// `.pth`, `.pt` or `.bin`: a PyTorch pickle.
    Pytorch,
}

impl Format {
    /// The format of `path`, by its extension (any case), if it is one this crate reads.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Some(Format::Safetensors),
            "pth" | "pt" | "bin" => Some(Format::Pytorch),
            _ => None,
        }
    }
}

/// Every tensor of the state dict file at `path`, converted to `f32`, sorted by name.
pub fn read(path: &Path) -> Result<Vec<NamedTensor>, StateDictError> {
    let mut tensors = match Format::of(path) {
        Some(Format::Safetensors) => {
            let bytes = std::fs::read(path).map_err(|cause| StateDictError::Io {
                path: path.to_path_buf(),
                cause,
            })?;
            from_safetensors(&bytes).map_err(|reason| invalid(path, reason))?
        }
        Some(Format::Pytorch) => read_pytorch(path)?,
        None => {
            return Err(StateDictError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
    };
    if tensors.is_empty() {
        return Err(StateDictError::Empty {
            path: path.to_path_buf(),
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// Every tensor of a `.safetensors` file's bytes, converted to `f32`, sorted by name.
pub fn from_safetensors(bytes: &[u8]) -> Result<Vec<NamedTensor>, String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            let tensor = match view.dtype() {
                Dtype::F32 => Tensor::from_le_bytes(shape, view.data()),
                dtype => {
                    let values = to_f32(dtype, view.data())
                        .ok_or_else(|| format!("tensor `{name}` has unsupported type {dtype:?}"))?;
                    Tensor::new(shape, values)
                }
            }
            .map_err(|e| format!("tensor `{name}`: {}", e.message))?;
            Ok(NamedTensor {
                name: name.into(),
                tensor,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Little-endian `raw` of type `dtype` (other than `f32`, which [`Tensor::from_le_bytes`] reads
/// as one copy) as `f32`s, or `None` for a type this crate does not read.
fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    fn each<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        raw.chunks_exact(N)
            .map(|b| f(b.try_into().expect("chunks of N bytes")))
            .collect()
    }
    Some(match dtype {
        Dtype::F64 => each(raw, |b| f64::from_le_bytes(b) as f32),
        Dtype::F16 => each(raw, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => each(raw, |b| half::bf16::from_le_bytes(b).to_f32()),
        Dtype::I64 => each(raw, |b| i64::from_le_bytes(b) as f32),
        _ => return None,
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> StateDictError {
    StateDictError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The tensors of a PyTorch pickle: the top-level dict, else one nested under `state_dict` or
/// `model`.
fn read_pytorch(path: &Path) -> Result<Vec<NamedTensor>, StateDictError> {
    let open = |key: Option<&str>| {
        match key {
            None => PytorchReader::new(path),
            Some(key) => PytorchReader::with_top_level_key(path, key),
        }
        .map_err(|e| invalid(path, format!("not a readable PyTorch file: {e}")))
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
            let data = snapshot
                .to_data()
                .map_err(|e| invalid(path, format!("cannot read `{name}`: {e:?}")))?;
            let shape = data.shape.to_vec();
            let values = data
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| invalid(path, format!("cannot convert `{name}`: {e:?}")))?;
            let tensor = Tensor::new(shape, values)
                .map_err(|e| invalid(path, format!("`{name}`: {}", e.message)))?;
            Ok(NamedTensor {
                name: name.into(),
                tensor,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn tensor(name: &str, shape: Vec<usize>, values: Vec<f32>) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(shape, values).unwrap(),
        }
    }

    #[test]
    fn safetensors_of_every_float_type_and_i64_read_as_f32_sorted_by_name() {
        let f32s: Vec<u8> = [0.5f32, -1.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f16s: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let bf16s: Vec<u8> = half::bf16::from_f32(0.25).to_le_bytes().to_vec();
        let f64s: Vec<u8> = 2.5f64.to_le_bytes().to_vec();
        let i64s: Vec<u8> = 7i64.to_le_bytes().to_vec();
        let views = [
            ("z.weight", TensorView::new(Dtype::F32, vec![2, 2], &f32s)),
            ("a.half", TensorView::new(Dtype::F16, vec![2], &f16s)),
            ("b.bf16", TensorView::new(Dtype::BF16, vec![1], &bf16s)),
            ("c.f64", TensorView::new(Dtype::F64, vec![1], &f64s)),
            (
                "bn.num_batches_tracked",
                TensorView::new(Dtype::I64, vec![], &i64s),
            ),
        ]
        .map(|(name, view)| (name, view.unwrap()));
        let bytes = safetensors::serialize(views, None).unwrap();
        assert_eq!(
            from_safetensors(&bytes).unwrap(),
            [
                tensor("a.half", vec![2], vec![1.5, -2.0]),
                tensor("b.bf16", vec![1], vec![0.25]),
                tensor("bn.num_batches_tracked", vec![], vec![7.0]),
                tensor("c.f64", vec![1], vec![2.5]),
                tensor("z.weight", vec![2, 2], vec![0.5, -1.0, 3.0, 4.0]),
            ]
        );
    }

    #[test]
    fn unreadable_files_say_what_is_wrong_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("model.onnx");
        std::fs::write(&onnx, b"x").unwrap();
        assert!(matches!(
            read(&onnx),
            Err(StateDictError::UnknownFormat { .. })
        ));
        let pth = dir.path().join("w.pth");
        std::fs::write(&pth, b"not a pickle").unwrap();
        let err = read(&pth).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("`{}`: not a readable PyTorch file", pth.display())),
            "{err}"
        );
        let empty = dir.path().join("e.safetensors");
        std::fs::write(
            &empty,
            safetensors::serialize(Vec::<(&str, TensorView)>::new(), None).unwrap(),
        )
        .unwrap();
        assert_eq!(
            read(&empty).unwrap_err().to_string(),
            format!("`{}` holds no tensors", empty.display())
        );
        let missing = dir.path().join("gone.safetensors");
        assert!(matches!(read(&missing), Err(StateDictError::Io { .. })));
    }

    /// `partial.pth` and `partial.safetensors` hold the same tensors, written by torch.save and
    /// safetensors from one state dict (`scripts/fixtures/resnet.py`).
    #[test]
    fn a_torch_written_pickle_reads_as_its_safetensors_twin() {
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/resnet/tests/fixtures");
        let pth = read(&fixtures.join("partial.pth")).unwrap();
        assert_eq!(pth, read(&fixtures.join("partial.safetensors")).unwrap());
        assert!(pth.iter().any(|t| t.name == "fc.weight"));
    }
}
