//! The loaders of a recipe: training (sample augmentations, shuffling) and evaluation (the
//! eval preprocessing, in order). Both require images: an epoch in which every file was
//! unreadable (`on_error: skip`) is an error naming the set, never an empty epoch or a score.

use anyhow::Result;
use clshost_plugin_api::AugmentContext;

use crate::data::{DataSettings, Loader, LoaderOptions, Pipeline, Sample};
use crate::recipe::Recipe;
use crate::registry::Registry;

/// The training loader of `recipe` over `samples`: its sample augmentations, shuffling and
/// batching, exactly as `run` trains. An epoch with no readable image fails as `training`.
pub fn train_loader(
    recipe: &Recipe,
    registry: &Registry,
    settings: &DataSettings,
    samples: Vec<Sample>,
    ctx: &AugmentContext,
) -> Result<Loader> {
    let augments = recipe
        .augment
        .iter()
        .map(|c| registry.new_sample_augment(&c.name, &c.params, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loader::new(
        samples,
        Pipeline::train(augments, settings)?,
        LoaderOptions::from_settings(settings, true, recipe.seed),
    )?
    .require_images("training"))
}

/// The evaluation loader of `recipe` over `samples`: its eval preprocessing, in order, `batch`
/// images at a time (default: `data.eval_batch_size`, else `data.batch_size`). A pass with no
/// readable image fails as `validation`.
pub fn eval_loader(
    recipe: &Recipe,
    settings: &DataSettings,
    samples: Vec<Sample>,
    batch: Option<u32>,
) -> Result<Loader> {
    let mut options = LoaderOptions::from_settings(settings, false, recipe.seed);
    options.batch_size = batch
        .or(recipe.data.eval_batch_size)
        .unwrap_or(recipe.data.batch_size) as usize;
    Ok(Loader::new(samples, Pipeline::eval(settings)?, options)?.require_images("validation"))
}
