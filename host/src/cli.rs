//! The command-line interface: the global flags and the list of subcommands, as clap
//! definitions. Each subcommand's own arguments live with it in [`crate::commands`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::commands::bench::BenchArgs;
use crate::commands::check::CheckArgs;
use crate::commands::data::DataArgs;
use crate::commands::doctor::DoctorArgs;
use crate::commands::eval::EvalArgs;
use crate::commands::plugins::PluginsArgs;
use crate::commands::predict::PredictArgs;
use crate::commands::run::RunArgs;
use crate::commands::weights::WeightsArgs;

/// Train image classifiers from RON recipes, with models, augmentations, losses, metrics and
/// exporters loaded at run time from plugins.
#[derive(Debug, Parser)]
#[command(name = "clshost", version, propagate_version = true)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Load this plugin file first (repeatable). Unlike discovered plugins, a file named here
    /// that fails to load is an error.
    #[arg(long = "plugin", value_name = "FILE", global = true)]
    pub plugins: Vec<PathBuf>,

    /// Search this directory for plugins before the default locations (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    pub plugin_dirs: Vec<PathBuf>,

    /// More log output (-v: info, -vv: debug, -vvv: trace). `RUST_LOG` overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every component the plugins on the search path offer, or show one component's
    /// parameters with their defaults and documentation.
    Plugins(PluginsArgs),
    /// Train a recipe: evaluate, checkpoint, export; or resume a run with `--resume RUN_DIR`.
    Run(RunArgs),
    /// Validate a recipe and every component config in it, without reading data or building a
    /// model; exits non-zero listing every problem found.
    Check(CheckArgs),
    /// Measure parts of the pipeline without a model (`clshost bench data`).
    Bench(BenchArgs),
    /// Look at a dataset: statistics, and a preview of augmented samples.
    Data(DataArgs),
    /// Classify images with a trained model: a run directory, a checkpoint or an `.onnx` export.
    Predict(PredictArgs),
    /// Evaluate a run directory or checkpoint on an ImageFolder with the recipe's eval
    /// preprocessing, loss and metrics.
    Eval(EvalArgs),
    /// Report what this installation can do: plugins found and loaded, the backends they were
    /// built with and the devices each one sees, and the CPU count. Exits 0 whatever it finds.
    Doctor(DoctorArgs),
    /// Pretrained checkpoints: list the known ones, show one, or fetch one into the cache.
    Weights(WeightsArgs),
}
