//! A reader for Python literal data (the factory config format): `NAME = literal` statements
//! whose values are strings, numbers, booleans, `None`, lists, tuples, dicts, sets and
//! `set([...])`, with comments. Nothing is ever executed; anything else is an error. JSON is
//! accepted too (it is almost a subset). Values come out as [`serde_json::Value`] (tuples and
//! sets as arrays, dict keys as strings).

use serde_json::{Map, Number, Value};

/// How deeply lists, tuples, dicts and sets may nest (a factory config needs 3 or 4); deeper
/// input is an error rather than a stack overflow.
pub const MAX_DEPTH: usize = 64;

/// A syntax error, with the line it was found on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct LiteralError {
    /// 1-based line.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
}

type R<T> = Result<T, LiteralError>;

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> R<T> {
        let line = 1 + self.src[..self.pos.min(self.src.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Err(LiteralError {
            line,
            message: message.into(),
        })
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' => self.pos += 1,
                b'\\' if self.src.get(self.pos + 1) == Some(&b'\n') => self.pos += 2,
                b'#' => {
                    while self.src.get(self.pos).is_some_and(|&b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.src.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> R<()> {
        if self.eat(b) {
            Ok(())
        } else {
            self.err(format!("expected '{}'", b as char))
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.pos;
        while self
            .src
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos || self.src[start].is_ascii_digit() {
            self.pos = start;
            return None;
        }
        std::str::from_utf8(&self.src[start..self.pos]).ok()
    }

    fn value(&mut self) -> R<Value> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let value = self.value_here();
        self.depth -= 1;
        value
    }

    fn value_here(&mut self) -> R<Value> {
        match self.peek() {
            None => self.err("unexpected end of file"),
            Some(b'[') => {
                self.pos += 1;
                Ok(Value::Array(self.items(b']')?))
            }
            Some(b'(') => {
                self.pos += 1;
                if self.eat(b')') {
                    return Ok(Value::Array(Vec::new()));
                }
                let first = self.value()?;
                if self.eat(b')') {
                    return Ok(first);
                }
                self.expect(b',')?;
                let mut items = vec![first];
                items.extend(self.items(b')')?);
                Ok(Value::Array(items))
            }
            Some(b'{') => {
                self.pos += 1;
                self.dict_or_set()
            }
            Some(b'"' | b'\'') => self.strings(),
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(_) => {
                let save = self.pos;
                let Some(name) = self.ident() else {
                    return self.err("expected a literal value");
                };
                // String prefixes: r'', u'', b'', rb'' ...
                if name.len() <= 2
                    && name.chars().all(|c| "rRuUbB".contains(c))
                    && matches!(self.src.get(self.pos), Some(b'"' | b'\''))
                {
                    self.pos = save;
                    return self.strings();
                }
                match name {
                    "True" | "true" => Ok(Value::Bool(true)),
                    "False" | "false" => Ok(Value::Bool(false)),
                    "None" | "null" => Ok(Value::Null),
                    "set" | "frozenset" | "tuple" | "list" => {
                        self.expect(b'(')?;
                        if self.eat(b')') {
                            return Ok(Value::Array(Vec::new()));
                        }
                        let inner = self.value()?;
                        self.eat(b',');
                        self.expect(b')')?;
                        match inner {
                            Value::Array(_) => Ok(inner),
                            Value::Object(map) => Ok(Value::Array(
                                map.keys().cloned().map(Value::String).collect(),
                            )),
                            _ => self.err(format!("{name}() of a non-collection")),
                        }
                    }
                    "dict" => {
                        self.expect(b'(')?;
                        let mut map = Map::new();
                        while !self.eat(b')') {
                            let Some(key) = self.ident() else {
                                return self.err("expected a keyword argument");
                            };
                            self.expect(b'=')?;
                            let v = self.value()?;
                            map.insert(key.to_string(), v);
                            if !self.eat(b',') {
                                self.expect(b')')?;
                                break;
                            }
                        }
                        Ok(Value::Object(map))
                    }
                    other => self.err(format!(
                        "'{other}' is not literal data (only literals are read, nothing is run)"
                    )),
                }
            }
        }
    }

    fn items(&mut self, close: u8) -> R<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            items.push(self.value()?);
            if !self.eat(b',') {
                self.expect(close)?;
                return Ok(items);
            }
        }
    }

    fn key_string(&self, key: Value) -> R<String> {
        match key {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if b { "True" } else { "False" }.to_string()),
            Value::Null => Ok("None".to_string()),
            _ => self.err("a dict key must be a string or a number"),
        }
    }

    fn dict_or_set(&mut self) -> R<Value> {
        if self.eat(b'}') {
            return Ok(Value::Object(Map::new()));
        }
        let first = self.value()?;
        if self.eat(b':') {
            let mut map = Map::new();
            let v = self.value()?;
            map.insert(self.key_string(first)?, v);
            while self.eat(b',') {
                if self.eat(b'}') {
                    return Ok(Value::Object(map));
                }
                let k = self.value()?;
                self.expect(b':')?;
                let v = self.value()?;
                map.insert(self.key_string(k)?, v);
            }
            self.expect(b'}')?;
            Ok(Value::Object(map))
        } else {
            let mut items = vec![first];
            if self.eat(b',') {
                items.extend(self.items(b'}')?);
            } else {
                self.expect(b'}')?;
            }
            Ok(Value::Array(items))
        }
    }

    fn strings(&mut self) -> R<Value> {
        let mut out = String::new();
        loop {
            self.skip_ws();
            let start = self.pos;
            let mut raw = false;
            while let Some(&b) = self.src.get(self.pos) {
                match b {
                    b'r' | b'R' => raw = true,
                    b'u' | b'U' | b'b' | b'B' => {}
                    _ => break,
                }
                self.pos += 1;
            }
            match self.src.get(self.pos) {
                Some(b'"' | b'\'') => out.push_str(&self.string(raw)?),
                _ => {
                    self.pos = start;
                    return Ok(Value::String(out));
                }
            }
        }
    }

    fn string(&mut self, raw: bool) -> R<String> {
        let quote = self.src[self.pos];
        let triple = self.src.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]);
        self.pos += if triple { 3 } else { 1 };
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&b) = self.src.get(self.pos) else {
                return self.err("unterminated string");
            };
            if b == quote {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.src.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]) {
                    self.pos += 3;
                    break;
                }
            }
            if b == b'\n' && !triple {
                return self.err("unterminated string");
            }
            if b == b'\\' && !raw {
                let Some(&e) = self.src.get(self.pos + 1) else {
                    return self.err("unterminated string");
                };
                self.pos += 2;
                match e {
                    b'\n' => {}
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'0' => out.push(0),
                    b'\\' | b'\'' | b'"' => out.push(e),
                    b'x' | b'u' | b'U' => {
                        let len = match e {
                            b'x' => 2,
                            b'u' => 4,
                            _ => 8,
                        };
                        let hex = self
                            .src
                            .get(self.pos..self.pos + len)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32);
                        let Some(c) = hex else {
                            return self.err("bad escape in string");
                        };
                        self.pos += len;
                        let mut tmp = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                    }
                    other => {
                        out.push(b'\\');
                        out.push(other);
                    }
                }
                continue;
            }
            out.push(b);
            self.pos += 1;
        }
        match String::from_utf8(out) {
            Ok(s) => Ok(s),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    fn number(&mut self) -> R<Value> {
        self.skip_ws();
        let start = self.pos;
        if matches!(self.src.get(self.pos), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        while self
            .src
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_'))
            || (self.pos > start
                && matches!(self.src.get(self.pos), Some(b'-' | b'+'))
                && matches!(self.src.get(self.pos - 1), Some(b'e' | b'E')))
        {
            self.pos += 1;
        }
        let text: String = String::from_utf8_lossy(&self.src[start..self.pos]).replace('_', "");
        let text = text.trim_start_matches('+');
        let text = text.strip_suffix(['L', 'l']).unwrap_or(text);
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            if let Ok(i) = i64::from_str_radix(hex, 16) {
                return Ok(Value::Number(i.into()));
            }
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => self.err(format!("bad number {text:?}")),
        }
    }
}

/// Parses a file of `NAME = literal` statements (or one bare literal, e.g. JSON) and returns
/// the value bound to `name` (for a bare literal: the literal itself, or its `name` key when
/// it is an object holding one).
pub fn read_assignment(text: &str, name: &str) -> Result<Value, LiteralError> {
    let mut p = Parser {
        src: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    if matches!(p.peek(), Some(b'[' | b'{')) {
        let v = p.value()?;
        if p.peek().is_some() {
            return p.err("unexpected data after the value");
        }
        return Ok(match v {
            Value::Object(mut map) if map.contains_key(name) => {
                map.remove(name).unwrap_or(Value::Null)
            }
            other => other,
        });
    }
    let mut found = None;
    while p.peek().is_some() {
        let Some(var) = p.ident() else {
            return p.err("expected NAME = literal");
        };
        if !p.eat(b'=') {
            return p.err(format!(
                "'{var}' is not an assignment (only NAME = literal is read, nothing is run)"
            ));
        }
        let v = p.value()?;
        if var == name {
            found = Some(v);
        }
        p.eat(b';');
    }
    match found {
        Some(v) => Ok(v),
        None => Err(LiteralError {
            line: 1,
            message: format!("no '{name} = ...' in the file"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_python_literals() {
        let text = r#"
# factory floor config
config = [
  {
    'qual_ids': set([1, 2, "x86-generic"]),
    "factory_image": 'dir/' "factory.gz",   # adjacent strings join
    'factory_checksum': r'AtiI8B64\agHVN+yeBAyiNMX3+HM=',
    'flags': (True, None, -1.5, 0x10),
  },
]
other = {'a': u'\u00e9\n'}
"#;
        let v = read_assignment(text, "config").unwrap();
        assert_eq!(
            v,
            json!([{
                "qual_ids": [1, 2, "x86-generic"],
                "factory_image": "dir/factory.gz",
                "factory_checksum": "AtiI8B64\\agHVN+yeBAyiNMX3+HM=",
                "flags": [true, null, -1.5, 16],
            }])
        );
        assert_eq!(read_assignment(text, "other").unwrap(), json!({"a": "é\n"}));
    }

    #[test]
    fn reads_json_and_refuses_code() {
        let v = read_assignment(r#"{"config": [{"a": true}]}"#, "config").unwrap();
        assert_eq!(v, json!([{"a": true}]));
        let e = read_assignment("import os\nconfig = []", "config").unwrap_err();
        assert!(e.message.contains("not an assignment"), "{e}");
        let e = read_assignment("config = [os.system('rm -rf /')]", "config").unwrap_err();
        assert!(e.message.contains("not literal data"), "{e}");
        let e = read_assignment("config = [\n'unterminated", "config").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for (open, close) in [("[", "]"), ("(", ",)"), ("{'k': ", "}"), ("set([", "])")] {
            let deep = format!("config = {}1{}", open.repeat(20_000), close.repeat(20_000));
            let e = read_assignment(&deep, "config").unwrap_err();
            assert!(e.message.contains("nested deeper"), "{open}: {e}");
        }
        let fine = format!(
            "config = {}1{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(read_assignment(&fine, "config").is_ok());
    }
}
