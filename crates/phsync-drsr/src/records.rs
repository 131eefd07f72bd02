//! Typed results of replication.

use serde::{Deserialize, Serialize};

pub use phsync_ad::{FileTime, Guid, Sid};
use phsync_hash::NtHash;

pub use super::supplemental::SupplementalCredentials;

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
    pub pwd_last_set: Option<FileTime>,
    pub is_deleted: bool,
    pub password_replicated: bool,
    pub nt_hash: Option<NtHash>,
    /// ntPwdHistory, newest first (as stored by AD; usually starts with the current hash).
    pub nt_hash_history: Vec<NtHash>,
    /// Metadata of `unicodePwd` when the DC sent it (originating change time etc.).
    pub password_metadata: Option<AttributeMetadata>,
    /// Highest originating USN among the attributes sent for this object.
    pub usn: Option<u64>,
    /// adminCount (audit replication only; `None` when not sent or not set).
    pub admin_count: Option<u32>,
    /// dBCSPwd held an LM hash (audit replication only); the hash itself is not kept.
    pub lm_hash_present: bool,
    /// What supplementalCredentials holds (audit replication only; `None` when not sent).
    pub supplemental: Option<SupplementalCredentials>,
}

impl ReplicatedAccount {
    pub fn has_class(&self, name: &str) -> bool {
        self.object_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// UPTODATE_CURSOR_V1: "all changes originated by `invocation_id` up to `usn` are
/// applied". Also the wire type of the request's up-to-dateness vector, so it lives with
/// the records it is persisted in.
/// MS-DRSR §5.202
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UptodateCursorV1 {
    pub invocation_id: Guid,
    pub usn: u64,
}

/// USN_VECTOR: the high-water mark passed between IDL_DRSGetNCChanges calls.
/// MS-DRSR §5.210
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
    pub up_to_dateness: Vec<UptodateCursorV1>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cursors persisted before the GUID type moved to phsync-ad hold GUIDs as byte
    /// arrays; they still load, and are written back with GUID strings.
    #[test]
    fn cursor_json_reads_legacy_guid_arrays() {
        let legacy = r#"{"naming_context":"DC=phs,DC=test",
            "invocation_id":[53,66,81,227,6,75,209,17,171,4,0,192,79,194,220,210],
            "usn_vector":{"high_obj_update":7,"reserved":0,"high_prop_update":7},
            "up_to_dateness":[{"invocation_id":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"usn":7}]}"#;
        let c: ReplicationCursor = serde_json::from_str(legacy).unwrap();
        assert_eq!(
            c.invocation_id.to_string(),
            "e3514235-4b06-11d1-ab04-00c04fc2dcd2"
        );
        assert_eq!(c.up_to_dateness[0].invocation_id, Guid([1; 16]));
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""invocation_id":"e3514235-4b06-11d1-ab04-00c04fc2dcd2""#));
        assert_eq!(serde_json::from_str::<ReplicationCursor>(&json).unwrap(), c);
    }
}
