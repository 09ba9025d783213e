//! The training stage: takes the assembled [`Parts`] of a run and its run directory, and gives
//! trained weights, checkpoints and an [`Ending`].
//!
//! - [`trainer`]: epochs, steps, checkpoints, early stopping, time limit, interrupts;
//! - [`mixing`]: one-hot targets and the batch augmentation policy (MixUp, CutMix);
//! - [`evaluate`](mod@evaluate): the validation pass with the loss and the metric plugins;
//! - [`schedule`]: the learning rate of every iteration;
//! - [`early`]: the monitored metric, best-so-far and patience;
//! - [`checkpoint`]: the checkpoint file (backbone state plus the host's own);
//! - [`topk`]: which top-k checkpoints are kept;
//! - [`tuning`]: fine-tuning controls by epoch (freezing until `unfreeze_epoch`);
//! - [`signal`]: Ctrl-C and SIGTERM.
//!
//! What a run writes besides checkpoints (tables, metrics files, plots, TensorBoard events) is
//! the [`crate::report`] stage; the trainer calls it after each evaluation.

pub mod checkpoint;
pub mod early;
pub mod evaluate;
pub mod mixing;
pub mod schedule;
pub mod signal;
pub mod topk;
pub mod trainer;
pub mod tuning;

pub use checkpoint::{BestWeights, Checkpoint, CheckpointError, HostState};
pub use early::{Direction, Monitor};
pub use evaluate::{Evaluation, evaluate, monitor_column};
pub use schedule::Schedule;
pub use signal::StopFlag;
pub use trainer::{Control, Ending, Parts, TrainError, Trainer};
pub use tuning::Tuning;
