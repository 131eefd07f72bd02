//! API tokens: `phs_<id>_<secret>`. The id is public and finds the row; only SHA-256 of the
//! 256-bit secret is stored, and it is compared in constant time.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use phsync_tenant::store::{TenantStore, TokenRole, TokenRow};
use phsync_tenant::{CloudError, CloudResult, Timestamp};

/// Who a request comes from, once its token checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub role: TokenRole,
    pub source: Option<String>,
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.name)
    }
}

fn random_bytes<const N: usize>() -> CloudResult<Zeroizing<[u8; N]>> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut_slice()).map_err(|e| CloudError::Storage(format!("random: {e}")))?;
    Ok(b)
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new token; the returned string is the only copy of its secret.
pub fn issue(
    store: &dyn TenantStore,
    role: TokenRole,
    name: &str,
    source: Option<&str>,
) -> CloudResult<(TokenRow, Zeroizing<String>)> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(CloudError::InvalidArgument(
            "a token name must be 1-64 printable characters".into(),
        ));
    }
    match (role, source) {
        (TokenRole::Agent, None) | (TokenRole::Agent, Some("")) => {
            return Err(CloudError::InvalidArgument(
                "an agent token needs a source (the on-prem directory it syncs, e.g. phs.test)"
                    .into(),
            ))
        }
        (TokenRole::Admin, Some(_)) => {
            return Err(CloudError::InvalidArgument(
                "an admin token has no source".into(),
            ))
        }
        _ => {}
    }
    if let Some(source) = source {
        if source.chars().count() > 256 || source.chars().any(|c| c.is_control()) {
            return Err(CloudError::InvalidArgument(
                "a source must be at most 256 printable characters".into(),
            ));
        }
    }
    let id = hex::encode(random_bytes::<8>()?.as_slice());
    let secret = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?.as_slice()),
    );
    let row = TokenRow {
        id: id.clone(),
        name: name.to_string(),
        role,
        source: source.map(str::to_string),
        secret_hash: secret_hash(&secret),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    let mut tx = store.write()?;
    tx.insert_token(&row)?;
    tx.commit()?;
    Ok((row, Zeroizing::new(format!("phs_{id}_{}", secret.as_str()))))
}

/// The caller a presented token belongs to; `None` for anything malformed, unknown, revoked
/// or wrong, without saying which.
pub fn authenticate(store: &dyn TenantStore, presented: &str) -> CloudResult<Option<Caller>> {
    let Some(rest) = presented.strip_prefix("phs_") else {
        return Ok(None);
    };
    let Some((id, secret)) = rest.split_once('_') else {
        return Ok(None);
    };
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let mut tx = store.write()?;
    let row = tx.token(id)?;
    tx.commit()?;
    // Hash even when there is no row, so a miss costs what a wrong secret costs.
    let presented_hash = secret_hash(secret);
    let Some(row) = row else {
        return Ok(None);
    };
    let matches: bool = presented_hash.ct_eq(&row.secret_hash).into();
    if !matches || row.revoked_at.is_some() {
        return Ok(None);
    }
    Ok(Some(Caller {
        token_id: row.id,
        name: row.name,
        role: row.role,
        source: row.source,
    }))
}

pub fn revoke(store: &dyn TenantStore, id: &str) -> CloudResult<()> {
    let mut tx = store.write()?;
    let revoked = tx.revoke_token(id, Timestamp::now())?;
    tx.commit()?;
    if revoked {
        Ok(())
    } else {
        Err(CloudError::InvalidArgument(format!(
            "no active token with id {id:?}"
        )))
    }
}

pub fn list(store: &dyn TenantStore) -> CloudResult<Vec<TokenRow>> {
    let mut tx = store.write()?;
    let rows = tx.tokens()?;
    tx.commit()?;
    Ok(rows)
}
