//! Prefix tables (MS-DRSR 5.16.4): ATTRTYP ↔ OID, MakeAttid, and the schemaInfo entry.

use super::error::{DrsrError, Result};

/// PrefixTableEntry: an index and a BER-encoded OID prefix (OID_t).
/// MS-DRSR §5.154
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixTableEntry {
    pub ndx: u32,
    pub prefix: Vec<u8>,
}

/// SCHEMA_PREFIX_TABLE: maps ATTRTYPs to OIDs and back (the client's `PrefixTableDest`
/// or the server's `PrefixTableSrc`); algorithms of §5.16.4.
/// MS-DRSR §5.180
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaPrefixTable {
    pub entries: Vec<PrefixTableEntry>,
}

/// The schemaInfo pseudo-entry Samba requires at the end of a client prefix table:
/// index 0, 21 bytes: 0xFF, schema revision (big-endian u32), invocation id.
pub fn schema_info_entry() -> PrefixTableEntry {
    let mut v = vec![0xff];
    v.extend_from_slice(&[0u8; 20]);
    PrefixTableEntry { ndx: 0, prefix: v }
}

/// Well-known prefixes of the default table (MS-DRSR 5.16.4, Samba drsuapi.idl).
const DEFAULT_PREFIXES: &[(u32, &str)] = &[
    (0, "2.5.4"),
    (1, "2.5.6"),
    (2, "1.2.840.113556.1.2"),
    (3, "1.2.840.113556.1.3"),
    (8, "2.5.5"),
    (9, "1.2.840.113556.1.4"),
    (10, "1.2.840.113556.1.5"),
];

/// BER-encode a dotted OID (first two arcs combined).
pub fn encode_oid(oid: &str) -> Result<Vec<u8>> {
    let arcs: Vec<u64> = oid
        .split('.')
        .map(|a| a.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| DrsrError::InvalidArgument(format!("OID {oid:?}")))?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40) {
        return Err(DrsrError::InvalidArgument(format!("OID {oid:?}")));
    }
    let mut out = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend_from_slice(&tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    Ok(out)
}

/// Decode BER OID bytes to dotted form.
pub fn decode_oid(b: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    let mut in_arc = false;
    for &byte in b {
        if v > (u64::MAX >> 8) {
            return None;
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        in_arc = true;
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
            in_arc = false;
        }
    }
    if in_arc || arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("."),
    )
}

impl SchemaPrefixTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// MakeAttid: the ATTRTYP of `oid`, adding its prefix to the table if missing.
    pub fn make_attid(&mut self, oid: &str) -> Result<u32> {
        let ber = encode_oid(oid)?;
        let last: u64 = oid
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| DrsrError::InvalidArgument(format!("OID {oid:?}")))?;
        let (prefix, lower) = if last < 128 {
            (&ber[..ber.len() - 1], last as u32)
        } else if last < 16384 {
            (&ber[..ber.len() - 2], last as u32)
        } else {
            (&ber[..ber.len() - 2], ((last % 16384) as u32) | 0x8000)
        };
        let ndx = match self.entries.iter().find(|e| e.prefix == prefix) {
            Some(e) => e.ndx,
            None => {
                let dotted = decode_oid(prefix);
                let preferred = DEFAULT_PREFIXES
                    .iter()
                    .find(|(_, p)| Some(*p) == dotted.as_deref())
                    .map(|(n, _)| *n)
                    .filter(|n| !self.entries.iter().any(|e| e.ndx == *n));
                let ndx = preferred.unwrap_or_else(|| {
                    (0x100u32..)
                        .find(|n| !self.entries.iter().any(|e| e.ndx == *n))
                        .unwrap_or(0xffff)
                });
                self.entries.push(PrefixTableEntry {
                    ndx,
                    prefix: prefix.to_vec(),
                });
                ndx
            }
        };
        Ok((ndx << 16) | lower)
    }

    /// OidFromAttid: the dotted OID of an ATTRTYP under this table.
    pub fn oid_of(&self, attid: u32) -> Option<String> {
        let upper = attid >> 16;
        let mut lower = attid & 0xffff;
        let entry = self
            .entries
            .iter()
            .find(|e| e.ndx == upper && e.prefix.first() != Some(&0xff))?;
        let mut b = entry.prefix.clone();
        if lower < 128 {
            b.push(lower as u8);
        } else {
            if lower >= 0x8000 {
                lower -= 0x8000;
            }
            b.push((((lower / 128) % 128) + 128) as u8);
            b.push((lower % 128) as u8);
        }
        decode_oid(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_ber_round_trip() {
        for oid in [
            "1.2.840.113556.1.4.90",
            "2.5.4.0",
            "1.2.840.113556.1.4.146",
            "1.2.840.113556.1.2.48",
            "1.3.6.1.4.1.1466.101.119.2",
        ] {
            assert_eq!(decode_oid(&encode_oid(oid).unwrap()).unwrap(), oid);
        }
        assert_eq!(
            encode_oid("1.2.840.113556.1.4").unwrap(),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x01, 0x04]
        );
        assert!(decode_oid(&[0x2a, 0x86]).is_none());
    }

    #[test]
    fn make_attid_matches_windows_defaults() {
        let mut t = SchemaPrefixTable::new();
        assert_eq!(t.make_attid("1.2.840.113556.1.4.90").unwrap(), 0x0009_005a); // unicodePwd
        assert_eq!(t.make_attid("1.2.840.113556.1.4.146").unwrap(), 0x0009_0092); // objectSid
        assert_eq!(t.make_attid("1.2.840.113556.1.4.656").unwrap(), 0x0009_0290); // UPN
        assert_eq!(t.make_attid("2.5.4.0").unwrap(), 0x0000_0000); // objectClass
        assert_eq!(t.make_attid("1.2.840.113556.1.2.48").unwrap(), 0x0002_0030); // isDeleted
        assert_eq!(t.entries.len(), 3);
        for oid in ["1.2.840.113556.1.4.90", "1.2.840.113556.1.4.656", "2.5.4.0"] {
            let a = t.clone().make_attid(oid).unwrap();
            assert_eq!(t.oid_of(a).as_deref(), Some(oid));
        }
        // Unknown prefixes get fresh indexes and still round-trip.
        let a = t.make_attid("1.3.6.1.4.1.7165.4.1.17000").unwrap();
        assert_eq!(t.oid_of(a).as_deref(), Some("1.3.6.1.4.1.7165.4.1.17000"));
    }

    #[test]
    fn schema_info_entry_shape() {
        let e = schema_info_entry();
        assert_eq!(e.ndx, 0);
        assert_eq!(e.prefix.len(), 21);
        assert_eq!(e.prefix[0], 0xff);
    }
}
