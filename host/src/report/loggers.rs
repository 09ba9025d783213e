//! The recipe's loggers (plugins of the logger kind, ABI 1.4) as reporters, each on a thread of
//! its own.
//!
//! A logger talks to a tracker over the network, which may be slow or down; training must not
//! notice. So [`Tracked`] turns each [`Event`] into the ABI's owned event types and hands it to
//! the logger's thread through a bounded queue ([`QUEUE`] events), without ever waiting:
//!
//! - an error the logger returns is a warning, printed once per logger (its later errors are
//!   counted, not printed); the logger keeps getting events, so it can recover;
//! - when the queue is full (the logger is that far behind) the event is dropped, with one
//!   warning;
//! - at [`Event::End`] the host waits up to [`FLUSH_WAIT`] for the logger to finish, so the end
//!   of a run is sent; past that it warns and leaves the thread behind.
//!
//! A logger that cannot even be created (its constructor failed) is a warning too, and the run
//! goes on without it: see [`create`].

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RString, RVec};
use clshost_plugin_api::{
    EpochLog, FileLog, LoggerContext, RunEnd, RunStart, Scalar, StepLog, TextEntry,
};

use super::pipeline::{Event, ReportError, Reporter, row_scalars};
use crate::recipe::schema::Component;
use crate::registry::{Logger, Registry};

/// How many events wait for a logger at most before new ones are dropped.
pub const QUEUE: usize = 4096;

/// How long the end of a run waits for a logger to send what it has.
pub const FLUSH_WAIT: Duration = Duration::from_secs(60);

/// An event as a logger's thread gets it.
enum Message {
    Start(RunStart),
    Step(StepLog),
    Epoch(EpochLog),
    File(FileLog),
    End(RunEnd),
}

/// A logger on its own thread, seen as an advisory reporter.
pub struct Tracked {
    /// The logger's name, for warnings.
    name: String,
    /// The run directory, for files' relative paths.
    run_dir: PathBuf,
    /// The queue to the thread; `None` once the run ended.
    queue: Option<SyncSender<Message>>,
    /// Told when the thread has handled every event.
    done: Receiver<()>,
    /// The thread.
    worker: Option<JoinHandle<()>>,
    /// Events dropped because the queue was full.
    dropped: u64,
}

/// Creates the recipe's `loggers`, each with its state directory `RUN_DIR/loggers/<name>`, and
/// starts their threads. A logger that cannot be created is a warning, and is left out.
pub fn create(
    registry: &Registry,
    loggers: &[Component],
    run_dir: &Path,
    resumed: bool,
) -> Vec<Tracked> {
    let mut tracked = Vec::new();
    for c in loggers {
        let state_dir = run_dir.join("loggers").join(&c.name);
        if let Err(e) = std::fs::create_dir_all(&state_dir) {
            tracing::warn!(
                "logger `{}`: cannot create {}: {e}; the run goes on without it",
                c.name,
                state_dir.display()
            );
            continue;
        }
        let ctx = LoggerContext {
            run_dir: text(run_dir),
            state_dir: text(&state_dir),
            resumed,
        };
        match registry.new_logger(&c.name, &c.params, &ctx) {
            Ok(logger) => tracked.push(Tracked::spawn(logger, run_dir)),
            Err(e) => tracing::warn!("{e}; the run goes on without this logger"),
        }
    }
    tracked
}

impl Tracked {
    /// Starts `logger`'s thread, for a run in `run_dir`.
    pub fn spawn(logger: Logger, run_dir: &Path) -> Tracked {
        let name = logger.origin().name.clone();
        let (queue, messages) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name(format!("logger {name}"))
            .spawn(move || {
                work(logger, messages);
                let _ = done_tx.send(());
            });
        let worker = match worker {
            Ok(worker) => Some(worker),
            Err(e) => {
                tracing::warn!("logger `{name}`: cannot start its thread: {e}");
                None
            }
        };
        Tracked {
            queue: worker.is_some().then_some(queue),
            name,
            run_dir: run_dir.to_path_buf(),
            done,
            worker,
            dropped: 0,
        }
    }

    /// The logger's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues `message` without waiting; a full queue drops it (with one warning). The end of
    /// the run is never dropped: it waits up to [`FLUSH_WAIT`] for room.
    fn send(&mut self, mut message: Message) {
        let Some(queue) = &self.queue else {
            return;
        };
        let deadline = Instant::now() + FLUSH_WAIT;
        loop {
            match queue.try_send(message) {
                Err(TrySendError::Full(back))
                    if matches!(back, Message::End(_)) && Instant::now() < deadline =>
                {
                    message = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                result => return self.sent(result),
            }
        }
    }

    /// Accounts for the result of queueing a message.
    fn sent(&mut self, result: Result<(), TrySendError<Message>>) {
        match result {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    tracing::warn!(
                        "logger `{}` falls behind ({QUEUE} events wait): it misses events \
                         until it catches up",
                        self.name
                    );
                }
                self.dropped += 1;
            }
            // The thread is gone (the logger panicked past its guard); nothing more to do.
            Err(TrySendError::Disconnected(_)) => self.queue = None,
        }
    }

    /// Closes the queue and waits up to [`FLUSH_WAIT`] for the thread to finish.
    fn finish(&mut self) {
        if self.queue.take().is_none() {
            return;
        }
        match self.done.recv_timeout(FLUSH_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(worker) = self.worker.take() {
                    let _ = worker.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => tracing::warn!(
                "logger `{}` did not finish within {} s; what it had not sent yet is lost",
                self.name,
                FLUSH_WAIT.as_secs()
            ),
        }
        if self.dropped > 0 {
            tracing::warn!(
                "logger `{}` missed {} events because it fell behind",
                self.name,
                self.dropped
            );
        }
    }

    /// The ABI form of `event`.
    fn message(&self, event: &Event<'_>) -> Message {
        match event {
            Event::Start(s) => Message::Start(RunStart {
                name: s.name.into(),
                run_dir: text(s.run_dir),
                recipe: s.recipe.into(),
                params: entries(s.params),
                environment: entries(s.environment),
                classes: s.classes.iter().map(|c| c.as_str().into()).collect(),
                resumed: s.resumed,
                next_step: s.next_step,
                epochs: s.epochs,
            }),
            Event::Step { step, scalars } => Message::Step(StepLog {
                step: *step,
                scalars: abi_scalars(scalars),
            }),
            Event::Epoch(e) => Message::Epoch(EpochLog {
                epoch: e.row.epoch,
                step: e.global_step,
                scalars: abi_scalars(&row_scalars(e.row)),
                reports: e.reports.iter().cloned().collect(),
                ema_reports: e.ema_reports.iter().cloned().collect(),
                best: e.best.into(),
                improved: e.improved,
            }),
            Event::File(f) => Message::File(FileLog {
                kind: f.kind.as_str().into(),
                path: text(f.path),
                relative: text(
                    f.path
                        .strip_prefix(&self.run_dir)
                        .ok()
                        .or_else(|| f.path.file_name().map(Path::new))
                        .unwrap_or(f.path),
                ),
                epoch: ROption::from(f.epoch),
            }),
            Event::End(e) => Message::End(RunEnd {
                status: e.status.into(),
                message: e.message.into(),
                epochs: e.epochs,
                step: e.step,
                summary: abi_scalars(e.summary),
            }),
        }
    }
}

impl Reporter for Tracked {
    fn report(&mut self, event: &Event<'_>) -> Result<(), ReportError> {
        let message = self.message(event);
        self.send(message);
        if matches!(event, Event::End(_)) {
            self.finish();
        }
        Ok(())
    }
}

/// The logger's thread: every message in order; the first error is a warning.
fn work(mut logger: Logger, messages: Receiver<Message>) {
    let mut failed = false;
    for message in messages {
        let result = match &message {
            Message::Start(m) => logger.start(m),
            Message::Step(m) => logger.step(m),
            Message::Epoch(m) => logger.epoch(m),
            Message::File(m) => logger.file(m),
            Message::End(m) => logger.end(m),
        };
        if let Err(e) = result
            && !failed
        {
            failed = true;
            tracing::warn!("{e}; training goes on, and this logger's later errors are not shown");
        }
    }
}

fn text(path: &Path) -> RString {
    path.to_string_lossy().as_ref().into()
}

fn entries(pairs: &[(String, String)]) -> RVec<TextEntry> {
    pairs
        .iter()
        .map(|(name, value)| TextEntry {
            name: name.as_str().into(),
            value: value.as_str().into(),
        })
        .collect()
}

fn abi_scalars(pairs: &[(String, f64)]) -> RVec<Scalar> {
    pairs
        .iter()
        .map(|(name, value)| Scalar {
            name: name.as_str().into(),
            value: *value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::{Arc, Barrier, Mutex};

    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::RResult;
    use clshost_plugin_api::{AbiLogger, AbiLogger_TO, PluginError};

    use super::*;
    use crate::registry::{Kind, Origin};
    use crate::report::pipeline::{EndEvent, FileEvent, FileKind};

    /// Records the events it gets; waits at `gate` (when given) before the first, and fails
    /// every call when `fail`.
    struct Recording {
        seen: Arc<Mutex<Vec<String>>>,
        gate: Option<Arc<Barrier>>,
        fail: bool,
    }

    impl Recording {
        fn record(&mut self, what: String) -> RResult<(), PluginError> {
            if let Some(gate) = self.gate.take() {
                gate.wait();
            }
            self.seen.lock().unwrap().push(what);
            if self.fail {
                RResult::RErr(PluginError::io("the tracker is down"))
            } else {
                RResult::ROk(())
            }
        }
    }

    impl AbiLogger for Recording {
        fn start(&mut self, run: &RunStart) -> RResult<(), PluginError> {
            self.record(format!("start {}", run.next_step))
        }
        fn step(&mut self, step: &StepLog) -> RResult<(), PluginError> {
            self.record(format!("step {}", step.step))
        }
        fn epoch(&mut self, epoch: &EpochLog) -> RResult<(), PluginError> {
            self.record(format!("epoch {}", epoch.epoch))
        }
        fn file(&mut self, file: &FileLog) -> RResult<(), PluginError> {
            self.record(format!("{} {}", file.kind, file.relative))
        }
        fn end(&mut self, end: &RunEnd) -> RResult<(), PluginError> {
            self.record(format!("end {}", end.status))
        }
    }

    fn tracked(recording: Recording) -> Tracked {
        let origin = Arc::new(Origin {
            kind: Kind::Logger,
            name: "recording".into(),
            plugin: "test".into(),
            path: PathBuf::from("libtest.so"),
        });
        let logger = Logger::new(AbiLogger_TO::from_value(recording, TD_Opaque), origin);
        Tracked::spawn(logger, Path::new("/runs/r/1"))
    }

    fn step(n: u64) -> Event<'static> {
        Event::Step {
            step: n,
            scalars: &[],
        }
    }

    fn end() -> Event<'static> {
        Event::End(EndEvent {
            status: "completed",
            message: "",
            epochs: 1,
            step: 3,
            summary: &[],
        })
    }

    #[test]
    fn a_logger_gets_every_event_in_order_and_the_end_waits_for_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for fail in [false, true] {
            seen.lock().unwrap().clear();
            let mut logger = tracked(Recording {
                seen: seen.clone(),
                gate: None,
                fail,
            });
            logger.report(&step(1)).unwrap();
            let ckpt = Path::new("/runs/r/1/checkpoints/last.ckpt");
            let file = Event::File(FileEvent {
                kind: FileKind::Checkpoint,
                path: ckpt,
                epoch: Some(1),
            });
            logger.report(&file).unwrap();
            logger.report(&end()).unwrap();
            assert_eq!(
                *seen.lock().unwrap(),
                [
                    "step 1",
                    "checkpoint checkpoints/last.ckpt",
                    "end completed"
                ],
                "failing: {fail}"
            );
        }
    }

    #[test]
    fn a_logger_that_falls_behind_never_blocks_training_and_misses_the_overflow() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Barrier::new(2));
        let mut logger = tracked(Recording {
            seen: seen.clone(),
            gate: Some(gate.clone()),
            fail: false,
        });
        // The thread takes the first event and waits at the gate; the queue fills behind it.
        let sent = QUEUE as u64 + 11;
        for n in 1..=sent {
            logger.report(&step(n)).unwrap();
        }
        assert!(
            logger.dropped >= 10 && logger.dropped <= 11,
            "{}",
            logger.dropped
        );
        gate.wait();
        logger.report(&end()).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len() as u64, sent - logger.dropped + 1);
        assert_eq!(seen.first().map(String::as_str), Some("step 1"));
        assert_eq!(seen.last().map(String::as_str), Some("end completed"));
    }
}
