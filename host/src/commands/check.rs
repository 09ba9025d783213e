//! `clshost check RECIPE [--set PATH=VALUE]... [--print]`: validate a recipe without running it.
//!
//! Loads the recipe (composition and overrides), loads the plugins (including those the recipe
//! names), and runs every check of [`crate::recipe::validate`]. Each problem is printed on its
//! own line on stderr; the exit status is 0 only when there are none. Then it scans the data
//! with the checks `run` makes before training ([`DataSettings::datasets`]: a class without
//! images, validation classes that differ from the training ones, ...), printing the same
//! warnings and failing with the same message. No image is decoded, and nothing is downloaded:
//! for `model.weights` it prints where the file is (a cache, a local path) or the URL `run`
//! will download it from. `--print` writes the
//! resolved recipe, valid RON with every default filled in, to stdout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::assemble::load_valid;
use crate::data::DataSettings;
use crate::output;
use crate::registry::SearchPath;
use crate::weights::{Cache, WeightSource};

/// Arguments of `clshost check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The recipe file.
    pub recipe: PathBuf,

    /// Override a recipe field with a RON value, after `base:` composition (repeatable):
    /// `--set trainer.epochs=3 --set data.root="/data/x"`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,

    /// Print the resolved recipe (composition, overrides and every default applied) as RON.
    #[arg(long)]
    pub print: bool,
}

/// Runs `clshost check`.
pub fn run(search: &SearchPath, args: &CheckArgs) -> Result<()> {
    let (resolved, registry) = load_valid(search, &args.recipe, &args.overrides)?;
    let r = &resolved.recipe;
    let (train, val) = DataSettings::from_recipe(&r.data, r.seed)?.datasets()?;
    if args.print {
        output::print(&resolved.to_ron())?;
    } else {
        output::print(&format!(
            "{}: ok ({} on {}, {} epochs; {} plugins loaded; {} train / {} val images in {} \
             classes)\n",
            args.recipe.display(),
            r.model.name,
            r.trainer.device,
            r.trainer.epochs,
            registry.plugins().len(),
            train.samples.len(),
            val.samples.len(),
            train.classes.len()
        ))?;
        if let Some(text) = &r.model.weights {
            let source: WeightSource = text.parse()?;
            output::print(&format!(
                "model.weights {text}: {}\n",
                Cache::from_env()?.availability(&source)
            ))?;
        }
    }
    Ok(())
}
