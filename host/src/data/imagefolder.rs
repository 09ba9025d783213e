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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Hidden files and directories (names starting with `.`).
    pub hidden: usize,
    /// Files without an image extension, and files directly in the root.
    pub not_image: usize,
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

fn read_dir(path: &Path) -> Result<Vec<fs::DirEntry>, ScanError> {
    let unreadable = |error| ScanError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    fs::read_dir(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)
}

/// Whether an entry is a directory, following symbolic links (as `os.DirEntry.is_dir()`).
fn is_dir(entry: &fs::DirEntry) -> bool {
    fs::metadata(entry.path()).is_ok_and(|m| m.is_dir())
}

/// The class folders of `root`: its non-hidden sub-directories (following links), sorted as
/// torchvision sorts them. A class folder whose name is not UTF-8 is an error.
pub fn class_folders(root: &Path) -> Result<Vec<String>, ScanError> {
    class_dirs(root, &mut Skipped::default())
}

/// The class directories of `root`, sorted, with the count of skipped entries.
fn class_dirs(root: &Path, skipped: &mut Skipped) -> Result<Vec<String>, ScanError> {
    let mut classes = Vec::new();
    for entry in read_dir(root)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            if is_dir(&entry) {
                return Err(ScanError::NonUtf8 { path: entry.path() });
            }
            skipped.not_image += 1;
            continue;
        };
        if hidden(name) {
            skipped.hidden += 1;
        } else if is_dir(&entry) {
            classes.push(name.to_string());
        } else {
            skipped.not_image += 1;
        }
    }
    classes.sort_unstable();
    Ok(classes)
}

/// Every image under `dir`, in torchvision's order: directories sorted by path string, files
/// sorted by name within each. Hidden entries and files without an image extension are counted
/// in `skipped`.
pub fn images_in(dir: &Path, skipped: &mut Skipped) -> Result<Vec<PathBuf>, ScanError> {
    let mut dirs: Vec<(String, Vec<String>)> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let mut files = Vec::new();
        for entry in read_dir(&current)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if hidden(&name) {
                skipped.hidden += 1;
            } else if is_dir(&entry) {
                pending.push(entry.path());
            } else if has_image_extension(&name) {
                files.push(name);
            } else {
                skipped.not_image += 1;
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

    /// Scans `root`, which must have at least `min_classes` (1 or 2) classes.
    fn scan_classes(root: &Path, min_classes: usize) -> Result<ImageFolder, ScanError> {
        let mut skipped = Skipped::default();
        let classes = class_dirs(root, &mut skipped)?;
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
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let files = images_in(&dir, &mut skipped)?;
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
    /// class has two or more) go to validation. Both parts keep torchvision's order.
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
            skipped: self.skipped,
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
