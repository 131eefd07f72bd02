//! Leaked-hash lists for the tests of issue 18, written by the test (never committed).

use std::io::Write;
use std::path::Path;

use phsync_hash::NtHash;

/// Write `path` in Have I Been Pwned's "NTLM ordered by hash" format (`HASH:COUNT`, upper
/// case, CRLF, sorted): the NT hashes of `passwords` with their breach counts, among
/// `filler` made-up hashes (deterministic, so a failure reproduces).
pub fn write_hibp_list(path: &Path, passwords: &[(&str, u64)], filler: usize) {
    let mut lines: Vec<String> = passwords
        .iter()
        .map(|(pw, n)| {
            let hex = NtHash::from_password(pw).unwrap().to_upper_hex();
            format!("{}:{n}", hex.as_str())
        })
        .collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in 0..filler {
        lines.push(format!("{:016X}{:016X}:{}", next(), next(), i % 1000 + 1));
    }
    lines.sort();
    lines.dedup_by(|a, b| a[..32] == b[..32]);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in &lines {
        write!(out, "{l}\r\n").unwrap();
    }
    out.flush().unwrap();
}
