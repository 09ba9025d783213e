//! clshost: train image classifiers from RON recipes, with every model, augmentation, loss,
//! metric and exporter loaded at run time from plugins.
//!
//! This library is the host. Its stages follow the pipeline of `docs/architecture.md`:
//!
//! - [`registry`]: finds plugin files, loads them through the stable ABI of
//!   `clshost-plugin-api`, and creates components by name;
//! - [`recipe`]: parsing, composing and validating recipes;
//! - [`data`]: ImageFolder datasets, decoding, and the deterministic parallel loader;
//! - [`train`]: the training loop, checkpoints, the run directory and what a run prints;
//! - [`cli`]: the command-line interface;
//! - [`commands`]: one module per subcommand;
//! - [`exit`]: exit statuses other than 0 and 1;
//! - [`logging`]: log output and verbosity;
//! - [`output`]: writing to stdout without dying on a closed pipe.

pub mod cli;
pub mod commands;
pub mod data;
pub mod exit;
pub mod logging;
pub mod output;
pub mod recipe;
pub mod registry;
pub mod train;
