//! The `#[serde(...)]` options that decide which fields a recipe sets and under which names.
//!
//! Options this derive does not need (`default`, `with`, `bound`, ...) are skipped; serde itself
//! checks them.

use syn::punctuated::Punctuated;
use syn::{Attribute, Error, Expr, ExprLit, Lit, Meta, MetaList, Token};

/// What the struct's `#[serde(...)]` attributes say.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `deny_unknown_fields` is present.
    pub deny_unknown_fields: bool,
    /// The `rename_all` rule, [`Case::Unchanged`] without one or with one serde rejects.
    pub rename_all: Case,
}

impl ContainerAttrs {
    /// Reads the `#[serde(...)]` attributes of a struct.
    pub fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut parsed = ContainerAttrs::default();
        for meta in serde_metas(attrs)? {
            if meta.path().is_ident("deny_unknown_fields") {
                parsed.deny_unknown_fields = true;
            } else if meta.path().is_ident("rename_all") {
                // serde itself reports an unknown rule.
                if let Some(case) = Case::parse(&one_name(&meta, "rename_all")?) {
                    parsed.rename_all = case;
                }
            }
        }
        Ok(parsed)
    }
}

/// What a field's `#[serde(...)]` attributes say.
#[derive(Default)]
pub struct FieldAttrs {
    /// The name from `rename`, when there is one.
    pub rename: Option<String>,
    /// `skip` or `skip_deserializing`: a recipe cannot set the field.
    pub skip: bool,
    /// `flatten`: the field's own fields are parameters of the config.
    pub flatten: bool,
}

impl FieldAttrs {
    /// Reads the `#[serde(...)]` attributes of a field.
    pub fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut parsed = FieldAttrs::default();
        for meta in serde_metas(attrs)? {
            let path = meta.path();
            if path.is_ident("rename") {
                parsed.rename = Some(one_name(&meta, "rename")?);
            } else if path.is_ident("skip") || path.is_ident("skip_deserializing") {
                parsed.skip = true;
            } else if path.is_ident("flatten") {
                parsed.flatten = true;
            }
        }
        Ok(parsed)
    }
}

/// The options inside every `#[serde(...)]` attribute, in order.
fn serde_metas(attrs: &[Attribute]) -> syn::Result<Vec<Meta>> {
    let mut metas = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        metas.extend(attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?);
    }
    Ok(metas)
}

/// The single name that `option = ".."` or `option(serialize = "..", deserialize = "..")` gives:
/// the field's default is printed from the serialized default config, so a recipe's name and the
/// serialized name must agree.
fn one_name(meta: &Meta, option: &str) -> syn::Result<String> {
    match meta {
        Meta::NameValue(nv) => string(&nv.value),
        Meta::List(list) => split_names(list, option),
        Meta::Path(_) => Err(Error::new_spanned(
            meta,
            format!("expected `{option} = \"...\"`"),
        )),
    }
}

/// The name of `option(serialize = "..", deserialize = "..")`, which must be the same for both.
fn split_names(list: &MetaList, option: &str) -> syn::Result<String> {
    let (mut serialize, mut deserialize) = (None, None);
    for meta in list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)? {
        let Meta::NameValue(nv) = &meta else {
            return Err(Error::new_spanned(meta, "expected `serialize = \"...\"`"));
        };
        if nv.path.is_ident("serialize") {
            serialize = Some(string(&nv.value)?);
        } else if nv.path.is_ident("deserialize") {
            deserialize = Some(string(&nv.value)?);
        }
    }
    match (serialize, deserialize) {
        (Some(s), Some(d)) if s == d => Ok(s),
        _ => Err(Error::new_spanned(
            list,
            format!(
                "`#[derive(ConfigDoc)]` needs one `{option}` for serializing and deserializing: \
                 a parameter's default is printed from the serialized default config under the \
                 name a recipe writes; use `{option} = \"...\"`"
            ),
        )),
    }
}

/// The value of a string literal.
fn string(expr: &Expr) -> syn::Result<String> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        _ => Err(Error::new_spanned(expr, "expected a string literal")),
    }
}

/// A serde `rename_all` rule, applied to a `snake_case` field name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Case {
    /// No rule, `"lowercase"` or `"snake_case"`: the name as written.
    #[default]
    Unchanged,
    /// `"UPPERCASE"` or `"SCREAMING_SNAKE_CASE"`.
    Upper,
    /// `"PascalCase"`.
    Pascal,
    /// `"camelCase"`.
    Camel,
    /// `"kebab-case"`.
    Kebab,
    /// `"SCREAMING-KEBAB-CASE"`.
    ScreamingKebab,
}

impl Case {
    /// The rule serde names `name`.
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "lowercase" | "snake_case" => Case::Unchanged,
            "UPPERCASE" | "SCREAMING_SNAKE_CASE" => Case::Upper,
            "PascalCase" => Case::Pascal,
            "camelCase" => Case::Camel,
            "kebab-case" => Case::Kebab,
            "SCREAMING-KEBAB-CASE" => Case::ScreamingKebab,
            _ => return None,
        })
    }

    /// `field` renamed by this rule.
    pub fn apply(self, field: &str) -> String {
        match self {
            Case::Unchanged => field.to_string(),
            Case::Upper => field.to_ascii_uppercase(),
            Case::Pascal => field
                .split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect(),
            Case::Camel => {
                let pascal = Case::Pascal.apply(field);
                let mut chars = pascal.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_lowercase().to_string() + chars.as_str()
                })
            }
            Case::Kebab => field.replace('_', "-"),
            Case::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn rename_all_rules_match_serde() {
        let renamed = |rule| Case::parse(rule).unwrap().apply("top_k_2");
        assert_eq!(renamed("lowercase"), "top_k_2");
        assert_eq!(renamed("snake_case"), "top_k_2");
        assert_eq!(renamed("UPPERCASE"), "TOP_K_2");
        assert_eq!(renamed("SCREAMING_SNAKE_CASE"), "TOP_K_2");
        assert_eq!(renamed("PascalCase"), "TopK2");
        assert_eq!(renamed("camelCase"), "topK2");
        assert_eq!(renamed("kebab-case"), "top-k-2");
        assert_eq!(renamed("SCREAMING-KEBAB-CASE"), "TOP-K-2");
        assert_eq!(Case::parse("Title Case"), None);
    }

    #[test]
    fn container_options_are_read_from_every_serde_attribute() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[serde(default, bound = "T: Clone")]),
            parse_quote!(#[serde(rename_all(serialize = "kebab-case", deserialize = "kebab-case"))]),
            parse_quote!(#[serde(deny_unknown_fields)]),
        ];
        let parsed = ContainerAttrs::parse(&attrs).unwrap();
        assert!(parsed.deny_unknown_fields);
        assert_eq!(parsed.rename_all, Case::Kebab);
        let unknown = ContainerAttrs::parse(&[parse_quote!(#[serde(rename_all = "Title")])]);
        assert_eq!(unknown.unwrap().rename_all, Case::Unchanged);
    }

    #[test]
    fn field_options_skip_and_rename() {
        let parsed = FieldAttrs::parse(&[
            parse_quote!(#[serde(default = "one", rename = "p")]),
            parse_quote!(#[serde(skip_serializing_if = "Option::is_none")]),
        ])
        .unwrap();
        assert_eq!(parsed.rename.as_deref(), Some("p"));
        assert!(!parsed.skip && !parsed.flatten);
        assert!(
            FieldAttrs::parse(&[parse_quote!(#[serde(skip_deserializing)])])
                .unwrap()
                .skip
        );
        let split = FieldAttrs::parse(&[parse_quote!(#[serde(rename(deserialize = "p"))])]);
        let message = split.err().unwrap().to_string();
        assert!(message.contains("needs one `rename`"), "{message}");
    }
}
