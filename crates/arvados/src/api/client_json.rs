//! JSON from clients, parsed within a budget of values per request ([`Budget`]): a request body,
//! a form body's JSON-looking values and JSON given as text in a parameter (`filters`, `where`,
//! `order`, `select`, `include`) draw on one budget of [`MAX_VALUES`], so a body of small
//! elements (`[0,0,0,...]`, two bytes each) cannot grow into a tree thirty times its size.
//! Nesting stays within serde_json's own depth limit (128).

use std::cell::Cell;
use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::answer::ApiError;

/// JSON values one request may hold, every scalar, array, object, element and member counted.
pub const MAX_VALUES: usize = 1 << 18;

/// Why client JSON was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientJsonError {
    /// The request's JSON holds more values than its budget.
    #[error("the request holds more than {0} JSON values")]
    TooManyValues(usize),
    /// Not JSON, or not readable.
    #[error("{0}")]
    Invalid(serde_json::Error),
}

impl From<ClientJsonError> for ApiError {
    /// Too many values is 413 (the request is too big for the server, as a body past the size
    /// limit is); JSON that is not is 400.
    fn from(e: ClientJsonError) -> ApiError {
        match e {
            ClientJsonError::TooManyValues(_) => ApiError::new(413, e.to_string()),
            ClientJsonError::Invalid(e) => ApiError::new(400, format!("not valid JSON: {e}")),
        }
    }
}

/// The values a request's JSON may still hold.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    left: Cell<usize>,
    spent: Cell<bool>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(MAX_VALUES)
    }
}

impl Budget {
    /// A budget of `limit` values.
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            left: Cell::new(limit),
            spent: Cell::new(false),
        }
    }

    /// One JSON text read from `reader`, with nothing but white space after it.
    pub fn parse_reader(&self, reader: impl Read) -> Result<Value, ClientJsonError> {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let value = Seed(self).deserialize(&mut de).map_err(|e| self.error(e))?;
        de.end().map_err(|e| self.error(e))?;
        Ok(value)
    }

    /// One JSON text, with nothing but white space after it.
    pub fn parse_str(&self, text: &str) -> Result<Value, ClientJsonError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Seed(self).deserialize(&mut de).map_err(|e| self.error(e))?;
        de.end().map_err(|e| self.error(e))?;
        Ok(value)
    }

    fn error(&self, e: serde_json::Error) -> ClientJsonError {
        if self.spent.get() {
            ClientJsonError::TooManyValues(self.limit)
        } else {
            ClientJsonError::Invalid(e)
        }
    }

    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.spent.set(true);
                Err(E::custom(format!("more than {} JSON values", self.limit)))
            }
        }
    }
}

/// Deserializes one value, taking from the budget for it and for everything inside it.
struct Seed<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.take()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.take()?;
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Seed(self.0))?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_serde_json_parses() {
        let text = r#" {"a": [1, -2, 3.5, "x", null, true, {"b": []}], "c": {}} "#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(Budget::default().parse_str(text).unwrap(), expected);
        assert_eq!(
            Budget::default().parse_reader(text.as_bytes()).unwrap(),
            expected
        );
    }

    #[test]
    fn counts_every_value_against_one_budget() {
        // The array, its three elements: four values.
        let budget = Budget::new(6);
        assert_eq!(budget.parse_str("[1,2,3]").unwrap(), json!([1, 2, 3]));
        // Two left: an object and one member fit, a second member does not.
        let e = budget.parse_str(r#"{"a":1,"b":2}"#).unwrap_err();
        assert!(matches!(e, ClientJsonError::TooManyValues(6)), "{e}");
        assert_eq!(e.to_string(), "the request holds more than 6 JSON values");
    }

    #[test]
    fn a_long_array_of_small_elements_stops_at_the_budget() {
        let text = format!("[{}0]", "0,".repeat(100_000));
        let e = Budget::new(1000).parse_reader(text.as_bytes()).unwrap_err();
        assert!(matches!(e, ClientJsonError::TooManyValues(1000)), "{e}");
    }

    #[test]
    fn bad_json_is_invalid_not_too_many() {
        for text in ["[1,", "{} x", "nope", "[1e999]"] {
            let e = Budget::default().parse_str(text).unwrap_err();
            assert!(matches!(e, ClientJsonError::Invalid(_)), "{text}: {e}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = Budget::default().parse_str(&deep).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
