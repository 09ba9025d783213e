//! The run directory and crash-safe file writes.
//!
//! A run writes into `<output>/<recipe name>/<YYYYmmdd-HHMMSS>/` (UTC; `-2`, `-3`, ... appended
//! when two runs start in the same second). Every file in it is written with [`atomic_write`]:
//! a temporary file next to the target (named after the writing process), flushed to disk, then
//! renamed over it, so a crash or a full disk mid-write leaves the previous version intact,
//! never a torn one.
//!
//! A [`RunDir`] holds an advisory lock on the directory's `.lock` file for as long as it lives
//! (the whole `clshost run` process), so a second process training into the same directory (a
//! `--resume` of a live run, or two resumes at once) is refused with the holder's PID instead of
//! both writing the same files.

use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file or folder of the run directory could not be written.
///
/// Its message names the cause, which is therefore not also its `source()`: `error: {err:#}`
/// would print it twice.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {cause}", path.display())]
pub struct WriteError {
    /// The file or folder.
    pub path: PathBuf,
    /// The operating system's reason.
    pub cause: io::Error,
}

/// A run directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file or folder of it could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Another process holds the directory's lock.
    #[error(
        "{} is in use by {holder}: wait for that run to end (or stop it with Ctrl-C / `kill -INT`) \
         before resuming it",
        path.display()
    )]
    Locked {
        /// The run directory.
        path: PathBuf,
        /// Who holds it, as its lock file says (`process 4242 on host gpu1`).
        holder: String,
    },
}

/// Turns an I/O error about `path` into a [`WriteError`].
pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |cause| WriteError {
        path: path.to_path_buf(),
        cause,
    }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the folder.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let temp = temp_beside(path);
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        rename_synced(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(at(path))
}

/// Gives the finished file `existing` a second name, `path`, atomically: a hard link, renamed
/// over `path`, so the two names share one copy on disk. Where the file system has no hard
/// links, writes `bytes` (the file's content) with [`atomic_write`] instead. Files are only
/// ever replaced by rename, never rewritten in place, so one name's later update leaves the
/// other's content as it was.
pub fn atomic_link(existing: &Path, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let temp = temp_beside(path);
    let _ = fs::remove_file(&temp);
    if fs::hard_link(existing, &temp).is_err() {
        return atomic_write(path, bytes);
    }
    let result = rename_synced(&temp, path);
    // A failed rename leaves the link, and rename(2) leaves both names when they already were
    // one file.
    let _ = fs::remove_file(&temp);
    result.map_err(at(path))
}

/// The temporary file that [`atomic_write`] and [`atomic_link`] rename over `path`: hidden,
/// beside it, named after the writing process.
fn temp_beside(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.{}.tmp", std::process::id()))
}

/// Moves the finished file `from` to `to` for good: syncs its data, renames it (replacing
/// `to` atomically), then syncs the folder so the rename survives a crash. `to`'s folder is
/// created if needed.
pub fn publish(from: &Path, to: &Path) -> Result<(), WriteError> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    File::open(from)
        .and_then(|f| f.sync_all())
        .map_err(at(from))?;
    rename_synced(from, to).map_err(at(to))
}

/// Renames `from` over `to` and syncs `to`'s folder.
fn rename_synced(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    if let Ok(d) = File::open(to.parent().unwrap_or(Path::new("."))) {
        // Persist the rename; not every platform can sync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Takes the advisory lock of the run directory `dir` (its `.lock` file) and records this
/// process as the holder; refuses when another process holds it.
fn lock(dir: &Path) -> Result<File, RunDirError> {
    let path = dir.join(".lock");
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(at(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                h => h.to_string(),
            };
            return Err(RunDirError::Locked {
                path: dir.to_path_buf(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(at(&path)(e).into()),
    }
    let holder = format!(
        "process {} on host {}\n",
        std::process::id(),
        gethostname::gethostname().to_string_lossy()
    );
    (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(holder.as_bytes())?;
        file.sync_all()
    })()
    .map_err(at(&path))?;
    Ok(file)
}

/// `secs` since the Unix epoch as `YYYYmmdd-HHMMSS` (UTC).
pub fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A run's directory, locked for the life of this value.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// The locked `.lock` file; the lock goes with it.
    _lock: File,
}

impl RunDir {
    /// Creates `output/name/<timestamp>`, locks it and checks that files can be written in it.
    pub fn create(output: &Path, name: &str) -> Result<RunDir, RunDirError> {
        let parent = output.join(name);
        fs::create_dir_all(&parent).map_err(at(&parent))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stamp = timestamp(secs);
        let mut n = 1;
        loop {
            let path = match n {
                1 => parent.join(&stamp),
                _ => parent.join(format!("{stamp}-{n}")),
            };
            match fs::create_dir(&path) {
                Ok(()) => return RunDir::open(&path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(at(&path)(e).into()),
            }
        }
    }

    /// An existing run directory (to resume), locked and checked to be writable.
    pub fn open(path: &Path) -> Result<RunDir, RunDirError> {
        let dir = RunDir {
            path: path.to_path_buf(),
            _lock: lock(path)?,
        };
        dir.probe()?;
        Ok(dir)
    }

    /// Writes and removes a small file, so an unwritable directory or a full disk is found
    /// before any work.
    pub fn probe(&self) -> Result<(), WriteError> {
        let probe = self.path.join(".write-probe");
        atomic_write(&probe, &[0u8; 4096])?;
        fs::remove_file(&probe).map_err(at(&probe))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A sub-directory of it, created if needed.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, WriteError> {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).map_err(at(&dir))?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        atomic_write(&path, b"good").unwrap();
        // A directory where the temp file would go makes the write fail before the rename.
        fs::create_dir(dir.path().join(format!(".a.{}.tmp", std::process::id()))).unwrap();
        let err = atomic_write(&path, b"bad").unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(fs::read(&path).unwrap(), b"good");
        // The cause is in the message once, also as the binary prints errors (`{:#}`).
        let cause = err.cause.to_string();
        let printed = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(printed.matches(&cause).count(), 1, "{printed}");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_782_400 + 3661), "20000229-010101");
        assert_eq!(timestamp(1_798_761_599), "20261231-235959");
    }

    #[test]
    fn runs_in_the_same_second_get_distinct_directories() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunDir::create(dir.path(), "r").unwrap();
        let b = RunDir::create(dir.path(), "r").unwrap();
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(dir.path().join("r")));
    }

    #[test]
    fn a_locked_run_directory_is_refused_with_its_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunDir::create(dir.path(), "r").unwrap();
        let err = RunDir::open(first.path()).unwrap_err().to_string();
        let holder = format!("process {} on host ", std::process::id());
        assert!(
            err.starts_with(&format!("{} is in use by {holder}", first.path().display())),
            "{err}"
        );
        let path = first.path().to_path_buf();
        drop(first);
        assert_eq!(RunDir::open(&path).unwrap().path(), path);
    }
}
