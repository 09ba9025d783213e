//! A field's doc comment as the one-paragraph text `clshost plugins NAME` shows.

use syn::{Attribute, Error, Expr, ExprLit, Lit, Meta};

/// The text of the doc comments in `attrs`: lines trimmed and joined with spaces, a blank line
/// starting a new line. `None` when there is no doc comment or it is blank; an error when a doc
/// attribute is not a string literal (`#[doc = include_str!(..)]`).
pub fn text(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        // `#[doc(hidden)]` and its kind say nothing about the field.
        let Meta::NameValue(nv) = &attr.meta else {
            continue;
        };
        match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => lines.extend(s.value().split('\n').map(|l| l.trim().to_string())),
            other => {
                return Err(Error::new_spanned(
                    other,
                    "`#[derive(ConfigDoc)]` reads `///` comments, and this doc attribute is not a \
                     string literal",
                ));
            }
        }
    }
    let paragraphs: Vec<String> = lines
        .split(String::is_empty)
        .filter(|paragraph| !paragraph.is_empty())
        .map(|paragraph| paragraph.join(" "))
        .collect();
    Ok((!paragraphs.is_empty()).then(|| paragraphs.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn lines_join_into_paragraphs() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[doc = " Probability of flipping,"]),
            parse_quote!(#[doc = "   in [0, 1]."]),
            parse_quote!(#[doc = ""]),
            parse_quote!(#[doc(alias = "prob")]),
            parse_quote!(#[doc = " 0 disables it.\n\n\n See `p`."]),
        ];
        assert_eq!(
            text(&attrs).unwrap().as_deref(),
            Some("Probability of flipping, in [0, 1].\n0 disables it.\nSee `p`.")
        );
    }

    #[test]
    fn blank_or_missing_docs_are_none() {
        assert_eq!(text(&[]).unwrap(), None);
        assert_eq!(text(&[parse_quote!(#[doc = "  "])]).unwrap(), None);
        assert_eq!(text(&[parse_quote!(#[serde(default)])]).unwrap(), None);
    }
}
