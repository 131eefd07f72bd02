//! Cloud-set passwords are stored as Argon2id PHC strings (never as NT hashes), hashed over
//! the UTF-16LE bytes so any password a Windows client can type round-trips.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::{CloudError, CloudResult};

/// OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters"),
    )
}

fn utf16le(password: &[u16]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(password.iter().flat_map(|u| u.to_le_bytes()).collect())
}

pub fn hash_cloud_password(password: &[u16]) -> CloudResult<Zeroizing<String>> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).map_err(|e| CloudError::Random(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| CloudError::Storage(e.to_string()))?;
    let phc = argon2()
        .hash_password(&utf16le(password), &salt)
        .map_err(|e| CloudError::Storage(format!("argon2: {e}")))?;
    Ok(Zeroizing::new(phc.to_string()))
}

/// Constant-time (inside argon2) check; a malformed stored hash is simply "no match".
pub fn verify_cloud_password(phc: &str, password: &[u16]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(&utf16le(password), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A stored-hash stand-in so a sign-in for an unknown user costs what a real one costs.
pub fn decoy_cloud_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"phsync-decoy-salt").expect("salt");
        argon2()
            .hash_password(b"decoy", &salt)
            .expect("argon2")
            .to_string()
    })
}
