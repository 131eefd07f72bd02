//! Thin wrapper over the `sspi` crate (Devolutions): NTLM and Kerberos client contexts
//! with sign + seal for DCE/RPC at RPC_C_AUTHN_LEVEL_PKT_PRIVACY.
//!
//! sspi instruments its functions with `tracing` and records arguments (message buffers,
//! credentials) in its spans. No hash or key may ever reach a log, so every call into
//! sspi runs with a no-op tracing subscriber.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials, DataRepresentation,
    EncryptionFlags, ErrorKind, Kerberos, KerberosConfig, NetworkRequest, Ntlm, SecurityBuffer,
    SecurityBufferFlags, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl, Username,
};
use zeroize::Zeroizing;

use super::error::{DrsrError, Result};
use super::pdu::{RPC_C_AUTHN_GSS_KERBEROS, RPC_C_AUTHN_WINNT};
use super::secrets::SessionKey;

fn quiet<T>(f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
}

/// Which credentials to authenticate with.
pub(crate) enum Mechanism {
    Ntlm {
        domain: String,
        user: String,
        /// Password, or `$NTLM$:<hex>` for pass-the-hash (sspi's convention).
        secret: Zeroizing<String>,
    },
    Kerberos {
        realm: String,
        kdc: String,
        user: String,
        password: Zeroizing<String>,
        spn: String,
    },
}

enum Inner {
    Ntlm {
        ctx: Box<Ntlm>,
        creds: Option<sspi::AuthIdentityBuffers>,
    },
    Kerberos {
        ctx: Box<Kerberos>,
        creds: Option<sspi::CredentialsBuffers>,
        spn: String,
        kdc: String,
        timeout: Duration,
    },
}

/// One client security context.
pub(crate) struct SecurityContext {
    inner: Inner,
    target: String,
}

pub(crate) struct Step {
    pub token: Vec<u8>,
    pub complete: bool,
}

/// Largest KDC reply (Kerberos over TCP, RFC 4120 §7.2.2 length prefix) read.
const MAX_KDC_REPLY_LEN: usize = 1 << 20;

/// KDC error names that mean "these credentials are not good".
const KDC_CREDENTIAL_ERRORS: &[&str] = &[
    "pre-authentication information was invalid",
    "KDC_ERR_PREAUTH_FAILED",
    "KDC_ERR_C_PRINCIPAL_UNKNOWN",
    "KDC_ERR_CLIENT_REVOKED",
    "KDC_ERR_KEY_EXPIRED",
    "KDC_ERR_POLICY",
];

fn map_sspi(stage: &'static str, e: sspi::Error) -> DrsrError {
    match e.error_type {
        _ if e.description.contains("server not found") => DrsrError::Auth {
            stage,
            detail: "the KDC does not know the service principal name (try host/<dc-fqdn>)".into(),
        },
        ErrorKind::LogonDenied
        | ErrorKind::NoCredentials
        | ErrorKind::UnknownCredentials
        | ErrorKind::IncompleteCredentials => DrsrError::InvalidCredentials {
            detail: format!("{:?}: {}", e.error_type, sanitize(&e.description)),
        },
        _ if KDC_CREDENTIAL_ERRORS
            .iter()
            .any(|k| e.description.contains(k)) =>
        {
            DrsrError::InvalidCredentials {
                detail: KDC_CREDENTIAL_ERRORS
                    .iter()
                    .find(|k| e.description.contains(*k))
                    .map(|k| format!("KDC error {k}"))
                    .unwrap_or_default(),
            }
        }
        ErrorKind::MessageAltered => DrsrError::SignatureFailure { what: stage },
        _ => DrsrError::Auth {
            stage,
            // sspi's descriptions name error kinds and protocol states; they carry no
            // secrets (credentials are only ever in its buffers).
            detail: format!("{:?}: {}", e.error_type, sanitize(&e.description)),
        },
    }
}

/// sspi descriptions can append raw KDC error data (salts, hex blobs): keep the words.
fn sanitize(d: &str) -> String {
    let d = d.split(". Additional error data").next().unwrap_or(d);
    d.chars().take(200).collect()
}

fn requirements() -> ClientRequestFlags {
    ClientRequestFlags::CONFIDENTIALITY
        | ClientRequestFlags::INTEGRITY
        | ClientRequestFlags::SEQUENCE_DETECT
        | ClientRequestFlags::REPLAY_DETECT
        | ClientRequestFlags::MUTUAL_AUTH
        | ClientRequestFlags::USE_DCE_STYLE
}

/// Blocking KDC client for sspi's Kerberos generator (TCP, RFC 4120 framing; sspi passes
/// and expects the 4-byte length prefix).
struct KdcClient {
    addr: String,
    timeout: Duration,
}

impl sspi::network_client::NetworkClient for KdcClient {
    fn send(&self, request: &NetworkRequest) -> sspi::Result<Vec<u8>> {
        let io = |e: std::io::Error| {
            sspi::Error::new(
                ErrorKind::NoAuthenticatingAuthority,
                format!("KDC {}: {e}", self.addr),
            )
        };
        let addr = self
            .addr
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| io(std::io::Error::other("no address")))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        s.write_all(&request.data).map_err(io)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(io)?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_KDC_REPLY_LEN {
            return Err(io(std::io::Error::other("KDC reply larger than 1 MiB")));
        }
        let mut out = vec![0u8; 4 + n];
        out[..4].copy_from_slice(&len);
        s.read_exact(&mut out[4..]).map_err(io)?;
        Ok(out)
    }
}

impl SecurityContext {
    pub fn new(mech: Mechanism, timeout: Duration) -> Result<SecurityContext> {
        quiet(|| match mech {
            Mechanism::Ntlm {
                domain,
                user,
                secret,
            } => {
                let mut ctx = Box::new(Ntlm::new());
                let identity = AuthIdentity {
                    username: Username::new(&user, Some(&domain)).map_err(|e| {
                        DrsrError::InvalidArgument(format!("user name {user:?}: {e}"))
                    })?,
                    password: secret.to_string().into(),
                };
                let acq = ctx
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&identity)
                    .execute(&mut *ctx)
                    .map_err(|e| map_sspi("acquiring NTLM credentials", e))?;
                Ok(SecurityContext {
                    inner: Inner::Ntlm {
                        ctx,
                        creds: acq.credentials_handle,
                    },
                    target: String::new(),
                })
            }
            Mechanism::Kerberos {
                realm,
                kdc,
                user,
                password,
                spn,
            } => {
                let config =
                    KerberosConfig::new_with_kdc_url(&format!("tcp://{kdc}"), "phsync".to_owned());
                let mut ctx = Box::new(
                    Kerberos::new_client_from_config(config)
                        .map_err(|e| map_sspi("creating the Kerberos context", e))?,
                );
                let identity = AuthIdentity {
                    username: Username::new_upn(&user, &realm.to_ascii_lowercase()).map_err(
                        |e| DrsrError::InvalidArgument(format!("user name {user:?}: {e}")),
                    )?,
                    password: password.to_string().into(),
                };
                let creds: Credentials = identity.into();
                let acq = ctx
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&creds)
                    .execute(&mut *ctx)
                    .map_err(|e| map_sspi("acquiring Kerberos credentials", e))?;
                Ok(SecurityContext {
                    inner: Inner::Kerberos {
                        ctx,
                        creds: acq.credentials_handle,
                        spn: spn.clone(),
                        kdc,
                        timeout,
                    },
                    target: spn,
                })
            }
        })
    }

    pub fn auth_type(&self) -> u8 {
        match self.inner {
            Inner::Ntlm { .. } => RPC_C_AUTHN_WINNT,
            Inner::Kerberos { .. } => RPC_C_AUTHN_GSS_KERBEROS,
        }
    }

    pub fn is_kerberos(&self) -> bool {
        matches!(self.inner, Inner::Kerberos { .. })
    }

    /// One InitializeSecurityContext call. Blocking (Kerberos talks to the KDC): callers
    /// run it on a blocking thread.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Step> {
        let target = self.target.clone();
        quiet(|| {
            // Kerberos wants an input buffer even on the first call (empty then).
            let mut input_bufs = vec![SecurityBuffer::new(
                input.map(<[u8]>::to_vec).unwrap_or_default(),
                BufferType::Token,
            )];
            let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
            let status = match &mut self.inner {
                Inner::Ntlm { ctx, creds } => {
                    let mut b = ctx
                        .initialize_security_context()
                        .with_credentials_handle(creds)
                        .with_context_requirements(requirements())
                        .with_target_data_representation(DataRepresentation::Native)
                        .with_target_name(&target);
                    if input.is_some() {
                        b = b.with_input(&mut input_bufs);
                    }
                    let mut b = b.with_output(&mut output);
                    let mut generator = ctx
                        .initialize_security_context_impl(&mut b)
                        .map_err(|e| map_sspi("NTLM authentication", e))?;
                    let result = generator
                        .resolve_to_result()
                        .map_err(|e| map_sspi("NTLM authentication", e))?;
                    result.status
                }
                Inner::Kerberos {
                    ctx,
                    creds,
                    spn,
                    kdc,
                    timeout,
                } => {
                    let client = KdcClient {
                        addr: kdc.clone(),
                        timeout: *timeout,
                    };
                    let mut b = ctx
                        .initialize_security_context()
                        .with_credentials_handle(creds)
                        .with_context_requirements(requirements())
                        .with_target_data_representation(DataRepresentation::Native)
                        .with_target_name(spn);
                    b = b.with_input(&mut input_bufs);
                    let mut b = b.with_output(&mut output);
                    let mut generator = ctx
                        .initialize_security_context_impl(&mut b)
                        .map_err(|e| map_sspi("Kerberos authentication", e))?;
                    let result = generator
                        .resolve_with_client(&client)
                        .map_err(|e| map_sspi("Kerberos authentication", e))?;
                    result.status
                }
            };
            let token = std::mem::take(&mut output[0].buffer);
            let complete = match status {
                SecurityStatus::Ok | SecurityStatus::CompleteNeeded => true,
                SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue => false,
                other => {
                    return Err(DrsrError::Auth {
                        stage: "InitializeSecurityContext",
                        detail: format!("unexpected status {other:?}"),
                    })
                }
            };
            Ok(Step { token, complete })
        })
    }

    /// Bytes of auth_value (signature / wrap token) a sealed PDU carries.
    pub fn trailer_len(&mut self) -> Result<usize> {
        quiet(|| {
            let sizes = match &mut self.inner {
                Inner::Ntlm { ctx, .. } => ctx.query_context_sizes(),
                Inner::Kerberos { ctx, .. } => ctx.query_context_sizes(),
            }
            .map_err(|e| map_sspi("querying context sizes", e))?;
            Ok(sizes.security_trailer as usize)
        })
    }

    pub fn session_key(&mut self) -> Result<SessionKey> {
        quiet(|| {
            let keys = match &mut self.inner {
                Inner::Ntlm { ctx, .. } => ctx.query_context_session_key(),
                Inner::Kerberos { ctx, .. } => ctx.query_context_session_key(),
            }
            .map_err(|e| map_sspi("querying the session key", e))?;
            Ok(SessionKey::new(keys.session_key.as_ref().clone()))
        })
    }

    /// Seal `data` in place; `header` and `trailer` are signed but not encrypted.
    /// Returns the auth_value.
    pub fn seal(
        &mut self,
        header: &[u8],
        data: &mut [u8],
        trailer: &[u8],
        sign_header: bool,
    ) -> Result<Vec<u8>> {
        let token_len = self.trailer_len()?;
        quiet(|| {
            let mut h = header.to_vec();
            let mut t = trailer.to_vec();
            let mut token = vec![0u8; token_len];
            let ro = if sign_header {
                SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM
            } else {
                SecurityBufferFlags::SECBUFFER_READONLY
            };
            let mut bufs = [
                SecurityBufferRef::data_buf(&mut h).with_flags(ro),
                SecurityBufferRef::data_buf(data),
                SecurityBufferRef::data_buf(&mut t).with_flags(ro),
                SecurityBufferRef::token_buf(&mut token),
            ];
            match &mut self.inner {
                Inner::Ntlm { ctx, .. } => ctx.encrypt_message(EncryptionFlags::empty(), &mut bufs),
                Inner::Kerberos { ctx, .. } => {
                    ctx.encrypt_message(EncryptionFlags::empty(), &mut bufs)
                }
            }
            .map_err(|e| map_sspi("sealing a request", e))?;
            let sig = bufs[3].data().to_vec();
            Ok(sig)
        })
    }

    /// Verify and unseal a PDU's stub in place.
    pub fn unseal(
        &mut self,
        header: &[u8],
        data: &mut [u8],
        trailer: &[u8],
        auth_value: &[u8],
        sign_header: bool,
    ) -> Result<()> {
        quiet(|| {
            let mut h = header.to_vec();
            let mut t = trailer.to_vec();
            let mut token = auth_value.to_vec();
            let ro = if sign_header {
                SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM
            } else {
                SecurityBufferFlags::SECBUFFER_READONLY
            };
            let len = data.len();
            let mut bufs = [
                SecurityBufferRef::data_buf(&mut h).with_flags(ro),
                SecurityBufferRef::data_buf(data),
                SecurityBufferRef::data_buf(&mut t).with_flags(ro),
                SecurityBufferRef::token_buf(&mut token),
            ];
            let r = match &mut self.inner {
                Inner::Ntlm { ctx, .. } => ctx.decrypt_message(&mut bufs),
                Inner::Kerberos { ctx, .. } => ctx.decrypt_message(&mut bufs),
            };
            match r {
                Ok(_) => {}
                Err(e)
                    if e.error_type == ErrorKind::MessageAltered
                        || e.error_type == ErrorKind::DecryptFailure =>
                {
                    return Err(DrsrError::SignatureFailure { what: "response" })
                }
                Err(e) => return Err(map_sspi("unsealing a response", e)),
            }
            if bufs[1].data().len() != len {
                return Err(DrsrError::protocol(
                    "unsealed response",
                    "plaintext as long as the ciphertext",
                ));
            }
            Ok(())
        })
    }
}
