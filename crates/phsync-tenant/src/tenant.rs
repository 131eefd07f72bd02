//! The tenant rules, written once over any [`TenantStore`]: newest credential wins,
//! synced passwords overwrite cloud ones and vice versa, cloud policy for cloud-set
//! passwords only, expiry, smart lockout, sessions, and an audit row for every credential
//! event.

use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::limits::{check_anchor, check_display_name, check_upn, shown, MAX_DIGEST_ITERATIONS};
use super::secret::{decoy_cloud_hash, hash_cloud_password, verify_cloud_password};
use super::store::{
    AuditRow, CredentialRow, LockoutRow, NewUser, RiskRow, Savepoint, SessionRow, StoreTx,
    TenantStore, UserKey, UserRow,
};
use super::{
    upn_key, AuditEntry, Clock, CloudError, CloudResult, CloudTenant, CredentialOutcome, Origin,
    PasswordInfo, PasswordSource, ProvisionOutcome, RiskEntry, SessionInfo, SetPasswordResult,
    SignInResult, SignInStatus, SyncedCredential, SyncedUserSpec, TenantSettings, TenantStatus,
    Timestamp, User, UserRisk,
};
use crate::risk::{forces_change, CLEARED_RESET, CLEARED_USER_CHANGE};
use phsync_hash::{NtHash, PhsDigest, MAX_PASSWORD_UTF16_UNITS};

/// Distinct wrong passwords remembered per account, so retrying one does not count twice.
const RECENT_WRONG_PASSWORDS: usize = 3;

/// How far ahead of the tenant's clock an on-prem change time may be (clock skew).
const MAX_FUTURE_CHANGE_SECONDS: i64 = 86_400;
/// Items per transaction of the batch calls (provisioning, credentials): one commit (and,
/// for SQLite, one WAL sync) per chunk instead of per user, while a chunk's write lock is
/// held briefly enough for sign-ins to interleave.
const BATCH_CHUNK: usize = 500;

/// What a synced user's spec must satisfy before any transaction opens.
fn check_spec(spec: &SyncedUserSpec) -> CloudResult<()> {
    check_upn(&spec.user_principal_name)?;
    check_anchor(&spec.source_anchor)?;
    if let Some(name) = &spec.display_name {
        check_display_name(name)?;
    }
    Ok(())
}

pub struct LocalTenant {
    store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
    actor: String,
    /// Set for a sync agent of the service: it sees and writes only this source's users.
    source: Option<String>,
}

/// The domain (UPN suffix) of a normalized UPN.
fn domain_of(key: &str) -> &str {
    key.split_once('@').map_or("", |(_, domain)| domain)
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

fn user_risk(r: RiskRow) -> UserRisk {
    UserRisk {
        kind: r.kind,
        detected_at: r.detected_at,
        breach_count: r.breach_count,
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What the first, short transaction of a password check read (and, in the second one,
/// what is there now).
struct Rows {
    settings: TenantSettings,
    user: Option<UserRow>,
    credential: Option<CredentialRow>,
    lockout: Option<LockoutRow>,
}

impl Rows {
    fn read(tx: &mut dyn StoreTx, key: &str) -> CloudResult<Rows> {
        let settings = tx.settings()?;
        let user = tx.user(UserKey::Upn(key))?;
        let credential = match &user {
            Some(u) => tx.credential(u.id)?,
            None => None,
        };
        let lockout = tx.lockout(key)?;
        Ok(Rows {
            settings,
            user,
            credential,
            lockout,
        })
    }

    /// Whether a password checked against `self` is checked against `now` too: same
    /// settings, same user row, same credential. Lockout rows may differ: concurrent
    /// attempts change them, and the verdict reads the current one.
    fn same_password(&self, now: &Rows) -> bool {
        let same_credential = match (&self.credential, &now.credential) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.source == b.source
                    && a.changed_at == b.changed_at
                    && a.force_change == b.force_change
                    && a.secret.as_bytes() == b.secret.as_bytes()
            }
            _ => false,
        };
        self.settings == now.settings && self.user == now.user && same_credential
    }

    fn locked(&self, now: Timestamp) -> bool {
        self.lockout
            .as_ref()
            .is_some_and(|l| l.locked_until.is_some_and(|t| t > now))
    }
}

/// A password checked with no transaction open.
struct Verified {
    password_ok: bool,
    /// The lockout salt the fingerprint was made with (the stored one, or a new one).
    salt: [u8; 10],
    fingerprint: [u8; 32],
}

/// What the second transaction concluded about an attempt.
enum Settled {
    /// The right password, and the account is not locked.
    PasswordOk,
    /// Refused by lockout (a wrong password, or a locked account).
    Refused(SignInStatus),
    /// The user's password or the settings changed between the two transactions: the
    /// check no longer says anything about the current password.
    Changed,
}

/// The fingerprint smart lockout remembers for a wrong password (cheap: 1000 iterations).
fn fingerprint(attempt: &NtHash, salt: [u8; 10]) -> CloudResult<[u8; 32]> {
    Ok(*PhsDigest::from_nt_hash(attempt, salt, 1000)?.key())
}

/// Detail of the audit row of an attempt whose check went stale twice in a row.
const CHANGED_DURING_ATTEMPT: &str = "the password changed during the attempt; not counted";

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

    /// Who the audit log names for this handle's actions ("admin:alice", "sync-agent", ...).
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn audit(
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
            risks: tx
                .risks(Some(row.id), None)?
                .into_iter()
                .map(|(_, r)| user_risk(r))
                .collect(),
            locked_until,
        })
    }

    /// The rows a password check needs, read in a short transaction of their own.
    fn snapshot(&self, key: &str) -> CloudResult<Rows> {
        let mut tx = self.store.write()?;
        let rows = Rows::read(tx.as_mut(), key)?;
        tx.commit()?;
        Ok(rows)
    }

    /// Check `password` against the snapshot with no transaction open (Argon2id and an
    /// agent-chosen PBKDF2 count must not hold the store's write lock), at the same cost
    /// whether the user exists, has a synced digest or a cloud hash: one Argon2id, one digest
    /// PBKDF2, one fingerprint PBKDF2. `None`: the account was locked, so whatever the
    /// password the answer is "locked out" and nothing is worth hashing.
    fn verify(
        &self,
        snap: &Rows,
        password: &[u16],
        attempt: &NtHash,
    ) -> CloudResult<Option<Verified>> {
        if snap.locked(self.clock.now()) {
            return Ok(None);
        }
        let decoy_digest = PhsDigest::from_parts([0; 10], 1000, [0; 32]).expect("valid decoy");
        let (digest_ok, cloud_ok) = match &snap.credential {
            Some(c) if c.source == PasswordSource::Synced => {
                let ok = PhsDigest::parse(&c.secret)
                    .map(|d| d.matches_nt_hash(attempt))
                    .unwrap_or(false);
                verify_cloud_password(decoy_cloud_hash(), password);
                (ok, false)
            }
            Some(c) => {
                decoy_digest.matches_nt_hash(attempt);
                (false, verify_cloud_password(&c.secret, password))
            }
            None => {
                decoy_digest.matches_nt_hash(attempt);
                verify_cloud_password(decoy_cloud_hash(), password);
                (false, false)
            }
        };
        let salt = match &snap.lockout {
            Some(l) => l.salt,
            None => {
                let mut salt = [0u8; 10];
                getrandom::fill(&mut salt).map_err(|e| CloudError::Random(e.to_string()))?;
                salt
            }
        };
        Ok(Some(Verified {
            password_ok: snap.user.is_some() && (digest_ok || cloud_ok),
            salt,
            fingerprint: fingerprint(attempt, salt)?,
        }))
    }

    /// The second transaction of a password check: lockout against the rows as they are
    /// now (`current`, read locked), so concurrent attempts all count.
    fn settle(
        &self,
        tx: &mut dyn StoreTx,
        key: &str,
        snap: &Rows,
        current: &Rows,
        verified: Option<&Verified>,
        attempt: &NtHash,
    ) -> CloudResult<Settled> {
        let now = self.clock.now();
        if current.locked(now) {
            return Ok(Settled::Refused(SignInStatus::LockedOut));
        }
        // Unlocked since the snapshot (nothing was hashed), or a new password, user or
        // policy: the check is stale. Never grant (nor count) on a stale check.
        let Some(verified) = verified else {
            return Ok(Settled::Changed);
        };
        if !snap.same_password(current) {
            return Ok(Settled::Changed);
        }
        let settings = &current.settings;
        let mut l = current.lockout.clone().unwrap_or_else(|| LockoutRow {
            upn_key: key.to_string(),
            failures: 0,
            window_start: now,
            locked_until: None,
            salt: verified.salt,
            recent: Vec::new(),
        });
        if verified.password_ok {
            if current.lockout.is_some() {
                tx.delete_lockout(key)?;
            }
            return Ok(Settled::PasswordOk);
        }
        // A row written by a concurrent attempt after the snapshot has its own salt.
        let fingerprint = if l.salt == verified.salt {
            verified.fingerprint
        } else {
            fingerprint(attempt, l.salt)?
        };
        if l.window_start
            .plus_seconds(i64::from(settings.lockout_window_seconds))
            <= now
        {
            l.failures = 0;
            l.window_start = now;
            l.recent.clear();
        }
        if !l.recent.contains(&fingerprint) {
            l.failures += 1;
            l.recent.push(fingerprint);
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
        tx.put_lockout(&l)?;
        Ok(Settled::Refused(SignInStatus::InvalidCredentials))
    }

    /// The sign-in verdict for a right password: account state, then credential state.
    fn account_verdict(&self, rows: &Rows) -> SignInStatus {
        let (Some(user), Some(cred)) = (&rows.user, &rows.credential) else {
            return SignInStatus::InvalidCredentials;
        };
        if !user.enabled {
            SignInStatus::AccountDisabled
        } else if cred.force_change {
            SignInStatus::MustChangePassword
        } else if expires_at(&rows.settings, cred).is_some_and(|t| t <= self.clock.now()) {
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
    ) -> CloudResult<(String, [u8; 32], Timestamp)> {
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut_slice()).map_err(|e| CloudError::Random(e.to_string()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice());
        let now = self.clock.now();
        let expires = now.plus_seconds(i64::from(settings.session_lifetime_seconds));
        let hash = token_hash(&token);
        tx.insert_session(&SessionRow {
            token_hash: hash,
            user_id,
            created_at: now,
            expires_at: expires,
        })?;
        Ok((token, hash, expires))
    }

    /// Store an already hashed (Argon2id, outside any transaction) cloud password.
    fn store_cloud_password(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        secret: Zeroizing<String>,
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
                secret,
                changed_at,
                applied_at: now,
                force_change,
            },
        )?;
        Ok(changed_at)
    }

    /// A sync agent may write a user into `domain` only if the domain is its source's: claimed
    /// by it, or unclaimed and holding no user but its own synced ones (then it claims it,
    /// in this transaction). Administrators and the embedded tenant are not asked.
    fn claim_domain(&self, tx: &mut dyn StoreTx, source: &str, domain: &str) -> CloudResult<()> {
        match tx.domain_claim(domain)? {
            Some(owner) if owner == source => Ok(()),
            Some(_) => Err(CloudError::DomainOwned(shown(domain))),
            None if tx.domain_has_others(domain, source)? => {
                Err(CloudError::DomainOwned(shown(domain)))
            }
            None => tx.claim_domain(domain, source),
        }
    }

    /// Why a user's own change to `new` is refused; empty when it may go through.
    /// Provision one synced user inside `tx` (checked by [`check_spec`]); the caller commits.
    fn provision_in(
        &self,
        tx: &mut dyn StoreTx,
        spec: &SyncedUserSpec,
    ) -> CloudResult<ProvisionOutcome> {
        let anchor = spec.source_anchor.as_str();
        let now = self.clock.now();
        let existing = tx.user(UserKey::Anchor(anchor))?;
        if let Some(source) = &self.source {
            // An anchor stays its source's after its user is deleted (by an administrator),
            // so no other source can take the user over meanwhile. The rightful owner must
            // hear why it is refused: a distinct error, unlike credentials (see below).
            let owned = match &existing {
                Some(row) => row.source.as_deref() == Some(source.as_str()),
                None => tx
                    .anchor_claim(anchor)?
                    .is_none_or(|owner| owner == *source),
            };
            if !owned {
                return Err(CloudError::AnchorOwned(shown(anchor)));
            }
            let key = upn_key(&spec.user_principal_name);
            let into = domain_of(&key);
            let moves = existing
                .as_ref()
                .is_none_or(|row| domain_of(&upn_key(&row.upn)) != into);
            if moves {
                self.claim_domain(tx, source, into)?;
            }
        }
        let outcome = match existing {
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
                        tx,
                        "user.sync",
                        Some(&row.upn),
                        Some(anchor),
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
                    source_anchor: Some(anchor),
                    display_name: spec.display_name.as_deref(),
                    enabled: spec.enabled,
                    origin: Origin::Synced,
                    source: self.source.as_deref(),
                    now,
                })?;
                if let Some(source) = &self.source {
                    tx.claim_anchor(anchor, source)?;
                }
                self.audit(
                    tx,
                    "user.sync",
                    Some(&spec.user_principal_name),
                    Some(anchor),
                    "created",
                    None,
                )?;
                ProvisionOutcome::Created
            }
        };
        Ok(outcome)
    }

    /// Apply one synced credential inside `tx` (checked by [`LocalTenant::check_credential`]);
    /// the caller commits.
    fn apply_in(
        &self,
        tx: &mut dyn StoreTx,
        cred: &SyncedCredential,
    ) -> CloudResult<CredentialOutcome> {
        // Another source's anchor answers exactly like a missing one: an agent must not
        // learn which anchors other sources hold.
        let user = tx
            .user(UserKey::Anchor(&cred.source_anchor))?
            .filter(|u| self.in_source(u))
            .ok_or_else(|| CloudError::AnchorNotFound(shown(&cred.source_anchor)))?;
        // The staleness check and the write are one statement: correct even where
        // transactions of one user could interleave.
        let refused = tx.put_credential_if_newer(
            user.id,
            &CredentialRow {
                source: PasswordSource::Synced,
                secret: cred.digest.clone(),
                changed_at: cred.changed_at,
                applied_at: self.clock.now(),
                force_change: cred.force_change_at_next_sign_in
                    || forces_change(cred.leak_check.as_ref()),
            },
        )?;
        self.follow_leak_check(tx, &user, cred, refused.is_none())?;
        if let Some(current) = refused {
            let detail = format!(
                "change of {} is not newer than the current password ({})",
                cred.changed_at, current
            );
            self.audit(
                tx,
                "password.sync",
                Some(&user.upn),
                Some(&cred.source_anchor),
                "stale",
                Some(detail),
            )?;
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
            tx,
            "password.sync",
            Some(&user.upn),
            Some(&cred.source_anchor),
            "applied",
            Some(detail),
        )?;
        Ok(CredentialOutcome::Applied)
    }

    /// What a credential must satisfy before any transaction opens.
    fn check_credential(&self, cred: &SyncedCredential) -> CloudResult<()> {
        check_anchor(&cred.source_anchor)?;
        let digest = PhsDigest::parse(&cred.digest)?;
        // Every sign-in of the user pays the sender's iteration count.
        if digest.iterations() > MAX_DIGEST_ITERATIONS {
            return Err(CloudError::InvalidArgument(format!(
                "the digest asks for {} PBKDF2 iterations; the tenant accepts at most {MAX_DIGEST_ITERATIONS} (Azure AD Connect uses 1000)",
                digest.iterations()
            )));
        }
        // A change time far ahead would make every later change of the user stale.
        let limit = self.clock.now().plus_seconds(MAX_FUTURE_CHANGE_SECONDS);
        if cred.changed_at > limit {
            return Err(CloudError::InvalidArgument(format!(
                "the change time {} is more than a day in the future; check the DC's clock",
                cred.changed_at
            )));
        }
        Ok(())
    }

    /// Run `op` on every item, [`BATCH_CHUNK`] items per transaction, each item inside a
    /// savepoint so that one item's failure undoes only its own writes: per-item results
    /// as if each had its own transaction, at one commit per chunk. `Err` when a chunk's
    /// transaction cannot be opened or committed; chunks committed before stay applied
    /// (provisioning and newer-wins credentials are safe to send again).
    fn batched<T, R>(
        &self,
        items: &[T],
        check: impl Fn(&T) -> CloudResult<()>,
        op: impl Fn(&mut dyn StoreTx, &T) -> CloudResult<R>,
    ) -> CloudResult<Vec<CloudResult<R>>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH_CHUNK) {
            let mut tx = self.store.write()?;
            for item in chunk {
                if let Err(e) = check(item) {
                    out.push(Err(e));
                    continue;
                }
                tx.savepoint(Savepoint::Begin)?;
                let result = op(tx.as_mut(), item);
                if result.is_err() {
                    tx.savepoint(Savepoint::Undo)?;
                }
                tx.savepoint(Savepoint::End)?;
                out.push(result);
            }
            tx.commit()?;
        }
        Ok(out)
    }

    fn change_problems(
        settings: &TenantSettings,
        new_text: &str,
        upn: &str,
        old: &[u16],
        new: &[u16],
    ) -> Vec<String> {
        let mut problems = settings.violations(new_text, upn);
        if old == new {
            problems.push("it must differ from the current password".into());
        }
        problems
    }
}

impl CloudTenant for LocalTenant {
    fn add_cloud_user(&self, upn: &str, display_name: Option<&str>) -> CloudResult<User> {
        check_upn(upn)?;
        if let Some(name) = display_name {
            check_display_name(name)?;
        }
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
        check_spec(spec)?;
        let mut tx = self.store.write()?;
        let outcome = self.provision_in(tx.as_mut(), spec)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn provision_synced_users(
        &self,
        specs: &[SyncedUserSpec],
    ) -> CloudResult<Vec<CloudResult<ProvisionOutcome>>> {
        self.batched(specs, check_spec, |tx, spec| self.provision_in(tx, spec))
    }

    fn apply_synced_credential(&self, cred: &SyncedCredential) -> CloudResult<CredentialOutcome> {
        self.check_credential(cred)?;
        let mut tx = self.store.write()?;
        let outcome = self.apply_in(tx.as_mut(), cred)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn apply_synced_credentials(
        &self,
        creds: &[SyncedCredential],
    ) -> CloudResult<Vec<CloudResult<CredentialOutcome>>> {
        self.batched(
            creds,
            |c| self.check_credential(c),
            |tx, c| self.apply_in(tx, c),
        )
    }

    /// Hashes the new password before the write transaction, and ends every session of the
    /// user: a reset is how an administrator takes an account back.
    fn set_password(
        &self,
        upn: &str,
        password: &[u16],
        force_change: bool,
    ) -> CloudResult<SetPasswordResult> {
        check_upn(upn)?;
        let text = password_text(password)?;
        let key = upn_key(upn);
        let mut round = 0;
        loop {
            let settings = {
                let mut tx = self.store.write()?;
                let settings = tx.settings()?;
                let exists = tx.user(UserKey::Upn(&key))?.is_some();
                tx.commit()?;
                if !exists {
                    return Err(CloudError::UserNotFound(shown(upn)));
                }
                settings
            };
            // The policy reads the name case-insensitively: `upn` serves as the stored one.
            let secret = if round > 0 || settings.violations(&text, upn).is_empty() {
                Some(hash_cloud_password(password)?)
            } else {
                None
            };
            let mut tx = self.store.write()?;
            let settings = tx.settings()?;
            let Some(user) = tx.user(UserKey::Upn(&key))? else {
                return Err(CloudError::UserNotFound(shown(upn)));
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
            let Some(secret) = secret else {
                // The policy was relaxed since the first look: hash this time.
                round += 1;
                continue;
            };
            let changed_at = self.store_cloud_password(tx.as_mut(), &user, secret, force_change)?;
            self.clear_leak_mark(tx.as_mut(), &user, CLEARED_RESET)?;
            let revoked = tx.delete_sessions(user.id, None)?;
            let expires = (settings.max_password_age_days > 0).then(|| {
                changed_at.plus_seconds(i64::from(settings.max_password_age_days) * 86_400)
            });
            let mut detail = format!("{revoked} session(s) ended");
            if force_change {
                detail.push_str("; must change at next sign-in");
            }
            self.audit(
                tx.as_mut(),
                "password.reset",
                Some(&user.upn),
                user.source_anchor.as_deref(),
                "applied",
                Some(detail),
            )?;
            tx.commit()?;
            return Ok(SetPasswordResult {
                user_principal_name: user.upn,
                result: "applied".into(),
                changed_at,
                force_change_at_next_sign_in: force_change,
                password_expires_at: expires,
            });
        }
    }

    /// Two short transactions around a password check that runs with none open (see
    /// [`LocalTenant::verify`]). If the user's password, the user or the settings change in
    /// between, the check is stale: it is run once more; stale twice, the attempt is
    /// refused as invalid without counting towards lockout (never granted on a stale check).
    fn sign_in(&self, upn: &str, password: &[u16]) -> CloudResult<SignInResult> {
        check_upn(upn)?;
        let attempt = NtHash::from_utf16(password)?;
        let key = upn_key(upn);
        let mut round = 0;
        loop {
            let snap = self.snapshot(&key)?;
            let verified = self.verify(&snap, password, &attempt)?;
            let mut tx = self.store.write()?;
            let current = Rows::read(tx.as_mut(), &key)?;
            let mut detail = current.user.is_none().then(|| "no such user".to_string());
            let status = match self.settle(
                tx.as_mut(),
                &key,
                &snap,
                &current,
                verified.as_ref(),
                &attempt,
            )? {
                Settled::Changed if round == 0 => {
                    round += 1;
                    continue;
                }
                Settled::Changed => {
                    detail = Some(CHANGED_DURING_ATTEMPT.into());
                    SignInStatus::InvalidCredentials
                }
                Settled::Refused(status) => status,
                Settled::PasswordOk => self.account_verdict(&current),
            };
            let mut result = SignInResult {
                user_principal_name: upn.to_string(),
                result: status,
                session_token: None,
                session_expires_at: None,
            };
            if status == SignInStatus::Success {
                let user_id = current.user.as_ref().expect("success implies a user").id;
                let (token, _, expires) =
                    self.new_session(tx.as_mut(), &current.settings, user_id)?;
                result.session_token = Some(token);
                result.session_expires_at = Some(expires);
            }
            let anchor = current.user.as_ref().and_then(|u| u.source_anchor.clone());
            self.audit(
                tx.as_mut(),
                "sign_in",
                Some(upn),
                anchor.as_deref(),
                status.as_str(),
                detail,
            )?;
            tx.commit()?;
            return Ok(result);
        }
    }

    /// As [`CloudTenant::sign_in`], with the new password hashed before the second
    /// transaction. A change ends every other session of the user: only the one it returns
    /// stays.
    fn change_password(&self, upn: &str, old: &[u16], new: &[u16]) -> CloudResult<SignInResult> {
        check_upn(upn)?;
        let new_text = password_text(new)?;
        let attempt = NtHash::from_utf16(old)?;
        let key = upn_key(upn);
        let mut round = 0;
        loop {
            let snap = self.snapshot(&key)?;
            let verified = self.verify(&snap, old, &attempt)?;
            // Worth hashing only if the change can go through; `settle` makes sure the
            // second transaction sees what this decision was made on.
            let may_change = verified.as_ref().is_some_and(|v| v.password_ok)
                && snap.user.as_ref().is_some_and(|u| {
                    Self::change_problems(&snap.settings, &new_text, &u.upn, old, new).is_empty()
                });
            let new_secret = if may_change {
                Some(hash_cloud_password(new)?)
            } else {
                None
            };
            let mut tx = self.store.write()?;
            let current = Rows::read(tx.as_mut(), &key)?;
            let mut detail = None;
            let status = match self.settle(
                tx.as_mut(),
                &key,
                &snap,
                &current,
                verified.as_ref(),
                &attempt,
            )? {
                Settled::Changed if round == 0 => {
                    round += 1;
                    continue;
                }
                Settled::Changed => {
                    detail = Some(CHANGED_DURING_ATTEMPT.to_string());
                    SignInStatus::InvalidCredentials
                }
                Settled::Refused(status) => status,
                Settled::PasswordOk => self.account_verdict(&current),
            };
            let allowed = matches!(
                status,
                SignInStatus::Success
                    | SignInStatus::MustChangePassword
                    | SignInStatus::PasswordExpired
            );
            let anchor = current.user.as_ref().and_then(|u| u.source_anchor.clone());
            let (true, Some(user)) = (allowed, current.user.as_ref()) else {
                self.audit(
                    tx.as_mut(),
                    "password.change",
                    Some(upn),
                    anchor.as_deref(),
                    status.as_str(),
                    detail,
                )?;
                tx.commit()?;
                return Ok(SignInResult {
                    user_principal_name: upn.to_string(),
                    result: status,
                    session_token: None,
                    session_expires_at: None,
                });
            };
            let problems = Self::change_problems(&current.settings, &new_text, &user.upn, old, new);
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
            // Settled on the snapshot's user, credential and settings: the same decision.
            let Some(secret) = new_secret else {
                return Err(CloudError::Storage(
                    "password change: the checked and the current state disagree".into(),
                ));
            };
            self.store_cloud_password(tx.as_mut(), user, secret, false)?;
            self.clear_leak_mark(tx.as_mut(), user, CLEARED_USER_CHANGE)?;
            tx.delete_sessions(user.id, None)?;
            let (token, _, expires) = self.new_session(tx.as_mut(), &current.settings, user.id)?;
            self.audit(
                tx.as_mut(),
                "password.change",
                Some(&user.upn),
                anchor.as_deref(),
                "applied",
                None,
            )?;
            tx.commit()?;
            return Ok(SignInResult {
                user_principal_name: user.upn.clone(),
                result: SignInStatus::Success,
                session_token: Some(token),
                session_expires_at: Some(expires),
            });
        }
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
        check_upn(upn)?;
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
        // Another source's user reads as no user (as in `apply_synced_credential`).
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
        check_upn(upn)?;
        let mut tx = self.store.write()?;
        let Some(user) = tx.user(UserKey::Upn(&upn_key(upn)))? else {
            return Err(CloudError::UserNotFound(shown(upn)));
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
        check_upn(upn)?;
        let mut tx = self.store.write()?;
        let Some(user) = tx.user(UserKey::Upn(&upn_key(upn)))? else {
            return Err(CloudError::UserNotFound(shown(upn)));
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

    fn risks(&self) -> CloudResult<Vec<RiskEntry>> {
        let mut tx = self.store.write()?;
        let rows = tx.risks(None, self.source.as_deref())?;
        tx.commit()?;
        Ok(rows
            .into_iter()
            .map(|(user, r)| RiskEntry {
                user_principal_name: user.upn,
                source_anchor: user.source_anchor,
                kind: r.kind,
                detected_at: r.detected_at,
                breach_count: r.breach_count,
            })
            .collect())
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
