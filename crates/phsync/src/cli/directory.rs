//! `phsync directory ...`: the LDAP directory layer from the shell.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use phsync_directory::{Directory, DirectoryError, DirectoryUser};
use phsync_engine::config::Config;

use super::{printable, CliResult, Outcome};

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// List the in-scope users ([sync] scope of the config)
    Users {
        /// The phsync config file (TOML)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Resolve one user by sAMAccountName, DOMAIN\sam, UPN, DN or GUID
    User {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The user's name, UPN, DN or GUID
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the domain controller's RootDSE
    Info {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Load the config and connect: the runtime must outlive the connection.
fn connect(config_path: &Path) -> Result<(tokio::runtime::Runtime, Directory, Config), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let dir = rt
        .block_on(config.source.connect_directory())
        .map_err(|e| match e {
            // The LDAP layer's own message, without the engine's "directory (LDAP)" prefix.
            phsync_engine::SyncError::Directory(d) => d.to_string(),
            other => other.to_string(),
        })?;
    Ok((rt, dir, config))
}

fn finish<T>(
    rt: &tokio::runtime::Runtime,
    dir: Directory,
    result: Result<T, DirectoryError>,
) -> Result<T, String> {
    rt.block_on(dir.close());
    result.map_err(|e| e.to_string())
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), String> {
    let s = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn print_table(users: &[DirectoryUser]) {
    let sam_w = users
        .iter()
        .map(|u| printable(&u.sam_account_name).chars().count())
        .chain([14])
        .max()
        .unwrap_or(14);
    let upn_w = users
        .iter()
        .map(|u| printable(&u.user_principal_name).chars().count() + usize::from(u.upn_derived))
        .chain([17])
        .max()
        .unwrap_or(17);
    println!(
        "{:sam_w$}  {:upn_w$}  {:7}  {:11}  {:36}  ANCHOR",
        "SAMACCOUNTNAME", "USERPRINCIPALNAME", "ENABLED", "MUST-CHANGE", "GUID"
    );
    for u in users {
        let upn = printable(&u.user_principal_name);
        let upn = if u.upn_derived {
            format!("{upn}*")
        } else {
            upn.into_owned()
        };
        println!(
            "{:sam_w$}  {:upn_w$}  {:7}  {:11}  {:36}  {}",
            printable(&u.sam_account_name),
            upn,
            yes_no(u.enabled()),
            yes_no(u.must_change_password()),
            u.object_guid.to_string(),
            u.source_anchor()
        );
    }
    if users.iter().any(|u| u.upn_derived) {
        println!("(* no userPrincipalName: derived as sAMAccountName@realm)");
    }
}

pub fn run(command: DirectoryCommand) -> CliResult {
    match command {
        DirectoryCommand::Users {
            config,
            json: as_json,
        } => {
            let (rt, mut dir, cfg) = connect(&config)?;
            let result = rt.block_on(dir.users(&cfg.sync.scope()));
            let users = finish(&rt, dir, result)?;
            if as_json {
                json(&users)?;
            } else {
                print_table(&users);
            }
        }
        DirectoryCommand::User {
            config,
            name,
            json: as_json,
        } => {
            let (rt, mut dir, _) = connect(&config)?;
            let result = rt.block_on(dir.resolve_user(&name));
            let user = finish(&rt, dir, result)?;
            if as_json {
                json(&user)?;
            } else {
                print_table(std::slice::from_ref(&user));
                println!("dn: {}", printable(&user.dn));
                println!("sid: {} (rid {})", user.object_sid, user.rid);
            }
        }
        DirectoryCommand::Info {
            config,
            json: as_json,
        } => {
            let (rt, dir, _) = connect(&config)?;
            let (root, url) = (dir.root_dse().clone(), dir.url().to_string());
            finish(&rt, dir, Ok(()))?;
            if as_json {
                json(&root)?;
            } else {
                println!("url:                  {url}");
                println!(
                    "defaultNamingContext: {}",
                    printable(&root.default_naming_context)
                );
                println!("dnsHostName:          {}", printable(&root.dns_host_name));
                println!("highestCommittedUSN:  {}", root.highest_committed_usn);
                println!("dsServiceName:        {}", printable(&root.ds_service_name));
            }
        }
    }
    Ok(Outcome::Success)
}
