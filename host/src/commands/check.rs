//! `clshost check RECIPE [--set PATH=VALUE]... [--print]`: validate a recipe without running it.
//!
//! Loads the recipe (composition and overrides), loads the plugins (including those the recipe
//! names), and runs every check of [`crate::recipe::validate`]. Each problem is printed on its
//! own line on stderr; the exit status is 0 only when there are none. `--print` writes the
//! resolved recipe, valid RON with every default filled in, to stdout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::assemble::load_valid;
use crate::output;
use crate::registry::SearchPath;

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
