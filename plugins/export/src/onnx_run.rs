//! Running an exported model with `tract-onnx`, in process, for verification, and tract's type
//! and shape analysis of a model for the structural check.

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

/// tract's type and shape analysis of `model` for a float input of `input_shape`: the shape of
/// each graph output, in order. Fails at the first node whose inputs disagree.
pub(crate) fn analyse(
    model: &pb::ModelProto,
    input_shape: &[usize],
) -> Result<Vec<Vec<usize>>, PluginError> {
    let failed = |e: TractError| {
        PluginError::input(format!(
            "invalid ONNX model: tract's type and shape analysis fails: {e:#}"
        ))
    };
    let mut inference = tract_onnx::onnx()
        .model_for_proto_model(model)
        .map_err(failed)?;
    inference
        .set_input_fact(
            0,
            InferenceFact::dt_shape(DatumType::F32, input_shape.to_vec()),
        )
        .map_err(failed)?;
    let typed = inference.into_typed().map_err(failed)?;
    (0..typed.outputs.len())
        .map(|i| {
            let fact = typed
                .output_fact(i)
                .map_err(|e| tract_error("read the outputs of", e))?;
            fact.shape
                .as_concrete()
                .map(<[usize]>::to_vec)
                .ok_or_else(|| {
                    PluginError::internal(format!(
                        "tract leaves output {i} of the exported model without a concrete shape"
                    ))
                })
        })
        .collect()
}

/// An exported model loaded into tract and optimized for its declared (possibly symbolic)
/// input shape.
pub(crate) struct Plan {
    plan: Arc<TypedRunnableModel>,
    /// The batch size the model declares, when it is not symbolic.
    fixed_batch: Option<usize>,
}

impl Plan {
    /// Loads `model` into tract and prepares it to run.
    pub(crate) fn load(model: &pb::ModelProto) -> Result<Plan, PluginError> {
        let typed = tract_onnx::onnx()
            .model_for_proto_model(model)
            .and_then(|m| m.into_typed())
            .map_err(|e| tract_error("load", e))?;
        let fixed_batch = typed
            .input_fact(0)
            .map_err(|e| tract_error("read the input of", e))?
            .shape
            .iter()
            .next()
            .and_then(|d| d.as_i64())
            .and_then(|n| usize::try_from(n).ok());
        let plan = typed
            .into_optimized()
            .map_err(|e| tract_error("optimize", e))?
            .into_runnable()
            .map_err(|e| tract_error("plan", e))?;
        Ok(Plan { plan, fixed_batch })
    }

    /// Every output for `images`, in graph order, in one run.
    pub(crate) fn run(&self, images: TensorRef<'_>) -> Result<Vec<Output>, PluginError> {
        let input = Tensor::from_shape(images.shape.as_slice(), images.data.as_slice())
            .map_err(|e| PluginError::input(format!("sample batch: {e:#}")))?;
        let outputs = self
            .plan
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

    /// The first output (the logits) for any number of `images`: a model with a fixed batch
    /// size runs them in chunks of that size, the last one padded.
    pub(crate) fn logits(&self, images: TensorRef<'_>) -> Result<Output, PluginError> {
        let [n, _, _, _] = images.dims4()?;
        let data = images.data.as_slice();
        let per_image = data.len() / n.max(1);
        let chunk = self.fixed_batch.unwrap_or(n).max(1);
        let mut out = Output {
            shape: vec![n, 0],
            data: Vec::new(),
        };
        for start in (0..n).step_by(chunk) {
            let take = chunk.min(n - start);
            let mut input = data[start * per_image..(start + take) * per_image].to_vec();
            input.resize(chunk * per_image, 0.0);
            let mut shape = images.shape.to_vec();
            shape[0] = chunk;
            let logits = self
                .run(TensorRef {
                    shape: shape.as_slice().into(),
                    data: input.as_slice().into(),
                })?
                .into_iter()
                .next()
                .ok_or_else(|| PluginError::internal("the ONNX model has no output"))?;
            let classes = logits.shape.get(1).copied().unwrap_or(0);
            out.shape[1] = classes;
            out.data.extend_from_slice(&logits.data[..take * classes]);
        }
        Ok(out)
    }
}

/// Loads `model` into tract and runs it once on `images`; returns the outputs in graph order.
pub(crate) fn run(
    model: &pb::ModelProto,
    images: TensorRef<'_>,
) -> Result<Vec<Output>, PluginError> {
    Plan::load(model)?.run(images)
}
