//! Permission signatures: HMAC-SHA1 over the hash, the client's token and the expiry.
//!
//! * v1: `hash "@" token "@" exp_hex`
//! * v2: `hash "@" token "@" exp_hex "@" ttl_hex`
//!
//! `exp_hex` is the expiry in unix seconds as `%08x`, `ttl_hex` the signature TTL in lowercase
//! hex without padding; the key is the signing key file's contents with surrounding whitespace
//! trimmed. A signed locator carries `+A<40 hex signature>@<exp_hex>`. New signatures are v2;
//! both versions verify, compared in constant time.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::locator::Locator;

/// Default signature lifetime: two weeks.
pub const DEFAULT_TTL: u64 = 1_209_600;

/// The current time in unix seconds, as signatures and their expiries count it.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a locator's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `+A` hint.
    #[error("locator is not signed")]
    Missing,
    /// The `+A` hint is not `<40 hex>@<hex expiry>`.
    #[error("malformed permission signature")]
    Malformed,
    /// The expiry has passed.
    #[error("permission signature expired")]
    Expired,
    /// The signature does not match (wrong key, token, TTL or hash).
    #[error("permission signature does not match")]
    Invalid,
}

impl SignatureError {
    /// The HTTP status keepstore (2015) answers with: 401 for an expired signature, 403 for the
    /// others.
    pub fn http_status(&self) -> u16 {
        match self {
            SignatureError::Expired => 401,
            _ => 403,
        }
    }
}

fn mac(key: &[u8], hash: &str, token: &str, expiry: u64, ttl: Option<u64>) -> Hmac<Sha1> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(hash.as_bytes());
    mac.update(b"@");
    mac.update(token.as_bytes());
    mac.update(format!("@{expiry:08x}").as_bytes());
    if let Some(ttl) = ttl {
        mac.update(format!("@{ttl:x}").as_bytes());
    }
    mac
}

/// The signature (40 lowercase hex digits): v2 with `Some(ttl)`, v1 with `None`.
pub fn signature(key: &[u8], hash: &str, token: &str, expiry: u64, ttl: Option<u64>) -> String {
    hex::encode(mac(key, hash, token, expiry, ttl).finalize().into_bytes())
}

/// `locator` with a v2 permission hint appended: `locator+A<sig>@<exp_hex>`.
pub fn sign_locator(locator: &str, key: &[u8], token: &str, expiry: u64, ttl: u64) -> String {
    let hash = &locator[..locator.find('+').unwrap_or(locator.len())];
    format!(
        "{locator}+A{}@{expiry:08x}",
        signature(key, hash, token, expiry, Some(ttl))
    )
}

/// Checks the locator's first permission hint against `token`, at time `now` (unix seconds).
/// A v2 signature made with `ttl` and a v1 signature both pass.
pub fn verify(
    locator: &Locator,
    key: &[u8],
    token: &str,
    ttl: u64,
    now: u64,
) -> Result<(), SignatureError> {
    let hint = locator.permission_hint().ok_or(SignatureError::Missing)?;
    let (sig_hex, exp_hex) = hint.split_once('@').ok_or(SignatureError::Malformed)?;
    // Lowercase hex only, as signatures are written: otherwise `A` for `a` would be a second
    // spelling of the same signature or expiry.
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if sig_hex.len() != 40
        || exp_hex.is_empty()
        || exp_hex.len() > 16
        || !lower_hex(sig_hex)
        || !lower_hex(exp_hex)
    {
        return Err(SignatureError::Malformed);
    }
    let sig = hex::decode(sig_hex).map_err(|_| SignatureError::Malformed)?;
    let expiry = u64::from_str_radix(exp_hex, 16).map_err(|_| SignatureError::Malformed)?;
    if expiry < now {
        return Err(SignatureError::Expired);
    }
    for version in [Some(ttl), None] {
        if mac(key, &locator.hash, token, expiry, version)
            .verify_slice(&sig)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "13u9fkuccnboeewr0ne3mvapk28epf68a3bhj9q8sb4l6e4e5mkkp6nhj2mmpscgu1zze5h5enydxfe3j215024u16ij4hjaiqs5u4pzsl3nczmaoxncljkm4875xqn4xv058koz3vkptmzhyheiy6wzevzjmdvxhvcqsvr5abhl15c2d4o4jhl0s91lojy1mtrzqqvprqcverls0xvy9vai9t1l1lvvazpuadafm71jl4mrwq2ygokee3eamvjy8qq1fvy238838enjmy5wzy2md7yvsitp5vztft6j4q866efym7e6vu5wm9fpnwjyxfldw3vbo01mgjs75rgo7qioh8z8ij7jpyp8508okhgbbex3ceei786u5rw2a9gx743dj3fgq2irk";
    const TOKEN: &str = "hocfupkn2pjhrpgp2vxv8rsku7tvtx49arbc9s4bvu7p7wxqvk";
    const HASH: &str = "acbd18db4cc2f85cedef654fccc4a4d8";
    const V1: &str = "257f3f5f5f0a4e4626a18fc74bd42ec34dcb228a";
    const V2: &str = "89118b78732c33104a4d6231e8b5a5fa1e4301e3";
    const EXPIRY: u64 = 0x7fff_ffff;
    const NOW: u64 = 1_700_000_000;

    #[test]
    fn vectors() {
        let key = KEY.as_bytes();
        assert_eq!(signature(key, HASH, TOKEN, EXPIRY, None), V1);
        assert_eq!(signature(key, HASH, TOKEN, EXPIRY, Some(DEFAULT_TTL)), V2);
        assert_eq!(
            sign_locator(&format!("{HASH}+3"), key, TOKEN, EXPIRY, DEFAULT_TTL),
            format!("{HASH}+3+A{V2}@7fffffff")
        );
    }

    #[test]
    fn vectors_verify_with_extra_hints_before_and_after() {
        let key = KEY.as_bytes();
        for sig in [V1, V2] {
            for form in [
                format!("{HASH}+3+A{sig}@7fffffff"),
                format!("{HASH}+3+K@xyzzy+A{sig}@7fffffff"),
                format!("{HASH}+3+A{sig}@7fffffff+Zfoo"),
                format!("{HASH}+3+K@xyzzy+A{sig}@7fffffff+Zfoo"),
                format!("{HASH}+A{sig}@7fffffff"),
            ] {
                let loc = Locator::parse(&form).unwrap();
                assert_eq!(verify(&loc, key, TOKEN, DEFAULT_TTL, NOW), Ok(()), "{form}");
            }
        }
    }

    #[test]
    fn refusals() {
        let key = KEY.as_bytes();
        let check = |s: &str, token: &str, ttl: u64, now: u64| {
            verify(&Locator::parse(s).unwrap(), key, token, ttl, now)
        };
        let signed = format!("{HASH}+3+A{V2}@7fffffff");
        assert_eq!(
            check(&signed, "other", DEFAULT_TTL, NOW),
            Err(SignatureError::Invalid)
        );
        // A v2 signature is bound to its TTL.
        assert_eq!(check(&signed, TOKEN, 60, NOW), Err(SignatureError::Invalid));
        assert_eq!(
            check(&signed, TOKEN, DEFAULT_TTL, EXPIRY + 1),
            Err(SignatureError::Expired)
        );
        // The same signature or expiry spelled in uppercase is not a second valid spelling.
        for variant in [
            format!("{HASH}+3+A{}@7fffffff", V2.to_uppercase()),
            format!("{HASH}+3+A{V2}@7FFFFFFF"),
        ] {
            assert_eq!(
                check(&variant, TOKEN, DEFAULT_TTL, NOW),
                Err(SignatureError::Malformed)
            );
        }
        let forged = format!("{HASH}+3+A{}@7fffffff", "0".repeat(40));
        assert_eq!(
            check(&forged, TOKEN, DEFAULT_TTL, NOW),
            Err(SignatureError::Invalid)
        );
        let other_hash = format!("37b51d194a7513e45b56f6524f2d51f2+3+A{V2}@7fffffff");
        assert_eq!(
            check(&other_hash, TOKEN, DEFAULT_TTL, NOW),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&format!("{HASH}+3"), TOKEN, DEFAULT_TTL, NOW),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check(
                &format!("{HASH}+3+Ashort@7fffffff"),
                TOKEN,
                DEFAULT_TTL,
                NOW
            ),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&format!("{HASH}+3+A{V2}"), TOKEN, DEFAULT_TTL, NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(SignatureError::Expired.http_status(), 401);
        assert_eq!(SignatureError::Invalid.http_status(), 403);
    }
}
