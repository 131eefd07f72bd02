//! `phsync sync | run | status | check | events`: the engine from the shell and from
//! schedulers.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use phsync_engine::{CycleReport, Engine};

use super::{printable, CliResult, Outcome};

#[derive(Args)]
pub struct SyncArgs {
    /// The phsync config file (TOML)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Full resync of every in-scope user, ignoring the stored cursor
    #[arg(long)]
    full: bool,
    /// Sync only these users (sAMAccountName, DOMAIN\sam, UPN, DN or GUID); repeatable
    #[arg(long, value_name = "NAME")]
    user: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One user's diagnostics: why (or why not) and when the password last synced
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct EventsArgs {
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Only this event ID (e.g. 611); repeatable
    #[arg(long = "id", value_name = "N")]
    ids: Vec<u16>,
    /// Only events strictly after this time (RFC 3339, e.g. 2025-01-31T08:00:00Z)
    #[arg(long, value_name = "TIME")]
    after: Option<String>,
    /// Only the newest N events (after the other filters)
    #[arg(long, value_name = "N")]
    newest: Option<usize>,
    #[arg(long)]
    json: bool,
}

/// Console logging via tracing; `PHSYNC_LOG` = error|warn|info|debug|trace (default info).
pub fn init_logging() {
    init_logging_with_default(tracing::Level::INFO);
}

/// As [`init_logging`], but warnings and errors only unless `PHSYNC_LOG` says otherwise: for
/// commands whose output is the answer (`check`, `events`).
pub(super) fn init_logging_quiet() {
    init_logging_with_default(tracing::Level::WARN);
}

fn init_logging_with_default(default: tracing::Level) {
    let level = match std::env::var("PHSYNC_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        "info" => tracing::Level::INFO,
        _ => default,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn open(config: &Path) -> Result<Engine, String> {
    Engine::open(config).map_err(|e| e.to_string())
}

/// A progress bar on a terminal, nothing when piped.
fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    Some(bar)
}

/// What the bar shows of a cycle's progress. Credentials are delivered while replication
/// still runs, and the two report in turn: once delivery has begun, the bar stays on the
/// credentials and replication's count goes beside it, instead of the bar flipping between
/// the two stages after every batch.
#[derive(Debug, Default, PartialEq)]
struct CycleProgress {
    replicated: Option<u64>,
    credentials: Option<(u64, u64)>,
}

/// One line of the bar: its prefix, position, length and message.
#[derive(Debug, PartialEq)]
struct BarLine {
    prefix: String,
    done: u64,
    total: u64,
    message: String,
}

impl CycleProgress {
    fn update(&mut self, stage: &str, done: u64, total: u64) -> BarLine {
        match stage {
            "replicate" => self.replicated = Some(done),
            "credentials" => self.credentials = Some((done, total)),
            _ => {}
        }
        let beside = |replicated: Option<u64>| {
            replicated.map_or_else(String::new, |n| format!("({n} replicated)"))
        };
        match (stage, self.credentials) {
            ("replicate" | "credentials", Some((done, total))) => BarLine {
                prefix: "credentials".into(),
                done,
                total,
                message: beside(self.replicated),
            },
            _ => BarLine {
                prefix: stage.to_string(),
                done,
                total,
                message: String::new(),
            },
        }
    }
}

fn print_report(r: &CycleReport, json: bool) {
    if json {
        super::print_json(r);
        return;
    }
    println!(
        "{} sync: {} in scope, {} changes, {} applied, {} already current, {} filtered, {} disabled, {} failed ({} queued for retry)",
        r.mode, r.in_scope, r.changes, r.applied, r.stale, r.filtered, r.disabled, r.failed, r.retry_queued
    );
    for u in &r.users {
        println!(
            "  {:<24} {:<24} {}",
            printable(&u.sam_account_name),
            u.status.as_str(),
            printable(&u.reason)
        );
    }
}

pub fn sync(args: SyncArgs) -> CliResult {
    init_logging();
    let mut engine = open(&args.config)?;
    if !args.user.is_empty() {
        let mut results = Vec::new();
        let mut all_ok = true;
        for name in &args.user {
            let d = engine.sync_user(name).map_err(|e| e.to_string())?;
            all_ok &= matches!(
                d.status,
                phsync_engine::state::SyncStatus::Success
                    | phsync_engine::state::SyncStatus::FilteredByTarget
            );
            results.push(d);
        }
        if args.json {
            super::print_json(&results);
        } else {
            for d in &results {
                println!(
                    "{:<24} {:<24} {}",
                    printable(&d.sam_account_name),
                    d.status.as_str(),
                    printable(&d.reason)
                );
            }
        }
        return Ok(if all_ok {
            Outcome::Success
        } else {
            Outcome::Negative
        });
    }
    let bar = progress_bar();
    let mut shown = CycleProgress::default();
    let report = engine
        .cycle(args.full, &mut |stage, done, total| {
            if let Some(b) = &bar {
                let line = shown.update(stage, done, total);
                b.set_prefix(line.prefix);
                b.set_length(line.total);
                b.set_position(line.done);
                b.set_message(line.message);
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    print_report(&report, args.json);
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}

/// Cycles every interval, and change-driven sync from the DC's change notifications between
/// them, until SIGTERM or Ctrl-C; the user in flight is finished first.
pub fn run(args: RunArgs) -> CliResult {
    init_logging();
    let mut engine = open(&args.config)?;
    let stop = engine.stop_flag();
    let signals = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal listener: {e}"))?;
    let flag = stop.clone();
    signals.spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping after the user in flight");
        flag.store(true, Ordering::SeqCst);
    });
    // The first cycle, then change-driven sync between cycles (the engine's run loop).
    engine
        .run(phsync_engine::RunHooks::default())
        .map_err(|e| e.to_string())?;
    Ok(Outcome::Success)
}

pub fn status(args: StatusArgs) -> CliResult {
    let engine = open(&args.config)?;
    match args.user {
        Some(name) => {
            let status = engine
                .user_status(&name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("phsync has no record of {name:?} (not in scope, or never synced)")
                })?;
            if args.json {
                super::print_json(&status);
            } else {
                let u = &status.user;
                println!(
                    "user:              {} ({})",
                    printable(&u.sam_account_name),
                    printable(&u.user_principal_name)
                );
                println!("status:            {}", u.status.as_str());
                println!("reason:            {}", printable(&u.reason));
                println!("last attempt:      {}", u.last_attempt_at);
                println!(
                    "on-prem change:    {}",
                    u.onprem_changed_at
                        .map(|t| t.to_string())
                        .unwrap_or("-".into())
                );
                println!(
                    "applied in cloud:  {}",
                    u.applied_at
                        .map(|t| t.to_string())
                        .unwrap_or("never".into())
                );
                println!(
                    "retry:             {}",
                    serde_json::to_string(&u.retry).expect("serializes")
                );
                for h in &status.history {
                    println!(
                        "  {}  {:<24} {}",
                        h.at,
                        h.status.as_str(),
                        printable(&h.reason)
                    );
                }
            }
        }
        None => {
            let users = engine.all_user_status().map_err(|e| e.to_string())?;
            let last = engine.last_cycle().map_err(|e| e.to_string())?;
            let notifications = engine.notification_status().map_err(|e| e.to_string())?;
            if args.json {
                super::print_json(
                    &serde_json::json!({ "last_cycle": last, "notifications": notifications, "users": users }),
                );
            } else {
                match last {
                    Some(l) => {
                        let outcome = match (&l.error, l.ok) {
                            (Some(e), _) => format!("did not complete: {}", printable(e)),
                            (None, true) => "ok".to_string(),
                            (None, false) => "completed with failed users".to_string(),
                        };
                        println!(
                            "last cycle: {} sync, started {}, finished {}: {outcome}",
                            l.mode,
                            l.started_at
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".into()),
                            l.finished_at
                        );
                        println!(
                            "  {} in scope, {} changes, {} applied, {} already current, {} filtered, {} disabled, {} failed ({} queued for retry)",
                            l.in_scope, l.changes, l.applied, l.stale, l.filtered, l.disabled, l.failed, l.retry_queued
                        );
                    }
                    None => println!("no cycle has run yet"),
                }
                match notifications {
                    Some(n) => {
                        println!(
                            "notifications: {} ({}{}) since {}{}; last notification {}",
                            n.state,
                            if n.live { "live" } else { "not live" },
                            n.source
                                .as_deref()
                                .map(|s| format!(", via {s}"))
                                .unwrap_or_default(),
                            n.since,
                            n.detail
                                .as_deref()
                                .map(|d| format!(": {}", printable(d)))
                                .unwrap_or_default(),
                            n.last_notification_at
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "never".into())
                        );
                        if let (Some(pid), Some(at)) = (n.pid, n.heartbeat_at) {
                            let s = &n.stats;
                            println!(
                                "  run pid {pid}, last heartbeat {at}; {} changes, {} replicated, {} applied without replication, {} unchanged, {} scope re-reads",
                                s.changes, s.replicated, s.applied_without_replication, s.unchanged, s.scope_reads
                            );
                        }
                    }
                    None => println!("notifications: phsync run has not run yet"),
                }
                for u in users {
                    println!(
                        "  {:<24} {:<24} {}",
                        printable(&u.sam_account_name),
                        u.status.as_str(),
                        printable(&u.reason)
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// One line per check; exit 1 if any failed.
pub fn check(args: CheckArgs) -> CliResult {
    init_logging_quiet();
    let report = phsync_engine::check_connection(&args.config);
    if args.json {
        super::print_json(&report);
    } else {
        for c in &report.checks {
            println!(
                "{:<8} {:<19} {}",
                c.result.as_str(),
                c.name,
                printable(&c.detail)
            );
        }
    }
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}

pub fn events(args: EventsArgs) -> CliResult {
    init_logging_quiet();
    let after_unix_ms = match &args.after {
        Some(t) => Some(
            phsync_tenant::Timestamp::parse_rfc3339(t)
                .map_err(|e| format!("--after: {e}"))?
                .unix_micros()
                .div_euclid(1000),
        ),
        None => None,
    };
    let query = phsync_engine::events::EventQuery {
        ids: args.ids,
        after_unix_ms,
        newest: args.newest.unwrap_or(0),
    };
    let events = phsync_engine::events::read_configured_events(&args.config, &query)
        .map_err(|e| e.to_string())?;
    if args.json {
        super::print_json(&events);
    } else {
        for e in &events {
            println!(
                "{}  {}  {:<7}  {}",
                e.at,
                e.event_id,
                e.level.as_str(),
                printable(&e.message)
            );
        }
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_stays_on_credentials_once_delivery_begins_while_replication_runs() {
        let mut p = CycleProgress::default();
        assert_eq!(p.update("scope", 0, 1).prefix, "scope");
        let line = p.update("replicate", 1000, 0);
        assert_eq!(
            (line.prefix.as_str(), line.done, line.message.as_str()),
            ("replicate", 1000, "")
        );
        let line = p.update("credentials", 400, 1000);
        assert_eq!(
            line,
            BarLine {
                prefix: "credentials".into(),
                done: 400,
                total: 1000,
                message: "(1000 replicated)".into()
            }
        );
        // The next batch arrives: the bar keeps the credentials, the count beside it moves.
        let line = p.update("replicate", 2000, 0);
        assert_eq!(
            (line.prefix.as_str(), line.done, line.total),
            ("credentials", 400, 1000)
        );
        assert_eq!(line.message, "(2000 replicated)");
        let line = p.update("credentials", 1500, 2000);
        assert_eq!(
            (line.prefix.as_str(), line.done, line.total),
            ("credentials", 1500, 2000)
        );
    }

    #[test]
    fn other_stages_show_as_they_are_named() {
        let mut p = CycleProgress::default();
        let line = p.update("provision", 3, 3);
        assert_eq!(
            (line.prefix.as_str(), line.done, line.total),
            ("provision", 3, 3)
        );
    }
}
