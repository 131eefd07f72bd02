//! `phsync drsr dump`: a debug view of what MS-DRSR replication returns. Hashes are never
//! printed unless `--show-hashes` is given.

use clap::Subcommand;
use phsync_drsr::{Auth, DrsrClient, DrsrConfig, ReplicatedAccount};
use zeroize::Zeroizing;

use super::{CliResult, Outcome};

#[derive(Subcommand)]
pub enum DrsrCommand {
    /// Replicate one account or the whole domain and print one line (or JSON object) per account
    Dump {
        /// Domain controller host name or address
        #[arg(long, value_name = "HOST")]
        dc: String,
        /// DRSUAPI TCP port (default: ask the endpoint mapper on port 135)
        #[arg(long, value_name = "PORT")]
        port: Option<u16>,
        /// NetBIOS domain of the replication account (NTLM)
        #[arg(long, value_name = "NAME")]
        domain: Option<String>,
        /// Replication account (sAMAccountName)
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Environment variable holding the account's password
        #[arg(long, value_name = "VAR")]
        password_env: String,
        /// Authenticate with Kerberos in this realm instead of NTLM
        #[arg(long, value_name = "REALM")]
        kerberos_realm: Option<String>,
        /// KDC as host:port (Kerberos; default <dc>:88)
        #[arg(long, value_name = "HOST:PORT")]
        kdc: Option<String>,
        /// Service principal name (Kerberos; default host/<dc>)
        #[arg(long, value_name = "SPN")]
        spn: Option<String>,
        /// Only this account (GUID, DOMAIN\user, UPN or sAMAccountName)
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Objects per GetNCChanges batch
        #[arg(long, value_name = "N", default_value_t = phsync_drsr::DEFAULT_BATCH_SIZE)]
        batch: u32,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// Print NT hashes (upper-case hex). Without it, only whether a hash exists.
        #[arg(long)]
        show_hashes: bool,
    },
}

fn line(a: &ReplicatedAccount, json: bool, show: bool) -> String {
    let hash = match (&a.nt_hash, show) {
        (Some(h), true) => h.to_upper_hex().to_string(),
        (Some(_), false) => "present".to_owned(),
        (None, _) => "none".to_owned(),
    };
    if json {
        let mut v = serde_json::json!({
            "guid": a.guid.to_string(),
            "sid": a.sid.as_ref().map(|s| s.to_string()),
            "rid": a.rid,
            "sAMAccountName": a.sam_account_name,
            "userPrincipalName": a.user_principal_name,
            "objectClass": a.object_classes,
            "userAccountControl": a.user_account_control,
            "pwdLastSet": a.pwd_last_set,
            "isDeleted": a.is_deleted,
            "passwordReplicated": a.password_replicated,
            "ntHash": hash,
            "historyLength": a.nt_hash_history.len(),
            "passwordChangedUnix": a.password_metadata.map(|m| m.changed_unix),
            "usn": a.usn,
        });
        if show {
            v["ntHashHistory"] = a
                .nt_hash_history
                .iter()
                .map(|h| serde_json::Value::String(h.to_upper_hex().to_string()))
                .collect();
        }
        v.to_string()
    } else {
        format!(
            "{}\t{}\trid={}\tuac={}\tpwdLastSet={}\tnt={}\thistory={}",
            a.guid,
            super::printable(a.sam_account_name.as_deref().unwrap_or("-")),
            a.rid.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            a.user_account_control
                .map(|u| format!("0x{u:x}"))
                .unwrap_or_else(|| "-".into()),
            a.pwd_last_set
                .map(|p| p.ticks().to_string())
                .unwrap_or_else(|| "-".into()),
            hash,
            a.nt_hash_history.len()
        )
    }
}

pub fn run(cmd: DrsrCommand) -> CliResult {
    let DrsrCommand::Dump {
        dc,
        port,
        domain,
        user,
        password_env,
        kerberos_realm,
        kdc,
        spn,
        account,
        batch,
        json,
        show_hashes,
    } = cmd;
    let password = Zeroizing::new(
        std::env::var(&password_env)
            .map_err(|_| format!("environment variable {password_env} is not set"))?,
    );
    let auth = match kerberos_realm {
        Some(realm) => Auth::Kerberos {
            realm,
            kdc: kdc.unwrap_or_else(|| format!("{dc}:88")),
            user,
            password,
            spn,
        },
        None => Auth::Ntlm {
            domain: domain.ok_or("--domain is required for NTLM")?,
            user,
            password,
        },
    };
    let mut cfg = DrsrConfig::new(dc, auth);
    cfg.port_override = port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut c = DrsrClient::connect(&cfg).await.map_err(|e| e.to_string())?;
        match account {
            Some(name) => {
                let a = c.replicate_user(&name).await.map_err(|e| e.to_string())?;
                println!("{}", line(&a, json, show_hashes));
            }
            None => {
                c.replicate_domain_with(None, batch, &mut |accounts| {
                    for a in &accounts {
                        println!("{}", line(a, json, show_hashes));
                    }
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        c.close().await.map_err(|e| e.to_string())?;
        Ok(Outcome::Success)
    })
}
