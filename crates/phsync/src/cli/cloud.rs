//! `phsync cloud ...`: administer and use a tenant from the shell.

use clap::{Args, Subcommand};
use phsync_tenant::{self as cloud, CloudTenant, SignInResult, SignInStatus, User};
use zeroize::Zeroizing;

use super::stdin::{read_secret_line, read_secret_lines};
use super::{printable, CliResult, Outcome};

#[derive(Args)]
pub struct CloudArgs {
    /// Tenant: a file (created on first use), a postgres:// URL, or an https:// service URL
    #[arg(long, env = "PHSYNC_TENANT", value_name = "PATH|URL", global = true)]
    tenant: Option<String>,
    /// Service tenants: file holding the API token (mode 0600)
    #[arg(long, env = "PHSYNC_TOKEN_FILE", value_name = "PATH", global = true)]
    token_file: Option<std::path::PathBuf>,
    /// Service tenants: PEM CA certificate(s) to trust instead of the public roots
    #[arg(long, env = "PHSYNC_CA_FILE", value_name = "PATH", global = true)]
    ca_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: CloudCommand,
}

#[derive(Subcommand)]
enum CloudCommand {
    /// Run the tenant as an HTTPS service (agents, users, administrators) until SIGTERM
    Serve {
        /// Service config file (TOML, a [service] table)
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Plain HTTP instead of TLS; refused unless the listen address is loopback
        #[arg(long)]
        insecure_http: bool,
        /// Log lines on stderr: text, or JSON (one object a line) for a log collector
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// error, warn, info, debug or trace for phsync's own events (other crates: warn),
        /// or a full filter directive such as "phsync_service=debug,hyper=info"
        #[arg(long, default_value = "info", value_name = "LEVEL|DIRECTIVE")]
        log_level: String,
    },
    /// API tokens of the service (in the store: --tenant FILE|postgres://...)
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Store kind and row counts
    Status,
    /// Users of the tenant
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Sign-in sessions of the tenant's users
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Administrator password reset; the password is read from stdin (cloud policy applies)
    SetPassword {
        #[arg(long)]
        upn: String,
        /// The user must change the password at next sign-in
        #[arg(long)]
        force_change: bool,
        #[arg(long)]
        json: bool,
    },
    /// Sign in with the password on stdin: exit 0 on success, 1 on any refusal
    SignIn {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        json: bool,
    },
    /// A user's own change: old and new password on stdin, one per line
    ChangePassword {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        json: bool,
    },
    /// Credential events, newest first (never a secret)
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Users at risk: leaked credentials found by the sync ([audit] leaked_hashes)
    Risk {
        #[command(subcommand)]
        command: RiskCommand,
    },
    /// Tenant policy: password rules, expiry, lockout
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a cloud-only user
    Add {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one user
    Show {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a user (a synced one returns with the next sync while in scope)
    Delete {
        #[arg(long)]
        upn: String,
    },
}

#[derive(Subcommand)]
enum RiskCommand {
    /// Every user marked at risk, by UPN (kind, time detected, breach count; never a hash)
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SessionCommand {
    /// End every session of a user now (e.g. a stolen session token or a departing user)
    Revoke {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once (or write it to --out, mode 0600)
    Create {
        /// agent or admin
        #[arg(long)]
        role: String,
        /// A name for the audit log, e.g. the agent's host
        #[arg(long)]
        name: String,
        /// Agents: the sync source whose users the token may write (e.g. the AD domain)
        #[arg(long)]
        source: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// List tokens (never their secrets)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id
    Revoke { id: String },
}

#[derive(Subcommand)]
enum SettingsCommand {
    Show,
    /// Set one setting, e.g. `apply_cloud_password_policy_to_synced true`
    Set {
        key: String,
        value: String,
    },
}

fn to_utf16(s: &str) -> Zeroizing<Vec<u16>> {
    Zeroizing::new(s.encode_utf16().collect())
}

fn actor() -> String {
    let who = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("results serialize")
}

fn user_line(u: &User) -> String {
    let password = match &u.password {
        None => "no password".to_string(),
        Some(p) => format!(
            "{} password changed {}{}{}",
            match p.source {
                cloud::PasswordSource::Synced => "synced",
                cloud::PasswordSource::Cloud => "cloud",
            },
            p.changed_at,
            p.expires_at
                .map(|e| format!(", expires {e}"))
                .unwrap_or_default(),
            if p.force_change_at_next_sign_in {
                ", must change"
            } else {
                ""
            }
        ),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        printable(&u.user_principal_name),
        u.origin.as_str(),
        if u.enabled { "enabled" } else { "disabled" },
        printable(u.source_anchor.as_deref().unwrap_or("-")),
        password,
        u.locked_until
            .map(|t| format!("locked until {t}"))
            .unwrap_or_else(|| "-".into())
    )
}

/// One risk of a user, for people: kind, time detected, breach count.
fn risk_text(kind: cloud::RiskKind, detected_at: cloud::Timestamp, count: Option<u64>) -> String {
    format!(
        "{}\tdetected {detected_at}\t{}",
        kind.as_str(),
        count.map_or_else(|| "breaches unknown".into(), |n| format!("{n} breaches"))
    )
}

fn risks(tenant: &dyn CloudTenant, as_json: bool) -> CliResult {
    let risks = tenant.risks().map_err(|e| e.to_string())?;
    if as_json {
        println!("{}", json(&risks));
    } else {
        for r in &risks {
            println!(
                "{}\t{}",
                printable(&r.user_principal_name),
                risk_text(r.kind, r.detected_at, r.breach_count)
            );
        }
    }
    Ok(Outcome::Success)
}

fn sign_in_outcome(r: &SignInResult, as_json: bool) -> Outcome {
    if as_json {
        println!("{}", json(r));
    } else {
        match r.session_expires_at {
            Some(exp) => println!("{} (session until {exp})", r.result.as_str()),
            None => println!("{}", r.result.as_str()),
        }
    }
    if r.result == SignInStatus::Success {
        Outcome::Success
    } else {
        Outcome::Negative
    }
}

fn set_setting(tenant: &dyn CloudTenant, key: &str, value: &str) -> Result<(), String> {
    let current = tenant.settings().map_err(|e| e.to_string())?;
    let mut map = serde_json::to_value(&current).expect("settings serialize");
    let obj = map.as_object_mut().expect("settings are an object");
    let known = obj.keys().cloned().collect::<Vec<_>>().join(", ");
    let slot = obj
        .get_mut(key)
        .ok_or_else(|| format!("unknown setting {key:?}; known: {known}"))?;
    *slot = match slot {
        serde_json::Value::Bool(_) => serde_json::Value::Bool(
            value
                .parse()
                .map_err(|_| format!("{key} takes true or false, not {value:?}"))?,
        ),
        _ => serde_json::Value::Number(
            value
                .parse::<u32>()
                .map_err(|_| format!("{key} takes a whole number, not {value:?}"))?
                .into(),
        ),
    };
    let updated = serde_json::from_value(map).map_err(|e| e.to_string())?;
    tenant.update_settings(&updated).map_err(|e| e.to_string())
}

/// The tracing filter for `--log-level`: a bare level applies to phsync's crates (the rest
/// stay at warn, so a dependency's debug chatter needs asking for); anything else is taken
/// as a full directive.
fn log_filter(level: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let directive = match level.to_ascii_lowercase().as_str() {
        l @ ("error" | "warn" | "info" | "debug" | "trace") => {
            format!("phsync={l},phsync_service={l},phsync_tenant={l},warn")
        }
        _ => level.to_string(),
    };
    tracing_subscriber::EnvFilter::try_new(&directive)
        .map_err(|e| format!("--log-level {level:?}: {e}"))
}

/// Service events on stderr from the start, so a refused request or a failing store is
/// visible without any extra setup.
fn init_service_logging(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = log_filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| format!("cannot set up logging: {e}"))
}

fn serve(
    config: &std::path::Path,
    insecure_http: bool,
    log_format: LogFormat,
    log_level: &str,
) -> CliResult {
    use phsync_service::{Service, ServiceConfig, Transport};
    init_service_logging(log_format, log_level)?;
    let config = ServiceConfig::load(config).map_err(|e| e.to_string())?;
    let transport = if insecure_http {
        Transport::InsecureHttp
    } else {
        Transport::Tls
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let service = Service::bind(config, transport, std::sync::Arc::new(cloud::SystemClock))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(url = %service.url(), "tenant service listening");
        // Scripts and tests read the URL from this line (the port may have been 0).
        println!("listening on {}", service.url());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        service
            .run(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{signal, SignalKind};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        },
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            })
            .await
            .map_err(|e| e.to_string())
    })?;
    Ok(Outcome::Success)
}

fn tokens(location: &str, command: TokenCommand) -> CliResult {
    use phsync_service::tokens;
    let store = cloud::open_store(location).map_err(|e| e.to_string())?;
    match command {
        TokenCommand::Create {
            role,
            name,
            source,
            out,
        } => {
            let role = cloud::TokenRole::parse(&role)
                .ok_or_else(|| format!("--role must be agent or admin, not {role:?}"))?;
            // Refuse a link before a token exists that nothing could hold; the write
            // itself refuses one too (O_NOFOLLOW), whatever appears in between.
            if let Some(path) = &out {
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!(
                        "{} is a symbolic link; refusing to follow it",
                        path.display()
                    ));
                }
            }
            let (row, token) = tokens::issue(store.as_ref(), role, &name, source.as_deref())
                .map_err(|e| e.to_string())?;
            match out {
                Some(path) => {
                    phsync_tenant::private_file::write_private(
                        &path,
                        format!("{}\n", token.as_str()).as_bytes(),
                    )
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    eprintln!(
                        "token {} ({} {}) written to {}",
                        printable(&row.id),
                        role.as_str(),
                        printable(&name),
                        printable(&path.display().to_string())
                    );
                }
                None => println!("{}", token.as_str()),
            }
        }
        TokenCommand::List { json: as_json } => {
            let rows = tokens::list(store.as_ref()).map_err(|e| e.to_string())?;
            let view: Vec<serde_json::Value> = rows
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.id, "name": t.name, "role": t.role, "source": t.source,
                        "created_at": t.created_at, "revoked_at": t.revoked_at,
                    })
                })
                .collect();
            if as_json {
                println!("{}", json(&view));
            } else {
                for t in rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        printable(&t.id),
                        t.role.as_str(),
                        printable(&t.name),
                        printable(t.source.as_deref().unwrap_or("-")),
                        t.revoked_at
                            .map(|r| format!("revoked {r}"))
                            .unwrap_or_else(|| "active".into())
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            tokens::revoke(store.as_ref(), &id).map_err(|e| e.to_string())?;
            println!("revoked {}", printable(&id));
        }
    }
    Ok(Outcome::Success)
}

pub fn run(args: CloudArgs) -> CliResult {
    let location = match (&args.command, &args.tenant) {
        (
            CloudCommand::Serve {
                config,
                insecure_http,
                log_format,
                log_level,
            },
            _,
        ) => return serve(config, *insecure_http, *log_format, log_level),
        (_, Some(t)) => t.clone(),
        (_, None) => return Err("no tenant: pass --tenant or set PHSYNC_TENANT".into()),
    };
    if let CloudCommand::Token { command } = args.command {
        return tokens(&location, command);
    }
    let target = cloud::TenantTarget {
        location,
        token_file: args.token_file,
        ca_file: args.ca_file,
    };
    let tenant = cloud::open_target(&target, &actor()).map_err(|e| e.to_string())?;
    let err = |e: cloud::CloudError| e.to_string();
    match args.command {
        CloudCommand::Serve { .. } | CloudCommand::Token { .. } => unreachable!("handled above"),
        CloudCommand::Status => println!("{}", json(&tenant.status().map_err(err)?)),
        CloudCommand::User { command } => match command {
            UserCommand::Add { upn, display_name } => {
                let user = tenant
                    .add_cloud_user(&upn, display_name.as_deref())
                    .map_err(err)?;
                println!("created {}", printable(&user.user_principal_name));
            }
            UserCommand::List { json: as_json } => {
                let users = tenant.users().map_err(err)?;
                if as_json {
                    println!("{}", json(&users));
                } else {
                    users.iter().for_each(|u| println!("{}", user_line(u)));
                }
            }
            UserCommand::Show { upn, json: as_json } => {
                let user = tenant
                    .user(&upn)
                    .map_err(err)?
                    .ok_or_else(|| cloud::CloudError::UserNotFound(upn).to_string())?;
                if as_json {
                    println!("{}", json(&user));
                } else {
                    println!("{}", user_line(&user));
                    for r in &user.risks {
                        println!("risk\t{}", risk_text(r.kind, r.detected_at, r.breach_count));
                    }
                }
            }
            UserCommand::Delete { upn } => {
                tenant.delete_user(&upn).map_err(err)?;
                println!("deleted {}", printable(&upn));
            }
        },
        CloudCommand::Session { command } => match command {
            SessionCommand::Revoke { upn, json: as_json } => {
                let revoked = tenant.revoke_sessions(&upn).map_err(err)?;
                if as_json {
                    let v = serde_json::json!({ "user_principal_name": upn, "revoked": revoked });
                    println!("{}", json(&v));
                } else {
                    println!("revoked {revoked} session(s) for {}", printable(&upn));
                }
            }
        },
        CloudCommand::SetPassword {
            upn,
            force_change,
            json: as_json,
        } => {
            let password = read_secret_line("new password")?;
            let result = tenant
                .set_password(&upn, &to_utf16(&password), force_change)
                .map_err(err)?;
            if as_json {
                println!("{}", json(&result));
            } else {
                println!(
                    "password set for {}",
                    printable(&result.user_principal_name)
                );
            }
        }
        CloudCommand::SignIn { upn, json: as_json } => {
            let password = read_secret_line("password")?;
            let result = tenant.sign_in(&upn, &to_utf16(&password)).map_err(err)?;
            return Ok(sign_in_outcome(&result, as_json));
        }
        CloudCommand::ChangePassword { upn, json: as_json } => {
            let lines = read_secret_lines(2, &["current password", "new password"])?;
            let result = tenant
                .change_password(&upn, &to_utf16(&lines[0]), &to_utf16(&lines[1]))
                .map_err(err)?;
            return Ok(sign_in_outcome(&result, as_json));
        }
        CloudCommand::Audit {
            limit,
            json: as_json,
        } => {
            let entries = tenant.audit_log(limit).map_err(err)?;
            if as_json {
                println!("{}", json(&entries));
            } else {
                for a in entries {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        a.at,
                        printable(&a.actor),
                        printable(&a.action),
                        printable(a.user_principal_name.as_deref().unwrap_or("-")),
                        printable(&a.outcome),
                        printable(a.detail.as_deref().unwrap_or(""))
                    );
                }
            }
        }
        CloudCommand::Risk {
            command: RiskCommand::List { json: as_json },
        } => return risks(tenant.as_ref(), as_json),
        CloudCommand::Settings { command } => match command {
            SettingsCommand::Show => println!("{}", json(&tenant.settings().map_err(err)?)),
            SettingsCommand::Set { key, value } => set_setting(tenant.as_ref(), &key, &value)?,
        },
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn log_levels_and_directives() {
        let f = log_filter("DEBUG").unwrap().to_string();
        assert!(
            f.contains("phsync_service=debug") && f.contains("phsync_tenant=debug"),
            "{f}"
        );
        assert!(f.contains("warn"), "{f}");
        assert!(log_filter("phsync_service=trace,hyper=info").is_ok());
        let e = log_filter("phsync_service=loud").unwrap_err();
        assert!(e.starts_with("--log-level"), "{e}");
    }
}
