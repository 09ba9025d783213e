//! A RON document tree that keeps what composition needs and `ron::Value` loses: identifiers
//! (enum variants), struct names, field order, and where every value came from.
//!
//! Recipes are parsed into this tree, merged (`base:` inheritance), edited (`--set`), printed
//! back to RON (the resolved recipe), and only then deserialized into typed structs. Because
//! every node remembers its [`Origin`], any error found later, by serde or by a plugin, can point
//! at the file, line and column the offending value was written at.
//!
//! This module holds the tree, its printing and editing, and field paths (`data.batch_size`);
//! the parser that builds it is in its `parser` submodule.

mod parser;

use std::fmt::{self, Write as _};
use std::rc::Rc;

use parser::is_ident_char;
pub use parser::{SyntaxError, parse};

/// Where a value was written: a file and a 1-based line and column, or a `--set` argument
/// (displayed without a position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file path, or `--set path=value` for overrides.
    pub source: Rc<str>,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

impl Origin {
    /// Whether the value came from a `--set` argument rather than a file.
    pub fn is_override(&self) -> bool {
        self.source.starts_with("--set ")
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_override() {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{}:{}:{}", self.source, self.line, self.column)
        }
    }
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it was written.
    pub origin: Origin,
}

/// A named field of a struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field name.
    pub name: String,
    /// Where the name was written.
    pub name_origin: Origin,
    /// The field's value.
    pub value: Node,
}

/// A RON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number, boolean, string or char literal, or an identifier (unit variant, `None`), kept
    /// exactly as written.
    Atom(String),
    /// `(a: 1, b: 2)` or `Name(a: 1)`; `()` is an empty struct.
    Struct {
        /// The optional struct or variant name.
        name: Option<String>,
        /// The fields in written order.
        fields: Vec<Field>,
    },
    /// `(1, 2)`, `Some(x)` or `Name(1, 2)`.
    Tuple {
        /// The optional name (`Some`, a variant).
        name: Option<String>,
        /// The items.
        items: Vec<Node>,
    },
    /// `[1, 2]`.
    List(Vec<Node>),
    /// `{"a": 1}`.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The field `name` of a struct node.
    pub fn field(&self, name: &str) -> Option<&Node> {
        match &self.value {
            Value::Struct { fields, .. } => {
                fields.iter().find(|f| f.name == name).map(|f| &f.value)
            }
            _ => None,
        }
    }

    /// The value of a string atom, unescaped.
    pub fn as_str(&self) -> Option<String> {
        match &self.value {
            Value::Atom(text) if text.starts_with('"') || text.starts_with('r') => {
                ron::from_str::<String>(text).ok()
            }
            _ => None,
        }
    }

    /// The node at `path` (`data.root`, `augment[2].params.scale`), looking through `Some(..)`;
    /// `None` when the path does not exist in the document.
    pub fn at(&self, path: &[Segment]) -> Option<&Node> {
        let mut node = self;
        for segment in path {
            node = node.unwrap_some();
            node = match (segment, &node.value) {
                (Segment::Field(name), Value::Struct { fields, .. }) => {
                    &fields.iter().find(|f| &f.name == name)?.value
                }
                (Segment::Index(i), Value::List(items) | Value::Tuple { items, .. }) => {
                    items.get(*i)?
                }
                _ => return None,
            };
        }
        Some(node)
    }

    /// The origin of the deepest node on `path` that exists (the whole document at worst).
    pub fn origin_of(&self, path: &[Segment]) -> &Origin {
        (0..=path.len())
            .rev()
            .find_map(|n| self.at(&path[..n]))
            .map_or(&self.origin, |n| &n.origin)
    }

    fn unwrap_some(&self) -> &Node {
        match &self.value {
            Value::Tuple {
                name: Some(n),
                items,
            } if n == "Some" && items.len() == 1 => &items[0],
            _ => self,
        }
    }

    /// Every leaf under the node as `(dotted path, RON value)`, in written order: struct fields
    /// and list items (by index) are descended into, anything else (and an empty struct or
    /// list) is a leaf. `prefix` is the node's own path (empty for the root). A tracker's
    /// parameter table: `optimizer.lr`, `augment.0.name`.
    pub fn flatten(&self, prefix: &str) -> Vec<(String, String)> {
        let join = |name: &str| match prefix {
            "" => name.to_string(),
            p => format!("{p}.{name}"),
        };
        match &self.value {
            Value::Struct { fields, .. } if !fields.is_empty() => fields
                .iter()
                .flat_map(|f| f.value.flatten(&join(&f.name)))
                .collect(),
            Value::List(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .flat_map(|(i, item)| item.flatten(&join(&i.to_string())))
                .collect(),
            _ => vec![(prefix.to_string(), self.inline())],
        }
    }

    /// Prints the node as RON, each struct, tuple or list on one line when it fits in 100
    /// columns and spread over indented lines otherwise.
    pub fn to_ron(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn inline(&self) -> String {
        match &self.value {
            Value::Atom(text) => text.clone(),
            Value::Struct { name, fields } => {
                let body: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name, f.value.inline()))
                    .collect();
                format!("{}({})", name.as_deref().unwrap_or(""), body.join(", "))
            }
            Value::Tuple { name, items } => {
                let body: Vec<String> = items.iter().map(Node::inline).collect();
                format!("{}({})", name.as_deref().unwrap_or(""), body.join(", "))
            }
            Value::List(items) => {
                let body: Vec<String> = items.iter().map(Node::inline).collect();
                format!("[{}]", body.join(", "))
            }
            Value::Map(entries) => {
                let body: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.inline(), v.inline()))
                    .collect();
                format!("{{{}}}", body.join(", "))
            }
        }
    }

    fn write(&self, out: &mut String, indent: usize) {
        const WIDTH: usize = 100;
        let inline = self.inline();
        if indent * 4 + inline.len() <= WIDTH || matches!(self.value, Value::Atom(_)) {
            out.push_str(&inline);
            return;
        }
        let pad = "    ".repeat(indent + 1);
        let close_pad = "    ".repeat(indent);
        match &self.value {
            Value::Atom(_) => {}
            Value::Struct { name, fields } => {
                let _ = writeln!(out, "{}(", name.as_deref().unwrap_or(""));
                for f in fields {
                    let _ = write!(out, "{pad}{}: ", f.name);
                    f.value.write(out, indent + 1);
                    out.push_str(",\n");
                }
                let _ = write!(out, "{close_pad})");
            }
            Value::Tuple { name, items } => {
                let _ = writeln!(out, "{}(", name.as_deref().unwrap_or(""));
                for item in items {
                    out.push_str(&pad);
                    item.write(out, indent + 1);
                    out.push_str(",\n");
                }
                let _ = write!(out, "{close_pad})");
            }
            Value::List(items) => {
                out.push_str("[\n");
                for item in items {
                    out.push_str(&pad);
                    item.write(out, indent + 1);
                    out.push_str(",\n");
                }
                let _ = write!(out, "{close_pad}]");
            }
            Value::Map(entries) => {
                out.push_str("{\n");
                for (k, v) in entries {
                    let _ = write!(out, "{pad}{}: ", k.inline());
                    v.write(out, indent + 1);
                    out.push_str(",\n");
                }
                let _ = write!(out, "{close_pad}}}");
            }
        }
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A struct field.
    Field(String),
    /// A list or tuple index.
    Index(usize),
}

/// Parses a path as serde reports it or a user writes it: `a.b[2].c`, `a.b.2.c`; the empty
/// path is the root. An empty step (`a..b`, `a.`) is not a path.
pub fn parse_path(path: &str) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    if path.is_empty() {
        return Some(segments);
    }
    for part in path.split('.') {
        if part.is_empty() {
            return None;
        }
        let (head, mut tail) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if let Ok(i) = head.parse::<usize>() {
            segments.push(Segment::Index(i));
        } else if head.chars().all(is_ident_char) && !head.is_empty() {
            segments.push(Segment::Field(head.to_string()));
        } else if !head.is_empty() {
            return None;
        }
        while let Some(rest) = tail.strip_prefix('[') {
            let end = rest.find(']')?;
            segments.push(Segment::Index(rest[..end].parse().ok()?));
            tail = &rest[end + 1..];
        }
        if !tail.is_empty() {
            return None;
        }
    }
    Some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: &str = r##"// a recipe
(
    name: "demo", /* inline /* nested */ comment */
    seed: -3,
    lr: 1e-3,
    mode: Bicubic,
    size: Some((224, 160)),
    tag: r#"raw "x""#,
    augment: [
        (name: "flip", params: (p: 0.5)),
        (name: "crop"),
    ],
    empty: (),
    map: {"a": 'x'},
)
"##;

    #[test]
    fn parses_and_locates_values() {
        let doc = parse(RECIPE, "r.ron").unwrap();
        let at = |p: &str| doc.at(&parse_path(p).unwrap()).map(Node::inline);
        assert_eq!(at("name").as_deref(), Some("\"demo\""));
        assert_eq!(at("seed").as_deref(), Some("-3"));
        assert_eq!(at("lr").as_deref(), Some("1e-3"));
        assert_eq!(at("mode").as_deref(), Some("Bicubic"));
        assert_eq!(at("size[1]").as_deref(), Some("160"));
        assert_eq!(at("augment[0].params.p").as_deref(), Some("0.5"));
        assert_eq!(at("augment[1].params"), None);
        let origin = doc
            .at(&parse_path("augment[0].params.p").unwrap())
            .unwrap()
            .origin
            .clone();
        assert_eq!((origin.line, origin.column), (10, 36));
        let missing = doc.origin_of(&parse_path("augment[1].params.p").unwrap());
        assert_eq!((missing.line, missing.column), (11, 9));
        assert_eq!(doc.field("name").unwrap().as_str().as_deref(), Some("demo"));
    }

    #[test]
    fn printing_round_trips() {
        let doc = parse(RECIPE, "r.ron").unwrap();
        let printed = doc.to_ron();
        let again = parse(&printed, "printed").unwrap();
        assert_eq!(again.to_ron(), printed);
        assert_eq!(again.inline(), doc.inline());
    }

    #[test]
    fn syntax_errors_name_position_and_token() {
        let err = parse("(\n  batch_size = 64,\n)", "bad.ron").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad.ron:2:14: syntax error: expected `:` after field `batch_size`, found `=`"
        );
        let err = parse("(a: 1 b: 2)", "bad.ron").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad.ron:1:7: syntax error: expected `,` or `)` after field `a`, found `b`"
        );
        assert!(parse("(a: \"open)", "x").is_err());
        assert!(parse("(a: 1, a: 2)", "x").is_err());
    }

    #[test]
    fn paths_parse_both_ways() {
        let expected = vec![
            Segment::Field("augment".into()),
            Segment::Index(2),
            Segment::Field("p".into()),
        ];
        assert_eq!(parse_path("augment[2].p"), Some(expected.clone()));
        assert_eq!(parse_path("augment.2.p"), Some(expected));
        assert_eq!(parse_path("a b"), None);
    }
}
