use md4::{Digest as _, Md4};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::HashError;

pub const NT_HASH_LEN: usize = 16;

/// Longest password accepted, in UTF-16 code units. AD allows 256 characters; we accept
/// twice that so no valid on-prem password is ever refused, and stop there so hostile
/// input cannot make us hash megabytes.
pub const MAX_PASSWORD_UTF16_UNITS: usize = 512;

/// MD4 over the UTF-16LE password: the value AD stores as `unicodePwd`.
///
/// Zeroized on drop; `Debug` never prints the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct NtHash([u8; NT_HASH_LEN]);

impl std::fmt::Debug for NtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NtHash(<redacted>)")
    }
}

impl NtHash {
    pub fn from_bytes(bytes: [u8; NT_HASH_LEN]) -> Self {
        NtHash(bytes)
    }

    /// Parse 32 hex digits (either case), as printed by secretsdump, DSInternals or `phsync hash nt`.
    pub fn from_hex(hex_str: &str) -> Result<Self, HashError> {
        let mut bytes = [0u8; NT_HASH_LEN];
        if hex_str.len() != 2 * NT_HASH_LEN || hex::decode_to_slice(hex_str, &mut bytes).is_err() {
            bytes.zeroize();
            return Err(HashError::MalformedNtHash);
        }
        Ok(NtHash(bytes))
    }

    /// NT hash of a Rust string; its UTF-16 encoding is hashed.
    pub fn from_password(password: &str) -> Result<Self, HashError> {
        let units: Zeroizing<Vec<u16>> = Zeroizing::new(password.encode_utf16().collect());
        Self::from_utf16(&units)
    }

    /// NT hash of raw UTF-16 code units. Lone surrogates are hashed as they are, because
    /// Windows lets them into passwords and AD hashes them that way.
    pub fn from_utf16(units: &[u16]) -> Result<Self, HashError> {
        if units.len() > MAX_PASSWORD_UTF16_UNITS {
            return Err(HashError::PasswordTooLong {
                units: units.len(),
                max: MAX_PASSWORD_UTF16_UNITS,
            });
        }
        let mut bytes: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(units.len() * 2));
        for unit in units {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let mut md4 = Md4::new();
        md4.update(bytes.as_slice());
        let mut out = [0u8; NT_HASH_LEN];
        out.copy_from_slice(&md4.finalize());
        Ok(NtHash(out))
    }

    /// NT hash of UTF-8 bytes; invalid UTF-8 is refused rather than guessed at.
    pub fn from_utf8(bytes: &[u8]) -> Result<Self, HashError> {
        let s = std::str::from_utf8(bytes).map_err(|_| HashError::InvalidUtf8)?;
        Self::from_password(s)
    }

    pub fn as_bytes(&self) -> &[u8; NT_HASH_LEN] {
        &self.0
    }

    /// Upper-case hex, the form Microsoft feeds to PBKDF2 and tools print.
    pub fn to_upper_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode_upper(self.0))
    }
}
