//! Opening an `.onnx` file to run it (ABI 1.2): how `clshost predict` runs an export.
//!
//! The class names, input size and normalization come from the file's `metadata_props` as the
//! exporter writes them (`onnx_build.rs`); every other entry (`eval_resize`, `recipe`,
//! `clshost_version`, ...) is passed on in [`ExportMeta::extra`]. The logits are the graph's
//! first output. A file declaring a fixed batch size runs in chunks of that size, the last one
//! padded.

use std::collections::HashMap;
use std::path::Path;

use clshost_plugin_api::Tuple2;
use clshost_plugin_api::prelude::*;
use serde::de::DeserializeOwned;
use tract_onnx::pb;

use super::run::Plan;

/// The metadata keys [`ExportMeta`] has fields for; the others go into `extra`.
const FIELDS: [&str; 7] = [
    "class_names",
    "input_size",
    "mean",
    "std",
    "recipe_name",
    "recipe",
    "backbone",
];

/// An `.onnx` export, ready to run with tract, and what it records.
pub(crate) struct OnnxModel {
    plan: Plan,
    meta: ExportMeta,
}

/// Opens `path` when it is an `.onnx` file; `Ok(None)` for any other file.
pub(crate) fn open(path: &Path) -> Result<Option<Box<dyn ExportedModel>>, PluginError> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return Ok(None);
    }
    let proto = super::read_model(path)?;
    let meta = meta_of(&proto, path)?;
    let plan = Plan::load(&proto)
        .map_err(|e| PluginError::new(e.kind, format!("{}: {}", path.display(), e.message)))?;
    Ok(Some(Box::new(OnnxModel { plan, meta })))
}

/// The metadata entry `key`, parsed as JSON.
fn json<T: DeserializeOwned>(
    props: &HashMap<&str, &str>,
    key: &str,
    path: &Path,
) -> Result<T, PluginError> {
    let value = props.get(key).ok_or_else(|| {
        PluginError::input(format!(
            "{} has no `{key}` in its metadata_props: a model needs the class names, input \
             size, mean and std that clshost's onnx exporter records",
            path.display()
        ))
    })?;
    serde_json::from_str(value).map_err(|e| {
        PluginError::input(format!(
            "{}: metadata `{key}` is {value:?}: {e}",
            path.display()
        ))
    })
}

/// What the file records besides the graph.
fn meta_of(proto: &pb::ModelProto, path: &Path) -> Result<ExportMeta, PluginError> {
    let props: HashMap<&str, &str> = proto
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    let text = |key: &str| RString::from(props.get(key).copied().unwrap_or(""));
    let class_names: Vec<String> = json(&props, "class_names", path)?;
    let [input_height, input_width]: [u32; 2] = json(&props, "input_size", path)?;
    let extra = proto
        .metadata_props
        .iter()
        .filter(|p| !FIELDS.contains(&p.key.as_str()))
        .map(|p| {
            Tuple2(
                RString::from(p.key.as_str()),
                RString::from(p.value.as_str()),
            )
        })
        .collect();
    Ok(ExportMeta {
        recipe_name: text("recipe_name"),
        recipe: text("recipe"),
        backbone: text("backbone"),
        class_names: class_names.into_iter().map(RString::from).collect(),
        input_height,
        input_width,
        mean: json(&props, "mean", path)?,
        std: json(&props, "std", path)?,
        extra,
    })
}

impl ExportedModel for OnnxModel {
    fn meta(&self) -> ExportMeta {
        self.meta.clone()
    }

    fn run(&mut self, images: TensorRef<'_>) -> Result<Tensor, PluginError> {
        let logits = self.plan.logits(images)?;
        Tensor::new(logits.shape, logits.data)
    }

    fn runner(&self) -> String {
        "tract".to_string()
    }
}
