//! Block locators: `<32 hex md5>[+<size>][+Hint]...`.

use std::fmt;

/// MD5 of the empty block, which every server has.
pub const EMPTY_BLOCK_HASH: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// Why a string is not a locator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocatorError {
    /// The hash part is not 32 lowercase hex digits.
    #[error("{0:?} is not a locator: it must start with 32 lowercase hex digits")]
    BadHash(String),
    /// The size part is not a decimal number.
    #[error("{0:?} is not a locator: bad size")]
    BadSize(String),
    /// A hint does not match `[A-Z][A-Za-z0-9@_-]*`.
    #[error("{0:?} is not a locator: bad hint")]
    BadHint(String),
}

/// Whether `s` is 32 lowercase hex digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_hint(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'_' | b'-'))
}

/// A parsed locator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    /// The MD5 of the block, 32 lowercase hex digits.
    pub hash: String,
    /// The size hint, when given.
    pub size: Option<u64>,
    /// The other hints, without their leading `+`, in order.
    pub hints: Vec<String>,
}

impl Locator {
    /// Parses `hash[+size][+Hint]...`.
    pub fn parse(s: &str) -> Result<Locator, LocatorError> {
        let mut parts = s.split('+');
        let hash = parts.next().unwrap_or_default();
        if !is_hash(hash) {
            return Err(LocatorError::BadHash(s.to_string()));
        }
        let mut size = None;
        let mut hints = Vec::new();
        for (i, part) in parts.enumerate() {
            if i == 0 && part.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                if part.len() > 20 || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(LocatorError::BadSize(s.to_string()));
                }
                size = Some(
                    part.parse()
                        .map_err(|_| LocatorError::BadSize(s.to_string()))?,
                );
            } else if is_hint(part) {
                hints.push(part.to_string());
            } else {
                return Err(LocatorError::BadHint(s.to_string()));
            }
        }
        Ok(Locator {
            hash: hash.to_string(),
            size,
            hints,
        })
    }

    /// The first permission hint (`A<sig>@<expiry>`), without its `A`.
    pub fn permission_hint(&self) -> Option<&str> {
        self.hints.iter().find_map(|h| h.strip_prefix('A'))
    }
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hash)?;
        if let Some(size) = self.size {
            write!(f, "+{size}")?;
        }
        for hint in &self.hints {
            write!(f, "+{hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hash_size_and_hints() {
        let l = Locator::parse("acbd18db4cc2f85cedef654fccc4a4d8+3+K@xyzzy+Aabc@7fffffff+Zfoo")
            .unwrap();
        assert_eq!(l.hash, "acbd18db4cc2f85cedef654fccc4a4d8");
        assert_eq!(l.size, Some(3));
        assert_eq!(l.hints, ["K@xyzzy", "Aabc@7fffffff", "Zfoo"]);
        assert_eq!(l.permission_hint(), Some("abc@7fffffff"));
        assert_eq!(
            l.to_string(),
            "acbd18db4cc2f85cedef654fccc4a4d8+3+K@xyzzy+Aabc@7fffffff+Zfoo"
        );
        let bare = Locator::parse(EMPTY_BLOCK_HASH).unwrap();
        assert_eq!(bare.size, None);
        assert!(bare.hints.is_empty());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "acbd18db4cc2f85cedef654fccc4a4d",
            "ACBD18DB4CC2F85CEDEF654FCCC4A4D8",
            "acbd18db4cc2f85cedef654fccc4a4d8x",
            "acbd18db4cc2f85cedef654fccc4a4d8+",
            "acbd18db4cc2f85cedef654fccc4a4d8+3x",
            "acbd18db4cc2f85cedef654fccc4a4d8+3+k@lower",
            "acbd18db4cc2f85cedef654fccc4a4d8+3+A!",
            "../etc/passwd",
        ] {
            assert!(Locator::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
