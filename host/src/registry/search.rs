//! Where plugins are looked for, in which order, and which files count as plugins.
//!
//! The search order is: files and directories given on the command line (`--plugin`,
//! `--plugin-dir`), then the directories in `CLSHOST_PLUGIN_PATH` (separated like `PATH`), then
//! the directory holding the `clshost` executable (so `target/release/` works right after a
//! build), then the per-user data directory (`~/.local/share/clshost/plugins` on Linux).
//!
//! In a directory, only files named `{lib}clshost_plugin_<name>.{so,dylib,dll}` are opened (the
//! platform's library prefix and suffix). When two directories hold a file of the same name, the
//! earlier one wins and the later is skipped, as with `PATH`. A file named with `--plugin` is
//! opened whatever its name.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// The environment variable listing extra plugin directories.
pub const PLUGIN_PATH_ENV: &str = "CLSHOST_PLUGIN_PATH";

/// The part of a plugin's file name after the platform's library prefix.
pub const FILE_STEM_PREFIX: &str = "clshost_plugin_";

/// Where a candidate plugin file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Named with `--plugin`.
    Flag,
    /// Found in a `--plugin-dir` directory.
    FlagDir,
    /// Found in a `CLSHOST_PLUGIN_PATH` directory.
    Env,
    /// Found next to the `clshost` executable.
    ExeDir,
    /// Found in the per-user plugin directory.
    UserDir,
}

impl Source {
    /// How the source is described in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "--plugin",
            Source::FlagDir => "--plugin-dir",
            Source::Env => PLUGIN_PATH_ENV,
            Source::ExeDir => "executable directory",
            Source::UserDir => "user directory",
        }
    }

    /// Whether a failure to load from this source must stop the command. Files the user named
    /// explicitly are required; discovered ones are skipped with a warning.
    pub fn required(self) -> bool {
        matches!(self, Source::Flag)
    }
}

/// A plugin file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The file.
    pub path: PathBuf,
    /// Where it was found.
    pub source: Source,
}

/// A directory searched for plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    /// The directory.
    pub path: PathBuf,
    /// Which setting put it on the search path.
    pub source: Source,
}

/// The inputs of plugin discovery.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// Files named with `--plugin`.
    pub files: Vec<PathBuf>,
    /// Directories named with `--plugin-dir`.
    pub dirs: Vec<PathBuf>,
    /// The value of `CLSHOST_PLUGIN_PATH`.
    pub env: Option<OsString>,
    /// The directory of the running executable.
    pub exe_dir: Option<PathBuf>,
    /// The per-user plugin directory.
    pub user_dir: Option<PathBuf>,
}

/// A directory named with `--plugin-dir` that cannot be listed.
#[derive(Debug, thiserror::Error)]
#[error("plugin directory {}: {cause}", path.display())]
pub struct DirError {
    /// The directory.
    pub path: PathBuf,
    /// Why it cannot be listed (in the message, so not also the error's `source()`).
    pub cause: std::io::Error,
}

impl SearchPath {
    /// The search path for this process: the given flags, the environment, the executable's
    /// directory and the user directory.
    pub fn from_env(files: Vec<PathBuf>, dirs: Vec<PathBuf>) -> Self {
        SearchPath {
            files,
            dirs,
            env: env::var_os(PLUGIN_PATH_ENV),
            exe_dir: env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
            user_dir: dirs::data_dir().map(|d| d.join("clshost").join("plugins")),
        }
    }

    /// The directories searched, in order.
    pub fn directories(&self) -> Vec<SearchDir> {
        let flag = self.dirs.iter().map(|p| (p.clone(), Source::FlagDir));
        let env = self
            .env
            .iter()
            .flat_map(env::split_paths)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| (p, Source::Env));
        let exe = self.exe_dir.iter().map(|p| (p.clone(), Source::ExeDir));
        let user = self.user_dir.iter().map(|p| (p.clone(), Source::UserDir));
        flag.chain(env)
            .chain(exe)
            .chain(user)
            .map(|(path, source)| SearchDir { path, source })
            .collect()
    }

    /// Every place searched, in order (`--plugin` files first, then [`SearchPath::directories`]),
    /// with the plugin files found in each and which of them an earlier one shadows.
    pub fn survey(&self) -> Vec<Location> {
        let mut first_by_file: HashMap<PathBuf, PathBuf> = HashMap::new();
        let mut first_by_name: HashMap<OsString, PathBuf> = HashMap::new();
        let mut found = |path: PathBuf| {
            let by_file = canonical(&path).and_then(|real| match first_by_file.entry(real) {
                Entry::Occupied(first) => Some(first.get().clone()),
                Entry::Vacant(slot) => {
                    slot.insert(path.clone());
                    None
                }
            });
            let name = path.file_name().map(OsString::from).unwrap_or_default();
            let shadowed_by = by_file.or_else(|| match first_by_name.entry(name) {
                Entry::Occupied(first) => Some(first.get().clone()),
                Entry::Vacant(slot) => {
                    slot.insert(path.clone());
                    None
                }
            });
            Found { path, shadowed_by }
        };
        let mut out: Vec<Location> = self
            .files
            .iter()
            .map(|path| Location {
                path: path.clone(),
                source: Source::Flag,
                listing: Ok(vec![found(path.clone())]),
            })
            .collect();
        for dir in self.directories() {
            let listing = fs::read_dir(&dir.path).map(|entries| {
                let mut files: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| is_plugin_file_name(p) && p.is_file())
                    .collect();
                files.sort();
                files.into_iter().map(&mut found).collect()
            });
            out.push(Location {
                path: dir.path,
                source: dir.source,
                listing,
            });
        }
        out
    }

    /// Every plugin file to load, in search order, without shadowed duplicates. Fails only when
    /// a `--plugin-dir` directory cannot be listed; other missing directories are skipped.
    pub fn candidates(&self) -> Result<Vec<Candidate>, DirError> {
        let mut out = Vec::new();
        for location in self.survey() {
            let files = match location.listing {
                Ok(files) => files,
                Err(source) if location.source == Source::FlagDir => {
                    return Err(DirError {
                        path: location.path,
                        cause: source,
                    });
                }
                Err(e) => {
                    tracing::debug!("skipping plugin directory {}: {e}", location.path.display());
                    continue;
                }
            };
            for file in files {
                match file.shadowed_by {
                    Some(first) => tracing::debug!(
                        "{} is shadowed by {}",
                        file.path.display(),
                        first.display()
                    ),
                    None => out.push(Candidate {
                        path: file.path,
                        source: location.source,
                    }),
                }
            }
        }
        Ok(out)
    }
}

/// One place on the search path: a `--plugin` file or a directory, and what it holds.
#[derive(Debug)]
pub struct Location {
    /// The file or directory.
    pub path: PathBuf,
    /// Which setting put it on the search path.
    pub source: Source,
    /// The plugin files found there, in load order, or why the directory cannot be listed. A
    /// `--plugin` file is listed as itself, whether or not it exists.
    pub listing: Result<Vec<Found>, std::io::Error>,
}

/// A plugin file found on the search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// The earlier file of the same name (or the same file reached twice) that is loaded
    /// instead of this one.
    pub shadowed_by: Option<PathBuf>,
}

fn canonical(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok()
}

/// Whether `path`'s file name follows the plugin naming convention for this platform.
pub fn is_plugin_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.strip_prefix(env::consts::DLL_PREFIX)
        .and_then(|rest| rest.strip_suffix(env::consts::DLL_SUFFIX))
        .and_then(|stem| stem.strip_prefix(FILE_STEM_PREFIX))
        .is_some_and(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str) -> String {
        format!(
            "{}{name}{}",
            env::consts::DLL_PREFIX,
            env::consts::DLL_SUFFIX
        )
    }

    #[test]
    fn naming_convention() {
        assert!(is_plugin_file_name(Path::new(&lib(
            "clshost_plugin_losses"
        ))));
        assert!(is_plugin_file_name(Path::new(&lib(
            "clshost_plugin_my_team2"
        ))));
        assert!(!is_plugin_file_name(Path::new(&lib("clshost_plugin_"))));
        assert!(!is_plugin_file_name(Path::new(&lib("clshost_plugin_Bad"))));
        assert!(!is_plugin_file_name(Path::new(&lib("other"))));
        assert!(!is_plugin_file_name(Path::new("clshost_plugin_losses.txt")));
    }

    #[test]
    fn search_order_and_shadowing() {
        let root = tempfile::tempdir().unwrap();
        let mk = |dir: &str, file: &str| {
            let d = root.path().join(dir);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(file), b"").unwrap();
            d
        };
        let flag_dir = mk("flag", &lib("clshost_plugin_a"));
        let env_dir = mk("env", &lib("clshost_plugin_a"));
        mk("env", &lib("clshost_plugin_b"));
        mk("env", "README.md");
        let exe_dir = mk("exe", &lib("clshost_plugin_c"));
        let explicit = root.path().join("anything.so");
        fs::write(&explicit, b"").unwrap();
        let search = SearchPath {
            files: vec![explicit.clone()],
            dirs: vec![flag_dir.clone()],
            env: Some(env::join_paths([&env_dir, &root.path().join("missing")]).unwrap()),
            exe_dir: Some(exe_dir.clone()),
            user_dir: Some(root.path().join("nope")),
        };
        let found: Vec<(PathBuf, Source)> = search
            .candidates()
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.source))
            .collect();
        assert_eq!(
            found,
            vec![
                (explicit.clone(), Source::Flag),
                (flag_dir.join(lib("clshost_plugin_a")), Source::FlagDir),
                (env_dir.join(lib("clshost_plugin_b")), Source::Env),
                (exe_dir.join(lib("clshost_plugin_c")), Source::ExeDir),
            ]
        );
        let survey: Vec<(PathBuf, Source, Option<Vec<Found>>)> = search
            .survey()
            .into_iter()
            .map(|l| (l.path, l.source, l.listing.ok()))
            .collect();
        let found = |dir: &Path, id: &str, shadowed_by: Option<PathBuf>| Found {
            path: dir.join(lib(id)),
            shadowed_by,
        };
        let first_a = flag_dir.join(lib("clshost_plugin_a"));
        assert_eq!(
            survey,
            vec![
                (
                    explicit.clone(),
                    Source::Flag,
                    Some(vec![Found {
                        path: explicit,
                        shadowed_by: None
                    }])
                ),
                (
                    flag_dir.clone(),
                    Source::FlagDir,
                    Some(vec![found(&flag_dir, "clshost_plugin_a", None)])
                ),
                (
                    env_dir.clone(),
                    Source::Env,
                    Some(vec![
                        found(&env_dir, "clshost_plugin_a", Some(first_a)),
                        found(&env_dir, "clshost_plugin_b", None),
                    ])
                ),
                (root.path().join("missing"), Source::Env, None),
                (
                    exe_dir.clone(),
                    Source::ExeDir,
                    Some(vec![found(&exe_dir, "clshost_plugin_c", None)])
                ),
                (root.path().join("nope"), Source::UserDir, None),
            ]
        );
    }

    #[test]
    fn a_missing_flag_directory_is_an_error() {
        let search = SearchPath {
            dirs: vec![PathBuf::from("/definitely/not/here")],
            ..SearchPath::default()
        };
        let err = search.candidates().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("plugin directory /definitely/not/here: ")
        );
    }
}
