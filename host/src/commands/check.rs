//! `clshost check RECIPE [--set PATH=VALUE]... [--print]`: validate a recipe without running it.
//!
//! Loads the recipe (composition and overrides), loads the plugins (including those the recipe
//! names), and runs every check of [`crate::recipe::validate`]. Each problem is printed on its
//! own line on stderr; the exit status is 0 only when there are none. `--print` writes the
//! resolved recipe, valid RON with every default filled in, to stdout.

use std::path::Path;

use anyhow::{Result, anyhow};

use crate::cli::CheckArgs;
use crate::output;
use crate::recipe::{RecipeError, Resolved, validate};
use crate::registry::{Registry, SearchPath};

/// Runs `clshost check`.
pub fn run(search: &SearchPath, args: &CheckArgs) -> Result<()> {
    let (resolved, registry) = load_valid(search, &args.recipe, &args.overrides)?;
    if args.print {
        output::print(&resolved.to_ron())?;
    } else {
        let r = &resolved.recipe;
        output::print(&format!(
            "{}: ok ({} on {}, {} epochs; {} plugins loaded)\n",
            args.recipe.display(),
            r.model.name,
            r.trainer.device,
            r.trainer.epochs,
            registry.plugins().len()
        ))?;
    }
    Ok(())
}

/// Loads the recipe at `path` with `overrides`, the plugins it needs, and runs every check of
/// [`validate`]: each problem is printed on its own line on stderr and the call fails with
/// their count.
pub fn load_valid(
    search: &SearchPath,
    path: &Path,
    overrides: &[String],
) -> Result<(Resolved, Registry)> {
    let name = path.display().to_string();
    let resolved = Resolved::load(path, overrides).map_err(|e| report(&name, &e.problems()))?;
    let registry = Registry::load(&recipe_search_path(search, &resolved))?;
    let problems: Vec<String> = validate::validate(&resolved, &registry)
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
    let base = resolved.path.parent().unwrap_or(std::path::Path::new("."));
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

impl From<RecipeError> for Vec<String> {
    fn from(e: RecipeError) -> Self {
        e.problems()
    }
}
