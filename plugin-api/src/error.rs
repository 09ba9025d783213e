//! The structured error every plugin entry point returns.

use std::fmt;

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RString};

/// What kind of failure a [`PluginError`] reports.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The component's RON config is malformed or holds an invalid value.
    Config,
    /// A tensor, image or file handed to the component is unusable (wrong shape, bad data).
    Input,
    /// The request is valid but this component or build cannot do it (e.g. a missing backend).
    Unsupported,
    /// The compute device failed or is unavailable.
    Device,
    /// Reading or writing a file failed.
    Io,
    /// The component panicked; the panic was caught at the ABI boundary.
    Panic,
    /// Any other failure inside the component.
    Internal,
}

impl ErrorKind {
    /// A lower-case word for the kind, as used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Input => "input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Device => "device",
            ErrorKind::Io => "io",
            ErrorKind::Panic => "panic",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A 1-based line and column in a piece of RON text.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextPosition {
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub column: u32,
}

/// An error returned across the ABI: a kind, a message, and for config errors the field path
/// (`scale.0`, `policy`) and the position in the config text where they are known.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// One line saying what went wrong, without the field path or position.
    pub message: RString,
    /// Dotted path of the offending config field, empty when not about a field.
    pub field_path: RString,
    /// Where in the config text the problem is, when known.
    pub position: ROption<TextPosition>,
}

impl PluginError {
    /// An error of `kind` with `message` and no field path or position.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        PluginError {
            kind,
            message: RString::from(one_line(&message.to_string())),
            field_path: RString::new(),
            position: ROption::RNone,
        }
    }

    /// A config error about the field at `field_path`.
    pub fn config(field_path: impl Into<String>, message: impl fmt::Display) -> Self {
        PluginError {
            field_path: RString::from(field_path.into()),
            ..PluginError::new(ErrorKind::Config, message)
        }
    }

    /// An error about unusable input data.
    pub fn input(message: impl fmt::Display) -> Self {
        PluginError::new(ErrorKind::Input, message)
    }

    /// A request this component or build cannot serve.
    pub fn unsupported(message: impl fmt::Display) -> Self {
        PluginError::new(ErrorKind::Unsupported, message)
    }

    /// A failure of the compute device.
    pub fn device(message: impl fmt::Display) -> Self {
        PluginError::new(ErrorKind::Device, message)
    }

    /// A failed file operation.
    pub fn io(message: impl fmt::Display) -> Self {
        PluginError::new(ErrorKind::Io, message)
    }

    /// A failed operation on the file at `path`: `<path>: <cause>`.
    pub fn io_at(path: &std::path::Path, cause: impl fmt::Display) -> Self {
        PluginError::io(format!("{}: {cause}", path.display()))
    }

    /// Any other failure.
    pub fn internal(message: impl fmt::Display) -> Self {
        PluginError::new(ErrorKind::Internal, message)
    }

    /// The same error with `position` attached.
    pub fn at(mut self, line: u32, column: u32) -> Self {
        self.position = ROption::RSome(TextPosition { line, column });
        self
    }

    /// The same error with `prefix` prepended to its field path (`prefix.path`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field_path = if self.field_path.is_empty() {
            RString::from(prefix)
        } else {
            RString::from(format!("{prefix}.{}", self.field_path))
        };
        self
    }
}

/// The message of a caught panic's payload (`panic!`'s text), or "panic with a non-string
/// payload".
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Collapses a multi-line message to one line, so every error prints as one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ROption::RSome(p) = self.position {
            write!(f, "line {}, column {}: ", p.line, p.column)?;
        }
        if !self.field_path.is_empty() {
            write!(f, "`{}`: ", self.field_path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_path_and_position() {
        let e = PluginError::config("scale", "must be\n  increasing")
            .at(3, 7)
            .within("params");
        assert_eq!(
            e.to_string(),
            "line 3, column 7: `params.scale`: must be increasing"
        );
    }
}
