//! clshost: train image classifiers from RON recipes, with every model, augmentation, loss,
//! metric and exporter loaded at run time from plugins.
//!
//! This library is the host. Its folders are the stages of the pipeline in
//! `docs/architecture.md`, in the order a run goes through them:
//!
//! - [`recipe`]: parsing, composing and validating recipes;
//! - [`registry`]: finds plugin files, loads them through the stable ABI of
//!   `clshost-plugin-api`, and creates components by name;
//! - [`assemble`]: turns a validated recipe into the parts a command needs (loaders, loss,
//!   metrics, augmentations, the backbone, a trained model);
//! - [`data`]: ImageFolder datasets, decoding, and the deterministic parallel loader;
//! - [`train`]: the training loop, mixing, evaluation and checkpoints;
//! - [`distributed`]: the ranks of a data-parallel job (MPI) and their collectives;
//! - [`report`]: what a run shows and writes about itself (tables, metrics files, plots,
//!   TensorBoard events, `summary.json`);
//! - [`export`]: the exporters at the end of a run, with their checks;
//! - [`rundir`]: the run directory and the atomic write every file of a run goes through;
//! - [`weights`]: pretrained weight sources (`torchvision:` names, URLs, paths), the cache
//!   they are downloaded into, and the torchvision zoo.
//!
//! Around them: [`cli`] (the command line), [`commands`] (one module per subcommand), [`exit`]
//! (exit statuses other than 0 and 1), [`logging`] and [`output`] (stdout without dying on a
//! closed pipe).

pub mod assemble;
pub mod cli;
pub mod commands;
pub mod data;
pub mod distributed;
pub mod exit;
pub mod export;
pub mod logging;
pub mod output;
pub mod recipe;
pub mod registry;
pub mod report;
pub mod rundir;
pub mod train;
pub mod weights;
