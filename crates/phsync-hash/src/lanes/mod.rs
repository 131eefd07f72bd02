//! Many PHS keys side by side: SHA-256 in 16 (AVX-512) or 8 (AVX2) SIMD lanes, one digest
//! per lane, or 2 to 4 digests interleaved on the SHA extensions. Digests of a sync are
//! independent, so this is pure throughput; results are byte-identical to the single-lane
//! path (tests force every ISA the CPU has). Which batch path is fastest depends on the CPU,
//! so `choice` measures them on first use.

mod choice;
#[cfg(target_arch = "x86_64")]
mod shani;
#[cfg(target_arch = "x86_64")]
mod x86;

use zeroize::Zeroize;

pub use choice::{batch_path, PathChoice, PATH_ENV};

use super::pbkdf2::{
    derive_key_portable, derive_key_sha2, first_block_words, has_sha_extensions, hmac_key,
    hmac_states,
};
use super::{random_salt, HashError, NtHash, PhsDigest, DEFAULT_ITERATIONS};

/// A way to compute PHS keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// One digest at a time, portable code: what a CPU without SHA extensions runs.
    Portable,
    /// One digest at a time on the CPU's SHA extensions (through the `sha2` crate).
    ShaExtensions,
    /// 2 digests interleaved on the x86 SHA extensions, state in registers.
    ShaNiX2,
    /// 4 digests interleaved on the x86 SHA extensions (more latency to hide, but more
    /// registers spilled than x2: which wins depends on the CPU).
    ShaNiX4,
    /// 8 lanes of 32-bit words in 256-bit registers.
    Avx2,
    /// 16 lanes in 512-bit registers.
    Avx512,
}

impl Isa {
    /// Every path, single-lane first.
    pub const ALL: [Isa; 6] = [
        Isa::Portable,
        Isa::ShaExtensions,
        Isa::ShaNiX2,
        Isa::ShaNiX4,
        Isa::Avx2,
        Isa::Avx512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "scalar portable",
            Isa::ShaExtensions => "scalar sha-ext",
            Isa::ShaNiX2 => "sha-ni x2",
            Isa::ShaNiX4 => "sha-ni x4",
            Isa::Avx2 => "avx2 x8",
            Isa::Avx512 => "avx512 x16",
        }
    }

    /// The short name `PHSYNC_DIGEST_PATH` and `parse` take.
    pub fn token(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::ShaExtensions => "sha-ext",
            Isa::ShaNiX2 => "sha-ni-x2",
            Isa::ShaNiX4 => "sha-ni-x4",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The path a `token` names (case-insensitive), or an error listing the tokens.
    pub fn parse(token: &str) -> Result<Isa, String> {
        Isa::ALL
            .into_iter()
            .find(|i| i.token().eq_ignore_ascii_case(token.trim()))
            .ok_or_else(|| {
                let known: Vec<&str> = Isa::ALL.iter().map(|i| i.token()).collect();
                format!(
                    "{token:?} is not a digest path (one of: {})",
                    known.join(", ")
                )
            })
    }

    /// Digests one kernel call computes together.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Portable | Isa::ShaExtensions => 1,
            Isa::ShaNiX2 => 2,
            Isa::ShaNiX4 => 4,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::ShaExtensions => has_sha_extensions(),
            #[cfg(target_arch = "x86_64")]
            Isa::ShaNiX2 | Isa::ShaNiX4 => shani::is_available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every ISA this CPU can run, single-lane first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The best single-lane path.
    pub fn scalar() -> Isa {
        if Isa::ShaExtensions.is_available() {
            Isa::ShaExtensions
        } else {
            Isa::Portable
        }
    }

    /// The fastest path for full batches on this CPU: measured on first use (or
    /// `PHSYNC_DIGEST_PATH`), see `batch_path`.
    pub fn best() -> Isa {
        batch_path().isa
    }
}

/// How the CPU's SHA unit runs `sha256rnds2` (two SHA-256 rounds): one dependent chain's
/// latency and the interval at which independent chains issue, both in seconds per
/// instruction, measured now on this core. Their ratio bounds what interleaving digests on the
/// SHA extensions can gain over one latency-bound stream. `None` without x86 SHA extensions.
pub fn sha_ni_round_timing() -> Option<ShaRoundTiming> {
    #[cfg(target_arch = "x86_64")]
    {
        shani::rnds2_timing().map(|(latency, interval)| ShaRoundTiming {
            latency_seconds: latency,
            interval_seconds: interval,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// See `sha_ni_round_timing`.
#[derive(Debug, Clone, Copy)]
pub struct ShaRoundTiming {
    pub latency_seconds: f64,
    pub interval_seconds: f64,
}

/// One key to derive: the NT hash, the salt and the iteration count.
pub struct KeyJob<'a> {
    pub nt: &'a NtHash,
    pub salt: [u8; 10],
    pub iterations: u32,
}

/// Per-lane inputs in the form the SIMD kernels take.
pub(crate) struct LaneInput {
    pub istate: [u32; 8],
    pub ostate: [u32; 8],
    pub first: [u32; 16],
}

impl Drop for LaneInput {
    fn drop(&mut self) {
        self.istate.zeroize();
        self.ostate.zeroize();
    }
}

fn lane_input(job: &KeyJob<'_>) -> LaneInput {
    let mut key = hmac_key(job.nt);
    let (istate, ostate) = hmac_states(&key);
    key.zeroize();
    LaneInput {
        istate,
        ostate,
        first: first_block_words(&job.salt),
    }
}

/// Derive every job's key with `isa` (which must be available), in the order given.
/// Jobs are grouped by iteration count, since all lanes of a register run in lock step;
/// a short last group is padded with idle lanes (SIMD) or runs fewer chains (SHA-NI).
pub fn derive_keys_with(isa: Isa, jobs: &[KeyJob<'_>]) -> Vec<[u8; 32]> {
    assert!(
        isa.is_available(),
        "{} is not available on this CPU",
        isa.name()
    );
    let mut out = vec![[0u8; 32]; jobs.len()];
    if isa.lanes() == 1 {
        let derive = if isa == Isa::ShaExtensions {
            derive_key_sha2
        } else {
            derive_key_portable
        };
        for (o, j) in out.iter_mut().zip(jobs) {
            *o = derive(j.nt, &j.salt, j.iterations);
        }
        return out;
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| jobs[i].iterations);
    for group in order.chunk_by(|&a, &b| jobs[a].iterations == jobs[b].iterations) {
        let iterations = jobs[group[0]].iterations;
        for chunk in group.chunks(isa.lanes()) {
            let inputs: Vec<LaneInput> = chunk.iter().map(|&i| lane_input(&jobs[i])).collect();
            let keys = run_lanes(isa, &inputs, iterations);
            for (&i, k) in chunk.iter().zip(keys) {
                out[i] = k;
            }
        }
    }
    out
}

fn run_lanes(isa: Isa, inputs: &[LaneInput], iterations: u32) -> Vec<[u8; 32]> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: derive_keys_with checked the CPU has the ISA.
        unsafe {
            match isa {
                Isa::Avx2 => return x86::avx2::derive(inputs, iterations),
                Isa::Avx512 => return x86::avx512::derive(inputs, iterations),
                Isa::ShaNiX2 | Isa::ShaNiX4 => return shani::derive(inputs, iterations),
                Isa::Portable | Isa::ShaExtensions => {}
            }
        }
    }
    let _ = (isa, inputs, iterations);
    unreachable!("single-lane jobs never reach the lane kernels")
}

/// Derive keys on the fastest path for the batch (see `PathChoice::for_batch`), spread over
/// all cores.
pub fn derive_keys(jobs: &[KeyJob<'_>]) -> Vec<[u8; 32]> {
    let choice = batch_path();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = jobs.len().div_ceil(threads).max(choice.isa.lanes() * 4);
    if threads == 1 || jobs.len() <= per_thread {
        return derive_keys_with(choice.for_batch(jobs.len()), jobs);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(per_thread)
            .map(|chunk| s.spawn(move || derive_keys_with(choice.for_batch(chunk.len()), chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("digest worker panicked"))
            .collect()
    })
}

/// Digests with fresh random salts and 1000 iterations for many NT hashes at once, on the
/// best path and all cores: what a full sync needs.
pub fn new_random_digests(nts: &[&NtHash]) -> Result<Vec<PhsDigest>, HashError> {
    let jobs = nts
        .iter()
        .map(|nt| {
            Ok(KeyJob {
                nt,
                salt: random_salt()?,
                iterations: DEFAULT_ITERATIONS,
            })
        })
        .collect::<Result<Vec<_>, HashError>>()?;
    derive_keys(&jobs)
        .into_iter()
        .zip(&jobs)
        .map(|(mut key, job)| {
            let digest = PhsDigest::from_parts(job.salt, job.iterations, key);
            key.zeroize();
            digest
        })
        .collect()
}

/// Check many (digest, NT hash) pairs at once on the best path and all cores; each answer
/// is a constant-time comparison.
pub fn verify_nt_hashes(pairs: &[(&PhsDigest, &NtHash)]) -> Vec<bool> {
    let jobs: Vec<KeyJob> = pairs
        .iter()
        .map(|(d, nt)| KeyJob {
            nt,
            salt: *d.salt(),
            iterations: d.iterations(),
        })
        .collect();
    derive_keys(&jobs)
        .into_iter()
        .zip(pairs)
        .map(|(mut key, (d, _))| {
            let same: bool = subtle::ConstantTimeEq::ct_eq(&key[..], &d.key()[..]).into();
            key.zeroize();
            same
        })
        .collect()
}
