//! phsync: Password Hash Synchronization from Active Directory / Samba AD to a cloud
//! directory, byte-exact with Microsoft Entra Connect.
//!
//! Layers (data flows one way): [`hash`] is the digest core everything trusts; [`directory`]
//! reads users from AD over LDAP, configured by [`config`]; the C ABI in `ffi` and the `phsync`
//! CLI are thin front doors over them.

pub mod bench;
pub mod cloud;
pub mod hash;
pub mod private_file;
pub mod sync;

pub mod config;
pub mod directory;

pub mod drsr;

pub mod ffi;
