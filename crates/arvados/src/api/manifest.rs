//! Collection manifests as the API server handles them: checking the permission signatures
//! of the locators a client sends, storing the text without signatures, signing it again for
//! each reader, and the portable data hash (MD5 of the manifest with every locator cut to
//! `hash+size`, then `+` and that text's length).

use crate::locator::{Locator, EMPTY_BLOCK_HASH};
use crate::signature;

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A line does not have the shape `stream locator... position:size:name...`.
    #[error("malformed manifest line {line}: {why}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A locator's permission signature does not hold for the caller.
    #[error("locator {locator}: {why}")]
    Permission {
        /// The locator as sent.
        locator: String,
        /// The signature problem.
        why: signature::SignatureError,
    },
}

fn is_locator_token(token: &str) -> bool {
    token.len() >= 32 && crate::locator::is_hash(&token[..32])
}

/// Applies `f` to every locator of a manifest, keeping everything else as it is.
fn map_locators(
    text: &str,
    mut f: impl FnMut(&str) -> Result<String, ManifestError>,
) -> Result<String, ManifestError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.is_empty() {
            out.push_str(newline);
            continue;
        }
        let mut tokens = body.split(' ');
        let stream = tokens.next().unwrap_or_default();
        if !(stream == "." || stream.starts_with("./")) {
            return Err(ManifestError::Malformed {
                line: n + 1,
                why: format!("stream name {stream:?} does not start with \".\""),
            });
        }
        out.push_str(stream);
        let mut seen_locator = false;
        let mut seen_file = false;
        for token in tokens {
            out.push(' ');
            if !seen_file && is_locator_token(token) {
                Locator::parse(token).map_err(|e| ManifestError::Malformed {
                    line: n + 1,
                    why: e.to_string(),
                })?;
                seen_locator = true;
                out.push_str(&f(token)?);
            } else if seen_locator && is_file_token(token) {
                seen_file = true;
                out.push_str(token);
            } else {
                return Err(ManifestError::Malformed {
                    line: n + 1,
                    why: format!("unexpected token {token:?}"),
                });
            }
        }
        if !seen_locator || !seen_file {
            return Err(ManifestError::Malformed {
                line: n + 1,
                why: "a stream needs at least one locator and one file".into(),
            });
        }
        out.push_str(newline);
    }
    Ok(out)
}

fn is_file_token(token: &str) -> bool {
    let mut parts = token.splitn(3, ':');
    let (Some(pos), Some(size), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    pos.parse::<u64>().is_ok() && size.parse::<u64>().is_ok() && !name.is_empty()
}

/// The manifest without `+A` permission hints (what is stored).
pub fn strip_signatures(text: &str) -> Result<String, ManifestError> {
    map_locators(text, |loc| {
        Ok(loc
            .split('+')
            .filter(|part| !part.starts_with('A'))
            .collect::<Vec<_>>()
            .join("+"))
    })
}

/// The portable manifest: every locator cut to `hash+size`.
pub fn portable(text: &str) -> Result<String, ManifestError> {
    map_locators(text, |loc| {
        let mut parts = loc.split('+');
        let hash = parts.next().unwrap_or_default();
        Ok(match parts.next() {
            Some(size) if size.bytes().all(|b| b.is_ascii_digit()) && !size.is_empty() => {
                format!("{hash}+{size}")
            }
            _ => hash.to_string(),
        })
    })
}

/// The portable data hash of a manifest.
pub fn portable_data_hash(text: &str) -> Result<String, ManifestError> {
    let portable = portable(text)?;
    Ok(format!(
        "{}+{}",
        crate::digest::md5_hex(portable.as_bytes()),
        portable.len()
    ))
}

/// Checks every signed locator against `token` with `key`. Unsigned locators pass only when
/// `allow_unsigned` (admins) or for the empty block, which every server has.
pub fn verify(
    text: &str,
    key: &[u8],
    token: &str,
    now: u64,
    allow_unsigned: bool,
) -> Result<(), ManifestError> {
    map_locators(text, |loc| {
        let parsed = Locator::parse(loc).map_err(|e| ManifestError::Malformed {
            line: 0,
            why: e.to_string(),
        })?;
        if parsed.permission_hint().is_none() && (allow_unsigned || parsed.hash == EMPTY_BLOCK_HASH)
        {
            return Ok(String::new());
        }
        signature::verify(&parsed, key, token, signature::DEFAULT_TTL, now).map_err(|why| {
            ManifestError::Permission {
                locator: loc.to_string(),
                why,
            }
        })?;
        Ok(String::new())
    })
    .map(|_| ())
}

/// The stored (unsigned) manifest with every locator signed for `token`.
pub fn sign(text: &str, key: &[u8], token: &str, now: u64) -> String {
    let expiry = now + signature::DEFAULT_TTL;
    map_locators(text, |loc| {
        Ok(signature::sign_locator(
            loc,
            key,
            token,
            expiry,
            signature::DEFAULT_TTL,
        ))
    })
    .unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOO: &str = "acbd18db4cc2f85cedef654fccc4a4d8";

    #[test]
    fn portable_data_hash_as_arvados_computes_it() {
        // The well-known hash of the one-file collection "foo".
        let text = format!(". {FOO}+3+Afff@1234+Kzzzzz 0:3:foo\n");
        assert_eq!(
            portable_data_hash(&text).unwrap(),
            "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"
        );
        assert_eq!(
            portable_data_hash("").unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e+0"
        );
        assert_eq!(
            strip_signatures(&text).unwrap(),
            format!(". {FOO}+3+Kzzzzz 0:3:foo\n")
        );
    }

    #[test]
    fn signed_locators_verify_for_their_token_only() {
        let key = b"key";
        let now = 1_700_000_000;
        let text = format!(". {FOO}+3 0:3:foo\n");
        let signed = sign(&text, key, "tok", now);
        assert!(signed.contains("+A"));
        verify(&signed, key, "tok", now, false).unwrap();
        assert!(matches!(
            verify(&signed, key, "other", now, false),
            Err(ManifestError::Permission { .. })
        ));
        assert!(verify(&text, key, "tok", now, false).is_err());
        verify(&text, key, "tok", now, true).unwrap();
        assert_eq!(strip_signatures(&signed).unwrap(), text);
    }

    #[test]
    fn malformed_manifests_name_the_line() {
        for bad in [
            "foo 0:3:x\n",
            ". 0:3:foo\n",
            &format!(". {FOO}+3\n"),
            &format!(". {FOO}+3 x\n"),
        ] {
            let err = strip_signatures(bad).unwrap_err().to_string();
            assert!(err.contains("line 1"), "{bad:?}: {err}");
        }
    }
}
