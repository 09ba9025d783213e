//! Top-k checkpoints: the `k` best evaluated epochs by the monitored metric, each kept as
//! `checkpoints/epoch-NNN.ckpt` (the full state after that epoch, so any of them can be
//! resumed from or exported).
//!
//! An evaluation enters the list when it has fewer than `k` entries or when its value is
//! strictly better than the worst kept one (the value is the one `best` is chosen by: the
//! better of the raw and EMA weights; ties keep the earlier epoch; `min_delta` does not apply;
//! a non-finite value never enters). The list lives in the host state of every checkpoint, so
//! a resumed run continues it. The trainer writes the entering epoch's file before `best` and
//! `last`, and only then deletes the files that are no longer listed ([`prune`]): a crash or a
//! full disk at any point leaves every listed checkpoint on disk.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::early::Direction;
use crate::rundir::{WriteError, at};

/// One kept checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The epoch, from 1.
    pub epoch: u32,
    /// Its monitored value.
    pub value: f64,
}

/// The file name of the top-k checkpoint of `epoch` (from 1): `epoch-001.ckpt`.
pub fn file_name(epoch: u32) -> String {
    format!("epoch-{epoch:03}.ckpt")
}

/// The epoch of a top-k checkpoint's file name.
fn epoch_of(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("epoch-")?.strip_suffix(".ckpt")?;
    (digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Offers the evaluation of `epoch` to `kept` (best first, at most `k` long); `true` when it
/// entered, so its checkpoint is to be written.
pub fn offer(kept: &mut Vec<Kept>, k: u32, direction: Direction, epoch: u32, value: f64) -> bool {
    let k = k as usize;
    if k == 0 || !value.is_finite() {
        return false;
    }
    let at = kept
        .iter()
        .position(|e| direction.better(value, e.value))
        .unwrap_or(kept.len());
    if at >= k {
        return false;
    }
    kept.insert(at, Kept { epoch, value });
    kept.truncate(k);
    true
}

/// Deletes the top-k checkpoint files in `dir` whose epoch is not in `kept`.
pub fn prune(dir: &Path, kept: &[Kept]) -> Result<(), WriteError> {
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let name = entry.file_name();
        let Some(epoch) = epoch_of(&name.to_string_lossy()) else {
            continue;
        };
        if !kept.iter().any(|k| k.epoch == epoch) {
            let path = entry.path();
            fs::remove_file(&path).map_err(at(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(kept: &[Kept]) -> Vec<u32> {
        kept.iter().map(|k| k.epoch).collect()
    }

    #[test]
    fn keeps_the_k_best_in_order_and_ties_keep_the_earlier() {
        let mut kept = Vec::new();
        let max = Direction::Max;
        assert!(offer(&mut kept, 2, max, 1, 0.5));
        assert!(offer(&mut kept, 2, max, 2, 0.7));
        assert_eq!(epochs(&kept), [2, 1]);
        assert!(
            !offer(&mut kept, 2, max, 3, 0.5),
            "a tie with the worst stays out"
        );
        assert!(offer(&mut kept, 2, max, 4, 0.6));
        assert_eq!(epochs(&kept), [2, 4]);
        assert!(!offer(&mut kept, 2, max, 5, f64::NAN));
        assert!(!offer(&mut kept, 0, max, 6, 1.0));
        let mut low = Vec::new();
        offer(&mut low, 1, Direction::Min, 1, 0.3);
        assert!(offer(&mut low, 1, Direction::Min, 2, 0.2));
        assert_eq!(epochs(&low), [2]);
    }

    #[test]
    fn file_names_round_trip_and_others_are_ignored() {
        assert_eq!(file_name(7), "epoch-007.ckpt");
        assert_eq!(file_name(1234), "epoch-1234.ckpt");
        assert_eq!(epoch_of("epoch-1234.ckpt"), Some(1234));
        assert_eq!(epoch_of("epoch-7.ckpt"), None);
        assert_eq!(epoch_of("last.ckpt"), None);
        assert_eq!(epoch_of(".epoch-001.ckpt.tmp"), None);
    }

    #[test]
    fn prune_removes_only_unlisted_epoch_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["epoch-001.ckpt", "epoch-002.ckpt", "last.ckpt", "notes.txt"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        prune(
            dir.path(),
            &[Kept {
                epoch: 2,
                value: 0.5,
            }],
        )
        .unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["epoch-002.ckpt", "last.ckpt", "notes.txt"]);
    }
}
