//! Everything a run trains with: the datasets and loaders, the backbone and every other
//! component ([`Parts`]), the weights it starts from, and the host state of a run that has not
//! trained yet.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clshost_plugin_api::{BackboneContext, LoadWeightsOptions, NamedTensor, WeightSet};

use super::components::{
    augment_context, backbone_context, batch_augments, direction, new_loss, new_metrics, tuning,
};
use super::loaders::{eval_loader, train_loader};
use crate::data::DataSettings;
use crate::recipe::Recipe;
use crate::registry::{Backbone, Registry};
use crate::train::checkpoint::is_checkpoint;
use crate::train::{BestWeights, Checkpoint, Direction, HostState, Monitor, Parts};
use crate::weights::{Cache, WeightSource};

/// Builds the loaders and every component of `recipe`.
pub fn run_parts(recipe: &Recipe, registry: &Registry) -> Result<Parts> {
    let settings = DataSettings::from_recipe(&recipe.data, recipe.seed)?;
    let (train_set, val_set) = settings.datasets()?;
    let classes = train_set.classes.clone();
    let num_classes = recipe.model.num_classes.unwrap_or(classes.len() as u32);
    if num_classes as usize != classes.len() {
        bail!(
            "model.num_classes is {num_classes} but the data has {} classes",
            classes.len()
        );
    }
    let augment_ctx = augment_context(&settings, num_classes);
    let train = train_loader(recipe, registry, &settings, train_set.samples, &augment_ctx)?;
    let val = eval_loader(recipe, &settings, val_set.samples, None)?;
    let ctx = backbone_context(recipe, num_classes);
    let mut backbone = registry.new_backbone(&recipe.model.name, &recipe.model.params, &ctx)?;
    backbone
        .set_precision(recipe.trainer.precision.name())
        .context("trainer.precision")?;
    let loss = new_loss(recipe, registry, num_classes)?;
    let batch_augments = batch_augments(recipe, registry, &augment_ctx)?;
    let raw_metrics = new_metrics(recipe, registry, &classes)?;
    let ema_metrics = recipe
        .trainer
        .ema
        .as_ref()
        .map(|_| new_metrics(recipe, registry, &classes))
        .transpose()?;
    let direction = direction(recipe, &raw_metrics)?;
    Ok(Parts {
        recipe: recipe.clone(),
        backbone,
        loss,
        batch_augments,
        metrics: raw_metrics,
        ema_metrics,
        train,
        val,
        classes,
        direction,
        tuning: tuning(recipe),
    })
}

/// The raw weights in the file at `path`: a clshost checkpoint (its backbone state is loaded
/// into a scratch backbone of the recipe's model to read them) or a state dict (`.safetensors`,
/// or a PyTorch `.pth`, `.pt` or `.bin` pickle).
pub fn weights_of(
    registry: &Registry,
    recipe: &Recipe,
    ctx: &BackboneContext,
    path: &Path,
) -> Result<Vec<NamedTensor>> {
    if !is_checkpoint(path) {
        return Ok(clshost_state_dict::read(path)?);
    }
    let ckpt = Checkpoint::load(path)?;
    let mut scratch = registry.new_backbone(&recipe.model.name, &recipe.model.params, ctx)?;
    scratch.load_state(&ckpt.backbone)?;
    Ok(scratch.named_weights(WeightSet::Raw)?)
}

/// Loads `weights` (read from `path`) into `backbone`, failing on keys that do not fit; with
/// `new_head`, a classifier of another class count is started fresh instead.
pub fn load_weights(
    backbone: &mut Backbone,
    weights: Vec<NamedTensor>,
    path: &Path,
    what: &str,
    new_head: bool,
) -> Result<()> {
    let report = backbone
        .load_weights(
            weights,
            LoadWeightsOptions {
                strict: true,
                reinit_mismatched_head: new_head,
            },
        )
        .with_context(|| format!("{what} {}", path.display()))?;
    tracing::info!(
        "{what}: loaded {} weights from {}{}",
        report.loaded,
        path.display(),
        if report.reinitialized.is_empty() {
            String::new()
        } else {
            format!(
                " (classifier started fresh: {})",
                report.reinitialized.len()
            )
        }
    );
    Ok(())
}

/// The state of a run that has not trained yet, over `classes`.
pub fn fresh_state(recipe: &Recipe, direction: Direction, classes: &[String]) -> HostState {
    let t = &recipe.trainer;
    let mut notes = std::collections::BTreeMap::new();
    notes.insert("clshost".into(), env!("CARGO_PKG_VERSION").into());
    notes.insert("device".into(), t.device.clone());
    HostState {
        recipe: recipe.name.clone(),
        seed: recipe.seed,
        epoch: 0,
        batches_done: 0,
        global_step: 0,
        epoch_loss_sum: 0.0,
        epoch_images: 0,
        epoch_seconds: 0.0,
        epoch_wall_seconds: 0.0,
        wall_seconds: 0.0,
        total_images: 0,
        train_seconds: 0.0,
        monitor: Monitor::new(
            direction,
            t.early_stopping.as_ref().map_or(0.0, |e| e.min_delta),
            t.early_stopping.as_ref().map(|e| e.patience),
        ),
        best_weights: BestWeights::Raw,
        history: Vec::new(),
        top_k: Vec::new(),
        notes,
        classes: classes.to_vec(),
        world_size: 1,
    }
}

/// Loads the weights of every weight source in `sources` into `parts`' backbone, in order:
/// each is `(source, what)`, with `what` naming where the source came from (`model.weights`,
/// `--init-from`) in errors and logs. Sources that are not local files are found in a cache or
/// downloaded first (with a progress bar when `progress` is set).
pub fn load_initial_weights(
    registry: &Registry,
    recipe: &Recipe,
    parts: &mut Parts,
    sources: &[(Option<&str>, &str)],
    progress: bool,
) -> Result<()> {
    let ctx = backbone_context(recipe, parts.classes.len() as u32);
    for &(text, what) in sources {
        let Some(text) = text else { continue };
        let path = text
            .parse()
            .map_err(anyhow::Error::from)
            .and_then(|source| fetch(&source, progress))
            .with_context(|| format!("{what} {text}"))?;
        let weights = weights_of(registry, recipe, &ctx, &path)
            .with_context(|| format!("{what} {}", path.display()))?;
        load_weights(&mut parts.backbone, weights, &path, what, true)?;
    }
    Ok(())
}

/// The file of `source` on this machine, from a cache or downloaded if need be (with a progress
/// bar when `progress` is set).
pub fn fetch(source: &WeightSource, progress: bool) -> Result<PathBuf> {
    Ok(Cache::from_env()?.resolve(source, progress)?.path)
}
