//! `phsync bench ...`: throughput figures with a same-run reference.

use crate::bench::digest_bench;
use clap::Subcommand;

use super::{CliResult, Outcome};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// PHS digests per second per core: every SIMD path, scalar, and Python/OpenSSL
    Digest {
        /// Seconds to measure each path
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// PBKDF2 iterations per digest
        #[arg(long, default_value_t = 1000)]
        iterations: u32,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: BenchCommand) -> CliResult {
    let BenchCommand::Digest {
        seconds,
        iterations,
        json,
    } = command;
    if !(0.05..=600.0).contains(&seconds) || iterations == 0 {
        return Err("--seconds must be 0.05..600 and --iterations at least 1".into());
    }
    let bench = digest_bench(seconds, iterations);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&bench).expect("serializes")
        );
        return Ok(Outcome::Success);
    }
    println!("PHS digest throughput, PBKDF2-HMAC-SHA256 x {iterations}, {seconds} s per path");
    let reference = bench.reference.as_ref().map(|r| r.digests_per_second);
    let ratio = |rate: f64, threads: usize| match reference {
        Some(r) => format!(
            "{:>7.2}x reference{}",
            rate / r,
            if threads > 1 {
                " (all cores vs one)"
            } else {
                ""
            }
        ),
        None => String::new(),
    };
    for m in &bench.paths {
        let unit = if m.threads == 1 {
            "/s/core".to_string()
        } else {
            format!("/s on {} threads", m.threads)
        };
        println!(
            "  {:<28} {:>10.0} digests{unit:<16} {}",
            m.path,
            m.digests_per_second,
            ratio(m.digests_per_second, m.threads)
        );
    }
    match (&bench.reference, &bench.reference_note) {
        (Some(r), _) => println!(
            "  {:<28} {:>10.0} digests/s/core   (reference)",
            r.path, r.digests_per_second
        ),
        (None, Some(note)) => println!("  reference: {note}"),
        (None, None) => {}
    }
    Ok(Outcome::Success)
}
