//! The report stage: everything a run shows and writes about itself besides checkpoints and
//! exports. It takes the trainer's rows, metric reports and final state, and gives the console
//! output and the run directory's derived files.
//!
//! - [`pipeline`]: the events a run emits and the reporters that take them (the table, the
//!   metrics files, the plots, the loggers);
//! - [`loggers`]: the recipe's logger plugins, each on a thread of its own;
//! - [`console`]: progress bar, the epoch table and the per-class table;
//! - [`history`]: `metrics.csv` and `metrics.jsonl`;
//! - [`plots`]: the PNG plots;
//! - [`provenance`]: `plugins.json`, which plugin files a run used;
//! - [`summary`]: `summary.json` and the closing lines.

pub mod console;
pub mod history;
pub mod loggers;
pub mod pipeline;
pub mod plots;
pub mod provenance;
pub mod summary;
