//! ImageFolder datasets: `root/<class>/<image>`, read the way torchvision's
//! `datasets.ImageFolder` reads them, so class indices match a torchvision model trained on the
//! same folder.
//!
//! Classes are the sub-directories of the root, sorted by code point (Python's `sorted` on
//! `str`). Images are found recursively inside each class directory, following symbolic links,
//! and ordered as torchvision orders them: by directory path as a string, then by file name.
//! Files are recognised by extension, case-insensitively. Unlike torchvision, hidden entries
//! (names starting with `.`, such as `.ipynb_checkpoints` or `.DS_Store`) are skipped, and GIF
//! is accepted; every skipped entry is counted and logged.
//!
//! Symbolic links to directories are followed, except into a directory that is already part of
//! the dataset: the root or a directory above it, a class folder (its own or another class's),
//! or a directory already scanned for the same class. Such a link would loop (`ln -s ..`) or
//! count images twice, so it is skipped and reported as a warning naming the link and where it
//! leads. Directories are told apart by (device, inode) on unix and by canonical path elsewhere,
//! so a link is recognised however it is spelled. A directory linked from two classes is scanned
//! for each.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::seed::Seeds;

/// File extensions recognised as images (compared in lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff", "ppm", "pgm",
];

/// One image and its class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// Index into [`ImageFolder::classes`].
    pub label: u32,
}

/// Entries a scan passed over, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Hidden files and directories (names starting with `.`).
    pub hidden: usize,
    /// Files without an image extension, and files directly in the root.
    pub not_image: usize,
    /// Links (or other entries) to directories already part of the dataset, in scan order.
    pub links: Vec<SkippedLink>,
}

/// A directory entry not followed because the directory it leads to is already part of the
/// dataset. Its `Display` is the warning the scan logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLink {
    /// The entry, under the scanned root.
    pub path: PathBuf,
    /// What the symbolic link holds, as written; `None` when the entry is not a link (a bind
    /// mount, say).
    pub target: Option<PathBuf>,
    /// The directory it leads to, canonical.
    pub leads_to: PathBuf,
    /// Whether that directory contains the entry, so following it would loop.
    pub loops: bool,
}

impl fmt::Display for SkippedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(target) => write!(
                f,
                "skipping symbolic link {} -> {}",
                self.path.display(),
                target.display()
            )?,
            None => write!(f, "skipping directory {}", self.path.display())?,
        }
        if self.loops {
            write!(
                f,
                ": it leads back to {}, which contains it (a loop)",
                self.leads_to.display()
            )
        } else {
            write!(
                f,
                ": it leads to {}, which is already part of this dataset",
                self.leads_to.display()
            )
        }
    }
}

/// Why a folder cannot be used as a dataset.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A directory could not be listed.
    #[error("cannot read dataset directory {}: {error}", path.display())]
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// A class directory name is not valid UTF-8.
    #[error("class directory {} has a name that is not valid UTF-8", path.display())]
    NonUtf8 {
        /// The directory.
        path: PathBuf,
    },
    /// The root has no class directories.
    #[error("no class directories in {}: expected root/<class>/<image>", root.display())]
    NoClasses {
        /// The root.
        root: PathBuf,
    },
    /// The root has only one class directory.
    #[error(
        "only one class ({class}) in {}: a classifier needs at least two class directories",
        root.display()
    )]
    SingleClass {
        /// The root.
        root: PathBuf,
        /// The only class.
        class: String,
    },
    /// A class directory holds no images.
    #[error(
        "class `{class}` has no images in {} (extensions: {})",
        path.display(), IMAGE_EXTENSIONS.join(", ")
    )]
    EmptyClass {
        /// The class.
        class: String,
        /// Its directory.
        path: PathBuf,
    },
    /// The validation folder's classes differ from the training folder's.
    #[error(
        "the classes of {} differ from those of {}: {detail}",
        val.display(), train.display()
    )]
    ClassMismatch {
        /// The training folder.
        train: PathBuf,
        /// The validation folder.
        val: PathBuf,
        /// Which classes are missing or extra.
        detail: String,
    },
    /// A split fraction outside (0, 1).
    #[error("val_split must be between 0 and 1 (exclusive), got {0}")]
    BadFraction(f64),
    /// A split holds out no image: every class has a single one.
    #[error(
        "val_split {fraction} holds out no image of {}: every class has a single image, and a \
         class needs two to give one to validation",
        root.display()
    )]
    EmptySplit {
        /// The split folder.
        root: PathBuf,
        /// The fraction asked for.
        fraction: f64,
    },
}

/// A scanned ImageFolder.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// The root directory.
    pub root: PathBuf,
    /// Class names; a sample's label indexes this list.
    pub classes: Vec<String>,
    /// Every image, class by class in torchvision's order.
    pub samples: Vec<Sample>,
    /// What the scan passed over.
    pub skipped: Skipped,
}

/// Whether `name` is hidden (starts with a dot).
fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Whether `name` ends with an image extension, in any case.
pub fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The entries of `path`, sorted by name so that which of two links to one directory is
/// followed does not depend on the file system's listing order.
fn read_dir(path: &Path) -> Result<Vec<fs::DirEntry>, ScanError> {
    let unreadable = |error| ScanError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    let mut entries = fs::read_dir(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    entries.sort_unstable_by_key(fs::DirEntry::file_name);
    Ok(entries)
}

/// What tells directories apart however they are reached: (device, inode) on unix.
#[cfg(unix)]
type DirId = (u64, u64);

/// What tells directories apart however they are reached: the canonical path where there are no
/// inodes.
#[cfg(not(unix))]
type DirId = PathBuf;

/// The identity of the directory at `path`, whose metadata (links followed) is `meta`.
#[cfg(unix)]
fn dir_id(_path: &Path, meta: &fs::Metadata) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// The identity of the directory at `path`, whose metadata (links followed) is `meta`.
#[cfg(not(unix))]
fn dir_id(path: &Path, _meta: &fs::Metadata) -> Option<DirId> {
    fs::canonicalize(path).ok()
}

/// The identity of `entry` when it is a directory, following symbolic links (as
/// `os.DirEntry.is_dir()`); `None` for anything else. A directory whose identity cannot be told
/// gets `Some(None)`.
fn dir_of(entry: &fs::DirEntry) -> Option<Option<DirId>> {
    let path = entry.path();
    // Only links need a `stat`: the listing already says what a plain entry is.
    if entry
        .file_type()
        .is_ok_and(|t| !t.is_dir() && !t.is_symlink())
    {
        return None;
    }
    let meta = fs::metadata(&path).ok().filter(fs::Metadata::is_dir)?;
    Some(dir_id(&path, &meta))
}

/// The identities of `dir` and of every directory above it: a link to any of them loops.
fn dir_and_above(dir: &Path) -> HashSet<DirId> {
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .ancestors()
        .filter_map(|d| fs::metadata(d).ok().and_then(|m| dir_id(d, &m)))
        .collect()
}

/// The record of `entry`, listed in `parent`, which leads to a directory already seen.
fn skipped_link(entry: &fs::DirEntry, parent: &Path) -> SkippedLink {
    let path = entry.path();
    let leads_to = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let loops = fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&leads_to));
    let target = entry
        .file_type()
        .is_ok_and(|t| t.is_symlink())
        .then(|| fs::read_link(&path).ok())
        .flatten();
    SkippedLink {
        path,
        target,
        leads_to,
        loops,
    }
}

/// The class folders of `root`: its non-hidden sub-directories (following links, but not a link
/// back to the root or above it), sorted as torchvision sorts them. A class folder whose name is
/// not UTF-8 is an error.
pub fn class_folders(root: &Path) -> Result<Vec<String>, ScanError> {
    let above = dir_and_above(root);
    Ok(class_dirs(root, &above, &mut Skipped::default())?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The class directories of `root`, sorted, with their identities; entries passed over are
/// recorded in `skipped`. `above` holds the root and the directories above it.
fn class_dirs(
    root: &Path,
    above: &HashSet<DirId>,
    skipped: &mut Skipped,
) -> Result<Vec<(String, Option<DirId>)>, ScanError> {
    let mut classes = Vec::new();
    for entry in read_dir(root)? {
        let name = entry.file_name();
        let dir = dir_of(&entry);
        let Some(name) = name.to_str() else {
            if dir.is_some() {
                return Err(ScanError::NonUtf8 { path: entry.path() });
            }
            skipped.not_image += 1;
            continue;
        };
        match dir {
            _ if hidden(name) => skipped.hidden += 1,
            Some(Some(id)) if above.contains(&id) => {
                skipped.links.push(skipped_link(&entry, root));
            }
            Some(id) => classes.push((name.to_string(), id)),
            None => skipped.not_image += 1,
        }
    }
    classes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(classes)
}

/// Every image under `dir`, in torchvision's order: directories sorted by path string, files
/// sorted by name within each. Hidden entries, files without an image extension and links to
/// `dir` or above it (or to a directory already walked) are recorded in `skipped`.
pub fn images_in(dir: &Path, skipped: &mut Skipped) -> Result<Vec<PathBuf>, ScanError> {
    walk(dir, dir_and_above(dir), skipped)
}

/// [`images_in`], never entering a directory whose identity is in `seen` (to which every
/// directory walked is added).
fn walk(
    dir: &Path,
    mut seen: HashSet<DirId>,
    skipped: &mut Skipped,
) -> Result<Vec<PathBuf>, ScanError> {
    let mut dirs: Vec<(String, Vec<String>)> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let mut files = Vec::new();
        for entry in read_dir(&current)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if hidden(&name) {
                skipped.hidden += 1;
                continue;
            }
            match dir_of(&entry) {
                Some(Some(id)) if !seen.insert(id) => {
                    skipped.links.push(skipped_link(&entry, &current));
                }
                Some(_) => pending.push(entry.path()),
                None if has_image_extension(&name) => files.push(name),
                None => skipped.not_image += 1,
            }
        }
        files.sort_unstable();
        dirs.push((current.to_string_lossy().into_owned(), files));
    }
    dirs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(dirs
        .into_iter()
        .flat_map(|(d, files)| files.into_iter().map(move |f| Path::new(&d).join(f)))
        .collect())
}

impl ImageFolder {
    /// Scans `root`. Fails when it cannot be read, has fewer than two classes, or has a class
    /// without images.
    pub fn scan(root: &Path) -> Result<ImageFolder, ScanError> {
        Self::scan_classes(root, 2)
    }

    /// Scans `root` as a set to evaluate a trained model on, which may hold any of its classes:
    /// as [`ImageFolder::scan`], but one class is enough.
    pub fn scan_eval(root: &Path) -> Result<ImageFolder, ScanError> {
        Self::scan_classes(root, 1)
    }

    /// Scans `root`, which must have at least `min_classes` (1 or 2) classes. Logs what it
    /// skipped: a warning for each link not followed (as soon as it is found), the count of
    /// other entries at `info`.
    fn scan_classes(root: &Path, min_classes: usize) -> Result<ImageFolder, ScanError> {
        let mut skipped = Skipped::default();
        let above = dir_and_above(root);
        let dirs = class_dirs(root, &above, &mut skipped)?;
        // Each link is reported as soon as it is found, so also before an error it explains.
        let mut warned = 0;
        let mut warn_new = |skipped: &Skipped| {
            for link in &skipped.links[warned..] {
                tracing::warn!("{link}");
            }
            warned = skipped.links.len();
        };
        warn_new(&skipped);
        let classes: Vec<String> = dirs.iter().map(|(name, _)| name.clone()).collect();
        match classes.as_slice() {
            [] => {
                return Err(ScanError::NoClasses {
                    root: root.to_path_buf(),
                });
            }
            [only] if min_classes > 1 => {
                return Err(ScanError::SingleClass {
                    root: root.to_path_buf(),
                    class: only.clone(),
                });
            }
            _ => {}
        }
        // Inside a class, never the root, what is above it, or a class folder.
        let mut fenced = above;
        fenced.extend(dirs.into_iter().filter_map(|(_, id)| id));
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let files = walk(&dir, fenced.clone(), &mut skipped)?;
            warn_new(&skipped);
            if files.is_empty() {
                return Err(ScanError::EmptyClass {
                    class: class.clone(),
                    path: dir,
                });
            }
            samples.extend(files.into_iter().map(|path| Sample {
                path,
                label: label as u32,
            }));
        }
        if skipped.hidden + skipped.not_image > 0 {
            tracing::info!(
                "{}: skipped {} hidden entries and {} files that are not images",
                root.display(),
                skipped.hidden,
                skipped.not_image
            );
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            samples,
            skipped,
        })
    }

    /// The number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in &self.samples {
            counts[s.label as usize] += 1;
        }
        counts
    }

    /// Checks that `val` has exactly this folder's classes, so labels mean the same in both.
    pub fn check_same_classes(&self, val: &ImageFolder) -> Result<(), ScanError> {
        if self.classes == val.classes {
            return Ok(());
        }
        let missing: Vec<&str> = self
            .classes
            .iter()
            .filter(|c| !val.classes.contains(c))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = val
            .classes
            .iter()
            .filter(|c| !self.classes.contains(c))
            .map(String::as_str)
            .collect();
        Err(ScanError::ClassMismatch {
            train: self.root.clone(),
            val: val.root.clone(),
            detail: format!(
                "missing [{}], extra [{}]",
                missing.join(", "),
                extra.join(", ")
            ),
        })
    }

    /// Splits into (train, validation), class by class: each class's images are shuffled with
    /// `seed` and `round(n * val_fraction)` of them (at least one, at most `n - 1`, when the
    /// class has two or more) go to validation. Both parts keep torchvision's order. Fails when
    /// no class has two images, which would leave validation empty.
    pub fn split(
        &self,
        val_fraction: f64,
        seed: u64,
    ) -> Result<(ImageFolder, ImageFolder), ScanError> {
        if !(val_fraction > 0.0 && val_fraction < 1.0) {
            return Err(ScanError::BadFraction(val_fraction));
        }
        let mut in_val = vec![false; self.samples.len()];
        for label in 0..self.classes.len() {
            let mut members: Vec<usize> = (0..self.samples.len())
                .filter(|&i| self.samples[i].label as usize == label)
                .collect();
            let n = members.len();
            let take = if n < 2 {
                0
            } else {
                ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1)
            };
            Seeds(seed).split_shuffle(label as u64, &mut members);
            for &i in &members[..take] {
                in_val[i] = true;
            }
        }
        if !in_val.contains(&true) {
            return Err(ScanError::EmptySplit {
                root: self.root.clone(),
                fraction: val_fraction,
            });
        }
        let part = |val: bool| ImageFolder {
            root: self.root.clone(),
            classes: self.classes.clone(),
            samples: self
                .samples
                .iter()
                .zip(&in_val)
                .filter(|(_, v)| **v == val)
                .map(|(s, _)| s.clone())
                .collect(),
            skipped: self.skipped.clone(),
        };
        Ok((part(false), part(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_ignore_case() {
        assert!(has_image_extension("a.JPG"));
        assert!(has_image_extension("a.b.Tiff"));
        assert!(!has_image_extension("a.txt"));
        assert!(!has_image_extension("jpg"));
    }
}
