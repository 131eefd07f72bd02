//! One DCE/RPC association over TCP: bind (plain or authenticated at PKT_PRIVACY), then
//! calls with request fragmentation, sealed/signed fragments and response reassembly.

use super::auth::SecurityContext;
use super::error::{DrsrError, Result};
use super::ndr::Guid;
use super::pdu::{
    self, encode_auth3, encode_bind, parse_bind_ack, split_response_body, Context, Fragment,
    Header, PacketType, SecTrailer, AUTH_PAD_ALIGN, HEADER_LEN, MAX_FRAG_LEN, NDR_SYNTAX,
    PFC_FIRST_FRAG, PFC_LAST_FRAG, PFC_SUPPORT_HEADER_SIGN, REQUEST_HEADER_LEN,
    RESPONSE_HEADER_LEN, RPC_C_AUTHN_LEVEL_PKT_PRIVACY, SEC_TRAILER_LEN,
};
use super::secrets::SessionKey;
use super::transport::Transport;

/// Largest reassembled response stub accepted (bounds memory for one GetNCChanges reply).
pub(crate) const MAX_STUB_LEN: usize = 64 << 20;
const AUTH_CONTEXT_ID: u32 = 0;

pub(crate) struct RpcConnection {
    transport: Transport,
    auth: Option<SecurityContext>,
    call_id: u32,
    ctx_id: u16,
    max_xmit: usize,
    sign_header: bool,
}

async fn step_blocking(
    mut sec: SecurityContext,
    input: Option<Vec<u8>>,
) -> Result<(SecurityContext, super::auth::Step)> {
    let (sec, r) = tokio::task::spawn_blocking(move || {
        let r = sec.step(input.as_deref());
        (sec, r)
    })
    .await
    .map_err(|e| DrsrError::Auth {
        stage: "security context step",
        detail: e.to_string(),
    })?;
    Ok((sec, r?))
}

impl RpcConnection {
    fn context(abstract_syntax: (Guid, u16, u16)) -> Context {
        Context {
            id: 0,
            abstract_syntax,
            transfer_syntax: NDR_SYNTAX,
        }
    }

    async fn recv_for(&mut self, call_id: u32) -> Result<Vec<u8>> {
        let frag = self.transport.recv_fragment().await?;
        let h = Header::parse(&frag)?;
        if h.call_id != call_id {
            return Err(DrsrError::protocol(
                "PDU call_id",
                format!("call_id {call_id}, got {}", h.call_id),
            ));
        }
        Ok(frag)
    }

    /// Unauthenticated bind (endpoint mapper).
    pub async fn bind_plain(
        mut transport: Transport,
        abstract_syntax: (Guid, u16, u16),
    ) -> Result<RpcConnection> {
        let pdu = encode_bind(
            PacketType::Bind,
            PFC_FIRST_FRAG | PFC_LAST_FRAG,
            1,
            0,
            &[Self::context(abstract_syntax)],
            None,
        )?;
        transport.send(&pdu).await?;
        let mut conn = RpcConnection {
            transport,
            auth: None,
            call_id: 1,
            ctx_id: 0,
            max_xmit: 4280,
            sign_header: false,
        };
        let frag = conn.recv_for(1).await?;
        let ack = parse_bind_ack(&Fragment::parse(&frag)?)?;
        conn.accept(&ack)?;
        Ok(conn)
    }

    fn accept(&mut self, ack: &pdu::BindAck) -> Result<()> {
        match ack.results.first() {
            Some((0, _)) => {}
            Some((result, reason)) => {
                return Err(DrsrError::protocol(
                    "bind_ack",
                    format!(
                        "the presentation context accepted, got result {result} reason {reason}"
                    ),
                ))
            }
            None => return Err(DrsrError::protocol("bind_ack", "one context result")),
        }
        self.max_xmit = (ack.max_recv_frag as usize).clamp(1024, MAX_FRAG_LEN);
        Ok(())
    }

    /// Authenticated bind at PKT_PRIVACY. NTLM: BIND(NEGOTIATE) → BIND_ACK(CHALLENGE) →
    /// AUTH3(AUTHENTICATE). Kerberos (DCE style): BIND(AP-REQ) → BIND_ACK(AP-REP) →
    /// ALTER_CONTEXT(AP-REP) → ALTER_CONTEXT_RESP.
    pub async fn bind_auth(
        mut transport: Transport,
        abstract_syntax: (Guid, u16, u16),
        sec: SecurityContext,
    ) -> Result<(RpcConnection, SessionKey)> {
        let trailer = SecTrailer {
            auth_type: sec.auth_type(),
            auth_level: RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
            pad_len: 0,
            context_id: AUTH_CONTEXT_ID,
        };
        let (sec, first) = step_blocking(sec, None).await?;
        let call_id = 1;
        let ctx = [Self::context(abstract_syntax)];
        let pdu = encode_bind(
            PacketType::Bind,
            PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_SUPPORT_HEADER_SIGN,
            call_id,
            0,
            &ctx,
            Some((trailer, &first.token)),
        )?;
        transport.send(&pdu).await?;
        let mut conn = RpcConnection {
            transport,
            auth: None,
            call_id,
            ctx_id: 0,
            max_xmit: 4280,
            sign_header: false,
        };
        let frag = conn.recv_for(call_id).await?;
        let parsed = Fragment::parse(&frag)?;
        let ack = match parse_bind_ack(&parsed) {
            Err(DrsrError::BindRejected { reason }) => {
                // Samba answers a bind whose credentials fail with bind_nak.
                return Err(DrsrError::InvalidCredentials {
                    detail: format!("bind rejected, reason {reason}"),
                });
            }
            other => other?,
        };
        conn.accept(&ack)?;
        conn.sign_header = parsed.header.flags & PFC_SUPPORT_HEADER_SIGN != 0;
        let server_token = parsed.auth_value.to_vec();
        let is_krb = sec.is_kerberos();
        let (mut sec, second) = step_blocking(sec, Some(server_token)).await?;
        if is_krb {
            conn.call_id += 1;
            let pdu = encode_bind(
                PacketType::AlterContext,
                PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_SUPPORT_HEADER_SIGN,
                conn.call_id,
                ack.assoc_group,
                &ctx,
                Some((trailer, &second.token)),
            )?;
            conn.transport.send(&pdu).await?;
            let frag = conn.recv_for(conn.call_id).await?;
            let parsed = Fragment::parse(&frag)?;
            match parse_bind_ack(&parsed) {
                Err(DrsrError::BindRejected { .. }) | Err(DrsrError::RpcFault { .. }) => {
                    return Err(DrsrError::InvalidCredentials {
                        detail: "alter_context rejected".into(),
                    });
                }
                other => {
                    other?;
                }
            }
            if !second.complete && !parsed.auth_value.is_empty() {
                let (s, _) = step_blocking(sec, Some(parsed.auth_value.to_vec())).await?;
                sec = s;
            }
        } else {
            let pdu = encode_auth3(conn.call_id, trailer, &second.token)?;
            conn.transport.send(&pdu).await?;
        }
        let key = sec.session_key()?;
        conn.auth = Some(sec);
        tracing::debug!(
            kerberos = is_krb,
            header_signing = conn.sign_header,
            max_xmit = conn.max_xmit,
            "authenticated bind complete"
        );
        Ok((conn, key))
    }

    /// One call: `stub` in, reassembled and verified response stub out.
    pub async fn call(&mut self, opnum: u16, stub: &[u8], op: &'static str) -> Result<Vec<u8>> {
        self.call_id = self.call_id.wrapping_add(1);
        let call_id = self.call_id;
        match self.auth {
            None => {
                let pdu = pdu::encode_request_plain(call_id, self.ctx_id, opnum, stub)?;
                self.transport.send(&pdu).await?;
            }
            Some(_) => self.send_sealed(call_id, opnum, stub).await?,
        }
        self.receive(call_id, op).await
    }

    async fn send_sealed(&mut self, call_id: u32, opnum: u16, stub: &[u8]) -> Result<()> {
        let Some(sec) = self.auth.as_mut() else {
            return Err(DrsrError::protocol(
                "request",
                "an authenticated connection",
            ));
        };
        let sig_len = sec.trailer_len()?;
        let overhead = HEADER_LEN + REQUEST_HEADER_LEN + SEC_TRAILER_LEN + sig_len;
        let room = self.max_xmit.saturating_sub(overhead) / AUTH_PAD_ALIGN * AUTH_PAD_ALIGN;
        if room == 0 {
            return Err(DrsrError::protocol(
                "bind_ack",
                "a max fragment size that leaves room for a stub",
            ));
        }
        let chunks: Vec<&[u8]> = if stub.is_empty() {
            vec![&[][..]]
        } else {
            stub.chunks(room).collect()
        };
        let n = chunks.len();
        let mut sent = 0usize;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let pad = (AUTH_PAD_ALIGN - chunk.len() % AUTH_PAD_ALIGN) % AUTH_PAD_ALIGN;
            let mut data = Vec::with_capacity(chunk.len() + pad);
            data.extend_from_slice(chunk);
            data.resize(chunk.len() + pad, 0);
            let mut flags = 0;
            if i == 0 {
                flags |= PFC_FIRST_FRAG;
            }
            if i + 1 == n {
                flags |= PFC_LAST_FRAG;
            }
            let frag_len = HEADER_LEN + REQUEST_HEADER_LEN + data.len() + SEC_TRAILER_LEN + sig_len;
            let mut head = Vec::with_capacity(HEADER_LEN + REQUEST_HEADER_LEN);
            Header {
                ptype: PacketType::Request,
                flags,
                frag_len: frag_len as u16,
                auth_len: sig_len as u16,
                call_id,
            }
            .encode(&mut head);
            head.extend_from_slice(&((stub.len() - sent) as u32).to_le_bytes());
            head.extend_from_slice(&self.ctx_id.to_le_bytes());
            head.extend_from_slice(&opnum.to_le_bytes());
            let trailer = SecTrailer {
                auth_type: sec.auth_type(),
                auth_level: RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
                pad_len: pad as u8,
                context_id: AUTH_CONTEXT_ID,
            }
            .encode();
            let sig = sec.seal(&head, &mut data, &trailer, self.sign_header)?;
            if sig.len() != sig_len {
                return Err(DrsrError::protocol(
                    "sealing",
                    format!("a {sig_len}-byte auth verifier, got {}", sig.len()),
                ));
            }
            let mut pdu = head;
            pdu.extend_from_slice(&data);
            pdu.extend_from_slice(&trailer);
            pdu.extend_from_slice(&sig);
            self.transport.send(&pdu).await?;
            sent += chunk.len();
        }
        Ok(())
    }

    async fn receive(&mut self, call_id: u32, op: &'static str) -> Result<Vec<u8>> {
        let mut stub = Vec::new();
        let mut first = true;
        loop {
            let raw = self.recv_for(call_id).await?;
            let frag = Fragment::parse(&raw)?;
            if frag.header.ptype == PacketType::Fault {
                let status = frag
                    .body
                    .get(8..12)
                    .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                    .ok_or_else(|| DrsrError::protocol("fault", "a status field"))?;
                return Err(DrsrError::RpcFault { op, status });
            }
            if first && frag.header.flags & PFC_FIRST_FRAG == 0 {
                return Err(DrsrError::protocol(
                    "response",
                    "PFC_FIRST_FRAG on the first fragment",
                ));
            }
            first = false;
            let (_hint, _ctx, _) = split_response_body(&frag)?;
            let last = frag.header.flags & PFC_LAST_FRAG != 0;
            match self.auth.as_mut() {
                None => stub.extend_from_slice(&frag.body[RESPONSE_HEADER_LEN..]),
                Some(sec) => {
                    let Some(trailer) = frag.trailer else {
                        return Err(DrsrError::protocol(
                            "response",
                            "an auth verifier on every fragment of a sealed connection",
                        ));
                    };
                    if trailer.auth_level != RPC_C_AUTHN_LEVEL_PKT_PRIVACY
                        || trailer.auth_type != sec.auth_type()
                    {
                        return Err(DrsrError::protocol(
                            "response sec_trailer",
                            format!(
                                "auth type {} at level 6, got type {} level {}",
                                sec.auth_type(),
                                trailer.auth_type,
                                trailer.auth_level
                            ),
                        ));
                    }
                    let t_off = frag.trailer_offset();
                    let head = &raw[..HEADER_LEN + RESPONSE_HEADER_LEN];
                    let mut data = raw[HEADER_LEN + RESPONSE_HEADER_LEN..t_off].to_vec();
                    let trailer_bytes = &raw[t_off..t_off + SEC_TRAILER_LEN];
                    sec.unseal(
                        head,
                        &mut data,
                        trailer_bytes,
                        frag.auth_value,
                        self.sign_header,
                    )?;
                    let pad = trailer.pad_len as usize;
                    if pad > data.len() {
                        return Err(DrsrError::protocol(
                            "response sec_trailer",
                            "auth_pad_length within the stub",
                        ));
                    }
                    data.truncate(data.len() - pad);
                    stub.extend_from_slice(&data);
                }
            }
            if stub.len() > MAX_STUB_LEN {
                return Err(DrsrError::protocol(
                    "response",
                    format!("at most {MAX_STUB_LEN} bytes of reassembled stub"),
                ));
            }
            if last {
                return Ok(stub);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! An in-process DCE/RPC server with an sspi NTLM acceptor: exercises request
    //! fragmentation, response reassembly and signature verification without a DC.
    use super::*;
    use crate::auth::Mechanism;
    use crate::pdu::{PFC_FIRST_FRAG as FIRST, PFC_LAST_FRAG as LAST, RPC_C_AUTHN_WINNT};
    use sspi::{
        AuthIdentity, BufferType, CredentialUse, DataRepresentation, EncryptionFlags, Ntlm,
        SecurityBuffer, SecurityBufferFlags, SecurityBufferRef, SecurityStatus, ServerRequestFlags,
        Sspi, SspiImpl, Username,
    };
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const SYNTAX: (Guid, u16, u16) = crate::drsuapi::DRSUAPI_SYNTAX;

    #[derive(Clone, Copy, PartialEq)]
    enum Misbehave {
        Nothing,
        TamperSecondFragment,
        DropVerifier,
    }

    async fn read_frag(s: &mut TcpStream) -> Vec<u8> {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).await.unwrap();
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        let mut f = vec![0u8; len];
        f[..16].copy_from_slice(&h);
        s.read_exact(&mut f[16..]).await.unwrap();
        f
    }

    fn accept(
        ntlm: &mut Ntlm,
        creds: &mut Option<sspi::AuthIdentityBuffers>,
        token: &[u8],
    ) -> Vec<u8> {
        let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let b = ntlm
            .accept_security_context()
            .with_credentials_handle(creds)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let r = ntlm
            .accept_security_context_impl(b)
            .unwrap()
            .resolve_to_result()
            .unwrap();
        if matches!(
            r.status,
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
        ) {
            ntlm.complete_auth_token(&mut output).unwrap();
        }
        std::mem::take(&mut output[0].buffer)
    }

    /// Serve one bind and one call; returns how many request fragments arrived.
    async fn serve(listener: TcpListener, misbehave: Misbehave) -> usize {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::new("u", Some("D")).unwrap(),
            password: String::from("p").into(),
        };
        let mut acq = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .unwrap();
        let bind = read_frag(&mut s).await;
        let f = Fragment::parse(&bind).unwrap();
        let challenge = accept(&mut ntlm, &mut acq.credentials_handle, f.auth_value);
        // bind_ack: max frags 1024 (forces request fragmentation), no sec addr.
        let mut body = Vec::new();
        body.extend_from_slice(&1024u16.to_le_bytes());
        body.extend_from_slice(&1024u16.to_le_bytes());
        body.extend_from_slice(&0x55u32.to_le_bytes());
        body.extend_from_slice(&[0, 0, 0, 0]); // sec_addr len 0 + pad
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&NDR_SYNTAX.0 .0);
        body.extend_from_slice(&[2, 0, 0, 0]);
        let trailer = f.trailer.unwrap();
        let mut ack = Vec::new();
        let frag_len = 16 + body.len() + 8 + challenge.len();
        Header {
            ptype: PacketType::BindAck,
            flags: FIRST | LAST | PFC_SUPPORT_HEADER_SIGN,
            frag_len: frag_len as u16,
            auth_len: challenge.len() as u16,
            call_id: f.header.call_id,
        }
        .encode(&mut ack);
        ack.extend_from_slice(&body);
        ack.extend_from_slice(&trailer.encode());
        ack.extend_from_slice(&challenge);
        s.write_all(&ack).await.unwrap();
        let auth3 = read_frag(&mut s).await;
        let f = Fragment::parse(&auth3).unwrap();
        assert_eq!(f.header.ptype, PacketType::Auth3);
        accept(&mut ntlm, &mut acq.credentials_handle, f.auth_value);

        // Request fragments: verify + unseal each, reassemble.
        let mut stub = Vec::new();
        let mut frags = 0;
        let call_id;
        loop {
            let raw = read_frag(&mut s).await;
            let f = Fragment::parse(&raw).unwrap();
            frags += 1;
            let t = f.trailer_offset();
            let mut h = raw[..24].to_vec();
            let mut data = raw[24..t].to_vec();
            let mut tr = raw[t..t + 8].to_vec();
            let mut sig = f.auth_value.to_vec();
            let mut bufs = [
                SecurityBufferRef::data_buf(&mut h)
                    .with_flags(SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM),
                SecurityBufferRef::data_buf(&mut data),
                SecurityBufferRef::data_buf(&mut tr)
                    .with_flags(SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM),
                SecurityBufferRef::token_buf(&mut sig),
            ];
            ntlm.decrypt_message(&mut bufs)
                .expect("request signature verifies");
            let pad = f.trailer.unwrap().pad_len as usize;
            stub.extend_from_slice(&data[..data.len() - pad]);
            if f.header.flags & LAST != 0 {
                call_id = f.header.call_id;
                break;
            }
        }
        // Reply with the stub reversed, in 400-byte fragments.
        stub.reverse();
        let chunks: Vec<&[u8]> = stub.chunks(400).collect();
        let n = chunks.len();
        for (i, c) in chunks.iter().enumerate() {
            let pad = (16 - c.len() % 16) % 16;
            let mut data = c.to_vec();
            data.resize(c.len() + pad, 0);
            let mut flags = 0;
            if i == 0 {
                flags |= FIRST;
            }
            if i + 1 == n {
                flags |= LAST;
            }
            let with_auth = misbehave != Misbehave::DropVerifier;
            let auth_len = if with_auth { 16 } else { 0 };
            let frag_len = 24 + data.len() + if with_auth { 8 + 16 } else { 0 };
            let mut head = Vec::new();
            Header {
                ptype: PacketType::Response,
                flags,
                frag_len: frag_len as u16,
                auth_len,
                call_id,
            }
            .encode(&mut head);
            head.extend_from_slice(&(stub.len() as u32).to_le_bytes());
            head.extend_from_slice(&[0, 0, 0, 0]);
            let mut pdu = head.clone();
            if with_auth {
                let mut tr = SecTrailer {
                    auth_type: RPC_C_AUTHN_WINNT,
                    auth_level: RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
                    pad_len: pad as u8,
                    context_id: 0,
                }
                .encode();
                let mut sig = vec![0u8; 16];
                let mut bufs = [
                    SecurityBufferRef::data_buf(&mut head)
                        .with_flags(SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM),
                    SecurityBufferRef::data_buf(&mut data),
                    SecurityBufferRef::data_buf(&mut tr)
                        .with_flags(SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM),
                    SecurityBufferRef::token_buf(&mut sig),
                ];
                ntlm.encrypt_message(EncryptionFlags::empty(), &mut bufs)
                    .unwrap();
                if misbehave == Misbehave::TamperSecondFragment && i == 1 {
                    data[3] ^= 0x40;
                }
                pdu.extend_from_slice(&data);
                pdu.extend_from_slice(&tr);
                pdu.extend_from_slice(&sig);
            } else {
                pdu.extend_from_slice(&data);
            }
            if s.write_all(&pdu).await.is_err() {
                break;
            }
        }
        frags
    }

    async fn run(misbehave: Misbehave, stub: &[u8]) -> (Result<Vec<u8>>, usize) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve(listener, misbehave));
        let t = Transport::connect(
            "127.0.0.1",
            port,
            "test server",
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let sec = SecurityContext::new(
            Mechanism::Ntlm {
                domain: "D".into(),
                user: "u".into(),
                secret: zeroize::Zeroizing::new("p".into()),
            },
            Duration::from_secs(5),
        )
        .unwrap();
        let (mut conn, key) = RpcConnection::bind_auth(t, SYNTAX, sec).await.unwrap();
        assert_eq!(key.as_bytes().len(), 16);
        assert!(conn.sign_header);
        assert_eq!(conn.max_xmit, 1024);
        let r = conn.call(3, stub, "test call").await;
        drop(conn);
        let frags = server.await.unwrap();
        (r, frags)
    }

    fn big_stub() -> Vec<u8> {
        (0..5000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn sealed_call_fragments_and_reassembles() {
        let stub = big_stub();
        let (r, frags) = run(Misbehave::Nothing, &stub).await;
        let mut expected = stub.clone();
        expected.reverse();
        assert_eq!(r.unwrap(), expected);
        assert!(frags >= 5, "request went in {frags} fragments");
    }

    #[tokio::test]
    async fn tampered_response_fails_signature_check() {
        let (r, _) = run(Misbehave::TamperSecondFragment, &big_stub()).await;
        assert!(
            matches!(r, Err(DrsrError::SignatureFailure { .. })),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn response_without_verifier_is_refused() {
        let (r, _) = run(Misbehave::DropVerifier, &big_stub()).await;
        assert!(matches!(r, Err(DrsrError::Protocol { .. })), "{r:?}");
    }
}
