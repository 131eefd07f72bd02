//! The public replication client.

use std::time::Duration;

use zeroize::Zeroizing;

use super::auth::{Mechanism, SecurityContext};
use super::convert::{account_from, account_if_relevant, ACCOUNT_ATTRIBUTES, AUDIT_ATTRIBUTES};
use super::drsuapi::{
    self, DrsHandle, DrsMsgGetchgreplyV6, DrsMsgGetchgreqV8, DsName, DRSUAPI_SYNTAX, DRS_INIT_SYNC,
    DRS_NEVER_SYNCED, DRS_WRIT_REP, DS_FQDN_1779_NAME, DS_NT4_ACCOUNT_NAME, DS_UNIQUE_ID_NAME,
    DS_USER_PRINCIPAL_NAME, EXOP_NONE, EXOP_REPL_OBJ, NTDSAPI_CLIENT_GUID,
};
use super::epm::{decode_ept_map, encode_ept_map, EPM_SYNTAX, EPT_MAP_OPNUM};
use super::error::{codes, DrsrError, Result};
use super::ndr::Guid;
use super::pdu::NDR_SYNTAX;
use super::prefix::SchemaPrefixTable;
use super::records::{ReplicatedAccount, ReplicationCursor, UsnVector};
use super::rpc::{RpcConnection, MAX_STUB_LEN};
use super::secrets::SessionKeys;
use super::transport::Transport;
use phsync_hash::NtHash;

/// How to authenticate to the domain controller.
pub enum Auth {
    /// NTLM with a password. `domain` is the NetBIOS domain name (e.g. `PHS`).
    Ntlm {
        domain: String,
        user: String,
        password: Zeroizing<String>,
    },
    /// NTLM with the account's NT hash instead of its password.
    NtlmHash {
        domain: String,
        user: String,
        nt_hash: NtHash,
    },
    /// Kerberos with a password. `kdc` is `host:port`; `spn` defaults to
    /// `host/<dc_host>` (always registered on a DC; give the DC's FQDN as `dc_host` or
    /// set `spn` when connecting by address).
    Kerberos {
        realm: String,
        kdc: String,
        user: String,
        password: Zeroizing<String>,
        spn: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Ntlm { domain, user, .. } => f
                .debug_struct("Ntlm")
                .field("domain", domain)
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::NtlmHash { domain, user, .. } => f
                .debug_struct("NtlmHash")
                .field("domain", domain)
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::Kerberos {
                realm,
                kdc,
                user,
                spn,
                ..
            } => f
                .debug_struct("Kerberos")
                .field("realm", realm)
                .field("kdc", kdc)
                .field("user", user)
                .field("spn", spn)
                .finish_non_exhaustive(),
        }
    }
}

/// Where and how to connect.
#[derive(Debug)]
pub struct DrsrConfig {
    /// Host name or address of the domain controller.
    pub dc_host: String,
    /// Skip the endpoint mapper and use this DRSUAPI TCP port.
    pub port_override: Option<u16>,
    /// Endpoint mapper port (135).
    pub epm_port: u16,
    pub auth: Auth,
    pub connect_timeout: Duration,
    /// Per-PDU read/write timeout (replies to large batches take a while).
    pub io_timeout: Duration,
}

impl DrsrConfig {
    pub fn new(dc_host: impl Into<String>, auth: Auth) -> Self {
        DrsrConfig {
            dc_host: dc_host.into(),
            port_override: None,
            epm_port: 135,
            auth,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(120),
        }
    }
}

/// cMaxObjects a caller without its own setting asks for per GetNCChanges batch
/// (DRS_MSG_GETCHGREQ_V8.cMaxObjects). A DC caps it further by its own policy.
pub const DEFAULT_BATCH_SIZE: u32 = 1000;

/// cMaxBytes of every GetNCChanges request (DRS_MSG_GETCHGREQ_V8.cMaxBytes): a DC stops
/// adding objects to a reply past about this many bytes. The one definition of this limit;
/// it stays below the largest reply stub accepted ([`MAX_STUB_LEN`]).
const MAX_BYTES_PER_BATCH: u32 = 10 << 20;
const _: () = assert!((MAX_BYTES_PER_BATCH as usize) < MAX_STUB_LEN);

/// An authenticated DRSUAPI session with one domain controller.
pub struct DrsrClient {
    rpc: RpcConnection,
    handle: DrsHandle,
    keys: SessionKeys,
    netbios_domain: Option<String>,
    dns_domain: Option<String>,
    server_flags: u32,
}

impl std::fmt::Debug for DrsrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrsrClient")
            .field("netbios_domain", &self.netbios_domain)
            .field("server_flags", &format_args!("0x{:08x}", self.server_flags))
            .finish_non_exhaustive()
    }
}

async fn drsuapi_port(cfg: &DrsrConfig) -> Result<u16> {
    if let Some(p) = cfg.port_override {
        return Ok(p);
    }
    let t = Transport::connect(
        &cfg.dc_host,
        cfg.epm_port,
        "the endpoint mapper",
        cfg.connect_timeout,
        cfg.io_timeout,
    )
    .await?;
    let mut epm = RpcConnection::bind_plain(t, EPM_SYNTAX).await?;
    let stub = epm
        .call(
            EPT_MAP_OPNUM,
            &encode_ept_map(&DRSUAPI_SYNTAX, &NDR_SYNTAX),
            "ept_map",
        )
        .await?;
    let port = decode_ept_map(&stub)?;
    tracing::debug!(port, "DRSUAPI endpoint");
    Ok(port)
}

impl DrsrClient {
    /// Resolve the DRSUAPI port, bind with authentication at PKT_PRIVACY and DRSBind.
    pub async fn connect(cfg: &DrsrConfig) -> Result<DrsrClient> {
        let port = drsuapi_port(cfg).await?;
        let (mech, netbios_domain, dns_domain) = match &cfg.auth {
            Auth::Ntlm {
                domain,
                user,
                password,
            } => (
                Mechanism::Ntlm {
                    domain: domain.clone(),
                    user: user.clone(),
                    secret: password.clone(),
                },
                Some(domain.clone()),
                None,
            ),
            Auth::NtlmHash {
                domain,
                user,
                nt_hash,
            } => (
                Mechanism::Ntlm {
                    domain: domain.clone(),
                    user: user.clone(),
                    secret: Zeroizing::new(format!(
                        "{}{}",
                        sspi::NTLM_HASH_PREFIX,
                        nt_hash.to_upper_hex().as_str()
                    )),
                },
                Some(domain.clone()),
                None,
            ),
            Auth::Kerberos {
                realm,
                kdc,
                user,
                password,
                spn,
            } => (
                Mechanism::Kerberos {
                    realm: realm.clone(),
                    kdc: kdc.clone(),
                    user: user.clone(),
                    password: password.clone(),
                    spn: spn
                        .clone()
                        .unwrap_or_else(|| format!("host/{}", cfg.dc_host)),
                },
                None,
                Some(realm.to_ascii_lowercase()),
            ),
        };
        let sec = SecurityContext::new(mech, cfg.connect_timeout)?;
        let t = Transport::connect(
            &cfg.dc_host,
            port,
            "DRSUAPI",
            cfg.connect_timeout,
            cfg.io_timeout,
        )
        .await?;
        let (mut rpc, key) = RpcConnection::bind_auth(t, DRSUAPI_SYNTAX, sec).await?;
        let mut keys = SessionKeys::new();
        keys.push(key);

        let mut epoch = 0;
        let mut attempt = 0;
        let reply = loop {
            let stub = match rpc
                .call(drsuapi::OP_BIND, &drsuapi::encode_bind(epoch), "DRSBind")
                .await
            {
                Ok(s) => s,
                // NTLM: AUTH3 has no reply, so bad credentials surface on the first call:
                // Windows faults it with access denied, Samba with nca_s_proto_error.
                Err(DrsrError::RpcFault { status, .. })
                    if attempt == 0
                        && (status == codes::RPC_ACCESS_DENIED
                            || status == codes::SEC_E_LOGON_DENIED
                            || status == codes::NCA_PROTO_ERROR) =>
                {
                    return Err(DrsrError::InvalidCredentials {
                        detail: format!("first call refused with RPC fault 0x{status:08x}"),
                    })
                }
                Err(e) => return Err(e),
            };
            let reply = drsuapi::decode_bind(&stub)?;
            attempt += 1;
            if reply.repl_epoch != epoch && attempt < 2 {
                tracing::info!(
                    epoch = reply.repl_epoch,
                    "DC replication epoch differs, binding again"
                );
                let _ = rpc
                    .call(
                        drsuapi::OP_UNBIND,
                        &drsuapi::encode_unbind(&reply.handle),
                        "DRSUnbind",
                    )
                    .await;
                epoch = reply.repl_epoch;
                continue;
            }
            break reply;
        };
        tracing::info!(
            host = %cfg.dc_host,
            port,
            server_extensions = format_args!("0x{:08x}", reply.server_flags),
            "DRSUAPI session established"
        );
        Ok(DrsrClient {
            rpc,
            handle: reply.handle,
            keys,
            netbios_domain,
            dns_domain,
            server_flags: reply.server_flags,
        })
    }

    /// IDL_DRSCrackNames for one name.
    pub async fn crack_name(&mut self, offered: u32, desired: u32, name: &str) -> Result<String> {
        let stub = drsuapi::encode_crack_names(&self.handle, offered, desired, &[name]);
        let rep = self
            .rpc
            .call(drsuapi::OP_CRACK_NAMES, &stub, "DRSCrackNames")
            .await?;
        let items = drsuapi::decode_crack_names(&rep)?;
        match items.into_iter().next() {
            Some(i) if i.status == 0 => i.name.ok_or_else(|| {
                DrsrError::protocol("DRSCrackNames", "a name for a successful item")
            }),
            Some(i) => Err(DrsrError::NameNotFound {
                name: name.to_owned(),
                status: i.status,
            }),
            None => Err(DrsrError::protocol("DRSCrackNames", "one result item")),
        }
    }

    /// objectGUID of an account given as a GUID, `DOMAIN\user`, `user@upn` or a bare
    /// sAMAccountName (NTLM: prefixed with the authentication domain).
    pub async fn resolve_account(&mut self, account: &str) -> Result<Guid> {
        if let Some(g) = Guid::parse(account) {
            return Ok(g);
        }
        let (format, name) = if account.contains('\\') {
            (DS_NT4_ACCOUNT_NAME, account.to_owned())
        } else if account.contains('@') {
            (DS_USER_PRINCIPAL_NAME, account.to_owned())
        } else if let Some(d) = &self.netbios_domain {
            (DS_NT4_ACCOUNT_NAME, format!("{d}\\{account}"))
        } else if let Some(d) = &self.dns_domain {
            // Samba refuses DS_NT4_ACCOUNT_NAME_SANS_DOMAIN; find the NetBIOS name first.
            let nt4 = self
                .crack_name(DS_FQDN_1779_NAME, DS_NT4_ACCOUNT_NAME, &dns_to_dn(d))
                .await?;
            (
                DS_NT4_ACCOUNT_NAME,
                format!("{}{account}", nt4.trim_end_matches('\\').to_owned() + "\\"),
            )
        } else {
            return Err(DrsrError::InvalidArgument(format!(
                "cannot resolve {account:?} without a domain"
            )));
        };
        let s = self.crack_name(format, DS_UNIQUE_ID_NAME, &name).await?;
        Guid::parse(&s).ok_or_else(|| {
            DrsrError::protocol("DRSCrackNames", format!("a GUID for {name:?}, got {s:?}"))
        })
    }

    /// Distinguished name of the domain naming context.
    pub async fn domain_dn(&mut self) -> Result<String> {
        if let Some(d) = self.netbios_domain.clone() {
            return self
                .crack_name(DS_NT4_ACCOUNT_NAME, DS_FQDN_1779_NAME, &format!("{d}\\"))
                .await;
        }
        match &self.dns_domain {
            Some(d) => Ok(dns_to_dn(d)),
            None => Err(DrsrError::InvalidArgument("no domain known".into())),
        }
    }

    /// One DRS_MSG_GETCHGREQ_V8; each argument is one of its fields (or the attribute list
    /// its partial attribute set is built from), so they stay separate.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        nc: DsName,
        cursor: Option<&ReplicationCursor>,
        usn_from: UsnVector,
        flags: u32,
        max_objects: u32,
        extended_op: u32,
        attributes: &[&str],
    ) -> Result<DrsMsgGetchgreqV8> {
        let mut prefix = SchemaPrefixTable::new();
        let pas = attributes
            .iter()
            .map(|oid| prefix.make_attid(oid))
            .collect::<Result<Vec<_>>>()?;
        Ok(DrsMsgGetchgreqV8 {
            dest_dsa: NTDSAPI_CLIENT_GUID,
            invocation_id: cursor.map(|c| c.invocation_id).unwrap_or(Guid::ZERO),
            naming_context: nc,
            usn_from,
            up_to_dateness: cursor.map(|c| c.up_to_dateness.clone()),
            flags,
            max_objects,
            max_bytes: MAX_BYTES_PER_BATCH,
            extended_op,
            partial_attribute_set: pas,
            prefix_table: prefix,
        })
    }

    async fn get_nc_changes(&mut self, req: &DrsMsgGetchgreqV8) -> Result<DrsMsgGetchgreplyV6> {
        let stub = drsuapi::encode_get_nc_changes(&self.handle, req);
        let rep = self
            .rpc
            .call(drsuapi::OP_GET_NC_CHANGES, &stub, "DRSGetNCChanges")
            .await
            .map_err(|e| match e {
                DrsrError::RpcFault { status, .. } if status == codes::RPC_ACCESS_DENIED => {
                    DrsrError::MissingReplicationRights { code: status }
                }
                other => other,
            })?;
        let reply = drsuapi::decode_get_nc_changes(&rep)?;
        tracing::debug!(
            source_dsa = %reply.source_dsa,
            objects = reply.objects.len(),
            more = reply.more_data,
            usn_to = reply.usn_to.high_obj_update,
            "GetNCChanges batch"
        );
        Ok(reply)
    }

    /// Replicate one account (EXOP_REPL_OBJ) given as a GUID, `DOMAIN\user`, a UPN or a
    /// sAMAccountName.
    pub async fn replicate_user(&mut self, account: &str) -> Result<ReplicatedAccount> {
        let guid = self.resolve_account(account).await?;
        let nc = DsName {
            guid,
            sid: Vec::new(),
            dn: String::new(),
        };
        let req = self.request(
            nc,
            None,
            UsnVector::default(),
            DRS_INIT_SYNC | DRS_WRIT_REP,
            1,
            EXOP_REPL_OBJ,
            ACCOUNT_ATTRIBUTES,
        )?;
        let reply = self.get_nc_changes(&req).await?;
        let obj = reply
            .objects
            .iter()
            .find(|o| o.name.as_ref().map(|n| n.guid) == Some(guid))
            .ok_or_else(|| DrsrError::NameNotFound {
                name: account.to_owned(),
                status: reply.extended_ret,
            })?;
        account_from(&self.keys, &reply, obj)
    }

    /// Replicate the domain naming context in batches of `batch_size` objects, from
    /// `cursor` (incremental) or from scratch (`None`). `on_batch` receives the accounts
    /// of each batch (objects with a `user`-derived class, or, in incremental replies that
    /// omit objectClass, objects carrying account attributes). Returns the cursor for the
    /// next incremental run: persist it after `on_batch` has stored everything.
    ///
    /// Generic over the handler, so the future is `Send` exactly when the handler is (the
    /// engine's handler reports progress to a caller's callback and is not).
    pub async fn replicate_domain_with<F>(
        &mut self,
        cursor: Option<&ReplicationCursor>,
        batch_size: u32,
        on_batch: &mut F,
    ) -> Result<ReplicationCursor>
    where
        F: FnMut(Vec<ReplicatedAccount>) -> Result<()> + ?Sized,
    {
        self.replicate_nc(cursor, batch_size, ACCOUNT_ATTRIBUTES, on_batch)
            .await
    }

    /// A full replication of the domain for a password-quality audit: the accounts with,
    /// besides what a sync reads, `admin_count`, `lm_hash_present` and `supplemental`
    /// filled in. Nothing to persist: an audit always reads everything.
    pub async fn replicate_domain_for_audit<F>(
        &mut self,
        batch_size: u32,
        on_batch: &mut F,
    ) -> Result<()>
    where
        F: FnMut(Vec<ReplicatedAccount>) -> Result<()> + ?Sized,
    {
        self.replicate_nc(None, batch_size, AUDIT_ATTRIBUTES, on_batch)
            .await
            .map(|_| ())
    }

    async fn replicate_nc<F>(
        &mut self,
        cursor: Option<&ReplicationCursor>,
        batch_size: u32,
        attributes: &[&str],
        on_batch: &mut F,
    ) -> Result<ReplicationCursor>
    where
        F: FnMut(Vec<ReplicatedAccount>) -> Result<()> + ?Sized,
    {
        let dn = match cursor {
            Some(c) => c.naming_context.clone(),
            None => self.domain_dn().await?,
        };
        let nc = DsName {
            guid: Guid::ZERO,
            sid: Vec::new(),
            dn: dn.clone(),
        };
        let flags = if cursor.is_some() {
            DRS_WRIT_REP
        } else {
            DRS_INIT_SYNC | DRS_WRIT_REP | DRS_NEVER_SYNCED
        };
        let mut usn_from = cursor.map(|c| c.usn_vector).unwrap_or_default();
        let mut batches = 0u32;
        loop {
            let req = self.request(
                nc.clone(),
                cursor,
                usn_from,
                flags,
                batch_size.max(1),
                EXOP_NONE,
                attributes,
            )?;
            let reply = self.get_nc_changes(&req).await?;
            if let Some(c) = cursor {
                if batches == 0 && c.invocation_id != reply.invocation_id {
                    tracing::warn!(
                        "cursor is from another DC invocation; the DC answers from its own history"
                    );
                }
            }
            let mut accounts = Vec::new();
            for obj in &reply.objects {
                if let Some(a) = account_if_relevant(&self.keys, &reply, obj)? {
                    accounts.push(a);
                }
            }
            batches += 1;
            tracing::info!(
                batch = batches,
                objects = reply.objects.len(),
                accounts = accounts.len(),
                more = reply.more_data,
                "replication batch"
            );
            on_batch(accounts)?;
            usn_from = reply.usn_to;
            if !reply.more_data {
                return Ok(ReplicationCursor {
                    naming_context: dn,
                    invocation_id: reply.invocation_id,
                    usn_vector: reply.usn_to,
                    up_to_dateness: reply.up_to_dateness,
                });
            }
            if batches > 1_000_000 {
                return Err(DrsrError::protocol(
                    "GetNCChanges",
                    "replication to finish (fMoreData never cleared)",
                ));
            }
        }
    }

    /// [`replicate_domain_with`](Self::replicate_domain_with) collecting everything.
    pub async fn replicate_domain(
        &mut self,
        cursor: Option<&ReplicationCursor>,
        batch_size: u32,
    ) -> Result<(Vec<ReplicatedAccount>, ReplicationCursor)> {
        let mut all = Vec::new();
        let cursor = self
            .replicate_domain_with(cursor, batch_size, &mut |b| {
                all.extend(b);
                Ok(())
            })
            .await?;
        Ok((all, cursor))
    }

    /// IDL_DRSUnbind and close the connection.
    pub async fn close(mut self) -> Result<()> {
        let stub = self
            .rpc
            .call(
                drsuapi::OP_UNBIND,
                &drsuapi::encode_unbind(&self.handle),
                "DRSUnbind",
            )
            .await?;
        if stub.len() >= 24 {
            let st = u32::from_le_bytes([stub[20], stub[21], stub[22], stub[23]]);
            if st != 0 {
                return Err(DrsrError::DrsStatus {
                    op: "DRSUnbind",
                    code: st,
                });
            }
        }
        Ok(())
    }
}

fn dns_to_dn(dns: &str) -> String {
    dns.split('.')
        .filter(|p| !p.is_empty())
        .map(|p| format!("DC={p}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    //! Against the Samba AD lab (scripts/ad-lab/lab.sh up). Lives here, not in tests/,
    //! because it needs the session keys, which the public API never exposes.
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// The lab's replication account, over NTLM.
    fn lab_config(env: &std::collections::HashMap<String, String>) -> DrsrConfig {
        DrsrConfig::new(
            "127.0.0.1",
            Auth::Ntlm {
                domain: env["PHSYNC_LAB_DOMAIN"].clone(),
                user: env["REPL_USER"].clone(),
                password: Zeroizing::new(env["REPL_PASSWORD"].clone()),
            },
        )
    }

    fn lab() -> (
        std::collections::HashMap<String, String>,
        Vec<(String, String)>,
    ) {
        let dir =
            std::env::var("PHSYNC_LAB_DIR").unwrap_or_else(|_| "/var/tmp/phsync-ad-lab".into());
        let env_text = std::fs::read_to_string(format!("{dir}/lab.env")).unwrap_or_else(|e| {
            panic!("the Samba AD lab is not set up ({dir}/lab.env: {e}); run `sudo scripts/ad-lab/lab.sh up`")
        });
        let env: std::collections::HashMap<String, String> = env_text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        let seed_text = std::fs::read_to_string(&env["PHSYNC_LAB_SEED_FILE"]).expect("seed.tsv");
        let seed = seed_text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_owned(), f[1].to_owned(), f[4].to_owned())
            })
            .collect::<Vec<_>>();
        let repl = seed
            .iter()
            .find(|s| s.2.contains("replicator"))
            .expect("replicator in seed.tsv");
        let accounts = seed.iter().map(|s| (s.0.clone(), s.1.clone())).collect();
        let mut env = env;
        env.insert("REPL_USER".into(), repl.0.clone());
        env.insert("REPL_PASSWORD".into(), repl.1.clone());
        (env, accounts)
    }

    fn forms(bytes: &[u8]) -> Vec<String> {
        let dec = format!("{:?}", &bytes[..8]);
        vec![
            hex::encode(bytes),
            hex::encode_upper(bytes),
            dec[..dec.len() - 1].to_owned(),
        ]
    }

    /// The audit attribute set against Samba: adminCount, supplementalCredentials (Samba at
    /// the 2008 R2 level stores AES keys for every password) and no LM hash (`lanman auth`
    /// is off by default, so Samba never writes dBCSPwd).
    #[test]
    fn audit_replication_reads_admin_count_and_supplemental_credentials() {
        let (env, accounts) = lab();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let all = rt.block_on(async {
            let cfg = lab_config(&env);
            let mut c = DrsrClient::connect(&cfg).await.expect("connect");
            let mut all = Vec::new();
            c.replicate_domain_for_audit(200, &mut |b| {
                all.extend(b);
                Ok(())
            })
            .await
            .expect("audit replication");
            c.close().await.expect("close");
            all
        });
        let by_sam = |sam: &str| {
            all.iter()
                .find(|a| a.sam_account_name.as_deref() == Some(sam))
                .unwrap_or_else(|| panic!("{sam} replicated"))
        };
        let admin = by_sam("Administrator");
        assert_eq!(admin.admin_count, Some(1));
        for (sam, pw) in &accounts {
            let a = by_sam(sam);
            assert!(
                a.nt_hash.as_ref() == Some(&NtHash::from_password(pw).unwrap()),
                "{sam}"
            );
            let s = a
                .supplemental
                .as_ref()
                .unwrap_or_else(|| panic!("{sam}: supplementalCredentials"));
            assert!(s.kerberos_aes_keys, "{sam}: {:?}", s.packages);
            assert!(!a.lm_hash_present, "{sam}");
        }
        assert!(all.iter().any(|a| a.has_class("computer")));
    }

    #[test]
    fn trace_output_never_contains_hashes_or_session_keys() {
        let (env, accounts) = lab();
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buf.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(sub);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut secrets: Vec<Vec<u8>> = Vec::new();
        rt.block_on(async {
            let cfg = lab_config(&env);
            let mut c = DrsrClient::connect(&cfg).await.expect("connect");
            for k in &c.keys.keys_for_tests() {
                secrets.push(k.to_vec());
            }
            for (sam, pw) in &accounts {
                let a = c.replicate_user(sam).await.expect("replicate");
                let h = a.nt_hash.expect("hash");
                assert!(h == NtHash::from_password(pw).unwrap());
                secrets.push(h.as_bytes().to_vec());
                for old in &a.nt_hash_history {
                    secrets.push(old.as_bytes().to_vec());
                }
            }
            let (all, _) = c.replicate_domain(None, 5).await.expect("domain");
            for a in &all {
                if let Some(h) = &a.nt_hash {
                    secrets.push(h.as_bytes().to_vec());
                }
            }
            c.close().await.expect("close");
        });
        let log = String::from_utf8_lossy(&buf.0.lock().unwrap()).to_string();
        assert!(
            log.contains("DRSUAPI session established") && log.contains("replication batch"),
            "the subscriber captured nothing: {log}"
        );
        assert!(!secrets.is_empty());
        for s in &secrets {
            for f in forms(s) {
                assert!(!log.contains(&f), "a secret appears in the trace output");
            }
        }
        for pw in accounts.iter().map(|a| &a.1).chain([&env["REPL_PASSWORD"]]) {
            assert!(
                !log.contains(pw.as_str()),
                "a password appears in the trace output"
            );
        }
    }
}
