//! `phsync cloud ...`: administer and use a tenant from the shell.

use clap::{Args, Subcommand};
use phsync::cloud::{self, CloudTenant, SignInResult, SignInStatus, User};
use zeroize::Zeroizing;

use super::stdin::{read_secret_line, read_secret_lines};
use super::{CliResult, Outcome};

#[derive(Args)]
pub struct CloudArgs {
    /// Tenant file (created on first use)
    #[arg(long, env = "PHSYNC_TENANT", value_name = "PATH")]
    tenant: String,
    #[command(subcommand)]
    command: CloudCommand,
}

#[derive(Subcommand)]
enum CloudCommand {
    /// Users of the tenant
    User {
        #[command(subcommand)]
        command: UserCommand,
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
        "{}\t{}\t{}\t{}\t{}",
        u.user_principal_name,
        u.origin.as_str(),
        if u.enabled { "enabled" } else { "disabled" },
        u.source_anchor.as_deref().unwrap_or("-"),
        password
    )
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

pub fn run(args: CloudArgs) -> CliResult {
    let tenant = cloud::open(&args.tenant, &actor()).map_err(|e| e.to_string())?;
    let err = |e: cloud::CloudError| e.to_string();
    match args.command {
        CloudCommand::User { command } => match command {
            UserCommand::Add { upn, display_name } => {
                let user = tenant
                    .add_cloud_user(&upn, display_name.as_deref())
                    .map_err(err)?;
                println!("created {}", user.user_principal_name);
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
                println!("password set for {}", result.user_principal_name);
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
                        a.actor,
                        a.action,
                        a.user_principal_name.as_deref().unwrap_or("-"),
                        a.outcome,
                        a.detail.as_deref().unwrap_or("")
                    );
                }
            }
        }
        CloudCommand::Settings { command } => match command {
            SettingsCommand::Show => println!("{}", json(&tenant.settings().map_err(err)?)),
            SettingsCommand::Set { key, value } => set_setting(tenant.as_ref(), &key, &value)?,
        },
    }
    Ok(Outcome::Success)
}
