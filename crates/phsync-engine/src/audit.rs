//! The password-quality audit (`phsync audit`, `phs_audit`, `Test-PasswordHashSyncQuality`):
//! one full replication with the audit attribute set, restricted to the sync scope unless
//! every account is asked for, checked by `phsync-audit`. Nothing is written anywhere: not
//! to the directory, the tenant or the engine's state.
//!
//! Scope: by default the users phsync syncs (the config's scope, read over LDAP), because
//! that is what the tenant receives; `all_accounts` audits every user and computer account
//! of the domain, disabled and critical system objects included (as DSInternals'
//! `Test-PasswordQuality` audits whatever it is given). Computer accounts, hence the default
//! computer password finding, are only audited then.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use phsync_audit::{AuditAccount, AuditLists, AuditReport, LeakedHashes, WeakPasswords};
use phsync_drsr::{DrsrClient, ReplicatedAccount};
use serde::Serialize;

use crate::settings::Settings;
use crate::{fips, SyncError};

/// What to audit and against which lists.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Every user and computer account of the domain instead of the sync scope.
    pub all_accounts: bool,
    /// HIBP's "NTLM ordered by hash" file, or any sorted list of NT hashes.
    pub leaked_hashes: Option<PathBuf>,
    /// A text file of weak passwords, one per line.
    pub weak_passwords: Option<PathBuf>,
}

/// The report with what it covered.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRun {
    /// "sync_scope" or "all_accounts".
    pub scope: &'static str,
    /// Distinct passwords in the weak-password dictionary, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_passwords: Option<usize>,
    /// Dictionary lines skipped (not UTF-8, or longer than any AD password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_lines_skipped: Option<u64>,
    /// Milliseconds spent reading the accounts from the DC.
    pub replication_ms: u64,
    /// Milliseconds spent checking them (list lookups included).
    pub analysis_ms: u64,
    #[serde(flatten)]
    pub report: AuditReport,
}

/// Errors of an audit: the engine's (config, LDAP, replication) or an unusable list.
#[derive(Debug, thiserror::Error)]
pub enum AuditRunError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    List(#[from] phsync_audit::AuditError),
}

/// Run the audit. The lists are opened (and checked) before the DC is contacted, so a bad
/// path fails fast.
pub fn run(settings: &Settings, options: &AuditOptions) -> Result<AuditRun, AuditRunError> {
    if fips::host_in_fips_mode() && !settings.rules.allow_non_fips_crypto {
        return Err(SyncError::Fips.into());
    }
    let leaked = options
        .leaked_hashes
        .as_deref()
        .map(LeakedHashes::open)
        .transpose()?;
    let weak = options
        .weak_passwords
        .as_deref()
        .map(WeakPasswords::load)
        .transpose()?;

    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SyncError::Host(format!("cannot start the async runtime: {e}")))?;
    let accounts = rt.block_on(collect(settings, options.all_accounts))?;
    let replication = started.elapsed();

    let started = Instant::now();
    let report = phsync_audit::analyze(
        &accounts,
        AuditLists {
            leaked: leaked.as_ref(),
            weak: weak.as_ref(),
        },
    )?;
    drop(accounts);
    Ok(AuditRun {
        scope: if options.all_accounts {
            "all_accounts"
        } else {
            "sync_scope"
        },
        weak_passwords: weak.as_ref().map(WeakPasswords::len),
        weak_lines_skipped: weak.as_ref().map(WeakPasswords::skipped),
        replication_ms: millis(replication),
        analysis_ms: millis(started.elapsed()),
        report,
    })
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// The accounts to audit: the scope's users over LDAP (unless all), then one full audit
/// replication keeping those accounts.
async fn collect(settings: &Settings, all: bool) -> Result<Vec<AuditAccount>, SyncError> {
    let scope: Option<HashSet<phsync_drsr::Guid>> = if all {
        None
    } else {
        let mut dir = settings.connect_directory().await?;
        let users = dir.users(&settings.scope).await;
        dir.close().await;
        Some(users?.iter().map(|u| u.object_guid).collect())
    };
    let cfg = settings.replication.drsr_config(&settings.password)?;
    let mut client = DrsrClient::connect(&cfg).await?;
    let mut out = Vec::new();
    let result = client
        .replicate_domain_for_audit(settings.rules.replication_batch, &mut |batch| {
            for a in batch {
                let keep = !a.is_deleted
                    && a.has_class("user")
                    && scope.as_ref().is_none_or(|s| s.contains(&a.guid));
                if keep {
                    out.push(audit_account(a));
                }
            }
            Ok(())
        })
        .await;
    let _ = client.close().await;
    result?;
    Ok(out)
}

/// A replicated account as the audit sees it; the NT hash moves, nothing is copied.
fn audit_account(a: ReplicatedAccount) -> AuditAccount {
    let is_computer = a.has_class("computer");
    let ReplicatedAccount {
        guid,
        distinguished_name,
        sam_account_name,
        user_principal_name,
        user_account_control,
        nt_hash,
        admin_count,
        lm_hash_present,
        supplemental,
        ..
    } = a;
    AuditAccount {
        sam_account_name: sam_account_name.unwrap_or_else(|| guid.to_string()),
        user_principal_name,
        distinguished_name: distinguished_name.unwrap_or_default(),
        is_computer,
        user_account_control: user_account_control.unwrap_or(0),
        admin: admin_count.is_some_and(|c| c != 0),
        nt_hash,
        lm_hash_present,
        cleartext_stored: supplemental.as_ref().is_some_and(|s| s.cleartext_stored()),
        kerberos_aes_keys: supplemental.map(|s| s.kerberos_aes_keys),
    }
}
