//! Checkpoints in Hugging Face Hub model repositories: `hf:ORG/NAME[@REVISION][/FILE]`.
//!
//! Files are fetched by Hugging Face's own Rust client (the `hf-hub` crate) into the Hub's cache
//! layout, `models--ORG--NAME/{blobs,refs,snapshots}/` under the Hub cache folder, which is found
//! as Python's `huggingface_hub` finds it: `HF_HUB_CACHE`, else `$HF_HOME/hub`, with `HF_HOME`
//! defaulting to `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface` (without a home folder:
//! `$CLSHOST_CACHE_DIR/huggingface/hub`). A file that timm or `huggingface_hub` already
//! downloaded is therefore used as it is, and what clshost downloads serves them too. `HF_ENDPOINT` replaces `https://huggingface.co` (a mirror, or a test
//! server), `HF_HUB_OFFLINE=1` forbids the network, and `HF_TOKEN` (or the token file
//! `huggingface-cli login` writes) opens gated and private repositories.
//!
//! Without `/FILE`, the repository's `model.safetensors` is used, else its `pytorch_model.bin`:
//! the names timm and transformers publish their weights under. The revision (a branch, tag or
//! commit) defaults to `main`.
//!
//! A repository timm published also holds a `config.json` naming the architecture, the class
//! count (and sometimes the class names) and the eval preprocessing (`pretrained_cfg`):
//! [`Hub::config`] reads it as a [`TimmConfig`], so the weights can be used without saying
//! what they are.
//!
//! The Hub stores every checkpoint with Git LFS and names its blob in the cache by the file's
//! SHA-256 (the ETag the Hub answers with). That hash is checked after each download and each
//! time a cached copy is used: a download that breaks it is deleted with its snapshot link, so
//! nothing is cached, and a cached blob that breaks it is refused with its path.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};
use indicatif::ProgressBar;
use serde::Deserialize;

use super::SourceError;
use super::cache::{expand_home, python_cache_home};
use super::download::{cause, progress_bar, sha256_file};
use super::zoo::{self, Preprocessing};

/// Replaces `https://huggingface.co`, as in `huggingface_hub`.
pub const ENDPOINT_VAR: &str = "HF_ENDPOINT";

/// The Hub cache folder itself, as in `huggingface_hub`.
pub const HUB_CACHE_VAR: &str = "HF_HUB_CACHE";

/// Hugging Face's folder (the Hub cache is its `hub/`), as in `huggingface_hub`.
pub const HOME_VAR: &str = "HF_HOME";

/// Set to `1` (or `true`, `yes`, `on`), only cached files are used, as in `huggingface_hub`.
pub const OFFLINE_VAR: &str = "HF_HUB_OFFLINE";

/// The access token for gated and private repositories, as in `huggingface_hub`.
pub const TOKEN_VAR: &str = "HF_TOKEN";

/// The Hub's own address.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The files tried, in order, when a source names none.
pub const DEFAULT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// A file of a Hub model repository, as a weight source names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// `ORG/NAME`.
    pub repo: String,
    /// A branch, tag or commit; `main` when the source names none.
    pub revision: String,
    /// The file's path in the repository; `None` for the first of [`DEFAULT_FILES`] there is.
    pub file: Option<String>,
}

impl HubFile {
    /// Parses what follows `hf:` in `text` (the whole source): `ORG/NAME[@REVISION][/FILE]`.
    pub(super) fn parse(text: &str, rest: &str) -> Result<HubFile, SourceError> {
        let bad = |reason| SourceError::BadHubName {
            text: text.to_string(),
            reason,
        };
        let mut parts = rest.splitn(3, '/');
        let org = parts.next().unwrap_or_default();
        let Some(name) = parts.next() else {
            return Err(bad("write it as hf:ORG/NAME[@REVISION][/FILE]"));
        };
        let (name, revision) = match name.split_once('@') {
            Some((_, "")) => return Err(bad("it has an empty revision after `@`")),
            Some((name, revision)) => (name, revision),
            None => (name, "main"),
        };
        for part in [org, name] {
            if !is_repo_name_part(part) {
                return Err(bad(
                    "ORG and NAME are 1 to 96 letters, digits, `-`, `_` or `.`, and neither \
                     starts or ends with `-` or `.`",
                ));
            }
        }
        let file = match parts.next() {
            None => None,
            Some(file) if file.is_empty() || file.ends_with('/') => {
                return Err(bad("its FILE part names no file"));
            }
            Some(file) if file.split('/').any(|p| p.is_empty() || p == "..") => {
                return Err(bad("its FILE part is not a path inside the repository"));
            }
            Some(file) => Some(file.to_string()),
        };
        Ok(HubFile {
            repo: format!("{org}/{name}"),
            revision: revision.to_string(),
            file,
        })
    }

    /// The file names to try, in order.
    fn candidates(&self) -> Vec<&str> {
        match &self.file {
            Some(file) => vec![file.as_str()],
            None => DEFAULT_FILES.to_vec(),
        }
    }

    /// The repository as the client names it.
    fn repo(&self) -> Repo {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone())
    }
}

impl fmt::Display for HubFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf:{}", self.repo)?;
        if self.revision != "main" {
            write!(f, "@{}", self.revision)?;
        }
        match &self.file {
            Some(file) => write!(f, "/{file}"),
            None => Ok(()),
        }
    }
}

/// Whether `part` can be one half of a repository id, by the Hub's rules.
fn is_repo_name_part(part: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    (1..=96).contains(&part.len())
        && part.chars().all(allowed)
        && !part.starts_with(['-', '.'])
        && !part.ends_with(['-', '.'])
}

/// A Hub file that could not be turned into a usable file.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `HF_HUB_OFFLINE` is set and the file is not cached.
    #[error(
        "{OFFLINE_VAR} is set and {file} is not in the Hugging Face cache at {}: fetch it on \
         a machine with a network (`clshost weights fetch {file}`) and copy that folder here",
        cache.display()
    )]
    Offline {
        /// The source (`hf:...`).
        file: String,
        /// The repository's folder in the Hub cache.
        cache: PathBuf,
    },
    /// The repository holds none of the files tried.
    #[error(
        "{url} does not exist{}: name the file as hf:{repo}[@REVISION]/FILE",
        others(.also)
    )]
    NotFound {
        /// The URL of the first file tried.
        url: String,
        /// The other files tried.
        also: Vec<String>,
        /// `ORG/NAME`.
        repo: String,
    },
    /// The Hub refused the request without a token, or with the one given.
    #[error(
        "{url} needs access ({status}): the repository is gated or private; accept its terms \
         on the Hub and set {TOKEN_VAR} (or run `huggingface-cli login`)"
    )]
    Denied {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The download failed (no network, a server error, a broken transfer).
    #[error(
        "cannot download {url} ({cause}): fetch it on a machine with a network (`clshost \
         weights fetch {file}`) and copy the Hugging Face cache folder {} here, or download the \
         file elsewhere and name its path instead",
        cache.display()
    )]
    Download {
        /// The source (`hf:...`).
        file: String,
        /// The URL.
        url: String,
        /// Why it failed.
        cause: String,
        /// The repository's folder in the Hub cache.
        cache: PathBuf,
    },
    /// The download's SHA-256 is not the one the Hub names it by; it was deleted.
    #[error(
        "{url} arrived with SHA-256 {actual}, but the Hub names it {expected}: the download \
         was discarded and nothing was cached"
    )]
    Corrupt {
        /// The URL.
        url: String,
        /// The SHA-256 the Hub gave (the blob's ETag).
        expected: String,
        /// The SHA-256 of what arrived.
        actual: String,
    },
    /// A cached blob whose SHA-256 is not its name.
    #[error(
        "{} has SHA-256 {actual}, but the Hugging Face cache names it by {expected}: delete it \
         (and the snapshot link to it) to download it again",
        path.display()
    )]
    BadFile {
        /// The blob.
        path: PathBuf,
        /// Its name: the SHA-256 it should have.
        expected: String,
        /// Its SHA-256.
        actual: String,
    },
    /// A `config.json` that is not timm's.
    #[error("{} is not a timm model config: {reason}", path.display())]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file in the Hub cache that could not be read or removed.
    #[error("cannot use {} in the Hugging Face cache: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        cause: io::Error,
    },
}

/// ` (nor X, Y)` for the other files tried, or nothing.
fn others(also: &[String]) -> String {
    if also.is_empty() {
        String::new()
    } else {
        format!(" (nor does {})", also.join(", "))
    }
}

/// The Hub and its cache, as the environment configures them.
#[derive(Debug, Clone, PartialEq)]
pub struct Hub {
    /// The Hub cache folder.
    cache: PathBuf,
    /// The Hub's URL, without a trailing `/`.
    endpoint: String,
    /// Whether only cached files may be used.
    offline: bool,
    /// The access token `HF_TOKEN` gives.
    token: Option<String>,
    /// The token file read without `HF_TOKEN`, when a download needs it.
    token_file: Option<PathBuf>,
}

impl Hub {
    /// The Hub as the variables `var` returns (empty ones count as unset) and the home folder
    /// configure it; where the cache folder would need a home folder there is none of, it is
    /// `no_home`.
    pub(super) fn configure(
        var: &dyn Fn(&str) -> Option<OsString>,
        home: Option<&Path>,
        no_home: &Path,
    ) -> Hub {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let hf_home = python_cache_home(&var, HOME_VAR, "huggingface", home);
        let cache = match var(HUB_CACHE_VAR).or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
            Some(dir) => expand_home(PathBuf::from(dir), home),
            None => hf_home.as_ref().map(|h| h.join("hub")),
        }
        .unwrap_or_else(|| no_home.to_path_buf());
        let endpoint = var(ENDPOINT_VAR)
            .map(|v| v.to_string_lossy().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let offline = var(OFFLINE_VAR).is_some_and(|v| {
            matches!(
                v.to_string_lossy().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let token = var(TOKEN_VAR).map(|t| t.to_string_lossy().trim().to_string());
        let token_file = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .or_else(|| hf_home.map(|h| h.join("token")));
        Hub {
            cache,
            endpoint,
            offline,
            token,
            token_file,
        }
    }

    /// The access token: `HF_TOKEN`, else the token file's content (read only here, when a
    /// download is about to be made); `None` when neither holds one.
    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| {
                let text = fs::read_to_string(self.token_file.as_ref()?).ok()?;
                Some(text.trim().to_string())
            })
            .filter(|t| !t.is_empty())
    }

    /// The Hub cache folder.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The Hub's URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where `file`'s repository is kept in the Hub cache.
    pub fn repo_dir(&self, file: &HubFile) -> PathBuf {
        self.cache.join(file.repo().folder_name())
    }

    /// The URL the file `name` of `file`'s repository is downloaded from (the client's
    /// `resolve` URL, built from its own repository and revision paths).
    pub fn url(&self, file: &HubFile, name: &str) -> String {
        let repo = file.repo();
        let (path, revision) = (repo.url(), repo.url_revision());
        format!("{}/{path}/resolve/{revision}/{name}", self.endpoint)
    }

    /// Where `file` would be downloaded from: its URL, or its default files' URLs.
    pub fn url_of(&self, file: &HubFile) -> String {
        let urls: Vec<String> = file
            .candidates()
            .into_iter()
            .map(|name| self.url(file, name))
            .collect();
        urls.join(" (else ") + &")".repeat(urls.len() - 1)
    }

    /// The cached snapshot file of `file` (its first candidate that is cached), unchecked.
    pub fn find(&self, file: &HubFile) -> Option<PathBuf> {
        let cached = hf_hub::Cache::new(self.cache.clone()).repo(file.repo());
        file.candidates()
            .into_iter()
            .find_map(|name| cached.get(name))
    }

    /// The file of `file` and whether it was downloaded now: from the Hub cache, or else
    /// downloaded into it (with a progress bar on stderr when `progress` is set); checked
    /// against the SHA-256 its blob is named by.
    pub fn fetch(&self, file: &HubFile, progress: bool) -> Result<(PathBuf, bool), HubError> {
        if let Some(path) = self.find(file) {
            check(&path)?;
            return Ok((path, false));
        }
        if self.offline {
            return Err(HubError::Offline {
                file: file.to_string(),
                cache: self.repo_dir(file),
            });
        }
        let api = ApiBuilder::from_cache(hf_hub::Cache::new(self.cache.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_token(self.token())
            .with_progress(false)
            .with_user_agent("clshost", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| self.download_error(file, &self.url_of(file), e.to_string()))?;
        let repo = api.repo(file.repo());
        let mut missing = Vec::new();
        for name in file.candidates() {
            let url = self.url(file, name);
            let bar = Bar {
                show: progress,
                bar: ProgressBar::hidden(),
            };
            match repo.download_with_progress(name, bar) {
                Ok(path) => {
                    return match check(&path) {
                        Err(HubError::BadFile {
                            path: blob,
                            expected,
                            actual,
                        }) => {
                            discard(&blob, &path)?;
                            Err(HubError::Corrupt {
                                url,
                                expected,
                                actual,
                            })
                        }
                        checked => checked.map(|()| (path, true)),
                    };
                }
                Err(ApiError::RequestError(e)) => match *e {
                    ureq::Error::StatusCode(404) => missing.push(url),
                    ureq::Error::StatusCode(status @ (401 | 403)) => {
                        return Err(HubError::Denied { url, status });
                    }
                    other => return Err(self.download_error(file, &url, cause(&other))),
                },
                Err(e) => return Err(self.download_error(file, &url, e.to_string())),
            }
        }
        let url = missing.remove(0);
        let also = missing
            .iter()
            .map(|u| u.rsplit('/').next().unwrap_or(u).to_string())
            .collect();
        Err(HubError::NotFound {
            url,
            also,
            repo: file.repo.clone(),
        })
    }

    /// The timm config of `file`'s repository (its `config.json` at the same revision, fetched
    /// as any Hub file is); `None` when the repository has none.
    pub fn config(&self, file: &HubFile, progress: bool) -> Result<Option<TimmConfig>, HubError> {
        let config = HubFile {
            file: Some("config.json".to_string()),
            ..file.clone()
        };
        let path = match self.fetch(&config, progress) {
            Ok((path, _)) => path,
            Err(HubError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |reason: String| HubError::BadConfig {
            path: path.clone(),
            reason,
        };
        let text = fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    /// [`HubError::Download`] for `url`, failed for `cause`.
    fn download_error(&self, file: &HubFile, url: &str, cause: String) -> HubError {
        HubError::Download {
            file: file.to_string(),
            url: url.to_string(),
            cause,
            cache: self.repo_dir(file),
        }
    }
}

/// What a timm repository's `config.json` says about its model (the fields clshost uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TimmConfig {
    /// timm's model name (`resnet50`), which is the resnet plugin's backbone name for the
    /// architectures both have.
    pub architecture: Option<String>,
    /// The classifier's output count.
    pub num_classes: Option<usize>,
    /// The class names in output order, when the repository gives them.
    pub label_names: Option<Vec<String>>,
    /// How the weights were evaluated.
    pub pretrained_cfg: Option<PretrainedCfg>,
}

/// The part of timm's `pretrained_cfg` that describes eval preprocessing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PretrainedCfg {
    /// `[channels, height, width]` of the crop.
    pub input_size: Option<[u32; 3]>,
    /// The crop's share of the resized image: the resize is `floor(crop / crop_pct)`.
    pub crop_pct: Option<f64>,
    /// The resize filter (`bilinear`, `bicubic`).
    pub interpolation: Option<String>,
    /// Per-channel mean, on the 0..1 scale.
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation, on the 0..1 scale.
    pub std: Option<[f32; 3]>,
}

impl TimmConfig {
    /// The class names: the config's own, or ImageNet-1k's for a 1000-class head (timm's
    /// ImageNet-1k order is torchvision's, WordNet ids sorted).
    pub fn classes(&self) -> Option<Vec<String>> {
        match (&self.label_names, self.num_classes) {
            (Some(names), n) if n.is_none_or(|n| n == names.len()) => Some(names.clone()),
            (None, Some(1000)) => Some(
                zoo::imagenet_classes()
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The eval preprocessing, as timm's eval transform does it for a centre crop: resize the
    /// shorter side to `floor(crop / crop_pct)`, crop the centre, normalize.
    pub fn preprocessing(&self) -> Option<Preprocessing> {
        let cfg = self.pretrained_cfg.as_ref()?;
        let [_, height, width] = cfg.input_size?;
        let crop_pct = cfg.crop_pct.unwrap_or(0.875);
        if height != width || !(crop_pct > 0.0 && crop_pct <= 1.0) {
            return None;
        }
        Some(Preprocessing {
            resize: (f64::from(height) / crop_pct).floor() as u32,
            crop: height,
            interpolation: match cfg.interpolation.as_deref() {
                Some("bicubic") => "bicubic",
                Some("nearest") => "nearest",
                _ => "bilinear",
            },
            mean: cfg.mean?,
            std: cfg.std?,
        })
    }
}

/// Checks the cached file `path` (a snapshot link) against the SHA-256 its blob is named by,
/// when the blob is named by one (small files the Hub keeps in Git itself are named by their
/// Git object id, which is not checked).
fn check(path: &Path) -> Result<(), HubError> {
    let io_error = |cause| HubError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let blob = fs::canonicalize(path).map_err(io_error)?;
    let Some(expected) = blob
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
    else {
        return Ok(());
    };
    let actual = sha256_file(&blob).map_err(|cause| HubError::Io {
        path: blob.clone(),
        cause,
    })?;
    if actual == expected {
        Ok(())
    } else {
        Err(HubError::BadFile {
            path: blob,
            expected,
            actual,
        })
    }
}

/// Deletes a bad download: its blob and the snapshot link to it.
fn discard(blob: &Path, link: &Path) -> Result<(), HubError> {
    for path in [link, blob] {
        match fs::remove_file(path) {
            Err(cause) if cause.kind() != io::ErrorKind::NotFound => {
                return Err(HubError::Io {
                    path: path.to_path_buf(),
                    cause,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The client's download progress on clshost's progress bar.
struct Bar {
    /// Whether to draw it.
    show: bool,
    /// The bar, made when the download's size is known.
    bar: ProgressBar,
}

impl Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        self.bar = progress_bar(self.show, Some(size as u64), filename);
    }

    fn update(&mut self, size: usize) {
        self.bar.inc(size as u64);
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(rest: &str) -> Result<HubFile, SourceError> {
        HubFile::parse(&format!("hf:{rest}"), rest)
    }

    #[test]
    fn sources_name_a_repository_a_revision_and_a_file() {
        let plain = parse("timm/resnet50.a1_in1k").unwrap();
        assert_eq!(
            plain,
            HubFile {
                repo: "timm/resnet50.a1_in1k".into(),
                revision: "main".into(),
                file: None,
            }
        );
        assert_eq!(plain.to_string(), "hf:timm/resnet50.a1_in1k");
        let full = parse("timm/resnet50.a1_in1k@v1.0/weights/pytorch_model.bin").unwrap();
        assert_eq!(full.revision, "v1.0");
        assert_eq!(full.file.as_deref(), Some("weights/pytorch_model.bin"));
        assert_eq!(
            full.to_string(),
            "hf:timm/resnet50.a1_in1k@v1.0/weights/pytorch_model.bin"
        );
        for bad in [
            "timm",
            "timm/",
            "/resnet50",
            "timm/resnet50@",
            "timm/-resnet50",
            "ti mm/resnet50",
            "timm/resnet50/",
            "timm/resnet50/a//b.bin",
            "timm/resnet50/../x.bin",
        ] {
            assert!(
                matches!(parse(bad), Err(SourceError::BadHubName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_timm_config_gives_the_architecture_classes_and_eval_preprocessing() {
        // The fields of timm/resnet50.a1_in1k's config.json that clshost reads.
        let config: TimmConfig = serde_json::from_str(
            r#"{"architecture": "resnet50", "num_classes": 1000, "num_features": 2048,
                "pretrained_cfg": {"tag": "a1_in1k", "input_size": [3, 224, 224],
                "test_input_size": [3, 288, 288], "interpolation": "bicubic", "crop_pct": 0.95,
                "crop_mode": "center", "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225], "num_classes": 1000}}"#,
        )
        .unwrap();
        assert_eq!(config.architecture.as_deref(), Some("resnet50"));
        let classes = config.classes().unwrap();
        assert_eq!((classes.len(), classes[0].as_str()), (1000, "tench"));
        let p = config.preprocessing().unwrap();
        assert_eq!((p.resize, p.crop, p.interpolation), (235, 224, "bicubic"));
        assert_eq!(p.std, [0.229, 0.224, 0.225]);

        let two: TimmConfig = serde_json::from_str(
            r#"{"architecture": "resnet18", "num_classes": 2, "label_names": ["cat", "dog"]}"#,
        )
        .unwrap();
        assert_eq!(two.classes().unwrap(), ["cat", "dog"]);
        assert_eq!(two.preprocessing(), None);
        let unnamed: TimmConfig = serde_json::from_str(r#"{"num_classes": 10}"#).unwrap();
        assert_eq!(unnamed.classes(), None);
    }

    /// A server on 127.0.0.1 answering each of `statuses.len()` requests with the next status
    /// and no body; its URL.
    fn answering(statuses: &'static [&'static str]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for (status, stream) in statuses.iter().zip(listener.incoming()) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        url
    }

    #[test]
    fn a_gated_repository_asks_for_a_token_and_nothing_is_cached() {
        for status in [&["401 Unauthorized"], &["403 Forbidden"]] {
            let cache = tempfile::tempdir().unwrap();
            let hub = Hub {
                cache: cache.path().to_path_buf(),
                endpoint: answering(status),
                offline: false,
                token: None,
                token_file: None,
            };
            let file = parse("org/gated/w.bin").unwrap();
            let err = hub.fetch(&file, false).unwrap_err();
            let code: u16 = status[0][..3].parse().unwrap();
            assert!(
                matches!(&err, HubError::Denied { status, .. } if *status == code),
                "{err:?}"
            );
            assert!(
                err.to_string().ends_with(&format!(
                    "/org/gated/resolve/main/w.bin needs access ({code}): the repository is \
                     gated or private; accept its terms on the Hub and set HF_TOKEN (or run \
                     `huggingface-cli login`)"
                )),
                "{err}"
            );
            assert_eq!(hub.find(&file), None);
        }
    }

    /// The Hub configured from `vars`, with the home folder `/home/u`.
    fn configured(vars: &[(&str, &str)]) -> Hub {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Hub::configure(
            &|name| vars.get(name).cloned(),
            Some(Path::new("/home/u")),
            Path::new("/no-home"),
        )
    }

    #[test]
    fn the_cache_endpoint_offline_mode_and_token_follow_huggingface_hubs_variables() {
        let default = configured(&[]);
        assert_eq!(
            default.cache_dir(),
            Path::new("/home/u/.cache/huggingface/hub")
        );
        assert_eq!(default.endpoint(), "https://huggingface.co");
        assert!(!default.offline);
        assert_eq!(
            configured(&[("XDG_CACHE_HOME", "/xdg")]).cache_dir(),
            Path::new("/xdg/huggingface/hub")
        );
        assert_eq!(
            configured(&[("HF_HOME", "~/hf")]).cache_dir(),
            Path::new("/home/u/hf/hub")
        );
        assert_eq!(
            configured(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/hub")]).cache_dir(),
            Path::new("/hub")
        );
        let mirror = configured(&[("HF_ENDPOINT", "http://127.0.0.1:9/")]);
        assert_eq!(mirror.endpoint(), "http://127.0.0.1:9");
        let net = parse("org/net@v2/sub/w.bin").unwrap();
        assert_eq!(
            mirror.url(&net, "sub/w.bin"),
            "http://127.0.0.1:9/org/net/resolve/v2/sub/w.bin"
        );
        assert_eq!(
            mirror.repo_dir(&net),
            Path::new("/home/u/.cache/huggingface/hub/models--org--net")
        );
        assert_eq!(
            mirror.url_of(&parse("org/net").unwrap()),
            "http://127.0.0.1:9/org/net/resolve/main/model.safetensors (else \
             http://127.0.0.1:9/org/net/resolve/main/pytorch_model.bin)"
        );
        for (value, offline) in [("1", true), ("ON", true), ("true", true), ("0", false)] {
            assert_eq!(configured(&[("HF_HUB_OFFLINE", value)]).offline, offline);
        }
        assert_eq!(
            configured(&[("HF_TOKEN", " hf_x \n")]).token().as_deref(),
            Some("hf_x")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        fs::write(&file, "hf_file\n").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(
            configured(&[("HF_TOKEN_PATH", path)]).token().as_deref(),
            Some("hf_file")
        );
        assert_eq!(configured(&[("HF_HOME", "/nowhere")]).token(), None);
    }
}
