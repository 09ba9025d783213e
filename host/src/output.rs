//! Writing command output to stdout, treating a closed pipe (`clshost plugins | head`) as a
//! normal end rather than an error, and the borderless tables the listing commands print.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets};
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

/// A borderless table with two spaces between columns and none at the line ends.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// The table's lines without the padding after the last column.
pub fn render(table: &Table) -> String {
    table
        .lines()
        .map(|line| line.trim_end().to_string() + "\n")
        .collect()
}
