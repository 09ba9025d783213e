//! The training loop: epochs of batch augmentation, forward, loss and backward step with the
//! scheduled learning rate; evaluation; checkpoints; early stopping, time limit and interrupts.
//!
//! Per batch: soft one-hot targets, mixed by the batch augmentation policy ([`super::mixing`]);
//! then `forward`, the loss plugin's value and logit gradient (divided by `accumulate`), and
//! `backward_step`, which applies the optimizer on the last micro-batch of each `accumulate`
//! window (and of the epoch). Which window a batch is in, its learning rate, its samples and
//! its mixing depend only on (seed, epoch, batch index), so a resumed run repeats exactly what
//! an uninterrupted one does.
//!
//! Every `eval_interval` epochs (and after the last) the validation set is evaluated with the
//! raw weights and, with EMA on, the EMA weights; the better of the two on the monitored metric
//! competes for `best` and for the top-k list. `last` is written after every epoch, and on an
//! interrupt after the current step. What the run shows and keeps about itself (the epoch
//! table, the metrics files, the plots, TensorBoard) is not the loop's business: it emits
//! events to the reporters of [`crate::report::pipeline`] (every `log_interval`-th step, each
//! evaluated epoch, each checkpoint file; `clshost run` emits the start, the exports and the
//! end). A non-finite loss
//! stops the run before the step is applied, leaving the last checkpoint on disk untouched; so
//! do non-finite logits, which a loss plugin may refuse.

use std::time::{Duration, Instant};

use clshost_plugin_api::{StepParams, TensorRef};

use super::checkpoint::{BestWeights, Checkpoint, CheckpointError, HostState};
use super::early::{Direction, Verdict};
use super::evaluate::{Evaluation, evaluate, loss_and_grad, monitor_column};
use super::mixing::{mix, mixing_in, one_hot};
use super::schedule::Schedule;
use super::signal::StopFlag;
use super::topk;
use super::tuning::Tuning;
use crate::data::preview;
use crate::data::{Batch, Loader, LoaderError};
use crate::recipe::Recipe;
use crate::registry::{Backbone, BatchAugment, ComponentError, Loss, Metric};
use crate::report::console::{ClassLine, Progress};
use crate::report::history::Row;
use crate::report::loggers::Tracked;
use crate::report::pipeline::{EpochEvent, Event, FileEvent, FileKind, ReportError, Reporters};
use crate::rundir::{RunDir, WriteError, atomic_write};

/// How many images of the first training batch `samples.png` shows.
pub const SAMPLES: usize = 16;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A plugin component failed; the error names it.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// The data loader failed.
    #[error(transparent)]
    Data(#[from] LoaderError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run-directory file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A required reporter (the epoch table, the metrics files) failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The loss, or the validation logits, are not finite numbers.
    #[error(
        "{what} at epoch {epoch}, step {step}: training diverged (lower `optimizer.lr`, add \
         warmup or `trainer.clip_grad_norm`); the checkpoint written before it is kept{}",
        kept.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
    )]
    NonFinite {
        /// What is not finite: `the loss is NaN`, `the validation logits of the raw weights
        /// hold inf`.
        what: String,
        /// The epoch, from 1.
        epoch: u32,
        /// The step within the epoch, from 1.
        step: u64,
        /// The checkpoint on disk, when there is one.
        kept: Option<String>,
    },
    /// Evaluated weights give logits that are not finite numbers.
    #[error(
        "the {weights} weights give a logit of {value} on the evaluated images: the weights are \
         broken (trained with a diverging learning rate?)"
    )]
    NonFiniteLogits {
        /// Which weights: `raw` or `EMA`.
        weights: &'static str,
        /// The first logit that is not finite.
        value: f32,
    },
}

/// How training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every epoch ran.
    Completed,
    /// The monitored metric stopped improving.
    EarlyStopped,
    /// `max_time_minutes` passed.
    TimeLimit,
    /// Ctrl-C, SIGTERM or `--stop-after-epoch`: `last` holds the state to resume from.
    Interrupted,
}

impl Ending {
    /// In words, for the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::EarlyStopped => "early_stopping",
            Ending::TimeLimit => "time_limit",
            Ending::Interrupted => "interrupted",
        }
    }
}

/// Everything a training run is made of.
pub struct Parts {
    /// The typed recipe.
    pub recipe: Recipe,
    /// The backbone.
    pub backbone: Backbone,
    /// The loss.
    pub loss: Loss,
    /// The batch augmentations, in recipe order.
    pub batch_augments: Vec<BatchAugment>,
    /// The metrics for the raw weights.
    pub metrics: Vec<Metric>,
    /// The same metrics for the EMA weights, when EMA is on.
    pub ema_metrics: Option<Vec<Metric>>,
    /// The training loader (shuffled, augmented).
    pub train: Loader,
    /// The validation loader (eval geometry).
    pub val: Loader,
    /// The class names.
    pub classes: Vec<String>,
    /// Which way the monitored metric is better.
    pub direction: Direction,
    /// The fine-tuning controls, when the recipe has any.
    pub tuning: Option<Tuning>,
}

/// How the loop reports and stops.
#[derive(Debug, Clone)]
pub struct Control {
    /// Raised on Ctrl-C / SIGTERM.
    pub stop: StopFlag,
    /// Behave as interrupted after this epoch (from 1) is saved.
    pub stop_after_epoch: Option<u32>,
    /// No progress bar.
    pub quiet: bool,
    /// When this invocation of the run started: its wall-clock time counts from here.
    pub started: Instant,
}

/// The training loop and its state.
pub struct Trainer {
    parts: Parts,
    run: RunDir,
    schedule: Schedule,
    /// The host's resumable state.
    pub state: HostState,
    control: Control,
    reporters: Reporters,
    /// Up to when wall-clock time has been added to the state's counters.
    counted_until: Instant,
}

impl Trainer {
    /// A trainer over `parts`, writing into `run`, starting from `state`.
    /// The recipe's `loggers` get every event after the first-party reporters.
    pub fn new(
        parts: Parts,
        run: RunDir,
        state: HostState,
        control: Control,
        loggers: Vec<Tracked>,
    ) -> Self {
        let r = &parts.recipe;
        let schedule = Schedule::new(
            &r.schedule,
            r.optimizer.lr,
            r.data.batch_size * r.trainer.accumulate,
            r.trainer.epochs,
            parts.train.batches_per_epoch() as u64,
        );
        let mut reporters =
            Reporters::first_party(run.path(), parts.classes.clone(), schedule.clone());
        for logger in loggers {
            reporters.add_advisory(format!("logger `{}`", logger.name()), Box::new(logger));
        }
        Trainer {
            parts,
            run,
            schedule,
            state,
            counted_until: control.started,
            control,
            reporters,
        }
    }

    /// Adds the wall-clock time since the last call to the epoch's and the run's counters, so
    /// that both span every invocation of a resumed run (each earlier one up to its last
    /// checkpoint).
    fn count_wall_time(&mut self) {
        let now = Instant::now();
        let seconds = now.duration_since(self.counted_until).as_secs_f64();
        self.counted_until = now;
        self.state.epoch_wall_seconds += seconds;
        self.state.wall_seconds += seconds;
    }

    /// The run's wall-clock seconds so far, over every invocation.
    pub fn wall_seconds(&mut self) -> f64 {
        self.count_wall_time();
        self.state.wall_seconds
    }

    /// The backbone.
    pub fn backbone(&mut self) -> &mut Backbone {
        &mut self.parts.backbone
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// The parts (recipe, loaders, classes).
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// The checkpoint of the current state.
    pub fn checkpoint(&self) -> Result<Checkpoint, TrainError> {
        Ok(Checkpoint {
            host: self.state.clone(),
            backbone: self.parts.backbone.save_state()?,
        })
    }

    /// Writes the current state as `checkpoints/last.ckpt` (when the recipe keeps it), as
    /// `checkpoints/best.ckpt` when `best`, and as the top-k file of the epoch just finished
    /// when `top`; then deletes the top-k files that fell out of the list.
    fn save(&mut self, best: bool, top: bool) -> Result<(), TrainError> {
        self.count_wall_time();
        let keep = &self.parts.recipe.trainer.checkpoints;
        let (last, best) = (keep.last, best && keep.best);
        if !last && !best && keep.top_k == 0 {
            return Ok(());
        }
        let dir = self.run.subdir("checkpoints")?;
        let paths = [
            top.then(|| dir.join(topk::file_name(self.state.epoch))),
            best.then(|| dir.join("best.ckpt")),
            last.then(|| dir.join("last.ckpt")),
        ];
        let paths: Vec<&std::path::Path> = paths.iter().flatten().map(|p| p.as_path()).collect();
        self.checkpoint()?.save_all(&paths)?;
        if keep.top_k > 0 {
            topk::prune(&dir, &self.state.top_k)?;
        }
        let epoch = (self.state.epoch > 0).then_some(self.state.epoch);
        for path in paths {
            self.report(&Event::File(FileEvent {
                kind: FileKind::Checkpoint,
                path,
                epoch,
            }))?;
        }
        Ok(())
    }

    /// Gives `event` to the reporters; a required reporter's failure is the error.
    pub fn report(&mut self, event: &Event<'_>) -> Result<(), TrainError> {
        Ok(self.reporters.emit(event)?)
    }

    /// Writes `checkpoints/last.ckpt` (when the recipe keeps it).
    pub fn save_last(&mut self) -> Result<(), TrainError> {
        self.save(false, false)
    }

    /// Runs the remaining epochs.
    pub fn train(&mut self) -> Result<Ending, TrainError> {
        let started = Instant::now();
        let limit = self
            .parts
            .recipe
            .trainer
            .max_time_minutes
            .map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0));
        let epochs = self.parts.recipe.trainer.epochs;
        while self.state.epoch < epochs {
            if !self.train_epoch()? {
                self.save_last()?;
                return Ok(Ending::Interrupted);
            }
            let epoch = self.state.epoch;
            let eval_interval = self.parts.recipe.trainer.eval_interval.max(1);
            let (verdict, top) = if (epoch + 1).is_multiple_of(eval_interval) || epoch + 1 == epochs
            {
                self.evaluate_epoch()?
            } else {
                let verdict = Verdict {
                    improved: false,
                    stop: false,
                };
                (verdict, false)
            };
            self.count_wall_time();
            self.state.epoch += 1;
            self.state.epoch_wall_seconds = 0.0;
            self.state.batches_done = 0;
            self.state.epoch_loss_sum = 0.0;
            self.state.epoch_images = 0;
            self.state.epoch_seconds = 0.0;
            self.save(verdict.improved, top)?;
            let stop_early = verdict.stop;
            if stop_early {
                return Ok(Ending::EarlyStopped);
            }
            if self.control.stop.is_raised()
                || self.control.stop_after_epoch == Some(self.state.epoch)
            {
                return Ok(Ending::Interrupted);
            }
            if limit.is_some_and(|l| started.elapsed() >= l) && self.state.epoch < epochs {
                return Ok(Ending::TimeLimit);
            }
        }
        Ok(Ending::Completed)
    }

    /// Trains the rest of the current epoch; `false` when interrupted mid-epoch.
    fn train_epoch(&mut self) -> Result<bool, TrainError> {
        let epoch = self.state.epoch;
        if let Some(tuning) = self.parts.tuning.as_mut()
            && let Some(report) = tuning.apply(&mut self.parts.backbone, epoch)?
        {
            crate::output::print(&format!(
                "epoch {}: the freeze rules are lifted: {}\n",
                epoch + 1,
                super::tuning::describe(&report)
            ))
            .map_err(|e| write_err("stdout", e))?;
        }
        let r = &self.parts.recipe;
        let (epochs, accumulate) = (r.trainer.epochs, u64::from(r.trainer.accumulate.max(1)));
        let mix_on = mixing_in(r, &self.parts.batch_augments, epoch);
        let steps = self.parts.train.batches_per_epoch() as u64;
        let log_every = u64::from(r.trainer.log_interval.max(1));
        let progress = Progress::start(
            epoch + 1,
            epochs,
            steps,
            self.state.batches_done as u64,
            self.control.quiet,
            r.trainer.log_interval,
        );
        let classes = self.parts.classes.len();
        let loader = self.parts.train.epoch(u64::from(epoch));
        for batch in loader {
            let mut batch = batch?;
            if batch.index < self.state.batches_done {
                continue;
            }
            let t0 = Instant::now();
            let mut targets = one_hot(&batch.labels, classes);
            if mix_on {
                let p = &self.parts;
                mix(
                    &p.recipe,
                    &p.batch_augments,
                    classes,
                    epoch,
                    &mut batch,
                    &mut targets,
                )?;
            }
            if self.state.global_step == 0 && batch.index == 0 {
                self.write_samples(&batch, &targets)?;
            }
            let logits = self.parts.backbone.forward(batch.view())?;
            let step = batch.index as u64 + 1;
            // Diverged weights give non-finite logits, which a loss may refuse outright.
            let (loss, mut grad) = if logits.data.iter().all(|v| v.is_finite()) {
                loss_and_grad(&self.parts.loss, &logits, &targets)?
            } else {
                (f64::NAN, Vec::new())
            };
            if !loss.is_finite() {
                progress.finish();
                return Err(self.diverged(format!("the loss is {loss}"), step));
            }
            if accumulate > 1 {
                let scale = 1.0 / accumulate as f32;
                grad.iter_mut().for_each(|g| *g *= scale);
            }
            let iter = u64::from(epoch) * steps + batch.index as u64;
            let lr = self.schedule.lr(iter);
            let apply_update = step.is_multiple_of(accumulate) || step == steps;
            self.parts.backbone.backward_step(
                TensorRef {
                    shape: logits.shape.as_slice().into(),
                    data: grad.as_slice().into(),
                },
                StepParams { lr, apply_update },
            )?;
            let seconds = t0.elapsed().as_secs_f64();
            let n = batch.len() as u64;
            self.state.global_step += 1;
            self.state.batches_done = batch.index + 1;
            self.state.epoch_loss_sum += loss * n as f64;
            self.state.epoch_images += n;
            self.state.epoch_seconds += seconds;
            self.state.total_images += n;
            self.state.train_seconds += seconds;
            let images_per_s = self.state.epoch_images as f64 / self.state.epoch_seconds.max(1e-9);
            progress.step(
                step,
                self.state.epoch_loss_sum / self.state.epoch_images as f64,
                lr,
                images_per_s,
            );
            if step.is_multiple_of(log_every) {
                self.reporters.emit(&Event::Step {
                    step: self.state.global_step,
                    scalars: &[
                        ("train/loss".into(), loss),
                        ("train/lr".into(), lr),
                        ("train/images_per_s".into(), images_per_s),
                    ],
                })?;
            }
            if self.control.stop.is_raised() && step < steps {
                progress.finish();
                return Ok(false);
            }
        }
        progress.finish();
        Ok(true)
    }

    /// Writes `samples.png`: the first [`SAMPLES`] images of the run's first batch as the
    /// backbone gets them (after the sample and batch augmentations), captioned with their
    /// targets; then reports the file. A sheet that cannot be made or written is a warning.
    fn write_samples(&mut self, batch: &Batch, targets: &[f32]) -> Result<(), TrainError> {
        let d = &self.parts.recipe.data;
        let normalization = ([d.mean.0, d.mean.1, d.mean.2], [d.std.0, d.std.1, d.std.2]);
        let tiles = preview::batch_tiles(
            &batch.images,
            batch.shape,
            targets,
            &self.parts.classes,
            normalization,
            SAMPLES,
        );
        let path = self.run.path().join("samples.png");
        let written = preview::sheet(tiles, None)
            .map_err(|e| e.to_string())
            .and_then(|sheet| preview::png(&sheet).map_err(|e| e.to_string()))
            .and_then(|bytes| atomic_write(&path, &bytes).map_err(|e| e.to_string()));
        match written {
            Ok(()) => self.report(&Event::File(FileEvent {
                kind: FileKind::Samples,
                path: &path,
                epoch: Some(1),
            })),
            Err(e) => {
                tracing::warn!(
                    "cannot write {}: {e}; the run goes on without it",
                    path.display()
                );
                Ok(())
            }
        }
    }

    /// Evaluates the epoch just trained, records its row and reports it. Also says whether the
    /// epoch entered the top-k list.
    fn evaluate_epoch(&mut self) -> Result<(Verdict, bool), TrainError> {
        let epoch = self.state.epoch;
        let steps = self.parts.train.batches_per_epoch() as u64;
        let eval = self.evaluate().map_err(|e| match e {
            TrainError::NonFiniteLogits { weights, value } => self.diverged(
                format!("the validation logits of the {weights} weights hold {value}"),
                steps,
            ),
            e => e,
        })?;
        self.count_wall_time();
        let row = Row {
            epoch: epoch + 1,
            train_loss: self.state.epoch_loss_sum / self.state.epoch_images.max(1) as f64,
            lr: self
                .schedule
                .lr((u64::from(epoch) * steps + steps).saturating_sub(1)),
            values: eval.values,
            seconds: self.state.epoch_wall_seconds,
            images_per_s: self.state.epoch_images as f64 / self.state.epoch_seconds.max(1e-9),
        };
        let monitor = monitor_column(&self.parts.recipe.trainer.monitor);
        let raw = row.get(&monitor).unwrap_or(f64::NAN);
        let ema = row.get(&format!("ema_{monitor}"));
        let (value, which) = match ema {
            Some(e) if self.parts.direction.better(e, raw) => (e, BestWeights::Ema),
            _ => (raw, BestWeights::Raw),
        };
        let verdict = self.state.monitor.observe(epoch + 1, value);
        if verdict.improved {
            self.state.best_weights = which;
        }
        let top = topk::offer(
            &mut self.state.top_k,
            self.parts.recipe.trainer.checkpoints.top_k,
            self.parts.direction,
            epoch + 1,
            value,
        );
        self.state.history.push(row);
        let history = &self.state.history;
        self.reporters.emit(&Event::Epoch(EpochEvent {
            // The row just pushed.
            row: &history[history.len() - 1],
            history,
            best: self.state.monitor.best,
            improved: verdict.improved,
            global_step: self.state.global_step,
            reports: &eval.reports,
            ema_reports: &eval.ema_reports,
        }))?;
        Ok((verdict, top))
    }

    /// The divergence error for `what` at `step` (from 1) of the current epoch, naming the
    /// checkpoint that is kept.
    fn diverged(&self, what: String, step: u64) -> TrainError {
        let last = self.run.path().join("checkpoints").join("last.ckpt");
        TrainError::NonFinite {
            what,
            epoch: self.state.epoch + 1,
            step,
            kept: last.is_file().then(|| last.display().to_string()),
        }
    }

    /// Runs the validation set through the raw (and EMA) weights.
    pub fn evaluate(&mut self) -> Result<Evaluation, TrainError> {
        let p = &mut self.parts;
        evaluate(
            &mut p.backbone,
            &p.loss,
            &p.val,
            p.classes.len(),
            &mut p.metrics,
            p.ema_metrics.as_deref_mut(),
        )
    }

    /// The per-class lines of an evaluation of the weights in `which`.
    pub fn class_lines(&self, eval: &Evaluation, which: BestWeights) -> Vec<ClassLine> {
        eval.class_lines(&self.parts.classes, which)
    }
}

fn write_err(what: &str, e: std::io::Error) -> TrainError {
    TrainError::Write(WriteError {
        path: what.into(),
        cause: e,
    })
}
