//! The `safetensors` exporter: weights in torchvision naming plus a JSON sidecar of metadata.
//!
//! Every initializer of the graph is written under its name as `F32`, except buffers named
//! `*.num_batches_tracked`, which PyTorch keeps as `I64` and which are written as such. The
//! sidecar (`<file stem>.json`) records the class names, input size, normalization, backbone and
//! recipe, so `predict`-style consumers need nothing else. Verification reads the file back and
//! compares every tensor with the graph, bit for bit: safetensors holds weights, not a runnable
//! model, so there are no logits to compare.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use clshost_plugin_api::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::json;

/// Writes the graph's weights as a `.safetensors` file and a JSON sidecar.
pub struct SafetensorsExporter {
    file_name: String,
}

/// Config of [`SafetensorsExporter`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct SafetensorsConfig {
    /// Name of the weights file inside the export directory; the sidecar takes the same stem with
    /// `.json`.
    pub file_name: String,
}

impl Default for SafetensorsConfig {
    fn default() -> Self {
        SafetensorsConfig {
            file_name: "model.safetensors".to_string(),
        }
    }
}

impl Component for SafetensorsExporter {
    const NAME: &'static str = "safetensors";
    const DESCRIPTION: &'static str =
        "Weights in torchvision naming as .safetensors, with a JSON sidecar of metadata";
    type Config = SafetensorsConfig;

    fn check(config: &SafetensorsConfig) -> Result<(), PluginError> {
        check_file_name("file_name", &config.file_name, "safetensors")
    }
}

/// Whether a weight is one PyTorch stores as a 64-bit integer.
fn is_integer_buffer(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// The bytes and dtype a weight is stored with.
fn encode(tensor: &NamedTensor) -> (Dtype, Vec<u8>) {
    if is_integer_buffer(&tensor.name) {
        let bytes = tensor
            .tensor
            .data
            .iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect();
        (Dtype::I64, bytes)
    } else {
        (Dtype::F32, tensor.tensor.to_le_bytes())
    }
}

/// The sidecar's path for a weights file.
fn sidecar_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

impl Exporter for SafetensorsExporter {
    fn new(config: SafetensorsConfig) -> Result<Self, PluginError> {
        Ok(SafetensorsExporter {
            file_name: config.file_name,
        })
    }

    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: &Path,
    ) -> Result<Vec<PathBuf>, PluginError> {
        let encoded: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = graph
            .initializers
            .iter()
            .map(|t| {
                let (dtype, bytes) = encode(t);
                (t.name.as_str(), dtype, t.tensor.shape.to_vec(), bytes)
            })
            .collect();
        let views = encoded
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|view| (name.to_string(), view))
                    .map_err(|e| PluginError::input(format!("weight `{name}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("backbone".to_string(), meta.backbone.to_string()),
            ("recipe".to_string(), meta.recipe_name.to_string()),
        ]);
        let weights = out_dir.join(&self.file_name);
        safetensors::serialize_to_file(views, Some(metadata), &weights)
            .map_err(|e| PluginError::io_at(&weights, e))?;

        let extra: serde_json::Map<String, serde_json::Value> = meta
            .extra
            .iter()
            .map(|pair| (pair.0.to_string(), json!(pair.1.as_str())))
            .collect();
        let sidecar = json!({
            "backbone": meta.backbone.as_str(),
            "recipe_name": meta.recipe_name.as_str(),
            "class_names": meta.class_names.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "input_size": [meta.input_height, meta.input_width],
            "mean": meta.mean,
            "std": meta.std,
            "weights": self.file_name,
            "extra": extra,
        });
        let sidecar_file = sidecar_path(&weights);
        let text = serde_json::to_string_pretty(&sidecar)
            .map_err(|e| PluginError::internal(format!("sidecar JSON: {e}")))?;
        fs::write(&sidecar_file, text + "\n").map_err(|e| PluginError::io_at(&sidecar_file, e))?;
        Ok(vec![weights, sidecar_file])
    }

    fn verify(
        &self,
        files: &[PathBuf],
        graph: &ModelGraph,
        _inputs: TensorRef<'_>,
        _expected: TensorRef<'_>,
    ) -> Result<VerifyReport, PluginError> {
        let weights = files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "safetensors"))
            .ok_or_else(|| PluginError::input("no .safetensors file among the exported files"))?;
        let bytes = fs::read(weights).map_err(|e| PluginError::io_at(weights, e))?;
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| PluginError::input(format!("{}: {e}", weights.display())))?;
        if file.len() != graph.initializers.len() {
            return Err(PluginError::input(format!(
                "{} holds {} tensors, the model has {}",
                weights.display(),
                file.len(),
                graph.initializers.len()
            )));
        }
        for t in graph.initializers.iter() {
            let stored = file.tensor(&t.name).map_err(|e| {
                PluginError::input(format!("{}: `{}`: {e}", weights.display(), t.name))
            })?;
            let (dtype, expected) = encode(t);
            if stored.dtype() != dtype || stored.shape() != t.tensor.shape.as_slice() {
                return Err(PluginError::input(format!(
                    "`{}` is stored as {:?} {:?}, expected {:?} {:?}",
                    t.name,
                    stored.dtype(),
                    stored.shape(),
                    dtype,
                    t.tensor.shape.as_slice()
                )));
            }
            if stored.data() != expected.as_slice() {
                return Err(PluginError::input(format!(
                    "`{}` differs from the model",
                    t.name
                )));
            }
        }
        fs::metadata(sidecar_path(weights))
            .map_err(|e| PluginError::io(format!("sidecar of {}: {e}", weights.display())))?;
        Ok(VerifyReport {
            max_abs_diff: ROption::RNone,
            detail: format!(
                "read back {} tensors: names, dtypes, shapes and values match the model",
                graph.initializers.len()
            )
            .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> ModelGraph {
        let weight = |name: &str, shape: Vec<usize>, data: Vec<f32>| NamedTensor {
            name: name.into(),
            tensor: Tensor::new(shape, data).unwrap(),
        };
        ModelGraph {
            inputs: Vec::new().into(),
            outputs: Vec::new().into(),
            nodes: Vec::new().into(),
            initializers: vec![
                weight(
                    "fc.weight",
                    vec![2, 3],
                    vec![0.5, -1.0, 2.0, 3.25, 0.0, -0.125],
                ),
                weight("fc.bias", vec![2], vec![1e-7, -4.0]),
                weight("bn1.num_batches_tracked", vec![], vec![1234.0]),
            ]
            .into(),
        }
    }

    fn meta() -> ExportMeta {
        ExportMeta {
            recipe_name: "tiny".into(),
            recipe: "(name: \"tiny\")".into(),
            backbone: "resnet18".into(),
            class_names: vec!["cat".into(), "dog".into()].into(),
            input_height: 32,
            input_width: 48,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            extra: Vec::new().into(),
        }
    }

    fn exporter() -> SafetensorsExporter {
        SafetensorsExporter::new(SafetensorsConfig::default()).unwrap()
    }

    #[test]
    fn file_name_must_be_a_safetensors_file_name() {
        let bad = SafetensorsConfig {
            file_name: "../x.safetensors".into(),
        };
        assert_eq!(
            SafetensorsExporter::check(&bad)
                .unwrap_err()
                .field_path
                .as_str(),
            "file_name"
        );
        assert!(SafetensorsExporter::check(&SafetensorsConfig::default()).is_ok());
    }

    #[test]
    fn writes_weights_and_sidecar_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let files = exporter().export(&graph(), &meta(), dir.path()).unwrap();
        assert_eq!(
            files,
            [
                dir.path().join("model.safetensors"),
                dir.path().join("model.json")
            ]
        );
        let bytes = fs::read(&files[0]).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let fc = file.tensor("fc.weight").unwrap();
        assert_eq!(fc.dtype(), Dtype::F32);
        assert_eq!(fc.shape(), [2, 3]);
        assert_eq!(&fc.data()[..4], 0.5f32.to_le_bytes());
        let tracked = file.tensor("bn1.num_batches_tracked").unwrap();
        assert_eq!(tracked.dtype(), Dtype::I64);
        assert_eq!(tracked.data(), 1234i64.to_le_bytes());
        let sidecar: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&files[1]).unwrap()).unwrap();
        assert_eq!(sidecar["class_names"], json!(["cat", "dog"]));
        assert_eq!(sidecar["input_size"], json!([32, 48]));
        let empty = Tensor::zeros(vec![0]);
        let report = exporter()
            .verify(&files, &graph(), empty.view(), empty.view())
            .unwrap();
        assert!(report.max_abs_diff.is_none());
    }

    #[test]
    fn verification_catches_a_changed_weight() {
        let dir = tempfile::tempdir().unwrap();
        let files = exporter().export(&graph(), &meta(), dir.path()).unwrap();
        let mut changed = graph();
        changed.initializers[1].tensor.data[0] = 2e-7;
        let empty = Tensor::zeros(vec![0]);
        let err = exporter()
            .verify(&files, &changed, empty.view(), empty.view())
            .unwrap_err();
        assert_eq!(err.to_string(), "`fc.bias` differs from the model");
    }
}
