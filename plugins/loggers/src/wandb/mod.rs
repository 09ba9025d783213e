//! The `wandb` logger: a clshost run as a Weights & Biases offline run, which `wandb sync`
//! uploads (what the SDK writes with `WANDB_MODE=offline`).
//!
//! - **Where**: `<dir>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<run id>/` (UTC), with `dir` from
//!   `params.dir`, else `WANDB_DIR`, else the run directory; the folder holds the transaction
//!   log `run-<run id>.wandb` ([`log`]) and `files/`. `WANDB_MODE=disabled` turns the logger
//!   off.
//! - **Run**: `params.project` (else `WANDB_PROJECT`, else the recipe's name), `entity` (else
//!   `WANDB_ENTITY`, else the syncing user's default), `name` (else the run directory's name),
//!   `group`, `job_type`, `tags`, `notes`. The run id is kept in
//!   `RUN_DIR/loggers/wandb/wandb.json`: `clshost run --resume` writes a new offline folder for
//!   the same run id, marked as resuming, which `wandb sync` appends to the same W&B run.
//! - **Config**: the resolved recipe, nested by its sections (`optimizer.lr` is `lr` in
//!   `optimizer`), numbers, booleans and strings typed; the environment under `clshost`.
//! - **History**: one row per logged step (`train/loss`, `train/lr`, `train/images_per_s`),
//!   with the evaluated epoch's values (`epoch/<column>`, `epoch/epoch`) in the row of the step
//!   that ends it, each with W&B's `_step`, `_runtime` and `_timestamp`; values that are not
//!   finite are left out (JSON has no NaN). **Summary**: each row's values as they are logged,
//!   then the run's summary values at the end.
//! - **Images** (`params.images`): the sample sheet (`samples/train`) and, after each
//!   evaluation, the confusion matrix (`confusion_matrix`, `confusion_matrix/ema`) as W&B
//!   images in the history, as the SDK logs a `wandb.Image`.
//! - **Files** (`params.files`): the recipe, the sample sheet, the plots and the exports, linked
//!   (or copied) into `files/` as they are written and listed for upload.
//! - **Exit**: code 0 (completed, early stopping, time limit), 1 (failed) or 130 (interrupted;
//!   the resumed invocation's exit follows it).

pub mod log;
pub mod proto;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clshost_plugin_api::prelude::*;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use self::log::TransactionLog;
use self::proto::{
    ConfigRecord, EnvironmentRecord, FilesItem, FilesRecord, HeaderRecord, HistoryRecord,
    HistoryStep, Item, RecordType, RunExitRecord, RunRecord, SummaryRecord, Timestamp, VersionInfo,
};
use crate::images::{self, Png};
use crate::values::{FieldValue, field_value};
use crate::{not_started, unix_seconds};

/// The oldest W&B reader of the transaction log format written here, as W&B's SDK 0.31 writes
/// it in its own logs' header.
pub const MIN_CONSUMER: &str = "0.70.0";

/// The `wandb` logger.
pub struct Wandb {
    config: WandbConfig,
    /// `<dir>/wandb`.
    root: PathBuf,
    /// `RUN_DIR/loggers/wandb/wandb.json`.
    state_file: PathBuf,
    run_dir: PathBuf,
    resumed: bool,
    /// `WANDB_MODE=disabled`.
    disabled: bool,
    /// From the start on.
    run: Option<OfflineRun>,
}

/// The offline run folder this invocation writes.
struct OfflineRun {
    run_id: String,
    log: TransactionLog,
    /// `offline-run-.../files`.
    files: PathBuf,
    /// The history row not written yet: its step and values by key path.
    row: Option<(u64, BTreeMap<Vec<String>, Value>)>,
    /// The latest step given (before the first: the step before the one the run goes on from).
    step: u64,
    /// The class names, for the confusion matrix.
    classes: Vec<String>,
    started: Instant,
    /// Seconds earlier invocations ran.
    earlier_runtime: f64,
}

/// Config of [`Wandb`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct WandbConfig {
    /// The W&B project; `None` reads `WANDB_PROJECT`, else takes the recipe's name.
    pub project: Option<String>,
    /// The team or user; `None` reads `WANDB_ENTITY`, else leaves it to `wandb sync`.
    pub entity: Option<String>,
    /// The run's name; `None` takes the run directory's name.
    pub name: Option<String>,
    /// The run's group; `None` reads `WANDB_RUN_GROUP`.
    pub group: Option<String>,
    /// The run's job type; `None` reads `WANDB_JOB_TYPE`.
    pub job_type: Option<String>,
    /// The run's tags; empty reads `WANDB_TAGS` (comma-separated).
    pub tags: Vec<String>,
    /// The run's notes; `None` reads `WANDB_NOTES`.
    pub notes: Option<String>,
    /// Where the `wandb/` folder goes; `None` reads `WANDB_DIR`, else the run directory.
    pub dir: Option<String>,
    /// Put the recipe, the sample sheet, the plots and the exports in the run's files.
    pub files: bool,
    /// Log the confusion matrix after each evaluation and the sample sheet as images.
    pub images: bool,
}

impl Default for WandbConfig {
    fn default() -> Self {
        WandbConfig {
            project: None,
            entity: None,
            name: None,
            group: None,
            job_type: None,
            tags: Vec::new(),
            notes: None,
            dir: None,
            files: true,
            images: true,
        }
    }
}

/// The W&B run a clshost run logs to, as kept in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Kept {
    run_id: String,
    /// Seconds the invocations that ended ran.
    runtime: f64,
}

impl Component for Wandb {
    const NAME: &'static str = "wandb";
    const DESCRIPTION: &'static str =
        "Weights & Biases offline run (wandb sync uploads it): config, history, summary, files";
    type Config = WandbConfig;

    fn check(config: &WandbConfig) -> Result<(), PluginError> {
        for (field, value) in [
            ("project", &config.project),
            ("entity", &config.entity),
            ("dir", &config.dir),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(PluginError::config(field, "must not be empty"));
            }
        }
        Ok(())
    }
}

/// `value`, else the environment variable `var` when set and not empty.
fn or_env(value: &Option<String>, var: &str) -> Option<String> {
    value
        .clone()
        .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
}

/// A new run id: 8 characters of `[a-z0-9]`, as W&B's, from the clock and the process.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    let mut n = hasher.finish();
    (0..8)
        .map(|_| {
            let c = b"abcdefghijklmnopqrstuvwxyz0123456789"[(n % 36) as usize];
            n /= 36;
            c as char
        })
        .collect()
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// `t` as `YYYYmmdd_HHMMSS` (UTC), as W&B names run folders.
fn folder_time(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A recipe field as JSON ([`field_value`]).
fn json_value(ron_text: &str) -> Value {
    match field_value(ron_text) {
        FieldValue::Integer(n) => json!(n),
        FieldValue::Number(x) => json!(x),
        FieldValue::Bool(b) => json!(b),
        FieldValue::Text(s) => json!(s),
    }
}

/// The recipe's fields (dotted paths) as W&B config items, one per top-level section, nested
/// by the paths; and `clshost` with the environment.
pub fn config_items(params: &[TextEntry], environment: &[TextEntry]) -> Vec<Item> {
    let mut root = Map::new();
    for p in params {
        let mut node = &mut root;
        let mut keys = p.name.split('.').peekable();
        while let Some(key) = keys.next() {
            if keys.peek().is_none() {
                node.insert(key.to_string(), json_value(&p.value));
                break;
            }
            let child = node
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            node = child.as_object_mut().expect("made an object above");
        }
    }
    let env: Map<String, Value> = environment
        .iter()
        .map(|e| (e.name.to_string(), json!(e.value.as_str())))
        .collect();
    root.insert("clshost".into(), Value::Object(env));
    root.into_iter()
        .map(|(key, value)| Item {
            key,
            nested_key: Vec::new(),
            value_json: value.to_string(),
        })
        .collect()
}

/// The exit code W&B shows for a run's end status.
pub fn exit_code(status: &str) -> i32 {
    match status {
        "completed" | "early_stopping" | "time_limit" => 0,
        "interrupted" => 130,
        _ => 1,
    }
}

impl Wandb {
    fn run(&mut self) -> Result<&mut OfflineRun, PluginError> {
        self.run.as_mut().ok_or_else(not_started)
    }

    /// The run id of the state file when resuming, else a new one.
    fn kept(&self) -> Result<Kept, PluginError> {
        if self.resumed
            && let Ok(text) = fs::read_to_string(&self.state_file)
        {
            return serde_json::from_str(&text)
                .map_err(|e| PluginError::io_at(&self.state_file, e));
        }
        Ok(Kept {
            run_id: new_run_id(),
            runtime: 0.0,
        })
    }

    fn save(&self, kept: &Kept) -> Result<(), PluginError> {
        let text = serde_json::to_string_pretty(kept).map_err(PluginError::internal)?;
        fs::write(&self.state_file, text).map_err(|e| PluginError::io_at(&self.state_file, e))
    }
}

impl OfflineRun {
    /// Adds `values` to the row of `step`, writing the pending row first when it is another
    /// step's.
    fn add(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (Vec<String>, Value)>,
    ) -> Result<(), PluginError> {
        if self.row.as_ref().is_some_and(|(s, _)| *s != step) {
            self.flush()?;
        }
        self.step = step;
        let (_, row) = self.row.get_or_insert_with(|| (step, BTreeMap::new()));
        row.extend(values);
        Ok(())
    }

    /// Adds the finite ones of `scalars` to the row of `step`.
    fn add_scalars(
        &mut self,
        step: u64,
        scalars: impl IntoIterator<Item = (String, f64)>,
    ) -> Result<(), PluginError> {
        let values = scalars
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(key, v)| (vec![key], json!(v)));
        self.add(step, values)
    }

    /// Adds the image `png` as `key` to the row of `step`, as W&B's SDK logs a `wandb.Image`:
    /// the file in `files/media/images/`, listed for upload, and an `image-file` value.
    fn add_image(&mut self, key: &str, png: &Png, step: u64) -> Result<(), PluginError> {
        let sha: String = Sha256::digest(&png.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let relative = format!("media/images/{key}_{step}_{}.png", &sha[..20]);
        let target = self.files.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| PluginError::io_at(parent, e))?;
        }
        fs::write(&target, &png.bytes).map_err(|e| PluginError::io_at(&target, e))?;
        self.log.append(RecordType::Files(FilesRecord {
            files: vec![FilesItem {
                path: relative.clone(),
                policy: 0,
            }],
        }))?;
        let fields = [
            ("_type", json!("image-file")),
            ("format", json!("png")),
            ("width", json!(png.width)),
            ("height", json!(png.height)),
            ("sha256", json!(sha)),
            ("size", json!(png.bytes.len())),
            ("path", json!(relative)),
        ];
        let values = fields
            .into_iter()
            .map(|(field, v)| (vec![key.to_string(), field.to_string()], v));
        self.add(step, values)
    }

    /// Writes the pending row, and the summary update W&B's SDK writes with it.
    fn flush(&mut self) -> Result<(), PluginError> {
        let Some((step, row)) = self.row.take() else {
            return Ok(());
        };
        let runtime = self.earlier_runtime + self.started.elapsed().as_secs_f64();
        let items: Vec<Item> = row
            .into_iter()
            .chain([
                (vec!["_step".to_string()], json!(step)),
                (vec!["_runtime".to_string()], json!(runtime)),
                (vec!["_timestamp".to_string()], json!(unix_seconds())),
            ])
            .map(|(path, value)| Item {
                key: String::new(),
                nested_key: path,
                value_json: value.to_string(),
            })
            .collect();
        self.log.append(RecordType::Summary(SummaryRecord {
            update: items.clone(),
        }))?;
        self.log.append(RecordType::History(HistoryRecord {
            item: items,
            step: Some(HistoryStep { num: step as i64 }),
        }))
    }
}

impl Logger for Wandb {
    fn new(config: WandbConfig, ctx: &LoggerContext) -> Result<Self, PluginError> {
        let run_dir = PathBuf::from(ctx.run_dir.as_str());
        let dir = or_env(&config.dir, "WANDB_DIR").map_or_else(|| run_dir.clone(), PathBuf::from);
        Ok(Wandb {
            root: dir.join("wandb"),
            state_file: Path::new(ctx.state_dir.as_str()).join("wandb.json"),
            resumed: ctx.resumed,
            disabled: std::env::var("WANDB_MODE").is_ok_and(|m| m == "disabled"),
            run_dir,
            config,
            run: None,
        })
    }

    fn start(&mut self, start: &RunStart) -> Result<(), PluginError> {
        if self.disabled {
            return Ok(());
        }
        let kept = self.kept()?;
        self.save(&kept)?;
        let now = SystemTime::now();
        let folder = self
            .root
            .join(format!("offline-run-{}-{}", folder_time(now), kept.run_id));
        let files = folder.join("files");
        for sub in [&files, &folder.join("logs"), &folder.join("tmp")] {
            fs::create_dir_all(sub).map_err(|e| PluginError::io_at(sub, e))?;
        }
        let latest = self.root.join("latest-run");
        let _ = fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(folder.file_name().unwrap_or_default(), &latest);
        let log_path = folder.join(format!("run-{}.wandb", kept.run_id));
        let mut log = TransactionLog::create(&log_path, &kept.run_id)?;
        log.append(RecordType::Header(HeaderRecord {
            version_info: Some(VersionInfo {
                producer: format!("clshost-plugin-loggers {}", env!("CARGO_PKG_VERSION")),
                min_consumer: MIN_CONSUMER.into(),
            }),
        }))?;
        let c = &self.config;
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let tags = if c.tags.is_empty() {
            std::env::var("WANDB_TAGS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        } else {
            c.tags.clone()
        };
        let run_dir_name = self
            .run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        log.append(RecordType::Run(RunRecord {
            run_id: kept.run_id.clone(),
            entity: or_env(&c.entity, "WANDB_ENTITY").unwrap_or_default(),
            project: or_env(&c.project, "WANDB_PROJECT").unwrap_or_else(|| start.name.to_string()),
            config: Some(ConfigRecord {
                update: config_items(&start.params, &start.environment),
            }),
            run_group: or_env(&c.group, "WANDB_RUN_GROUP").unwrap_or_default(),
            job_type: or_env(&c.job_type, "WANDB_JOB_TYPE").unwrap_or_default(),
            display_name: c.name.clone().unwrap_or(run_dir_name),
            notes: or_env(&c.notes, "WANDB_NOTES").unwrap_or_default(),
            tags,
            host: host.clone(),
            start_time: Some(timestamp(now)),
            resume: self.resumed,
        }))?;
        let os = start
            .environment
            .iter()
            .find(|e| e.name.as_str() == "os")
            .map(|e| e.value.to_string())
            .unwrap_or_default();
        log.append(RecordType::Environment(EnvironmentRecord {
            os,
            started_at: Some(timestamp(now)),
            program: "clshost".into(),
            host,
        }))?;
        self.run = Some(OfflineRun {
            run_id: kept.run_id,
            log,
            files,
            row: None,
            step: start.next_step.saturating_sub(1),
            classes: start.classes.iter().map(|c| c.to_string()).collect(),
            started: Instant::now(),
            earlier_runtime: kept.runtime,
        });
        Ok(())
    }

    fn step(&mut self, step: &StepLog) -> Result<(), PluginError> {
        if self.disabled {
            return Ok(());
        }
        let values = step.scalars.iter().map(|s| (s.name.to_string(), s.value));
        self.run()?.add_scalars(step.step, values)
    }

    fn epoch(&mut self, epoch: &EpochLog) -> Result<(), PluginError> {
        if self.disabled {
            return Ok(());
        }
        let values = std::iter::once(("epoch".to_string(), f64::from(epoch.epoch)))
            .chain(epoch.scalars.iter().map(|s| (s.name.to_string(), s.value)))
            .map(|(name, v)| (format!("epoch/{name}"), v));
        let images = self.config.images;
        let run = self.run()?;
        run.add_scalars(epoch.step, values)?;
        if images {
            for (key, reports) in [
                ("confusion_matrix", &epoch.reports),
                ("confusion_matrix/ema", &epoch.ema_reports),
            ] {
                if let Some(png) = images::confusion_png(reports, &run.classes)? {
                    run.add_image(key, &png, epoch.step)?;
                }
            }
        }
        Ok(())
    }

    fn file(&mut self, file: &FileLog) -> Result<(), PluginError> {
        let keep = matches!(file.kind.as_str(), "recipe" | "samples" | "plot" | "export");
        let source = Path::new(file.path.as_str());
        if !self.disabled && self.config.images && file.kind.as_str() == "samples" {
            let run = self.run()?;
            let step = run.step;
            run.add_image("samples/train", &images::read_png(source)?, step)?;
        }
        if self.disabled || !keep || !self.config.files {
            return Ok(());
        }
        let run = self.run()?;
        let target = run.files.join(file.relative.as_str());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| PluginError::io_at(parent, e))?;
        }
        let _ = fs::remove_file(&target);
        if fs::hard_link(source, &target).is_err() {
            fs::copy(source, &target).map_err(|e| PluginError::io_at(&target, e))?;
        }
        run.log.append(RecordType::Files(FilesRecord {
            files: vec![FilesItem {
                path: file.relative.to_string(),
                policy: 0,
            }],
        }))
    }

    fn end(&mut self, end: &RunEnd) -> Result<(), PluginError> {
        if self.disabled {
            return Ok(());
        }
        let run = self.run()?;
        run.flush()?;
        let summary: Vec<Item> = end
            .summary
            .iter()
            .filter(|s| s.value.is_finite())
            .map(|s| Item {
                key: String::new(),
                nested_key: vec![s.name.to_string()],
                value_json: json!(s.value).to_string(),
            })
            .collect();
        if !summary.is_empty() {
            run.log
                .append(RecordType::Summary(SummaryRecord { update: summary }))?;
        }
        let runtime = run.earlier_runtime + run.started.elapsed().as_secs_f64();
        run.log.append(RecordType::Exit(RunExitRecord {
            exit_code: exit_code(end.status.as_str()),
            runtime: runtime as i32,
        }))?;
        let kept = Kept {
            run_id: run.run_id.clone(),
            runtime,
        };
        self.save(&kept)
    }
}
