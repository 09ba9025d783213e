//! ONNX exports for `clshost predict`, run in process with `tract-onnx`.
//!
//! Everything besides the graph comes from the file's `metadata_props`, as the `onnx` exporter
//! writes them (`docs/plugins/export.md`): `class_names`, `input_size` (the center crop),
//! `mean` and `std`, and `eval_resize` (the shorter side before the crop; files without it
//! take `data.eval_resize` from the `recipe` entry). The logits are the graph's first output.
//! A file declaring a fixed batch size is run in chunks of that size, the last one padded.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clshost_plugin_api::TensorRef;
use serde::de::DeserializeOwned;
use tract_onnx::prelude::*;

use crate::data::DataSettings;
use crate::recipe::{doc, typed};

/// A loaded ONNX classifier.
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    /// The batch size the file declares, when it is not symbolic.
    fixed_batch: Option<usize>,
}

/// The metadata entry `key` of `path`, parsed as JSON.
fn json<T: DeserializeOwned>(meta: &HashMap<&str, &str>, key: &str, path: &Path) -> Result<T> {
    let value = meta.get(key).ok_or_else(|| {
        anyhow!(
            "{} has no `{key}` in its metadata_props: predict needs the class names, input \
             size, mean and std that clshost's onnx exporter records",
            path.display()
        )
    })?;
    serde_json::from_str(value)
        .with_context(|| format!("{}: metadata `{key}` is {value:?}", path.display()))
}

/// The shorter side before the crop: the `eval_resize` entry, else the recorded recipe's.
fn eval_resize(meta: &HashMap<&str, &str>, path: &Path) -> Result<u32> {
    if meta.contains_key("eval_resize") {
        return json(meta, "eval_resize", path);
    }
    let recipe = meta.get("recipe").ok_or_else(|| {
        anyhow!(
            "{} records neither `eval_resize` nor `recipe` in its metadata_props",
            path.display()
        )
    })?;
    let recipe = doc::parse(recipe, "the `recipe` metadata")
        .map_err(|e| anyhow!("{e}"))
        .and_then(|node| typed::recipe(&node).map_err(|e| anyhow!("{e}")))
        .with_context(|| format!("{}: reading `eval_resize` from the recipe", path.display()))?;
    Ok(recipe.data.eval_resize)
}

impl OnnxModel {
    /// Loads the file at `path`: the runnable model, its class names and its preprocessing.
    pub fn load(path: &Path) -> Result<(OnnxModel, Vec<String>, DataSettings)> {
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_path(path)
            .with_context(|| format!("cannot read {} as an ONNX model", path.display()))?;
        let meta: HashMap<&str, &str> = proto
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        let classes: Vec<String> = json(&meta, "class_names", path)?;
        let [height, width]: [u32; 2] = json(&meta, "input_size", path)?;
        if height != width {
            bail!(
                "{}: input size {height}x{width} is not square; the eval pipeline crops squares",
                path.display()
            );
        }
        let settings = DataSettings {
            eval_resize: eval_resize(&meta, path)?,
            eval_crop: height,
            mean: json(&meta, "mean", path)?,
            std: json(&meta, "std", path)?,
            ..DataSettings::default()
        };
        settings.check()?;
        let model = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_typed())
            .with_context(|| format!("tract cannot load {}", path.display()))?;
        let fixed_batch = model.input_fact(0)?.shape[0]
            .as_i64()
            .and_then(|n| usize::try_from(n).ok());
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .with_context(|| format!("tract cannot prepare {}", path.display()))?;
        Ok((OnnxModel { plan, fixed_batch }, classes, settings))
    }

    /// The first output for the `[N, 3, H, W]` `images`: its shape and row-major elements.
    pub fn run(&self, images: TensorRef<'_>) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = images.shape.as_slice();
        let data = images.data.as_slice();
        let n = shape[0];
        let per_image = data.len() / n.max(1);
        let chunk = self.fixed_batch.unwrap_or(n).max(1);
        let mut out = Vec::new();
        let mut classes = 0;
        for start in (0..n).step_by(chunk) {
            let take = chunk.min(n - start);
            let mut input = data[start * per_image..(start + take) * per_image].to_vec();
            input.resize(chunk * per_image, 0.0);
            let mut input_shape = shape.to_vec();
            input_shape[0] = chunk;
            let input = Tensor::from_shape(&input_shape, &input)?;
            let outputs = self.plan.run(tvec!(input.into()))?;
            let logits = outputs
                .first()
                .context("the ONNX model has no output")?
                .to_plain_array_view::<f32>()?;
            classes = logits.shape().get(1).copied().unwrap_or(0);
            out.extend(logits.iter().take(take * classes).copied());
        }
        Ok((vec![n, classes], out))
    }
}
