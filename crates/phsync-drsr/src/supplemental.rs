//! What `supplementalCredentials` holds, without keeping any of it: the names of the
//! packages in USER_PROPERTIES (MS-SAMR 2.2.10.1, 2.2.10.2) and whether
//! `Primary:Kerberos-Newer-Keys` (KERB_STORED_CREDENTIAL_NEW, MS-SAMR 2.2.10.5) lists an
//! AES key. Only the structure headers are decoded; key material is never copied out of
//! the (zeroized) decrypted value.

use serde::{Deserialize, Serialize};

/// `Reserved1 + Length + Reserved2 + Reserved3 + Reserved4[96]`, then PropertySignature.
const USER_PROPERTIES_HEADER: usize = 4 + 4 + 2 + 2 + 96;
const PROPERTY_SIGNATURE: u16 = 0x50;
/// Revision, Flags, four credential counts, DefaultSalt{Length,MaximumLength,Offset},
/// DefaultIterationCount.
const KERB_NEW_HEADER: usize = 2 * 8 + 4 + 4;
/// KERB_KEY_DATA_NEW: Reserved1..3, IterationCount, KeyType, KeyLength, KeyOffset.
const KERB_KEY_DATA_NEW: usize = 2 + 2 + 4 + 4 + 4 + 4 + 4;
const KEY_TYPE_OFFSET: usize = 12;
/// RFC 3962 encryption types aes128-cts-hmac-sha1-96 and aes256-cts-hmac-sha1-96.
const ETYPE_AES128: u32 = 17;
const ETYPE_AES256: u32 = 18;

pub const PACKAGE_KERBEROS_NEWER_KEYS: &str = "Primary:Kerberos-Newer-Keys";
pub const PACKAGE_CLEARTEXT: &str = "Primary:CLEARTEXT";

/// A summary of an account's supplementalCredentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplementalCredentials {
    /// USER_PROPERTY names present (`Primary:Kerberos-Newer-Keys`, `Primary:CLEARTEXT`, ...).
    pub packages: Vec<String>,
    /// `Primary:Kerberos-Newer-Keys` holds a current AES128 or AES256 key.
    pub kerberos_aes_keys: bool,
}

impl SupplementalCredentials {
    /// The password is stored in a reversible form (`Primary:CLEARTEXT`).
    pub fn cleartext_stored(&self) -> bool {
        self.packages.iter().any(|p| p == PACKAGE_CLEARTEXT)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse a decrypted USER_PROPERTIES value. A value too short for the header or without
/// the signature holds no properties (Windows writes such an empty structure); a
/// truncated property list ends the list (what was read stays).
pub fn parse(value: &[u8]) -> SupplementalCredentials {
    let mut out = SupplementalCredentials::default();
    if u16_at(value, USER_PROPERTIES_HEADER) != Some(PROPERTY_SIGNATURE) {
        return out;
    }
    let Some(count) = u16_at(value, USER_PROPERTIES_HEADER + 2) else {
        return out;
    };
    let mut at = USER_PROPERTIES_HEADER + 4;
    for _ in 0..count {
        let (Some(name_len), Some(value_len)) = (u16_at(value, at), u16_at(value, at + 2)) else {
            break;
        };
        let name_at = at + 6;
        let value_at = name_at + name_len as usize;
        let end = value_at + value_len as usize;
        let (Some(name), Some(prop)) = (value.get(name_at..value_at), value.get(value_at..end))
        else {
            break;
        };
        let units: Vec<u16> = name
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let name = String::from_utf16_lossy(&units);
        if name == PACKAGE_KERBEROS_NEWER_KEYS {
            out.kerberos_aes_keys = kerberos_new_has_aes(prop);
        }
        out.packages.push(name);
        at = end;
    }
    out
}

/// The property value is the structure in hex (two ASCII digits per byte). Decode only the
/// header and the KERB_KEY_DATA_NEW entries of the current credentials.
fn kerberos_new_has_aes(hex_value: &[u8]) -> bool {
    let decode = |from: usize, len: usize| -> Option<Vec<u8>> {
        let digits = hex_value.get(2 * from..2 * (from + len))?;
        hex::decode(digits).ok()
    };
    let Some(header) = decode(0, KERB_NEW_HEADER) else {
        return false;
    };
    if u16_at(&header, 0) != Some(4) {
        return false;
    }
    let count = u16_at(&header, 4).unwrap_or(0) as usize;
    (0..count).any(|i| {
        decode(KERB_NEW_HEADER + i * KERB_KEY_DATA_NEW, KERB_KEY_DATA_NEW)
            .and_then(|entry| u32_at(&entry, KEY_TYPE_OFFSET))
            .is_some_and(|t| t == ETYPE_AES128 || t == ETYPE_AES256)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// USER_PROPERTIES with the given (name, binary value) properties, as Windows builds it.
    pub fn user_properties(props: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in props {
            let name: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let value = hex::encode(value).into_bytes();
            body.extend_from_slice(&(name.len() as u16).to_le_bytes());
            body.extend_from_slice(&(value.len() as u16).to_le_bytes());
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&name);
            body.extend_from_slice(&value);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&((body.len() + 2 + 2 + 96 + 2 + 2 + 1) as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&[0x20; 96]);
        out.extend_from_slice(&PROPERTY_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&(props.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0);
        out
    }

    /// KERB_STORED_CREDENTIAL_NEW with current keys of the given types (8-byte dummy keys).
    pub fn kerberos_new(etypes: &[u32]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [4u16, 0, etypes.len() as u16, 0, 0, 0, 0, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&4096u32.to_le_bytes());
        let keys_at = KERB_NEW_HEADER + etypes.len() * KERB_KEY_DATA_NEW;
        for (i, t) in etypes.iter().enumerate() {
            v.extend_from_slice(&[0; 8]);
            v.extend_from_slice(&4096u32.to_le_bytes());
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&8u32.to_le_bytes());
            v.extend_from_slice(&((keys_at + 8 * i) as u32).to_le_bytes());
        }
        for _ in etypes {
            v.extend_from_slice(&[0xAB; 8]);
        }
        v
    }

    #[test]
    fn packages_and_aes_keys() {
        let v = user_properties(&[
            ("Primary:Kerberos-Newer-Keys", kerberos_new(&[18, 17, 3, 1])),
            ("Primary:Kerberos", vec![3, 0, 0, 0]),
            ("Packages", b"K\0e\0r\0".to_vec()),
            (
                "Primary:CLEARTEXT",
                "pw".encode_utf16().flat_map(u16::to_le_bytes).collect(),
            ),
        ]);
        let s = parse(&v);
        assert_eq!(
            s.packages,
            [
                "Primary:Kerberos-Newer-Keys",
                "Primary:Kerberos",
                "Packages",
                "Primary:CLEARTEXT"
            ]
        );
        assert!(s.kerberos_aes_keys);
        assert!(s.cleartext_stored());
    }

    #[test]
    fn des_only_newer_keys_and_no_newer_keys_mean_no_aes() {
        let s = parse(&user_properties(&[(
            "Primary:Kerberos-Newer-Keys",
            kerberos_new(&[3, 1]),
        )]));
        assert!(!s.kerberos_aes_keys);
        let s = parse(&user_properties(&[("Primary:Kerberos", vec![3, 0, 0, 0])]));
        assert!(!s.kerberos_aes_keys && !s.cleartext_stored());
    }

    #[test]
    fn empty_short_and_truncated_values_do_not_panic() {
        assert_eq!(parse(&[]), SupplementalCredentials::default());
        assert_eq!(parse(&[0; 111]), SupplementalCredentials::default());
        let full = user_properties(&[
            ("Primary:Kerberos-Newer-Keys", kerberos_new(&[18])),
            ("Primary:WDigest", vec![1; 40]),
        ]);
        for cut in 0..full.len() {
            let s = parse(&full[..cut]);
            assert!(s.packages.len() <= 2);
        }
        // A bad hex value or a wrong revision: no AES, no panic.
        let mut bad = kerberos_new(&[18]);
        bad[0] = 3;
        assert!(
            !parse(&user_properties(&[("Primary:Kerberos-Newer-Keys", bad)])).kerberos_aes_keys
        );
    }
}
