//! `clshost bench`: machine-readable speed figures.
//!
//! - `clshost bench data` runs the training data pipeline without a model ([`data`]).
//! - `clshost bench train` runs training and evaluation steps of a backbone plugin on synthetic
//!   batches, without data loading ([`train`]).
//!
//! Each has a PyTorch counterpart in `scripts/bench/` that prints the same JSON fields, so the
//! figures compare directly on the same machine.

pub mod data;
pub mod train;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::registry::SearchPath;

/// Arguments of `clshost bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Measure the training data pipeline (decode, RandomResizedCrop, flip, normalize, collate)
    /// over an image folder, without a model.
    Data(data::BenchDataArgs),
    /// Measure training steps (forward, loss, backward, optimizer) and evaluation of a backbone
    /// on a device, on synthetic batches.
    Train(train::BenchTrainArgs),
}

/// Runs `clshost bench`.
pub fn run(search: &SearchPath, args: &BenchArgs) -> Result<()> {
    match &args.command {
        BenchCommand::Data(a) => data::run(search, a),
        BenchCommand::Train(a) => train::run(search, a),
    }
}
