//! The `onnx` exporter: the backbone's graph as an ONNX model, checked and run back with tract.
//!
//! [`OnnxExporter::export`] translates the graph (see `onnx_build.rs` for the rewrites: names,
//! dynamic batch, folded BatchNorm, float16 weights, softmax output, metadata), checks the
//! result structurally (`onnx_check.rs`: every node input defined, every shape consistent) and
//! writes it with `prost` through the ONNX schema that `tract-onnx` ships (`tract_onnx::pb`).
//! [`OnnxExporter::verify`] reads the file back, repeats the structural check, runs it with
//! `tract-onnx` on the sample batch and compares its logits with the backbone's own: the largest
//! absolute difference goes into the report, and beyond the tolerance verification fails.
//! [`OnnxExporter::open`] opens an `.onnx` file again to run it (`onnx_open.rs`), which is how
//! `clshost predict` runs exports.

#[path = "onnx_build.rs"]
mod build;
#[path = "onnx_check.rs"]
mod check;
#[path = "onnx_open.rs"]
mod open;
#[path = "onnx_run.rs"]
mod run;

use std::fs;
use std::path::{Path, PathBuf};

use clshost_plugin_api::prelude::*;
use prost::Message;
use tract_onnx::pb;

use check::{Dim, check_model};

/// Writes the graph as an `.onnx` model and verifies it with tract.
pub struct OnnxExporter {
    config: OnnxConfig,
}

/// Config of [`OnnxExporter`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxConfig {
    /// Name of the model file inside the export directory; a plain file name ending in `.onnx`.
    pub file_name: String,
    /// ONNX opset of the default domain, 13 to 21.
    pub opset: i64,
    /// Name of the image input (float32 [N, 3, H, W], normalized).
    pub input_name: String,
    /// Name of the logits output (float32 [N, classes]).
    pub output_name: String,
    /// Make the batch axis symbolic (`batch`), so any batch size runs; off: `batch_size`.
    pub dynamic_batch: bool,
    /// The fixed batch size when `dynamic_batch` is off; at least 1.
    pub batch_size: u32,
    /// Add a second output with the softmax of the logits over classes.
    pub softmax: bool,
    /// Name of the softmax output when `softmax` is on.
    pub probabilities_name: String,
    /// Fold each BatchNormalization into the convolution it follows (fewer nodes).
    pub fold_batchnorm: bool,
    /// Store weights as float16 (half the file); they are cast to float32 where read.
    pub fp16: bool,
    /// Verification fails when a logit differs from the backbone's by more than this.
    pub tolerance: f64,
    /// For `fp16` exports: the accepted difference as a fraction of the largest absolute logit
    /// (taken as at least 1).
    pub fp16_tolerance: f64,
}

impl Default for OnnxConfig {
    fn default() -> Self {
        OnnxConfig {
            file_name: "model.onnx".into(),
            opset: 17,
            input_name: "images".into(),
            output_name: "logits".into(),
            dynamic_batch: true,
            batch_size: 1,
            softmax: false,
            probabilities_name: "probabilities".into(),
            fold_batchnorm: false,
            fp16: false,
            tolerance: 1e-4,
            fp16_tolerance: 1e-2,
        }
    }
}

impl Component for OnnxExporter {
    const NAME: &'static str = "onnx";
    const DESCRIPTION: &'static str =
        "ONNX model (opset 13-21) with metadata, verified against the backbone with tract";
    type Config = OnnxConfig;

    fn check(config: &OnnxConfig) -> Result<(), PluginError> {
        check_file_name("file_name", &config.file_name, "onnx")?;
        if !check::OPSETS.contains(&config.opset) {
            return Err(PluginError::config(
                "opset",
                format!(
                    "must be between {} and {}",
                    check::OPSETS.start(),
                    check::OPSETS.end()
                ),
            ));
        }
        let mut names = vec![
            ("input_name", &config.input_name),
            ("output_name", &config.output_name),
        ];
        if config.softmax {
            names.push(("probabilities_name", &config.probabilities_name));
        }
        for (i, (field, name)) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(PluginError::config(*field, "must not be empty"));
            }
            if let Some((other, _)) = names[..i].iter().find(|(_, n)| n == name) {
                return Err(PluginError::config(
                    *field,
                    format!("`{name}` is already the `{other}`"),
                ));
            }
        }
        if config.batch_size == 0 {
            return Err(PluginError::config("batch_size", "must be at least 1"));
        }
        for (field, t) in [
            ("tolerance", config.tolerance),
            ("fp16_tolerance", config.fp16_tolerance),
        ] {
            if !(t.is_finite() && t > 0.0) {
                return Err(PluginError::config(field, "must be a positive number"));
            }
        }
        Ok(())
    }
}

/// Reads and decodes an `.onnx` file.
pub(crate) fn read_model(path: &Path) -> Result<pb::ModelProto, PluginError> {
    let bytes = fs::read(path).map_err(|e| PluginError::io_at(path, e))?;
    pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| PluginError::input(format!("{} is not an ONNX model: {e}", path.display())))
}

/// The softmax of each row of a `rows x cols` matrix, in f64.
fn softmax_rows(data: &[f32], cols: usize) -> Vec<f64> {
    data.chunks(cols)
        .flat_map(|row| {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let exp: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            exp.into_iter().map(move |e| e / sum)
        })
        .collect()
}

/// The largest absolute difference and where it is; NaN counts as infinitely far.
fn max_abs_diff(actual: &[f32], expected: &[f64]) -> (f64, usize) {
    actual
        .iter()
        .zip(expected)
        .map(|(&a, &e)| {
            let d = (f64::from(a) - e).abs();
            if d.is_nan() { f64::INFINITY } else { d }
        })
        .enumerate()
        .fold(
            (0.0, 0),
            |(best, at), (i, d)| if d > best { (d, i) } else { (best, at) },
        )
}

impl OnnxExporter {
    /// The absolute tolerance verification applies to outputs compared with `expected`.
    fn tolerance(&self, expected: &[f32]) -> f64 {
        if self.config.fp16 {
            let scale = expected
                .iter()
                .fold(1.0, |m: f64, &v| m.max(f64::from(v).abs()));
            self.config.fp16_tolerance * scale
        } else {
            self.config.tolerance
        }
    }
}

impl Exporter for OnnxExporter {
    fn new(config: OnnxConfig) -> Result<Self, PluginError> {
        Self::check(&config)?;
        Ok(OnnxExporter { config })
    }

    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: &Path,
    ) -> Result<Vec<PathBuf>, PluginError> {
        let model = build::build_model(graph, meta, &self.config)?;
        check_model(&model)?;
        let path = out_dir.join(&self.config.file_name);
        fs::write(&path, model.encode_to_vec()).map_err(|e| PluginError::io_at(&path, e))?;
        Ok(vec![path])
    }

    fn verify(
        &self,
        files: &[PathBuf],
        _graph: &ModelGraph,
        inputs: TensorRef<'_>,
        expected: TensorRef<'_>,
    ) -> Result<VerifyReport, PluginError> {
        let path = files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "onnx"))
            .ok_or_else(|| PluginError::input("no .onnx file among the exported files"))?;
        let model = read_model(path)?;
        let summary = check_model(&model)?;
        let batch = inputs.dims4()?;
        let [(input_name, input)] = summary.inputs.as_slice() else {
            return Err(PluginError::input(format!(
                "{} has {} inputs, expected one image input",
                path.display(),
                summary.inputs.len()
            )));
        };
        let fits = input.shape.len() == 4
            && input.shape.iter().zip(batch).all(|(d, n)| match d {
                Dim::Known(k) => *k == n as i64,
                Dim::Named(_) => true,
            });
        if !fits {
            return Err(PluginError::input(format!(
                "{}: input `{input_name}` is {input}; the sample batch has shape {batch:?}",
                path.display()
            )));
        }
        let (rows, cols) = expected.dims2()?;
        let outputs = run::run(&model, inputs)?;
        if outputs.len() != summary.outputs.len() {
            return Err(PluginError::internal(format!(
                "{}: tract returned {} outputs, the model declares {}",
                path.display(),
                outputs.len(),
                summary.outputs.len()
            )));
        }
        let mut worst = (0.0, String::new());
        for ((name, _), output) in summary.outputs.iter().zip(&outputs) {
            let reference: Vec<f64> = if name == &self.config.probabilities_name {
                softmax_rows(&expected.data, cols)
            } else {
                expected.data.iter().map(|&v| f64::from(v)).collect()
            };
            if output.shape != [rows, cols] {
                return Err(PluginError::internal(format!(
                    "{}: output `{name}` has shape {:?}, the backbone's logits {:?}",
                    path.display(),
                    output.shape,
                    [rows, cols]
                )));
            }
            let (diff, at) = max_abs_diff(&output.data, &reference);
            if diff > worst.0 || worst.1.is_empty() {
                worst = (
                    diff,
                    format!(
                        "`{name}` of image {} class {}: {} vs {}",
                        at / cols,
                        at % cols,
                        output.data[at],
                        reference[at]
                    ),
                );
            }
        }
        let tolerance = self.tolerance(&expected.data);
        if worst.0 > tolerance {
            return Err(PluginError::internal(format!(
                "ONNX export failed verification: tract's outputs differ from the backbone's by \
                 up to {:.3e}, beyond the tolerance {tolerance:e} (worst: {})",
                worst.0, worst.1
            )));
        }
        Ok(VerifyReport {
            max_abs_diff: ROption::RSome(worst.0),
            detail: format!(
                "{}: checked {} nodes and {} initializers (opset {}); tract ran it on {rows} \
                 images: max |diff| {:.3e} from the backbone, tolerance {tolerance:e}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                summary.nodes,
                summary.initializers,
                summary.opset,
                worst.0
            )
            .into(),
        })
    }

    fn open(path: &Path) -> Result<Option<Box<dyn ExportedModel>>, PluginError> {
        open::open(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_checked() {
        assert!(OnnxExporter::check(&OnnxConfig::default()).is_ok());
        let field = |config: OnnxConfig| {
            OnnxExporter::check(&config)
                .unwrap_err()
                .field_path
                .to_string()
        };
        let base = OnnxConfig::default;
        assert_eq!(
            field(OnnxConfig {
                file_name: "dir/model.onnx".into(),
                ..base()
            }),
            "file_name"
        );
        assert_eq!(
            field(OnnxConfig {
                opset: 12,
                ..base()
            }),
            "opset"
        );
        assert_eq!(
            field(OnnxConfig {
                output_name: "images".into(),
                ..base()
            }),
            "output_name"
        );
        assert_eq!(
            field(OnnxConfig {
                softmax: true,
                probabilities_name: String::new(),
                ..base()
            }),
            "probabilities_name"
        );
        assert_eq!(
            field(OnnxConfig {
                batch_size: 0,
                ..base()
            }),
            "batch_size"
        );
        assert_eq!(
            field(OnnxConfig {
                tolerance: f64::NAN,
                ..base()
            }),
            "tolerance"
        );
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_by_hand() {
        let p = softmax_rows(&[0.0, 0.0, 1.0, 3.0], 2);
        assert_eq!(p[..2], [0.5, 0.5]);
        let e2 = 2f64.exp();
        assert!((p[3] - e2 / (1.0 + e2)).abs() < 1e-15);
    }

    #[test]
    fn the_fp16_tolerance_scales_with_the_largest_logit() {
        let fp16 = OnnxExporter::new(OnnxConfig {
            fp16: true,
            ..OnnxConfig::default()
        })
        .unwrap();
        assert_eq!(fp16.tolerance(&[-20.0, 3.0]), 0.2);
        assert_eq!(fp16.tolerance(&[0.5, -0.25]), 1e-2);
        let fp32 = OnnxExporter::new(OnnxConfig::default()).unwrap();
        assert_eq!(fp32.tolerance(&[-20.0, 3.0]), 1e-4);
    }

    #[test]
    fn max_abs_diff_treats_nan_as_infinite() {
        assert_eq!(max_abs_diff(&[1.0, 2.5], &[1.0, 2.0]), (0.5, 1));
        assert_eq!(max_abs_diff(&[f32::NAN, 0.0], &[0.0, 0.0]).0, f64::INFINITY);
    }
}
