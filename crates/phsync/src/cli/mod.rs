//! Argument parsing and dispatch. Exit codes: 0 success, 1 a negative answer (mismatch,
//! refused sign-in), 2 an error, with one line on stderr.

use std::borrow::Cow;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod bench;
mod cloud;
mod directory;
mod drsr;
mod hash;
mod stdin;
mod sync;

#[derive(Parser)]
#[command(
    name = "phsync",
    version,
    about = "Password Hash Synchronization: AD NT hashes to cloud digests, byte-exact with Entra Connect",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// NT hashes and PHS digests (passwords are read from stdin, never from arguments)
    Hash {
        #[command(subcommand)]
        command: hash::HashCommand,
    },
    /// The cloud tenant: users, password resets, sign-ins, audit, policy
    Cloud(cloud::CloudArgs),
    /// Throughput benchmarks, each with a reference measured in the same run
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// The AD directory over LDAP: in-scope users, one user, the DC's RootDSE
    Directory {
        #[command(subcommand)]
        command: directory::DirectoryCommand,
    },
    /// Run one sync cycle (or sync the named users) and exit: for scheduled jobs
    Sync(sync::SyncArgs),
    /// Sync every interval until SIGTERM or Ctrl-C
    Run(sync::RunArgs),
    /// Cycle state, or one user's diagnostics
    Status(sync::StatusArgs),
    /// Test every connection a sync cycle needs (config, DC, replication rights, tenant);
    /// exit 1 if a check failed
    Check(sync::CheckArgs),
    /// The engine's event log, oldest first, without opening the engine
    Events(sync::EventsArgs),
    /// Password quality: empty, weak, shared and leaked passwords and risky password settings
    /// of the synced users (or every account with --all), never a hash; exit 1 if any
    /// account has a finding
    Audit(audit::AuditArgs),
    /// Debug view of MS-DRSR replication from a domain controller (hashes hidden unless --show-hashes)
    Drsr {
        #[command(subcommand)]
        command: drsr::DrsrCommand,
    },
}

/// A command's outcome: success, or a "no" that is not an error (exit 1).
pub enum Outcome {
    Success,
    Negative,
}

pub type CliResult = Result<Outcome, String>;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash { command } => hash::run(command),
        Command::Cloud(args) => cloud::run(args),
        Command::Bench { command } => bench::run(command),
        Command::Directory { command } => directory::run(command),
        Command::Drsr { command } => drsr::run(command),
        Command::Sync(args) => sync::sync(args),
        Command::Run(args) => sync::run(args),
        Command::Status(args) => sync::status(args),
        Command::Check(args) => sync::check(args),
        Command::Audit(args) => audit::run(args),
        Command::Events(args) => sync::events(args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(1),
        Err(message) => {
            eprintln!("phsync: error: {}", printable(&message));
            ExitCode::from(2)
        }
    }
}

/// `value` as pretty JSON on stdout, written as it is serialized: a 100,000-user report is
/// never built as one string first. A closed pipe ends the output quietly, as `head` expects.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("phsync: cannot write the output: {e}");
        }
    }
}

/// `s` fit for a terminal line. Names, reasons and messages come from the directory, the
/// tenant or a service, and a hostile one must not move the cursor, recolor the screen,
/// forge a line or reorder text: control characters (C0 with TAB, CR and LF, DEL, C1 with
/// CSI), the line and paragraph separators and the bidi embeddings, overrides and isolates
/// become `\u{..}`, and `\` becomes `\\` so every escape is unambiguous. Plain text is
/// borrowed unchanged. JSON output needs none of this: serde escapes control characters.
pub fn printable(s: &str) -> Cow<'_, str> {
    fn escaped(c: char) -> bool {
        c.is_control()
            || c == '\\'
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.contains(escaped) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if escaped(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_escapes_what_a_terminal_would_act_on() {
        assert!(matches!(
            printable("dana@phs.test Dana Ü"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("a\x1b[31mb\tc\r\nd\u{7f}\u{9b}e\\f\u{202e}g\u{2028}\u{2069}"),
            "a\\u{1b}[31mb\\u{9}c\\u{d}\\u{a}d\\u{7f}\\u{9b}e\\\\f\\u{202e}g\\u{2028}\\u{2069}"
        );
    }
}
