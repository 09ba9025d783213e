//! Composition: `base:` inheritance with deep merging, and `--set` overrides.
//!
//! A recipe may name another as `base: "other.ron"` (relative to its own file). The base is
//! loaded first (recursively), then the recipe is merged over it: structs merge field by field,
//! everything else (lists included) is replaced. A chain that comes back to a file already in it
//! is an error naming the chain. Overrides (`--set trainer.epochs=3`) are applied after
//! composition; each value is RON.

use std::fs;
use std::path::{Path, PathBuf};

use super::doc::{self, Field, Node, Origin, Segment, SyntaxError, Value};
use super::{Problem, RecipeError};

/// Loads `path` and its `base:` chain, merged into one document without `base` fields.
pub fn load(path: &Path) -> Result<Node, RecipeError> {
    load_chain(path, &mut Vec::new())
}

fn load_chain(path: &Path, chain: &mut Vec<PathBuf>) -> Result<Node, RecipeError> {
    let canonical = fs::canonicalize(path).map_err(|e| RecipeError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(start) = chain.iter().position(|p| *p == canonical) {
        let names: Vec<String> = chain[start..]
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| p.display().to_string())
            .collect();
        return Err(RecipeError::Cycle(names.join(" -> ")));
    }
    let text = fs::read_to_string(path).map_err(|e| RecipeError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut node = doc::parse(&text, &path.display().to_string())?;
    let Value::Struct { fields, .. } = &mut node.value else {
        return Err(RecipeError::Invalid(vec![Problem::new(
            Some(node.origin.clone()),
            "",
            "a recipe is a struct: `( name: \"...\", data: (...), ... )`",
        )]));
    };
    let Some(index) = fields.iter().position(|f| f.name == "base") else {
        return Ok(node);
    };
    let base_field = fields.remove(index);
    let base_name = base_field.value.as_str().ok_or_else(|| {
        RecipeError::Invalid(vec![Problem::new(
            Some(base_field.value.origin.clone()),
            "base",
            "must be a string: the path of another recipe, relative to this one",
        )])
    })?;
    let base_path = path.parent().unwrap_or(Path::new(".")).join(base_name);
    chain.push(canonical);
    let base = load_chain(&base_path, chain)?;
    chain.pop();
    Ok(merge(base, node))
}

/// Merges `over` into `base`: structs field by field, anything else replaced by `over`.
pub fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (
            Value::Struct {
                name: base_name,
                fields: mut merged,
            },
            Value::Struct { name, fields },
        ) => {
            for field in fields {
                match merged.iter().position(|f| f.name == field.name) {
                    Some(i) => {
                        let old = merged.remove(i);
                        merged.insert(
                            i,
                            Field {
                                value: merge(old.value, field.value),
                                ..field
                            },
                        );
                    }
                    None => merged.push(field),
                }
            }
            Node {
                value: Value::Struct {
                    name: name.or(base_name),
                    fields: merged,
                },
                origin: over.origin,
            }
        }
        (_, value) => Node {
            value,
            origin: over.origin,
        },
    }
}

/// Applies one `--set path=value` override to `root`; `defaults` is the default recipe's
/// document, which tells whether a field the recipe leaves out holds a string.
pub fn apply_override(root: &mut Node, spec: &str, defaults: &Node) -> Result<(), RecipeError> {
    let source = format!("--set {spec}");
    let problem = |message: String| {
        let origin = Origin {
            source: source.as_str().into(),
            line: 1,
            column: 1,
        };
        RecipeError::Invalid(vec![Problem::new(Some(origin), "", message)])
    };
    let (path_text, value_text) = spec
        .split_once('=')
        .ok_or_else(|| problem("expected `path=value`, e.g. `trainer.epochs=3`".into()))?;
    let path = doc::parse_path(path_text.trim())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            problem(format!(
                "`{path_text}` is not a path like `data.root` or `augment[0].params.p`"
            ))
        })?;
    let value_text = value_text.trim();
    let parsed = doc::parse(value_text, &source);
    let placeholder = Origin {
        source: source.as_str().into(),
        line: 1,
        column: 1,
    };
    let origin = parsed.as_ref().map_or(placeholder, |v| v.origin.clone());
    let default_is_string = defaults.at(&path).is_some_and(is_string);
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = root;
    let mut walked = String::new();
    for segment in parents {
        node = unwrap_some_mut(node);
        node = match segment {
            Segment::Field(name) => {
                walked = join(&walked, name);
                field_or_insert(node, name, &origin).ok_or_else(|| {
                    problem(format!("`{walked}` is not a struct, so it has no fields"))
                })?
            }
            Segment::Index(i) => {
                let len = list_len(node);
                let at = format!("{walked}[{i}]");
                let item = list_item(node, *i).ok_or_else(|| {
                    problem(format!("`{walked}` has {len} entries; there is no `{at}`"))
                })?;
                walked = at;
                item
            }
        };
    }
    let node = unwrap_some_mut(node);
    let slot = match last {
        Segment::Field(name) => field_or_insert(node, name, &origin).ok_or_else(|| {
            problem(format!(
                "`{walked}` is not a struct, so it has no field `{name}`"
            ))
        })?,
        Segment::Index(i) => {
            let len = list_len(node);
            list_item(node, *i).ok_or_else(|| {
                problem(format!(
                    "`{walked}` has {len} entries; there is no `{walked}[{i}]`"
                ))
            })?
        }
    };
    *slot = shell_friendly(
        parsed,
        value_text,
        origin,
        default_is_string || is_string(slot),
    )?;
    Ok(())
}

/// The value an override sets, forgiving the quotes a shell strips: text that is not RON and
/// does not open a RON structure or literal (`/data/imagenet`, `./runs`), and a bare word for a
/// field that holds a string (`trainer.device=cuda`), become strings.
fn shell_friendly(
    parsed: Result<Node, SyntaxError>,
    text: &str,
    origin: Origin,
    holds_string: bool,
) -> Result<Node, SyntaxError> {
    let is_word = |n: &Node| {
        matches!(&n.value, Value::Atom(a)
            if a.starts_with(|c: char| c.is_alphabetic() || c == '_')
                && !matches!(a.as_str(), "true" | "false" | "None"))
    };
    let quoted = ron::to_string(text).ok();
    let as_string = |quoted: String| Node {
        value: Value::Atom(quoted),
        origin,
    };
    let opens = text.is_empty() || text.starts_with(['(', '[', '{', '"', '\'', '-']);
    match (parsed, quoted) {
        (Ok(node), Some(q)) if is_word(&node) && holds_string => Ok(as_string(q)),
        (Ok(node), _) => Ok(node),
        (Err(_), Some(q)) if !opens => Ok(as_string(q)),
        (Err(e), _) => Err(e),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Whether `node` is a string literal.
fn is_string(node: &Node) -> bool {
    matches!(&node.value, Value::Atom(a) if a.starts_with('"'))
}

/// The value inside `Some(..)`, or the node itself.
fn unwrap_some_mut(node: &mut Node) -> &mut Node {
    let is_some = matches!(&node.value, Value::Tuple { name: Some(n), items } if n == "Some" && items.len() == 1);
    if is_some {
        let Value::Tuple { items, .. } = &mut node.value else {
            unreachable!("checked to be `Some(..)` above");
        };
        return &mut items[0];
    }
    node
}

/// The field `name` of a struct node, inserted as an empty struct when absent; `None` when the
/// node is not a struct. An atom such as `None` is replaced by an empty struct, so overriding a
/// field of an unset optional section (`trainer.ema.decay`) creates the section.
fn field_or_insert<'a>(node: &'a mut Node, name: &str, origin: &Origin) -> Option<&'a mut Node> {
    if matches!(&node.value, Value::Atom(a) if a == "None") {
        node.value = Value::Struct {
            name: None,
            fields: Vec::new(),
        };
    }
    let Value::Struct { fields, .. } = &mut node.value else {
        return None;
    };
    let index = match fields.iter().position(|f| f.name == name) {
        Some(i) => i,
        None => {
            fields.push(Field {
                name: name.to_string(),
                name_origin: origin.clone(),
                value: Node {
                    value: Value::Struct {
                        name: None,
                        fields: Vec::new(),
                    },
                    origin: origin.clone(),
                },
            });
            fields.len() - 1
        }
    };
    Some(&mut fields[index].value)
}

fn list_len(node: &Node) -> usize {
    match &node.value {
        Value::List(items) | Value::Tuple { items, .. } => items.len(),
        _ => 0,
    }
}

fn list_item(node: &mut Node, i: usize) -> Option<&mut Node> {
    match &mut node.value {
        Value::List(items) | Value::Tuple { items, .. } => items.get_mut(i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `doc` after the override `spec`, printed back as RON.
    fn set(doc: &str, spec: &str) -> Result<String, RecipeError> {
        let mut root = doc::parse(doc, "recipe.ron").unwrap();
        let defaults = doc::parse(r#"(trainer: (device: "cpu"))"#, "defaults").unwrap();
        apply_override(&mut root, spec, &defaults)?;
        Ok(root.to_ron())
    }

    #[test]
    fn text_a_shell_unquoted_becomes_a_string() {
        let out = set("(data: (root: \"a\"))", "data.root=/data/imagenet").unwrap();
        assert!(out.contains(r#"root: "/data/imagenet""#), "{out}");
    }

    #[test]
    fn a_bare_word_for_a_string_field_becomes_a_string_even_when_the_recipe_omits_it() {
        let out = set("(trainer: (epochs: 3))", "trainer.device=cuda").unwrap();
        assert!(out.contains(r#"device: "cuda""#), "{out}");
    }

    #[test]
    fn bare_words_for_other_fields_and_valid_ron_are_kept_as_written() {
        let out = set("(optimizer: (name: adamw))", "optimizer.name=sgd").unwrap();
        assert!(out.contains("name: sgd"), "{out}");
        let out = set("(trainer: (epochs: 3))", "trainer.epochs=5").unwrap();
        assert!(out.contains("epochs: 5"), "{out}");
    }

    #[test]
    fn broken_ron_structures_are_still_syntax_errors() {
        let err = set("(data: (size: (1, 1)))", "data.size=(1, ").unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
    }

    #[test]
    fn a_path_with_an_empty_step_is_refused() {
        for spec in ["trainer..epochs=3", "trainer.epochs.=3", ".trainer=3"] {
            let err = set("(trainer: (epochs: 3))", spec).unwrap_err().to_string();
            let path = spec.split_once('=').unwrap().0;
            assert!(
                err.contains(&format!("`{path}` is not a path like `data.root`")),
                "{spec}: {err}"
            );
        }
    }
}
