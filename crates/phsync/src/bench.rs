//! Digest throughput, measured against a reference computed in the same run: Python's
//! `hashlib.pbkdf2_hmac` (OpenSSL) on the same inputs. Single-threaded figures are per core.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use phsync_hash::{derive_keys, derive_keys_with, Isa, KeyJob, NtHash};

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub path: String,
    pub digests_per_second: f64,
    /// Threads used; 1 means the figure is per core.
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestBench {
    pub iterations: u32,
    pub paths: Vec<Measurement>,
    pub reference: Option<Measurement>,
    pub reference_note: Option<String>,
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

fn measure(seconds: f64, mut round: impl FnMut() -> usize) -> f64 {
    let budget = Duration::from_secs_f64(seconds);
    round(); // warm up caches and the CPU's clock
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < budget {
        done += round();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

const PYTHON_REFERENCE: &str = r#"
import hashlib, sys, time
seconds = float(sys.argv[1]); iterations = int(sys.argv[2])
items = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in (l.split() for l in sys.stdin if l.strip())]
first = [hashlib.pbkdf2_hmac("sha256", p, s, iterations, 32).hex() for p, s in items[:4]]
n = 0; start = time.perf_counter()
while time.perf_counter() - start < seconds:
    for p, s in items:
        hashlib.pbkdf2_hmac("sha256", p, s, iterations, 32)
    n += len(items)
print(n / (time.perf_counter() - start))
print(" ".join(first))
"#;

/// Python/OpenSSL on the same inputs; its first outputs are checked against ours, so the
/// reference measures the same computation.
fn python_reference(
    items: &[(NtHash, [u8; 10])],
    seconds: f64,
    iterations: u32,
    ours: &[[u8; 32]],
) -> Result<f64, String> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_REFERENCE)
        .arg(seconds.to_string())
        .arg(iterations.to_string())
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
    let rate: f64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("python3 reference printed no rate")?;
    let theirs: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ours_hex: Vec<String> = ours.iter().take(theirs.len()).map(hex::encode).collect();
    if theirs.is_empty() || theirs != ours_hex {
        return Err("python3 reference computed different keys; refusing to compare".into());
    }
    Ok(rate)
}

/// Measure every available path single-threaded, the best path on all cores, and the
/// Python reference, each for about `seconds`.
pub fn digest_bench(seconds: f64, iterations: u32) -> DigestBench {
    let items = inputs(256);
    let jobs: Vec<KeyJob> = items
        .iter()
        .map(|(nt, salt)| KeyJob {
            nt,
            salt: *salt,
            iterations,
        })
        .collect();
    let mut paths = Vec::new();
    for isa in Isa::available() {
        let batch = &jobs[..isa.lanes() * 4];
        let rate = measure(seconds, || derive_keys_with(isa, batch).len());
        paths.push(Measurement {
            path: isa.name().into(),
            digests_per_second: rate,
            threads: 1,
        });
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > 1 {
        let rate = measure(seconds, || derive_keys(&jobs).len());
        paths.push(Measurement {
            path: format!("{} (all cores)", Isa::best().name()),
            digests_per_second: rate,
            threads,
        });
    }
    let ours = derive_keys_with(Isa::Portable, &jobs[..4]);
    let (reference, reference_note) =
        match python_reference(&items[..64], seconds, iterations, &ours) {
            Ok(rate) => (
                Some(Measurement {
                    path: "python3 hashlib.pbkdf2_hmac (OpenSSL)".into(),
                    digests_per_second: rate,
                    threads: 1,
                }),
                None,
            ),
            Err(note) => (None, Some(note)),
        };
    DigestBench {
        iterations,
        paths,
        reference,
        reference_note,
    }
}
