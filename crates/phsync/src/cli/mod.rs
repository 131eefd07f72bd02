//! Argument parsing and dispatch. Exit codes: 0 success, 1 a negative answer (mismatch,
//! refused sign-in), 2 an error, with one line on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        Command::Events(args) => sync::events(args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(1),
        Err(message) => {
            eprintln!("phsync: error: {message}");
            ExitCode::from(2)
        }
    }
}
