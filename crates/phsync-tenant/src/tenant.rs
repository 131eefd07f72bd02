//! The tenant rules, written once over any [`TenantStore`]: newest credential wins,
//! synced passwords overwrite cloud ones and vice versa, cloud policy for cloud-set
//! passwords only, expiry, smart lockout, sessions, and an audit row for every credential
//! event.

use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::secret::{decoy_cloud_hash, hash_cloud_password, verify_cloud_password};
use super::store::{
    AuditRow, CredentialRow, LockoutRow, NewUser, SessionRow, StoreTx, TenantStore, UserKey,
    UserRow,
};
use super::{
    upn_key, AuditEntry, Clock, CloudError, CloudResult, CloudTenant, CredentialOutcome, Origin,
    PasswordInfo, PasswordSource, ProvisionOutcome, SessionInfo, SetPasswordResult, SignInResult,
    SignInStatus, SyncedCredential, SyncedUserSpec, TenantSettings, TenantStatus, Timestamp, User,
};
use phsync_hash::{NtHash, PhsDigest, MAX_PASSWORD_UTF16_UNITS};

/// Distinct wrong passwords remembered per account, so retrying one does not count twice.
const RECENT_WRONG_PASSWORDS: usize = 3;

/// How far ahead of the tenant's clock an on-prem change time may be (clock skew).
const MAX_FUTURE_CHANGE_SECONDS: i64 = 86_400;

pub struct LocalTenant {
    store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
    actor: String,
    /// Set for a sync agent of the service: it sees and writes only this source's users.
    source: Option<String>,
}

fn validate_upn(upn: &str) -> CloudResult<()> {
    let bad = |why| Err(CloudError::InvalidUpn(upn.to_string(), why));
    let Some((local, domain)) = upn.split_once('@') else {
        return bad("it must have the form name@domain");
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return bad("it must have the form name@domain");
    }
    if upn.chars().count() > 256 {
        return bad("it is longer than 256 characters");
    }
    if upn.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace or control characters");
    }
    Ok(())
}

/// A cloud-set password must be well-formed text: policy rules count characters.
pub(crate) fn password_text(password: &[u16]) -> CloudResult<Zeroizing<String>> {
    if password.len() > MAX_PASSWORD_UTF16_UNITS {
        return Err(CloudError::PasswordTooLong {
            units: password.len(),
            max: MAX_PASSWORD_UTF16_UNITS,
        });
    }
    let mut text = Zeroizing::new(String::with_capacity(password.len()));
    for c in char::decode_utf16(password.iter().copied()) {
        match c {
            Ok(c) => text.push(c),
            Err(_) => {
                return Err(CloudError::InvalidPassword(
                    "it contains an unpaired UTF-16 surrogate".into(),
                ))
            }
        }
    }
    Ok(text)
}

fn expires_at(settings: &TenantSettings, cred: &CredentialRow) -> Option<Timestamp> {
    let applies = match cred.source {
        PasswordSource::Cloud => true,
        PasswordSource::Synced => settings.apply_cloud_password_policy_to_synced,
    };
    (applies && settings.max_password_age_days > 0).then(|| {
        cred.changed_at
            .plus_seconds(i64::from(settings.max_password_age_days) * 86_400)
    })
}

fn password_info(settings: &TenantSettings, cred: &CredentialRow) -> PasswordInfo {
    PasswordInfo {
        source: cred.source,
        changed_at: cred.changed_at,
        applied_at: cred.applied_at,
        force_change_at_next_sign_in: cred.force_change,
        expires_at: expires_at(settings, cred),
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What checking a password found, before lockout and account state are applied.
struct Check {
    user: Option<UserRow>,
    credential: Option<CredentialRow>,
    password_ok: bool,
    fingerprint: [u8; 32],
    lockout: LockoutRow,
}

impl LocalTenant {
    pub fn new(store: Arc<dyn TenantStore>, clock: Arc<dyn Clock>) -> Self {
        LocalTenant {
            store,
            clock,
            actor: "local".into(),
            source: None,
        }
    }

    /// Limit synced-user operations to one sync source (an agent token's scope).
    pub fn with_source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    /// Whether this handle may see or write `row` as a synced user.
    fn in_source(&self, row: &UserRow) -> bool {
        self.source.is_none() || row.source == self.source
    }

    fn foreign(&self, anchor: &str) -> CloudError {
        CloudError::Forbidden(format!(
            "source anchor {anchor:?} belongs to a user of another sync source"
        ))
    }

    /// Who the audit log names for this handle's actions ("admin:alice", "sync-agent", ...).
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    fn audit(
        &self,
        tx: &mut dyn StoreTx,
        action: &str,
        upn: Option<&str>,
        anchor: Option<&str>,
        outcome: &str,
        detail: Option<String>,
    ) -> CloudResult<()> {
        tx.append_audit(&AuditRow {
            at: self.clock.now(),
            actor: self.actor.clone(),
            action: action.into(),
            upn: upn.map(str::to_string),
            source_anchor: anchor.map(str::to_string),
            outcome: outcome.into(),
            detail,
        })
    }

    fn to_user(
        &self,
        tx: &mut dyn StoreTx,
        settings: &TenantSettings,
        row: UserRow,
    ) -> CloudResult<User> {
        let password = tx.credential(row.id)?.map(|c| password_info(settings, &c));
        let now = self.clock.now();
        let locked_until = tx
            .lockout(&upn_key(&row.upn))?
            .and_then(|l| l.locked_until)
            .filter(|&t| t > now);
        Ok(User {
            user_principal_name: row.upn,
            source_anchor: row.source_anchor,
            display_name: row.display_name,
            enabled: row.enabled,
            origin: row.origin,
            created_at: row.created_at,
            password,
            locked_until,
        })
    }

    /// Check `password` for `upn` at the same cost whether the user exists, has a synced
    /// digest or a cloud hash: one Argon2id, one digest PBKDF2, one fingerprint PBKDF2.
    fn check_password(
        &self,
        tx: &mut dyn StoreTx,
        upn: &str,
        password: &[u16],
    ) -> CloudResult<Check> {
        let key = upn_key(upn);
        let now = self.clock.now();
        let attempt = NtHash::from_utf16(password)?;
        let user = tx.user(UserKey::Upn(&key))?;
        let credential = match &user {
            Some(u) => tx.credential(u.id)?,
            None => None,
        };
        let decoy_digest = PhsDigest::from_parts([0; 10], 1000, [0; 32]).expect("valid decoy");
        let (digest_ok, cloud_ok) = match &credential {
            Some(c) if c.source == PasswordSource::Synced => {
                let ok = PhsDigest::parse(&c.secret)
                    .map(|d| d.matches_nt_hash(&attempt))
                    .unwrap_or(false);
                verify_cloud_password(decoy_cloud_hash(), password);
                (ok, false)
            }
            Some(c) => {
                decoy_digest.matches_nt_hash(&attempt);
                (false, verify_cloud_password(&c.secret, password))
            }
            None => {
                decoy_digest.matches_nt_hash(&attempt);
                verify_cloud_password(decoy_cloud_hash(), password);
                (false, false)
            }
        };
        let lockout = match tx.lockout(&key)? {
            Some(l) => l,
            None => {
                let mut salt = [0u8; 10];
                getrandom::fill(&mut salt).map_err(|e| CloudError::Random(e.to_string()))?;
                LockoutRow {
                    upn_key: key,
                    failures: 0,
                    window_start: now,
                    locked_until: None,
                    salt,
                    recent: Vec::new(),
                }
            }
        };
        let fingerprint = *PhsDigest::from_nt_hash(&attempt, lockout.salt, 1000)?.key();
        Ok(Check {
            password_ok: user.is_some() && (digest_ok || cloud_ok),
            user,
            credential,
            fingerprint,
            lockout,
        })
    }

    /// Apply smart lockout to a checked attempt; `None` means the password was right and the
    /// account is not locked.
    fn lockout_verdict(
        &self,
        tx: &mut dyn StoreTx,
        settings: &TenantSettings,
        check: &mut Check,
    ) -> CloudResult<Option<SignInStatus>> {
        let now = self.clock.now();
        let l = &mut check.lockout;
        if l.locked_until.is_some_and(|t| t > now) {
            return Ok(Some(SignInStatus::LockedOut));
        }
        if check.password_ok {
            tx.delete_lockout(&l.upn_key)?;
            return Ok(None);
        }
        if l.window_start
            .plus_seconds(i64::from(settings.lockout_window_seconds))
            <= now
        {
            l.failures = 0;
            l.window_start = now;
            l.recent.clear();
        }
        if !l.recent.contains(&check.fingerprint) {
            l.failures += 1;
            l.recent.push(check.fingerprint);
            if l.recent.len() > RECENT_WRONG_PASSWORDS {
                l.recent.remove(0);
            }
        }
        if l.failures >= settings.lockout_threshold {
            l.locked_until = Some(now.plus_seconds(i64::from(settings.lockout_duration_seconds)));
            l.failures = 0;
            l.window_start = now;
            l.recent.clear();
        }
        tx.put_lockout(l)?;
        Ok(Some(SignInStatus::InvalidCredentials))
    }

    /// The sign-in verdict for a right password: account state, then credential state.
    fn account_verdict(&self, settings: &TenantSettings, check: &Check) -> SignInStatus {
        let (Some(user), Some(cred)) = (&check.user, &check.credential) else {
            return SignInStatus::InvalidCredentials;
        };
        if !user.enabled {
            SignInStatus::AccountDisabled
        } else if cred.force_change {
            SignInStatus::MustChangePassword
        } else if expires_at(settings, cred).is_some_and(|t| t <= self.clock.now()) {
            SignInStatus::PasswordExpired
        } else {
            SignInStatus::Success
        }
    }

    fn new_session(
        &self,
        tx: &mut dyn StoreTx,
        settings: &TenantSettings,
        user_id: i64,
    ) -> CloudResult<(String, Timestamp)> {
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut_slice()).map_err(|e| CloudError::Random(e.to_string()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice());
        let now = self.clock.now();
        let expires = now.plus_seconds(i64::from(settings.session_lifetime_seconds));
        tx.insert_session(&SessionRow {
            token_hash: token_hash(&token),
            user_id,
            created_at: now,
            expires_at: expires,
        })?;
        Ok((token, expires))
    }

    fn store_cloud_password(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        password: &[u16],
        force_change: bool,
    ) -> CloudResult<Timestamp> {
        let now = self.clock.now();
        // Newer than anything the tenant has seen, so a late retry of an older on-prem
        // change is stale even if the DC's clock runs ahead of ours.
        let changed_at = match tx.credential(user.id)? {
            Some(c) if c.changed_at >= now => {
                Timestamp::from_unix_micros(c.changed_at.unix_micros() + 1)
            }
            _ => now,
        };
        tx.put_credential(
            user.id,
            &CredentialRow {
                source: PasswordSource::Cloud,
                secret: hash_cloud_password(password)?,
                changed_at,
                applied_at: now,
                force_change,
            },
        )?;
        Ok(changed_at)
    }
}

impl CloudTenant for LocalTenant {
    fn add_cloud_user(&self, upn: &str, display_name: Option<&str>) -> CloudResult<User> {
        validate_upn(upn)?;
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let row = tx.insert_user(&NewUser {
            upn,
            source_anchor: None,
            display_name,
            enabled: true,
            origin: Origin::Cloud,
            source: None,
            now: self.clock.now(),
        })?;
        self.audit(tx.as_mut(), "user.add", Some(upn), None, "created", None)?;
        let user = self.to_user(tx.as_mut(), &settings, row)?;
        tx.commit()?;
        Ok(user)
    }

    fn provision_synced_user(&self, spec: &SyncedUserSpec) -> CloudResult<ProvisionOutcome> {
        validate_upn(&spec.user_principal_name)?;
        if spec.source_anchor.is_empty() {
            return Err(CloudError::InvalidArgument("source anchor is empty".into()));
        }
        let mut tx = self.store.write()?;
        let now = self.clock.now();
        let outcome = match tx.user(UserKey::Anchor(&spec.source_anchor))? {
            Some(row) if !self.in_source(&row) => return Err(self.foreign(&spec.source_anchor)),
            Some(mut row) => {
                let changed = row.upn != spec.user_principal_name
                    || row.display_name != spec.display_name
                    || row.enabled != spec.enabled;
                if changed {
                    let detail = (row.upn != spec.user_principal_name)
                        .then(|| format!("renamed from {}", row.upn));
                    row.upn = spec.user_principal_name.clone();
                    row.display_name = spec.display_name.clone();
                    row.enabled = spec.enabled;
                    row.updated_at = now;
                    tx.update_user(&row)?;
                    self.audit(
                        tx.as_mut(),
                        "user.sync",
                        Some(&row.upn),
                        Some(&spec.source_anchor),
                        "updated",
                        detail,
                    )?;
                    ProvisionOutcome::Updated
                } else {
                    ProvisionOutcome::Unchanged
                }
            }
            None => {
                tx.insert_user(&NewUser {
                    upn: &spec.user_principal_name,
                    source_anchor: Some(&spec.source_anchor),
                    display_name: spec.display_name.as_deref(),
                    enabled: spec.enabled,
                    origin: Origin::Synced,
                    source: self.source.as_deref(),
                    now,
                })?;
                self.audit(
                    tx.as_mut(),
                    "user.sync",
                    Some(&spec.user_principal_name),
                    Some(&spec.source_anchor),
                    "created",
                    None,
                )?;
                ProvisionOutcome::Created
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    fn apply_synced_credential(&self, cred: &SyncedCredential) -> CloudResult<CredentialOutcome> {
        PhsDigest::parse(&cred.digest)?;
        // A change time far ahead would make every later change of the user stale.
        let limit = self.clock.now().plus_seconds(MAX_FUTURE_CHANGE_SECONDS);
        if cred.changed_at > limit {
            return Err(CloudError::InvalidArgument(format!(
                "the change time {} is more than a day in the future; check the DC's clock",
                cred.changed_at
            )));
        }
        let mut tx = self.store.write()?;
        let user = tx
            .user(UserKey::Anchor(&cred.source_anchor))?
            .ok_or_else(|| CloudError::AnchorNotFound(cred.source_anchor.clone()))?;
        if !self.in_source(&user) {
            return Err(self.foreign(&cred.source_anchor));
        }
        // The staleness check and the write are one statement: correct even where
        // transactions of one user could interleave.
        let refused = tx.put_credential_if_newer(
            user.id,
            &CredentialRow {
                source: PasswordSource::Synced,
                secret: cred.digest.clone(),
                changed_at: cred.changed_at,
                applied_at: self.clock.now(),
                force_change: cred.force_change_at_next_sign_in,
            },
        )?;
        if let Some(current) = refused {
            let detail = format!(
                "change of {} is not newer than the current password ({})",
                cred.changed_at, current
            );
            self.audit(
                tx.as_mut(),
                "password.sync",
                Some(&user.upn),
                Some(&cred.source_anchor),
                "stale",
                Some(detail),
            )?;
            tx.commit()?;
            return Ok(CredentialOutcome::Stale {
                current_changed_at: current,
            });
        }
        let detail = format!(
            "on-prem change at {}{}",
            cred.changed_at,
            if cred.force_change_at_next_sign_in {
                ", must change at next sign-in"
            } else {
                ""
            }
        );
        self.audit(
            tx.as_mut(),
            "password.sync",
            Some(&user.upn),
            Some(&cred.source_anchor),
            "applied",
            Some(detail),
        )?;
        tx.commit()?;
        Ok(CredentialOutcome::Applied)
    }

    fn set_password(
        &self,
        upn: &str,
        password: &[u16],
        force_change: bool,
    ) -> CloudResult<SetPasswordResult> {
        let text = password_text(password)?;
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let Some(user) = tx.user(UserKey::Upn(&upn_key(upn)))? else {
            return Err(CloudError::UserNotFound(upn.to_string()));
        };
        let problems = settings.violations(&text, &user.upn);
        if !problems.is_empty() {
            self.audit(
                tx.as_mut(),
                "password.reset",
                Some(&user.upn),
                user.source_anchor.as_deref(),
                "policy_violation",
                Some(problems.join("; ")),
            )?;
            tx.commit()?;
            return Err(CloudError::PolicyViolation(problems));
        }
        let changed_at = self.store_cloud_password(tx.as_mut(), &user, password, force_change)?;
        let expires = (settings.max_password_age_days > 0)
            .then(|| changed_at.plus_seconds(i64::from(settings.max_password_age_days) * 86_400));
        let detail = force_change.then(|| "must change at next sign-in".to_string());
        self.audit(
            tx.as_mut(),
            "password.reset",
            Some(&user.upn),
            user.source_anchor.as_deref(),
            "applied",
            detail,
        )?;
        tx.commit()?;
        Ok(SetPasswordResult {
            user_principal_name: user.upn,
            result: "applied".into(),
            changed_at,
            force_change_at_next_sign_in: force_change,
            password_expires_at: expires,
        })
    }

    fn sign_in(&self, upn: &str, password: &[u16]) -> CloudResult<SignInResult> {
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let mut check = self.check_password(tx.as_mut(), upn, password)?;
        let status = match self.lockout_verdict(tx.as_mut(), &settings, &mut check)? {
            Some(refused) => refused,
            None => self.account_verdict(&settings, &check),
        };
        let mut result = SignInResult {
            user_principal_name: upn.to_string(),
            result: status,
            session_token: None,
            session_expires_at: None,
        };
        if status == SignInStatus::Success {
            let user_id = check.user.as_ref().expect("success implies a user").id;
            let (token, expires) = self.new_session(tx.as_mut(), &settings, user_id)?;
            result.session_token = Some(token);
            result.session_expires_at = Some(expires);
        }
        let anchor = check.user.as_ref().and_then(|u| u.source_anchor.clone());
        let detail = check.user.is_none().then(|| "no such user".to_string());
        self.audit(
            tx.as_mut(),
            "sign_in",
            Some(upn),
            anchor.as_deref(),
            status.as_str(),
            detail,
        )?;
        tx.commit()?;
        Ok(result)
    }

    fn change_password(&self, upn: &str, old: &[u16], new: &[u16]) -> CloudResult<SignInResult> {
        let new_text = password_text(new)?;
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let mut check = self.check_password(tx.as_mut(), upn, old)?;
        let status = match self.lockout_verdict(tx.as_mut(), &settings, &mut check)? {
            Some(refused) => refused,
            None => self.account_verdict(&settings, &check),
        };
        let allowed = matches!(
            status,
            SignInStatus::Success
                | SignInStatus::MustChangePassword
                | SignInStatus::PasswordExpired
        );
        let anchor = check.user.as_ref().and_then(|u| u.source_anchor.clone());
        if !allowed {
            self.audit(
                tx.as_mut(),
                "password.change",
                Some(upn),
                anchor.as_deref(),
                status.as_str(),
                None,
            )?;
            tx.commit()?;
            return Ok(SignInResult {
                user_principal_name: upn.to_string(),
                result: status,
                session_token: None,
                session_expires_at: None,
            });
        }
        let user = check.user.take().expect("allowed implies a user");
        let mut problems = settings.violations(&new_text, &user.upn);
        if old == new {
            problems.push("it must differ from the current password".into());
        }
        if !problems.is_empty() {
            self.audit(
                tx.as_mut(),
                "password.change",
                Some(&user.upn),
                anchor.as_deref(),
                "policy_violation",
                Some(problems.join("; ")),
            )?;
            tx.commit()?;
            return Err(CloudError::PolicyViolation(problems));
        }
        self.store_cloud_password(tx.as_mut(), &user, new, false)?;
        let (token, expires) = self.new_session(tx.as_mut(), &settings, user.id)?;
        self.audit(
            tx.as_mut(),
            "password.change",
            Some(&user.upn),
            anchor.as_deref(),
            "applied",
            None,
        )?;
        tx.commit()?;
        Ok(SignInResult {
            user_principal_name: user.upn,
            result: SignInStatus::Success,
            session_token: Some(token),
            session_expires_at: Some(expires),
        })
    }

    fn validate_session(&self, token: &str) -> CloudResult<Option<SessionInfo>> {
        let mut tx = self.store.write()?;
        let Some(session) = tx.session(&token_hash(token))? else {
            return Ok(None);
        };
        let user = tx.user(UserKey::Id(session.user_id))?;
        tx.commit()?;
        Ok(match user {
            Some(u) if u.enabled && session.expires_at > self.clock.now() => Some(SessionInfo {
                user_principal_name: u.upn,
                created_at: session.created_at,
                expires_at: session.expires_at,
            }),
            _ => None,
        })
    }

    fn user(&self, upn: &str) -> CloudResult<Option<User>> {
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let user = match tx.user(UserKey::Upn(&upn_key(upn)))? {
            Some(row) => Some(self.to_user(tx.as_mut(), &settings, row)?),
            None => None,
        };
        tx.commit()?;
        Ok(user)
    }

    fn user_by_anchor(&self, anchor: &str) -> CloudResult<Option<User>> {
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let user = match tx.user(UserKey::Anchor(anchor))? {
            Some(row) if self.in_source(&row) => Some(self.to_user(tx.as_mut(), &settings, row)?),
            _ => None,
        };
        tx.commit()?;
        Ok(user)
    }

    fn users(&self) -> CloudResult<Vec<User>> {
        let mut tx = self.store.write()?;
        let settings = tx.settings()?;
        let rows = tx.users(self.source.as_deref())?;
        let users = rows
            .into_iter()
            .map(|row| self.to_user(tx.as_mut(), &settings, row))
            .collect::<CloudResult<Vec<_>>>()?;
        tx.commit()?;
        Ok(users)
    }

    fn audit_log(&self, limit: usize) -> CloudResult<Vec<AuditEntry>> {
        let mut tx = self.store.write()?;
        let rows = tx.audit(limit)?;
        tx.commit()?;
        Ok(rows
            .into_iter()
            .map(|a| AuditEntry {
                at: a.at,
                actor: a.actor,
                action: a.action,
                user_principal_name: a.upn,
                source_anchor: a.source_anchor,
                outcome: a.outcome,
                detail: a.detail,
            })
            .collect())
    }

    fn delete_user(&self, upn: &str) -> CloudResult<()> {
        let mut tx = self.store.write()?;
        let Some(user) = tx.user(UserKey::Upn(&upn_key(upn)))? else {
            return Err(CloudError::UserNotFound(upn.to_string()));
        };
        tx.delete_user(user.id)?;
        let detail = (user.origin == Origin::Synced)
            .then(|| "a synced user comes back with the next sync while in scope".to_string());
        self.audit(
            tx.as_mut(),
            "user.delete",
            Some(&user.upn),
            user.source_anchor.as_deref(),
            "deleted",
            detail,
        )?;
        tx.commit()
    }

    fn revoke_sessions(&self, upn: &str) -> CloudResult<u64> {
        let mut tx = self.store.write()?;
        let Some(user) = tx.user(UserKey::Upn(&upn_key(upn)))? else {
            return Err(CloudError::UserNotFound(upn.to_string()));
        };
        let revoked = tx.delete_sessions(user.id, None)?;
        self.audit(
            tx.as_mut(),
            "session.revoke",
            Some(&user.upn),
            user.source_anchor.as_deref(),
            "applied",
            Some(format!("{revoked} session(s) ended")),
        )?;
        tx.commit()?;
        Ok(revoked)
    }

    fn status(&self) -> CloudResult<TenantStatus> {
        let mut tx = self.store.write()?;
        let counts = tx.stats()?;
        tx.commit()?;
        Ok(TenantStatus {
            store: self.store.kind().to_string(),
            counts,
        })
    }

    fn settings(&self) -> CloudResult<TenantSettings> {
        let mut tx = self.store.write()?;
        let s = tx.settings()?;
        tx.commit()?;
        Ok(s)
    }

    fn update_settings(&self, settings: &TenantSettings) -> CloudResult<()> {
        settings.validate().map_err(CloudError::InvalidArgument)?;
        let mut tx = self.store.write()?;
        tx.put_settings(settings)?;
        let detail = serde_json::to_string(settings).ok();
        self.audit(
            tx.as_mut(),
            "settings.update",
            None,
            None,
            "applied",
            detail,
        )?;
        tx.commit()
    }
}
