//! Weight sources: naming a checkpoint, and turning the name into a file on this machine.
//!
//! A [`WeightSource`] is parsed from the text a user writes:
//!
//! - `torchvision:<arch>.<TAG>`: a checkpoint torchvision publishes for an architecture clshost
//!   ships, named after torchvision's weight enums (`torchvision:resnet50.IMAGENET1K_V2` is
//!   `ResNet50_Weights.IMAGENET1K_V2`); `torchvision:<arch>.DEFAULT` is the best one, as
//!   torchvision's `DEFAULT`. The [`zoo`] knows each one's URL, hash, accuracy, class names and
//!   eval preprocessing. An unknown name is an error listing the closest known ones.
//! - `hf:ORG/NAME[@REVISION][/FILE]` (or timm's `hf-hub:`): a file of a Hugging Face Hub model
//!   repository holding a ResNet in torchvision's naming, as timm publishes them
//!   (`hf:timm/resnet50.a1_in1k`); without `/FILE`, its `model.safetensors`, else its
//!   `pytorch_model.bin`. The [`hub`] module fetches it into the Hub's own cache.
//! - `https://...` or `http://...`: any checkpoint on a web server.
//! - `file:///absolute/path`, or a plain path (relative to the working directory, or absolute).
//!
//! [`Cache::resolve`] turns a source into a path. A local file is used where it is, a Hub file
//! as the [`hub`] module says. Anything else is known by its file name (the last part of its URL, as torch.hub does) and looked up,
//! in order, in
//!
//! 1. clshost's cache, `$CLSHOST_CACHE_DIR/weights/`, by default the platform's cache folder's
//!    `clshost/weights/` (`$XDG_CACHE_HOME/clshost/weights/` or `~/.cache/clshost/weights/` on
//!    Linux);
//! 2. PyTorch's, `$TORCH_HOME/hub/checkpoints/` (`TORCH_HOME` defaults to
//!    `$XDG_CACHE_HOME/torch` or `~/.cache/torch`, as torch.hub's does), so a checkpoint
//!    torchvision already downloaded is never downloaded again;
//!
//! and only then downloaded into clshost's cache: streamed to a temporary file in the cache
//! folder (with a progress bar on a terminal), checked, then renamed into place, so the cache
//! never holds a partial file. `CLSHOST_WEIGHTS_MIRROR` replaces torchvision's
//! `https://download.pytorch.org/models/` for the zoo's checkpoints, for machines that only see
//! a mirror.
//!
//! Checking follows torch.hub's `check_hash`: a file name with `-<hex>.` in it
//! (`resnet50-11ad3fa6.pth`) promises that the file's SHA-256 starts with those digits. A
//! download that breaks the promise is deleted and nothing is cached; a cached file that breaks
//! it is refused, with its path. Without a network, the error names the URL and the exact path
//! to put the file at by hand.

pub mod cache;
mod download;
pub mod hub;
pub mod zoo;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use cache::{Availability, Cache, Origin, ResolveError, Resolved};
pub use hub::{HubError, HubFile};
pub use zoo::Checkpoint;

/// Where a checkpoint comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightSource {
    /// A checkpoint of the torchvision zoo.
    Torchvision(&'static Checkpoint),
    /// A file of a Hugging Face Hub model repository.
    Hub(HubFile),
    /// A checkpoint on a web server, cached under `file`.
    Url {
        /// The `http://` or `https://` URL.
        url: String,
        /// The last part of its path: its name in the caches.
        file: String,
    },
    /// A file on this machine.
    File(PathBuf),
}

/// Text that names no weight source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// Nothing was given.
    #[error("the weight source is empty")]
    Empty,
    /// `torchvision:` with a name the zoo does not know.
    #[error(
        "unknown torchvision weights `{name}`{}; `clshost weights list` shows every one",
        did_you_mean(.suggestions)
    )]
    UnknownName {
        /// The name after `torchvision:`.
        name: String,
        /// Known names close to it, best first.
        suggestions: Vec<String>,
    },
    /// A `scheme:` prefix that is not one of the sources.
    #[error(
        "unknown weight source `{text}`{}: write torchvision:<arch>.<TAG>, hf:<org>/<name>, an \
         https://, http:// or file:// URL, or a path (a relative path with a `:` in it as \
         ./PATH)",
        did_you_mean(.suggestion.as_slice())
    )]
    UnknownScheme {
        /// The whole text.
        text: String,
        /// The known scheme closest to the one written, as `torchvision:`.
        suggestion: Option<String>,
    },
    /// An `hf:` source that names no Hub file.
    #[error("`{text}` is not a usable Hugging Face Hub source: {reason}")]
    BadHubName {
        /// The whole text.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `http(s):` URL clshost cannot download into its cache.
    #[error("`{url}` is not a usable weights URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `file:` URL that names no local path.
    #[error("`{url}` is not a usable file URL: {reason}")]
    BadFileUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// ` (did you mean `a` or `b`?)`, or nothing when there is nothing to suggest.
fn did_you_mean(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!(" (did you mean `{one}`?)"),
        [first @ .., last] => {
            let first: Vec<String> = first.iter().map(|n| format!("`{n}`")).collect();
            format!(" (did you mean {} or `{last}`?)", first.join(", "))
        }
    }
}

/// The schemes a source may start with.
const SCHEMES: [&str; 6] = ["torchvision", "hf", "hf-hub", "https", "http", "file"];

impl FromStr for WeightSource {
    type Err = SourceError;

    fn from_str(text: &str) -> Result<Self, SourceError> {
        if text.is_empty() {
            return Err(SourceError::Empty);
        }
        let Some((scheme, rest)) = split_scheme(text) else {
            return Ok(WeightSource::File(PathBuf::from(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "torchvision" => zoo::find(rest)
                .map(WeightSource::Torchvision)
                .ok_or_else(|| SourceError::UnknownName {
                    name: rest.to_string(),
                    suggestions: zoo::suggestions(rest),
                }),
            "hf" | "hf-hub" => HubFile::parse(text, rest).map(WeightSource::Hub),
            "http" | "https" => web_url(text).map(|file| WeightSource::Url {
                url: text.to_string(),
                file,
            }),
            "file" => file_url(text, rest).map(WeightSource::File),
            other => Err(SourceError::UnknownScheme {
                text: text.to_string(),
                suggestion: SCHEMES
                    .iter()
                    .map(|s| (strsim::jaro_winkler(other, s), s))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, s)| format!("{s}:")),
            }),
        }
    }
}

impl fmt::Display for WeightSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightSource::Torchvision(c) => write!(f, "torchvision:{}", c.name()),
            WeightSource::Hub(file) => file.fmt(f),
            WeightSource::Url { url, .. } => f.write_str(url),
            WeightSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `text` split at its URL scheme (`scheme:rest`), when it starts with one: a letter, then
/// letters, digits, `+`, `-` or `.`, at least two characters in all (so `C:\x` is a path).
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let valid = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (starts_with_letter && valid && scheme.len() >= 2).then_some((scheme, rest))
}

/// The file name an `http(s)://host/.../name` URL is cached under: the last part of its path.
fn web_url(url: &str) -> Result<String, SourceError> {
    let bad = |reason| SourceError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let after_scheme = url.split_once(':').map_or("", |(_, rest)| rest);
    let Some(rest) = after_scheme.strip_prefix("//") else {
        return Err(bad("write it as http(s)://HOST/PATH"));
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err(bad("it has no host"));
    }
    match path.rsplit('/').next().unwrap_or_default() {
        "" | "." | ".." => Err(bad(
            "its path does not end in a file name, which the download is cached under",
        )),
        file => Ok(file.to_string()),
    }
}

/// The local path of `file:///absolute/path` (or `file://localhost/absolute/path`), with its
/// `%XX` escapes decoded. `rest` is what follows `file:`.
fn file_url(url: &str, rest: &str) -> Result<PathBuf, SourceError> {
    let bad = |reason| SourceError::BadFileUrl {
        url: url.to_string(),
        reason,
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(bad("write it as file:///ABSOLUTE/PATH"));
    };
    let Some(slash) = rest.find('/') else {
        return Err(bad("write it as file:///ABSOLUTE/PATH"));
    };
    let (host, path) = rest.split_at(slash);
    if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
        return Err(bad(
            "it names another machine; only file:///PATH (this machine) is read",
        ));
    }
    let decoded =
        percent_decode(path).ok_or_else(|| bad("it has a `%` not followed by two hex digits"))?;
    String::from_utf8(decoded)
        .map(PathBuf::from)
        .map_err(|_| bad("its decoded path is not UTF-8"))
}

/// `text` with each `%XX` replaced by the byte it encodes; `None` for a malformed escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WeightSource, SourceError> {
        text.parse()
    }

    #[test]
    fn torchvision_names_and_their_default() {
        let v2 = parse("torchvision:resnet50.IMAGENET1K_V2").unwrap();
        assert_eq!(v2, WeightSource::Torchvision(&zoo::CHECKPOINTS[3]));
        assert_eq!(parse("torchvision:resnet50.DEFAULT").unwrap(), v2);
        assert_eq!(v2.to_string(), "torchvision:resnet50.IMAGENET1K_V2");
        let v1 = parse("torchvision:resnet18.DEFAULT").unwrap();
        assert_eq!(v1.to_string(), "torchvision:resnet18.IMAGENET1K_V1");
    }

    #[test]
    fn an_unknown_name_suggests_the_closest_ones() {
        let err = parse("torchvision:resnet50.IMAGENET1K_V3").unwrap_err();
        let SourceError::UnknownName { name, suggestions } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(name, "resnet50.IMAGENET1K_V3");
        assert_eq!(suggestions.len(), 3);
        assert!(suggestions[..2].contains(&"resnet50.IMAGENET1K_V2".to_string()));
        assert!(
            err.to_string().starts_with(
                "unknown torchvision weights `resnet50.IMAGENET1K_V3` (did you mean `"
            ),
            "{err}"
        );
        assert_eq!(
            parse("torchvision:swin_t").unwrap_err().to_string(),
            "unknown torchvision weights `swin_t`; `clshost weights list` shows every one"
        );
        let lower = parse("torchvision:resnet18.default")
            .unwrap_err()
            .to_string();
        assert!(lower.contains("did you mean `resnet18.DEFAULT`"), "{lower}");
    }

    #[test]
    fn urls_are_cached_under_the_last_part_of_their_path() {
        let source = parse("https://example.com/m/resnet50-11ad3fa6.pth?download=1").unwrap();
        assert_eq!(
            source,
            WeightSource::Url {
                url: "https://example.com/m/resnet50-11ad3fa6.pth?download=1".into(),
                file: "resnet50-11ad3fa6.pth".into(),
            }
        );
        assert!(matches!(
            parse("HTTP://127.0.0.1:8000/tiny.pth").unwrap(),
            WeightSource::Url { file, .. } if file == "tiny.pth"
        ));
        for bad in [
            "https://example.com/",
            "https://example.com",
            "http:///x.pth",
            "http:x.pth",
        ] {
            assert!(
                matches!(parse(bad), Err(SourceError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn file_urls_and_plain_paths_are_local_files() {
        assert_eq!(
            parse("file:///data/my%20weights/r50.pth").unwrap(),
            WeightSource::File("/data/my weights/r50.pth".into())
        );
        assert_eq!(
            parse("file://localhost/r50.pth").unwrap(),
            WeightSource::File("/r50.pth".into())
        );
        for path in [
            "weights/r50.pth",
            "/abs/r50.pth",
            "./odd:name.pth",
            "C:\\w\\r50.pth",
        ] {
            assert_eq!(parse(path).unwrap(), WeightSource::File(path.into()));
        }
        for bad in [
            "file:r50.pth",
            "file://server/r50.pth",
            "file:///bad%2",
            "file:///%+f",
            "file:///%ff",
        ] {
            assert!(
                matches!(parse(bad), Err(SourceError::BadFileUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_schemes_and_empty_text_are_errors() {
        assert_eq!(parse(""), Err(SourceError::Empty));
        let typo = parse("torchvison:resnet50.DEFAULT")
            .unwrap_err()
            .to_string();
        assert!(
            typo.starts_with(
                "unknown weight source `torchvison:resnet50.DEFAULT` (did you mean `torchvision:`?): "
            ),
            "{typo}"
        );
        let hub = parse("hff:timm/resnet50.a1_in1k").unwrap_err().to_string();
        assert!(hub.contains("(did you mean `hf:`?)"), "{hub}");
        let timm = parse("hf-hub:timm/resnet50.a1_in1k").unwrap();
        assert_eq!(timm.to_string(), "hf:timm/resnet50.a1_in1k");
    }
}
