//! GUIDs in the MS-DTYP layout.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// A GUID as AD stores it and as it travels in NDR (MS-DTYP §2.3.4): 16 bytes, `Data1`
/// (u32), `Data2` and `Data3` (u16) little-endian, then `Data4` as 8 bytes.
///
/// One type for objectGUID (LDAP), DSNAME and invocation ids (DRSR), so values from both
/// protocols compare equal. Display and [`FromStr`] use the registry string form
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lowercase out; braces and either case in).
/// Serde writes that string; it also reads the 16-element byte array that replication
/// cursors persisted by earlier versions contain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The nil GUID (all zeros): "none" in DRSR requests.
    pub const ZERO: Guid = Guid([0; 16]);

    /// From the 16 raw bytes (e.g. an objectGUID attribute value).
    pub const fn from_bytes(bytes: [u8; 16]) -> Guid {
        Guid(bytes)
    }

    /// From a raw value that must be exactly 16 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Guid, ParseError> {
        <[u8; 16]>::try_from(bytes)
            .map(Guid)
            .map_err(|_| ParseError::new("GUID", format!("{} bytes, expected 16", bytes.len())))
    }

    /// The 16 raw bytes, in the MS-DTYP layout.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// True for the nil GUID.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// [`FromStr`] as an `Option`, for "is this a GUID or a name?" checks.
    pub fn parse(s: &str) -> Option<Guid> {
        s.parse().ok()
    }
}

impl FromStr for Guid {
    type Err = ParseError;

    /// Parse `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, optionally in braces, any case.
    fn from_str(s: &str) -> Result<Guid, ParseError> {
        let bad = |reason: &str| ParseError::new("GUID", format!("{s:?}: {reason}"));
        let t = s.trim();
        let t = match t.strip_prefix('{') {
            Some(inner) => inner
                .strip_suffix('}')
                .ok_or_else(|| bad("unbalanced braces"))?,
            None => t,
        };
        let groups: Vec<&str> = t.split('-').collect();
        if groups.len() != 5
            || groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .any(|(g, n)| g.len() != n || !g.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(bad("expected 8-4-4-4-12 hex digits"));
        }
        // The string is Data1-Data2-Data3-Data4[0..2]-Data4[2..8], big-endian digits.
        let mut big_endian = [0u8; 16];
        hex::decode_to_slice(groups.concat(), &mut big_endian)
            .map_err(|_| bad("expected hex digits"))?;
        let mut g = big_endian;
        g[0..4].reverse();
        g[4..6].reverse();
        g[6..8].reverse();
        Ok(Guid(g))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            hex::encode(&g[8..10]),
            hex::encode(&g[10..16])
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl Serialize for Guid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Guid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Guid, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Guid;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a GUID string or an array of 16 bytes")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Guid, E> {
                s.parse().map_err(E::custom)
            }

            // The form `#[derive(Serialize)]` on `Guid([u8; 16])` produced.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Guid, A::Error> {
                let mut g = [0u8; 16];
                for (i, b) in g.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(17, &self));
                }
                Ok(Guid(g))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DRSUAPI interface id: MS-DRSR's string and its NDR bytes.
    const DRSUAPI: &str = "e3514235-4b06-11d1-ab04-00c04fc2dcd2";
    const DRSUAPI_BYTES: [u8; 16] = [
        0x35, 0x42, 0x51, 0xe3, 0x06, 0x4b, 0xd1, 0x11, 0xab, 0x04, 0x00, 0xc0, 0x4f, 0xc2, 0xdc,
        0xd2,
    ];

    #[test]
    fn known_vector_both_ways() {
        let g: Guid = DRSUAPI.parse().unwrap();
        assert_eq!(g.0, DRSUAPI_BYTES);
        assert_eq!(Guid(DRSUAPI_BYTES).to_string(), DRSUAPI);
        // Microsoft's objectGUID example: string vs. raw bytes.
        let g = Guid::parse("{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}").unwrap();
        assert_eq!(
            g.0,
            [
                0x3d, 0x2c, 0x1b, 0x0a, 0x5f, 0x4e, 0x71, 0x60, 0x82, 0x93, 0xa4, 0xb5, 0xc6, 0xd7,
                0xe8, 0xf9
            ]
        );
    }

    #[test]
    fn braces_case_and_whitespace_accepted() {
        let want: Guid = DRSUAPI.parse().unwrap();
        for s in [
            "{E3514235-4B06-11D1-AB04-00C04FC2DCD2}",
            " e3514235-4b06-11d1-ab04-00c04fc2dcd2\n",
        ] {
            assert_eq!(s.parse::<Guid>().unwrap(), want, "{s}");
        }
    }

    #[test]
    fn round_trip_many() {
        for seed in 0u8..=255 {
            let g = Guid(std::array::from_fn(|i| {
                seed.wrapping_mul(31).wrapping_add(i as u8 * 17)
            }));
            assert_eq!(g.to_string().parse::<Guid>().unwrap(), g);
            assert_eq!(Guid::from_slice(g.as_bytes()).unwrap(), g);
        }
    }

    #[test]
    fn malformed_strings_rejected() {
        for bad in [
            "",
            "alice",
            "not-a-guid",
            "e3514235-4b06-11d1-ab04-00c04fc2dcd",
            "e3514235-4b06-11d1-ab04-00c04fc2dcd22",
            "e3514235-4b0611d1-ab04-00c04fc2dcd2-",
            "e3514235-4b06-11d1-ab04-00c04fc2dcdg",
            "{e3514235-4b06-11d1-ab04-00c04fc2dcd2",
            "e3514235-4b06-11d1-ab04-00c04fc2dcd2}",
            "+3514235-4b06-11d1-ab04-00c04fc2dcd2",
        ] {
            let e = bad.parse::<Guid>().unwrap_err();
            assert_eq!(e.what, "GUID");
            assert!(Guid::parse(bad).is_none(), "{bad}");
        }
        assert!(Guid::from_slice(&[0; 15]).is_err());
    }

    #[test]
    fn zero() {
        assert!(Guid::ZERO.is_zero());
        assert_eq!(Guid::default(), Guid::ZERO);
        assert!(!Guid(DRSUAPI_BYTES).is_zero());
        assert_eq!(
            Guid::ZERO.to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn serde_is_the_string_and_reads_the_legacy_array() {
        let g = Guid(DRSUAPI_BYTES);
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, format!("\"{DRSUAPI}\""));
        assert_eq!(serde_json::from_str::<Guid>(&json).unwrap(), g);
        let legacy = serde_json::to_string(&DRSUAPI_BYTES).unwrap();
        assert_eq!(serde_json::from_str::<Guid>(&legacy).unwrap(), g);
        assert!(serde_json::from_str::<Guid>("[1,2,3]").is_err());
        assert!(serde_json::from_str::<Guid>(&format!("{:?}", [0u8; 17])).is_err());
        assert!(serde_json::from_str::<Guid>("\"nope\"").is_err());
    }
}
