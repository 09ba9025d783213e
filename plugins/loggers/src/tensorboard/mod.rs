//! The `tensorboard` logger: a run's scalars, images and hyperparameters as TensorBoard event
//! files, for `tensorboard --logdir runs`.
//!
//! - **Where**: `params.dir`, relative to the run directory (default `tensorboard`) or
//!   absolute. Each invocation opens a new file there; TensorBoard merges a directory's files
//!   by step.
//! - **Scalars**: every logged step's `train/loss`, `train/lr` and `train/images_per_s`, and
//!   each evaluated epoch's row as `epoch/epoch` and `epoch/<column>` (`epoch/val_loss`,
//!   `epoch/top1`, a third-party metric's scalars, ...) at the step that ends the epoch. Values
//!   that are not finite are left out.
//! - **Images** (`params.images`): after each evaluation, the confusion matrix as a heat map
//!   (`confusion_matrix`, and `confusion_matrix/ema` with EMA weights) when a metric reports
//!   one; and the sample sheet the host writes from the first training batch
//!   (`samples/train`).
//! - **Hyperparameters**: every field of the resolved recipe, in the hparams dashboard
//!   (a session start at the start, a session end with the run's status at the end: success
//!   or failure; an interrupted invocation writes none, since `--resume` continues the
//!   session and TensorBoard keeps the first end it reads).
//! - **Resume**: when the directory already holds event files, the new file first records a
//!   session start at the step the run continues from, so TensorBoard drops what an earlier
//!   invocation logged past its last checkpoint.

pub mod proto;
pub mod records;

use std::fs;
use std::path::{Path, PathBuf};

use clshost_plugin_api::prelude::*;

use self::proto::{
    HParamsData, Kind, ProtoValue, SESSION_END_INFO_TAG, SESSION_START, SESSION_START_INFO_TAG,
    SessionEndInfo, SessionLog, SessionStartInfo, Status, SummaryValue, What,
};
use self::records::{EventWriter, hparams, image, scalar};
use crate::values::{FieldValue, field_value};
use crate::{images, not_started, unix_seconds};

/// The `tensorboard` logger.
pub struct Tensorboard {
    /// Where the event files go.
    dir: PathBuf,
    /// Whether images are logged.
    images: bool,
    /// This invocation's file, from the start on.
    writer: Option<EventWriter>,
    /// The class names, for the confusion matrix.
    classes: Vec<String>,
    /// The latest global step logged (0 before the first).
    step: u64,
}

/// Config of [`Tensorboard`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct TensorboardConfig {
    /// The event files' directory: relative to the run directory, or absolute.
    pub dir: String,
    /// Log the confusion matrix after each evaluation and the sample training images.
    pub images: bool,
}

impl Default for TensorboardConfig {
    fn default() -> Self {
        TensorboardConfig {
            dir: "tensorboard".into(),
            images: true,
        }
    }
}

impl Component for Tensorboard {
    const NAME: &'static str = "tensorboard";
    const DESCRIPTION: &'static str =
        "TensorBoard event files: scalars, confusion matrix and sample images, hyperparameters";
    type Config = TensorboardConfig;

    fn check(config: &TensorboardConfig) -> Result<(), PluginError> {
        if config.dir.trim().is_empty() {
            return Err(PluginError::config("dir", "must name a directory"));
        }
        Ok(())
    }
}

/// A recipe field's RON value as a hyperparameter ([`field_value`]).
pub fn hparam_value(ron_text: &str) -> ProtoValue {
    let kind = match field_value(ron_text) {
        FieldValue::Integer(n) => Kind::NumberValue(n as f64),
        FieldValue::Number(x) => Kind::NumberValue(x),
        FieldValue::Bool(b) => Kind::BoolValue(b),
        FieldValue::Text(s) => Kind::StringValue(s),
    };
    ProtoValue { kind: Some(kind) }
}

/// The hparams status of a run's end status; `None` for an interrupted run, which `--resume`
/// continues (TensorBoard keeps the first session end it reads for a run).
pub fn end_status(status: &str) -> Option<Status> {
    match status {
        "completed" | "early_stopping" | "time_limit" => Some(Status::Success),
        "failed" => Some(Status::Failure),
        _ => None,
    }
}

/// Whether `dir` holds an event file.
fn has_event_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
    })
}

impl Tensorboard {
    fn writer(&mut self) -> Result<&mut EventWriter, PluginError> {
        self.writer.as_mut().ok_or_else(not_started)
    }

    /// The confusion matrices of `reports` (the first one of the run's size) as an image
    /// value tagged `tag`.
    fn confusion_image(
        &self,
        tag: &str,
        reports: &[MetricReport],
    ) -> Result<Option<SummaryValue>, PluginError> {
        let png = images::confusion_png(reports, &self.classes)?;
        Ok(png.map(|p| image(tag, p.bytes, p.width, p.height)))
    }
}

impl Logger for Tensorboard {
    fn new(config: TensorboardConfig, ctx: &LoggerContext) -> Result<Self, PluginError> {
        Ok(Tensorboard {
            dir: Path::new(ctx.run_dir.as_str()).join(&config.dir),
            images: config.images,
            writer: None,
            classes: Vec::new(),
            step: 0,
        })
    }

    fn start(&mut self, run: &RunStart) -> Result<(), PluginError> {
        let earlier = has_event_files(&self.dir);
        let writer = self.writer.insert(EventWriter::create(&self.dir)?);
        if earlier {
            writer.write(
                run.next_step,
                What::SessionLog(SessionLog {
                    status: SESSION_START,
                }),
            )?;
        }
        let start = SessionStartInfo {
            hparams: run
                .params
                .iter()
                .map(|p| (p.name.to_string(), hparam_value(&p.value)))
                .collect(),
            start_time_secs: unix_seconds(),
        };
        writer.summary(
            0,
            vec![hparams(
                SESSION_START_INFO_TAG,
                HParamsData::SessionStartInfo(start),
            )],
        )?;
        self.classes = run.classes.iter().map(|c| c.to_string()).collect();
        self.step = run.next_step.saturating_sub(1);
        Ok(())
    }

    fn step(&mut self, step: &StepLog) -> Result<(), PluginError> {
        self.step = step.step;
        let values = step
            .scalars
            .iter()
            .filter_map(|s| scalar(&s.name, s.value))
            .collect();
        self.writer()?.summary(step.step, values)
    }

    fn epoch(&mut self, epoch: &EpochLog) -> Result<(), PluginError> {
        self.step = epoch.step;
        let mut values: Vec<SummaryValue> =
            std::iter::once(("epoch".into(), f64::from(epoch.epoch)))
                .chain(epoch.scalars.iter().map(|s| (s.name.to_string(), s.value)))
                .filter_map(|(name, v)| scalar(&format!("epoch/{name}"), v))
                .collect();
        if self.images {
            for (tag, reports) in [
                ("confusion_matrix", &epoch.reports),
                ("confusion_matrix/ema", &epoch.ema_reports),
            ] {
                values.extend(self.confusion_image(tag, reports)?);
            }
        }
        self.writer()?.summary(epoch.step, values)
    }

    fn file(&mut self, file: &FileLog) -> Result<(), PluginError> {
        if !self.images || file.kind.as_str() != "samples" {
            return Ok(());
        }
        let png = images::read_png(Path::new(file.path.as_str()))?;
        let step = self.step;
        self.writer()?.summary(
            step,
            vec![image("samples/train", png.bytes, png.width, png.height)],
        )
    }

    fn end(&mut self, end: &RunEnd) -> Result<(), PluginError> {
        let Some(status) = end_status(end.status.as_str()) else {
            return Ok(());
        };
        let info = SessionEndInfo {
            status: status as i32,
            end_time_secs: unix_seconds(),
        };
        let step = end.step;
        self.writer()?.summary(
            step,
            vec![hparams(
                SESSION_END_INFO_TAG,
                HParamsData::SessionEndInfo(info),
            )],
        )
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use sha2::{Digest, Sha256};

    use super::proto::{Event, HParamsPluginData, Value};
    use super::records::{read_events, values};
    use super::*;

    fn scalars(pairs: &[(&str, f64)]) -> RVec<Scalar> {
        pairs
            .iter()
            .map(|(name, value)| Scalar {
                name: (*name).into(),
                value: *value,
            })
            .collect()
    }

    /// A run of three classes through the logger, writing into `dir`: a start with four recipe
    /// fields, two steps, an epoch with a confusion matrix, the sample sheet, and the end.
    /// Returns the event file.
    fn write_run(dir: &Path) -> PathBuf {
        let ctx = LoggerContext {
            run_dir: dir.to_string_lossy().as_ref().into(),
            state_dir: dir.join("state").to_string_lossy().as_ref().into(),
            resumed: false,
        };
        let config = TensorboardConfig {
            dir: "board".into(),
            images: true,
        };
        let mut logger = Tensorboard::new(config, &ctx).unwrap();
        let params = [
            ("optimizer.lr", "0.05"),
            ("optimizer.name", "sgd"),
            ("data.root", "\"data/shapes\""),
            ("trainer.ema.enabled", "false"),
        ];
        logger
            .start(&RunStart {
                name: "fixture".into(),
                run_dir: ctx.run_dir.clone(),
                recipe: "()".into(),
                params: params
                    .iter()
                    .map(|(name, value)| TextEntry {
                        name: (*name).into(),
                        value: (*value).into(),
                    })
                    .collect(),
                environment: RVec::new(),
                classes: ["circle", "square", "a triangle with a long name"]
                    .iter()
                    .map(|c| (*c).into())
                    .collect(),
                resumed: false,
                next_step: 1,
                epochs: 1,
            })
            .unwrap();
        let samples = dir.join("samples.png");
        let sheet =
            image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 10, y as u8 * 15, 128]));
        fs::write(&samples, images::png(&sheet).unwrap()).unwrap();
        logger
            .file(&FileLog {
                kind: "samples".into(),
                path: samples.to_string_lossy().as_ref().into(),
                relative: "samples.png".into(),
                epoch: ROption::RSome(1),
            })
            .unwrap();
        for (step, loss) in [(1, 2.25), (2, 1.125)] {
            logger
                .step(&StepLog {
                    step,
                    scalars: scalars(&[("train/loss", loss), ("train/lr", 0.05 * step as f64)]),
                })
                .unwrap();
        }
        let confusion = MetricReport {
            matrices: vec![MetricMatrix {
                name: "confusion_matrix".into(),
                rows: 3,
                cols: 3,
                values: vec![4.0, 1.0, 0.0, 0.0, 5.0, 0.0, 2.0, 0.0, 3.0].into(),
            }]
            .into(),
            ..MetricReport::default()
        };
        logger
            .epoch(&EpochLog {
                epoch: 1,
                step: 2,
                scalars: scalars(&[("val_loss", 0.6875), ("top1", 0.75), ("ema_top1", f64::NAN)]),
                reports: vec![confusion].into(),
                ema_reports: RVec::new(),
                best: ROption::RSome(0.75),
                improved: true,
            })
            .unwrap();
        logger
            .end(&RunEnd {
                status: "completed".into(),
                message: "".into(),
                epochs: 1,
                step: 2,
                summary: RVec::new(),
            })
            .unwrap();
        logger.writer.unwrap().path().to_path_buf()
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tensorboard")
    }

    /// What TensorBoard's reader reports of `events`, as `scripts/fixtures/tensorboard_read.py`
    /// prints it (scalars and images sorted by tag, then in file order).
    fn as_tensorboard_reads(events: &[Event]) -> serde_json::Value {
        let mut scalars = Vec::new();
        let mut images = Vec::new();
        let mut hparams = serde_json::Map::new();
        for (step, v) in values(events) {
            match &v.value {
                Some(Value::SimpleValue(x)) => scalars.push(serde_json::json!({
                    "tag": v.tag, "step": step, "value": f64::from(*x)
                })),
                Some(Value::Image(img)) => {
                    let size = images::png_size(&img.encoded_image_string).unwrap();
                    images.push(serde_json::json!({
                        "tag": v.tag, "step": step, "width": img.width, "height": img.height,
                        "png_size": [size.0, size.1],
                        "sha256": Sha256::digest(&img.encoded_image_string)
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                    }));
                }
                Some(Value::Tensor(_)) => {
                    let content = &v
                        .metadata
                        .as_ref()
                        .unwrap()
                        .plugin_data
                        .as_ref()
                        .unwrap()
                        .content;
                    let data = HParamsPluginData::decode(content.as_slice()).unwrap();
                    let json = match data.data.unwrap() {
                        HParamsData::SessionStartInfo(s) => {
                            let hparams: serde_json::Map<_, _> = s
                                .hparams
                                .iter()
                                .map(|(k, v)| {
                                    let v = match v.kind.clone().unwrap() {
                                        Kind::NumberValue(x) => serde_json::json!(x),
                                        Kind::StringValue(s) => serde_json::json!(s),
                                        Kind::BoolValue(b) => serde_json::json!(b),
                                    };
                                    (k.clone(), v)
                                })
                                .collect();
                            serde_json::json!({"session_start_info": {"hparams": hparams}})
                        }
                        HParamsData::SessionEndInfo(e) => {
                            let status =
                                ["", "STATUS_SUCCESS", "STATUS_FAILURE"][e.status as usize];
                            serde_json::json!({"session_end_info": {"status": status}})
                        }
                    };
                    hparams.insert(v.tag.clone(), json);
                }
                None => {}
            }
        }
        let by_tag = |a: &serde_json::Value, b: &serde_json::Value| {
            a["tag"].as_str().cmp(&b["tag"].as_str())
        };
        scalars.sort_by(by_tag);
        images.sort_by(by_tag);
        serde_json::json!({"scalars": scalars, "images": images, "hparams": hparams})
    }

    /// TensorBoard's reader output, less what depends on when the file was written.
    fn comparable(mut read: serde_json::Value) -> serde_json::Value {
        for info in read["hparams"].as_object_mut().unwrap().values_mut() {
            for part in info.as_object_mut().unwrap().values_mut() {
                let part = part.as_object_mut().unwrap();
                part.remove("start_time_secs");
                part.remove("end_time_secs");
            }
        }
        serde_json::json!({
            "scalars": read["scalars"], "images": read["images"], "hparams": read["hparams"]
        })
    }

    /// The committed event file (made by this logger) read by TensorBoard's own
    /// `EventAccumulator` gives `tensorboard.json`: every scalar, both images and the
    /// hyperparameters; the committed file and a fresh one read back to the same.
    #[test]
    fn tensorboards_reader_agrees_with_the_committed_fixture() {
        let dir = fixture_dir();
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("tensorboard.json")).unwrap())
                .unwrap();
        assert_eq!(expected["file_version"], proto::FILE_VERSION);
        let expected = comparable(expected);
        assert_eq!(expected["scalars"].as_array().unwrap().len(), 7);
        assert_eq!(expected["images"].as_array().unwrap().len(), 2);
        let committed = read_events(&dir.join("events.out.tfevents.fixture")).unwrap();
        assert_eq!(as_tensorboard_reads(&committed), expected);
        let temp = tempfile::tempdir().unwrap();
        let fresh = read_events(&write_run(temp.path())).unwrap();
        assert_eq!(as_tensorboard_reads(&fresh), expected);
    }

    /// Rewrites the committed event file: `cargo test -p clshost-plugin-loggers --lib --
    /// --ignored write_tensorboard_fixture`, then run `scripts/fixtures/tensorboard_read.py`.
    #[test]
    #[ignore = "regenerates a committed fixture"]
    fn write_tensorboard_fixture() {
        let temp = tempfile::tempdir().unwrap();
        let path = write_run(temp.path());
        fs::copy(path, fixture_dir().join("events.out.tfevents.fixture")).unwrap();
    }

    #[test]
    fn a_resumed_run_marks_where_it_continues() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path());
        let ctx = LoggerContext {
            run_dir: dir.path().to_string_lossy().as_ref().into(),
            state_dir: "".into(),
            resumed: true,
        };
        let config = TensorboardConfig {
            dir: "board".into(),
            images: true,
        };
        let mut logger = Tensorboard::new(config, &ctx).unwrap();
        let start = RunStart {
            name: "r".into(),
            run_dir: ctx.run_dir.clone(),
            recipe: "()".into(),
            params: RVec::new(),
            environment: RVec::new(),
            classes: RVec::new(),
            resumed: true,
            next_step: 2,
            epochs: 1,
        };
        logger.start(&start).unwrap();
        let events = read_events(logger.writer.as_ref().unwrap().path()).unwrap();
        assert_eq!(
            (events[1].step, &events[1].what),
            (
                2,
                &Some(What::SessionLog(SessionLog {
                    status: SESSION_START
                }))
            )
        );
    }

    #[test]
    fn recipe_fields_become_typed_hyperparameters() {
        let kind = |text| hparam_value(text).kind.unwrap();
        assert_eq!(kind("0.002"), Kind::NumberValue(0.002));
        assert_eq!(kind("7"), Kind::NumberValue(7.0));
        assert_eq!(kind("true"), Kind::BoolValue(true));
        assert_eq!(kind("adamw"), Kind::StringValue("adamw".into()));
    }

    #[test]
    fn statuses_map_to_the_hparams_dashboards() {
        assert_eq!(end_status("completed"), Some(Status::Success));
        assert_eq!(end_status("early_stopping"), Some(Status::Success));
        assert_eq!(end_status("failed"), Some(Status::Failure));
        assert_eq!(end_status("interrupted"), None);
    }
}
