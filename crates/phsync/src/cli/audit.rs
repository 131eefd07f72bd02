//! `phsync audit`: the password-quality audit, as text for people or JSON for tools.
//! Exit 0 when no account has a finding, 1 when some do, 2 on an error.

use std::path::PathBuf;

use clap::Args;
use phsync_engine::audit::{AuditOptions, AuditRun};

use super::{printable, CliResult, Outcome};

#[derive(Args)]
pub struct AuditArgs {
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Have I Been Pwned's "NTLM ordered by hash" file (HASH:COUNT lines), or any sorted
    /// list of NT hashes; looked up in place, never loaded
    #[arg(long, value_name = "FILE")]
    leaked_hashes: Option<PathBuf>,
    /// A text file of weak passwords, one per line (UTF-8); hashed at load
    #[arg(long, value_name = "FILE")]
    weak_passwords: Option<PathBuf>,
    /// Every user and computer account of the domain (disabled ones too), not only the
    /// users in the sync scope
    #[arg(long)]
    all: bool,
    /// One JSON document instead of the text report
    #[arg(long)]
    json: bool,
}

pub fn run(args: AuditArgs) -> CliResult {
    super::sync::init_logging_quiet();
    let settings = phsync_engine::Settings::load(&args.config).map_err(|e| e.to_string())?;
    let options = AuditOptions {
        all_accounts: args.all,
        leaked_hashes: args.leaked_hashes,
        weak_passwords: args.weak_passwords,
    };
    let run = phsync_engine::audit::run(&settings, &options).map_err(|e| e.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&run).expect("an audit report serializes")
        );
    } else {
        print!("{}", text(&run));
    }
    Ok(if run.report.has_findings() {
        Outcome::Negative
    } else {
        Outcome::Success
    })
}

fn text(run: &AuditRun) -> String {
    let scope = match run.scope {
        "all_accounts" => "every account of the domain",
        _ => "users in the sync scope",
    };
    let mut s = phsync_audit::render_text(&run.report, scope, &|t| printable(t).into_owned());
    s.push('\n');
    if let (Some(n), Some(skipped)) = (run.weak_passwords, run.weak_lines_skipped) {
        s.push_str(&format!(
            "Weak-password dictionary: {n} distinct passwords ({skipped} lines skipped: not UTF-8 or too long)\n"
        ));
    }
    if run.scope == "sync_scope" {
        s.push_str("Computer accounts are not in the sync scope; --all audits them (default computer password) and every other account.\n");
    }
    s.push_str(&format!(
        "Read from the DC in {} ms, checked in {} ms.\n",
        run.replication_ms, run.analysis_ms
    ));
    s
}
