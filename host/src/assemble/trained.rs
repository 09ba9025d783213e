//! A trained model named on the command line, as `clshost predict` and `clshost eval` take it:
//!
//! - a run directory: its `recipe.ron` and `checkpoints/best.ckpt` (`last.ckpt` when there is
//!   no `best`);
//! - a checkpoint: the file, with the `recipe.ron` of the run it belongs to (in the folder above
//!   the checkpoint's, as in a run directory, or next to it);
//! - an `.onnx` export, which [`locate`] only recognizes: each command decides what it does with
//!   one.
//!
//! For the first two the backbone comes from the recipe's plugins through the [`Registry`] and
//! gets the checkpoint's full state, as `clshost run --resume` loads it ([`Trained`]). The class
//! names are the checkpoint's (older checkpoints lack them: then the class folders of the
//! recipe's training data), the preprocessing the recipe's `data` section.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clshost_plugin_api::WeightSet;

use super::components::backbone_context;
use super::recipe_search_path;
use crate::data::DataSettings;
use crate::data::imagefolder::class_folders;
use crate::recipe::validate::train_folder;
use crate::recipe::{Recipe, Resolved};
use crate::registry::{Backbone, Registry, SearchPath};
use crate::train::checkpoint::is_checkpoint;
use crate::train::{Checkpoint, HostState};

/// Where a MODEL argument's model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A checkpoint and the recipe of its run.
    Checkpoint {
        /// The run's `recipe.ron`.
        recipe: PathBuf,
        /// The checkpoint file.
        checkpoint: PathBuf,
    },
    /// An exported `.onnx` file.
    Onnx(PathBuf),
}

/// Finds the model `model` names: a run directory, a checkpoint or an `.onnx` file.
pub fn locate(model: &Path) -> Result<Located> {
    if model.is_dir() {
        let recipe = model.join("recipe.ron");
        if !recipe.is_file() {
            bail!(
                "{} is not a run directory: it has no recipe.ron",
                model.display()
            );
        }
        let checkpoint = ["best.ckpt", "last.ckpt"]
            .iter()
            .map(|name| model.join("checkpoints").join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                anyhow!(
                    "run directory {} has no checkpoints/best.ckpt or checkpoints/last.ckpt",
                    model.display()
                )
            })?;
        return Ok(Located::Checkpoint { recipe, checkpoint });
    }
    if !model.exists() {
        bail!("MODEL {} does not exist", model.display());
    }
    if model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return Ok(Located::Onnx(model.to_path_buf()));
    }
    if is_checkpoint(model) {
        return Ok(Located::Checkpoint {
            recipe: recipe_of(model)?,
            checkpoint: model.to_path_buf(),
        });
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

/// A backbone with a checkpoint's state, and what it was trained with.
pub struct Trained {
    /// The run's recipe, with `overrides` applied and `trainer.device` the one asked for.
    pub recipe: Recipe,
    /// The plugins of the recipe's search path, to create its other components.
    pub registry: Registry,
    /// The backbone, holding the checkpoint's full state.
    pub backbone: Backbone,
    /// The checkpoint's host state (epoch, which weights scored best, history).
    pub host: HostState,
    /// The class names, in output order.
    pub classes: Vec<String>,
    /// The recipe's data settings (the eval preprocessing among them).
    pub settings: DataSettings,
    /// The checkpoint file (for published weights, the state dict file).
    pub checkpoint: PathBuf,
    /// For published weights used without a run ([`Trained::pretrained`]), the weight source.
    pub source: Option<String>,
}

impl Trained {
    /// Builds the backbone of the recipe at `recipe_path` (with `overrides`, on `device`) and
    /// loads the state of the checkpoint at `checkpoint`.
    pub fn load(
        search: &SearchPath,
        recipe_path: &Path,
        checkpoint: &Path,
        device: &str,
        overrides: &[String],
    ) -> Result<Trained> {
        let resolved = Resolved::load(recipe_path, overrides).map_err(|e| anyhow!("{e}"))?;
        let mut recipe = resolved.recipe.clone();
        recipe.trainer.device = device.to_string();
        let ckpt = Checkpoint::load(checkpoint)?;
        let classes = if ckpt.host.classes.is_empty() {
            let folder = train_folder(&resolved);
            class_folders(&folder)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "{} does not record its class names (an older checkpoint), and the \
                         recipe's training folder {} cannot be read to find them",
                        checkpoint.display(),
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
            .with_context(|| format!("loading {}", checkpoint.display()))?;
        let settings = DataSettings::from_recipe(&recipe.data, recipe.seed)?;
        Ok(Trained {
            recipe,
            registry,
            backbone,
            host: ckpt.host,
            classes,
            settings,
            checkpoint: checkpoint.to_path_buf(),
            source: None,
        })
    }

    /// The weights that scored best in the run: raw or EMA, as the checkpoint records.
    pub fn best_weights(&self) -> WeightSet {
        WeightSet::from(self.host.best_weights)
    }

    /// What was loaded, in one line: model, checkpoint (or weight source), weights, epoch,
    /// classes and device.
    pub fn description(&self) -> Result<String> {
        let device = self.backbone.summary()?.device;
        let n = self.classes.len();
        Ok(match &self.source {
            Some(source) => format!(
                "{} with {source} ({}, {n} classes) on {device}",
                self.recipe.model.name,
                self.checkpoint.display()
            ),
            None => format!(
                "{} from {} ({} weights of epoch {}, {n} classes) on {device}",
                self.recipe.model.name,
                self.checkpoint.display(),
                self.host.best_weights.name(),
                self.host.epoch,
            ),
        })
    }
}
