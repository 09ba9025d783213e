//! TensorBoard event files: the run's scalars in the format `tensorboard --logdir` reads.
//!
//! A file is a sequence of TFRecords: the data length as a little-endian `u64`, the masked
//! CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. Each record's data
//! is a `tensorflow.Event` protobuf message; the structs below declare the fields of
//! tensorflow's `event.proto` and `summary.proto` this host writes, with their field numbers,
//! and `prost` encodes them. The first event of a file holds the file version
//! (`brain.Event:2`); scalars are `Summary.Value`s with a `simple_value` (an `f32`).
//!
//! [`EventLog`] is what the reporting pipeline's TensorBoard reporter uses: it opens a new file
//! `tensorboard/events.out.tfevents.<unix seconds>.<host>.<pid>` in the run directory at
//! the start of each invocation (a resumed run appends a file; TensorBoard merges the files of
//! a directory by step) and, when the directory already holds event files (a resumed run, even
//! one whose last checkpoint is from before its first step), writes a `SessionLog` START event
//! at the step the run continues from, so TensorBoard discards events a crash left beyond the
//! checkpoint.
//! Event files are derived data: when one cannot be written, a warning names the file and
//! the run goes on without TensorBoard output. Records are appended with one write each and
//! not synced; a reader stops at a torn last record.
//!
//! [`read_events`] parses a file back, checking every checksum.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::rundir::{WriteError, at};

/// The file version TensorBoard expects in the first event.
pub const FILE_VERSION: &str = "brain.Event:2";

/// `tensorflow.Event` (event.proto), the fields this host writes.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event holds.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// The `what` oneof of `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The file version, in the first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Summary values.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session status change.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary` (summary.proto).
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`, scalars only.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The series name.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar (a member of the `value` oneof, which encodes as an optional field).
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// `tensorflow.SessionLog` (event.proto).
#[derive(Clone, PartialEq, Message)]
pub struct SessionLog {
    /// `SessionLog.SessionStatus`: 1 is START.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `SessionLog.SessionStatus.START`.
pub const SESSION_START: i32 = 1;

/// An event file that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be read.
    #[error("cannot read {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also the error's `source()`).
        cause: io::Error,
    },
    /// A record is damaged or not an event.
    #[error("{}: record {index}: {reason}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// The record, from 0.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One scalar read back from an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The series name.
    pub tag: String,
    /// The global step.
    pub step: i64,
    /// The value.
    pub value: f32,
}

/// TFRecord's checksum: CRC-32C, rotated right by 15 bits, plus a constant.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The TFRecord framing of `event`.
fn record(event: &Event) -> Vec<u8> {
    let data = event.encode_to_vec();
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&masked_crc(&data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An open event file.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates a new event file in `dir` (created if needed) and writes its version event.
    pub fn create(dir: &Path) -> Result<EventWriter, WriteError> {
        fs::create_dir_all(dir).map_err(at(dir))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host: String = gethostname::gethostname()
            .to_string_lossy()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stem = format!(
            "events.out.tfevents.{secs:010}.{host}.{}",
            std::process::id()
        );
        let mut n = 1;
        let (file, path) = loop {
            let path = match n {
                1 => dir.join(&stem),
                _ => dir.join(format!("{stem}.{n}")),
            };
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(at(&path)(e)),
            }
        };
        let mut writer = EventWriter { file, path };
        writer.write(&Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.into())),
        })?;
        Ok(writer)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` as one record.
    pub fn write(&mut self, event: &Event) -> Result<(), WriteError> {
        self.file.write_all(&record(event)).map_err(at(&self.path))
    }

    /// Appends one event with the finite ones of `values` as scalars at `step`.
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> Result<(), WriteError> {
        let value: Vec<SummaryValue> = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(tag, v)| SummaryValue {
                tag: tag.clone(),
                simple_value: Some(*v as f32),
            })
            .collect();
        if value.is_empty() {
            return Ok(());
        }
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            what: Some(What::Summary(Summary { value })),
        })
    }
}

/// The trainer's TensorBoard output: an [`EventWriter`] that turns its first failure into a
/// warning and stops writing.
#[derive(Debug, Default)]
pub struct EventLog {
    writer: Option<EventWriter>,
}

impl EventLog {
    /// Opens a new event file in `dir` for a run whose next step is `next_step`; when `dir`
    /// already holds event files (earlier invocations), first records a session start at
    /// `next_step`, so that their events from that step on are superseded.
    pub fn start(dir: &Path, next_step: u64) -> EventLog {
        let resumed = fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("events.out.tfevents.")
            })
        });
        let mut log = EventLog {
            writer: EventWriter::create(dir).map_err(warn).ok(),
        };
        if resumed {
            let step = next_step;
            log.with(|w| {
                w.write(&Event {
                    wall_time: now(),
                    step: step as i64,
                    what: Some(What::SessionLog(SessionLog {
                        status: SESSION_START,
                    })),
                })
            });
        }
        log
    }

    /// Writes `values` as scalars at `step`.
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) {
        self.with(|w| w.scalars(step, values));
    }

    fn with(&mut self, f: impl FnOnce(&mut EventWriter) -> Result<(), WriteError>) {
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = f(w)
        {
            warn(e);
            self.writer = None;
        }
    }
}

fn warn(e: WriteError) {
    tracing::warn!("{e}; no more TensorBoard events are written in this run");
}

/// Every event of the file at `path`, checking both checksums of every record.
pub fn read_events(path: &Path) -> Result<Vec<Event>, ReadError> {
    let bytes = fs::read(path).map_err(|cause| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let mut events = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let fail = |reason: &str| ReadError::Record {
            path: path.to_path_buf(),
            index: events.len(),
            reason: reason.into(),
        };
        let (Some(len), Some(len_crc)) = (rest.get(..8), rest.get(8..12)) else {
            return Err(fail("truncated header"));
        };
        if masked_crc(len) != u32::from_le_bytes(len_crc.try_into().unwrap_or_default()) {
            return Err(fail("length checksum mismatch"));
        }
        let n = u64::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        let (Some(data), Some(data_crc)) = (rest.get(12..12 + n), rest.get(12 + n..16 + n)) else {
            return Err(fail("truncated data"));
        };
        if masked_crc(data) != u32::from_le_bytes(data_crc.try_into().unwrap_or_default()) {
            return Err(fail("data checksum mismatch"));
        }
        let event = Event::decode(data).map_err(|e| fail(&e.to_string()))?;
        events.push(event);
        rest = &rest[16 + n..];
    }
    Ok(events)
}

/// The scalars of `events`, in file order.
pub fn scalars(events: &[Event]) -> Vec<Scalar> {
    events
        .iter()
        .filter_map(|e| match &e.what {
            Some(What::Summary(s)) => Some((e.step, s)),
            _ => None,
        })
        .flat_map(|(step, s)| {
            s.value.iter().filter_map(move |v| {
                v.simple_value.map(|value| Scalar {
                    tag: v.tag.clone(),
                    step,
                    value,
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of the committed fixture file, written by [`write_fixture`].
    fn fixture_values() -> Vec<(u64, Vec<(String, f64)>)> {
        let v = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(t, x)| (t.to_string(), *x))
                .collect::<Vec<_>>()
        };
        vec![
            (
                1,
                v(&[
                    ("train/loss", 2.25),
                    ("train/lr", 0.05),
                    ("train/images_per_s", 410.5),
                ]),
            ),
            (2, v(&[("train/loss", 1.125), ("train/lr", 0.1)])),
            (
                2,
                v(&[
                    ("epoch/epoch", 1.0),
                    ("epoch/val_loss", 0.6875),
                    ("epoch/top1", 0.75),
                    ("epoch/ema_top1", f64::NAN),
                ]),
            ),
        ]
    }

    fn write_fixture(dir: &Path) -> PathBuf {
        let mut w = EventWriter::create(dir).unwrap();
        for (step, values) in fixture_values() {
            w.scalars(step, &values).unwrap();
        }
        w.path().to_path_buf()
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tensorboard")
    }

    /// (tag, step, value) triples, sorted by tag then step.
    fn triples(scalars: &[Scalar]) -> Vec<(String, i64, f32)> {
        let mut out: Vec<_> = scalars
            .iter()
            .map(|s| (s.tag.clone(), s.step, s.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // CRC-32C("123456789") is 0xE3069283 (RFC 3720); the mask is TFRecord's.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn written_events_read_back_with_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_fixture(dir.path());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let events = read_events(&path).unwrap();
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        let got = triples(&scalars(&events));
        assert_eq!(got.len(), 8, "the NaN is left out: {got:?}");
        assert!(got.contains(&("epoch/top1".into(), 2, 0.75)));

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("record 3: data checksum mismatch"), "{err}");
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("truncated data"), "{err}");
    }

    /// The committed event file (made by this writer) read by TensorBoard's own
    /// `EventAccumulator` gives `tensorboard.json` (`scripts/fixtures/tensorboard_read.py`);
    /// this writer's output today reads back to the same scalars.
    #[test]
    fn tensorboards_reader_agrees_with_the_committed_fixture() {
        let dir = fixture_dir();
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("tensorboard.json")).unwrap())
                .unwrap();
        let mut from_python: Vec<(String, i64, f32)> = expected["scalars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["tag"].as_str().unwrap().to_string(),
                    s["step"].as_i64().unwrap(),
                    s["value"].as_f64().unwrap() as f32,
                )
            })
            .collect();
        from_python.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let committed = read_events(&dir.join(expected["file"].as_str().unwrap())).unwrap();
        assert_eq!(triples(&scalars(&committed)), from_python);
        let temp = tempfile::tempdir().unwrap();
        let fresh = read_events(&write_fixture(temp.path())).unwrap();
        assert_eq!(triples(&scalars(&fresh)), from_python);
        assert_eq!(expected["file_version"], FILE_VERSION);
    }

    /// Rewrites the committed event file: `cargo test -p clshost --lib -- --ignored
    /// write_tensorboard_fixture`, then run `scripts/fixtures/tensorboard_read.py`.
    #[test]
    #[ignore = "regenerates a committed fixture"]
    fn write_tensorboard_fixture() {
        let dir = fixture_dir();
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("events.") {
                fs::remove_file(entry.path()).unwrap();
            }
        }
        let path = write_fixture(&dir);
        fs::rename(&path, dir.join("events.out.tfevents.fixture")).unwrap();
    }

    #[test]
    fn a_resumed_log_marks_the_session_start_and_an_unwritable_one_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let path_of = |log: &EventLog| log.writer.as_ref().unwrap().path().to_path_buf();
        // The first invocation: no marker.
        let mut first = EventLog::start(dir.path(), 1);
        first.scalars(1, &[("train/loss".into(), 0.5)]);
        assert_eq!(read_events(&path_of(&first)).unwrap().len(), 2);
        // Any later one marks where it continues, even from before the first step (a run
        // killed in its first epoch resumes from the step-0 checkpoint).
        for next in [1, 7] {
            let mut log = EventLog::start(dir.path(), next);
            log.scalars(next, &[("train/loss".into(), 0.5)]);
            let events = read_events(&path_of(&log)).unwrap();
            assert_eq!(events.len(), 3);
            assert_eq!(
                (events[1].step, &events[1].what),
                (
                    next as i64,
                    &Some(What::SessionLog(SessionLog {
                        status: SESSION_START
                    }))
                )
            );
        }
        let file = dir.path().join("a-file");
        fs::write(&file, b"").unwrap();
        let mut broken = EventLog::start(&file, 1);
        assert!(broken.writer.is_none());
        broken.scalars(1, &[("x".into(), 1.0)]);
    }
}
