//! TensorBoard event files: writing them, and reading them back.
//!
//! A file is a sequence of TFRecords: the data length as a little-endian `u64`, the masked
//! CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. Each record's data
//! is a `tensorflow.Event` ([`super::proto`]). The first event of a file holds the file version
//! (`brain.Event:2`). Scalars are `Summary.Value`s with a `simple_value` (an `f32`), images
//! carry a PNG file, and the hparams plugin's data is an empty tensor whose summary metadata
//! holds the plugin's message.
//!
//! [`EventWriter`] opens a new file `events.out.tfevents.<unix seconds>.<host>.<pid>` and
//! appends one record per write, unsynced: a reader stops at a torn last record.
//! [`read_events`] parses a file back, checking every checksum.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clshost_plugin_api::PluginError;
use prost::Message;

use crate::unix_seconds;

use super::proto::{
    DT_FLOAT, Dim, Event, FILE_VERSION, HPARAMS_PLUGIN, HParamsData, HParamsPluginData, Image,
    PluginData, SummaryMetadata, SummaryValue, TensorProto, TensorShape, Value, What,
};

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

/// A scalar value; `None` when it is not finite (TensorBoard would plot it as a gap anyway).
pub fn scalar(tag: &str, value: f64) -> Option<SummaryValue> {
    value.is_finite().then(|| SummaryValue {
        tag: tag.into(),
        metadata: None,
        value: Some(Value::SimpleValue(value as f32)),
    })
}

/// An RGB image value holding the PNG file `png` of `width` x `height` pixels.
pub fn image(tag: &str, png: Vec<u8>, width: u32, height: u32) -> SummaryValue {
    SummaryValue {
        tag: tag.into(),
        metadata: None,
        value: Some(Value::Image(Image {
            height: height as i32,
            width: width as i32,
            colorspace: 3,
            encoded_image_string: png,
        })),
    }
}

/// A value of TensorBoard's hparams plugin: `data` in the summary metadata, over an empty
/// float tensor, as TensorBoard's own `hparams` summaries write it.
pub fn hparams(tag: &str, data: HParamsData) -> SummaryValue {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    };
    SummaryValue {
        tag: tag.into(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: HPARAMS_PLUGIN.into(),
                content: content.encode_to_vec(),
            }),
        }),
        value: Some(Value::Tensor(TensorProto {
            dtype: DT_FLOAT,
            tensor_shape: Some(TensorShape {
                dim: vec![Dim { size: 0 }],
            }),
        })),
    }
}

/// An open event file.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates a new event file in `dir` (created if needed) and writes its version event.
    pub fn create(dir: &Path) -> Result<EventWriter, PluginError> {
        fs::create_dir_all(dir).map_err(|e| PluginError::io_at(dir, e))?;
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
                Err(e) => return Err(PluginError::io_at(&path, e)),
            }
        };
        let mut writer = EventWriter { file, path };
        writer.write(0, What::FileVersion(FILE_VERSION.into()))?;
        Ok(writer)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event holding `what` at `step`, as one record.
    pub fn write(&mut self, step: u64, what: What) -> Result<(), PluginError> {
        let event = Event {
            wall_time: unix_seconds(),
            step: step as i64,
            what: Some(what),
        };
        self.file
            .write_all(&record(&event))
            .map_err(|e| PluginError::io_at(&self.path, e))
    }

    /// Appends one summary event with `values` at `step`; nothing when there are none.
    pub fn summary(&mut self, step: u64, values: Vec<SummaryValue>) -> Result<(), PluginError> {
        if values.is_empty() {
            return Ok(());
        }
        self.write(step, What::Summary(super::proto::Summary { value: values }))
    }
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

/// The summary values of `events` with their steps, in file order.
pub fn values(events: &[Event]) -> impl Iterator<Item = (i64, &SummaryValue)> {
    events
        .iter()
        .filter_map(|e| match &e.what {
            Some(What::Summary(s)) => Some((e.step, s)),
            _ => None,
        })
        .flat_map(|(step, s)| s.value.iter().map(move |v| (step, v)))
}

/// The scalars of `events`, in file order.
pub fn scalars(events: &[Event]) -> Vec<Scalar> {
    values(events)
        .filter_map(|(step, v)| match v.value {
            Some(Value::SimpleValue(value)) => Some(Scalar {
                tag: v.tag.clone(),
                step,
                value,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut w = EventWriter::create(dir.path()).unwrap();
        let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        w.summary(1, vec![scalar("a", 0.5).unwrap()]).unwrap();
        w.summary(2, [scalar("b", f64::NAN)].into_iter().flatten().collect())
            .unwrap();
        w.summary(
            2,
            vec![scalar("b", 0.25).unwrap(), image("i", vec![1, 2], 1, 1)],
        )
        .unwrap();
        let path = w.path().to_path_buf();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 3, "the summary of only a NaN is left out");
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        assert_eq!(
            scalars(&events),
            [
                Scalar {
                    tag: "a".into(),
                    step: 1,
                    value: 0.5
                },
                Scalar {
                    tag: "b".into(),
                    step: 2,
                    value: 0.25
                }
            ]
        );

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("record 2: data checksum mismatch"), "{err}");
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("truncated data"), "{err}");
    }
}
