//! Connecting and binding.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::error::{bind_error, DirectoryError};
use super::rootdse::RootDse;
use crate::target::{LdapTarget, Transport};

/// A bound connection to one domain controller.
///
/// The connection is driven by a task spawned on the tokio runtime that ran
/// [`Directory::connect`]: use the `Directory` on that same runtime only.
pub struct Directory {
    pub(crate) ldap: Ldap,
    pub(crate) url: String,
    pub(crate) timeout: Duration,
    pub(crate) realm: String,
    pub(crate) netbios_domain: String,
    pub(crate) root_dse: RootDse,
    pub(crate) page_size: i32,
    /// Whether user searches go unpaged first ([`RootDse::unpaged_reads_pay`]); a size or
    /// admin limit in the answer falls back to paging.
    pub(crate) unpaged_first: bool,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.url)
            .field("root_dse", &self.root_dse)
            .finish_non_exhaustive()
    }
}

fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    let ca_err = |detail: String| DirectoryError::CaFile {
        path: ca_file.to_path_buf(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ca_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_err("no PEM certificate in it".into()));
    }
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ca_err("no usable CA certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_err(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error inside an ldap3 error, if the failure was the TLS handshake.
fn tls_failure(e: &LdapError) -> Option<String> {
    match e {
        LdapError::Rustls { source } => Some(source.to_string()),
        LdapError::DNSName { source } => Some(source.to_string()),
        LdapError::Io { source } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|r| r.to_string()),
        _ => None,
    }
}

impl Directory {
    /// Connect to the DC named by `target`, bind with `password` (the caller reads it just
    /// before and drops it, zeroized, right after), and read the RootDSE.
    pub async fn connect(target: &LdapTarget, password: &str) -> Result<Directory, DirectoryError> {
        let url = target.url.clone();
        let timeout = target.timeout;
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
        let ca_display = target
            .transport
            .ca_file()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none)".into());
        if let Some(ca) = target.transport.ca_file() {
            settings = settings
                .set_config(tls_config(ca)?)
                .set_starttls(matches!(target.transport, Transport::StartTls { .. }));
        }
        let (conn, mut ldap) = match LdapConnAsync::with_settings(settings, &url).await {
            Ok(pair) => pair,
            Err(e) => {
                return Err(if let Some(detail) = tls_failure(&e) {
                    DirectoryError::Tls {
                        url,
                        ca_file: ca_display,
                        detail,
                    }
                } else {
                    match e {
                        LdapError::Timeout { .. } => DirectoryError::Unreachable {
                            detail: format!("no connection within {} s", timeout.as_secs()),
                            url,
                        },
                        LdapError::Io { source } => DirectoryError::Unreachable {
                            detail: source.to_string(),
                            url,
                        },
                        LdapError::LdapResult { result } => DirectoryError::Ldap {
                            operation: format!("StartTLS on {url}"),
                            rc: result.rc,
                            text: result.text,
                        },
                        other => DirectoryError::Protocol {
                            operation: format!("connect to {url}"),
                            detail: other.to_string(),
                        },
                    }
                });
            }
        };
        ldap3::drive!(conn);

        let user = target.bind_name.clone();
        let bind = ldap
            .with_timeout(timeout)
            .simple_bind(&user, password)
            .await;
        let result = bind.map_err(|e| op_error(e, &url, &format!("bind as {user}"), timeout))?;
        if result.rc != 0 {
            return Err(bind_error(result.rc, &result.text, &user, &url));
        }
        let mut dir = Directory {
            ldap,
            url,
            timeout,
            realm: target.realm.clone(),
            netbios_domain: target.netbios_domain.clone(),
            root_dse: RootDse::default(),
            page_size: super::scope::PAGE_SIZE,
            unpaged_first: false,
        };
        dir.root_dse = dir.read_root_dse().await?;
        dir.unpaged_first = dir.root_dse.unpaged_reads_pay();
        Ok(dir)
    }

    /// The RootDSE read at connect time.
    pub fn root_dse(&self) -> &RootDse {
        &self.root_dse
    }

    /// Page size of the paged searches (default [`PAGE_SIZE`](super::scope::PAGE_SIZE)).
    /// Small sizes are for tests of the paging itself: every search is then paged.
    pub fn set_page_size(&mut self, page_size: u16) {
        self.page_size = i32::from(page_size.max(1));
        self.unpaged_first = false;
    }

    /// Whether user searches go unpaged first (on Samba, by default; see
    /// [`RootDse::unpaged_reads_pay`]).
    pub fn unpaged_first(&self) -> bool {
        self.unpaged_first
    }

    /// The URL this connection uses.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Unbind and close. Dropping the `Directory` also closes the connection.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Map a client-side ldap3 failure during an operation.
pub(crate) fn op_error(
    e: LdapError,
    url: &str,
    operation: &str,
    timeout: Duration,
) -> DirectoryError {
    match e {
        LdapError::Timeout { .. } => DirectoryError::Timeout {
            url: url.to_string(),
            operation: operation.to_string(),
            seconds: timeout.as_secs(),
        },
        LdapError::LdapResult { result } => DirectoryError::Ldap {
            operation: operation.to_string(),
            rc: result.rc,
            text: result.text.trim_end_matches('\0').to_string(),
        },
        other => DirectoryError::Protocol {
            operation: operation.to_string(),
            detail: other.to_string(),
        },
    }
}
