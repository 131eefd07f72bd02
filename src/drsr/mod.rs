//! MS-DRSR replication client: reads account secrets (NT hashes) from a domain controller
//! the way Microsoft Entra Connect does, with IDL_DRSGetNCChanges over DCE/RPC.
//!
//! Layers, bottom up: [`ndr`] (transfer syntax), [`pdu`] (connection-oriented PDUs),
//! `transport` (TCP), `auth` (NTLM / Kerberos through the `sspi` crate, PKT_PRIVACY),
//! [`epm`] (endpoint mapper), `rpc` (bind, sealed calls, reassembly), [`drsuapi`] (the
//! DRS stubs), [`prefix`] (ATTRTYP ↔ OID), [`secrets`] (decryption), [`records`] (typed
//! results) and [`DrsrClient`], the public entry point.
//!
//! Nothing in this module logs a hash, a key or a password, at any level; calls into
//! `sspi` run with tracing disabled because its instrumentation records buffers.

mod auth;
mod client;
pub mod drsuapi;
pub mod epm;
mod error;
pub mod ndr;
pub mod pdu;
pub mod prefix;
pub mod records;
mod rpc;
pub mod secrets;
mod transport;

pub use client::{Auth, DrsrClient, DrsrConfig};
pub use error::{DrsrError, Result};
pub use ndr::Guid;
pub use records::{
    AttributeMetadata, ReplicatedAccount, ReplicationCursor, Sid, UsnVector, UtdEntry,
};
