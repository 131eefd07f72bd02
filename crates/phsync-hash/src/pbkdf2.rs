//! PBKDF2-HMAC-SHA256 specialised for the PHS digest: the password is always the 64-byte
//! UTF-16LE upper-hex NT hash (exactly one SHA-256 block, so it is the HMAC key as is), the
//! salt 10 bytes, the output one 32-byte block. Each iteration is then exactly two
//! compressions from precomputed inner and outer states, on fixed blocks, with no
//! allocation: the whole cost is 2 × iterations compressions.
//!
//! The single-lane path here uses the `sha2` crate's compression function (which uses the
//! CPU's SHA extensions when it has them); `lanes` runs 8 or 16 digests side by side.

use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroize;

use super::{NtHash, NT_HASH_LEN};

pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Bit length of a message that is one key block plus 32 bytes: every block after U1.
pub(crate) const LEN_KEY_PLUS_32: u32 = (64 + 32) * 8;
/// Bit length of one key block plus salt (10) plus INT(1) (4): the first block.
pub(crate) const LEN_KEY_PLUS_SALT: u32 = (64 + 10 + 4) * 8;

/// The HMAC key: UTF-16LE of the NT hash's upper-case hex, 64 bytes.
pub(crate) fn hmac_key(nt: &NtHash) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut key = [0u8; 64];
    for (i, b) in nt.as_bytes().iter().enumerate() {
        key[4 * i] = HEX[usize::from(b >> 4)];
        key[4 * i + 2] = HEX[usize::from(b & 15)];
    }
    debug_assert_eq!(NT_HASH_LEN * 4, key.len());
    key
}

pub(crate) fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// Inner and outer HMAC states after absorbing key ⊕ ipad and key ⊕ opad.
pub(crate) fn hmac_states(key: &[u8; 64]) -> ([u32; 8], [u32; 8]) {
    let mut pad = [0u8; 64];
    let mut inner = IV;
    let mut outer = IV;
    for (p, k) in pad.iter_mut().zip(key) {
        *p = k ^ 0x36;
    }
    compress(&mut inner, &pad);
    for (p, k) in pad.iter_mut().zip(key) {
        *p = k ^ 0x5c;
    }
    compress(&mut outer, &pad);
    pad.zeroize();
    (inner, outer)
}

/// The first inner block: salt ‖ INT(1) ‖ padding, as big-endian words.
pub(crate) fn first_block_words(salt: &[u8; 10]) -> [u32; 16] {
    let mut bytes = [0u8; 64];
    bytes[..10].copy_from_slice(salt);
    bytes[10..14].copy_from_slice(&1u32.to_be_bytes());
    bytes[14] = 0x80;
    bytes[60..64].copy_from_slice(&LEN_KEY_PLUS_SALT.to_be_bytes());
    let mut words = [0u32; 16];
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_be_bytes(c.try_into().expect("4 bytes"));
    }
    words
}

fn put_words(block: &mut [u8; 64], words: &[u32; 8]) {
    for (chunk, w) in block.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
}

/// One PHS key through the `sha2` crate's compression (SHA extensions when present).
pub(crate) fn derive_key_sha2(nt: &NtHash, salt: &[u8; 10], iterations: u32) -> [u8; 32] {
    let mut key = hmac_key(nt);
    let (mut istate, mut ostate) = hmac_states(&key);
    key.zeroize();

    let mut block = [0u8; 64];
    for (chunk, w) in block.chunks_exact_mut(4).zip(first_block_words(salt)) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    let mut inner = istate;
    compress(&mut inner, &block);

    // Both later blocks are 32 bytes of hash ‖ 0x80 ‖ zeros ‖ length.
    let mut fixed = [0u8; 64];
    fixed[32] = 0x80;
    fixed[60..64].copy_from_slice(&LEN_KEY_PLUS_32.to_be_bytes());
    block = fixed;
    put_words(&mut block, &inner);
    let mut u = ostate;
    compress(&mut u, &block);
    let mut t = u;
    for _ in 1..iterations {
        put_words(&mut block, &u);
        inner = istate;
        compress(&mut inner, &block);
        put_words(&mut block, &inner);
        u = ostate;
        compress(&mut u, &block);
        for (acc, x) in t.iter_mut().zip(&u) {
            *acc ^= x;
        }
    }
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(&t) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    block.zeroize();
    for s in [&mut istate, &mut ostate, &mut inner, &mut u, &mut t] {
        s.zeroize();
    }
    out
}

pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $k:expr, $w:expr) => {
        let t1 = $h
            .wrapping_add($e.rotate_right(6) ^ $e.rotate_right(11) ^ $e.rotate_right(25))
            .wrapping_add($g ^ ($e & ($f ^ $g)))
            .wrapping_add($k)
            .wrapping_add($w);
        let t2 = ($a.rotate_right(2) ^ $a.rotate_right(13) ^ $a.rotate_right(22))
            .wrapping_add(($a & $b) | ($c & ($a | $b)));
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(t2);
    };
}

/// Portable SHA-256 compression over words (no byte conversions), for CPUs without SHA
/// extensions: schedule first, then the 64 rounds unrolled with the variables renamed
/// instead of shifted, so the state stays in registers.
#[inline(always)]
fn compress_words(state: &mut [u32; 8], block: &[u32; 16]) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for t in 16..64 {
        let (w2, w15) = (w[t - 2], w[t - 15]);
        let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
        let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
        w[t] = s1
            .wrapping_add(w[t - 7])
            .wrapping_add(s0)
            .wrapping_add(w[t - 16]);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    let mut t = 0;
    while t < 64 {
        round!(a, b, c, d, e, f, g, h, K[t], w[t]);
        round!(h, a, b, c, d, e, f, g, K[t + 1], w[t + 1]);
        round!(g, h, a, b, c, d, e, f, K[t + 2], w[t + 2]);
        round!(f, g, h, a, b, c, d, e, K[t + 3], w[t + 3]);
        round!(e, f, g, h, a, b, c, d, K[t + 4], w[t + 4]);
        round!(d, e, f, g, h, a, b, c, K[t + 5], w[t + 5]);
        round!(c, d, e, f, g, h, a, b, K[t + 6], w[t + 6]);
        round!(b, c, d, e, f, g, h, a, K[t + 7], w[t + 7]);
        t += 8;
    }
    for (s, x) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(x);
    }
    w.zeroize();
}

/// One PHS key with the portable compression: the single-lane path on CPUs without SHA
/// extensions.
pub(crate) fn derive_key_portable(nt: &NtHash, salt: &[u8; 10], iterations: u32) -> [u8; 32] {
    let mut key = hmac_key(nt);
    let (mut istate, mut ostate) = hmac_states(&key);
    key.zeroize();
    let mut inner = istate;
    compress_words(&mut inner, &first_block_words(salt));
    let mut block = [0u32; 16];
    block[8] = 0x8000_0000;
    block[15] = LEN_KEY_PLUS_32;
    block[..8].copy_from_slice(&inner);
    let mut u = ostate;
    compress_words(&mut u, &block);
    let mut t = u;
    for _ in 1..iterations {
        block[..8].copy_from_slice(&u);
        inner = istate;
        compress_words(&mut inner, &block);
        block[..8].copy_from_slice(&inner);
        u = ostate;
        compress_words(&mut u, &block);
        for (acc, x) in t.iter_mut().zip(&u) {
            *acc ^= x;
        }
    }
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(&t) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    for s in [&mut istate, &mut ostate, &mut inner, &mut u, &mut t] {
        s.zeroize();
    }
    block.zeroize();
    out
}

/// Does the `sha2` crate's compression run on SHA extensions here?
pub(crate) fn has_sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The best single-lane path: SHA extensions where the CPU has them, portable otherwise.
pub(crate) fn derive_key_scalar(nt: &NtHash, salt: &[u8; 10], iterations: u32) -> [u8; 32] {
    if has_sha_extensions() {
        derive_key_sha2(nt, salt, iterations)
    } else {
        derive_key_portable(nt, salt, iterations)
    }
}
