//! The protobuf messages of a TensorBoard event file that the `tensorboard` logger writes: the
//! fields of tensorflow's `event.proto`, `summary.proto` and `tensor.proto`, and of
//! TensorBoard's hparams plugin (`plugin_data.proto`, with `google.protobuf.Value`), declared
//! with their field numbers for `prost` to encode. Only the fields this logger writes are
//! declared; a reader skips the rest.

use std::collections::BTreeMap;

use prost::Message;

/// The file version TensorBoard expects in the first event of a file.
pub const FILE_VERSION: &str = "brain.Event:2";
/// `SessionLog.SessionStatus.START`.
pub const SESSION_START: i32 = 1;
/// `tensorflow.DataType.DT_FLOAT`.
pub const DT_FLOAT: i32 = 1;
/// The hparams plugin's name in summary metadata.
pub const HPARAMS_PLUGIN: &str = "hparams";
/// The tag of the hparams session start summary.
pub const SESSION_START_INFO_TAG: &str = "_hparams_/session_start_info";
/// The tag of the hparams session end summary.
pub const SESSION_END_INFO_TAG: &str = "_hparams_/session_end_info";

/// `tensorflow.Event`.
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

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The series name.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin reads the value, for plugin data such as hparams.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value.
    #[prost(oneof = "Value", tags = "2, 4, 8")]
    pub value: Option<Value>,
}

/// The `value` oneof of `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// An encoded image.
    #[prost(message, tag = "4")]
    Image(Image),
    /// A tensor (plugin data carries an empty one).
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `tensorflow.Summary.Image`.
#[derive(Clone, PartialEq, Message)]
pub struct Image {
    /// Height in pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Width in pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// Channels: 3 is RGB.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// The PNG file's bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    /// The plugin that reads the value, and its data.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    /// The plugin's name.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// The plugin's serialized data.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorflow.TensorProto`: the type and shape, enough for the empty tensor of plugin data.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// `tensorflow.DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShape {
    /// The dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, Message)]
pub struct Dim {
    /// The size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionLog {
    /// `SessionLog.SessionStatus`: 1 is START.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct HParamsPluginData {
    /// The plugin data version, 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// The session's start or end.
    #[prost(oneof = "HParamsData", tags = "3, 4")]
    pub data: Option<HParamsData>,
}

/// The `data` oneof of `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HParamsData {
    /// A session (run) starts, with its hyperparameters.
    #[prost(message, tag = "3")]
    SessionStartInfo(SessionStartInfo),
    /// A session ends.
    #[prost(message, tag = "4")]
    SessionEndInfo(SessionEndInfo),
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionStartInfo {
    /// The hyperparameters by name.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtoValue>,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionEndInfo {
    /// `tensorboard.hparams.Status`.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `tensorboard.hparams.Status`, the values this logger writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Finished.
    Success = 1,
    /// Failed.
    Failure = 2,
}

/// `google.protobuf.Value`, the kinds a hyperparameter takes.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoValue {
    /// The value.
    #[prost(oneof = "Kind", tags = "2, 3, 4")]
    pub kind: Option<Kind>,
}

/// The `kind` oneof of `google.protobuf.Value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A number.
    #[prost(double, tag = "2")]
    NumberValue(f64),
    /// A string.
    #[prost(string, tag = "3")]
    StringValue(String),
    /// A boolean.
    #[prost(bool, tag = "4")]
    BoolValue(bool),
}
