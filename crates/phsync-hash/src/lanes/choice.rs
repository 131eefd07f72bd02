//! Which batch path to run. The ranking of AVX-512, AVX2 and interleaved SHA-NI depends on
//! the CPU (AVX-512 frequency licences, the SHA unit's latency and throughput), so instead of
//! a fixed order each available path is timed briefly on first use and the fastest kept for
//! the life of the process. `PHSYNC_DIGEST_PATH` forces a path (tests, or to pin a choice).

use std::sync::OnceLock;
use std::time::Instant;

use super::{derive_keys_with, Isa, KeyJob};
use crate::NtHash;

/// Environment variable that forces the batch path: one of `Isa::token`'s names.
pub const PATH_ENV: &str = "PHSYNC_DIGEST_PATH";

/// The batch path in use and why.
#[derive(Debug, Clone)]
pub struct PathChoice {
    /// The fastest path for full batches (or the forced one).
    pub isa: Isa,
    /// Whether `PHSYNC_DIGEST_PATH` chose it.
    pub forced: bool,
    /// Each measured path's rate on one core, in 1000-iteration digests per second (empty
    /// when forced or when only one path is available).
    pub measured: Vec<(Isa, f64)>,
    /// Why a `PHSYNC_DIGEST_PATH` value was not used, when it was not.
    pub override_note: Option<String>,
}

impl PathChoice {
    /// Choose as `batch_path` does, for the given `PHSYNC_DIGEST_PATH` value: a valid,
    /// available override wins; otherwise every available path is measured.
    pub fn choose(override_value: Option<&str>) -> PathChoice {
        let mut note = None;
        if let Some(value) = override_value.filter(|v| !v.trim().is_empty()) {
            match Isa::parse(value) {
                Ok(isa) if isa.is_available() => {
                    return PathChoice {
                        isa,
                        forced: true,
                        measured: Vec::new(),
                        override_note: None,
                    }
                }
                Ok(isa) => {
                    note = Some(format!(
                        "{PATH_ENV}={value}: {} is not available on this CPU; chose by measurement",
                        isa.name()
                    ))
                }
                Err(e) => note = Some(format!("{PATH_ENV}: {e}; chose by measurement")),
            }
        }
        let candidates = Isa::available();
        let measured = if candidates.len() > 1 {
            measure(&candidates)
        } else {
            Vec::new()
        };
        let isa = measured
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(candidates[0], |m| m.0);
        PathChoice {
            isa,
            forced: false,
            measured,
            override_note: note,
        }
    }

    /// The path for a batch of `jobs` digests: the one that needs the least time for that
    /// many, counting a partly filled kernel call as a full one. Large batches get the
    /// fastest path; one or two digests do not wait for 16 lanes.
    pub fn for_batch(&self, jobs: usize) -> Isa {
        if self.forced || self.measured.is_empty() {
            return self.isa;
        }
        let cost = |&(isa, rate): &(Isa, f64)| {
            jobs.div_ceil(isa.lanes()).max(1) as f64 * isa.lanes() as f64 / rate
        };
        self.measured
            .iter()
            .min_by(|a, b| cost(a).total_cmp(&cost(b)))
            .map_or(self.isa, |m| m.0)
    }
}

/// The process's batch path: chosen on first call (a few milliseconds of measurement, or
/// `PHSYNC_DIGEST_PATH`), then cached.
pub fn batch_path() -> &'static PathChoice {
    static CHOICE: OnceLock<PathChoice> = OnceLock::new();
    CHOICE.get_or_init(|| PathChoice::choose(std::env::var(PATH_ENV).ok().as_deref()))
}

/// Time every candidate on the same synthetic batch (48 jobs fill every path's lanes
/// exactly; 32 iterations keep one measurement well under a millisecond on the fast paths).
/// Rounds alternate between paths and keep each path's fastest, so a burst of load from
/// another process does not decide the choice.
fn measure(candidates: &[Isa]) -> Vec<(Isa, f64)> {
    const JOBS: usize = 48;
    const ITERATIONS: u32 = 32;
    const ROUNDS: usize = 5;
    let nt = NtHash::from_bytes([0x5a; 16]);
    let jobs: Vec<KeyJob> = (0..JOBS)
        .map(|i| KeyJob {
            nt: &nt,
            salt: [i as u8; 10],
            iterations: ITERATIONS,
        })
        .collect();
    let mut fastest = vec![f64::INFINITY; candidates.len()];
    for _ in 0..ROUNDS {
        for (isa, best) in candidates.iter().zip(fastest.iter_mut()) {
            let start = Instant::now();
            std::hint::black_box(derive_keys_with(*isa, std::hint::black_box(&jobs)));
            *best = best.min(start.elapsed().as_secs_f64());
        }
    }
    let digests = JOBS as f64 * f64::from(ITERATIONS) / 1000.0;
    candidates
        .iter()
        .zip(fastest)
        .map(|(&isa, secs)| (isa, digests / secs.max(1e-9)))
        .collect()
}
