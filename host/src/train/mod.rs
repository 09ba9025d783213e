//! Training: the loop and everything a run writes.
//!
//! - [`schedule`]: the learning rate of every iteration;
//! - [`trainer`]: epochs, steps, evaluation, checkpoints, early stopping, interrupts;
//! - [`early`]: the monitored metric, best-so-far and patience;
//! - [`rundir`]: the run directory and atomic writes;
//! - [`checkpoint`]: the checkpoint file (backbone state plus the host's own);
//! - [`topk`]: which top-k checkpoints are kept;
//! - [`history`]: `metrics.csv` and `metrics.jsonl`;
//! - [`provenance`]: the `plugins.json` file;
//! - [`report`]: progress bar and console tables;
//! - [`plots`]: the PNG plots;
//! - [`export`]: exporters and their verification at the end;
//! - [`summary`]: `summary.json` and the closing lines;
//! - [`tensorboard`]: TensorBoard event files;
//! - [`signal`]: Ctrl-C and SIGTERM.
//!
//! `clshost run` ([`crate::commands::run`]) builds the parts from a recipe and drives these.

pub mod checkpoint;
pub mod early;
pub mod export;
pub mod history;
pub mod plots;
pub mod provenance;
pub mod report;
pub mod rundir;
pub mod schedule;
pub mod signal;
pub mod summary;
pub mod tensorboard;
pub mod topk;
pub mod trainer;

pub use checkpoint::{BestWeights, Checkpoint, CheckpointError, HostState};
pub use early::{Direction, Monitor};
pub use rundir::RunDir;
pub use schedule::Schedule;
pub use signal::StopFlag;
pub use trainer::{Control, Ending, Parts, TrainError, Trainer};
