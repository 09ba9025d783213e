//! Parsing a component's RON config into its serde type, with errors that say where and why,
//! and checks that configs share.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Parses `text` (the component's `params`, as RON) into `T`.
///
/// Empty text means "all defaults" and parses like `()`. Optional fields may be written without
/// `Some(..)` (RON's `implicit_some` extension is on): `size: (224, 224)`. On failure the error carries the field
/// path (`scale[1]`), the line and column in `text`, and for an unknown field the closest
/// valid name ("did you mean `scale`?"). Config types should use `#[serde(deny_unknown_fields)]`
/// and `#[serde(default)]`, so typos are caught and omitted fields take their defaults.
pub fn parse_config<T: DeserializeOwned>(text: &str) -> Result<T, PluginError> {
    let text = if text.trim().is_empty() { "()" } else { text };
    let options =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let mut de = ron::Deserializer::from_str_with_options(text, &options).map_err(spanned_error)?;
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let code = err.into_inner();
        let spanned = de.span_error(code);
        let mut error = spanned_error(spanned);
        error.field_path = join_path(&path, &error.field_path).into();
        error
    })?;
    de.end()
        .map_err(|code| spanned_error(de.span_error(code)))?;
    Ok(value)
}

/// Checks that the config field `field` holds a plain file name (no directory part) ending in
/// `.{extension}`, as the name of a file an exporter writes into the run's export directory
/// must be.
pub fn check_file_name(field: &str, value: &str, extension: &str) -> Result<(), PluginError> {
    let path = Path::new(value);
    if path.extension().is_some_and(|e| e == extension)
        && path.file_name() == Some(path.as_os_str())
    {
        Ok(())
    } else {
        Err(PluginError::config(
            field,
            format!("must be a plain file name ending in `.{extension}`"),
        ))
    }
}

/// Combines the path serde reports (`crop`, `scale[1]`) with the field a ron error names
/// (`sacle`), which the path may already end with.
fn join_path(path: &str, field: &str) -> String {
    let path = if matches!(path, "" | "." | "?") {
        ""
    } else {
        path
    };
    match (path, field) {
        ("", field) => field.to_string(),
        (path, "") => path.to_string(),
        (path, field) if path == field || path.ends_with(&format!(".{field}")) => path.to_string(),
        (path, field) => format!("{path}.{field}"),
    }
}

/// Turns a ron error with its position into a config error with a helpful message.
fn spanned_error(err: ron::error::SpannedError) -> PluginError {
    let position = err.span.start;
    let error = match err.code {
        ron::Error::NoSuchStructField {
            expected, found, ..
        } => PluginError::config(
            found.clone(),
            unknown_name_message("field", &found, expected),
        ),
        ron::Error::NoSuchEnumVariant {
            expected, found, ..
        } => PluginError::config(
            String::new(),
            unknown_name_message("value", &found, expected),
        ),
        ron::Error::MissingStructField { field, .. } => PluginError::config(field, "missing field"),
        ron::Error::DuplicateStructField { field, .. } => {
            PluginError::config(field, "field given twice")
        }
        other => PluginError::config(String::new(), other),
    };
    error.at(position.line as u32, position.col as u32)
}

/// "unknown field `sacle`; did you mean `scale`? (expected one of `scale`, `ratio`)".
fn unknown_name_message(what: &str, found: &str, expected: &[&str]) -> String {
    let list = expected
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut message = format!("unknown {what} `{found}`");
    if let Some(best) = closest(found, expected) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    if expected.is_empty() {
        message.push_str(" (this component takes no parameters)");
    } else {
        message.push_str(&format!(" (expected one of {list})"));
    }
    message
}

/// The candidate closest to `found`, when it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(found, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Crop {
        size: u32,
        scale: (f64, f64),
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Mode {
        Bilinear,
        Bicubic,
    }

    impl Default for Crop {
        fn default() -> Self {
            Crop {
                size: 224,
                scale: (0.08, 1.0),
                mode: Mode::Bilinear,
            }
        }
    }

    #[test]
    fn empty_text_gives_defaults() {
        assert_eq!(parse_config::<Crop>("").unwrap(), Crop::default());
        assert_eq!(parse_config::<Crop>("()").unwrap(), Crop::default());
    }

    #[test]
    fn values_parse() {
        let crop: Crop = parse_config("(size: 160, mode: Bicubic)").unwrap();
        assert_eq!(crop.size, 160);
        assert_eq!(crop.mode, Mode::Bicubic);
    }

    #[test]
    fn unknown_field_suggests_the_closest() {
        let err = parse_config::<Crop>("(size: 1,\n sacle: (0.1, 1.0))").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 2: `sacle`: unknown field `sacle`; did you mean `scale`? \
             (expected one of `size`, `scale`, `mode`)"
        );
    }

    #[test]
    fn wrong_type_names_the_nested_path() {
        let err = parse_config::<Crop>("(scale: (0.1, \"big\"))").unwrap_err();
        assert_eq!(err.field_path.as_str(), "scale[1]");
        assert!(err.position.is_some());
    }

    #[test]
    fn unknown_variant_suggests_the_closest() {
        let err = parse_config::<Crop>("(mode: Bicubc)").unwrap_err();
        assert_eq!(err.field_path.as_str(), "mode");
        assert!(err.message.contains("did you mean `Bicubic`?"), "{err}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse_config::<Crop>("(size: 1,,)").unwrap_err();
        assert_eq!(err.position.into_option().unwrap().line, 1);
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Optional {
        size: Option<(u32, u32)>,
    }

    #[test]
    fn optional_fields_need_no_some() {
        let plain: Optional = parse_config("(size: (3, 4))").unwrap();
        let explicit: Optional = parse_config("(size: Some((3, 4)))").unwrap();
        assert_eq!(plain.size, Some((3, 4)));
        assert_eq!(plain, explicit);
        assert_eq!(parse_config::<Optional>("(size: None)").unwrap().size, None);
    }

    #[test]
    fn trailing_text_is_an_error() {
        assert!(parse_config::<Crop>("(size: 1) (size: 2)").is_err());
    }
}
