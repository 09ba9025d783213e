//! Getting a checkpoint's bytes over HTTP and checking them against the hash its name carries.
//!
//! A download streams into `.<file>.<pid>.part` next to its destination, hashing as it goes,
//! and is renamed over the destination only when every byte arrived and the hash matches; on
//! any failure the temporary file is deleted. The cache therefore holds whole, checked files
//! or nothing.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::rundir::{WriteError, at, publish};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for the response's headers once connected.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The expected start of a file's SHA-256 that `file_name` carries, by torch.hub's rule (the
/// first `-<hex>.` in the name, lower-case hex): `resnet50-11ad3fa6.pth` gives `11ad3fa6`;
/// `tiny.pth` and `net-v2.pth` give none, and nothing is checked.
pub(crate) fn hash_prefix(file_name: &str) -> Option<&str> {
    for (dash, _) in file_name.match_indices('-') {
        let rest = &file_name[dash + 1..];
        let digits = rest
            .bytes()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .count();
        if rest.as_bytes().get(digits) == Some(&b'.') {
            // torch.hub stops at the first match, even an empty one (which checks nothing).
            return (digits > 0).then(|| &rest[..digits]);
        }
    }
    None
}

/// The SHA-256 of the file at `path`, in lower-case hex, read in pieces.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hex(hasher.finalize().as_slice())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a download put nothing in place.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server could not be reached or did not send the whole file; the reason.
    Fetch(String),
    /// The file arrived but its SHA-256 (`actual`) does not start with the expected prefix.
    Corrupt {
        /// The whole SHA-256 of what arrived.
        actual: String,
    },
    /// The file could not be written.
    Write(WriteError),
}

impl From<WriteError> for Failure {
    fn from(e: WriteError) -> Self {
        Failure::Write(e)
    }
}

/// Downloads `url` to `dest`, whose SHA-256 must start with `expected` when given; shows a
/// progress bar on stderr when `progress` is set.
pub(crate) fn download(
    url: &str,
    dest: &Path,
    expected: Option<&str>,
    progress: bool,
) -> Result<(), Failure> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(at(dir))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.part", std::process::id()));
    tracing::info!("downloading {url} to {}", dest.display());
    let result = fetch(url, &temp, &name, progress).and_then(|actual| match expected {
        Some(prefix) if !actual.starts_with(prefix) => Err(Failure::Corrupt { actual }),
        _ => Ok(publish(&temp, dest)?),
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Streams `url` into the new file `temp` and returns the SHA-256 of what arrived.
fn fetch(url: &str, temp: &Path, name: &str, progress: bool) -> Result<String, Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(RESPONSE_TIMEOUT))
        .user_agent(concat!("clshost/", env!("CARGO_PKG_VERSION")))
        // The bytes of the file itself, as Content-Length counts them (hf-hub turns on gzip).
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| Failure::Fetch(cause(&e)))?;
    let total = response.body().content_length();
    let bar = progress_bar(progress, total, name);
    let mut body = response.body_mut().as_reader();
    let mut file = File::create(temp).map_err(at(temp))?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(Failure::Fetch(format!(
                    "the transfer broke off after {received} bytes: {}",
                    cause(&ureq::Error::from(e))
                )));
            }
        };
        file.write_all(&buf[..n]).map_err(at(temp))?;
        hasher.update(&buf[..n]);
        received += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    if let Some(total) = total
        && received != total
    {
        return Err(Failure::Fetch(format!(
            "the server sent {received} of {total} bytes"
        )));
    }
    file.sync_all().map_err(at(temp))?;
    Ok(hex(hasher.finalize().as_slice()))
}

/// A bar counting the bytes of `name` on stderr, or a hidden one when `show` is false.
pub(super) fn progress_bar(show: bool, total: Option<u64>, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = match total {
        Some(_) => "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        None => "{msg} {spinner} {bytes} {bytes_per_sec}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(format!("downloading {name}"));
    bar
}

/// What went wrong, in words: the HTTP status, or the operating system's reason.
pub(super) fn cause(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("HTTP status {code}"),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_prefix_is_the_first_dash_hex_dot_of_the_name_as_in_torch_hub() {
        assert_eq!(hash_prefix("resnet50-11ad3fa6.pth"), Some("11ad3fa6"));
        assert_eq!(
            hash_prefix("mobilenet_v3-large-8738ca79.pth"),
            Some("8738ca79")
        );
        assert_eq!(hash_prefix("tiny-0a1b.tar.gz"), Some("0a1b"));
        assert_eq!(hash_prefix("tiny.pth"), None);
        assert_eq!(hash_prefix("net-v2.pth"), None);
        // Upper-case hex is not a hash in torch.hub's rule, and an empty match ends the search.
        assert_eq!(hash_prefix("net-ABCD.pth"), None);
        assert_eq!(hash_prefix("a-.b-cafe.pth"), None);
    }

    #[test]
    fn sha256_of_a_file_read_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![7u8; 200_000]).unwrap();
        let whole = hex(Sha256::digest(vec![7u8; 200_000]).as_slice());
        assert_eq!(sha256_file(&path).unwrap(), whole);
        assert_eq!(
            hex(Sha256::digest(b"abc").as_slice()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
