//! NT hash and the Password Hash Synchronization digest, byte-exact with Microsoft's
//! `OrgIdHashGenerator` (see `shared/docs/phs-spec.md` §1).
//!
//! This crate depends on no other phsync crate: it is the piece every other layer
//! (replication, tenant, engine, C ABI) trusts to agree with Microsoft bit for bit.

mod digest;
mod error;
mod lanes;
mod nt;
mod pbkdf2;

pub use digest::{
    random_salt, verify_nt_hash, verify_password, verify_password_utf16, PhsDigest,
    DEFAULT_ITERATIONS, DIGEST_STRING_MAX_LEN, KEY_LEN, MAX_ITERATIONS, MIN_ITERATIONS, SALT_LEN,
};
pub use error::{DigestParseError, HashError};
pub use lanes::{
    batch_path, derive_keys, derive_keys_with, new_random_digests, sha_ni_round_timing,
    verify_nt_hashes, Isa, KeyJob, PathChoice, ShaRoundTiming, PATH_ENV,
};
pub use nt::{NtHash, MAX_PASSWORD_UTF16_UNITS, NT_HASH_LEN};
