//! Wire types to records: turns a DRS_MSG_GETCHGREPLY_V6 object (REPLENTINFLIST item, its
//! ATTRs and PROPERTY_META_DATA_EXT stamps) into a [`ReplicatedAccount`]. No encoding or
//! decoding here (that is `drsuapi`), and no I/O: only the mapping of attributes by OID,
//! DSTIME to Unix time, and the decryption of the password attributes with the session keys.

use phsync_ad::SECONDS_1601_TO_1970;

use super::drsuapi::{DrsMsgGetchgreplyV6, ReplentinflistItem};
use super::error::{DrsrError, Result};
use super::records::{AttributeMetadata, Guid, ReplicatedAccount, Sid};
use super::secrets::{decrypt_hash, decrypt_history, SessionKeys};
use super::supplemental;

pub(crate) const OID_OBJECT_GUID: &str = "1.2.840.113556.1.4.2";
pub(crate) const OID_OBJECT_SID: &str = "1.2.840.113556.1.4.146";
pub(crate) const OID_SAM_ACCOUNT_NAME: &str = "1.2.840.113556.1.4.221";
pub(crate) const OID_UPN: &str = "1.2.840.113556.1.4.656";
pub(crate) const OID_OBJECT_CLASS: &str = "2.5.4.0";
pub(crate) const OID_UAC: &str = "1.2.840.113556.1.4.8";
pub(crate) const OID_PWD_LAST_SET: &str = "1.2.840.113556.1.4.96";
pub(crate) const OID_UNICODE_PWD: &str = "1.2.840.113556.1.4.90";
pub(crate) const OID_NT_PWD_HISTORY: &str = "1.2.840.113556.1.4.94";
pub(crate) const OID_IS_DELETED: &str = "1.2.840.113556.1.2.48";
pub(crate) const OID_DBCS_PWD: &str = "1.2.840.113556.1.4.55";
pub(crate) const OID_SUPPLEMENTAL_CREDENTIALS: &str = "1.2.840.113556.1.4.125";
pub(crate) const OID_ADMIN_COUNT: &str = "1.2.840.113556.1.4.150";

/// The partial attribute set requested.
pub(crate) const ACCOUNT_ATTRIBUTES: &[&str] = &ACCOUNT_SET;

/// The partial attribute set of an audit: the account attributes plus the LM hash
/// (`dBCSPwd`), `supplementalCredentials` (Kerberos keys) and `adminCount`. Not part of the
/// sync's set, which stays as small as a password sync needs.
pub(crate) const AUDIT_ATTRIBUTES: &[&str] = &concat::<10, 3, 13>(
    ACCOUNT_SET,
    [OID_DBCS_PWD, OID_SUPPLEMENTAL_CREDENTIALS, OID_ADMIN_COUNT],
);

const ACCOUNT_SET: [&str; 10] = [
    OID_OBJECT_GUID,
    OID_OBJECT_SID,
    OID_SAM_ACCOUNT_NAME,
    OID_UPN,
    OID_OBJECT_CLASS,
    OID_UAC,
    OID_PWD_LAST_SET,
    OID_UNICODE_PWD,
    OID_NT_PWD_HISTORY,
    OID_IS_DELETED,
];

/// `a` then `b`, at compile time (a mismatched `C` does not compile).
const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; C] {
    assert!(A + B == C);
    let mut out = [""; C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < C {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

pub(crate) fn account_if_relevant(
    keys: &SessionKeys,
    reply: &DrsMsgGetchgreplyV6,
    obj: &ReplentinflistItem,
) -> Result<Option<ReplicatedAccount>> {
    let has = |oid: &str| {
        obj.attrs
            .iter()
            .any(|a| reply.prefix_table.oid_of(a.attid).as_deref() == Some(oid))
    };
    let acct = account_from(keys, reply, obj)?;
    let relevant = if has(OID_OBJECT_CLASS) {
        acct.has_class("user")
    } else {
        [
            OID_SAM_ACCOUNT_NAME,
            OID_UNICODE_PWD,
            OID_NT_PWD_HISTORY,
            OID_PWD_LAST_SET,
            OID_UAC,
            OID_UPN,
            OID_IS_DELETED,
        ]
        .iter()
        .any(|o| has(o))
    };
    Ok(relevant.then_some(acct))
}

pub(crate) fn account_from(
    keys: &SessionKeys,
    reply: &DrsMsgGetchgreplyV6,
    obj: &ReplentinflistItem,
) -> Result<ReplicatedAccount> {
    let mut a = ReplicatedAccount::default();
    if let Some(n) = &obj.name {
        a.guid = n.guid;
        if !n.dn.is_empty() {
            a.distinguished_name = Some(n.dn.clone());
        }
        if !n.sid.is_empty() {
            a.sid = Sid::from_bytes(&n.sid).ok();
        }
    }
    let mut unicode_pwd: Option<(&[u8], Option<AttributeMetadata>)> = None;
    let mut history: Option<&[u8]> = None;
    let mut lm: Option<&[u8]> = None;
    let mut supplemental: Option<&[u8]> = None;
    for (i, attr) in obj.attrs.iter().enumerate() {
        let meta = obj.meta.get(i).map(|m| AttributeMetadata {
            version: m.version,
            changed_unix: m.time_changed - SECONDS_1601_TO_1970,
            originating_invocation_id: m.originating_dsa,
            originating_usn: m.originating_usn,
        });
        if let Some(m) = &meta {
            a.usn = Some(
                a.usn
                    .map_or(m.originating_usn, |u| u.max(m.originating_usn)),
            );
        }
        let Some(oid) = reply.prefix_table.oid_of(attr.attid) else {
            continue;
        };
        let first = attr.values.first().map(|v| v.as_slice());
        match oid.as_str() {
            OID_OBJECT_GUID => {
                if let Some(g) = first.and_then(|v| Guid::from_slice(v).ok()) {
                    a.guid = g;
                }
            }
            OID_OBJECT_SID => {
                if let Some(s) = first.and_then(|b| Sid::from_bytes(b).ok()) {
                    a.sid = Some(s);
                }
            }
            OID_SAM_ACCOUNT_NAME => a.sam_account_name = first.map(utf16le),
            OID_UPN => a.user_principal_name = first.map(utf16le),
            OID_OBJECT_CLASS => {
                a.object_classes = attr
                    .values
                    .iter()
                    .filter(|v| v.len() == 4)
                    .map(|v| {
                        let id = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                        match reply.prefix_table.oid_of(id) {
                            Some(o) => class_name(&o).map(str::to_owned).unwrap_or(o),
                            None => format!("0x{id:08x}"),
                        }
                    })
                    .collect();
            }
            OID_UAC => {
                a.user_account_control = first
                    .filter(|v| v.len() == 4)
                    .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
            }
            OID_PWD_LAST_SET => {
                a.pwd_last_set = first.filter(|v| v.len() == 8).map(|v| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(v);
                    phsync_ad::FileTime(i64::from_le_bytes(b))
                })
            }
            OID_IS_DELETED => {
                a.is_deleted = first.is_some_and(|v| v.iter().any(|b| *b != 0));
            }
            OID_UNICODE_PWD => {
                unicode_pwd = Some((first.unwrap_or(&[]), meta));
            }
            OID_NT_PWD_HISTORY => history = first,
            OID_DBCS_PWD => lm = first,
            OID_SUPPLEMENTAL_CREDENTIALS => supplemental = first,
            OID_ADMIN_COUNT => {
                a.admin_count = first
                    .filter(|v| v.len() == 4)
                    .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
            }
            _ => {}
        }
    }
    a.rid = a.sid.as_ref().and_then(Sid::rid);
    if let Some((blob, meta)) = unicode_pwd {
        a.password_replicated = true;
        a.password_metadata = meta;
        if !blob.is_empty() {
            let rid = a.rid.ok_or_else(|| {
                DrsrError::protocol("replicated account", "an objectSid to decrypt unicodePwd")
            })?;
            a.nt_hash = decrypt_hash(keys, rid, blob, "unicodePwd")?;
        }
    }
    if let Some(blob) = history {
        if !blob.is_empty() {
            let rid = a.rid.ok_or_else(|| {
                DrsrError::protocol("replicated account", "an objectSid to decrypt ntPwdHistory")
            })?;
            a.nt_hash_history = decrypt_history(keys, rid, blob, "ntPwdHistory")?;
        }
    }
    if let Some(blob) = lm.filter(|b| !b.is_empty()) {
        let rid = a.rid.ok_or_else(|| {
            DrsrError::protocol("replicated account", "an objectSid to decrypt dBCSPwd")
        })?;
        // Only presence matters (and is reported); the decrypted LM hash is dropped
        // (zeroized) right here.
        a.lm_hash_present = decrypt_hash(keys, rid, blob, "dBCSPwd")?.is_some();
    }
    if let Some(blob) = supplemental {
        // No RID layer on supplementalCredentials; the decrypted value is zeroized on drop.
        a.supplemental = keys
            .decrypt_payload(blob, "supplementalCredentials")?
            .map(|plain| supplemental::parse(&plain));
    }
    Ok(a)
}

fn utf16le(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
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
    fn the_audit_set_is_the_account_set_and_three_more() {
        assert_eq!(
            &AUDIT_ATTRIBUTES[..ACCOUNT_ATTRIBUTES.len()],
            ACCOUNT_ATTRIBUTES
        );
        assert_eq!(
            &AUDIT_ATTRIBUTES[ACCOUNT_ATTRIBUTES.len()..],
            [OID_DBCS_PWD, OID_SUPPLEMENTAL_CREDENTIALS, OID_ADMIN_COUNT]
        );
    }
}
