//! Security identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// A security identifier (MS-DTYP §2.4.2): revision 1, a 48-bit identifier authority and
/// up to 15 sub-authorities, the last of which is the account's RID.
///
/// One type for objectSid read over LDAP and the SID in a replicated DSNAME. Binary form
/// via [`Sid::from_bytes`] / [`Sid::to_bytes`] (MS-DTYP §2.4.22: authority big-endian,
/// sub-authorities little-endian); text form `S-1-5-21-…` via Display / [`FromStr`]
/// (MS-DTYP §2.4.2.1: an authority of 2^32 or more is written in hex). Serde uses the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    authority: u64,
    sub_authorities: Vec<u32>,
}

impl Sid {
    /// The only SID revision (SID_REVISION).
    pub const REVISION: u8 = 1;
    /// SID_MAX_SUB_AUTHORITIES.
    pub const MAX_SUB_AUTHORITIES: usize = 15;
    /// Largest identifier authority: 48 bits.
    pub const MAX_AUTHORITY: u64 = (1 << 48) - 1;

    /// A SID from its parts; fails for an authority over 48 bits or over 15 sub-authorities.
    pub fn new(authority: u64, sub_authorities: Vec<u32>) -> Result<Sid, ParseError> {
        if authority > Self::MAX_AUTHORITY {
            return Err(ParseError::new(
                "SID",
                format!("identifier authority {authority} exceeds 48 bits"),
            ));
        }
        if sub_authorities.len() > Self::MAX_SUB_AUTHORITIES {
            return Err(ParseError::new(
                "SID",
                format!("{} sub-authorities, at most 15", sub_authorities.len()),
            ));
        }
        Ok(Sid {
            authority,
            sub_authorities,
        })
    }

    /// Parse the binary form (an objectSid value or DSNAME.Sid); the length must be exact.
    pub fn from_bytes(b: &[u8]) -> Result<Sid, ParseError> {
        let bad = |reason: String| ParseError::new("SID", reason);
        if b.len() < 8 {
            return Err(bad(format!("{} bytes, at least 8 needed", b.len())));
        }
        if b[0] != Self::REVISION {
            return Err(bad(format!("revision {}, expected 1", b[0])));
        }
        let n = usize::from(b[1]);
        if n > Self::MAX_SUB_AUTHORITIES {
            return Err(bad(format!("{n} sub-authorities, at most 15")));
        }
        if b.len() != 8 + 4 * n {
            return Err(bad(format!(
                "{} bytes for {n} sub-authorities, expected {}",
                b.len(),
                8 + 4 * n
            )));
        }
        let mut auth = [0u8; 8];
        auth[2..].copy_from_slice(&b[2..8]);
        let sub_authorities = b[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Sid {
            authority: u64::from_be_bytes(auth),
            sub_authorities,
        })
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.sub_authorities.len());
        out.push(Self::REVISION);
        out.push(self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for s in &self.sub_authorities {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Always [`Sid::REVISION`].
    pub fn revision(&self) -> u8 {
        Self::REVISION
    }

    /// The identifier authority (5 = NT AUTHORITY).
    pub fn authority(&self) -> u64 {
        self.authority
    }

    pub fn sub_authorities(&self) -> &[u32] {
        &self.sub_authorities
    }

    /// The relative identifier: the last sub-authority.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// The SID without its RID (the domain SID of an account SID).
    pub fn parent(&self) -> Option<Sid> {
        let (_, rest) = self.sub_authorities.split_last()?;
        Some(Sid {
            authority: self.authority,
            sub_authorities: rest.to_vec(),
        })
    }
}

impl FromStr for Sid {
    type Err = ParseError;

    /// Parse `S-1-<authority>-<sub>…`; the authority in decimal or `0x` + 12 hex digits.
    fn from_str(s: &str) -> Result<Sid, ParseError> {
        let bad = |reason: &str| ParseError::new("SID", format!("{s:?}: {reason}"));
        let mut parts = s.trim().split('-');
        if !parts.next().is_some_and(|p| p.eq_ignore_ascii_case("S")) {
            return Err(bad("expected S-1-…"));
        }
        if parts.next() != Some("1") {
            return Err(bad("expected revision 1"));
        }
        let auth = parts.next().ok_or_else(|| bad("no identifier authority"))?;
        let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
        let authority = match auth.strip_prefix("0x").or_else(|| auth.strip_prefix("0X")) {
            Some(h) if digits(h, 16) => u64::from_str_radix(h, 16).ok(),
            None if digits(auth, 10) => auth.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| bad("malformed identifier authority"))?;
        let sub_authorities = parts
            .map(|p| {
                if digits(p, 10) {
                    p.parse::<u32>().ok()
                } else {
                    None
                }
                .ok_or_else(|| bad("malformed sub-authority"))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        Sid::new(authority, sub_authorities).map_err(|e| bad(&e.reason))
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority < 1 << 32 {
            write!(f, "S-1-{}", self.authority)?;
        } else {
            write!(f, "S-1-0x{:012X}", self.authority)?;
        }
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

impl Serialize for Sid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sid, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN_HEX: &str = "010500000000000515000000a065cf7e784b9b5fe77c8770f4010000";
    const ADMIN: &str = "S-1-5-21-2127521184-1604012920-1887927527-500";

    #[test]
    fn known_vector_both_ways() {
        let b = hex::decode(ADMIN_HEX).unwrap();
        let s = Sid::from_bytes(&b).unwrap();
        assert_eq!(s.to_string(), ADMIN);
        assert_eq!(s.rid(), Some(500));
        assert_eq!(s.authority(), 5);
        assert_eq!(s.revision(), 1);
        assert_eq!(s.to_bytes(), b);
        assert_eq!(ADMIN.parse::<Sid>().unwrap(), s);
        assert_eq!(
            s.parent().unwrap().to_string(),
            "S-1-5-21-2127521184-1604012920-1887927527"
        );
        // Well-known SIDs.
        assert_eq!(
            Sid::from_bytes(&[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
                .unwrap()
                .to_string(),
            "S-1-1-0"
        );
        assert_eq!("S-1-5-32-544".parse::<Sid>().unwrap().to_bytes().len(), 16);
    }

    #[test]
    fn zero_to_fifteen_sub_authorities_round_trip() {
        for n in 0..=15u32 {
            let subs: Vec<u32> = (0..n)
                .map(|i| i.wrapping_mul(0x9e37_79b9) ^ u32::MAX >> i)
                .collect();
            let sid = Sid::new(5, subs.clone()).unwrap();
            let bytes = sid.to_bytes();
            assert_eq!(bytes.len(), 8 + 4 * n as usize);
            assert_eq!(bytes[1] as u32, n);
            let back = Sid::from_bytes(&bytes).unwrap();
            assert_eq!(back, sid);
            assert_eq!(back.sub_authorities(), subs.as_slice());
            assert_eq!(back.rid(), subs.last().copied());
            assert_eq!(sid.to_string().parse::<Sid>().unwrap(), sid);
        }
        assert!(Sid::new(5, vec![0; 16]).is_err());
    }

    #[test]
    fn large_authority_is_hex_in_text() {
        let sid = Sid::new(0x0000_1234_5678_9abc, vec![7]).unwrap();
        assert_eq!(sid.to_string(), "S-1-0x123456789ABC-7");
        assert_eq!("S-1-0x123456789ABC-7".parse::<Sid>().unwrap(), sid);
        assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
        assert!(Sid::new(1 << 48, vec![]).is_err());
    }

    #[test]
    fn malformed_binary_rejected() {
        let b = hex::decode(ADMIN_HEX).unwrap();
        assert!(Sid::from_bytes(&[]).is_err());
        assert!(Sid::from_bytes(&b[..7]).is_err());
        assert!(Sid::from_bytes(&b[..b.len() - 1]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(Sid::from_bytes(&longer).is_err());
        let mut rev2 = b.clone();
        rev2[0] = 2;
        assert!(Sid::from_bytes(&rev2).is_err());
        let mut sixteen = vec![1u8, 16, 0, 0, 0, 0, 0, 5];
        sixteen.extend_from_slice(&[0; 64]);
        assert_eq!(Sid::from_bytes(&sixteen).unwrap_err().what, "SID");
        assert!(Sid::from_bytes(&[1, 200, 0, 0, 0, 0, 0, 5]).is_err());
    }

    #[test]
    fn malformed_text_rejected() {
        for bad in [
            "",
            "S",
            "S-1",
            "S-2-5-21",
            "X-1-5-21",
            "S-1--21",
            "S-1-5-",
            "S-1-5-21-x",
            "S-1-5-+21",
            "S-1-5-4294967296",
            "S-1-281474976710656-1",
            "S-1-0x-1",
            "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
        ] {
            assert!(bad.parse::<Sid>().is_err(), "{bad}");
        }
        assert!("s-1-5-18".parse::<Sid>().is_ok());
    }

    #[test]
    fn serde_is_the_text_form() {
        let sid: Sid = ADMIN.parse().unwrap();
        let json = serde_json::to_string(&sid).unwrap();
        assert_eq!(json, format!("\"{ADMIN}\""));
        assert_eq!(serde_json::from_str::<Sid>(&json).unwrap(), sid);
        assert!(serde_json::from_str::<Sid>("\"S-1-x\"").is_err());
    }
}
