//! Checkpoint files: the backbone's full training state plus the host's own, in one file.
//!
//! Layout: the 8 bytes `CLSHCKPT`, a little-endian `u32` format version, then two sections,
//! each a little-endian `u64` length followed by its bytes:
//!
//! 1. the host state ([`HostState`]) as JSON: epoch and batch position, global step, seed,
//!    early-stopping state, the metrics history, the class names, the top-k list (absent in
//!    files written before top-k existed, which still load);
//! 2. the backbone's `save_state` bytes (weights, optimizer, EMA, accumulated gradients);
//!
//! and, from format version 2 on, the CRC-32C of every byte before it as a little-endian `u32`,
//! checked before anything is read: a damaged file (a flipped bit, a bad sector) is refused
//! with [`CheckpointError::Damaged`] instead of loading wrong weights. Version 1 files (no
//! checksum) still load.
//!
//! `--init-from` takes the weights out of the backbone state (through a scratch backbone), so
//! the file holds each weight once. Files are written with [`atomic_write`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use clshost_plugin_api::WeightSet;
use serde::{Deserialize, Serialize};

use super::early::Monitor;
use super::topk::Kept;
use crate::report::history::Row;
use crate::rundir::{WriteError, atomic_link, atomic_write};

const MAGIC: &[u8; 8] = b"CLSHCKPT";
/// The format written.
const VERSION: u32 = 2;
/// The oldest format read: version 1 has no checksum.
const OLDEST_VERSION: u32 = 1;

/// A checkpoint or weights file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The file is not a checkpoint of this format, or is damaged.
    #[error("{} is not a clshost checkpoint (or is damaged): {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file's checksum does not match its bytes.
    #[error(
        "{} is damaged: its CRC-32C checksum is {stored:08x} but its contents give \
         {computed:08x} (a disk or copy error changed it); use a checkpoint of another \
         epoch (names of the same state share one file) or a backup",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of its contents.
        computed: u32,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Which copy of the weights scored best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BestWeights {
    /// The optimizer's weights.
    #[default]
    Raw,
    /// The exponential moving average.
    Ema,
}

impl BestWeights {
    /// `raw` or `EMA`, as the tables and descriptions name the weights.
    pub fn name(self) -> &'static str {
        match self {
            BestWeights::Raw => "raw",
            BestWeights::Ema => "EMA",
        }
    }
}

impl From<BestWeights> for WeightSet {
    fn from(which: BestWeights) -> Self {
        match which {
            BestWeights::Raw => WeightSet::Raw,
            BestWeights::Ema => WeightSet::Ema,
        }
    }
}

/// Everything the host needs to continue a run exactly, besides the backbone's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// The recipe's name.
    pub recipe: String,
    /// The run seed.
    pub seed: u64,
    /// The epoch in progress (0-based); equal to the epoch count when training is over.
    pub epoch: u32,
    /// Batches of `epoch` already trained (by their index in the epoch); 0 at an epoch
    /// boundary.
    pub batches_done: usize,
    /// Training iterations so far over the whole run: the schedule's position.
    pub global_step: u64,
    /// Sum of the training loss over the images of `epoch` seen so far.
    pub epoch_loss_sum: f64,
    /// Training images of `epoch` seen so far.
    pub epoch_images: u64,
    /// Seconds spent training in `epoch` so far.
    pub epoch_seconds: f64,
    /// Wall-clock seconds of `epoch` so far (evaluation included), over every invocation
    /// (0 in files written before it was recorded).
    #[serde(default)]
    pub epoch_wall_seconds: f64,
    /// Wall-clock seconds of the run so far, over every invocation, each earlier one up to its
    /// last checkpoint (0 in files written before it was recorded).
    #[serde(default)]
    pub wall_seconds: f64,
    /// Training images over the whole run.
    pub total_images: u64,
    /// Seconds spent training over the whole run (evaluation excluded).
    pub train_seconds: f64,
    /// Best-checkpoint and early-stopping state.
    pub monitor: Monitor,
    /// Which weights scored best so far.
    pub best_weights: BestWeights,
    /// One row per evaluated epoch.
    pub history: Vec<Row>,
    /// The top-k checkpoints on disk, best first.
    #[serde(default)]
    pub top_k: Vec<Kept>,
    /// Free-form facts for people reading the file (versions, device).
    pub notes: BTreeMap<String, String>,
    /// The class names, in label order (empty in checkpoints written before they were
    /// recorded).
    #[serde(default)]
    pub classes: Vec<String>,
    /// The number of ranks the run trains with (1 in checkpoints written before it was
    /// recorded): `--resume` needs the same.
    #[serde(default = "one")]
    pub world_size: u32,
}

fn one() -> u32 {
    1
}

impl HostState {
    /// Training images per second over the whole run.
    pub fn images_per_s(&self) -> f64 {
        self.total_images as f64 / self.train_seconds.max(1e-9)
    }
}

/// A checkpoint in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The host's state.
    pub host: HostState,
    /// The backbone's `save_state` bytes.
    pub backbone: Vec<u8>,
}

fn format_error(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Checkpoint {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let host = serde_json::to_vec(&self.host).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(32 + host.len() + self.backbone.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for section in [&host, &self.backbone] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
        }
        let checksum = crc32c::crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        Ok(out)
    }

    /// Parses a file's bytes; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(format_error(path, "it does not start with `CLSHCKPT`"));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(format_error(
                path,
                format!(
                    "format version {version}, this clshost reads {OLDEST_VERSION} to {VERSION}"
                ),
            ));
        }
        let trailer = if version == 1 { 0 } else { 4 };
        // The sections first, so a cut file is called truncated rather than damaged.
        let mut rest = &bytes[12..];
        let mut sections = Vec::new();
        for _ in 0..2 {
            let len = rest
                .split_first_chunk::<8>()
                .map(|(len, tail)| (u64::from_le_bytes(*len), tail));
            let Some((section, tail)) = len.and_then(|(len, tail)| {
                usize::try_from(len)
                    .ok()
                    .filter(|&len| len <= tail.len())
                    .map(|len| tail.split_at(len))
            }) else {
                return Err(format_error(path, "it is truncated"));
            };
            sections.push(section);
            rest = tail;
        }
        if rest.len() < trailer {
            return Err(format_error(path, "it is truncated"));
        }
        if version > 1 {
            let (body, stored) = bytes.split_at(bytes.len() - 4);
            let stored = u32::from_le_bytes(stored.try_into().unwrap_or_default());
            let computed = crc32c::crc32c(body);
            if stored != computed {
                return Err(CheckpointError::Damaged {
                    path: path.to_path_buf(),
                    stored,
                    computed,
                });
            }
        }
        let host = serde_json::from_slice(sections[0])
            .map_err(|e| format_error(path, format!("host state: {e}")))?;
        Ok(Checkpoint {
            host,
            backbone: sections[1].to_vec(),
        })
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        self.save_all(&[path])
    }

    /// Writes the checkpoint atomically to each of `paths`, in order, serialized once: the
    /// first path gets the file, the others hard links to it (copies where the file system has
    /// no links), so one state takes its size on disk once however many names it has.
    pub fn save_all(&self, paths: &[&Path]) -> Result<(), CheckpointError> {
        let Some((first, others)) = paths.split_first() else {
            return Ok(());
        };
        let bytes = self.to_bytes().map_err(|e| format_error(first, e))?;
        atomic_write(first, &bytes)?;
        for path in others {
            atomic_link(first, path, &bytes)?;
        }
        Ok(())
    }

    /// Reads the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::from_bytes(path, &Checkpoint::read(path)?)
    }

    /// The bytes of the checkpoint file at `path`, unchecked ([`Checkpoint::from_bytes`] checks
    /// them).
    pub fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
        fs::read(path).map_err(|e| CheckpointError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Whether the file at `path` starts like a clshost checkpoint.
pub fn is_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::early::Direction;

    fn sample() -> Checkpoint {
        let mut notes = BTreeMap::new();
        notes.insert("device".to_string(), "cpu".to_string());
        Checkpoint {
            host: HostState {
                recipe: "r".into(),
                seed: 3,
                epoch: 2,
                batches_done: 5,
                global_step: 17,
                epoch_loss_sum: 1.5,
                epoch_images: 40,
                epoch_seconds: 0.25,
                epoch_wall_seconds: 0.5,
                wall_seconds: 9.0,
                total_images: 200,
                train_seconds: 3.0,
                monitor: Monitor::new(Direction::Max, 0.0, Some(3)),
                best_weights: BestWeights::Ema,
                history: Vec::new(),
                top_k: vec![Kept {
                    epoch: 2,
                    value: 0.5,
                }],
                notes,
                classes: vec!["cat".into(), "dog".into()],
                world_size: 2,
            },
            backbone: vec![1, 2, 3, 255],
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.ckpt");
        let ckpt = sample();
        ckpt.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), ckpt);
        assert!(is_checkpoint(&path));
    }

    #[test]
    fn floats_come_back_bit_exactly() {
        let mut ckpt = sample();
        // A value serde_json's default parser reads back one unit in the last place away.
        ckpt.host.epoch_loss_sum = 14.464992574399309;
        ckpt.host.history.push(Row {
            epoch: 2,
            train_loss: 14.464992574399309,
            lr: 0.037500000000000006,
            values: vec![("top1".into(), Some(0.1 + 0.2))],
            seconds: 1.0 / 3.0,
            images_per_s: 2.0f64.sqrt(),
        });
        let bytes = ckpt.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(Path::new("last.ckpt"), &bytes).unwrap();
        assert_eq!(
            back.host.epoch_loss_sum.to_bits(),
            14.464992574399309f64.to_bits()
        );
        assert_eq!(back, ckpt);
    }

    #[cfg(unix)]
    #[test]
    fn one_state_under_several_names_is_one_file_and_each_name_is_replaced_alone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let names = ["epoch-002.ckpt", "best.ckpt", "last.ckpt"].map(|n| dir.path().join(n));
        let paths: Vec<&Path> = names.iter().map(|p| p.as_path()).collect();
        let first = sample();
        first.save_all(&paths).unwrap();
        let inode = |p: &Path| fs::metadata(p).unwrap().ino();
        assert!(names.iter().all(|p| inode(p) == inode(&names[0])));
        let mut next = sample();
        next.host.epoch += 1;
        next.save_all(&[&names[2]]).unwrap();
        assert_eq!(Checkpoint::load(&names[2]).unwrap(), next);
        for kept in &names[..2] {
            assert_eq!(Checkpoint::load(kept).unwrap(), first);
        }
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn a_checkpoint_from_before_top_k_and_world_size_still_loads() {
        let mut ckpt = sample();
        let mut host = serde_json::to_value(&ckpt.host).unwrap();
        host.as_object_mut().unwrap().remove("top_k");
        host.as_object_mut().unwrap().remove("world_size");
        let host = serde_json::to_vec(&host).unwrap();
        // A version 1 file: no checksum.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        for section in [&host, &ckpt.backbone] {
            bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
            bytes.extend_from_slice(section);
        }
        ckpt.host.top_k.clear();
        ckpt.host.world_size = 1;
        assert_eq!(
            Checkpoint::from_bytes(Path::new("old"), &bytes).unwrap(),
            ckpt
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("best.ckpt");
        let bytes = sample().to_bytes().unwrap();
        for at in [30, bytes.len() - 6, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            fs::write(&path, &damaged).unwrap();
            let err = Checkpoint::load(&path).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Damaged { .. }),
                "byte {at}: {err}"
            );
            assert!(
                err.to_string().starts_with(&format!(
                    "{} is damaged: its CRC-32C checksum is ",
                    path.display()
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample().to_bytes().unwrap();
        let cut = Checkpoint::from_bytes(Path::new("x"), &bytes[..bytes.len() - 3]).unwrap_err();
        assert!(cut.to_string().contains("truncated"), "{cut}");
        let other = dir.path().join("w.safetensors");
        fs::write(&other, b"not a checkpoint").unwrap();
        assert!(!is_checkpoint(&other));
    }
}
