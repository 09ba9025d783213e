//! Running an exported model with `tract-onnx`, in process, for verification.

use clshost_plugin_api::{PluginError, TensorRef};
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// A float output of a run: its shape and row-major elements.
pub(crate) struct Output {
    /// The output's shape.
    pub shape: Vec<usize>,
    /// Its elements.
    pub data: Vec<f32>,
}

/// A tract failure as a plugin error, with tract's chain of causes on one line.
fn tract_error(what: &str, e: TractError) -> PluginError {
    PluginError::internal(format!("tract could not {what} the exported model: {e:#}"))
}

/// Loads `model` into tract, optimizes it for its declared (possibly symbolic) input shape, and
/// runs it on `images`; returns the outputs in graph order.
pub(crate) fn run(
    model: &pb::ModelProto,
    images: TensorRef<'_>,
) -> Result<Vec<Output>, PluginError> {
    let plan = tract_onnx::onnx()
        .model_for_proto_model(model)
        .map_err(|e| tract_error("load", e))?
        .into_optimized()
        .map_err(|e| tract_error("optimize", e))?
        .into_runnable()
        .map_err(|e| tract_error("plan", e))?;
    let input = Tensor::from_shape(images.shape.as_slice(), images.data.as_slice())
        .map_err(|e| PluginError::input(format!("sample batch: {e:#}")))?;
    let outputs = plan
        .run(tvec!(input.into()))
        .map_err(|e| tract_error("run", e))?;
    outputs
        .iter()
        .map(|t| {
            let view = t
                .to_plain_array_view::<f32>()
                .map_err(|e| tract_error("read the outputs of", e))?;
            Ok(Output {
                shape: view.shape().to_vec(),
                data: view.iter().copied().collect(),
            })
        })
        .collect()
}
