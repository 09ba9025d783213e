//! The reporting pipeline: the events a training run emits, and the reporters that show or keep
//! them.
//!
//! The trainer knows nothing of tables, files, plots or trackers: it and `clshost run` emit
//! [`Event`]s, in order,
//!
//! - [`Event::Start`] when the run starts or resumes: the resolved recipe, its fields, the
//!   environment, the next global step;
//! - [`Event::Step`] every `log_interval` steps: the step's loss, learning rate and throughput;
//! - [`Event::Epoch`] after each evaluation: the epoch's row (every value of every metric
//!   report), the whole history, the metric reports themselves, and the best value so far;
//! - [`Event::File`] for each file a tracker may keep: the recipe, the sample sheet of the
//!   first batch, checkpoints as they are written, exports, and the plots at the end;
//! - [`Event::End`] last: how the invocation ended (completed, early stopping, time limit,
//!   interrupted or failed) and the summary values;
//!
//! and [`Reporters`] hands each one to every reporter. The first-party reporters are
//!
//! - [`Table`]: the epoch table on stdout ([`console`]);
//! - [`HistoryFiles`]: `metrics.csv` and `metrics.jsonl` ([`history`]);
//! - [`Plots`]: the PNG plots ([`plots`]);
//!
//! and the recipe's loggers (TensorBoard, MLflow, ...), each on a thread of its own
//! ([`super::loggers`]).
//!
//! A reporter is either required, or advisory. The table and the metrics files are required:
//! their failure ends the run, since a run directory without its metrics is broken. Plots and
//! loggers are derived outputs: their failure is a warning and the run goes on.

use std::path::{Path, PathBuf};

use clshost_plugin_api::MetricReport;

use super::console;
use super::history::{self, Row};
use super::plots::{self, Confusion, PlotError, PlotInput};
use crate::rundir::{WriteError, atomic_write};
use crate::train::Schedule;

/// Something that happened in a run, as the reporters see it.
pub enum Event<'a> {
    /// The run starts, or resumes.
    Start(StartEvent<'a>),
    /// A logged training step.
    Step {
        /// The global step, from 1.
        step: u64,
        /// `train/loss`, `train/lr`, `train/images_per_s`.
        scalars: &'a [(String, f64)],
    },
    /// An evaluated epoch.
    Epoch(EpochEvent<'a>),
    /// A file the run wrote.
    File(FileEvent<'a>),
    /// The end of the invocation: the last event.
    End(EndEvent<'a>),
}

/// The run starting or resuming.
pub struct StartEvent<'a> {
    /// The recipe's name.
    pub name: &'a str,
    /// The run directory.
    pub run_dir: &'a Path,
    /// The resolved recipe, as RON.
    pub recipe: &'a str,
    /// The recipe's fields as `(dotted path, RON value)`.
    pub params: &'a [(String, String)],
    /// Where it runs, as `(name, value)`.
    pub environment: &'a [(String, String)],
    /// The class names, in class-index order.
    pub classes: &'a [String],
    /// Whether this invocation resumes the run.
    pub resumed: bool,
    /// The global step the run goes on from (from 1).
    pub next_step: u64,
    /// The epochs the recipe trains for.
    pub epochs: u32,
}

/// What kind of file a [`FileEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `recipe.ron`.
    Recipe,
    /// A checkpoint, as it is written.
    Checkpoint,
    /// An exported model.
    Export,
    /// A plot, at the end of the invocation.
    Plot,
    /// `samples.png`, the first training batch as the backbone gets it.
    Samples,
}

impl FileKind {
    /// The name loggers get (`recipe`, `checkpoint`, `export`, `plot`, `samples`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Recipe => "recipe",
            FileKind::Checkpoint => "checkpoint",
            FileKind::Export => "export",
            FileKind::Plot => "plot",
            FileKind::Samples => "samples",
        }
    }
}

/// A file the run wrote.
pub struct FileEvent<'a> {
    /// What it is.
    pub kind: FileKind,
    /// Where it is.
    pub path: &'a Path,
    /// The epoch (from 1) it belongs to, if any.
    pub epoch: Option<u32>,
}

/// The end of an invocation.
pub struct EndEvent<'a> {
    /// `completed`, `early_stopping`, `time_limit`, `interrupted` or `failed`.
    pub status: &'a str,
    /// Why it failed or where it stopped; empty otherwise.
    pub message: &'a str,
    /// Epochs trained.
    pub epochs: u32,
    /// The last global step.
    pub step: u64,
    /// Summary values (`best_value`, `best_epoch`, `wall_seconds`, `images_per_s`) that exist.
    pub summary: &'a [(String, f64)],
}

/// An evaluated epoch.
pub struct EpochEvent<'a> {
    /// This epoch's row.
    pub row: &'a Row,
    /// Every evaluated epoch so far, `row` last.
    pub history: &'a [Row],
    /// The best monitored value so far, this epoch included.
    pub best: Option<f64>,
    /// Whether this epoch set it.
    pub improved: bool,
    /// The global step at the end of the epoch.
    pub global_step: u64,
    /// The raw weights' metric reports.
    pub reports: &'a [MetricReport],
    /// The EMA weights' metric reports (empty without EMA).
    pub ema_reports: &'a [MetricReport],
}

/// Why a reporter could not take an event.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file (or stdout) could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A plot could not be made.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// Shows or keeps what a run reports.
pub trait Reporter {
    /// Takes `event`; an error is the end of the run for a required reporter, a warning for an
    /// advisory one.
    fn report(&mut self, event: &Event<'_>) -> Result<(), ReportError>;
}

/// The reporters of a run, in the order they are given each event.
pub struct Reporters {
    /// Reporters whose failure ends the run.
    required: Vec<Box<dyn Reporter>>,
    /// Reporters whose failure is a warning: (what it writes, the reporter).
    advisory: Vec<(String, Box<dyn Reporter>)>,
}

impl Reporters {
    /// The first-party reporters of the run directory `run`: the table, the metrics files, the
    /// plots of a run of `classes` along `schedule`.
    pub fn first_party(run: &Path, classes: Vec<String>, schedule: Schedule) -> Reporters {
        Reporters {
            required: vec![
                Box::new(Table::default()),
                Box::new(HistoryFiles { run: run.into() }),
            ],
            advisory: vec![(
                "plots".into(),
                Box::new(Plots {
                    dir: run.join("plots"),
                    classes,
                    schedule,
                }),
            )],
        }
    }

    /// No reporters at all: those of a rank other than 0, which writes nothing.
    pub fn none() -> Reporters {
        Reporters {
            required: Vec::new(),
            advisory: Vec::new(),
        }
    }

    /// Adds an advisory reporter, after the others; `what` names what it keeps in warnings.
    pub fn add_advisory(&mut self, what: String, reporter: Box<dyn Reporter>) {
        self.advisory.push((what, reporter));
    }

    /// Gives `event` to every reporter: the first required one's failure is returned (the
    /// others have had the event), an advisory one's is logged as a warning.
    pub fn emit(&mut self, event: &Event<'_>) -> Result<(), ReportError> {
        let mut first = Ok(());
        for reporter in &mut self.required {
            let result = reporter.report(event);
            if first.is_ok() {
                first = result;
            }
        }
        for (what, reporter) in &mut self.advisory {
            if let Err(e) = reporter.report(event) {
                tracing::warn!("{e}; the run goes on without updated {what}");
            }
        }
        first
    }
}

/// The epoch table on stdout: its header before the first row.
#[derive(Default)]
pub struct Table {
    /// Whether the header is out.
    printed_header: bool,
}

impl Reporter for Table {
    fn report(&mut self, event: &Event<'_>) -> Result<(), ReportError> {
        let Event::Epoch(epoch) = event else {
            return Ok(());
        };
        let row = epoch.row;
        let stdout = |cause| WriteError {
            path: "stdout".into(),
            cause,
        };
        if !self.printed_header {
            crate::output::print(&console::table_header(row)).map_err(stdout)?;
            self.printed_header = true;
        }
        crate::output::print(&console::table_row(row, epoch.best, epoch.improved))
            .map_err(stdout)?;
        Ok(())
    }
}

/// `metrics.csv` and `metrics.jsonl`, rewritten from the whole history after each evaluation.
pub struct HistoryFiles {
    /// The run directory.
    run: PathBuf,
}

impl Reporter for HistoryFiles {
    fn report(&mut self, event: &Event<'_>) -> Result<(), ReportError> {
        let Event::Epoch(epoch) = event else {
            return Ok(());
        };
        atomic_write(
            &self.run.join("metrics.csv"),
            history::csv(epoch.history).as_bytes(),
        )?;
        atomic_write(
            &self.run.join("metrics.jsonl"),
            history::jsonl(epoch.history).as_bytes(),
        )?;
        Ok(())
    }
}

/// The PNG plots, redrawn after each evaluation.
pub struct Plots {
    /// `RUN_DIR/plots`.
    dir: PathBuf,
    /// The class names, for the confusion matrices.
    classes: Vec<String>,
    /// The learning-rate schedule, for `lr.png`.
    schedule: Schedule,
}

impl Reporter for Plots {
    fn report(&mut self, event: &Event<'_>) -> Result<(), ReportError> {
        let Event::Epoch(epoch) = event else {
            return Ok(());
        };
        let n = self.classes.len();
        let raw = console::confusion_matrix(epoch.reports, n);
        let ema = console::confusion_matrix(epoch.ema_reports, n);
        let classes = &self.classes;
        let input = PlotInput {
            history: epoch.history,
            schedule: &self.schedule,
            iterations_done: epoch.global_step,
            epoch: epoch.row.epoch,
            confusion: raw.as_deref().map(|counts| Confusion { classes, counts }),
            ema_confusion: ema.as_deref().map(|counts| Confusion { classes, counts }),
        };
        Ok(plots::write_all(&self.dir, &input)?)
    }
}

/// Every defined value of an epoch's row, named as `metrics.csv` names its columns.
pub fn row_scalars(row: &Row) -> Vec<(String, f64)> {
    row.cells()
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// Records what it is given, and fails when told to.
    struct Recorder {
        seen: Rc<RefCell<Vec<String>>>,
        fail: bool,
    }

    impl Reporter for Recorder {
        fn report(&mut self, event: &Event<'_>) -> Result<(), ReportError> {
            let what = match event {
                Event::Start(s) => format!("start {}", s.next_step),
                Event::Step { step, .. } => format!("step {step}"),
                Event::Epoch(e) => format!("epoch {}", e.row.epoch),
                Event::File(f) => format!("file {}", f.path.display()),
                Event::End(e) => format!("end {}", e.status),
            };
            self.seen.borrow_mut().push(what);
            if self.fail {
                Err(ReportError::Write(WriteError {
                    path: "somewhere".into(),
                    cause: std::io::Error::other("full"),
                }))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn every_reporter_sees_every_event_and_only_required_failures_end_the_run() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let recorder = |fail| -> Box<dyn Reporter> {
            Box::new(Recorder {
                seen: seen.clone(),
                fail,
            })
        };
        let mut advisory_only = Reporters {
            required: vec![recorder(false)],
            advisory: vec![("a".into(), recorder(true))],
        };
        let start = StartEvent {
            name: "r",
            run_dir: Path::new("runs/r/1"),
            recipe: "()",
            params: &[],
            environment: &[],
            classes: &[],
            resumed: false,
            next_step: 7,
            epochs: 1,
        };
        advisory_only.emit(&Event::Start(start)).unwrap();
        assert_eq!(*seen.borrow(), ["start 7", "start 7"]);

        let mut failing = Reporters {
            required: vec![recorder(true), recorder(false)],
            advisory: vec![("a".into(), recorder(false))],
        };
        let history = [Row {
            epoch: 2,
            train_loss: 0.5,
            lr: 0.1,
            values: Vec::new(),
            seconds: 1.0,
            images_per_s: 1.0,
        }];
        let event = Event::Epoch(EpochEvent {
            row: &history[0],
            history: &history,
            best: None,
            improved: false,
            global_step: 4,
            reports: &[],
            ema_reports: &[],
        });
        let err = failing.emit(&event).unwrap_err();
        assert!(matches!(err, ReportError::Write(e) if e.path == Path::new("somewhere")));
        assert_eq!(seen.borrow()[2..], ["epoch 2", "epoch 2", "epoch 2"]);
    }
}
