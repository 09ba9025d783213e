//! The RON parser behind [`super::parse`]: text to a [`Node`] tree, every node with the line
//! and column it starts at, and a [`SyntaxError`] naming the position and the token otherwise.

use std::rc::Rc;

use super::{Field, Node, Origin, Value};

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

pub(super) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_ident_char(c: char) -> bool {
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
