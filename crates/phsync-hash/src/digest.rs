use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{DigestParseError, HashError, NtHash};

pub const SALT_LEN: usize = 10;
pub const KEY_LEN: usize = 32;
/// Azure AD Connect has used 1000 since late 2016 (100 before).
pub const DEFAULT_ITERATIONS: u32 = 1000;
pub const MIN_ITERATIONS: u32 = 1;
/// Parsing cap: a hostile digest must not make a verifier spin for minutes.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Longest digest string, without a NUL: prefix, salt, 7-digit count, key, separators.
pub const DIGEST_STRING_MAX_LEN: usize = PREFIX.len() + 2 * SALT_LEN + 1 + 7 + 1 + 2 * KEY_LEN + 1;

const PREFIX: &str = "v1;PPH1_MD4,";

/// A PHS digest: `v1;PPH1_MD4,<salt>,<iterations>,<key>;`.
///
/// The digest is a password equivalent for the cloud, so it is zeroized on drop and its
/// `Debug` hides salt and key; use [`PhsDigest::encode`] to get the string on purpose.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PhsDigest {
    salt: [u8; SALT_LEN],
    iterations: u32,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for PhsDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhsDigest(iterations={}, <redacted>)", self.iterations)
    }
}

/// Constant-time over salt and key, so comparing stored digests leaks nothing by timing.
impl PartialEq for PhsDigest {
    fn eq(&self, other: &Self) -> bool {
        let same = self.salt.ct_eq(&other.salt)
            & self.key.ct_eq(&other.key)
            & self.iterations.ct_eq(&other.iterations);
        same.into()
    }
}
impl Eq for PhsDigest {}

fn check_iterations(iterations: u32) -> Result<(), HashError> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(HashError::IterationsOutOfRange(iterations))
    }
}

fn derive_key(nt: &NtHash, salt: &[u8; SALT_LEN], iterations: u32) -> [u8; KEY_LEN] {
    super::pbkdf2::derive_key_scalar(nt, salt, iterations)
}

impl PhsDigest {
    /// Digest of an NT hash with a given salt and iteration count (1..=1,000,000).
    pub fn from_nt_hash(
        nt: &NtHash,
        salt: [u8; SALT_LEN],
        iterations: u32,
    ) -> Result<Self, HashError> {
        check_iterations(iterations)?;
        Ok(PhsDigest {
            key: derive_key(nt, &salt, iterations),
            salt,
            iterations,
        })
    }

    /// Digest with a fresh 10-byte salt from the OS CSPRNG and 1000 iterations, as the
    /// sync agent does for every user on every sync.
    pub fn new_random(nt: &NtHash) -> Result<Self, HashError> {
        Self::from_nt_hash(nt, random_salt()?, DEFAULT_ITERATIONS)
    }

    /// Assemble from parts already computed elsewhere (e.g. the batch PBKDF2 path).
    pub fn from_parts(
        salt: [u8; SALT_LEN],
        iterations: u32,
        key: [u8; KEY_LEN],
    ) -> Result<Self, HashError> {
        check_iterations(iterations)?;
        Ok(PhsDigest {
            salt,
            iterations,
            key,
        })
    }

    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The canonical string, with the trailing `;` Microsoft sends.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(DIGEST_STRING_MAX_LEN));
        s.push_str(PREFIX);
        s.push_str(&hex::encode(self.salt));
        s.push(',');
        s.push_str(&self.iterations.to_string());
        s.push(',');
        let key_hex = Zeroizing::new(hex::encode(self.key));
        s.push_str(&key_hex);
        s.push(';');
        s
    }

    /// Parse a digest string, with or without the trailing `;` (hashcat prints it without).
    pub fn parse(s: &str) -> Result<Self, DigestParseError> {
        if s.is_empty() {
            return Err(DigestParseError::Empty);
        }
        if s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(DigestParseError::Whitespace);
        }
        let body = s.strip_prefix(PREFIX).ok_or(DigestParseError::BadPrefix)?;
        let body = match body.find(';') {
            Some(end) if end + 1 == body.len() => &body[..end],
            Some(_) => return Err(DigestParseError::TrailingData),
            None => body,
        };
        let fields: Vec<&str> = body.split(',').collect();
        if fields.len() != 3 {
            // The algorithm field was consumed with the prefix.
            return Err(DigestParseError::FieldCount(fields.len() + 1));
        }
        let (salt_hex, iter_str, key_hex) = (fields[0], fields[1], fields[2]);

        let mut salt = [0u8; SALT_LEN];
        if salt_hex.len() != 2 * SALT_LEN {
            return Err(DigestParseError::SaltLength {
                expected: 2 * SALT_LEN,
                found: salt_hex.len(),
            });
        }
        hex::decode_to_slice(salt_hex, &mut salt).map_err(|_| DigestParseError::SaltNotHex)?;

        if iter_str.is_empty() || !iter_str.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DigestParseError::IterationsNotNumber);
        }
        if iter_str.len() > 1 && iter_str.starts_with('0') {
            return Err(DigestParseError::IterationsLeadingZero);
        }
        let out_of_range = DigestParseError::IterationsOutOfRange {
            min: MIN_ITERATIONS,
            max: MAX_ITERATIONS,
        };
        let iterations: u32 = iter_str.parse().map_err(|_| out_of_range.clone())?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(out_of_range);
        }

        let mut key = [0u8; KEY_LEN];
        if key_hex.len() != 2 * KEY_LEN {
            return Err(DigestParseError::KeyLength {
                expected: 2 * KEY_LEN,
                found: key_hex.len(),
            });
        }
        if hex::decode_to_slice(key_hex, &mut key).is_err() {
            key.zeroize();
            return Err(DigestParseError::KeyNotHex);
        }
        Ok(PhsDigest {
            salt,
            iterations,
            key,
        })
    }

    /// Constant-time check of an NT hash against this digest.
    pub fn matches_nt_hash(&self, nt: &NtHash) -> bool {
        let mut candidate = derive_key(nt, &self.salt, self.iterations);
        let same: bool = candidate.ct_eq(&self.key).into();
        candidate.zeroize();
        same
    }
}

impl std::str::FromStr for PhsDigest {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhsDigest::parse(s)
    }
}

/// 10 bytes from the operating system's CSPRNG.
pub fn random_salt() -> Result<[u8; SALT_LEN], HashError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| HashError::Random(e.to_string()))?;
    Ok(salt)
}

/// Does `password` match the digest string? A wrong password is `Ok(false)`; only a
/// malformed digest or an unacceptable password is an error.
pub fn verify_password(digest: &str, password: &str) -> Result<bool, HashError> {
    let digest = PhsDigest::parse(digest)?;
    Ok(digest.matches_nt_hash(&NtHash::from_password(password)?))
}

/// As [`verify_password`], over raw UTF-16 code units (lone surrogates allowed).
pub fn verify_password_utf16(digest: &str, password: &[u16]) -> Result<bool, HashError> {
    let digest = PhsDigest::parse(digest)?;
    Ok(digest.matches_nt_hash(&NtHash::from_utf16(password)?))
}

/// Does an NT hash match the digest string?
pub fn verify_nt_hash(digest: &str, nt: &NtHash) -> Result<bool, HashError> {
    Ok(PhsDigest::parse(digest)?.matches_nt_hash(nt))
}
