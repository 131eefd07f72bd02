//! Property tests of the hashing core. PBKDF2 at 1000 rounds is slow in debug builds, so
//! the digest properties use few iterations: the iteration count does not change the code path.

use phsync_hash::{NtHash, PhsDigest};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn utf8_and_utf16_entry_points_agree(password in "\\PC{0,64}") {
        let units: Vec<u16> = password.encode_utf16().collect();
        prop_assume!(units.len() <= 512);
        let a = NtHash::from_password(&password).unwrap();
        let b = NtHash::from_utf16(&units).unwrap();
        let c = NtHash::from_utf8(password.as_bytes()).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
    }

    #[test]
    fn invalid_utf8_is_refused(mut bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
        bytes.push(0xFF);
        prop_assert!(NtHash::from_utf8(&bytes).is_err());
    }

    #[test]
    fn nt_hash_hex_round_trip(bytes in any::<[u8; 16]>()) {
        let nt = NtHash::from_bytes(bytes);
        prop_assert_eq!(NtHash::from_hex(&nt.to_upper_hex()).unwrap(), nt);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn format_parse_round_trip(salt in any::<[u8; 10]>(), key in any::<[u8; 32]>(), iterations in 1u32..=1_000_000) {
        let digest = PhsDigest::from_parts(salt, iterations, key).unwrap();
        let text = digest.encode();
        prop_assert!(text.len() < 128);
        let parsed = PhsDigest::parse(&text).unwrap();
        let again = parsed.encode();
        prop_assert_eq!(again.as_str(), text.as_str());
        prop_assert_eq!(&parsed, &digest);
        let without = PhsDigest::parse(text.trim_end_matches(';')).unwrap();
        prop_assert_eq!(&without, &digest);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,160}") {
        let _ = PhsDigest::parse(&s);
    }

    #[test]
    fn parse_never_panics_near_valid(mutation in 0usize..113, ch in any::<char>()) {
        let mut s: Vec<char> = "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;".chars().collect();
        let at = mutation % s.len();
        s[at] = ch;
        let text: String = s.into_iter().collect();
        if let Ok(d) = PhsDigest::parse(&text) {
            // Anything accepted must re-encode to a canonical string that parses identically.
            prop_assert_eq!(&PhsDigest::parse(&d.encode()).unwrap(), &d);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn digest_never_verifies_a_different_password(a in "\\PC{0,24}", b in "\\PC{0,24}", salt in any::<[u8; 10]>()) {
        prop_assume!(a != b);
        let digest = PhsDigest::from_nt_hash(&NtHash::from_password(&a).unwrap(), salt, 8).unwrap();
        prop_assert!(digest.matches_nt_hash(&NtHash::from_password(&a).unwrap()));
        prop_assert!(!digest.matches_nt_hash(&NtHash::from_password(&b).unwrap()));
    }
}
