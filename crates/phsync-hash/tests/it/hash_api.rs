//! The hashing core through the safe Rust API, against every published vector.

use phsync_hash::{
    verify_nt_hash, verify_password, verify_password_utf16, DigestParseError, HashError, NtHash,
    PhsDigest, MAX_PASSWORD_UTF16_UNITS,
};
use phsync_testkit::vectors::*;

fn salt(hex_str: &str) -> [u8; 10] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

#[test]
fn nt_hash_vectors() {
    for (password, expected) in NT_VECTORS {
        let nt = NtHash::from_password(password).unwrap();
        assert_eq!(
            nt.to_upper_hex().as_str(),
            *expected,
            "password {password:?}"
        );
        let units: Vec<u16> = password.encode_utf16().collect();
        assert_eq!(NtHash::from_utf16(&units).unwrap(), nt);
        assert_eq!(NtHash::from_utf8(password.as_bytes()).unwrap(), nt);
        assert_eq!(NtHash::from_hex(expected).unwrap(), nt);
        assert_eq!(NtHash::from_hex(&expected.to_lowercase()).unwrap(), nt);
    }
}

#[test]
fn digest_vectors_format_parse_and_verify() {
    for (password, salt_hex, iterations, published) in DIGEST_VECTORS {
        let nt = NtHash::from_password(password).unwrap();
        let digest = PhsDigest::from_nt_hash(&nt, salt(salt_hex), *iterations).unwrap();
        let canonical = if published.ends_with(';') {
            published.to_string()
        } else {
            format!("{published};")
        };
        assert_eq!(digest.encode().as_str(), canonical, "password {password:?}");
        let parsed = PhsDigest::parse(published).unwrap();
        assert_eq!(parsed, digest);
        assert_eq!(parsed.iterations(), *iterations);
        assert!(verify_password(published, password).unwrap());
        let units: Vec<u16> = password.encode_utf16().collect();
        assert!(verify_password_utf16(published, &units).unwrap());
        assert!(verify_nt_hash(published, &nt).unwrap());
        assert!(!verify_password(published, "not the password").unwrap());
        // Without the trailing ';' (hashcat's form) it parses to the same digest.
        assert_eq!(
            PhsDigest::parse(published.trim_end_matches(';')).unwrap(),
            digest
        );
    }
}

#[test]
fn negative_controls_never_match() {
    let nt = NtHash::from_password(CONTROL_PASSWORD).unwrap();
    let digest = PhsDigest::from_nt_hash(&nt, salt(CONTROL_SALT), 1000).unwrap();
    assert_eq!(hex::encode(digest.key()), CONTROL_CORRECT_KEY);
    assert!(verify_password(&control_digest(CONTROL_CORRECT_KEY), CONTROL_PASSWORD).unwrap());
    for (mistake, key) in CONTROL_WRONG_KEYS {
        assert_ne!(hex::encode(digest.key()), *key, "{mistake}");
        assert!(
            !verify_password(&control_digest(key), CONTROL_PASSWORD).unwrap(),
            "the {mistake} variant must not verify"
        );
    }
}

/// The controls are only meaningful if the wrong variants really produce those keys:
/// recompute each mistake with an independent PBKDF2 implementation.
#[test]
fn negative_controls_are_the_mistakes_they_claim() {
    use pbkdf2::pbkdf2_hmac;
    use sha2::Sha256;
    let nt = NtHash::from_password(CONTROL_PASSWORD).unwrap();
    let s = salt(CONTROL_SALT);
    let utf16 =
        |text: &str| -> Vec<u8> { text.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let upper = hex::encode_upper(nt.as_bytes());
    let variants: [(&str, Vec<u8>); 4] = [
        ("correct", utf16(&upper)),
        ("UTF-16LE(lower hex)", utf16(&upper.to_lowercase())),
        ("ASCII(UPPER hex)", upper.as_bytes().to_vec()),
        ("raw 16-byte NT hash", nt.as_bytes().to_vec()),
    ];
    let mut expected = vec![("correct", CONTROL_CORRECT_KEY)];
    expected.extend_from_slice(CONTROL_WRONG_KEYS);
    for ((name, input), (ename, key)) in variants.iter().zip(expected) {
        assert_eq!(*name, ename);
        let mut out = [0u8; 32];
        pbkdf2_hmac::<Sha256>(input, &s, 1000, &mut out);
        assert_eq!(hex::encode(out), key, "{name}");
    }
}

#[test]
fn malformed_digests_are_refused() {
    for bad in MALFORMED_DIGESTS {
        let err = PhsDigest::parse(bad).expect_err(bad);
        assert!(!err.to_string().is_empty());
        assert!(matches!(
            verify_password(bad, "x"),
            Err(HashError::MalformedDigest(_))
        ));
    }
}

#[test]
fn parse_errors_are_precise() {
    let key = "b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a";
    let cases: &[(&str, DigestParseError)] = &[
        ("", DigestParseError::Empty),
        ("v2;x", DigestParseError::BadPrefix),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70e,1000,{key},x;"),
            DigestParseError::FieldCount(5),
        ),
        (
            &format!("v1;PPH1_MD4,181a30,1000,{key};"),
            DigestParseError::SaltLength {
                expected: 20,
                found: 6,
            },
        ),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70q,1000,{key};"),
            DigestParseError::SaltNotHex,
        ),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70e,abc,{key};"),
            DigestParseError::IterationsNotNumber,
        ),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70e,0100,{key};"),
            DigestParseError::IterationsLeadingZero,
        ),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70e,0,{key};"),
            DigestParseError::IterationsOutOfRange {
                min: 1,
                max: 1_000_000,
            },
        ),
        (
            "v1;PPH1_MD4,181a3024085fcee2f70e,1000,abcd;",
            DigestParseError::KeyLength {
                expected: 64,
                found: 4,
            },
        ),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70e,1000,{key};;"),
            DigestParseError::TrailingData,
        ),
        (
            &format!("v1;PPH1_MD4,181a3024085fcee2f70e,1000,{key} "),
            DigestParseError::Whitespace,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(&PhsDigest::parse(input).unwrap_err(), expected, "{input}");
    }
}

#[test]
fn iteration_bounds() {
    let nt = NtHash::from_password("x").unwrap();
    assert!(PhsDigest::from_nt_hash(&nt, [0; 10], 0).is_err());
    assert!(PhsDigest::from_nt_hash(&nt, [0; 10], 1_000_001).is_err());
    let one = PhsDigest::from_nt_hash(&nt, [0; 10], 1).unwrap();
    assert!(PhsDigest::parse(&one.encode())
        .unwrap()
        .matches_nt_hash(&nt));
    let max = format!(
        "v1;PPH1_MD4,00000000000000000000,1000000,{}",
        "00".repeat(32)
    );
    assert_eq!(PhsDigest::parse(&max).unwrap().iterations(), 1_000_000);
}

#[test]
fn random_salts_differ_and_verify() {
    let nt = NtHash::from_password("Pa$$w0rd").unwrap();
    let a = PhsDigest::new_random(&nt).unwrap();
    let b = PhsDigest::new_random(&nt).unwrap();
    assert_ne!(a.salt(), b.salt());
    assert_eq!(a.iterations(), 1000);
    assert!(verify_password(&a.encode(), "Pa$$w0rd").unwrap());
    assert!(verify_password(&b.encode(), "Pa$$w0rd").unwrap());
}

#[test]
fn lone_surrogates_are_hashed_as_they_are() {
    // U+D800 alone: MD4 over the raw bytes 00 D8.
    let lone = [0x0061u16, 0xD800, 0x0062];
    let nt = NtHash::from_utf16(&lone).unwrap();
    let mut md4 = <md4::Md4 as md4::Digest>::new();
    md4::Digest::update(&mut md4, [0x61, 0x00, 0x00, 0xD8, 0x62, 0x00]);
    assert_eq!(
        nt.as_bytes().as_slice(),
        md4::Digest::finalize(md4).as_slice()
    );
    let digest = PhsDigest::new_random(&nt).unwrap();
    assert!(verify_password_utf16(&digest.encode(), &lone).unwrap());
    assert!(!verify_password_utf16(&digest.encode(), &[0x61, 0xD801, 0x62]).unwrap());
}

#[test]
fn password_length_limit() {
    let ok = vec![0x41u16; MAX_PASSWORD_UTF16_UNITS];
    assert!(NtHash::from_utf16(&ok).is_ok());
    let long = vec![0x41u16; MAX_PASSWORD_UTF16_UNITS + 1];
    assert_eq!(
        NtHash::from_utf16(&long).unwrap_err(),
        HashError::PasswordTooLong {
            units: 513,
            max: 512
        }
    );
    // The UTF-8 limit counts UTF-16 units: 512 astral chars are 1024 units.
    let astral = "😀".repeat(257);
    assert!(matches!(
        NtHash::from_password(&astral),
        Err(HashError::PasswordTooLong { units: 514, .. })
    ));
    assert_eq!(
        NtHash::from_utf8(&[0x66, 0xff, 0x66]).unwrap_err(),
        HashError::InvalidUtf8
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let nt = NtHash::from_password("Pa$$w0rd").unwrap();
    let shown = format!("{nt:?}");
    assert!(!shown.contains("92937945"), "{shown}");
    assert!(!shown.to_lowercase().contains("92937945"));
    let digest = PhsDigest::from_nt_hash(&nt, salt("181a3024085fcee2f70e"), 1000).unwrap();
    let shown = format!("{digest:?}");
    assert!(
        !shown.contains("b39525c3") && !shown.contains("181a30"),
        "{shown}"
    );
}
