//! phsync: Password Hash Synchronization from Active Directory / Samba AD to a cloud
//! directory, byte-exact with Microsoft Entra Connect.
//!
//! Layers (data flows one way): [`hash`] is the digest core everything trusts; the C ABI in
//! `ffi` and the `phsync` CLI are thin front doors over it.

pub mod hash;

pub mod drsr;

pub mod ffi;
