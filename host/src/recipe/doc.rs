//! A RON document tree that keeps what composition needs and `ron::Value` loses: identifiers
//! (enum variants), struct names, field order, and where every value came from.
//!
//! Recipes are parsed into this tree, merged (`base:` inheritance), edited (`--set`), printed
//! back to RON (the resolved recipe), and only then deserialized into typed structs. Because
//! every node remembers its [`Origin`], any error found later, by serde or by a plugin, can point
//! at the file, line and column the offending value was written at.

use std::fmt::{self, Write as _};
use std::rc::Rc;

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

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}: syntax error: {message}")]
pub struct SyntaxError {
    /// Where parsing stopped.
    pub origin: Origin,
    /// What was expected and what was found.
    pub message: String,
}

/// Parses a whole RON document from `text`, attributing positions to `source`.
pub fn parse(text: &str, source: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        text,
        pos: 0,
        source: Rc::from(source),
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
    };
    p.skip_trivia()?;
    let node = p.value()?;
    p.skip_trivia()?;
    if p.pos < text.len() {
        return Err(p.error(format!(
            "unexpected {} after the end of the value",
            p.found()
        )));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    source: Rc<str>,
    line_starts: Vec<usize>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Parser<'a> {
    fn origin_at(&self, pos: usize) -> Origin {
        let line = self.line_starts.partition_point(|&s| s <= pos);
        let start = self.line_starts[line - 1];
        Origin {
            source: self.source.clone(),
            line: line as u32,
            column: self.text[start..pos].chars().count() as u32 + 1,
        }
    }

    fn error(&self, message: String) -> SyntaxError {
        SyntaxError {
            origin: self.origin_at(self.pos),
            message,
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The token at the current position, for messages.
    fn found(&self) -> String {
        let rest = self.rest();
        match rest.chars().next() {
            None => "the end of the file".to_string(),
            Some(c) if is_ident_char(c) => {
                let end = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
                format!("`{}`", &rest[..end])
            }
            Some(c) => format!("`{c}`"),
        }
    }

    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with("/*") {
                let mut depth = 0;
                let mut i = 0;
                let bytes = trimmed.as_bytes();
                loop {
                    if i + 1 >= bytes.len() {
                        return Err(self.error("unterminated `/*` comment".to_string()));
                    }
                    match (bytes[i], bytes[i + 1]) {
                        (b'/', b'*') => {
                            depth += 1;
                            i += 2;
                        }
                        (b'*', b'/') => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                self.pos += i;
            } else {
                return Ok(());
            }
        }
    }

    fn expect(&mut self, c: char, context: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.error(format!("expected `{c}` {context}, found {}", self.found())))
        }
    }

    fn ident(&mut self) -> &'a str {
        let rest = self.rest();
        let end = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
        self.pos += end;
        &self.text[self.pos - end..self.pos]
    }

    fn value(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        let origin = self.origin_at(start);
        let value = match self.peek() {
            None => return Err(self.error("expected a value, found the end of the file".into())),
            Some('(') => self.paren(None)?,
            Some('[') => {
                self.pos += 1;
                Value::List(self.items(']', "in a list")?)
            }
            Some('{') => self.map()?,
            Some('"') => Value::Atom(self.string()?),
            Some('r') if self.rest().starts_with("r\"") || self.rest().starts_with("r#") => {
                Value::Atom(self.raw_string()?)
            }
            Some('\'') => Value::Atom(self.char_literal()?),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let rest = self.rest();
                let end = rest[1..]
                    .find(|c: char| !(is_ident_char(c) || c == '.' || c == '+' || c == '-'))
                    .map_or(rest.len(), |e| e + 1);
                self.pos += end;
                Value::Atom(rest[..end].to_string())
            }
            Some(c) if is_ident_start(c) => {
                let name = self.ident().to_string();
                let after = self.pos;
                self.skip_trivia()?;
                if self.peek() == Some('(') {
                    self.paren(Some(name))?
                } else {
                    self.pos = after;
                    Value::Atom(name)
                }
            }
            Some(_) => return Err(self.error(format!("expected a value, found {}", self.found()))),
        };
        Ok(Node { value, origin })
    }

    /// After an opening `(` (not yet consumed): a struct if it starts with `ident:` (or the
    /// mistaken `ident =`), else a tuple.
    fn paren(&mut self, name: Option<String>) -> Result<Value, SyntaxError> {
        self.pos += 1;
        self.skip_trivia()?;
        let save = self.pos;
        let is_struct = match self.peek() {
            Some(')') => true,
            Some(c) if is_ident_start(c) => {
                self.ident();
                self.skip_trivia()?;
                // `name = value` is a struct written with the wrong separator: parse it as a
                // struct so the error says so.
                let rest = self.rest();
                let field =
                    (rest.starts_with(':') && !rest.starts_with("::")) || rest.starts_with('=');
                self.pos = save;
                field
            }
            _ => false,
        };
        if !is_struct {
            return Ok(Value::Tuple {
                name,
                items: self.items(')', "in a tuple")?,
            });
        }
        let mut fields: Vec<Field> = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some(')') {
                self.pos += 1;
                return Ok(Value::Struct { name, fields });
            }
            let name_origin = self.origin_at(self.pos);
            if !self.peek().is_some_and(is_ident_start) {
                return Err(self.error(format!(
                    "expected a field name or `)`, found {}",
                    self.found()
                )));
            }
            let field = self.ident().to_string();
            self.skip_trivia()?;
            self.expect(':', &format!("after field `{field}`"))?;
            self.skip_trivia()?;
            let value = self.value()?;
            if fields.iter().any(|f| f.name == field) {
                return Err(SyntaxError {
                    origin: name_origin,
                    message: format!("field `{field}` is given twice"),
                });
            }
            fields.push(Field {
                name: field.clone(),
                name_origin,
                value,
            });
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {}
                _ => {
                    return Err(self.error(format!(
                        "expected `,` or `)` after field `{field}`, found {}",
                        self.found()
                    )));
                }
            }
        }
    }

    /// Comma-separated values up to `close` (the opening bracket already consumed).
    fn items(&mut self, close: char, context: &str) -> Result<Vec<Node>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(self.error(format!(
                        "expected `,` or `{close}` {context}, found {}",
                        self.found()
                    )));
                }
            }
        }
    }

    fn map(&mut self) -> Result<Value, SyntaxError> {
        self.pos += 1;
        let mut entries = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Value::Map(entries));
            }
            let key = self.value()?;
            self.skip_trivia()?;
            self.expect(':', "after a map key")?;
            self.skip_trivia()?;
            let value = self.value()?;
            entries.push((key, value));
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => {
                    return Err(self.error(format!(
                        "expected `,` or `}}` in a map, found {}",
                        self.found()
                    )));
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        let mut escaped = false;
        for (i, c) in self.rest().char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    self.pos += i + 1;
                    return Ok(self.text[start..self.pos].to_string());
                }
                _ => {}
            }
        }
        Err(self.error("unterminated string".to_string()))
    }

    fn raw_string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        let hashes = self.rest()[1..].chars().take_while(|&c| c == '#').count();
        let close = format!("\"{}", "#".repeat(hashes));
        let body_start = 2 + hashes;
        match self.rest()[body_start..].find(&close) {
            Some(end) => {
                self.pos += body_start + end + close.len();
                Ok(self.text[start..self.pos].to_string())
            }
            None => Err(self.error("unterminated raw string".to_string())),
        }
    }

    fn char_literal(&mut self) -> Result<String, SyntaxError> {
        let rest = self.rest();
        let body = &rest[1..];
        let len = match body.strip_prefix('\\') {
            Some(escaped) => escaped.find('\'').map(|i| i + 1),
            None => body.find('\''),
        };
        match len {
            Some(len) => {
                self.pos += len + 2;
                Ok(rest[..len + 2].to_string())
            }
            None => Err(self.error("unterminated char literal".to_string())),
        }
    }
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

/// Parses a path as serde reports it or a user writes it: `a.b[2].c`, `a.b.2.c`.
pub fn parse_path(path: &str) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
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
