//! The protobuf messages of a W&B transaction log (`run-<id>.wandb`) that the `wandb` logger
//! writes: the fields of `wandb_internal.Record` and its record types, declared with their field
//! numbers (as W&B's own `wandb_internal.proto` numbers them) for `prost` to encode. Only the
//! fields this logger writes are declared.

use prost::Message;

/// `wandb_internal.Record`: one entry of the log.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// The record's number in the log, from 1.
    #[prost(int64, tag = "1")]
    pub num: i64,
    /// What it records.
    #[prost(oneof = "RecordType", tags = "2, 3, 6, 17, 18, 21, 26")]
    pub record_type: Option<RecordType>,
    /// The stream (the run) it belongs to.
    #[prost(message, optional, tag = "200")]
    pub info: Option<RecordInfo>,
}

/// The `record_type` oneof of `wandb_internal.Record`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RecordType {
    /// A row of the run's history.
    #[prost(message, tag = "2")]
    History(HistoryRecord),
    /// An update of the run's summary.
    #[prost(message, tag = "3")]
    Summary(SummaryRecord),
    /// Files of the run's `files/` folder to upload.
    #[prost(message, tag = "6")]
    Files(FilesRecord),
    /// The run itself: its id, project, names and config.
    #[prost(message, tag = "17")]
    Run(RunRecord),
    /// The end of the run, with its exit code.
    #[prost(message, tag = "18")]
    Exit(RunExitRecord),
    /// The log's first record: who wrote it.
    #[prost(message, tag = "21")]
    Header(HeaderRecord),
    /// Where the run runs.
    #[prost(message, tag = "26")]
    Environment(EnvironmentRecord),
}

/// `wandb_internal._RecordInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RecordInfo {
    /// The run's id.
    #[prost(string, tag = "1")]
    pub stream_id: String,
}

/// `wandb_internal.HeaderRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct HeaderRecord {
    /// The writer and the oldest reader that can read the log.
    #[prost(message, optional, tag = "1")]
    pub version_info: Option<VersionInfo>,
}

/// `wandb_internal.VersionInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionInfo {
    /// The writer.
    #[prost(string, tag = "1")]
    pub producer: String,
    /// The oldest reader that can read the log.
    #[prost(string, tag = "2")]
    pub min_consumer: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `wandb_internal.RunRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct RunRecord {
    /// The run's id (the same for every invocation of a resumed run).
    #[prost(string, tag = "1")]
    pub run_id: String,
    /// The team or user; empty: the syncing user's default.
    #[prost(string, tag = "2")]
    pub entity: String,
    /// The project.
    #[prost(string, tag = "3")]
    pub project: String,
    /// The config.
    #[prost(message, optional, tag = "4")]
    pub config: Option<ConfigRecord>,
    /// The group.
    #[prost(string, tag = "6")]
    pub run_group: String,
    /// The job type.
    #[prost(string, tag = "7")]
    pub job_type: String,
    /// The name shown.
    #[prost(string, tag = "8")]
    pub display_name: String,
    /// The notes.
    #[prost(string, tag = "9")]
    pub notes: String,
    /// The tags.
    #[prost(string, repeated, tag = "10")]
    pub tags: Vec<String>,
    /// The machine.
    #[prost(string, tag = "13")]
    pub host: String,
    /// When this invocation started.
    #[prost(message, optional, tag = "17")]
    pub start_time: Option<Timestamp>,
    /// Whether this invocation continues a run (`resume="allow"`).
    #[prost(bool, tag = "24")]
    pub resume: bool,
}

/// `wandb_internal.ConfigRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigRecord {
    /// Keys set.
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

/// `wandb_internal.ConfigItem`, `HistoryItem` and `SummaryItem`: a key, or a path of keys
/// into nested values, and the value as JSON.
#[derive(Clone, PartialEq, Message)]
pub struct Item {
    /// The key (as the SDK writes config keys).
    #[prost(string, tag = "1")]
    pub key: String,
    /// The path of keys (as the SDK writes history and summary keys).
    #[prost(string, repeated, tag = "2")]
    pub nested_key: Vec<String>,
    /// The value, as JSON text.
    #[prost(string, tag = "16")]
    pub value_json: String,
}

/// `wandb_internal.HistoryRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryRecord {
    /// The row's values.
    #[prost(message, repeated, tag = "1")]
    pub item: Vec<Item>,
    /// The row's step.
    #[prost(message, optional, tag = "2")]
    pub step: Option<HistoryStep>,
}

/// `wandb_internal.HistoryStep`.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryStep {
    /// The step.
    #[prost(int64, tag = "1")]
    pub num: i64,
}

/// `wandb_internal.SummaryRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryRecord {
    /// Keys set.
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

/// `wandb_internal.FilesRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct FilesRecord {
    /// The files.
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<FilesItem>,
}

/// `wandb_internal.FilesItem`.
#[derive(Clone, PartialEq, Message)]
pub struct FilesItem {
    /// The path within the run's `files/` folder.
    #[prost(string, tag = "1")]
    pub path: String,
    /// When to upload it: `FilesItem.PolicyType`, 0 is NOW.
    #[prost(int32, tag = "2")]
    pub policy: i32,
}

/// `wandb_internal.RunExitRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct RunExitRecord {
    /// 0 for a run that finished.
    #[prost(int32, tag = "1")]
    pub exit_code: i32,
    /// Seconds the run ran.
    #[prost(int32, tag = "2")]
    pub runtime: i32,
}

/// `wandb_internal.EnvironmentRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct EnvironmentRecord {
    /// The operating system.
    #[prost(string, tag = "1")]
    pub os: String,
    /// When this invocation started.
    #[prost(message, optional, tag = "3")]
    pub started_at: Option<Timestamp>,
    /// The program.
    #[prost(string, tag = "6")]
    pub program: String,
    /// The machine.
    #[prost(string, tag = "12")]
    pub host: String,
}
