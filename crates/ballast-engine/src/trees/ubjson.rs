//! Universal Binary JSON (UBJSON, draft 12), the format of XGBoost's `.ubj` models (its default
//! for `save_model` since 2.1), read into a `serde_json::Value` so the JSON model code serves
//! both.
//!
//! Why not a crate: the UBJSON crates on crates.io are unmaintained or partial (no optimized
//! `$type#count` containers, which XGBoost writes for every array); the format is small. Numbers
//! are big-endian; `$`-typed containers carry their elements without markers. Depth is limited
//! so a hostile file cannot exhaust the stack.

use serde_json::{Map, Number, Value};

const MAX_DEPTH: usize = 64;

/// True when `bytes` look like UBJSON rather than JSON text: an object or array marker followed
/// by a UBJSON type, count or length marker instead of JSON's quote, bracket or whitespace.
pub(crate) fn looks_like_ubjson(bytes: &[u8]) -> bool {
    match bytes {
        [b'{' | b'[', next, ..] => matches!(next, b'$' | b'#' | b'i' | b'U' | b'I' | b'l' | b'L'),
        _ => false,
    }
}

/// Parses one UBJSON value; trailing bytes are an error.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader { bytes, at: 0 };
    let value = r.value(0)?;
    if r.at != bytes.len() {
        return Err(format!(
            "UBJSON: {} bytes after the top-level value",
            bytes.len() - r.at
        ));
    }
    Ok(value)
}

/// JSON has no NaN or infinity: they become `null` (XGBoost writes them only for unused
/// parameters).
fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, what: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("UBJSON at byte {}: {what}", self.at))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        match self.at.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            _ => self.err(format!("needs {n} more bytes, the file ends")),
        }
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    /// An integer of the given type marker.
    fn int(&mut self, marker: u8) -> Result<i64, String> {
        Ok(match marker {
            b'i' => i8::from_be_bytes(self.array()?) as i64,
            b'U' => self.byte()? as i64,
            b'I' => i16::from_be_bytes(self.array()?) as i64,
            b'l' => i32::from_be_bytes(self.array()?) as i64,
            b'L' => i64::from_be_bytes(self.array()?),
            other => {
                return self.err(format!(
                    "expected an integer marker, got {:?}",
                    other as char
                ));
            }
        })
    }

    /// A length or count: an integer marker and a non-negative value that fits the file.
    fn length(&mut self) -> Result<usize, String> {
        let marker = self.byte()?;
        let n = self.int(marker)?;
        let n = usize::try_from(n).or_else(|_| self.err(format!("negative length {n}")))?;
        if n > self.bytes.len() {
            return self.err(format!("length {n} is longer than the file"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.length()?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).or_else(|_| self.err("a string is not UTF-8"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let marker = self.byte()?;
        self.typed(marker, depth)
    }

    fn typed(&mut self, marker: u8, depth: usize) -> Result<Value, String> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'N' => return self.value(depth),
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Number(self.int(marker)?.into()),
            b'd' => float(f32::from_be_bytes(self.array()?) as f64),
            b'D' => float(f64::from_be_bytes(self.array()?)),
            b'C' => Value::String((self.byte()? as char).to_string()),
            b'S' => Value::String(self.string()?),
            b'H' => {
                let s = self.string()?;
                match s.parse::<f64>() {
                    Ok(v) => float(v),
                    Err(_) => {
                        return self.err(format!("high-precision number '{s}' does not parse"));
                    }
                }
            }
            b'[' => self.container(depth, false)?,
            b'{' => self.container(depth, true)?,
            other => return self.err(format!("unknown type marker {:?}", other as char)),
        })
    }

    /// An array or object after its opening marker, with optional `$type` and `#count`.
    fn container(&mut self, depth: usize, object: bool) -> Result<Value, String> {
        if depth >= MAX_DEPTH {
            return self.err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let mut elem_type = None;
        if self.peek() == Some(b'$') {
            self.at += 1;
            elem_type = Some(self.byte()?);
        }
        let mut count = None;
        if self.peek() == Some(b'#') {
            self.at += 1;
            count = Some(self.length()?);
        } else if elem_type.is_some() {
            return self.err("a typed container ($) must give its count (#)");
        }
        let close = if object { b'}' } else { b']' };
        let mut items = Vec::new();
        let mut map = Map::new();
        let mut n = 0usize;
        loop {
            match count {
                Some(c) if n == c => break,
                None if self.peek() == Some(close) => {
                    self.at += 1;
                    break;
                }
                _ => {}
            }
            let key = if object { Some(self.string()?) } else { None };
            let value = match elem_type {
                Some(t) => self.typed(t, depth + 1)?,
                None => self.value(depth + 1)?,
            };
            match key {
                Some(k) => {
                    map.insert(k, value);
                }
                None => items.push(value),
            }
            n += 1;
        }
        Ok(if object {
            Value::Object(map)
        } else {
            Value::Array(items)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_and_untyped_containers() {
        // {"a": [1, 2.5f32], "b": "x", "c": [$d#i2 1.0 -2.0]}
        let mut b = vec![b'{'];
        b.extend([b'i', 1, b'a', b'[', b'i', 1, b'd']);
        b.extend(2.5f32.to_be_bytes());
        b.push(b']');
        b.extend([b'i', 1, b'b', b'S', b'i', 1, b'x']);
        b.extend([b'i', 1, b'c', b'[', b'$', b'd', b'#', b'i', 2]);
        b.extend(1.0f32.to_be_bytes());
        b.extend((-2.0f32).to_be_bytes());
        b.push(b'}');
        assert!(looks_like_ubjson(&b));
        let v = parse(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [1, 2.5], "b": "x", "c": [1.0, -2.0]})
        );
    }

    #[test]
    fn truncated_and_hostile_input_is_an_error() {
        assert!(parse(b"{i\x05ab").unwrap_err().contains("file ends"));
        assert!(
            parse(b"[#L\x7f\xff\xff\xff\xff\xff\xff\xff")
                .unwrap_err()
                .contains("longer than the file")
        );
        let deep = vec![b'['; 1000];
        assert!(parse(&deep).unwrap_err().contains("deeper"));
        assert!(!looks_like_ubjson(b"{\"learner\": {}}"));
    }
}
