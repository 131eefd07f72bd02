//! SHA-256 PBKDF2 kernels for x86-64 SIMD. One macro writes the algorithm once; each ISA
//! supplies its vector type and the handful of operations it needs.

use super::LaneInput;
use crate::pbkdf2::{K, LEN_KEY_PLUS_32};

macro_rules! lanes_kernel {
    ($feature:literal, $lanes:expr, $v:ty,
     splat = $splat:path, add = $add:path, xor = $xor:path,
     ror = $ror:ident, shr = $shr:ident, ch = $ch:ident, maj = $maj:ident, xor3 = $xor3:ident,
     load = $load:path, store = $store:path) => {
        use std::arch::x86_64::*;

        use super::{LaneInput, K, LEN_KEY_PLUS_32};

        const LANES: usize = $lanes;
        type V = $v;

        #[inline]
        #[target_feature(enable = $feature)]
        fn big_sigma0(x: V) -> V {
            $xor3($ror::<2>(x), $ror::<13>(x), $ror::<22>(x))
        }
        #[inline]
        #[target_feature(enable = $feature)]
        fn big_sigma1(x: V) -> V {
            $xor3($ror::<6>(x), $ror::<11>(x), $ror::<25>(x))
        }
        #[inline]
        #[target_feature(enable = $feature)]
        fn small_sigma0(x: V) -> V {
            $xor3($ror::<7>(x), $ror::<18>(x), $shr::<3>(x))
        }
        #[inline]
        #[target_feature(enable = $feature)]
        fn small_sigma1(x: V) -> V {
            $xor3($ror::<17>(x), $ror::<19>(x), $shr::<10>(x))
        }

        /// One SHA-256 compression in every lane; `w` is the block and is overwritten.
        #[inline]
        #[target_feature(enable = $feature)]
        fn compress(state: &mut [V; 8], w: &mut [V; 16]) {
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
            for t in 0..64 {
                let wt = if t < 16 {
                    w[t]
                } else {
                    let x = $add(
                        $add(small_sigma1(w[(t - 2) & 15]), w[(t - 7) & 15]),
                        $add(small_sigma0(w[(t - 15) & 15]), w[t & 15]),
                    );
                    w[t & 15] = x;
                    x
                };
                let t1 = $add(
                    $add(
                        $add(h, big_sigma1(e)),
                        $add($ch(e, f, g), $splat(K[t] as i32)),
                    ),
                    wt,
                );
                let t2 = $add(big_sigma0(a), $maj(a, b, c));
                h = g;
                g = f;
                f = e;
                e = $add(d, t1);
                d = c;
                c = b;
                b = a;
                a = $add(t1, t2);
            }
            let new = [a, b, c, d, e, f, g, h];
            for i in 0..8 {
                state[i] = $add(state[i], new[i]);
            }
        }

        /// Word `word` of every lane's array, as one vector (idle lanes zero).
        #[inline]
        #[target_feature(enable = $feature)]
        fn gather(get: impl Fn(usize) -> u32, count: usize) -> V {
            let mut buf = [0u32; LANES];
            for (lane, slot) in buf.iter_mut().enumerate().take(count) {
                *slot = get(lane);
            }
            // SAFETY: buf holds LANES u32s, exactly one vector.
            unsafe { $load(buf.as_ptr().cast()) }
        }

        /// Keys for up to LANES inputs that share an iteration count.
        ///
        /// # Safety
        /// The CPU must support the kernel's target feature.
        #[target_feature(enable = $feature)]
        pub unsafe fn derive(inputs: &[LaneInput], iterations: u32) -> Vec<[u8; 32]> {
            assert!(!inputs.is_empty() && inputs.len() <= LANES);
            let n = inputs.len();
            let istate: [V; 8] = std::array::from_fn(|i| gather(|l| inputs[l].istate[i], n));
            let ostate: [V; 8] = std::array::from_fn(|i| gather(|l| inputs[l].ostate[i], n));
            let zero = $splat(0);
            let pad_word = $splat(0x8000_0000u32 as i32);
            let len_word = $splat(LEN_KEY_PLUS_32 as i32);

            // U1 = HMAC(key, salt ‖ INT(1))
            let mut w: [V; 16] = std::array::from_fn(|i| gather(|l| inputs[l].first[i], n));
            let mut inner = istate;
            compress(&mut inner, &mut w);
            let fixed_tail = |w: &mut [V; 16]| {
                w[8] = pad_word;
                for x in w.iter_mut().take(15).skip(9) {
                    *x = zero;
                }
                w[15] = len_word;
            };
            w[..8].copy_from_slice(&inner);
            fixed_tail(&mut w);
            let mut u = ostate;
            compress(&mut u, &mut w);
            let mut t = u;

            for _ in 1..iterations {
                w[..8].copy_from_slice(&u);
                fixed_tail(&mut w);
                inner = istate;
                compress(&mut inner, &mut w);
                w[..8].copy_from_slice(&inner);
                fixed_tail(&mut w);
                u = ostate;
                compress(&mut u, &mut w);
                for i in 0..8 {
                    t[i] = $xor(t[i], u[i]);
                }
            }

            let mut words = [[0u32; LANES]; 8];
            for i in 0..8 {
                // SAFETY: each row holds LANES u32s, exactly one vector.
                unsafe { $store(words[i].as_mut_ptr().cast(), t[i]) };
            }
            (0..n)
                .map(|lane| {
                    let mut key = [0u8; 32];
                    for i in 0..8 {
                        key[4 * i..4 * i + 4].copy_from_slice(&words[i][lane].to_be_bytes());
                    }
                    key
                })
                .collect()
        }
    };
}

pub mod avx512 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ror<const N: i32>(x: __m512i) -> __m512i {
        _mm512_ror_epi32::<N>(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn shr<const N: i32>(x: __m512i) -> __m512i {
        _mm512_srl_epi32(x, _mm_cvtsi32_si128(N))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ch(e: __m512i, f: __m512i, g: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<0xCA>(e, f, g)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn maj(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<0xE8>(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<0x96>(a, b, c)
    }

    lanes_kernel!(
        "avx512f",
        16,
        __m512i,
        splat = _mm512_set1_epi32,
        add = _mm512_add_epi32,
        xor = _mm512_xor_si512,
        ror = ror,
        shr = shr,
        ch = ch,
        maj = maj,
        xor3 = xor3,
        load = _mm512_loadu_si512,
        store = _mm512_storeu_si512
    );
}

pub mod avx2 {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ror<const N: i32>(x: __m256i) -> __m256i {
        // The shift counts are const generics in the intrinsics' newer forms; use the
        // count-in-register forms so one generic body serves every N.
        let r = _mm_cvtsi32_si128(N);
        let l = _mm_cvtsi32_si128(32 - N);
        _mm256_or_si256(_mm256_srl_epi32(x, r), _mm256_sll_epi32(x, l))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn shr<const N: i32>(x: __m256i) -> __m256i {
        _mm256_srl_epi32(x, _mm_cvtsi32_si128(N))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        // (e & f) ^ (!e & g) == g ^ (e & (f ^ g))
        _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        // (a & b) | (c & (a | b))
        _mm256_or_si256(
            _mm256_and_si256(a, b),
            _mm256_and_si256(c, _mm256_or_si256(a, b)),
        )
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }

    lanes_kernel!(
        "avx2",
        8,
        __m256i,
        splat = _mm256_set1_epi32,
        add = _mm256_add_epi32,
        xor = _mm256_xor_si256,
        ror = ror,
        shr = shr,
        ch = ch,
        maj = maj,
        xor3 = xor3,
        load = _mm256_loadu_si256,
        store = _mm256_storeu_si256
    );
}
