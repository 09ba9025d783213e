//! Writing command output to stdout, treating a closed pipe (`clshost plugins | head`) as a
//! normal end rather than an error.

use std::io::{self, Write};

use serde::Serialize;

/// Writes `text` to stdout. A reader that went away is not an error.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints `report` as one line of JSON when `json` is set, else as `text` renders it: the output
/// of the benchmark commands, whose JSON lines scripts collect.
pub fn print_report<T: Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> io::Result<()> {
    let out = if json {
        serde_json::to_string(report)? + "\n"
    } else {
        text(report)
    };
    print(&out)
}
