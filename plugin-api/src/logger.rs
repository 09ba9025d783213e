//! The logger contract (ABI 1.4): what a run reports, handed to an experiment tracker.
//!
//! A logger sees a run as a sequence of events, in this order:
//!
//! 1. [`AbiLogger::start`] once per invocation (a resumed run starts again, with
//!    [`RunStart::resumed`] set): the resolved recipe, its fields flattened for a tracker's
//!    parameter table, and the environment;
//! 2. [`AbiLogger::step`] every `trainer.log_interval` steps: loss, learning rate, throughput;
//! 3. [`AbiLogger::epoch`] after each evaluation: every value of the epoch's row and every metric
//!    report (vectors and matrices included), for the raw and, with EMA, the averaged weights;
//! 4. [`AbiLogger::file`] whenever the run writes a file a tracker may keep as an artifact:
//!    checkpoints, exports, plots, the recipe;
//! 5. [`AbiLogger::end`] once, with how the invocation ended: `completed`, `early_stopping`,
//!    `time_limit`, `interrupted` or `failed`.
//!
//! The host calls a logger on a thread of its own, through a bounded queue: a slow logger never
//! slows training (events it cannot take in time are dropped, with a warning), and an error it
//! returns is a warning, printed once per logger, never the end of the run. A logger keeps
//! whatever it needs to continue a resumed run (a tracked run's id) under
//! [`LoggerContext::state_dir`].
//!
//! Kinds, statuses and names travel as strings, so later versions can add values without
//! changing a layout; a logger ignores what it does not know.

// abi_stable 0.11's `#[sabi_trait]` expands to impls inside a generated const.
#![allow(non_local_definitions)]

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, ROption, RResult, RString, RVec};

use crate::{MetricReport, ParamDoc, PluginError};

/// What `clshost plugins` lists about a logger: a [`crate::ComponentInfo`] without its kind,
/// since [`crate::ComponentKind`] (an exhaustive enum of ABI 1.0) has no variant for loggers.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct LoggerInfo {
    /// The name recipes use in `loggers: [(name: ...)]`; unique across all loaded plugins.
    pub name: RString,
    /// One line saying where it sends a run.
    pub description: RString,
    /// Its parameters, in declaration order.
    pub params: RVec<ParamDoc>,
    /// The complete default config, as RON.
    pub default_config: RString,
}

/// The data a logger is created with.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct LoggerContext {
    /// The run directory.
    pub run_dir: RString,
    /// A directory of this logger's own in the run directory (`loggers/<name>`), created by the
    /// host: where a logger keeps what a resumed run needs, such as its tracked run's id.
    pub state_dir: RString,
    /// Whether this invocation resumes the run (`clshost run --resume`).
    pub resumed: bool,
}

/// A named value: a scalar, or a parameter or environment entry as text.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Scalar {
    /// Its name (`train/loss`, `top1`, ...).
    pub name: RString,
    /// Its value; NaN when undefined.
    pub value: f64,
}

/// A named text value.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct TextEntry {
    /// Its name (`optimizer.lr`, `clshost_version`, ...).
    pub name: RString,
    /// Its value, as text (recipe values as RON).
    pub value: RString,
}

/// The run starting, or resuming.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct RunStart {
    /// The recipe's name (the experiment).
    pub name: RString,
    /// The run directory.
    pub run_dir: RString,
    /// The resolved recipe, as RON: what `recipe.ron` in the run directory holds.
    pub recipe: RString,
    /// The recipe's fields flattened to dotted paths (`optimizer.lr`, `model.params.depth`),
    /// each with its RON value: a tracker's parameter table.
    pub params: RVec<TextEntry>,
    /// Where it runs: clshost's version, the ABI, the OS, the device, the backbone's size, the
    /// plugins used.
    pub environment: RVec<TextEntry>,
    /// The class names, in class-index order: the order of the metric reports' per-class
    /// vectors and matrices.
    pub classes: RVec<RString>,
    /// Whether this invocation resumes the run.
    pub resumed: bool,
    /// The global step training goes on from (1 for a new run).
    pub next_step: u64,
    /// The epochs the recipe trains for.
    pub epochs: u32,
}

/// A logged training step.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct StepLog {
    /// The global step, from 1.
    pub step: u64,
    /// `train/loss`, `train/lr`, `train/images_per_s`.
    pub scalars: RVec<Scalar>,
}

/// An evaluated epoch.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct EpochLog {
    /// The epoch, from 1.
    pub epoch: u32,
    /// The global step at its end.
    pub step: u64,
    /// Every value of the epoch's row, as `metrics.csv` names its columns (`train_loss`, `lr`,
    /// `val_loss`, `top1`, `ema_top1`, ..., `seconds`, `images_per_s`); undefined values are
    /// left out.
    pub scalars: RVec<Scalar>,
    /// The raw weights' metric reports, one per recipe metric, in recipe order.
    pub reports: RVec<MetricReport>,
    /// The EMA weights' metric reports (empty without EMA).
    pub ema_reports: RVec<MetricReport>,
    /// The best monitored value so far, this epoch included.
    pub best: ROption<f64>,
    /// Whether this epoch set it.
    pub improved: bool,
}

/// A file the run wrote.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FileLog {
    /// What it is: `recipe`, `samples` (the sheet of the first training batch), `checkpoint`,
    /// `export` or `plot` (later versions may add kinds).
    pub kind: RString,
    /// Its path.
    pub path: RString,
    /// Its path relative to the run directory, where it is inside it (`checkpoints/best.ckpt`);
    /// the file name otherwise.
    pub relative: RString,
    /// The epoch it belongs to, when it belongs to one.
    pub epoch: ROption<u32>,
}

/// The end of an invocation.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct RunEnd {
    /// `completed`, `early_stopping`, `time_limit`, `interrupted` or `failed`.
    pub status: RString,
    /// Why it failed, or where it stopped; empty otherwise.
    pub message: RString,
    /// Epochs trained so far.
    pub epochs: u32,
    /// The last global step.
    pub step: u64,
    /// The run's summary values (`best_value`, `best_epoch`, `wall_seconds`, `images_per_s`)
    /// as far as they exist.
    pub summary: RVec<Scalar>,
}

/// The logger contract, as crossed by the ABI. Plugin authors implement
/// [`crate::authoring::Logger`] instead. An error is a warning to the user, never the end of
/// the run.
#[sabi_trait]
pub trait AbiLogger: Send {
    /// The run starts or resumes.
    fn start(&mut self, run: &RunStart) -> RResult<(), PluginError>;

    /// A logged training step.
    fn step(&mut self, step: &StepLog) -> RResult<(), PluginError>;

    /// An evaluated epoch.
    fn epoch(&mut self, epoch: &EpochLog) -> RResult<(), PluginError>;

    /// A file the run wrote.
    fn file(&mut self, file: &FileLog) -> RResult<(), PluginError>;

    /// The end of the invocation: the last event. A logger flushes what it buffered here.
    #[sabi(last_prefix_field)]
    fn end(&mut self, end: &RunEnd) -> RResult<(), PluginError>;
}

/// An owned logger object.
pub type LoggerBox = AbiLogger_TO<'static, RBox<()>>;
