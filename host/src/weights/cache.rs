//! Where checkpoints are kept, and turning a [`WeightSource`] into a checked file.
//!
//! clshost's cache is one folder, `$CLSHOST_CACHE_DIR/weights/` (by default the platform's
//! cache folder's `clshost/weights/`), holding each checkpoint under its file name. PyTorch's
//! cache, `$TORCH_HOME/hub/checkpoints/`, is read as well, never written. Hugging Face Hub files
//! live in the Hub's own cache ([`super::hub`]).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::download::{self, Failure, hash_prefix, sha256_file};
use super::hub::{Hub, HubError};
use super::{Checkpoint, WeightSource, zoo};
use crate::rundir::WriteError;

/// Overrides the folder clshost caches in; checkpoints go to its `weights/` sub-folder.
pub const CACHE_VAR: &str = "CLSHOST_CACHE_DIR";

/// Replaces `https://download.pytorch.org/models/` for the zoo's checkpoints: the URL of a
/// folder holding the same files under the same names.
pub const MIRROR_VAR: &str = "CLSHOST_WEIGHTS_MIRROR";

/// PyTorch's cache folder, as torch.hub reads it.
pub const TORCH_HOME_VAR: &str = "TORCH_HOME";

/// A weight source that could not be turned into a usable file.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Neither `CLSHOST_CACHE_DIR` nor a platform cache folder is known.
    #[error("no cache folder for downloaded weights: set {CACHE_VAR} (or HOME)")]
    NoCacheDir,
    /// `CLSHOST_WEIGHTS_MIRROR` is not an `http(s)://` URL.
    #[error(
        "{MIRROR_VAR} must be the http:// or https:// URL of a folder holding torchvision's \
         checkpoint files, not `{0}`"
    )]
    BadMirror(String),
    /// A local weights file that does not exist.
    #[error("weights file {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A local weights path that is not a file.
    #[error("weights file {} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// A file that could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        cause: io::Error,
    },
    /// The download failed (no network, no such file on the server, a broken transfer).
    #[error(
        "cannot download {url} ({cause}): download it elsewhere and put it at {}{}",
        put_at.display(),
        or_in(.torch_checkpoints.as_deref())
    )]
    Download {
        /// The URL.
        url: String,
        /// Why it failed.
        cause: String,
        /// Where clshost looks for the file first.
        put_at: PathBuf,
        /// PyTorch's checkpoint folder, where the file would also be found.
        torch_checkpoints: Option<PathBuf>,
    },
    /// The downloaded file's hash is not the one its name promises; it was deleted.
    #[error(
        "{url} arrived with SHA-256 {actual}, but its name promises one starting with \
         {expected}: the download was discarded and nothing was cached"
    )]
    Corrupt {
        /// The URL.
        url: String,
        /// The hash prefix its file name carries.
        expected: String,
        /// The SHA-256 of what arrived.
        actual: String,
    },
    /// A file found in a cache whose hash is not the one its name promises.
    #[error(
        "{} has SHA-256 {actual}, but its name promises one starting with {expected}: \
         delete it to download it again",
        path.display()
    )]
    BadFile {
        /// The file.
        path: PathBuf,
        /// The hash prefix its name carries.
        expected: String,
        /// Its SHA-256.
        actual: String,
    },
    /// The download could not be written to the cache.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A Hugging Face Hub file that could not be fetched or used.
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// ` (or in DIR/)`, or nothing without a PyTorch cache folder.
fn or_in(dir: Option<&Path>) -> String {
    dir.map(|d| format!(" (or in {}/)", d.display()))
        .unwrap_or_default()
}

/// Where a resolved file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The local file the source names.
    Local,
    /// clshost's cache.
    Cache,
    /// PyTorch's cache (`$TORCH_HOME/hub/checkpoints/`).
    TorchHub,
    /// The Hugging Face Hub cache.
    HubCache,
    /// Downloaded into clshost's cache just now.
    Downloaded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Local => "local file",
            Origin::Cache => "clshost cache",
            Origin::TorchHub => "PyTorch cache",
            Origin::HubCache => "Hugging Face cache",
            Origin::Downloaded => "downloaded",
        })
    }
}

/// A weight source's file on this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The file.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: Origin,
}

/// Where a weight source's file is before anything is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Availability {
    /// A local file the source names (it may not exist).
    Local(PathBuf),
    /// A copy in one of the caches.
    Cached(Resolved),
    /// Not on this machine: it would be downloaded from `url` to `put_at`.
    Missing {
        /// Where it would be downloaded from.
        url: String,
        /// Where the download would go.
        put_at: PathBuf,
    },
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Local(path) => write!(f, "the file {}", path.display()),
            Availability::Cached(found) => {
                write!(f, "{} in the {}", found.path.display(), found.origin)
            }
            Availability::Missing { url, put_at } => write!(
                f,
                "not on this machine yet: downloaded from {url} to {} when used",
                put_at.display()
            ),
        }
    }
}

/// The caches, as the environment configures them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    /// clshost's weights folder.
    dir: PathBuf,
    /// PyTorch's checkpoint folder, when a home folder or `TORCH_HOME` says where it is.
    torch_checkpoints: Option<PathBuf>,
    /// The mirror replacing [`zoo::TORCHVISION_BASE`], ending in `/`.
    mirror: Option<String>,
    /// The Hugging Face Hub and its cache.
    hub: Hub,
}

impl Cache {
    /// The caches as `CLSHOST_CACHE_DIR`, `TORCH_HOME`, `XDG_CACHE_HOME`, `HOME`,
    /// `CLSHOST_WEIGHTS_MIRROR` and Hugging Face's variables ([`super::hub`]) say.
    pub fn from_env() -> Result<Cache, ResolveError> {
        Cache::configure(
            &|name| std::env::var_os(name),
            dirs::cache_dir(),
            dirs::home_dir(),
        )
    }

    /// The caches from the variables `var` returns (empty ones count as unset), the
    /// platform's cache folder and the home folder.
    fn configure(
        var: &dyn Fn(&str) -> Option<OsString>,
        platform_cache: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<Cache, ResolveError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let root = match var(CACHE_VAR) {
            Some(dir) => PathBuf::from(dir),
            None => platform_cache
                .ok_or(ResolveError::NoCacheDir)?
                .join("clshost"),
        };
        let torch_checkpoints = python_cache_home(&var, TORCH_HOME_VAR, "torch", home.as_deref())
            .map(|dir| dir.join("hub").join("checkpoints"));
        let mirror = match var(MIRROR_VAR) {
            None => None,
            Some(value) => {
                let text = value.to_string_lossy().into_owned();
                let lower = text.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Err(ResolveError::BadMirror(text));
                }
                Some(if text.ends_with('/') {
                    text
                } else {
                    text + "/"
                })
            }
        };
        let hub = Hub::configure(&var, home.as_deref(), &root.join("huggingface").join("hub"));
        Ok(Cache {
            dir: root.join("weights"),
            torch_checkpoints,
            mirror,
            hub,
        })
    }

    /// clshost's weights folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PyTorch's checkpoint folder, when known.
    pub fn torch_checkpoints(&self) -> Option<&Path> {
        self.torch_checkpoints.as_deref()
    }

    /// The Hugging Face Hub and its cache.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The mirror set by `CLSHOST_WEIGHTS_MIRROR`, ending in `/`.
    pub fn mirror(&self) -> Option<&str> {
        self.mirror.as_deref()
    }

    /// Where the zoo's `checkpoint` is downloaded from: torchvision, or the mirror.
    pub fn url_of(&self, checkpoint: &Checkpoint) -> String {
        let base = self.mirror.as_deref().unwrap_or(zoo::TORCHVISION_BASE);
        format!("{base}{}", checkpoint.file)
    }

    /// The cached copy of `file` (clshost's cache first, then PyTorch's), unchecked.
    pub fn find(&self, file: &str) -> Option<Resolved> {
        let ours = Some((self.dir.join(file), Origin::Cache));
        let torch = self
            .torch_checkpoints
            .as_ref()
            .map(|dir| (dir.join(file), Origin::TorchHub));
        [ours, torch]
            .into_iter()
            .flatten()
            .find(|(path, _)| path.is_file())
            .map(|(path, origin)| Resolved { path, origin })
    }

    /// Where `source` is now, without downloading or checking anything: what `clshost check`
    /// reports.
    pub fn availability(&self, source: &WeightSource) -> Availability {
        let (url, file) = match source {
            WeightSource::File(path) => return Availability::Local(path.clone()),
            WeightSource::Hub(file) => {
                return match self.hub.find(file) {
                    Some(path) => Availability::Cached(Resolved {
                        path,
                        origin: Origin::HubCache,
                    }),
                    None => Availability::Missing {
                        url: self.hub.url_of(file),
                        put_at: self.hub.repo_dir(file),
                    },
                };
            }
            WeightSource::Torchvision(c) => (self.url_of(c), c.file),
            WeightSource::Url { url, file } => (url.clone(), file.as_str()),
        };
        match self.find(file) {
            Some(found) => Availability::Cached(found),
            None => Availability::Missing {
                url,
                put_at: self.dir.join(file),
            },
        }
    }

    /// The file of `source`: a local file as it is; a checkpoint from a cache, or downloaded
    /// into clshost's cache (with a progress bar on stderr when `progress` is set), after
    /// checking it against the hash its name promises.
    pub fn resolve(&self, source: &WeightSource, progress: bool) -> Result<Resolved, ResolveError> {
        match source {
            WeightSource::File(path) => local(path),
            WeightSource::Hub(file) => {
                let (path, downloaded) = self.hub.fetch(file, progress)?;
                let origin = if downloaded {
                    Origin::Downloaded
                } else {
                    Origin::HubCache
                };
                Ok(Resolved { path, origin })
            }
            WeightSource::Torchvision(c) => {
                self.cached_or_download(&self.url_of(c), c.file, Some(c.sha256_prefix), progress)
            }
            WeightSource::Url { url, file } => {
                self.cached_or_download(url, file, hash_prefix(file), progress)
            }
        }
    }

    /// `file` from a cache, or else downloaded from `url`; checked against `expected`.
    fn cached_or_download(
        &self,
        url: &str,
        file: &str,
        expected: Option<&str>,
        progress: bool,
    ) -> Result<Resolved, ResolveError> {
        if let Some(found) = self.find(file) {
            check(&found.path, expected)?;
            return Ok(found);
        }
        let dest = self.dir.join(file);
        download::download(url, &dest, expected, progress).map_err(|failure| match failure {
            Failure::Fetch(cause) => ResolveError::Download {
                url: url.to_string(),
                cause,
                put_at: dest.clone(),
                torch_checkpoints: self.torch_checkpoints.clone(),
            },
            Failure::Corrupt { actual } => ResolveError::Corrupt {
                url: url.to_string(),
                expected: expected.unwrap_or_default().to_string(),
                actual,
            },
            Failure::Write(e) => ResolveError::Write(e),
        })?;
        Ok(Resolved {
            path: dest,
            origin: Origin::Downloaded,
        })
    }
}

/// Where a Python tool keeps its files, as torch.hub and huggingface_hub find theirs: `$VAR`,
/// else `$XDG_CACHE_HOME/<name>`, else `~/.cache/<name>`, with a leading `~` expanded; `None`
/// when that needs a home folder there is none of. `var` reads the environment.
pub(super) fn python_cache_home(
    var: &dyn Fn(&str) -> Option<OsString>,
    own_var: &str,
    name: &str,
    home: Option<&Path>,
) -> Option<PathBuf> {
    let dir = var(own_var).map_or_else(
        || {
            var("XDG_CACHE_HOME")
                .map_or_else(|| PathBuf::from("~/.cache"), PathBuf::from)
                .join(name)
        },
        PathBuf::from,
    );
    expand_home(dir, home)
}

/// `path` with a leading `~` replaced by `home`, as Python's `expanduser`; `None` when it needs
/// a home folder there is none of.
pub(super) fn expand_home(path: PathBuf, home: Option<&Path>) -> Option<PathBuf> {
    match path.strip_prefix("~") {
        Ok(rest) => home.map(|h| h.join(rest)),
        Err(_) => Some(path),
    }
}

/// The local file `path`, which must exist and be a file.
fn local(path: &Path) -> Result<Resolved, ResolveError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Resolved {
            path: path.to_path_buf(),
            origin: Origin::Local,
        }),
        Ok(_) => Err(ResolveError::NotAFile(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(ResolveError::Missing(path.to_path_buf()))
        }
        Err(cause) => Err(ResolveError::Read {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// Refuses the file at `path` unless its SHA-256 starts with `expected` (when given).
fn check(path: &Path, expected: Option<&str>) -> Result<(), ResolveError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let actual = sha256_file(path).map_err(|cause| ResolveError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    if actual.starts_with(expected) {
        Ok(())
    } else {
        Err(ResolveError::BadFile {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sha2::{Digest, Sha256};

    use super::*;

    /// A cache configured from `vars`, with `/platform-cache` and `/home/u`.
    fn configured(vars: &[(&str, &str)]) -> Result<Cache, ResolveError> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Cache::configure(
            &|name| vars.get(name).cloned(),
            Some("/platform-cache".into()),
            Some("/home/u".into()),
        )
    }

    #[test]
    fn cache_folders_follow_the_environment_as_clshost_and_torch_hub_read_it() {
        let default = configured(&[]).unwrap();
        assert_eq!(default.dir(), Path::new("/platform-cache/clshost/weights"));
        assert_eq!(
            default.torch_checkpoints(),
            Some(Path::new("/home/u/.cache/torch/hub/checkpoints"))
        );
        assert_eq!(default.mirror(), None);

        let set = configured(&[
            (CACHE_VAR, "/big/cache"),
            ("XDG_CACHE_HOME", "/xdg"),
            (MIRROR_VAR, "http://mirror.lan/models"),
        ])
        .unwrap();
        assert_eq!(set.dir(), Path::new("/big/cache/weights"));
        assert_eq!(
            set.torch_checkpoints(),
            Some(Path::new("/xdg/torch/hub/checkpoints"))
        );
        assert_eq!(
            set.url_of(&zoo::CHECKPOINTS[0]),
            "http://mirror.lan/models/resnet18-f37072fd.pth"
        );

        let torch = configured(&[(TORCH_HOME_VAR, "~/t"), ("XDG_CACHE_HOME", "/xdg")]).unwrap();
        assert_eq!(
            torch.torch_checkpoints(),
            Some(Path::new("/home/u/t/hub/checkpoints"))
        );
        let empty = configured(&[(CACHE_VAR, ""), (TORCH_HOME_VAR, "")]).unwrap();
        assert_eq!(empty, default);

        assert!(matches!(
            configured(&[(MIRROR_VAR, "/srv/models")]),
            Err(ResolveError::BadMirror(m)) if m == "/srv/models"
        ));
        let no_home = Cache::configure(&|_| None, None, None);
        assert!(matches!(no_home, Err(ResolveError::NoCacheDir)));
    }

    /// A cache in a temporary folder, with its own PyTorch folder, and a file named with the
    /// hash prefix of `bytes`.
    fn scratch(bytes: &[u8]) -> (tempfile::TempDir, Cache, String) {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            dir: root.path().join("clshost/weights"),
            torch_checkpoints: Some(root.path().join("torch/hub/checkpoints")),
            mirror: Some(format!("http://127.0.0.1:{}/", closed_port())),
            hub: Hub::configure(&|_| None, Some(root.path()), Path::new("/no-home")),
        };
        let sha: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (root, cache, format!("tiny-{}.pth", &sha[..10]))
    }

    /// A local port nothing listens on: connecting to it is refused.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn source(file: &str) -> WeightSource {
        format!("http://127.0.0.1:{}/{file}", closed_port())
            .parse()
            .unwrap()
    }

    #[test]
    fn a_hub_file_is_available_from_the_hub_cache_or_downloaded_into_its_repository_folder() {
        let (root, cache, _) = scratch(b"weights");
        let source: WeightSource = "hf:org/net".parse().unwrap();
        let repo = root.path().join(".cache/huggingface/hub/models--org--net");
        assert_eq!(
            cache.availability(&source),
            Availability::Missing {
                url: "https://huggingface.co/org/net/resolve/main/model.safetensors (else \
                      https://huggingface.co/org/net/resolve/main/pytorch_model.bin)"
                    .into(),
                put_at: repo.clone(),
            }
        );
        let snapshot = repo.join("snapshots/c0ffee/pytorch_model.bin");
        fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        fs::write(&snapshot, b"weights").unwrap();
        fs::create_dir_all(repo.join("refs")).unwrap();
        fs::write(repo.join("refs/main"), "c0ffee").unwrap();
        let found = Resolved {
            path: snapshot,
            origin: Origin::HubCache,
        };
        assert_eq!(
            cache.availability(&source),
            Availability::Cached(found.clone())
        );
        assert_eq!(cache.resolve(&source, false).unwrap(), found);
    }

    #[test]
    fn a_file_in_the_pytorch_cache_is_used_and_checked_and_ours_comes_first() {
        let (_root, cache, file) = scratch(b"weights");
        let torch = cache.torch_checkpoints().unwrap().to_path_buf();
        fs::create_dir_all(&torch).unwrap();
        fs::write(torch.join(&file), b"weights").unwrap();
        let found = cache.resolve(&source(&file), false).unwrap();
        assert_eq!(found.path, torch.join(&file));
        assert_eq!(found.origin, Origin::TorchHub);

        fs::create_dir_all(cache.dir()).unwrap();
        fs::write(cache.dir().join(&file), b"weights").unwrap();
        let found = cache.resolve(&source(&file), false).unwrap();
        assert_eq!(
            (found.path, found.origin),
            (cache.dir().join(&file), Origin::Cache)
        );

        fs::write(cache.dir().join(&file), b"tampered").unwrap();
        let err = cache
            .resolve(&source(&file), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "{} has SHA-256 ",
                cache.dir().join(&file).display()
            )),
            "{err}"
        );
    }

    #[test]
    fn local_files_must_exist_and_be_files() {
        let (root, cache, _) = scratch(b"");
        let path = root.path().join("w.pth");
        let missing = cache.resolve(&WeightSource::File(path.clone()), false);
        assert_eq!(
            missing.unwrap_err().to_string(),
            format!("weights file {} does not exist", path.display())
        );
        fs::write(&path, b"x").unwrap();
        let found = cache
            .resolve(&WeightSource::File(path.clone()), false)
            .unwrap();
        assert_eq!((found.path, found.origin), (path, Origin::Local));
        let dir = WeightSource::File(root.path().to_path_buf());
        assert!(matches!(
            cache.resolve(&dir, false),
            Err(ResolveError::NotAFile(_))
        ));
    }

    #[test]
    fn an_unreachable_server_names_the_url_and_where_to_put_the_file() {
        let (_root, cache, _) = scratch(b"");
        let source = WeightSource::Torchvision(&zoo::CHECKPOINTS[3]);
        let err = cache.resolve(&source, false).unwrap_err().to_string();
        let expected_start = format!(
            "cannot download {}resnet50-11ad3fa6.pth (",
            cache.mirror().unwrap()
        );
        let expected_end = format!(
            "): download it elsewhere and put it at {} (or in {}/)",
            cache.dir().join("resnet50-11ad3fa6.pth").display(),
            cache.torch_checkpoints().unwrap().display()
        );
        assert!(err.starts_with(&expected_start), "{err}");
        assert!(err.ends_with(&expected_end), "{err}");
        assert!(!cache.dir().join("resnet50-11ad3fa6.pth").exists());
    }
}
