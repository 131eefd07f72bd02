//! The one error type of the replication client. `Display` never contains secrets: no
//! hashes, keys, passwords or raw encrypted bytes, only what a person can act on.

use std::io;

/// Win32 / DRS status codes the client recognises.
pub(crate) mod codes {
    /// ERROR_ACCESS_DENIED
    pub(crate) const ERROR_ACCESS_DENIED: u32 = 5;
    /// ERROR_DS_DRA_BAD_DN: Windows and Samba also use it for "access denied".
    pub(crate) const ERROR_DS_DRA_BAD_DN: u32 = 8439;
    /// ERROR_DS_DRA_ACCESS_DENIED
    pub(crate) const ERROR_DS_DRA_ACCESS_DENIED: u32 = 8453;
    /// ERROR_DS_DRA_SOURCE_DISABLED: outbound replication disabled on the DC.
    pub(crate) const ERROR_DS_DRA_SOURCE_DISABLED: u32 = 8456;
    /// nca_s_fault_access_denied / ERROR_ACCESS_DENIED in an RPC fault
    pub(crate) const RPC_ACCESS_DENIED: u32 = 5;
    /// nca_s_proto_error: Samba's answer to the first call after a failed NTLM AUTH3.
    pub(crate) const NCA_PROTO_ERROR: u32 = 0x1c01_000b;
    /// RPC_S_SEC_PKG_ERROR / SEC_E_LOGON_DENIED-style bind failures
    pub(crate) const SEC_E_LOGON_DENIED: u32 = 0x8009_030c;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrsrError {
    /// TCP connect to the endpoint mapper or the DRSUAPI port failed.
    #[error("cannot reach {what} at {addr}: {source}")]
    Unreachable {
        what: &'static str,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {seconds} s while {what}")]
    Timeout { what: &'static str, seconds: u64 },
    #[error("connection to the domain controller failed during {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the endpoint mapper has no DRSUAPI endpoint (is this host a domain controller?)")]
    NoDrsuapiEndpoint,
    /// The caller's batch handler asked to stop between GetNCChanges batches.
    #[error("replication stopped by the caller")]
    Stopped,
    /// NTLM/Kerberos authentication was rejected: user name, domain or password is wrong,
    /// or the account is disabled/locked/expired.
    #[error("authentication rejected by the domain controller ({detail}): check the user name, domain and password (or the account is disabled, locked or expired)")]
    InvalidCredentials { detail: String },
    /// The security package failed for a reason other than bad credentials.
    #[error("security package error during {stage}: {detail}")]
    Auth { stage: &'static str, detail: String },
    /// The account is authenticated but lacks "Replicating Directory Changes" and
    /// "Replicating Directory Changes All" on the domain naming context.
    #[error("the account lacks replication rights (Win32 status {code}): grant it \"Replicating Directory Changes\" and \"Replicating Directory Changes All\" on the domain root")]
    MissingReplicationRights { code: u32 },
    /// ERROR_DS_DRA_SOURCE_DISABLED (8456).
    #[error("the domain controller refuses outbound replication (ERROR_DS_DRA_SOURCE_DISABLED 8456): enable outbound replication or use another DC")]
    ReplicationDisabled,
    /// A PDU signature did not verify: tampering, or a broken security context.
    #[error("message signature verification failed on a {what} PDU: the response was altered or the security context is broken")]
    SignatureFailure { what: &'static str },
    /// No known session key decrypts a secret attribute with a valid CRC32.
    #[error("secret attribute {attribute} failed its CRC32 check with every session key of this connection")]
    CrcMismatch { attribute: &'static str },
    /// The peer sent something the protocol does not allow.
    #[error("protocol violation in {context}: expected {expected}")]
    Protocol {
        context: &'static str,
        expected: String,
    },
    /// The server answered an RPC request with a fault PDU.
    #[error("RPC fault 0x{status:08x} from the domain controller in {op}")]
    RpcFault { op: &'static str, status: u32 },
    /// The server rejected the bind.
    #[error("RPC bind rejected (reason {reason})")]
    BindRejected { reason: u16 },
    /// A DRS call returned a non-zero Win32 status not covered above.
    #[error("{op} failed with Win32 status {code}")]
    DrsStatus { op: &'static str, code: u32 },
    /// A name given to DRSCrackNames could not be resolved.
    #[error("account {name:?} not found (DRSCrackNames status {status})")]
    NameNotFound { name: String, status: u32 },
    /// Caller error.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DrsrError {
    pub(crate) fn protocol(context: &'static str, expected: impl Into<String>) -> Self {
        DrsrError::Protocol {
            context,
            expected: expected.into(),
        }
    }

    /// Map a DRS Win32 status to the most actionable error.
    pub(crate) fn from_drs_status(op: &'static str, code: u32) -> Self {
        match code {
            codes::ERROR_DS_DRA_ACCESS_DENIED | codes::ERROR_ACCESS_DENIED => {
                DrsrError::MissingReplicationRights { code }
            }
            // Windows and Samba report a denied GetNCChanges as BAD_DN too.
            codes::ERROR_DS_DRA_BAD_DN => DrsrError::MissingReplicationRights { code },
            codes::ERROR_DS_DRA_SOURCE_DISABLED => DrsrError::ReplicationDisabled,
            _ => DrsrError::DrsStatus { op, code },
        }
    }
}

pub type Result<T, E = DrsrError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drs_status_maps_to_actionable_errors() {
        for code in [8453, 8439, 5] {
            let e = DrsrError::from_drs_status("DRSGetNCChanges", code);
            assert!(
                matches!(e, DrsrError::MissingReplicationRights { .. }),
                "{code}"
            );
            assert!(e.to_string().contains("Replicating Directory Changes All"));
        }
        let e = DrsrError::from_drs_status("DRSGetNCChanges", 8456);
        assert!(matches!(e, DrsrError::ReplicationDisabled));
        assert!(e.to_string().contains("8456"));
        assert!(matches!(
            DrsrError::from_drs_status("DRSGetNCChanges", 1),
            DrsrError::DrsStatus { code: 1, .. }
        ));
        let e = DrsrError::protocol("REPLENTINFLIST", "at most 3 entries");
        assert_eq!(
            e.to_string(),
            "protocol violation in REPLENTINFLIST: expected at most 3 entries"
        );
    }
}
