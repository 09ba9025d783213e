//! Writing command output to stdout, treating a closed pipe (`clshost plugins | head`) as a
//! normal end rather than an error.

use std::io::{self, Write};

/// Writes `text` to stdout. A reader that went away is not an error.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
