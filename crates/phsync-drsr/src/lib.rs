//! MS-DRSR replication client: reads account secrets (NT hashes) from a domain controller
//! the way Microsoft Entra Connect does, with IDL_DRSGetNCChanges over DCE/RPC.
//!
//! It knows nothing of the cloud: it returns [`ReplicatedAccount`] records and a
//! [`ReplicationCursor`]; what happens to them is the engine's business.
//!
//! # Public API
//!
//! [`DrsrClient`] (connect, resolve and replicate one account, replicate the domain in
//! batches), its [`DrsrConfig`] and [`Auth`], the records ([`ReplicatedAccount`],
//! [`AttributeMetadata`], [`ReplicationCursor`], [`UsnVector`], [`UptodateCursorV1`]),
//! [`DrsrError`], and [`DEFAULT_BATCH_SIZE`]. [`Guid`], [`Sid`] and [`FileTime`] are
//! `phsync-ad`'s, re-exported. Everything else is private to the crate.
//!
//! # Modules, bottom up (all private)
//!
//! - `ndr`: NDR 2.0 transfer syntax (primitives, alignment, conformant arrays, pointers).
//! - `pdu`: MS-RPCE connection-oriented PDUs (bind, request, response, sec_trailer).
//! - `transport`: TCP with timeouts.
//! - `auth`: NTLM / Kerberos through the `sspi` crate at PKT_PRIVACY.
//! - `epm`: the endpoint mapper (ept_map) to find the DRSUAPI port.
//! - `rpc`: bind, sealed calls, fragment reassembly.
//! - `prefix`: SCHEMA_PREFIX_TABLE, ATTRTYP ↔ OID.
//! - `drsuapi`: MS-DRSR wire types with the spec's names (`DrsMsgGetchgreqV8`,
//!   `DrsMsgGetchgreplyV6`, `ReplentinflistItem`, `Attr`, `PropertyMetaDataExt`, `DsName`,
//!   `DrsExtensionsInt`, ...) and their encoding and decoding.
//! - `secrets`: decryption of `unicodePwd` / `ntPwdHistory` / `dBCSPwd` with the session key.
//! - `supplemental`: USER_PROPERTIES of `supplementalCredentials`, summarized (package
//!   names, AES keys present) without keeping key material.
//! - `convert`: wire types → records (attributes by OID, DSTIME → Unix time, decryption).
//! - `records`: the typed results; `client`: [`DrsrClient`]; `error`: [`DrsrError`].
//!
//! Nothing in this crate logs a hash, a key or a password, at any level; calls into
//! `sspi` run with tracing disabled because its instrumentation records buffers.
//!
//! # Usage
//!
//! ```no_run
//! # async fn demo() -> phsync_drsr::Result<()> {
//! use phsync_drsr::{Auth, DrsrClient, DrsrConfig, DEFAULT_BATCH_SIZE};
//! let cfg = DrsrConfig::new(
//!     "dc1.phs.test",
//!     Auth::Ntlm {
//!         domain: "PHS".into(),
//!         user: "phs-replicator".into(),
//!         password: zeroize::Zeroizing::new(std::env::var("PW").unwrap()),
//!     },
//! );
//! let mut client = DrsrClient::connect(&cfg).await?;
//! let alice = client.replicate_user("alice").await?;
//! let (accounts, cursor) = client.replicate_domain(None, DEFAULT_BATCH_SIZE).await?;
//! // ... store the digests, then persist `cursor` (serde) ...
//! let (changed, next) = client.replicate_domain(Some(&cursor), DEFAULT_BATCH_SIZE).await?;
//! client.close().await?;
//! # let _ = (alice, accounts, changed, next); Ok(()) }
//! ```
//!
//! # Incremental semantics
//!
//! An incremental run (`Some(cursor)`) returns the objects for which the DC has changes to
//! the requested attributes since the cursor, with only the changed attributes: a password
//! change arrives as `unicodePwd`/`ntPwdHistory`/`pwdLastSet` without `sAMAccountName` or
//! `objectSid` (the SID and GUID come from the object's DSNAME). Match records by `guid`.
//! `password_replicated` tells a password change from other changes: a
//! `userAccountControl` change comes back with `password_replicated == false`, and a change
//! to an attribute outside the set (e.g. `description`) is not returned at all.
//!
//! # Interoperability notes (verified against Samba 4.17)
//!
//! - A wrong NTLM password is not reported at AUTH3 (which has no reply): Samba faults the
//!   first request with `nca_s_proto_error` (Windows: access denied); both map to
//!   [`DrsrError::InvalidCredentials`].
//! - Samba requires the schemaInfo entry at the end of the client prefix table; it is
//!   always sent (MakeAttid table + `0xFF` + 20 bytes).
//! - Samba reports missing replication rights as `ERROR_DS_DRA_ACCESS_DENIED` (8453);
//!   `ERROR_DS_DRA_BAD_DN` (Windows' form of the same) maps to the same error.
//! - Kerberos: a Samba DC registers `HOST/<fqdn>` but not `ldap/` or the DRSUAPI SPN when
//!   SPN updates are disabled, so the default SPN is `host/<dc_host>`. The session key for
//!   secret decryption is the one sspi negotiates for the context (checked by CRC32).

mod auth;
mod client;
mod convert;
mod drsuapi;
mod epm;
mod error;
mod ndr;
mod pdu;
mod prefix;
mod records;
mod rpc;
mod secrets;
mod supplemental;
mod transport;

pub use client::{Auth, DrsrClient, DrsrConfig, DEFAULT_BATCH_SIZE};
pub use error::{DrsrError, Result};
pub use phsync_ad::{FileTime, Guid};
pub use records::{
    AttributeMetadata, ReplicatedAccount, ReplicationCursor, Sid, SupplementalCredentials,
    UptodateCursorV1, UsnVector,
};
/// Former name of [`UptodateCursorV1`].
pub type UtdEntry = UptodateCursorV1;
