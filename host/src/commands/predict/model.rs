//! The MODEL of `clshost predict`, in any of its three forms, as one [`Classifier`]:
//!
//! - a run directory: its `recipe.ron` and `checkpoints/best.ckpt` (`last.ckpt` when there is
//!   no `best`);
//! - a checkpoint: the file, with the `recipe.ron` of the run it belongs to (in the folder above
//!   the checkpoint's, as in a run directory, or next to it);
//! - an `.onnx` export ([`super::onnx`]): graph, class names and preprocessing all in the file.
//!
//! For the first two the backbone comes from the recipe's plugins through the [`Registry`] and
//! gets the checkpoint's full state, as `clshost run --resume` loads it; it then runs the
//! weights that scored best in the run (raw or EMA, as the checkpoint records). The class names
//! are the checkpoint's (older checkpoints lack them: then the class folders of the recipe's
//! training data), the preprocessing the recipe's `data` section.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clshost_plugin_api::{TensorRef, WeightSet};

use super::onnx::OnnxModel;
use crate::commands::check::recipe_search_path;
use crate::commands::run::backbone_context;
use crate::data::DataSettings;
use crate::recipe::Resolved;
use crate::recipe::validate::{class_folders, train_folder};
use crate::registry::{Backbone, Registry, SearchPath};
use crate::train::Checkpoint;
use crate::train::checkpoint::is_checkpoint;

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
    if model.is_dir() {
        let recipe = model.join("recipe.ron");
        if !recipe.is_file() {
            bail!(
                "{} is not a run directory: it has no recipe.ron",
                model.display()
            );
        }
        let ckpt = ["best.ckpt", "last.ckpt"]
            .iter()
            .map(|name| model.join("checkpoints").join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                anyhow!(
                    "run directory {} has no checkpoints/best.ckpt or checkpoints/last.ckpt",
                    model.display()
                )
            })?;
        return from_checkpoint(search, &recipe, &ckpt, device);
    }
    if !model.exists() {
        bail!("MODEL {} does not exist", model.display());
    }
    if model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        if device != "cpu" {
            bail!(
                "an .onnx model runs on the CPU (with tract); --device applies to run \
                 directories and checkpoints"
            );
        }
        return OnnxModel::load(model).map(|(onnx, classes, settings)| Classifier {
            description: format!("{} ({} classes) with tract", model.display(), classes.len()),
            classes,
            settings,
            engine: Engine::Onnx(onnx),
        });
    }
    if is_checkpoint(model) {
        return from_checkpoint(search, &recipe_of(model)?, model, device);
    }
    bail!(
        "{} is not a run directory, a clshost checkpoint or an .onnx file",
        model.display()
    )
}

/// The `recipe.ron` of the run the checkpoint `ckpt` belongs to: in the folder above its own
/// (`RUN/checkpoints/best.ckpt`), or next to it.
fn recipe_of(ckpt: &Path) -> Result<PathBuf> {
    let dir = ckpt.parent().unwrap_or(Path::new("."));
    [
        dir.parent().map(|d| d.join("recipe.ron")),
        Some(dir.join("recipe.ron")),
    ]
    .into_iter()
    .flatten()
    .find(|path| path.is_file())
    .ok_or_else(|| {
        anyhow!(
            "{} holds the weights but not the recipe (model and preprocessing), and there is \
                 no recipe.ron next to it or in the folder above; give the run directory, or \
                 copy the run's recipe.ron next to the checkpoint",
            ckpt.display()
        )
    })
}

/// A backbone from the recipe at `recipe_path` with the state of the checkpoint at `ckpt_path`.
fn from_checkpoint(
    search: &SearchPath,
    recipe_path: &Path,
    ckpt_path: &Path,
    device: &str,
) -> Result<Classifier> {
    let resolved = Resolved::load(recipe_path, &[]).map_err(|e| anyhow!("{e}"))?;
    let mut recipe = resolved.recipe.clone();
    recipe.trainer.device = device.to_string();
    let ckpt = Checkpoint::load(ckpt_path)?;
    let classes = if ckpt.host.classes.is_empty() {
        let folder = train_folder(&resolved);
        class_folders(&folder)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "{} does not record its class names (an older checkpoint), and the \
                     recipe's training folder {} cannot be read to find them",
                    ckpt_path.display(),
                    folder.display()
                )
            })?
    } else {
        ckpt.host.classes.clone()
    };
    let registry = Registry::load(&recipe_search_path(search, &resolved))?;
    let ctx = backbone_context(&recipe, classes.len() as u32);
    let mut backbone = registry.new_backbone(&recipe.model.name, &recipe.model.params, &ctx)?;
    backbone
        .load_state(&ckpt.backbone)
        .with_context(|| format!("loading {}", ckpt_path.display()))?;
    let weights = WeightSet::from(ckpt.host.best_weights);
    let settings = DataSettings::from_recipe(&recipe.data, recipe.seed)?;
    Ok(Classifier {
        description: format!(
            "{} from {} ({} weights of epoch {}, {} classes) on {}",
            recipe.model.name,
            ckpt_path.display(),
            match weights {
                WeightSet::Raw => "raw",
                WeightSet::Ema => "EMA",
            },
            ckpt.host.epoch,
            classes.len(),
            backbone.summary()?.device
        ),
        classes,
        settings,
        engine: Engine::Backbone { backbone, weights },
    })
}
