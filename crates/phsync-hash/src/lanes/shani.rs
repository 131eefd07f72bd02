//! PBKDF2-HMAC-SHA256 on the x86 SHA extensions, 1 to 4 independent chains interleaved.
//!
//! One chain is latency-bound: every `sha256rnds2` (two rounds) waits for the one before,
//! and each PBKDF2 iteration is two compressions in a row, so a single stream leaves the SHA
//! unit idle between rounds. Digests of different users are independent, so issuing the
//! rounds of several chains side by side fills those gaps, up to the rate at which the unit
//! accepts `sha256rnds2` (`rnds2_timing` measures both; on the development machine the
//! latency is 1.3x the issue interval, which caps the gain). Per chain the state stays in two
//! registers in the extensions' ABEF/CDGH layout; the HMAC inner and outer states are put in
//! that layout once per digest, and the 32-byte-message block's padding (words 8..15) is a
//! constant whose round inputs K+W are precomputed.

use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::LaneInput;
use crate::pbkdf2::{K, LEN_KEY_PLUS_32};

/// Most chains one call interleaves.
pub const MAX_CHAINS: usize = 4;

/// Does this CPU have every instruction the kernel uses?
pub fn is_available() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

/// The round constants, four per 128-bit group.
#[repr(C, align(16))]
struct Constants([u32; 64]);
static KV: Constants = Constants(K);

/// K + W for rounds 8..15 of a block that is a 32-byte message after a 64-byte key block:
/// W[8] = the 0x80 padding byte, W[9..14] = 0, W[15] = the bit length.
static KW_TAIL: Constants = {
    let mut c = [0u32; 64];
    let tail = tail_words();
    let mut i = 0;
    while i < 8 {
        c[i] = K[8 + i].wrapping_add(tail[i]);
        i += 1;
    }
    Constants(c)
};

const fn tail_words() -> [u32; 8] {
    [0x8000_0000, 0, 0, 0, 0, 0, 0, LEN_KEY_PLUS_32]
}
static TAIL: Constants = {
    let mut c = [0u32; 64];
    let tail = tail_words();
    let mut i = 0;
    while i < 8 {
        c[i] = tail[i];
        i += 1;
    }
    Constants(c)
};

/// Four words of a 16-byte-aligned constant table.
#[inline]
#[target_feature(enable = "sse2")]
fn group(table: &'static Constants, g: usize) -> __m128i {
    assert!(g < 16);
    // SAFETY: g < 16, so the 16 bytes at 4 * g lie inside the 64-word table, which is
    // 16-byte aligned (repr align(16)) as is every multiple of four words in it.
    unsafe { _mm_load_si128(table.0.as_ptr().add(4 * g).cast()) }
}

/// One chain's state: (F, E, B, A) and (H, G, D, C) from lane 0 up, the layout
/// `sha256rnds2` works in.
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

/// Words A..H (A in lane 0 of `abcd`, E in lane 0 of `efgh`) into the rounds' layout.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn to_state(abcd: __m128i, efgh: __m128i) -> State {
    let badc = _mm_shuffle_epi32::<0xB1>(abcd);
    let hgfe = _mm_shuffle_epi32::<0x1B>(efgh);
    State {
        abef: _mm_alignr_epi8::<8>(badc, hgfe),
        cdgh: _mm_blend_epi16::<0xF0>(hgfe, badc),
    }
}

/// The inverse of `to_state`: (A, B, C, D) and (E, F, G, H) from lane 0 up, which are also
/// the message words 0..7 of the next block.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn to_words(s: State) -> [__m128i; 2] {
    let abef_rev = _mm_shuffle_epi32::<0x1B>(s.abef);
    let ghcd = _mm_shuffle_epi32::<0xB1>(s.cdgh);
    [
        _mm_blend_epi16::<0xF0>(abef_rev, ghcd),
        _mm_alignr_epi8::<8>(ghcd, abef_rev),
    ]
}

/// Four rounds from message-plus-constant words `kw`.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds4(s: &mut State, kw: __m128i) {
    s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, kw);
    s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32::<0x0E>(kw));
}

/// The next four schedule words from the previous sixteen.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8::<4>(w3, w2));
    _mm_sha256msg2_epu32(t, w3)
}

/// One compression per chain from `start` over the message words `w` (overwritten by the
/// schedule), feed-forward included. With `TAIL`, words 8..15 must be the constant tail and
/// rounds 8..15 take their precomputed K+W.
///
/// The 16 groups of four rounds are written out (const generics give every index as a
/// constant, so `w` and the states stay in registers); within a group the chains go one
/// after another, so the chains' `sha256rnds2` latencies overlap.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress<const N: usize, const TAIL: bool>(
    start: &[State; N],
    w: &mut [[__m128i; 4]; N],
) -> [State; N] {
    let mut s = *start;
    step::<N, 0, TAIL>(&mut s, w);
    step::<N, 1, TAIL>(&mut s, w);
    step::<N, 2, TAIL>(&mut s, w);
    step::<N, 3, TAIL>(&mut s, w);
    step::<N, 4, TAIL>(&mut s, w);
    step::<N, 5, TAIL>(&mut s, w);
    step::<N, 6, TAIL>(&mut s, w);
    step::<N, 7, TAIL>(&mut s, w);
    step::<N, 8, TAIL>(&mut s, w);
    step::<N, 9, TAIL>(&mut s, w);
    step::<N, 10, TAIL>(&mut s, w);
    step::<N, 11, TAIL>(&mut s, w);
    step::<N, 12, TAIL>(&mut s, w);
    step::<N, 13, TAIL>(&mut s, w);
    step::<N, 14, TAIL>(&mut s, w);
    step::<N, 15, TAIL>(&mut s, w);
    for c in 0..N {
        s[c].abef = _mm_add_epi32(s[c].abef, start[c].abef);
        s[c].cdgh = _mm_add_epi32(s[c].cdgh, start[c].cdgh);
    }
    s
}

/// Rounds 4G..4G+4 of every chain; from group 4 on, the schedule's next four words first.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn step<const N: usize, const G: usize, const TAIL: bool>(
    s: &mut [State; N],
    w: &mut [[__m128i; 4]; N],
) {
    let k = group(&KV, G);
    for c in 0..N {
        let m = &mut w[c];
        if G >= 4 {
            m[G % 4] = schedule(m[G % 4], m[(G + 1) % 4], m[(G + 2) % 4], m[(G + 3) % 4]);
        }
        let kw = if TAIL && (G == 2 || G == 3) {
            group(&KW_TAIL, G % 2)
        } else {
            _mm_add_epi32(m[G % 4], k)
        };
        rounds4(&mut s[c], kw);
    }
}

/// Load four words.
#[inline]
#[target_feature(enable = "sse2")]
fn load4(words: &[u32]) -> __m128i {
    assert!(words.len() >= 4);
    // SAFETY: the slice holds at least four u32s (16 bytes); the load is unaligned.
    unsafe { _mm_loadu_si128(words.as_ptr().cast()) }
}

/// Store four words.
#[inline]
#[target_feature(enable = "sse2")]
fn store4(words: &mut [u32], v: __m128i) {
    assert!(words.len() >= 4);
    // SAFETY: the slice holds at least four u32s (16 bytes); the store is unaligned.
    unsafe { _mm_storeu_si128(words.as_mut_ptr().cast(), v) }
}

/// Keys for exactly `N` inputs that share an iteration count, interleaved.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn derive_n<const N: usize>(inputs: &[LaneInput], iterations: u32) -> Vec<[u8; 32]> {
    assert_eq!(inputs.len(), N);
    let istate: [State; N] = std::array::from_fn(|c| {
        to_state(load4(&inputs[c].istate[..4]), load4(&inputs[c].istate[4..]))
    });
    let ostate: [State; N] = std::array::from_fn(|c| {
        to_state(load4(&inputs[c].ostate[..4]), load4(&inputs[c].ostate[4..]))
    });
    let tail = [group(&TAIL, 0), group(&TAIL, 1)];

    // U1 = HMAC(key, salt ‖ INT(1)): the only block that is not the fixed 32-byte form.
    let mut w: [[__m128i; 4]; N] =
        std::array::from_fn(|c| std::array::from_fn(|i| load4(&inputs[c].first[4 * i..])));
    let inner = compress::<N, false>(&istate, &mut w);
    for c in 0..N {
        let [lo, hi] = to_words(inner[c]);
        w[c] = [lo, hi, tail[0], tail[1]];
    }
    let u = compress::<N, true>(&ostate, &mut w);
    let mut t: [[__m128i; 2]; N] = std::array::from_fn(|c| to_words(u[c]));
    let mut uw = t;

    for _ in 1..iterations {
        for c in 0..N {
            w[c] = [uw[c][0], uw[c][1], tail[0], tail[1]];
        }
        let inner = compress::<N, true>(&istate, &mut w);
        for c in 0..N {
            let [lo, hi] = to_words(inner[c]);
            w[c] = [lo, hi, tail[0], tail[1]];
        }
        let u = compress::<N, true>(&ostate, &mut w);
        for c in 0..N {
            uw[c] = to_words(u[c]);
            t[c][0] = _mm_xor_si128(t[c][0], uw[c][0]);
            t[c][1] = _mm_xor_si128(t[c][1], uw[c][1]);
        }
    }

    let mut words = [0u32; 8];
    let keys = (0..N)
        .map(|c| {
            store4(&mut words[..4], t[c][0]);
            store4(&mut words[4..], t[c][1]);
            let mut key = [0u8; 32];
            for (chunk, word) in key.chunks_exact_mut(4).zip(&words) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            key
        })
        .collect();
    words.zeroize();
    keys
}

/// Keys for 1..=MAX_CHAINS inputs that share an iteration count, all chains interleaved
/// (an iteration count of 0 computes U1 only, as the other paths do).
///
/// # Safety
/// The CPU must have the SHA extensions and SSE4.1 (`is_available`).
pub unsafe fn derive(inputs: &[LaneInput], iterations: u32) -> Vec<[u8; 32]> {
    // SAFETY (all four calls): the caller guarantees the target features.
    unsafe {
        match inputs.len() {
            1 => derive_n::<1>(inputs, iterations),
            2 => derive_n::<2>(inputs, iterations),
            3 => derive_n::<3>(inputs, iterations),
            4 => derive_n::<4>(inputs, iterations),
            n => panic!("{n} inputs: the SHA-extensions kernel takes 1 to {MAX_CHAINS}"),
        }
    }
}

/// `pairs` × 2 `sha256rnds2` in each of `N` independent chains.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rnds2_chains<const N: usize>(pairs: usize, seed: i32) -> __m128i {
    let seed = _mm_set1_epi32(seed);
    let mut a: [__m128i; N] =
        std::array::from_fn(|i| _mm_add_epi32(seed, _mm_set1_epi32(i as i32)));
    let mut b: [__m128i; N] =
        std::array::from_fn(|i| _mm_sub_epi32(seed, _mm_set1_epi32(i as i32)));
    let k = group(&KV, 0);
    for _ in 0..pairs {
        for c in 0..N {
            b[c] = _mm_sha256rnds2_epu32(b[c], a[c], k);
            a[c] = _mm_sha256rnds2_epu32(a[c], b[c], k);
        }
    }
    let mut x = seed;
    for c in 0..N {
        x = _mm_xor_si128(x, _mm_xor_si128(a[c], b[c]));
    }
    x
}

/// Seconds per `sha256rnds2` on this core as one dependent chain (its latency) and as four
/// independent chains (how often the SHA unit accepts one): the ratio is the most any
/// interleaving can gain over a latency-bound single stream. Each is the fastest of several
/// short runs. `None` without the SHA extensions.
pub fn rnds2_timing() -> Option<(f64, f64)> {
    if !is_available() {
        return None;
    }
    const PAIRS: usize = 100_000;
    let (mut latency, mut interval) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..10 {
        let seed = std::hint::black_box(0x5a5a_5a5a);
        let start = std::time::Instant::now();
        // SAFETY: is_available checked the SHA extensions and SSE4.1.
        std::hint::black_box(unsafe { rnds2_chains::<1>(PAIRS, seed) });
        latency = latency.min(start.elapsed().as_secs_f64() / (2 * PAIRS) as f64);
        let start = std::time::Instant::now();
        // SAFETY: as above.
        std::hint::black_box(unsafe { rnds2_chains::<4>(PAIRS / 4, seed) });
        interval = interval.min(start.elapsed().as_secs_f64() / (2 * PAIRS) as f64);
    }
    Some((latency, interval))
}
