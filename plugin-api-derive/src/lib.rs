//! The derive macro of `clshost-plugin-api`: `#[derive(ConfigDoc)]` documents a component's
//! config from the doc comments of its fields.
//!
//! Use it through `clshost_plugin_api` (its crate root and prelude re-export it); the generated
//! impl names that crate by its own name, `::clshost_plugin_api`.

mod doc;
mod serde_attr;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Error, Fields, parse_macro_input};

use serde_attr::{ContainerAttrs, FieldAttrs};

/// Implements `clshost_plugin_api::ConfigDoc` for a config struct: one `Param` per field, in
/// declaration order, named as a recipe writes it and documented by the field's `///` comment.
///
/// - The name honours `#[serde(rename = "..")]` on the field and `#[serde(rename_all = "..")]`
///   on the struct; fields with `#[serde(skip)]` or `#[serde(skip_deserializing)]` are left out,
///   since a recipe cannot set them.
/// - The doc comment's lines are joined with spaces; a blank line starts a new line.
/// - A unit struct (`struct NoConfig;`) has no parameters.
/// - The impl names the API crate `::clshost_plugin_api`, so depend on it under that name.
///
/// It is a compile error when a field has no doc comment, when the struct lacks
/// `#[serde(deny_unknown_fields)]` (a misspelt parameter must be an error, not ignored), when the
/// config is an enum, a union or a tuple struct, when a field is `#[serde(flatten)]`, and when a
/// field or the struct is renamed differently for serializing and deserializing.
#[proc_macro_derive(ConfigDoc)]
pub fn derive_config_doc(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// The `ConfigDoc` impl of `input`, or every error found in it.
fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let entries = params(input)?
        .into_iter()
        .map(|(name, doc)| quote!(::clshost_plugin_api::authoring::Param::new(#name, #doc)));
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::clshost_plugin_api::ConfigDoc for #ident #ty_generics #where_clause {
            const PARAMS: &'static [::clshost_plugin_api::authoring::Param] = &[#(#entries),*];
        }
    })
}

/// The `(name, doc)` of every field a recipe may set, in declaration order.
fn params(input: &DeriveInput) -> syn::Result<Vec<(String, String)>> {
    let not_a_struct = "`#[derive(ConfigDoc)]` needs a struct with named fields, the parameters \
                        a recipe sets by name; implement `ConfigDoc` by hand for other configs";
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            Fields::Unit => return Ok(Vec::new()),
            Fields::Unnamed(_) => return Err(Error::new_spanned(&input.ident, not_a_struct)),
        },
        Data::Enum(data) => return Err(Error::new_spanned(data.enum_token, not_a_struct)),
        Data::Union(data) => return Err(Error::new_spanned(data.union_token, not_a_struct)),
    };
    let mut errors = Errors::default();
    let container = ContainerAttrs::parse(&input.attrs)?;
    if !container.deny_unknown_fields {
        errors.push(Error::new_spanned(
            &input.ident,
            format!(
                "`#[derive(ConfigDoc)]` needs `#[serde(deny_unknown_fields)]` on `{}`, so that \
                 a misspelt parameter in a recipe is an error instead of being ignored",
                input.ident
            ),
        ));
    }
    let mut params = Vec::new();
    for field in fields {
        let ident = field.ident.as_ref().expect("named fields have names");
        let attrs = match FieldAttrs::parse(&field.attrs) {
            Ok(attrs) => attrs,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if attrs.skip {
            continue;
        }
        if attrs.flatten {
            errors.push(Error::new_spanned(
                ident,
                format!(
                    "`#[derive(ConfigDoc)]` cannot list the parameters inside the flattened \
                     field `{ident}`; write them in the config itself, or implement \
                     `ConfigDoc` by hand"
                ),
            ));
            continue;
        }
        let name = attrs
            .rename
            .unwrap_or_else(|| container.rename_all.apply(&ident.unraw().to_string()));
        match doc::text(&field.attrs) {
            Ok(Some(doc)) => params.push((name, doc)),
            Ok(None) => errors.push(Error::new_spanned(
                ident,
                format!(
                    "config field `{ident}` has no doc comment; `#[derive(ConfigDoc)]` makes it \
                     the documentation of parameter `{name}`: write `/// ...` saying what it \
                     does and which values it takes"
                ),
            )),
            Err(e) => errors.push(e),
        }
    }
    errors.finish()?;
    Ok(params)
}

/// Errors collected so that one expansion reports all of them.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    /// Adds `error`.
    fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The combined error, if any was pushed.
    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    /// The messages of the errors `expand` reports for `input`.
    fn errors(input: DeriveInput) -> Vec<String> {
        expand(&input)
            .expect_err("the input is rejected")
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn fields_become_params_in_declaration_order_with_serde_names() {
        let input: DeriveInput = parse_quote! {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields, default, rename_all = "camelCase")]
            struct Config {
                /// Number of bins,
                /// at least 1.
                num_bins: u32,
                #[serde(rename = "type")]
                /// Which kind.
                kind: String,
                #[serde(skip)]
                cache: Vec<u8>,
                /// Raw identifiers lose their `r#`.
                r#loop: bool,
            }
        };
        assert_eq!(
            params(&input).unwrap(),
            [
                ("numBins", "Number of bins, at least 1."),
                ("type", "Which kind."),
                ("loop", "Raw identifiers lose their `r#`."),
            ]
            .map(|(n, d)| (n.to_string(), d.to_string()))
        );
    }

    #[test]
    fn unit_and_empty_structs_have_no_params() {
        assert!(
            params(&parse_quote!(
                struct NoConfig;
            ))
            .unwrap()
            .is_empty()
        );
        let empty: DeriveInput = parse_quote! {
            #[serde(deny_unknown_fields)]
            struct NoConfig {}
        };
        assert!(params(&empty).unwrap().is_empty());
    }

    #[test]
    fn the_impl_names_the_api_crate_and_keeps_generics() {
        let input: DeriveInput = parse_quote! {
            #[serde(deny_unknown_fields)]
            struct Config<T: Clone> where T: Default {
                /// A value.
                value: T,
            }
        };
        let expanded = expand(&input).unwrap().to_string();
        let expected = quote! {
            #[automatically_derived]
            impl<T: Clone> ::clshost_plugin_api::ConfigDoc for Config<T> where T: Default {
                const PARAMS: &'static [::clshost_plugin_api::authoring::Param] =
                    &[::clshost_plugin_api::authoring::Param::new("value", "A value.")];
            }
        };
        assert_eq!(expanded, expected.to_string());
    }

    #[test]
    fn every_undocumented_field_and_a_missing_deny_unknown_fields_are_reported() {
        let messages = errors(parse_quote! {
            #[serde(default)]
            struct Config {
                a: u32,
                /// Documented.
                b: u32,
                ///
                c: u32,
            }
        });
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("needs `#[serde(deny_unknown_fields)]` on `Config`"));
        assert!(messages[1].starts_with("config field `a` has no doc comment"));
        assert!(messages[2].starts_with("config field `c` has no doc comment"));
    }

    #[test]
    fn enums_tuple_structs_and_flattened_fields_are_rejected() {
        for input in [
            parse_quote!(
                enum Config {
                    A,
                }
            ),
            parse_quote!(
                struct Config(u32);
            ),
        ] {
            let messages = errors(input);
            assert!(messages[0].contains("needs a struct with named fields"));
        }
        let messages = errors(parse_quote! {
            #[serde(deny_unknown_fields)]
            struct Config {
                /// Shared options.
                #[serde(flatten)]
                shared: Shared,
            }
        });
        assert!(
            messages[0].contains("flattened field `shared`"),
            "{messages:?}"
        );
    }

    #[test]
    fn doc_attributes_must_be_string_literals() {
        let messages = errors(parse_quote! {
            #[serde(deny_unknown_fields)]
            struct Config {
                #[doc = include_str!("p.md")]
                p: f64,
            }
        });
        assert!(messages[0].contains("not a string literal"), "{messages:?}");
    }
}
