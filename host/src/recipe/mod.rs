//! Recipes: the whole experiment in one RON file.
//!
//! Loading a recipe runs in steps, each in its own module:
//!
//! 1. [`doc`]: parse the file into a tree that remembers where every value was written;
//! 2. [`compose`]: follow `base:` inheritance, deep-merge, apply `--set` overrides;
//! 3. [`typed`]: deserialize each section into the [`schema`] types, collecting every problem
//!    with the file, line and column of the value at fault;
//! 4. [`validate`]: resolve component names against the loaded plugins, let each plugin check
//!    its params, and apply the cross-field rules.
//!
//! Every problem found is reported, not only the first, each as one line:
//! `recipes/r.ron:12:17: \`data.batch_sise\`: unknown field ...; did you mean \`batch_size\`?`.

pub mod compose;
pub mod doc;
pub mod schema;
pub mod typed;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use doc::{Node, Origin};
pub use schema::Recipe;

/// One problem in a recipe, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where the offending value (or its closest written parent) is.
    pub origin: Option<Origin>,
    /// The dotted path of the offending field, empty when about the whole recipe.
    pub path: String,
    /// What is wrong, and what to do where that is known.
    pub message: String,
}

impl Problem {
    /// A problem at `origin` about the field at `path`.
    pub fn new(
        origin: Option<Origin>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            origin,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Whether the problem is about the top-level field `section` (or the whole recipe).
    pub fn in_section(&self, section: &str) -> bool {
        self.path.is_empty() || section_of(&self.path) == section
    }
}

/// The top-level field a dotted path starts in: `trainer` for `trainer.epochs`, `augment` for
/// `augment[1].params.p`.
pub fn section_of(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or_default()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "`{}`: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a recipe cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A recipe file cannot be read.
    #[error("cannot read recipe {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A `base:` chain comes back to a file already in it.
    #[error("recipe `base` cycle: {0}")]
    Cycle(String),
    /// RON syntax error.
    #[error(transparent)]
    Syntax(#[from] doc::SyntaxError),
    /// One or more problems, each on its own line.
    #[error("{}", lines(.0))]
    Invalid(Vec<Problem>),
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl RecipeError {
    /// Every problem as its own line.
    pub fn problems(&self) -> Vec<String> {
        match self {
            RecipeError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// A recipe after composition, overrides and typing.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The recipe file.
    pub path: PathBuf,
    /// The composed document, for locating problems.
    pub doc: Node,
    /// The typed recipe, every default filled in.
    pub recipe: Recipe,
}

impl Resolved {
    /// Loads `path`, composes its `base:` chain, applies `overrides` (`path=value`) and
    /// deserializes it. Problems with plugins and data are found by [`validate::validate`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Resolved, RecipeError> {
        match Resolved::load_partial(path, overrides)? {
            (resolved, problems) if problems.is_empty() => Ok(resolved),
            (_, problems) => Err(RecipeError::Invalid(problems)),
        }
    }

    /// [`Resolved::load`], except that sections that cannot be typed are left at their
    /// defaults and their problems returned beside the recipe, so that what the other sections
    /// name can still be checked.
    pub fn load_partial(
        path: &Path,
        overrides: &[String],
    ) -> Result<(Resolved, Vec<Problem>), RecipeError> {
        Resolved::from_doc(compose::load(path)?, path, overrides)
    }

    /// A recipe clshost writes itself (for published weights used without a run): `text`,
    /// named `source` in messages, with `overrides`; every problem is an error.
    pub fn from_text(
        text: &str,
        source: &str,
        overrides: &[String],
    ) -> Result<Resolved, RecipeError> {
        let doc = doc::parse(text, source)?;
        match Resolved::from_doc(doc, Path::new(source), overrides)? {
            (resolved, problems) if problems.is_empty() => Ok(resolved),
            (_, problems) => Err(RecipeError::Invalid(problems)),
        }
    }

    /// `doc` (the document of the recipe at `path`) with `overrides` applied, typed.
    fn from_doc(
        mut doc: Node,
        path: &Path,
        overrides: &[String],
    ) -> Result<(Resolved, Vec<Problem>), RecipeError> {
        let defaults = typed::to_doc(&Recipe::default());
        for spec in overrides {
            compose::apply_override(&mut doc, spec, &defaults)?;
        }
        let (mut recipe, problems) = typed::partial(&doc);
        if recipe.name.is_empty() {
            recipe.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let resolved = Resolved {
            path: path.to_path_buf(),
            doc,
            recipe,
        };
        Ok((resolved, problems))
    }

    /// The resolved recipe as RON, every default written out: what a run records and what
    /// `clshost check --print` shows. It can be passed back to `run` as it is.
    pub fn to_ron(&self) -> String {
        typed::to_doc(&self.recipe).to_ron() + "\n"
    }

    /// The resolved recipe's every field as `(dotted path, RON value)`, defaults included
    /// (`optimizer.lr`, `metrics.0.name`, `model.params.depth`): what loggers record as the
    /// run's parameters.
    pub fn params(&self) -> Vec<(String, String)> {
        typed::to_doc(&self.recipe).flatten("")
    }

    /// The origin of the value at `path` (or of its closest written parent).
    pub fn origin_of(&self, path: &str) -> Option<Origin> {
        doc::parse_path(path).map(|p| self.doc.origin_of(&p).clone())
    }
}
