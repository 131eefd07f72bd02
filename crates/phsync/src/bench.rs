//! Digest throughput, measured against references computed in the same run: Python's
//! `hashlib.pbkdf2_hmac` (OpenSSL) on the same inputs, and the single-stream SHA-256 limit
//! (the fastest one-stream SHA-256 here, the `sha2` crate or OpenSSL, hashing a large buffer:
//! what any one-digest-at-a-time PBKDF2 can reach at best). Single-threaded figures are per
//! core. Paths are measured in short alternating slices and each is summarised by its
//! fastest slice (as the references are), so a burst of load from another process on a
//! shared machine does not decide a ratio.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use phsync_hash::{
    batch_path, derive_keys, derive_keys_with, sha_ni_round_timing, Isa, KeyJob, NtHash, PATH_ENV,
};

/// What the interleaved SHA-NI path should reach against the single-stream limit (issue 16).
pub const GOAL_VS_LIMIT: f64 = 1.5;

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub path: String,
    pub digests_per_second: f64,
    /// Threads used; 1 means the figure is per core.
    pub threads: usize,
}

/// One single-stream SHA-256 measurement over a large buffer.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRate {
    pub source: String,
    pub bytes_per_second: f64,
}

/// The single-stream limit: the fastest one-stream SHA-256 measured, as digests per second.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub source: String,
    pub bytes_per_second: f64,
    /// 64-byte blocks per second.
    pub compressions_per_second: f64,
    /// Compressions per second / (2 × iterations): the most one PBKDF2 chain can do.
    pub digests_per_second: f64,
    pub streams: Vec<StreamRate>,
}

/// The batch path the library picked in this process, and how.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub path: String,
    /// "measured" or "forced by PHSYNC_DIGEST_PATH".
    pub how: String,
    /// Startup measurement, 1000-iteration digests per second per path.
    pub startup_rates: Vec<Measurement>,
    pub note: Option<String>,
}

/// The SHA unit's `sha256rnds2`: one chain's latency and the interval between independent
/// ones, so `latency_ns / interval_ns` is the most interleaving can gain over one stream.
#[derive(Debug, Clone, Serialize)]
pub struct ShaUnit {
    pub latency_ns: f64,
    pub interval_ns: f64,
    pub interleaving_ceiling: f64,
    /// 2 × iterations × 32 `sha256rnds2` per digest at one per interval: the most any
    /// SHA-NI path can reach per core.
    pub max_digests_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestBench {
    pub iterations: u32,
    pub paths: Vec<Measurement>,
    pub reference: Option<Measurement>,
    pub reference_note: Option<String>,
    pub limit: Limit,
    pub chosen: Choice,
    /// The fastest interleaved SHA-NI path and its rate over the limit (when the CPU has it).
    pub interleaved: Option<Measurement>,
    pub interleaved_vs_limit: Option<f64>,
    pub chosen_vs_limit: Option<f64>,
    pub goal_vs_limit: f64,
    pub sha_unit: Option<ShaUnit>,
}

fn inputs(count: usize) -> Vec<(NtHash, [u8; 10])> {
    (0..count)
        .map(|i| {
            let nt = NtHash::from_password(&format!("bench-password-{i}")).expect("short password");
            let mut salt = [0u8; 10];
            salt[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (nt, salt)
        })
        .collect()
}

/// Rates of several workloads, each `round` doing one short piece of work (about a
/// millisecond) and returning how many units it did. Rounds alternate between the workloads
/// until each has run about `seconds`; each workload's rate is its fastest round. On a
/// machine shared with other processes, a round that was not preempted shows what the core
/// can do, and alternating exposes every workload to the same conditions.
fn measure_alternating(seconds: f64, rounds: &mut [&mut dyn FnMut() -> usize]) -> Vec<f64> {
    let mut best = vec![0f64; rounds.len()];
    let mut spent = vec![0f64; rounds.len()];
    for round in rounds.iter_mut() {
        round(); // warm up caches and the CPU's clock
    }
    while spent.iter().any(|&s| s < seconds) {
        for ((round, best), spent) in rounds.iter_mut().zip(&mut best).zip(&mut spent) {
            if *spent >= seconds {
                continue;
            }
            let start = Instant::now();
            let done = round();
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            *spent += secs;
            *best = best.max(done as f64 / secs);
        }
    }
    best
}

/// The buffer the single-stream rate is measured on: large enough that per-call overhead
/// vanishes (16,384 compressions), small enough to stay in L2 (1 MiB).
fn stream_buffer() -> Vec<u8> {
    (0..1usize << 20).map(|i| (i % 251) as u8).collect()
}

const PYTHON_REFERENCE: &str = r#"
import hashlib, sys, time
seconds, iterations, stream_seconds = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
items = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in (l.split() for l in sys.stdin if l.strip())]
first = [hashlib.pbkdf2_hmac("sha256", p, s, iterations, 32).hex() for p, s in items[:4]]
buf = bytes(i % 251 for i in range(1 << 20))
def pbkdf2_round(i):
    p, s = items[i % len(items)]
    hashlib.pbkdf2_hmac("sha256", p, s, iterations, 32)
    return 1
def stream_round(i):
    hashlib.sha256(buf).digest()
    return len(buf)
work = [(pbkdf2_round, seconds), (stream_round, stream_seconds)]
best, spent = [0.0, 0.0], [0.0, 0.0]
pbkdf2_round(0); stream_round(0)
i = 0
while any(s < budget for s, (_, budget) in zip(spent, work)):
    for k, (round, budget) in enumerate(work):
        if spent[k] >= budget:
            continue
        start = time.perf_counter(); n = round(i); t = max(time.perf_counter() - start, 1e-9)
        spent[k] += t; best[k] = max(best[k], n / t)
    i += 1
print(best[0])
print(best[1])
print(hashlib.sha256(buf).hexdigest())
print(" ".join(first))
"#;

/// What the Python/OpenSSL process measured: PBKDF2 digests/s on our inputs, and SHA-256
/// bytes/s over the stream buffer (each its fastest round, as ours).
struct PythonRates {
    pbkdf2: f64,
    stream: f64,
}

/// Python/OpenSSL on the same inputs; its first keys and its SHA-256 of the stream buffer
/// are checked against ours, so the references measure the same computations.
fn python_reference(
    items: &[(NtHash, [u8; 10])],
    seconds: f64,
    stream_seconds: f64,
    iterations: u32,
    ours: &[[u8; 32]],
) -> Result<PythonRates, String> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_REFERENCE)
        .arg(seconds.to_string())
        .arg(iterations.to_string())
        .arg(stream_seconds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 not available ({e}); reference skipped"))?;
    let mut stdin = child.stdin.take().expect("piped");
    for (nt, salt) in items {
        let key: String = nt
            .to_upper_hex()
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(stdin, "{key} {}", hex::encode(salt)).map_err(|e| e.to_string())?;
    }
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "python3 reference failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let mut rate = |what: &str| -> Result<f64, String> {
        lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .filter(|r: &f64| *r > 0.0)
            .ok_or_else(|| format!("python3 reference printed no {what} rate"))
    };
    let pbkdf2 = rate("PBKDF2")?;
    let stream = rate("SHA-256")?;
    if lines.next().unwrap_or_default().trim() != hex::encode(Sha256::digest(stream_buffer())) {
        return Err("python3 hashed the stream buffer differently; refusing to compare".into());
    }
    let theirs: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ours_hex: Vec<String> = ours.iter().take(theirs.len()).map(hex::encode).collect();
    if theirs.is_empty() || theirs != ours_hex {
        return Err("python3 reference computed different keys; refusing to compare".into());
    }
    Ok(PythonRates { pbkdf2, stream })
}

/// Measure every available path single-threaded (alternating with the `sha2` crate's
/// single-stream SHA-256), the chosen path on all cores, and the Python references, each for
/// about `seconds` (Python's SHA-256 stream for half that).
pub fn digest_bench(seconds: f64, iterations: u32) -> DigestBench {
    let chosen = {
        let c = batch_path();
        Choice {
            path: c.isa.name().into(),
            how: if c.forced {
                format!("forced by {PATH_ENV}")
            } else {
                "measured".into()
            },
            startup_rates: c
                .measured
                .iter()
                .map(|&(isa, rate)| Measurement {
                    path: isa.name().into(),
                    digests_per_second: rate,
                    threads: 1,
                })
                .collect(),
            note: c.override_note.clone(),
        }
    };
    let sha_unit = sha_ni_round_timing().map(|t| ShaUnit {
        latency_ns: t.latency_seconds * 1e9,
        interval_ns: t.interval_seconds * 1e9,
        interleaving_ceiling: t.latency_seconds / t.interval_seconds,
        max_digests_per_second: 1.0 / (2.0 * f64::from(iterations) * 32.0 * t.interval_seconds),
    });
    let items = inputs(256);
    let jobs: Vec<KeyJob> = items
        .iter()
        .map(|(nt, salt)| KeyJob {
            nt,
            salt: *salt,
            iterations,
        })
        .collect();
    let isas = Isa::available();
    let buffer = stream_buffer();
    let mut rounds: Vec<Box<dyn FnMut() -> usize + '_>> = isas
        .iter()
        .map(|&isa| {
            let batch = &jobs[..isa.lanes()];
            Box::new(move || derive_keys_with(isa, batch).len()) as Box<dyn FnMut() -> usize>
        })
        .collect();
    rounds.push(Box::new(|| {
        std::hint::black_box(Sha256::digest(std::hint::black_box(&buffer)));
        buffer.len()
    }));
    let mut refs: Vec<&mut dyn FnMut() -> usize> =
        rounds.iter_mut().map(|r| &mut **r as _).collect();
    let mut rates = measure_alternating(seconds, &mut refs);
    let sha2_stream = rates.pop().expect("stream rate");
    let paths: Vec<Measurement> = isas
        .iter()
        .zip(rates)
        .map(|(isa, rate)| Measurement {
            path: isa.name().into(),
            digests_per_second: rate,
            threads: 1,
        })
        .collect();
    let mut all_paths = paths.clone();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > 1 {
        // All 256 jobs, so every thread gets a full share (see `derive_keys`).
        let rate = measure_alternating(seconds, &mut [&mut || derive_keys(&jobs).len()])[0];
        all_paths.push(Measurement {
            path: format!("{} (all cores)", Isa::best().name()),
            digests_per_second: rate,
            threads,
        });
    }

    let mut streams = vec![StreamRate {
        source: "sha2 crate (SHA extensions when present)".into(),
        bytes_per_second: sha2_stream,
    }];
    let ours = derive_keys_with(Isa::Portable, &jobs[..4]);
    let (reference, reference_note) =
        match python_reference(&items[..64], seconds, seconds / 2.0, iterations, &ours) {
            Ok(rates) => {
                streams.push(StreamRate {
                    source: "python3 hashlib.sha256 (OpenSSL)".into(),
                    bytes_per_second: rates.stream,
                });
                (
                    Some(Measurement {
                        path: "python3 hashlib.pbkdf2_hmac (OpenSSL)".into(),
                        digests_per_second: rates.pbkdf2,
                        threads: 1,
                    }),
                    None,
                )
            }
            Err(note) => (None, Some(note)),
        };
    let fastest = streams
        .iter()
        .max_by(|a, b| a.bytes_per_second.total_cmp(&b.bytes_per_second))
        .expect("the sha2 stream is always measured");
    let compressions = fastest.bytes_per_second / 64.0;
    let limit = Limit {
        source: fastest.source.clone(),
        bytes_per_second: fastest.bytes_per_second,
        compressions_per_second: compressions,
        digests_per_second: compressions / (2.0 * f64::from(iterations)),
        streams,
    };
    let rate_of = |name: &str| {
        paths
            .iter()
            .find(|m| m.path == name)
            .map(|m| m.digests_per_second)
    };
    let interleaved = paths
        .iter()
        .filter(|m| m.path.starts_with("sha-ni"))
        .max_by(|a, b| a.digests_per_second.total_cmp(&b.digests_per_second))
        .cloned();
    DigestBench {
        iterations,
        interleaved_vs_limit: interleaved
            .as_ref()
            .map(|m| m.digests_per_second / limit.digests_per_second),
        chosen_vs_limit: rate_of(&chosen.path).map(|r| r / limit.digests_per_second),
        interleaved,
        paths: all_paths,
        reference,
        reference_note,
        limit,
        chosen,
        goal_vs_limit: GOAL_VS_LIMIT,
        sha_unit,
    }
}
