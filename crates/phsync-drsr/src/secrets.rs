//! Decryption of secret attributes replicated by IDL_DRSGetNCChanges (MS-DRSR 4.1.10.6.17
//! and MS-SAMR 2.2.11.1.3).
//!
//! An attribute value is `ENCRYPTED_PAYLOAD { Salt[16], CheckSum u32, EncryptedData }`.
//! `key = MD5(sessionKey ‖ Salt)`; everything after the salt is RC4-decrypted and the first
//! four bytes are the little-endian CRC32 of the rest. `unicodePwd` and each 16-byte slice of
//! `ntPwdHistory` then carry a DES-ECB layer keyed by the account's RID.

use des::cipher::{generic_array::GenericArray, BlockDecrypt, KeyInit};
use des::Des;
use md5::{Digest as _, Md5};
use rc4::{consts::U16, Rc4, StreamCipher};
use zeroize::{Zeroize, Zeroizing};

use super::error::{DrsrError, Result};
use phsync_hash::{NtHash, NT_HASH_LEN};

const SALT_LEN: usize = 16;
const CRC_LEN: usize = 4;

/// A security-context session key (NTLM ExportedSessionKey, 16 bytes, or the Kerberos
/// session subkey). Zeroized on drop; `Debug` never shows it.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct SessionKey(Vec<u8>);

impl SessionKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        SessionKey(bytes)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey(<{} bytes redacted>)", self.0.len())
    }
}

/// Every session key seen on a connection, newest last. Decryption tries newest first,
/// because a DC may renegotiate the key mid-stream.
#[derive(Debug, Default, Clone)]
pub struct SessionKeys {
    keys: Vec<SessionKey>,
}

impl SessionKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember a key (ignored when it equals the newest already known).
    pub fn push(&mut self, key: SessionKey) {
        if self.keys.last().map(|k| k.as_bytes()) != Some(key.as_bytes()) {
            self.keys.push(key);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    #[cfg(test)]
    pub(crate) fn keys_for_tests(&self) -> Vec<&[u8]> {
        self.keys.iter().map(|k| k.as_bytes()).collect()
    }

    /// Remove the encryption layer of one `ENCRYPTED_PAYLOAD`, trying every key newest
    /// first. Empty input gives `Ok(None)` (an attribute present with no value).
    pub fn decrypt_payload(
        &self,
        blob: &[u8],
        attribute: &'static str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if blob.is_empty() {
            return Ok(None);
        }
        if blob.len() < SALT_LEN + CRC_LEN {
            return Err(DrsrError::protocol(
                "ENCRYPTED_PAYLOAD",
                format!("at least {} bytes, got {}", SALT_LEN + CRC_LEN, blob.len()),
            ));
        }
        for key in self.keys.iter().rev() {
            if let Some(plain) = decrypt_with_key(key.as_bytes(), blob) {
                return Ok(Some(plain));
            }
        }
        Err(DrsrError::CrcMismatch { attribute })
    }
}

/// One attempt with one key: `None` when the CRC32 does not match.
fn decrypt_with_key(session_key: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (salt, rest) = blob.split_at(SALT_LEN);
    let mut md5 = Md5::new();
    md5.update(session_key);
    md5.update(salt);
    let mut key: [u8; 16] = md5.finalize().into();
    let mut cipher = Rc4::<U16>::new(GenericArray::from_slice(&key));
    key.zeroize();
    let mut plain = Zeroizing::new(rest.to_vec());
    cipher.apply_keystream(&mut plain);
    let crc = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]);
    if crc32fast::hash(&plain[CRC_LEN..]) != crc {
        return None;
    }
    Some(Zeroizing::new(plain[CRC_LEN..].to_vec()))
}

/// Expand a 56-bit key (7 bytes) to the 8-byte DES key form (parity bits left zero).
fn expand_des_key(k: &[u8; 7]) -> [u8; 8] {
    let out = [
        k[0] >> 1,
        ((k[0] & 0x01) << 6) | (k[1] >> 2),
        ((k[1] & 0x03) << 5) | (k[2] >> 3),
        ((k[2] & 0x07) << 4) | (k[3] >> 4),
        ((k[3] & 0x0f) << 3) | (k[4] >> 5),
        ((k[4] & 0x1f) << 2) | (k[5] >> 6),
        ((k[5] & 0x3f) << 1) | (k[6] >> 7),
        k[6] & 0x7f,
    ];
    out.map(|b| b << 1)
}

/// The two DES keys MS-SAMR 2.2.11.1.3 derives from a RID.
fn rid_des_keys(rid: u32) -> ([u8; 8], [u8; 8]) {
    let r = rid.to_le_bytes();
    let k1 = [r[0], r[1], r[2], r[3], r[0], r[1], r[2]];
    let k2 = [r[3], r[0], r[1], r[2], r[3], r[0], r[1]];
    (expand_des_key(&k1), expand_des_key(&k2))
}

/// Remove the RID DES layer from one 16-byte encrypted hash.
pub fn decrypt_rid_layer(rid: u32, block: &[u8; 16]) -> [u8; 16] {
    let (k1, k2) = rid_des_keys(rid);
    let mut out = *block;
    let (a, b) = out.split_at_mut(8);
    Des::new(GenericArray::from_slice(&k1)).decrypt_block(GenericArray::from_mut_slice(a));
    Des::new(GenericArray::from_slice(&k2)).decrypt_block(GenericArray::from_mut_slice(b));
    out
}

/// `unicodePwd` (or `dBCSPwd`) value → hash. An empty blob means "no hash" (`None`), never
/// the hash of the empty password.
pub fn decrypt_hash(
    keys: &SessionKeys,
    rid: u32,
    blob: &[u8],
    attribute: &'static str,
) -> Result<Option<NtHash>> {
    let Some(plain) = keys.decrypt_payload(blob, attribute)? else {
        return Ok(None);
    };
    if plain.is_empty() {
        return Ok(None);
    }
    if plain.len() != NT_HASH_LEN {
        return Err(DrsrError::protocol(
            attribute,
            format!("a 16-byte hash after decryption, got {} bytes", plain.len()),
        ));
    }
    let mut block = [0u8; 16];
    block.copy_from_slice(&plain);
    let mut clear = decrypt_rid_layer(rid, &block);
    block.zeroize();
    let hash = NtHash::from_bytes(clear);
    clear.zeroize();
    Ok(Some(hash))
}

/// `ntPwdHistory` (or `lmPwdHistory`) value → hashes, newest first as stored.
pub fn decrypt_history(
    keys: &SessionKeys,
    rid: u32,
    blob: &[u8],
    attribute: &'static str,
) -> Result<Vec<NtHash>> {
    let Some(plain) = keys.decrypt_payload(blob, attribute)? else {
        return Ok(Vec::new());
    };
    if plain.len() % NT_HASH_LEN != 0 {
        return Err(DrsrError::protocol(
            attribute,
            format!(
                "a multiple of 16 bytes after decryption, got {}",
                plain.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(plain.len() / NT_HASH_LEN);
    for chunk in plain.chunks_exact(NT_HASH_LEN) {
        let mut block = [0u8; 16];
        block.copy_from_slice(chunk);
        let mut clear = decrypt_rid_layer(rid, &block);
        block.zeroize();
        out.push(NtHash::from_bytes(clear));
        clear.zeroize();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(hex_key: &str) -> SessionKeys {
        let mut k = SessionKeys::new();
        k.push(SessionKey::new(hex::decode(hex_key).unwrap()));
        k
    }

    fn upper(h: &NtHash) -> String {
        h.to_upper_hex().to_string()
    }

    const BLOB1: &str = "e650e0179becf540e1e6dbe37deb38b379618228d74d9ff7e08a588c2a6fbd511ad78f61";

    #[test]
    fn nt_hash_vector_rid_500() {
        let k = keys("b0133bfc9ce59c805dd15d5872e247c5");
        let h = decrypt_hash(&k, 500, &hex::decode(BLOB1).unwrap(), "unicodePwd")
            .unwrap()
            .unwrap();
        assert_eq!(upper(&h), "92937945B518814341DE3F726500D4FF");
    }

    #[test]
    fn lm_hash_vector_rid_35093() {
        let k = keys("7dfee67fc2476e6bc1b68563e5ee7614");
        let blob =
            hex::decode("fd2db3a4edba8fb08cf372b701449c1c28ddb6fcd70226fa571d490f9798f30efe6454fc")
                .unwrap();
        let h = decrypt_hash(&k, 35093, &blob, "dBCSPwd").unwrap().unwrap();
        assert_eq!(upper(&h), "727E3576618FA1754A3B108F3FA6CB6D");
    }

    #[test]
    fn history_vector_rid_1375() {
        let k = keys("f029c008decee208f36450cc1f767892");
        let blob = hex::decode("491e1b5e8ff95982ccedc4ff2c50ad5fe154650df83e8430ede739271da2e03d9aa99aa8d4b598ef56c9650eb71a233a9fd580f4d9c2dbc33f92e0002e1d2901050fb5d7f66ca3555e5befbf322cd23c1eeaaf7c").unwrap();
        let hist = decrypt_history(&k, 1375, &blob, "ntPwdHistory").unwrap();
        let got: Vec<String> = hist.iter().map(upper).collect();
        assert_eq!(
            got,
            [
                "A4FF9743BDDA4849CB2108D2CEB5C5B9",
                "185418D4B03FB6CFE90E71402220E807",
                "4FED6755410545C28B519F30E02D54A2",
                "92937945B518814341DE3F726500D4FF",
            ]
        );
    }

    #[test]
    fn all_zero_session_key_fails_crc() {
        let k = keys("00000000000000000000000000000000");
        let err = decrypt_hash(&k, 500, &hex::decode(BLOB1).unwrap(), "unicodePwd").unwrap_err();
        assert!(
            matches!(
                err,
                DrsrError::CrcMismatch {
                    attribute: "unicodePwd"
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn newest_key_first_but_older_keys_still_tried() {
        let mut k = keys("b0133bfc9ce59c805dd15d5872e247c5");
        k.push(SessionKey::new(vec![0u8; 16]));
        assert_eq!(k.len(), 2);
        let h = decrypt_hash(&k, 500, &hex::decode(BLOB1).unwrap(), "unicodePwd")
            .unwrap()
            .unwrap();
        assert_eq!(upper(&h), "92937945B518814341DE3F726500D4FF");
    }

    #[test]
    fn empty_blob_is_no_hash_not_empty_password() {
        let k = keys("b0133bfc9ce59c805dd15d5872e247c5");
        assert!(decrypt_hash(&k, 500, &[], "unicodePwd").unwrap().is_none());
        assert!(decrypt_history(&k, 500, &[], "ntPwdHistory")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn truncated_blob_is_protocol_error() {
        let k = keys("b0133bfc9ce59c805dd15d5872e247c5");
        let blob = hex::decode(BLOB1).unwrap();
        assert!(matches!(
            decrypt_hash(&k, 500, &blob[..10], "unicodePwd"),
            Err(DrsrError::Protocol { .. })
        ));
        // Cut inside the data: the CRC no longer matches with any key.
        assert!(decrypt_hash(&k, 500, &blob[..30], "unicodePwd").is_err());
    }

    #[test]
    fn no_keys_is_crc_failure() {
        let k = SessionKeys::new();
        assert!(matches!(
            decrypt_hash(&k, 500, &hex::decode(BLOB1).unwrap(), "unicodePwd"),
            Err(DrsrError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn des_key_expansion_known_value() {
        // RID 500 = f4 01 00 00: first key bytes f4 01 00 00 f4 01 00.
        let (k1, _) = rid_des_keys(500);
        assert_eq!(k1, [0xf4, 0x00, 0x40, 0x00, 0x0e, 0xa0, 0x04, 0x00]);
    }
}
