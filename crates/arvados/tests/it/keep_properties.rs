//! Property tests for the parsers of untrusted Keep input: block locators and permission
//! signatures. They never panic, take time linear in their input, round-trip, and a signed
//! locator verifies while any one-character change of its signature does not.

use std::time::{Duration, Instant};

use cibox_arvados::locator::Locator;
use cibox_arvados::signature::{self, SignatureError};
use proptest::prelude::*;

/// Characters a hostile locator is made of: the locator alphabet and a few that are not.
fn locator_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[0-9a-fA-Z+@_\\-./%\u{0}é]{0,120}").unwrap()
}

fn hash() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[0-9a-f]{32}").unwrap()
}

fn hint() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Z][A-Za-z0-9@_\\-]{0,40}").unwrap()
}

fn locator() -> impl Strategy<Value = Locator> {
    (
        hash(),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(hint(), 0..5),
    )
        .prop_map(|(hash, size, hints)| Locator { hash, size, hints })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parsing_anything_never_panics(text in any::<String>(), like in locator_like()) {
        let _ = Locator::parse(&text);
        if let Ok(l) = Locator::parse(&like) {
            // Whatever parses re-renders to something that parses to the same locator.
            prop_assert_eq!(Locator::parse(&l.to_string()), Ok(l.clone()));
            let _ = signature::verify(&l, b"key", "token", 60, 0);
        }
    }

    #[test]
    fn format_parse_round_trip(l in locator()) {
        let text = l.to_string();
        prop_assert_eq!(Locator::parse(&text), Ok(l.clone()));
        // And a hostile suffix or prefix makes it fail, never panic.
        let with_plus = format!("{}+", text);
        let with_slash = format!("/{}", text);
        prop_assert!(Locator::parse(&with_plus).is_err());
        prop_assert!(Locator::parse(&with_slash).is_err());
    }

    #[test]
    fn a_signed_locator_verifies_and_any_changed_signature_character_does_not(
        hash in hash(),
        size in 0u64..(64 << 20),
        key_bytes in proptest::collection::vec(any::<u8>(), 1..64),
        token in "[a-z0-9]{1,50}",
        lifetime in 1u64..10_000_000,
        ttl in 1u64..10_000_000,
        position in 0usize..40,
        replacement in proptest::sample::select(vec![
            '0', '1', '9', 'a', 'f', 'g', 'A', 'F', 'Z', '@', '_', '-',
        ]),
    ) {
        let key: &[u8] = &key_bytes;
        let now = 1_700_000_000u64;
        let plain = format!("{hash}+{size}");
        let signed = signature::sign_locator(&plain, key, &token, now + lifetime, ttl);
        let parsed = Locator::parse(&signed).unwrap();
        prop_assert_eq!(signature::verify(&parsed, key, &token, ttl, now), Ok(()));
        // Another token never verifies.
        let other_token = format!("{}x", token);
        prop_assert!(signature::verify(&parsed, key, &other_token, ttl, now).is_err());

        // One character of the 40-digit signature changed.
        let start = signed.find("+A").unwrap() + 2;
        let mut chars: Vec<char> = signed.chars().collect();
        prop_assume!(chars[start + position] != replacement);
        chars[start + position] = replacement;
        let tampered: String = chars.into_iter().collect();
        match Locator::parse(&tampered) {
            Err(_) => {}
            Ok(l) => {
                let result = signature::verify(&l, key, &token, ttl, now);
                prop_assert!(
                    matches!(result, Err(SignatureError::Invalid | SignatureError::Malformed)),
                    "{} verified: {:?}", tampered, result
                );
            }
        }
    }

    #[test]
    fn a_changed_expiry_character_does_not_verify(
        hash in hash(),
        position in 0usize..8,
        replacement in proptest::sample::select(vec!['0', '7', 'a', 'f', 'A', 'F']),
    ) {
        let now = 1_000u64;
        let signed = signature::sign_locator(&hash, b"k", "t", 0x7fff_ffff, 60);
        let at = signed.rfind('@').unwrap() + 1;
        let mut chars: Vec<char> = signed.chars().collect();
        prop_assume!(chars[at + position] != replacement);
        chars[at + position] = replacement;
        let tampered: String = chars.into_iter().collect();
        if let Ok(l) = Locator::parse(&tampered) {
            prop_assert!(signature::verify(&l, b"k", "t", 60, now).is_err(), "{}", tampered);
        }
    }
}

/// Parsing a few MiB of hostile input stays far below anything quadratic would take: a bound
/// of seconds where a quadratic parser would need hours.
#[test]
fn parsing_time_is_linear_in_the_input() {
    let hash = "acbd18db4cc2f85cedef654fccc4a4d8";
    let inputs = [
        format!("{hash}+3{}", "+A".repeat(2 << 20)),
        format!("{hash}+3{}", "+K@x".repeat(1 << 20)),
        format!("{hash}{}", "+".repeat(4 << 20)),
        format!("{hash}+{}", "9".repeat(4 << 20)),
        "a".repeat(4 << 20),
    ];
    let started = Instant::now();
    for input in &inputs {
        if let Ok(l) = Locator::parse(input) {
            let _ = signature::verify(&l, b"key", "token", 60, 0);
            let _ = l.to_string();
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?} for {} MiB",
        started.elapsed(),
        inputs.iter().map(String::len).sum::<usize>() >> 20
    );
}
