//! Percent-decoding of URL paths and query strings, through the `percent-encoding` crate. Two
//! readings, as the servers need them:
//!
//! - [`decode_path`]: a path segment or path, strictly: an escape that is not `%` and two hex
//!   digits, or a result that is not UTF-8, is an error (serve's static files and staging: a
//!   malformed path is refused, never guessed at). `+` stays `+`.
//! - [`decode_query`] and [`query_pairs`]: query strings and forms, leniently, as Rails and Go
//!   read them: `+` is a space and a malformed escape is kept as written.

use percent_encoding::percent_decode_str;

/// A path whose percent-encoding is malformed or does not decode to UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid percent-encoding in {0:?}")]
pub struct DecodeError(pub String);

/// Decodes a path strictly: `%XX` escapes with two hex digits each, a UTF-8 result; `+` is kept.
pub fn decode_path(input: &str) -> Result<String, DecodeError> {
    let bytes = input.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(DecodeError(input.to_string()));
    }
    percent_decode_str(input)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| DecodeError(input.to_string()))
}

/// Decodes `%XX` escapes leniently (a malformed one is kept as written, bytes that are not
/// UTF-8 become U+FFFD); `+` is a space when `plus_is_space`.
pub fn decode_lenient(input: &str, plus_is_space: bool) -> String {
    if plus_is_space && input.contains('+') {
        let spaced = input.replace('+', " ");
        return percent_decode_str(&spaced).decode_utf8_lossy().into_owned();
    }
    percent_decode_str(input).decode_utf8_lossy().into_owned()
}

/// Decodes one query-string or form value: `+` is a space, escapes leniently.
pub fn decode_query(input: &str) -> String {
    decode_lenient(input, true)
}

/// The `name=value` pairs of a query string, decoded with [`decode_query`], in order; a pair
/// without `=` has an empty value, empty pairs are skipped.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query(name), decode_query(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_paths() {
        assert_eq!(decode_path("a%20b+c").unwrap(), "a b+c");
        assert_eq!(decode_path("plain").unwrap(), "plain");
        assert!(decode_path("bad%zz").is_err());
        assert!(decode_path("short%2").is_err());
        assert!(decode_path("%ff%fe").is_err());
    }

    #[test]
    fn lenient_queries() {
        assert_eq!(decode_query("a+b%21"), "a b!");
        assert_eq!(decode_query("100%"), "100%");
        assert_eq!(decode_lenient("a+b", false), "a+b");
        assert_eq!(
            query_pairs("x=1&&y&z=a%3Db"),
            vec![
                ("x".to_string(), "1".to_string()),
                ("y".to_string(), String::new()),
                ("z".to_string(), "a=b".to_string())
            ]
        );
    }
}
