//! The leaked-hash list at scale: a generated list in Have I Been Pwned's "NTLM ordered by
//! hash" format (`HASH:COUNT` CRLF lines, sorted; 20 million lines by default, about
//! 0.8 GB), looked up in place by `LeakedHashes` (memory map, binary search):
//! - lookups per second for 100,000 hashes (half in the list), against the same lookups
//!   by binary search in a sorted in-memory `Vec` of all the hashes (the reference,
//!   measured in the same run: the ideal a list that fits in memory would give);
//! - the time to audit the lab domain (every account, `--all`) with that list, whose lines
//!   include the lab admin's password (checked: reported with its breach count);
//! - the peak RSS of the lookups and the audit, which must stay far below the file's size
//!   (asserted: under a quarter of it; what stays resident is the 2 MiB windows of the
//!   lookups in flight, whatever the file's size). The reference `Vec` is built afterwards.
//!
//! The file is deleted at the end, also on failure.
//!
//!   cargo bench --bench audit_leaked
//!   PHSYNC_BENCH_LEAKED_LINES (20000000), PHSYNC_BENCH_LOOKUPS (100000)

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use phsync_audit::{FindingKind, LeakedHashes};
use phsync_engine::audit::AuditOptions;
use phsync_hash::NtHash;
use phsync_testkit::audit_fixture::{AuditFixture, ADMIN_BREACH_COUNT};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The i-th of n sorted pseudo-random hashes: slot i of 2^128 / n, at a random offset.
fn hash_at(i: u64, n: u64) -> u128 {
    let slot = u128::MAX / n as u128;
    let offset = ((splitmix(i) as u128) << 64 | splitmix(i ^ 0xA5A5) as u128) % slot;
    i as u128 * slot + offset
}

fn count_at(i: u64) -> u64 {
    // HIBP counts run from 1 to tens of millions: lines of varying length.
    1 + splitmix(i.wrapping_mul(31)) % (1 << (splitmix(i) % 24))
}

/// /proc/self/status VmHWM (peak RSS) in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Start a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Remove(PathBuf);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_hex(out: &mut Vec<u8>, v: u128) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in v.to_be_bytes() {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn main() {
    let n = env_or("PHSYNC_BENCH_LEAKED_LINES", 20_000_000).max(1000);
    let lookups = env_or("PHSYNC_BENCH_LOOKUPS", 100_000).max(2);

    let fixture = AuditFixture::new("i18a-bench");
    let admin_hash = u128::from_be_bytes(
        *NtHash::from_password(&fixture.leaked_password)
            .unwrap()
            .as_bytes(),
    );

    // Generate: sorted by construction, the lab admin's hash merged in at its place.
    let path =
        phsync_testkit::target_dir().join(format!("bench-leaked-ntlm-{}.txt", std::process::id()));
    let _remove = Remove(path.clone());
    let started = Instant::now();
    {
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
        let mut line = Vec::with_capacity(64);
        let mut admin_written = false;
        for i in 0..n {
            let v = hash_at(i, n);
            if !admin_written && admin_hash <= v {
                if admin_hash != v {
                    line.clear();
                    write_hex(&mut line, admin_hash);
                    line.extend_from_slice(format!(":{ADMIN_BREACH_COUNT}\r\n").as_bytes());
                    w.write_all(&line).unwrap();
                }
                admin_written = true;
            }
            line.clear();
            write_hex(&mut line, v);
            line.push(b':');
            line.extend_from_slice(count_at(i).to_string().as_bytes());
            line.extend_from_slice(b"\r\n");
            w.write_all(&line).unwrap();
        }
        if !admin_written {
            line.clear();
            write_hex(&mut line, admin_hash);
            line.extend_from_slice(format!(":{ADMIN_BREACH_COUNT}\r\n").as_bytes());
            w.write_all(&line).unwrap();
        }
        w.flush().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "leaked-hash list: {n} lines + the lab admin's, {:.0} MB, generated in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // The keys: even ones in the list, odd ones (random) almost surely not.
    let keys: Vec<(u128, Option<u64>)> = (0..lookups)
        .map(|j| {
            let r = splitmix(j ^ 0x5EED);
            if j % 2 == 0 {
                let i = r % n;
                (hash_at(i, n), Some(i))
            } else {
                ((r as u128) << 64 | splitmix(r) as u128, None)
            }
        })
        .collect();
    let nt_keys: Vec<NtHash> = keys
        .iter()
        .map(|(v, _)| NtHash::from_bytes(v.to_be_bytes()))
        .collect();

    reset_peak_rss();
    let rss_before = peak_rss();
    let started = Instant::now();
    let list = LeakedHashes::open(&path).expect("open the generated list");
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let mut found = 0u64;
    for (k, (_, i)) in nt_keys.iter().zip(&keys) {
        let got = list.try_lookup(k).expect("lookup");
        match i {
            Some(i) => {
                assert_eq!(got.and_then(|e| e.breach_count), Some(count_at(*i)));
                found += 1;
            }
            None => assert!(got.is_none() || found > 0),
        }
    }
    let mmap_secs = started.elapsed().as_secs_f64();
    let mmap_rate = lookups as f64 / mmap_secs;
    drop(list);
    let lookup_peak = peak_rss();
    reset_peak_rss();

    // The lab domain, every account, with this list and the fixture's dictionary.
    let settings = phsync_engine::Settings::load(&fixture.sync.config).unwrap();
    let options = AuditOptions {
        all_accounts: true,
        leaked_hashes: Some(path.clone()),
        weak_passwords: Some(fixture.weak.clone()),
    };
    let started = Instant::now();
    let run = phsync_engine::audit::run(&settings, &options).expect("audit the lab domain");
    let audit_secs = started.elapsed().as_secs_f64();
    let leaked = run.report.finding(FindingKind::LeakedPassword);
    let admin_sam = fixture.expected["leaked_password"][0].clone();
    let admin = leaked
        .accounts
        .iter()
        .find(|a| a.sam_account_name == admin_sam)
        .expect("the lab admin is in the leaked finding");
    assert_eq!(admin.breach_count, Some(ADMIN_BREACH_COUNT));
    let audit_peak = peak_rss();
    let peak = lookup_peak.max(audit_peak);

    // Reference: the same lookups in a sorted in-memory Vec of every hash.
    let all: Vec<u128> = (0..n).map(|i| hash_at(i, n)).collect();
    let started = Instant::now();
    let mut ref_found = 0u64;
    for (v, _) in &keys {
        if all.binary_search(v).is_ok() {
            ref_found += 1;
        }
    }
    let vec_rate = lookups as f64 / started.elapsed().as_secs_f64();
    assert_eq!(ref_found, found);

    println!(
        "  open and check the list     {open_ms:>10.1} ms (first/last 1,000 lines and 256 probes)"
    );
    println!(
        "  lookups, memory-mapped file {mmap_rate:>10.0} /s  ({lookups} lookups, {found} found)  {:.2}x reference",
        mmap_rate / vec_rate
    );
    println!("  lookups, in-memory Vec      {vec_rate:>10.0} /s  (reference, {:.0} MB of hashes in memory)", (n * 16) as f64 / 1e6);
    println!(
        "  audit of the lab domain     {audit_secs:>10.2} s   ({} accounts, {} with findings; DC read {} ms, checks {} ms)",
        run.report.accounts_audited, run.report.accounts_with_findings, run.replication_ms, run.analysis_ms
    );
    println!(
        "  peak RSS, lookups           {:>10.1} MB  ({:.1}% of the {:.0} MB file; {:.1} MB before opening it)",
        lookup_peak as f64 / 1e6,
        100.0 * lookup_peak as f64 / size as f64,
        size as f64 / 1e6,
        rss_before as f64 / 1e6
    );
    println!(
        "  peak RSS, lab domain audit  {:>10.1} MB  ({:.1}% of the file)",
        audit_peak as f64 / 1e6,
        100.0 * audit_peak as f64 / size as f64
    );
    assert!(
        peak < size / 4,
        "peak RSS {peak} bytes is not far below the list's {size} bytes"
    );
}
