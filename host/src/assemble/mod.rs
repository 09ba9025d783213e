//! The assembly layer: turns a validated recipe into the parts each command needs. Every
//! command that builds something from a recipe calls this module, and none calls another
//! command: `run` assembles a run's [`Parts`](crate::train::Parts), `eval` and `predict` a
//! [`trained::Trained`] model, `data preview` the training loader and batch augmentations.
//!
//! - this module: loading a recipe with the plugins it names and every check of
//!   [`validate`], and anchoring its relative paths;
//! - [`components`]: the contexts components are created with, and the loss, metrics, batch
//!   augmentations and monitor direction of a recipe;
//! - [`loaders`]: the training and evaluation loaders;
//! - [`parts`]: everything a run trains with, its initial weights and its fresh state;
//! - [`trained`]: locating and loading a trained model (run directory, checkpoint, `.onnx`);
//! - [`pretrained`]: published weights as a model, without a run (`--weights`).

pub mod components;
pub mod loaders;
pub mod parts;
pub mod pretrained;
pub mod trained;

use std::path::Path;

use anyhow::{Result, anyhow};

use crate::recipe::{Resolved, validate};
use crate::registry::{Registry, SearchPath};

/// Loads the recipe at `path` with `overrides`, the plugins it needs, and runs every check of
/// [`validate`]: each problem is printed on its own line on stderr and the call fails with
/// their count.
pub fn load_valid(
    search: &SearchPath,
    path: &Path,
    overrides: &[String],
) -> Result<(Resolved, Registry)> {
    let name = path.display().to_string();
    let (resolved, schema) =
        Resolved::load_partial(path, overrides).map_err(|e| report(&name, &e.problems()))?;
    let registry = Registry::load(&recipe_search_path(search, &resolved))?;
    let problems: Vec<String> = if schema.is_empty() {
        validate::validate(&resolved, &registry)
    } else {
        // Schema errors leave their sections at defaults, so only what the other sections
        // name is checked, lest the defaults raise problems of their own.
        let broken = |section: &str| schema.iter().any(|p| p.in_section(section));
        let components = validate::component_problems(&resolved, &registry, |s| !broken(s));
        schema.into_iter().chain(components).collect()
    }
    .iter()
    .map(ToString::to_string)
    .collect();
    if !problems.is_empty() {
        return Err(report(&name, &problems));
    }
    Ok((resolved, registry))
}

/// The search path plus the plugin files and directories the recipe names (relative to it).
pub fn recipe_search_path(search: &SearchPath, resolved: &Resolved) -> SearchPath {
    let base = resolved.path.parent().unwrap_or(Path::new("."));
    let mut search = search.clone();
    for p in &resolved.recipe.plugins {
        let path = base.join(p);
        if path.is_dir() {
            search.dirs.push(path);
        } else {
            search.files.push(path);
        }
    }
    search
}

/// Prints every problem on its own line; the error to fail with, giving their count.
fn report(recipe: &str, problems: &[String]) -> anyhow::Error {
    for p in problems {
        eprintln!("{p}");
    }
    match problems.len() {
        1 => anyhow!("1 problem in {recipe}"),
        n => anyhow!("{n} problems in {recipe}"),
    }
}

/// Makes the recipe's relative paths absolute, so the `recipe.ron` a run records resolves the
/// same from the run directory and from any working directory.
pub fn anchor_paths(resolved: &mut Resolved) -> Result<()> {
    let base = resolved
        .path
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let r = &mut resolved.recipe;
    r.data.root = std::path::absolute(&r.data.root)?;
    r.output = std::path::absolute(&r.output)?;
    for p in r.plugins.iter_mut() {
        *p = std::path::absolute(base.join(&p))?;
    }
    Ok(())
}
