//! Request parameters and list queries: the `filters`, `where`, `order`, `limit`, `offset` and
//! `select` parameters of Arvados list calls, checked strictly (an unknown attribute or
//! operator, or a filter of the wrong shape, is a 422 naming it) and applied to JSON records.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::answer::ApiError;
use super::client_json::{Budget, ClientJsonError};

/// A request's parameters: the query string, merged with a form body for method-overridden
/// calls, values that look like JSON already decoded.
#[derive(Debug, Default, Clone)]
pub struct Params(pub BTreeMap<String, Value>);

impl Params {
    /// Parses `a=1&b=%5B%5D` style text (`+` is a space, malformed escapes are kept as written:
    /// [`cibox_runtime::percent::query_pairs`]); a value that looks like JSON but is not stays
    /// text. For a query string, whose size the HTTP front end bounds.
    pub fn from_query(query: &str) -> Params {
        // A query string is within hyper's head limit (about 400 KiB): far fewer values than
        // a budget holds, so the fallback is never taken.
        Params::from_pairs(query, &Budget::default()).unwrap_or_default()
    }

    /// [`Params::from_query`] for a request's own text (its query string, or a form body), the
    /// JSON-looking values parsed within the request's `budget` (413 past it).
    pub fn from_pairs(text: &str, budget: &Budget) -> Result<Params, ApiError> {
        let mut map = BTreeMap::new();
        for (k, v) in cibox_runtime::percent::query_pairs(text) {
            let value = if v.starts_with('[') || v.starts_with('{') {
                match budget.parse_str(&v) {
                    Ok(value) => value,
                    Err(ClientJsonError::Invalid(_)) => Value::String(v),
                    Err(too_many) => return Err(too_many.into()),
                }
            } else {
                Value::String(v)
            };
            map.insert(k, value);
        }
        Ok(Params(map))
    }

    /// Parses the parameters among `names` that came as the text of a JSON array or object
    /// (white space first, say) within the request's `budget`: 413 past it, 422 naming the
    /// parameter when the text is not JSON. Other text (`order=name desc`) stays for
    /// [`Params::json`] and the parameter's own reading: JSON scalars hold no more than their
    /// text.
    pub fn decode_json(&mut self, names: &[&str], budget: &Budget) -> Result<(), ApiError> {
        for name in names {
            let Some(Value::String(text)) = self.0.get(*name) else {
                continue;
            };
            if !text.trim_start().starts_with(['[', '{']) {
                continue;
            }
            let value = budget.parse_str(text).map_err(|e| match e {
                ClientJsonError::Invalid(e) => {
                    ApiError::unprocessable(format!("{name} is not valid JSON: {e}"))
                }
                too_many => too_many.into(),
            })?;
            self.0.insert(name.to_string(), value);
        }
        Ok(())
    }

    /// A parameter.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A boolean parameter (`true`/`1`/`yes` as text or JSON).
    pub fn flag(&self, name: &str) -> bool {
        match self.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "yes" | "True"),
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// A non-negative integer parameter.
    pub fn integer(&self, name: &str, default: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                ApiError::unprocessable(format!("{name} must be a non-negative integer"))
            }),
            Some(Value::String(s)) => s.parse().map_err(|_| {
                ApiError::unprocessable(format!("{name} must be a non-negative integer, not {s:?}"))
            }),
            Some(v) => Err(ApiError::unprocessable(format!(
                "{name} must be a non-negative integer, not {v}"
            ))),
        }
    }

    /// A JSON parameter (array or object), given as JSON text or already decoded.
    pub fn json(&self, name: &str) -> Result<Option<Value>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| ApiError::unprocessable(format!("{name} is not valid JSON: {e}"))),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}

/// One checked filter.
#[derive(Debug, Clone)]
struct Filter {
    attr: String,
    op: String,
    operand: Value,
}

const OPERATORS: &[&str] = &[
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "ilike",
    "not like",
    "not ilike",
    "in",
    "not in",
    "is_a",
    "exists",
];

fn parse_filters(value: &Value, columns: &[&str]) -> Result<Vec<Filter>, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::unprocessable(format!(
            "filters must be an array of [attribute, operator, operand] arrays, not {value}"
        )));
    };
    // A single filter may be given without the outer array.
    let items: Vec<Value> = if items.len() == 3 && items[0].is_string() && items[1].is_string() {
        vec![value.clone()]
    } else {
        items.clone()
    };
    items
        .iter()
        .map(|f| {
            let shape = || {
                ApiError::unprocessable(format!(
                    "invalid filter {f}: expected [attribute, operator, operand]"
                ))
            };
            let Value::Array(parts) = f else {
                return Err(shape());
            };
            let [attr, op, operand] = parts.as_slice() else {
                return Err(shape());
            };
            let (Some(attr), Some(op)) = (attr.as_str(), op.as_str()) else {
                return Err(shape());
            };
            let op = op.to_ascii_lowercase();
            if !OPERATORS.contains(&op.as_str()) {
                return Err(ApiError::unprocessable(format!(
                    "invalid operator {op:?} in filter {f}"
                )));
            }
            if !(columns.contains(&attr) || op == "is_a" && attr == "uuid") {
                return Err(ApiError::unprocessable(format!(
                    "invalid attribute {attr:?} in filter {f}"
                )));
            }
            if op.contains("like")
                && operand
                    .as_str()
                    .is_some_and(|p| p.chars().count() > MAX_LIKE_PATTERN)
            {
                return Err(ApiError::unprocessable(format!(
                    "the {op:?} pattern for {attr:?} is longer than {MAX_LIKE_PATTERN} characters"
                )));
            }
            if matches!(op.as_str(), "in" | "not in") && !operand.is_array() {
                return Err(ApiError::unprocessable(format!(
                    "invalid operand for {op:?} in filter {f}: expected an array"
                )));
            }
            Ok(Filter {
                attr: attr.to_string(),
                op,
                operand: operand.clone(),
            })
        })
        .collect()
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::String(y)) => x.as_f64()?.partial_cmp(&y.parse::<f64>().ok()?),
        (Value::String(x), Value::Number(y)) => x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    a == b || compare(a, b) == Some(Ordering::Equal)
}

/// The longest `like` pattern accepted, in characters (a longer one is a 422).
pub const MAX_LIKE_PATTERN: usize = 1024;

/// A total order over every JSON value, for `order`: by type first (null, false/true,
/// numbers, strings, arrays, objects), then by value (numbers by their `f64` total order,
/// strings by their bytes, arrays and objects element by element). Sorting with it never
/// panics, whatever mix of types a column holds.
pub fn total_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => {
                    let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                    x.total_cmp(&y)
                }
            },
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| total_order(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y)
            .map(|((kx, vx), (ky, vy))| kx.cmp(ky).then_with(|| total_order(vx, vy)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// One piece of a `like` pattern between `%`s, matched with shift-and: bit `i` of
/// `masks[c]` says pattern position `i` accepts `c` (`_` accepts anything).
struct Piece {
    len: usize,
    words: usize,
    masks: std::collections::HashMap<char, Vec<u64>>,
    any: Vec<u64>,
}

impl Piece {
    fn new(chars: &[char]) -> Piece {
        let words = chars.len().div_ceil(64).max(1);
        let mut any = vec![0u64; words];
        let mut masks: std::collections::HashMap<char, Vec<u64>> = Default::default();
        for (i, &c) in chars.iter().enumerate() {
            let (w, bit) = (i / 64, 1u64 << (i % 64));
            if c == '_' {
                any[w] |= bit;
            } else {
                masks.entry(c).or_insert_with(|| vec![0u64; words])[w] |= bit;
            }
        }
        for m in masks.values_mut() {
            for (m, a) in m.iter_mut().zip(&any) {
                *m |= a;
            }
        }
        Piece {
            len: chars.len(),
            words,
            masks,
            any,
        }
    }

    /// Whether the piece matches `text` exactly at its start.
    fn matches_at(chars: &[char], text: &[char]) -> bool {
        chars.len() <= text.len() && chars.iter().zip(text).all(|(p, t)| *p == '_' || p == t)
    }

    /// The end of the first match in `text`, in one pass (time: text × pattern words).
    fn find_end(&self, text: &[char]) -> Option<usize> {
        if self.len == 0 {
            return Some(0);
        }
        let last = ((self.len - 1) / 64, 1u64 << ((self.len - 1) % 64));
        let mut state = vec![0u64; self.words];
        for (pos, c) in text.iter().enumerate() {
            let mask = self.masks.get(c).unwrap_or(&self.any);
            let mut carry = 1u64;
            for (s, m) in state.iter_mut().zip(mask) {
                let next_carry = *s >> 63;
                *s = ((*s << 1) | carry) & m;
                carry = next_carry;
            }
            if state[last.0] & last.1 != 0 {
                return Some(pos + 1);
            }
        }
        None
    }
}

/// SQL `LIKE`: `%` any run, `_` any one character. Linear in the text: the pieces between
/// `%`s are found leftmost-first in one pass each (greedy leftmost is exact for `%`-separated
/// pieces), the first anchored at the start and the last at the end.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let pieces: Vec<&[char]> = p.split(|&c| c == '%').collect();
    if pieces.len() == 1 {
        return p.len() == t.len() && Piece::matches_at(&p, &t);
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if first.len() + last.len() > t.len()
        || !Piece::matches_at(first, &t)
        || !Piece::matches_at(last, &t[t.len() - last.len()..])
    {
        return false;
    }
    let mut rest = &t[first.len()..t.len() - last.len()];
    for middle in &pieces[1..pieces.len() - 1] {
        match Piece::new(middle).find_end(rest) {
            Some(end) => rest = &rest[end..],
            None => return false,
        }
    }
    true
}

fn matches(record: &Value, f: &Filter) -> bool {
    let value = &record[f.attr.as_str()];
    match f.op.as_str() {
        "=" => loose_eq(value, &f.operand),
        "!=" => !loose_eq(value, &f.operand),
        "<" => compare(value, &f.operand) == Some(Ordering::Less),
        "<=" => matches!(
            compare(value, &f.operand),
            Some(Ordering::Less | Ordering::Equal)
        ),
        ">" => compare(value, &f.operand) == Some(Ordering::Greater),
        ">=" => matches!(
            compare(value, &f.operand),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "like" | "ilike" | "not like" | "not ilike" => {
            let (Some(text), Some(pattern)) = (value.as_str(), f.operand.as_str()) else {
                return false;
            };
            let hit = if f.op.contains("ilike") {
                like(&text.to_lowercase(), &pattern.to_lowercase())
            } else {
                like(text, pattern)
            };
            hit != f.op.starts_with("not")
        }
        "in" => f
            .operand
            .as_array()
            .is_some_and(|a| a.iter().any(|o| loose_eq(value, o))),
        "not in" => !f
            .operand
            .as_array()
            .is_some_and(|a| a.iter().any(|o| loose_eq(value, o))),
        "is_a" => {
            let kinds: Vec<&Value> = match &f.operand {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let named = value.as_str().and_then(super::record::kind_of_uuid);
            kinds.iter().any(|k| {
                named.is_some_and(|n| *k == n) || f.attr == "uuid" && record["kind"] == **k
            })
        }
        "exists" => value.is_null() != f.operand.as_bool().unwrap_or(true),
        _ => false,
    }
}

/// A list call's answer for `records` (all readable records of one resource).
pub fn list(
    kind: &str,
    records: Vec<Value>,
    params: &Params,
    columns: &[&str],
) -> Result<Value, ApiError> {
    let mut filters = Vec::new();
    if let Some(f) = params.json("filters")? {
        filters = parse_filters(&f, columns)?;
    }
    if let Some(w) = params.json("where")? {
        let Value::Object(map) = w else {
            return Err(ApiError::unprocessable(format!(
                "where must be an object, not {w}"
            )));
        };
        for (attr, operand) in map {
            if !columns.contains(&attr.as_str()) {
                return Err(ApiError::unprocessable(format!(
                    "invalid attribute {attr:?} in where"
                )));
            }
            let op = if operand.is_array() { "in" } else { "=" };
            filters.push(Filter {
                attr,
                op: op.into(),
                operand,
            });
        }
    }
    let order = order_terms(params, columns)?;
    let limit = params.integer("limit", 100)?.min(1000) as usize;
    let offset = params.integer("offset", 0)? as usize;
    let select = select_columns(params, columns)?;

    let mut hits: Vec<Value> = records
        .into_iter()
        .filter(|r| filters.iter().all(|f| matches(r, f)))
        .collect();
    hits.sort_by(|a, b| {
        for (attr, descending) in &order {
            let o = total_order(&a[attr.as_str()], &b[attr.as_str()]);
            let o = if *descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let available = hits.len();
    let items: Vec<Value> = hits
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| project(r, select.as_deref()))
        .collect();
    let mut answer = Map::new();
    answer.insert("kind".into(), format!("arvados#{kind}List").into());
    answer.insert("etag".into(), "".into());
    answer.insert("self_link".into(), "".into());
    answer.insert("offset".into(), offset.into());
    answer.insert("limit".into(), limit.into());
    if params.get("count").and_then(Value::as_str) != Some("none") {
        answer.insert("items_available".into(), available.into());
    }
    answer.insert("items".into(), items.into());
    Ok(Value::Object(answer))
}

fn order_terms(params: &Params, columns: &[&str]) -> Result<Vec<(String, bool)>, ApiError> {
    let terms: Vec<String> = match params.get("order") {
        // The default order, of the columns the resource has (computed permissions have
        // neither, and keep the order they were computed in).
        None => ["modified_at desc", "uuid asc"]
            .iter()
            .filter(|t| columns.contains(&t.split(' ').next().unwrap_or_default()))
            .map(|t| t.to_string())
            .collect(),
        Some(Value::String(s)) if !s.starts_with('[') => {
            s.split(',').map(|t| t.trim().to_string()).collect()
        }
        Some(_) => match params.json("order")? {
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::unprocessable(format!("invalid order term {t}")))
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(ApiError::unprocessable(format!(
                    "order must be a string or an array of strings, not {}",
                    other.unwrap_or_default()
                )))
            }
        },
    };
    terms
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let mut words = t.split_whitespace();
            let attr = words.next().unwrap_or_default();
            let attr = attr.rsplit('.').next().unwrap_or(attr);
            let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(ApiError::unprocessable(format!(
                        "invalid order direction {other:?} in {t:?}"
                    )))
                }
            };
            if !columns.contains(&attr) {
                return Err(ApiError::unprocessable(format!(
                    "invalid order attribute {attr:?}"
                )));
            }
            Ok((attr.to_string(), descending))
        })
        .collect()
}

/// The checked `select` parameter.
pub fn select_columns(params: &Params, columns: &[&str]) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = params.json("select")? else {
        return Ok(None);
    };
    let Value::Array(items) = &v else {
        return Err(ApiError::unprocessable(format!(
            "select must be an array of attribute names, not {v}"
        )));
    };
    let mut out = Vec::new();
    for item in items {
        let name = item
            .as_str()
            .filter(|n| columns.contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable(format!("invalid attribute {item} in select"))
            })?;
        out.push(name.to_string());
    }
    Ok(Some(out))
}

/// `record` cut to the `select`ed attributes (kind, uuid and etag always kept).
pub fn project(record: Value, select: Option<&[String]>) -> Value {
    let Some(select) = select else {
        return record;
    };
    let Value::Object(map) = record else {
        return record;
    };
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| matches!(k.as_str(), "kind" | "etag") || select.contains(k))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records() -> Vec<Value> {
        vec![
            json!({"kind": "arvados#repository", "uuid": "a", "name": "active/foo", "modified_at": "1"}),
            json!({"kind": "arvados#repository", "uuid": "b", "name": "admin/foo3", "modified_at": "2"}),
            json!({"kind": "arvados#repository", "uuid": "c", "name": "active/foo2", "modified_at": "3"}),
        ]
    }

    const COLUMNS: &[&str] = &["uuid", "name", "modified_at"];

    #[test]
    fn json_text_of_arrays_and_objects_is_decoded_within_the_budget() {
        let budget = Budget::new(100);
        let mut p =
            Params::from_pairs("order=name%20desc&select=%20%5B%22uuid%22%5D", &budget).unwrap();
        p.decode_json(&["order", "select", "filters"], &budget)
            .unwrap();
        assert_eq!(p.0["order"], json!("name desc"));
        assert_eq!(p.0["select"], json!(["uuid"]));
        p.0.insert("filters".into(), json!("[[\"name\", \"=\""));
        let e = p.decode_json(&["filters"], &budget).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(
            e.message.starts_with("filters is not valid JSON"),
            "{}",
            e.message
        );
        // A form value of JSON past the budget is 413, not text.
        let many = format!("filters=[{}0]", "0,".repeat(200));
        let e = Params::from_pairs(&many, &Budget::new(100)).unwrap_err();
        assert_eq!(e.status, 413, "{}", e.message);
    }

    fn names(answer: &Value) -> Vec<&str> {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn query_values_decode_plus_as_space_and_keep_bad_escapes() {
        let params =
            Params::from_query("name=a+b%21&filters=%5B%5B%22x%22%2C%22%3D%22%2C1%5D%5D&odd=100%");
        assert_eq!(params.get("name"), Some(&Value::from("a b!")));
        assert_eq!(
            params.get("filters"),
            Some(&serde_json::json!([["x", "=", 1]]))
        );
        assert_eq!(params.get("odd"), Some(&Value::from("100%")));
    }

    #[test]
    fn filters_order_and_pages() {
        let p =
            Params::from_query("filters=%5B%5B%22name%22%2C%22%3D%22%2C%22active%2Ffoo%22%5D%5D");
        let a = list("repository", records(), &p, COLUMNS).unwrap();
        assert_eq!(names(&a), ["active/foo"]);
        assert_eq!(a["items_available"], 1);
        let p = Params::from_query(r#"filters=[["name","like","active/%"]]&order=name desc"#);
        let a = list("repository", records(), &p, COLUMNS).unwrap();
        assert_eq!(names(&a), ["active/foo2", "active/foo"]);
        let p = Params::from_query(r#"where={"name":["admin/foo3","x"]}&limit=1&offset=0"#);
        let a = list("repository", records(), &p, COLUMNS).unwrap();
        assert_eq!(names(&a), ["admin/foo3"]);
        let a = list(
            "repository",
            records(),
            &Params::from_query("limit=1&offset=1"),
            COLUMNS,
        )
        .unwrap();
        assert_eq!(names(&a), ["admin/foo3"], "newest first by default");
        assert_eq!(a["items_available"], 3);
    }

    #[test]
    fn bad_filters_are_422_naming_the_problem() {
        for (query, word) in [
            (r#"filters=[["nosuch","=","x"]]"#, "nosuch"),
            (r#"filters=[["name","~~","x"]]"#, "~~"),
            (r#"filters=[["name","="]]"#, "expected"),
            (r#"filters=[["name","in","x"]]"#, "array"),
            ("filters=%5Bnot json", "JSON"),
            (r#"filters={"a":1}"#, "array"),
            ("limit=ten", "limit"),
            ("order=name%20sideways", "sideways"),
        ] {
            let err =
                list("repository", records(), &Params::from_query(query), COLUMNS).unwrap_err();
            assert_eq!(err.status, 422, "{query}");
            assert!(err.message.contains(word), "{query}: {}", err.message);
        }
    }

    #[test]
    fn like_patterns() {
        assert!(like("active/foo", "active/%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
        assert!(like("abcabd", "%abd"));
        assert!(like("xaab", "%a_b%"));
        assert!(!like("ab", "a%%b_"));
        assert!(like("ab", "a%%b"));
        assert!(!like("abc", "abcd%"));
        assert!(!like("aXbXc", "a%c%b"));
        let long: String = "a".repeat(70) + "b";
        assert!(like(&format!("zz{long}zz"), &format!("%{long}%")));
        assert!(!like(&"a".repeat(200), &format!("%{long}%")));
    }

    #[test]
    fn like_is_linear_in_the_text() {
        // A 400k-character name against a 1000-character pattern that almost matches
        // everywhere: the old backtracking took tens of seconds.
        let text = "a".repeat(400_000);
        let pattern = format!("%{}b%", "a".repeat(MAX_LIKE_PATTERN - 3));
        let started = std::time::Instant::now();
        assert!(!like(&text, &pattern));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn long_like_patterns_are_422() {
        let pattern = "%".repeat(MAX_LIKE_PATTERN + 1);
        let query = format!(r#"filters=[["name","like","{pattern}"]]"#);
        let err = list(
            "repository",
            records(),
            &Params::from_query(&query),
            COLUMNS,
        )
        .unwrap_err();
        assert_eq!(err.status, 422);
        assert!(err.message.contains("longer than"), "{}", err.message);
    }

    #[test]
    fn order_is_total_over_mixed_types() {
        // Mixed types and missing values: sorting used to panic ("does not implement a total
        // order") and poison the store.
        let mut records = Vec::new();
        for i in 0..80u32 {
            let description = match i % 8 {
                0 => Value::Null,
                1 => json!(i),
                2 => json!(format!("{i}")),
                3 => json!(i % 2 == 0),
                4 => json!([i, "x"]),
                5 => json!({"k": i}),
                6 => json!(-1.5 * f64::from(i)),
                _ => json!(format!("z{i}")),
            };
            let mut r =
                json!({"uuid": format!("u{i:03}"), "modified_at": "1", "description": description});
            if i % 2 == 0 {
                r["name"] = json!(format!("n{}", 80 - i));
            }
            records.push(r);
        }
        let columns = &["uuid", "name", "description", "modified_at"];
        for order in [
            "description asc",
            "description desc",
            "name",
            "name desc, description",
        ] {
            let p = Params::from_query(&format!("order={order}&limit=1000"));
            let a = list("collection", records.clone(), &p, columns).unwrap();
            assert_eq!(a["items"].as_array().unwrap().len(), 80, "{order}");
        }
        // Half unnamed, in many shuffles and sizes (a pseudo-random walk, no seed to keep).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for size in [17, 33, 64, 65, 100, 257] {
            for _ in 0..20 {
                let shuffled: Vec<Value> = (0..size)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let name = if x % 2 == 0 { json!(format!("c{}", x % 1000)) } else { Value::Null };
                        let description = match x % 5 { 0 => json!(x % 7), 1 => json!(format!("{}", x % 11)), 2 => Value::Null, 3 => json!(true), _ => json!("z") };
                        json!({"uuid": format!("u{i}"), "modified_at": "1", "name": name, "description": description})
                    })
                    .collect();
                for order in ["name", "description asc"] {
                    let p = Params::from_query(&format!("order={order}&limit=1000"));
                    list("collection", shuffled.clone(), &p, columns).unwrap();
                }
            }
        }
        assert_eq!(total_order(&json!(null), &json!("a")), Ordering::Less);
        assert_eq!(total_order(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(total_order(&json!("10"), &json!("2")), Ordering::Less);
    }
}
