//! The MODEL of `clshost predict`, in any of its three forms ([`crate::assemble::trained`]), or
//! published weights ([`crate::assemble::pretrained`]), as one [`Classifier`]: a run directory's or checkpoint's backbone runs the weights that scored
//! best in the run (raw or EMA, as the checkpoint records); an `.onnx` export has graph, class
//! names and preprocessing all in the file, and runs in the plugin that reads its format (the
//! `onnx` exporter's, with tract; ABI 1.2).
//!
//! An export's preprocessing is its `ExportMeta`: the input size is the center crop, `mean`
//! and `std` normalize, and the `eval_resize` entry of `extra` is the shorter side before the
//! crop (files without it take `data.eval_resize` from the recipe they record).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clshost_plugin_api::{ExportMeta, TensorRef, WeightSet};

use crate::assemble::pretrained::Request;
use crate::assemble::trained::{Located, Trained, locate};
use crate::data::DataSettings;
use crate::recipe::{doc, typed};
use crate::registry::{Backbone, ExportedModel, Registry, SearchPath};

/// What computes the logits.
enum Engine {
    /// A backbone plugin with a checkpoint's state, running `weights`.
    Backbone {
        /// The backbone.
        backbone: Backbone,
        /// Which copy of the weights to run.
        weights: WeightSet,
    },
    /// An exported file, run by the plugin that opened it.
    Exported(ExportedModel),
}

/// A model ready to classify preprocessed batches.
pub struct Classifier {
    /// The class names, in output order.
    pub classes: Vec<String>,
    /// The eval preprocessing: `eval_resize`, `eval_crop`, `mean` and `std` (the rest default).
    pub settings: DataSettings,
    /// What was loaded, in one line.
    pub description: String,
    engine: Engine,
}

impl Classifier {
    /// The `[N, classes]` logits of the `[N, 3, H, W]` `images`, row-major.
    pub fn logits(&mut self, images: TensorRef<'_>) -> Result<Vec<f32>> {
        let (shape, data) = match &mut self.engine {
            Engine::Backbone { backbone, weights } => {
                let t = backbone.eval_forward(images, *weights)?;
                (t.shape.into_vec(), t.data.into_vec())
            }
            Engine::Exported(model) => {
                let t = model.run(images)?;
                (t.shape.into_vec(), t.data.into_vec())
            }
        };
        let want = [images.shape[0], self.classes.len()];
        if shape != want {
            bail!("the model returned logits of shape {shape:?}, expected {want:?}");
        }
        Ok(data)
    }
}

/// Loads `model` (a run directory, a checkpoint or an `.onnx` file) to run on `device`.
pub fn load(search: &SearchPath, model: &Path, device: &str) -> Result<Classifier> {
    match locate(model)? {
        Located::Onnx(path) => {
            if device != "cpu" {
                bail!(
                    "an .onnx model runs on the CPU (with tract); --device applies to run \
                     directories and checkpoints"
                );
            }
            let registry = Registry::load(search)?;
            let model = registry.open_model(&path)?.ok_or_else(|| {
                anyhow!(
                    "no loaded plugin opens {}: the `onnx` exporter's plugin \
                     (clshost-plugin-export, plugin ABI 1.2 or later) runs .onnx files; put it \
                     on the plugin search path (`clshost plugins` lists what is loaded)",
                    path.display()
                )
            })?;
            let meta = model.meta();
            let classes: Vec<String> = meta.class_names.iter().map(|c| c.to_string()).collect();
            Ok(Classifier {
                description: format!(
                    "{} ({} classes) with {}",
                    path.display(),
                    classes.len(),
                    model.runner()
                ),
                settings: export_settings(&meta, &path)?,
                classes,
                engine: Engine::Exported(model),
            })
        }
        Located::Checkpoint { recipe, checkpoint } => {
            backbone(Trained::load(search, &recipe, &checkpoint, device, &[])?)
        }
    }
}

/// Loads the published weights `request` names (without a run).
pub fn pretrained(search: &SearchPath, request: &Request<'_>) -> Result<Classifier> {
    backbone(Trained::pretrained(search, request)?)
}

/// A classifier running `trained`'s backbone on the weights that scored best.
fn backbone(trained: Trained) -> Result<Classifier> {
    let weights = trained.best_weights();
    Ok(Classifier {
        description: trained.description()?,
        classes: trained.classes,
        settings: trained.settings,
        engine: Engine::Backbone {
            backbone: trained.backbone,
            weights,
        },
    })
}

/// The eval preprocessing an export records (see the module documentation).
fn export_settings(meta: &ExportMeta, path: &Path) -> Result<DataSettings> {
    let (height, width) = (meta.input_height, meta.input_width);
    if height != width {
        bail!(
            "{}: input size {height}x{width} is not square; the eval pipeline crops squares",
            path.display()
        );
    }
    let settings = DataSettings {
        eval_resize: eval_resize(meta, path)?,
        eval_crop: height,
        mean: meta.mean,
        std: meta.std,
        ..DataSettings::default()
    };
    settings.check()?;
    Ok(settings)
}

/// The shorter side before the crop: the `eval_resize` entry, else the recorded recipe's.
fn eval_resize(meta: &ExportMeta, path: &Path) -> Result<u32> {
    if let Some(entry) = meta.extra.iter().find(|e| e.0.as_str() == "eval_resize") {
        return entry.1.as_str().parse().with_context(|| {
            format!(
                "{}: metadata `eval_resize` is {:?}",
                path.display(),
                entry.1.as_str()
            )
        });
    }
    if meta.recipe.is_empty() {
        bail!(
            "{} records neither `eval_resize` nor `recipe` in its metadata",
            path.display()
        );
    }
    let recipe = doc::parse(&meta.recipe, "the `recipe` metadata")
        .map_err(|e| anyhow!("{e}"))
        .and_then(|node| typed::recipe(&node).map_err(|e| anyhow!("{e}")))
        .with_context(|| format!("{}: reading `eval_resize` from the recipe", path.display()))?;
    Ok(recipe.data.eval_resize)
}
