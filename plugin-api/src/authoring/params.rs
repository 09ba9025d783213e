//! A component's entry in the plugin's component list: its parameter docs (from the config's
//! [`ConfigDoc`]) paired with the defaults, cut from the RON of `Config::default()` so they print
//! exactly as a recipe writes them, and the whole default config.

use abi_stable::std_types::{RString, RVec};

use super::{Component, ConfigDoc};
use crate::{ComponentInfo, ComponentKind, LoggerInfo, ParamDoc, PluginError};

/// A component's parameters with their defaults, and its whole default config: what its
/// [`ComponentInfo`] or [`LoggerInfo`] lists besides its name and description.
pub(super) struct Documented {
    params: RVec<ParamDoc>,
    default_config: RString,
}

impl Documented {
    /// The component list entry of a component of `kind` named `name`.
    pub(super) fn component(
        self,
        kind: ComponentKind,
        name: &str,
        description: &str,
    ) -> ComponentInfo {
        ComponentInfo {
            kind,
            name: name.into(),
            description: description.into(),
            params: self.params,
            default_config: self.default_config,
        }
    }

    /// The list entry of the logger named `name`.
    pub(super) fn logger(self, name: &str, description: &str) -> LoggerInfo {
        LoggerInfo {
            name: name.into(),
            description: description.into(),
            params: self.params,
            default_config: self.default_config,
        }
    }
}

/// Documents a component's config: defaults come from serializing `Config::default()`.
pub(super) fn documented<T: Component>() -> Result<Documented, PluginError> {
    let defaults = default_fields::<T>()?;
    let params = <T::Config as ConfigDoc>::PARAMS
        .iter()
        .map(|p| ParamDoc {
            name: p.name.into(),
            default: defaults
                .iter()
                .find(|(name, _)| name == p.name)
                .map(|(_, value)| value.as_str())
                .unwrap_or("")
                .into(),
            doc: p.doc.into(),
        })
        .collect();
    let default_config = ron::ser::to_string_pretty(&T::Config::default(), pretty())
        .map_err(|e| PluginError::internal(format!("cannot write the default config: {e}")))?;
    Ok(Documented {
        params,
        default_config: default_config.into(),
    })
}

/// RON formatting for default configs: struct names omitted, compact nesting.
fn pretty() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::new()
        .struct_names(false)
        .depth_limit(1)
}

/// The default config's top-level fields as `(name, RON value)` pairs, in declaration order.
///
/// The values are cut from the compact RON serialization of `Config::default()`, so tuples,
/// enum variants and nested structs print exactly as a recipe would write them.
fn default_fields<T: Component>() -> Result<Vec<(String, String)>, PluginError> {
    let text = ron::ser::to_string_pretty(&T::Config::default(), compact())
        .map_err(|e| PluginError::internal(format!("cannot write the default config: {e}")))?;
    Ok(top_level_fields(&text))
}

/// RON on one line, without struct names.
fn compact() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::new()
        .struct_names(false)
        .compact_arrays(true)
        .compact_structs(true)
        .compact_maps(true)
        .new_line("")
        .indentor("")
}

/// Splits `(a: 1, b: (2, 3))` into `[("a", "1"), ("b", "(2, 3)")]`: commas and colons count only
/// at the outermost nesting level and outside strings.
fn top_level_fields(text: &str) -> Vec<(String, String)> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or("");
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in inner.char_indices() {
        match c {
            _ if in_string && escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '(' | '[' | '{' if !in_string => depth += 1,
            ')' | ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter_map(|part| {
            let (name, value) = part.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authoring::Param;
    use crate::parse_config;
    use serde::{Deserialize, Serialize};

    #[test]
    fn top_level_fields_respect_nesting_and_strings() {
        assert_eq!(
            top_level_fields(r#"(a: 1, b: (2, 3), c: "x, (y: \"z", d: Some([1, 2]), e: Bicubic)"#),
            [
                ("a", "1"),
                ("b", "(2, 3)"),
                ("c", r#""x, (y: \"z""#),
                ("d", "Some([1, 2])"),
                ("e", "Bicubic"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert!(top_level_fields("()").is_empty());
    }

    /// A config documented by hand, with a tuple, an enum and an option.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default, rename_all = "snake_case")]
    struct CropConfig {
        scale: (f64, f64),
        mode: Mode,
        size: Option<u32>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Bicubic,
    }

    impl Default for CropConfig {
        fn default() -> Self {
            CropConfig {
                scale: (0.08, 1.0),
                mode: Mode::Bicubic,
                size: None,
            }
        }
    }

    impl ConfigDoc for CropConfig {
        const PARAMS: &'static [Param] = &[
            Param::new("scale", "area range"),
            Param::new("mode", "kernel"),
            Param::new("size", "output size"),
        ];
    }

    struct Crop;

    impl Component for Crop {
        const NAME: &'static str = "crop";
        const DESCRIPTION: &'static str = "test";
        type Config = CropConfig;
    }

    #[test]
    fn params_pair_the_config_docs_with_defaults_as_a_recipe_writes_them() {
        let info = documented::<Crop>().unwrap().component(
            ComponentKind::SampleAugment,
            Crop::NAME,
            Crop::DESCRIPTION,
        );
        let params: Vec<(&str, &str, &str)> = info
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.default.as_str(), p.doc.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("scale", "(0.08, 1.0)", "area range"),
                ("mode", "bicubic", "kernel"),
                ("size", "None", "output size")
            ]
        );
        let parsed: CropConfig = parse_config(&info.default_config).unwrap();
        assert_eq!(parsed.scale, (0.08, 1.0));
    }
}
