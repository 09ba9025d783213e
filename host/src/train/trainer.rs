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
//!
//! In a data-parallel run ([`crate::distributed`]) every rank runs this loop on its share of
//! each epoch: rounds of one batch per rank, the gradients summed across ranks inside the
//! backbone, each rank's logit gradient divided by `accumulate x ranks`, so that W ranks compute
//! what one process with `accumulate: W` computes. Every round ends with one small all-reduce of
//! how it went on each rank (losses, images, interrupts, failures), so that all ranks log the
//! same figures and stop at the same step; only rank 0 has a run directory and reporters.

use std::rc::Rc;
use std::time::{Duration, Instant};

use clshost_plugin_api::{StepParams, Tensor, TensorRef};

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
use crate::distributed::World;
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
    /// Another rank of a data-parallel run failed; its own message says why.
    #[error(
        "rank {rank} failed {at} (its own message says why); every rank stops there, and the \
         checkpoint written before it is kept"
    )]
    Rank {
        /// The rank that failed.
        rank: u32,
        /// Where, in words: `at epoch 3, step 120`, `in an evaluation`.
        at: String,
    },
    /// Only rank 0 of a data-parallel run keeps the run directory.
    #[error("rank {0} keeps no run directory: only rank 0 writes it")]
    NoRunDir(u32),
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
    /// The run directory; `None` on the ranks of a data-parallel run other than 0, which write
    /// nothing.
    run: Option<RunDir>,
    /// The ranks of the run (one when it is not data-parallel).
    world: Rc<World>,
    schedule: Schedule,
    /// The host's resumable state.
    pub state: HostState,
    control: Control,
    reporters: Reporters,
    /// Up to when wall-clock time has been added to the state's counters.
    counted_until: Instant,
}

impl Trainer {
    /// A trainer over `parts`, writing into `run` (rank 0 of `world`; `None` on the others),
    /// starting from `state`. The recipe's `loggers` get every event after the first-party
    /// reporters.
    pub fn new(
        parts: Parts,
        run: Option<RunDir>,
        world: Rc<World>,
        state: HostState,
        control: Control,
        loggers: Vec<Tracked>,
    ) -> Self {
        let r = &parts.recipe;
        let schedule = Schedule::new(
            &r.schedule,
            r.optimizer.lr,
            r.data.batch_size * r.trainer.accumulate * world.size(),
            r.trainer.epochs,
            parts.train.batches_per_epoch() as u64,
        );
        let mut reporters = match &run {
            Some(run) => {
                Reporters::first_party(run.path(), parts.classes.clone(), schedule.clone())
            }
            None => Reporters::none(),
        };
        for logger in loggers {
            reporters.add_advisory(format!("logger `{}`", logger.name()), Box::new(logger));
        }
        Trainer {
            parts,
            run,
            world,
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

    /// The run directory (rank 0's alone).
    pub fn run_dir(&self) -> Result<&RunDir, TrainError> {
        self.run
            .as_ref()
            .ok_or_else(|| TrainError::NoRunDir(self.world.rank()))
    }

    /// The ranks of the run.
    pub fn world(&self) -> &World {
        &self.world
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
    /// when `top`; then deletes the top-k files that fell out of the list. Only rank 0 writes.
    fn save(&mut self, best: bool, top: bool) -> Result<(), TrainError> {
        self.count_wall_time();
        let keep = &self.parts.recipe.trainer.checkpoints;
        let (last, best) = (keep.last, best && keep.best);
        let Some(run) = &self.run else {
            return Ok(());
        };
        if !last && !best && keep.top_k == 0 {
            return Ok(());
        }
        let dir = run.subdir("checkpoints")?;
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
            if verdict.stop {
                return Ok(Ending::EarlyStopped);
            }
            // Every rank ends where any of them was asked to stop or ran out of time.
            let mut ends = [
                f64::from(u8::from(self.control.stop.is_raised())),
                f64::from(u8::from(limit.is_some_and(|l| started.elapsed() >= l))),
            ];
            self.world.all_reduce_f64(&mut ends);
            if ends[0] > 0.0 || self.control.stop_after_epoch == Some(self.state.epoch) {
                return Ok(Ending::Interrupted);
            }
            if ends[1] > 0.0 && self.state.epoch < epochs {
                return Ok(Ending::TimeLimit);
            }
        }
        Ok(Ending::Completed)
    }

    /// Trains the rest of the current epoch; `false` when interrupted mid-epoch.
    ///
    /// The epoch goes in rounds of one batch per rank: round `k` gives rank `r` the batch of
    /// index `k * ranks + r` (or none past the end). After its forward pass and loss, every rank
    /// tells the others how the round went ([`Round`]), so that an error, a non-finite loss or
    /// an interrupt on any rank stops every rank at the same round. With one rank a round is one
    /// batch and the exchange costs nothing.
    fn train_epoch(&mut self) -> Result<bool, TrainError> {
        let epoch = self.state.epoch;
        if let Some(tuning) = self.parts.tuning.as_mut()
            && let Some(report) = tuning.apply(&mut self.parts.backbone, epoch)?
            && self.world.is_leader()
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
        let (rank, ranks) = (self.world.rank() as usize, self.world.size() as usize);
        let mix_on = mixing_in(r, &self.parts.batch_augments, epoch);
        let steps = self.parts.train.batches_per_epoch();
        let rounds = steps.div_ceil(ranks);
        let log_every = u64::from(r.trainer.log_interval.max(1));
        let progress = Progress::start(
            epoch + 1,
            epochs,
            steps as u64,
            self.state.batches_done as u64,
            self.control.quiet || !self.world.is_leader(),
            r.trainer.log_interval,
        );
        // Each rank's logit gradient is divided by the micro-batches of a whole window, on all
        // ranks, so that the sum across ranks (and over the window) is their mean.
        let scale = 1.0 / (accumulate * ranks as u64) as f32;
        let classes = self.parts.classes.len();
        let first_round = self.state.batches_done / ranks;
        let mut loader = self
            .parts
            .train
            .epoch_shard(u64::from(epoch), rank, ranks)
            .peekable();
        for round in first_round..rounds {
            let index = round * ranks + rank;
            let t0 = Instant::now();
            while loader
                .peek()
                .is_some_and(|b| b.as_ref().is_ok_and(|b| b.index < index))
            {
                loader.next();
            }
            let mine = match loader.peek() {
                Some(Ok(b)) if b.index != index => None,
                Some(_) => loader.next(),
                None => None,
            };
            let attempt = match mine {
                Some(batch) => batch
                    .map_err(TrainError::from)
                    .and_then(|batch| self.forward(batch, classes, mix_on, epoch))
                    .map(Some),
                None => Ok(None),
            };
            let round_end = ((round + 1) * ranks).min(steps);
            let done = Round::exchange(&self.world, &attempt, self.control.stop.is_raised());
            if let Some(failure) = done.failure(rank) {
                progress.finish();
                return Err(match (attempt, failure) {
                    (Err(e), _) => e,
                    (_, Failure::NonFinite(what)) => self.diverged(what, round_end as u64),
                    (_, Failure::Rank(failed)) => TrainError::Rank {
                        rank: failed,
                        at: format!("at epoch {}, step {round_end}", epoch + 1),
                    },
                });
            }
            let iter = u64::from(epoch) * steps as u64 + round_end as u64 - 1;
            let lr = self.schedule.lr(iter);
            let apply_update = (round as u64 + 1).is_multiple_of(accumulate) || round + 1 == rounds;
            match attempt {
                Ok(Some(mut forward)) => {
                    if scale != 1.0 {
                        forward.grad.iter_mut().for_each(|g| *g *= scale);
                    }
                    self.parts.backbone.backward_step(
                        TensorRef {
                            shape: forward.logits.shape.as_slice().into(),
                            data: forward.grad.as_slice().into(),
                        },
                        StepParams { lr, apply_update },
                    )?;
                }
                _ if apply_update && ranks > 1 => {
                    // No batch on this rank in the window's last round: it takes part in the
                    // step with nothing to add (plugin ABI 1.5).
                    let shape = [0, classes];
                    self.parts.backbone.backward_step(
                        TensorRef {
                            shape: shape.as_slice().into(),
                            data: [].as_slice().into(),
                        },
                        StepParams { lr, apply_update },
                    )?;
                }
                _ => {}
            }
            if done.batches == 0 {
                continue;
            }
            let seconds = t0.elapsed().as_secs_f64();
            self.state.global_step += done.batches;
            self.state.batches_done = round_end;
            self.state.epoch_loss_sum += done.loss_sum;
            self.state.epoch_images += done.images;
            self.state.epoch_seconds += seconds;
            self.state.total_images += done.images;
            self.state.train_seconds += seconds;
            let images_per_s = self.state.epoch_images as f64 / self.state.epoch_seconds.max(1e-9);
            let step = round_end as u64;
            progress.step(
                step,
                self.state.epoch_loss_sum / self.state.epoch_images as f64,
                lr,
                images_per_s,
            );
            if (round * ranks..round_end).any(|i| (i as u64 + 1).is_multiple_of(log_every)) {
                self.reporters.emit(&Event::Step {
                    step: self.state.global_step,
                    scalars: &[
                        ("train/loss".into(), done.mean_loss()),
                        ("train/lr".into(), lr),
                        ("train/images_per_s".into(), images_per_s),
                    ],
                })?;
            }
            if done.stop && round + 1 < rounds {
                progress.finish();
                return Ok(false);
            }
        }
        progress.finish();
        Ok(true)
    }

    /// The forward half of a training step on `batch`: targets (mixed when `mix_on`), the
    /// sample sheet on the run's first batch, the logits, the loss and its gradient.
    fn forward(
        &mut self,
        mut batch: Batch,
        classes: usize,
        mix_on: bool,
        epoch: u32,
    ) -> Result<Forward, TrainError> {
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
        if self.state.global_step == 0 && batch.index == 0 && self.run.is_some() {
            self.write_samples(&batch, &targets)?;
        }
        let logits = self.parts.backbone.forward(batch.view())?;
        // Diverged weights give non-finite logits, which a loss may refuse outright.
        let (loss, grad) = if logits.data.iter().all(|v| v.is_finite()) {
            loss_and_grad(&self.parts.loss, &logits, &targets)?
        } else {
            (f64::NAN, Vec::new())
        };
        Ok(Forward {
            logits,
            grad,
            loss,
            images: batch.len() as u64,
        })
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
        let Some(run) = &self.run else {
            return Ok(());
        };
        let path = run.path().join("samples.png");
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
        let last = self
            .run
            .as_ref()
            .map(|run| run.path().join("checkpoints").join("last.ckpt"));
        TrainError::NonFinite {
            what,
            epoch: self.state.epoch + 1,
            step,
            kept: last
                .filter(|last| last.is_file())
                .map(|last| last.display().to_string()),
        }
    }

    /// Runs the validation set through the raw (and EMA) weights, shared among the ranks.
    pub fn evaluate(&mut self) -> Result<Evaluation, TrainError> {
        let world = Rc::clone(&self.world);
        self.evaluate_in(&world)
    }

    /// Runs the validation set through the raw (and EMA) weights on this rank alone, whatever
    /// the job: rank 0's evaluation of the best weights at the end of a run, after the other
    /// ranks have finished.
    pub fn evaluate_alone(&mut self) -> Result<Evaluation, TrainError> {
        self.evaluate_in(&World::single())
    }

    fn evaluate_in(&mut self, world: &World) -> Result<Evaluation, TrainError> {
        let p = &mut self.parts;
        evaluate(
            &mut p.backbone,
            &p.loss,
            &p.val,
            p.classes.len(),
            &mut p.metrics,
            p.ema_metrics.as_deref_mut(),
            world,
        )
    }

    /// The per-class lines of an evaluation of the weights in `which`.
    pub fn class_lines(&self, eval: &Evaluation, which: BestWeights) -> Vec<ClassLine> {
        eval.class_lines(&self.parts.classes, which)
    }
}

/// The forward half of one training step on this rank.
struct Forward {
    logits: Tensor,
    grad: Vec<f32>,
    loss: f64,
    images: u64,
}

/// What a rank tells the others about its part of a round, in [`Round::exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    /// Its batch went through, or it had none.
    Fine = 0,
    /// Its loss is not a finite number.
    NonFinite = 1,
    /// It failed: its own error says why.
    Failed = 2,
}

/// Why a round stops the run, as every rank sees it.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    /// A loss is not finite: what, in words.
    NonFinite(String),
    /// This rank failed.
    Rank(u32),
}

/// A round of training as all ranks did it: the sums over the ranks' batches, whether any
/// rank was asked to stop, and each rank's [`Outcome`].
#[derive(Debug, Clone, PartialEq)]
struct Round {
    /// The sum of each batch's mean loss times its images.
    loss_sum: f64,
    /// The sum of the batches' mean losses.
    losses: f64,
    images: u64,
    batches: u64,
    stop: bool,
    outcomes: Vec<Outcome>,
    /// This rank's loss, for the message when it is the one that is not finite.
    own_loss: f64,
}

impl Round {
    /// Tells every rank how this rank's part of the round went (`attempt`, and whether it was
    /// asked to stop), in one all-reduce, and returns what all of them did.
    fn exchange(world: &World, attempt: &Result<Option<Forward>, TrainError>, stop: bool) -> Round {
        let ranks = world.size() as usize;
        let mut sums = vec![0.0f64; 5 + ranks];
        let mut own_loss = 0.0;
        let outcome = match attempt {
            Ok(Some(f)) if f.loss.is_finite() => {
                sums[0] = f.loss * f.images as f64;
                sums[1] = f.loss;
                sums[2] = f.images as f64;
                sums[3] = 1.0;
                Outcome::Fine
            }
            Ok(Some(f)) => {
                own_loss = f.loss;
                Outcome::NonFinite
            }
            Ok(None) => Outcome::Fine,
            Err(_) => Outcome::Failed,
        };
        sums[4] = f64::from(u8::from(stop));
        sums[5 + world.rank() as usize] = f64::from(outcome as u8);
        world.all_reduce_f64(&mut sums);
        let outcomes = sums[5..]
            .iter()
            .map(|&v| match v as u8 {
                0 => Outcome::Fine,
                1 => Outcome::NonFinite,
                _ => Outcome::Failed,
            })
            .collect();
        Round {
            loss_sum: sums[0],
            losses: sums[1],
            images: sums[2] as u64,
            batches: sums[3] as u64,
            stop: sums[4] > 0.0,
            outcomes,
            own_loss,
        }
    }

    /// Why the run stops, seen from rank `rank`: the first rank that failed, else a loss that
    /// is not finite (this rank's first); `None` when every rank went on.
    fn failure(&self, rank: usize) -> Option<Failure> {
        if let Some(failed) = self.outcomes.iter().position(|&o| o == Outcome::Failed) {
            return Some(Failure::Rank(failed as u32));
        }
        if self.outcomes.get(rank) == Some(&Outcome::NonFinite) {
            return Some(Failure::NonFinite(format!("the loss is {}", self.own_loss)));
        }
        let other = self
            .outcomes
            .iter()
            .position(|&o| o == Outcome::NonFinite)?;
        Some(Failure::NonFinite(format!(
            "the loss on rank {other} is not a finite number"
        )))
    }

    /// The mean of the round's batch losses.
    fn mean_loss(&self) -> f64 {
        self.losses / self.batches as f64
    }
}

fn write_err(what: &str, e: std::io::Error) -> TrainError {
    TrainError::Write(WriteError {
        path: what.into(),
        cause: e,
    })
}
