//! `phsync bench ...`: throughput figures with a same-run reference.

use crate::bench::{digest_bench, DigestBench};
use clap::Subcommand;

use super::{CliResult, Outcome};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// PHS digests per second per core: every SIMD and SHA-NI path, scalar, the single-stream
    /// SHA-256 limit and Python/OpenSSL, all measured in the same run
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
    } else {
        print_table(&bench, seconds);
    }
    Ok(Outcome::Success)
}

fn print_table(bench: &DigestBench, seconds: f64) {
    let iterations = bench.iterations;
    println!("PHS digest throughput, PBKDF2-HMAC-SHA256 x {iterations}, {seconds} s per path");
    let limit = &bench.limit;
    let others: Vec<String> = limit
        .streams
        .iter()
        .filter(|s| s.source != limit.source)
        .map(|s| format!("{} {:.3} GB/s", s.source, s.bytes_per_second / 1e9))
        .collect();
    println!(
        "single-stream SHA-256 limit: {:.3} GB/s ({}{}{}) = {:.2} M compressions/s \
         = {:.0} digests/s/core at {} compressions each",
        limit.bytes_per_second / 1e9,
        limit.source,
        if others.is_empty() { "" } else { "; " },
        others.join("; "),
        limit.compressions_per_second / 1e6,
        limit.digests_per_second,
        2 * iterations,
    );
    let reference = bench.reference.as_ref().map(|r| r.digests_per_second);
    println!(
        "  {:<38} {:>10} {:<22} {:>9} {:>13}",
        "path", "digests", "", "vs limit", "vs OpenSSL"
    );
    for m in &bench.paths {
        let unit = if m.threads == 1 {
            "/s/core".to_string()
        } else {
            format!("/s on {} threads", m.threads)
        };
        let vs_limit = if m.threads == 1 {
            format!("{:.2}x", m.digests_per_second / limit.digests_per_second)
        } else {
            String::new()
        };
        let vs_reference = reference
            .map(|r| format!("{:.2}x", m.digests_per_second / r))
            .unwrap_or_default();
        println!(
            "  {:<38} {:>10.0} {unit:<22} {vs_limit:>9} {vs_reference:>13}",
            m.path, m.digests_per_second
        );
    }
    match (&bench.reference, &bench.reference_note) {
        (Some(r), _) => println!(
            "  {:<38} {:>10.0} {:<22} {:>9} {:>13}",
            r.path,
            r.digests_per_second,
            "/s/core",
            format!("{:.2}x", r.digests_per_second / limit.digests_per_second),
            "(reference)"
        ),
        (None, Some(note)) => println!("  reference: {note}"),
        (None, None) => {}
    }
    let chosen = &bench.chosen;
    let startup: Vec<String> = chosen
        .startup_rates
        .iter()
        .map(|m| format!("{} {:.0}", m.path, m.digests_per_second))
        .collect();
    println!(
        "batch path: {} ({}{}{}){}",
        chosen.path,
        chosen.how,
        if startup.is_empty() { "" } else { ": " },
        startup.join(", "),
        bench
            .chosen_vs_limit
            .map(|r| format!(", {r:.2}x the single-stream limit"))
            .unwrap_or_default()
    );
    if let Some(note) = &chosen.note {
        println!("  note: {note}");
    }
    match (&bench.interleaved, bench.interleaved_vs_limit) {
        (Some(m), Some(ratio)) => println!(
            "interleaved SHA-NI: {} at {ratio:.2}x the single-stream limit (goal >= {:.1}x: {})",
            m.path,
            bench.goal_vs_limit,
            if ratio >= bench.goal_vs_limit {
                "met"
            } else {
                "NOT met"
            }
        ),
        _ => println!("interleaved SHA-NI: not available on this CPU"),
    }
    if let Some(unit) = &bench.sha_unit {
        println!(
            "SHA unit: sha256rnds2 latency {:.2} ns, one issued every {:.2} ns with 4 chains \
             ({:.2}x): no SHA-NI path can pass {:.0} digests/s/core = {:.2}x the limit",
            unit.latency_ns,
            unit.interval_ns,
            unit.interleaving_ceiling,
            unit.max_digests_per_second,
            unit.max_digests_per_second / limit.digests_per_second
        );
    }
}
