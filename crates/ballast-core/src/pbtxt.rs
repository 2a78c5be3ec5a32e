//! Protocol Buffers text format (`config.pbtxt`, as Triton writes model configurations), read
//! without a schema into a tree of fields, so that fields ballast has no use for can be named in
//! a warning instead of failing the parse.
//!
//! Why not a crate: the maintained parsers (`prost-reflect`'s text format, `protobuf`'s) need the
//! message descriptor and reject fields outside it, while the point here is to read a Triton
//! configuration written for a newer Triton and say which fields are ignored. The grammar is
//! small: `name: value`, `name { ... }` / `name: { ... }` / `name < ... >`, lists `[a, b]`,
//! quoted strings (adjacent ones concatenate), numbers, identifiers (enums, booleans), `#`
//! comments, optional `,`/`;` separators.

use std::fmt;

/// A parsed message: its fields in file order (a repeated field appears once per element).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub fields: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string (escapes resolved).
    Str(String),
    /// A number as written (`-1`, `0.5`, `1e3`, `0x10`).
    Num(String),
    /// A bare identifier: an enum value or `true` / `false`.
    Ident(String),
    Message(Message),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Num(n) | Value::Ident(n) => f.write_str(n),
            Value::Message(_) => f.write_str("{ ... }"),
        }
    }
}

impl Message {
    /// The last value of `name` (proto3 semantics for a singular field given twice).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every value of a repeated field.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn message(&self, name: &str) -> Option<&Message> {
        match self.get(name) {
            Some(Value::Message(m)) => Some(m),
            _ => None,
        }
    }

    /// The distinct field names, in first-appearance order.
    pub fn names(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for (n, _) in &self.fields {
            if !seen.contains(&n.as_str()) {
                seen.push(n);
            }
        }
        seen
    }
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Num(n) => {
                let (neg, digits) = match n.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, n.as_str()),
                };
                let v = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
                    i64::from_str_radix(hex, 16).ok()?
                } else {
                    digits.parse::<i64>().ok()?
                };
                Some(if neg { -v } else { v })
            }
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => n.trim_end_matches(['f', 'F']).parse().ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An identifier (enum value), or a string holding one.
    pub fn as_ident(&self) -> Option<&str> {
        match self {
            Value::Ident(s) | Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Ident(s) if s == "true" || s == "True" || s == "t" => Some(true),
            Value::Ident(s) if s == "false" || s == "False" || s == "f" => Some(false),
            Value::Num(n) if n == "1" => Some(true),
            Value::Num(n) if n == "0" => Some(false),
            _ => None,
        }
    }
}

/// Parses a whole text-format message. Errors give the line and column.
pub fn parse(text: &str) -> Result<Message, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
        depth: 0,
    };
    let m = p.message(None)?;
    p.skip_space();
    if p.at < p.chars.len() {
        return Err(p.err("unexpected text after the message"));
    }
    Ok(m)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn err(&self, what: &str) -> String {
        let upto = &self.chars[..self.at.min(self.chars.len())];
        let line = upto.iter().filter(|&&c| c == '\n').count() + 1;
        let col = upto.iter().rev().take_while(|&&c| c != '\n').count() + 1;
        format!("line {line}, column {col}: {what}")
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.at += 1;
            } else if c == '#' {
                while let Some(c) = self.peek() {
                    self.at += 1;
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+') {
                self.at += 1;
            } else {
                break;
            }
        }
        self.chars[start..self.at].iter().collect()
    }

    /// Fields until `close` (or the end of input for the top level).
    fn message(&mut self, close: Option<char>) -> Result<Message, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("messages nested too deeply"));
        }
        let mut m = Message::default();
        loop {
            self.skip_space();
            match (self.peek(), close) {
                (None, None) => break,
                (None, Some(c)) => return Err(self.err(&format!("missing '{c}'"))),
                (Some(c), Some(want)) if c == want => {
                    self.at += 1;
                    break;
                }
                _ => {}
            }
            let name = self.field_name()?;
            self.skip_space();
            let colon = self.eat(':');
            self.skip_space();
            match self.peek() {
                Some('{') | Some('<') => {
                    let v = self.nested()?;
                    m.fields.push((name, v));
                }
                Some('[') => {
                    self.at += 1;
                    if !self.eat(']') {
                        loop {
                            self.skip_space();
                            let v = match self.peek() {
                                Some('{') | Some('<') => self.nested()?,
                                _ => self.scalar()?,
                            };
                            m.fields.push((name.clone(), v));
                            if self.eat(']') {
                                break;
                            }
                            if !self.eat(',') {
                                return Err(self.err("expected ',' or ']' in a list"));
                            }
                        }
                    }
                }
                _ if colon => {
                    let v = self.scalar()?;
                    m.fields.push((name, v));
                }
                _ => return Err(self.err(&format!("expected ':' or '{{' after '{name}'"))),
            }
            // Optional separators.
            let _ = self.eat(',') || self.eat(';');
        }
        self.depth -= 1;
        Ok(m)
    }

    fn field_name(&mut self) -> Result<String, String> {
        self.skip_space();
        if self.peek() == Some('[') {
            // An extension or Any type URL: `[pkg.ext]`.
            let start = self.at;
            while let Some(c) = self.peek() {
                self.at += 1;
                if c == ']' {
                    return Ok(self.chars[start..self.at].iter().collect());
                }
            }
            return Err(self.err("unterminated '['"));
        }
        let w = self.word();
        if w.is_empty()
            || !w
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        {
            return Err(self.err("expected a field name"));
        }
        Ok(w)
    }

    fn nested(&mut self) -> Result<Value, String> {
        let close = match self.peek() {
            Some('{') => '}',
            _ => '>',
        };
        self.at += 1;
        Ok(Value::Message(self.message(Some(close))?))
    }

    fn scalar(&mut self) -> Result<Value, String> {
        self.skip_space();
        match self.peek() {
            Some('"') | Some('\'') => {
                let mut s = String::new();
                while matches!(self.peek(), Some('"') | Some('\'')) {
                    s.push_str(&self.string()?);
                    self.skip_space();
                }
                Ok(Value::Str(s))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let w = self.word();
                Ok(Value::Num(w.trim_start_matches('+').to_string()))
            }
            Some(c) if c.is_alphabetic() || c == '_' => Ok(Value::Ident(self.word())),
            _ => Err(self.err("expected a value")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let Some(quote) = self.peek() else {
            return Err(self.err("expected a string"));
        };
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.at += 1;
            match c {
                c if c == quote => return Ok(out),
                '\n' => return Err(self.err("newline inside a string")),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.at += 1;
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_triton_model_configuration() {
        let text = r#"
name: "fraud"   # comment
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {
    name: "features"
    data_type: TYPE_FP32
    dims: [ 12 ]
  }
]
output { name: "probability" data_type: TYPE_FP32 dims: [ 1 ] }
instance_group [ { count: 2, kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [4, 8] max_queue_delay_microseconds: 100 }
parameters { key: "model_type" value: { string_value: 'xgboost' "_json" } }
version_policy: { latest { num_versions: 2 } }
"#;
        let m = parse(text).unwrap();
        assert_eq!(m.get("name").and_then(Value::as_str), Some("fraud"));
        assert_eq!(m.get("max_batch_size").and_then(Value::as_i64), Some(8));
        let input = match m.all("input").next() {
            Some(Value::Message(i)) => i,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            input.get("data_type").and_then(Value::as_ident),
            Some("TYPE_FP32")
        );
        assert_eq!(
            input
                .all("dims")
                .filter_map(Value::as_i64)
                .collect::<Vec<_>>(),
            vec![12]
        );
        let db = m.message("dynamic_batching").unwrap();
        assert_eq!(db.all("preferred_batch_size").count(), 2);
        let p = m.message("parameters").unwrap();
        let v = p.message("value").unwrap();
        assert_eq!(
            v.get("string_value").and_then(Value::as_str),
            Some("xgboost_json")
        );
        let latest = m
            .message("version_policy")
            .and_then(|v| v.message("latest"))
            .unwrap();
        assert_eq!(latest.get("num_versions").and_then(Value::as_i64), Some(2));
        assert_eq!(m.names()[..3], ["name", "platform", "max_batch_size"]);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = parse("max_batch_size: 8\ninput {\n  name: \"x\"\n").unwrap_err();
        assert!(e.contains("missing '}'"), "{e}");
        let e = parse("a: 1\nb 2\n").unwrap_err();
        assert!(e.starts_with("line 2, column 3"), "{e}");
        let e = parse("a: \"open\n").unwrap_err();
        assert!(e.contains("newline inside a string"), "{e}");
        let deep = "a {".repeat(100);
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
    }
}
