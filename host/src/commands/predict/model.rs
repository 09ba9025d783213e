//! The MODEL of `clshost predict`, in any of its three forms ([`crate::assemble::trained`]), as
//! one [`Classifier`]: a run directory's or checkpoint's backbone runs the weights that scored
//! best in the run (raw or EMA, as the checkpoint records); an `.onnx` export
//! ([`super::onnx`]) has graph, class names and preprocessing all in the file.

use std::path::Path;

use anyhow::{Result, bail};
use clshost_plugin_api::{TensorRef, WeightSet};

use super::onnx::OnnxModel;
use crate::assemble::trained::{Located, Trained, locate};
use crate::data::DataSettings;
use crate::registry::{Backbone, SearchPath};

/// What computes the logits.
enum Engine {
    /// A backbone plugin with a checkpoint's state, running `weights`.
    Backbone {
        /// The backbone.
        backbone: Backbone,
        /// Which copy of the weights to run.
        weights: WeightSet,
    },
    /// An ONNX file run by tract.
    Onnx(OnnxModel),
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
            Engine::Onnx(model) => model.run(images)?,
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
            OnnxModel::load(&path).map(|(onnx, classes, settings)| Classifier {
                description: format!("{} ({} classes) with tract", path.display(), classes.len()),
                classes,
                settings,
                engine: Engine::Onnx(onnx),
            })
        }
        Located::Checkpoint { recipe, checkpoint } => {
            let trained = Trained::load(search, &recipe, &checkpoint, device, &[])?;
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
    }
}
