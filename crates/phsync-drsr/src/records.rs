//! Typed results of replication.

use serde::{Deserialize, Serialize};

use super::ndr::Guid;
use phsync_hash::NtHash;

/// A security identifier in its binary form.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sid {
    pub revision: u8,
    pub authority: u64,
    pub sub_authorities: Vec<u32>,
}

impl Sid {
    /// Parse a binary SID (`objectSid` value or DSNAME.Sid). Exact length required.
    pub fn from_bytes(b: &[u8]) -> Option<Sid> {
        if b.len() < 8 {
            return None;
        }
        let n = b[1] as usize;
        if n > 15 || b.len() != 8 + 4 * n {
            return None;
        }
        let mut auth = [0u8; 8];
        auth[2..].copy_from_slice(&b[2..8]);
        let sub_authorities = (0..n)
            .map(|i| {
                let o = 8 + 4 * i;
                u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
            })
            .collect();
        Some(Sid {
            revision: b[0],
            authority: u64::from_be_bytes(auth),
            sub_authorities,
        })
    }

    /// The relative identifier: the last sub-authority.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S-{}-{}", self.revision, self.authority)?;
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// Replication metadata of one attribute (PROPERTY_META_DATA_EXT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeMetadata {
    /// Version: incremented on every originating write.
    pub version: u32,
    /// Originating change time, seconds since 1970-01-01 UTC.
    pub changed_unix: i64,
    /// The DC invocation id where the change originated.
    pub originating_invocation_id: Guid,
    /// USN of the change on the originating DC.
    pub originating_usn: u64,
}

/// One replicated directory object with the attributes a password sync needs.
///
/// Semantics of the password fields:
/// - `password_replicated` is true when the DC sent `unicodePwd` for this object in this
///   reply. In a full replication it is sent for every object that has one; in an
///   incremental replication only when the password changed since the cursor.
/// - `nt_hash` is `Some` only when a non-empty `unicodePwd` was sent and decrypted. An
///   absent or empty value is `None`: "no hash", never the hash of the empty password.
/// - An object whose only changes are other attributes (e.g. `userAccountControl`) comes
///   back in an incremental run with `password_replicated == false`: it is not a password
///   change.
#[derive(Debug, Clone, Default)]
pub struct ReplicatedAccount {
    pub guid: Guid,
    pub distinguished_name: Option<String>,
    pub sid: Option<Sid>,
    pub rid: Option<u32>,
    pub sam_account_name: Option<String>,
    pub user_principal_name: Option<String>,
    /// objectClass values as OIDs, with well-known ones named (`user`, `computer`, ...).
    pub object_classes: Vec<String>,
    pub user_account_control: Option<u32>,
    /// pwdLastSet as a Windows FILETIME (0 = must change, None = not sent).
    pub pwd_last_set: Option<i64>,
    pub is_deleted: bool,
    pub password_replicated: bool,
    pub nt_hash: Option<NtHash>,
    /// ntPwdHistory, newest first (as stored by AD; usually starts with the current hash).
    pub nt_hash_history: Vec<NtHash>,
    /// Metadata of `unicodePwd` when the DC sent it (originating change time etc.).
    pub password_metadata: Option<AttributeMetadata>,
    /// Highest originating USN among the attributes sent for this object.
    pub usn: Option<u64>,
}

impl ReplicatedAccount {
    pub fn has_class(&self, name: &str) -> bool {
        self.object_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Up-to-dateness vector entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtdEntry {
    pub invocation_id: Guid,
    pub usn: u64,
}

/// USN high-water mark (USN_VECTOR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsnVector {
    pub high_obj_update: u64,
    pub reserved: u64,
    pub high_prop_update: u64,
}

/// Where an incremental replication starts. Persist it only after everything it covers
/// has been processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationCursor {
    /// Distinguished name of the replicated naming context.
    pub naming_context: String,
    /// invocationId of the DC the cursor came from.
    pub invocation_id: Guid,
    pub usn_vector: UsnVector,
    pub up_to_dateness: Vec<UtdEntry>,
}

/// Well-known object class OIDs and their names.
pub(crate) fn class_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.6.0" => "top",
        "2.5.6.6" => "person",
        "2.5.6.7" => "organizationalPerson",
        "1.2.840.113556.1.5.9" => "user",
        "1.2.840.113556.1.5.8" => "group",
        "1.2.840.113556.1.3.30" => "computer",
        "2.16.840.1.113730.3.2.2" => "inetOrgPerson",
        "2.5.6.5" => "organizationalUnit",
        "1.2.840.113556.1.3.23" => "container",
        "1.2.840.113556.1.5.67" => "domainDNS",
        "1.2.840.113556.1.5.34" => "trustedDomain",
        "1.2.840.113556.1.5.4" => "builtinDomain",
        "1.2.840.113556.1.5.17" => "server",
        "1.2.840.113556.1.5.7000.47" => "nTDSDSA",
        "1.2.840.113556.1.5.28" => "secret",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_parses_and_prints() {
        let b = hex::decode("010500000000000515000000a065cf7e784b9b5fe77c8770f4010000").unwrap();
        let s = Sid::from_bytes(&b).unwrap();
        assert_eq!(
            s.to_string(),
            "S-1-5-21-2127521184-1604012920-1887927527-500"
        );
        assert_eq!(s.rid(), Some(500));
        assert!(Sid::from_bytes(&b[..20]).is_none());
        assert!(Sid::from_bytes(&[1, 200, 0, 0, 0, 0, 0, 5]).is_none());
    }
}
