//! Request parameters and list queries: the `filters`, `where`, `order`, `limit`, `offset` and
//! `select` parameters of Arvados list calls, checked strictly (an unknown attribute or
//! operator, or a filter of the wrong shape, is a 422 naming it) and applied to JSON records.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::answer::ApiError;

/// A request's parameters: the query string, merged with a form body for method-overridden
/// calls, values that look like JSON already decoded.
#[derive(Debug, Default, Clone)]
pub struct Params(pub BTreeMap<String, Value>);

impl Params {
    /// Parses `a=1&b=%5B%5D` style text (`+` is a space, malformed escapes are kept as written:
    /// [`cibox_runtime::percent::query_pairs`]).
    pub fn from_query(query: &str) -> Params {
        let mut map = BTreeMap::new();
        for (k, v) in cibox_runtime::percent::query_pairs(query) {
            let value = if v.starts_with('[') || v.starts_with('{') {
                serde_json::from_str(&v).unwrap_or(Value::String(v))
            } else {
                Value::String(v)
            };
            map.insert(k, value);
        }
        Params(map)
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

/// SQL `LIKE`: `%` any run, `_` any one character.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
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
            kinds.iter().any(|k| record["kind"] == **k)
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
            let o = compare(&a[attr.as_str()], &b[attr.as_str()]).unwrap_or(Ordering::Equal);
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
        None => vec!["modified_at desc".into(), "uuid asc".into()],
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
    }
}
