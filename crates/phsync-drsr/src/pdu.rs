//! DCE/RPC connection-oriented PDUs (C706 chapter 12, MS-RPCE 2.2.2): encoding of bind,
//! alter_context, auth3 and request; parsing of bind_ack, bind_nak, alter_context_resp,
//! response and fault, with the auth verifier trailer (sec_trailer + auth_value).
//!
//! Parsing never panics and never trusts a length without checking it against the bytes
//! actually present; fragments above [`MAX_FRAG_LEN`] are refused.

use super::error::{DrsrError, Result};
use super::ndr::Guid;

pub(crate) const HEADER_LEN: usize = 16;
pub(crate) const SEC_TRAILER_LEN: usize = 8;
/// Request body header: alloc_hint, p_cont_id, opnum.
pub(crate) const REQUEST_HEADER_LEN: usize = 8;
/// Response body header: alloc_hint, p_cont_id, cancel_count, reserved.
pub(crate) const RESPONSE_HEADER_LEN: usize = 8;
/// Largest fragment we send or accept.
pub(crate) const MAX_FRAG_LEN: usize = 65_535;
/// Fragment size we offer in bind (Windows and Samba use 5840 / 4280; any up to 64 KiB).
pub(crate) const OFFERED_FRAG_LEN: u16 = 5840;
/// Stub padding boundary for sealed PDUs.
pub(crate) const AUTH_PAD_ALIGN: usize = 16;

pub(crate) const PFC_FIRST_FRAG: u8 = 0x01;
pub(crate) const PFC_LAST_FRAG: u8 = 0x02;
pub(crate) const PFC_SUPPORT_HEADER_SIGN: u8 = 0x04;

pub(crate) const RPC_C_AUTHN_LEVEL_PKT_PRIVACY: u8 = 6;
pub(crate) const RPC_C_AUTHN_WINNT: u8 = 10;
pub(crate) const RPC_C_AUTHN_GSS_KERBEROS: u8 = 16;

/// NDR 2.0 transfer syntax.
pub(crate) const NDR_SYNTAX: (Guid, u16, u16) = (
    Guid([
        0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48,
        0x60,
    ]),
    2,
    0,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    Request = 0,
    Response = 2,
    Fault = 3,
    Bind = 11,
    BindAck = 12,
    BindNak = 13,
    AlterContext = 14,
    AlterContextResp = 15,
    Auth3 = 16,
    Shutdown = 17,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Request,
            2 => Self::Response,
            3 => Self::Fault,
            11 => Self::Bind,
            12 => Self::BindAck,
            13 => Self::BindNak,
            14 => Self::AlterContext,
            15 => Self::AlterContextResp,
            16 => Self::Auth3,
            17 => Self::Shutdown,
            _ => return None,
        })
    }
}

/// The 16-byte common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ptype: PacketType,
    pub flags: u8,
    pub frag_len: u16,
    pub auth_len: u16,
    pub call_id: u32,
}

impl Header {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[5, 0, self.ptype as u8, self.flags, 0x10, 0, 0, 0]);
        out.extend_from_slice(&self.frag_len.to_le_bytes());
        out.extend_from_slice(&self.auth_len.to_le_bytes());
        out.extend_from_slice(&self.call_id.to_le_bytes());
    }

    /// Parse and sanity-check the header; returns the fragment length to read.
    pub fn parse(b: &[u8]) -> Result<Header> {
        if b.len() < HEADER_LEN {
            return Err(DrsrError::protocol(
                "PDU header",
                format!("{HEADER_LEN} bytes, got {}", b.len()),
            ));
        }
        if b[0] != 5 || b[1] != 0 {
            return Err(DrsrError::protocol(
                "PDU header",
                format!("RPC version 5.0, got {}.{}", b[0], b[1]),
            ));
        }
        let ptype = PacketType::from_u8(b[2]).ok_or_else(|| {
            DrsrError::protocol("PDU header", format!("a known packet type, got {}", b[2]))
        })?;
        if b[4] != 0x10 {
            return Err(DrsrError::protocol(
                "PDU header",
                format!(
                    "little-endian ASCII data representation (0x10), got 0x{:02x}",
                    b[4]
                ),
            ));
        }
        let frag_len = u16::from_le_bytes([b[8], b[9]]);
        let auth_len = u16::from_le_bytes([b[10], b[11]]);
        let call_id = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        let min = HEADER_LEN
            + if auth_len > 0 {
                SEC_TRAILER_LEN + auth_len as usize
            } else {
                0
            };
        if (frag_len as usize) < min || frag_len as usize > MAX_FRAG_LEN {
            return Err(DrsrError::protocol(
                "PDU header",
                format!("a fragment length between {min} and {MAX_FRAG_LEN}, got {frag_len}"),
            ));
        }
        Ok(Header {
            ptype,
            flags: b[3],
            frag_len,
            auth_len,
            call_id,
        })
    }
}

/// sec_trailer (MS-RPCE 2.2.2.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecTrailer {
    pub auth_type: u8,
    pub auth_level: u8,
    pub pad_len: u8,
    pub context_id: u32,
}

impl SecTrailer {
    pub fn encode(&self) -> [u8; SEC_TRAILER_LEN] {
        let c = self.context_id.to_le_bytes();
        [
            self.auth_type,
            self.auth_level,
            self.pad_len,
            0,
            c[0],
            c[1],
            c[2],
            c[3],
        ]
    }

    fn parse(b: &[u8]) -> SecTrailer {
        SecTrailer {
            auth_type: b[0],
            auth_level: b[1],
            pad_len: b[2],
            context_id: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// One fragment split into its parts.
#[derive(Debug, Clone)]
pub struct Fragment<'a> {
    pub header: Header,
    /// Everything between the header and the sec_trailer (body + auth padding), or to the
    /// end of the fragment when there is no auth verifier.
    pub body: &'a [u8],
    pub trailer: Option<SecTrailer>,
    pub auth_value: &'a [u8],
}

impl<'a> Fragment<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<Fragment<'a>> {
        let header = Header::parse(raw)?;
        if raw.len() != header.frag_len as usize {
            return Err(DrsrError::protocol(
                "PDU",
                format!(
                    "{} bytes as its frag_length says, got {}",
                    header.frag_len,
                    raw.len()
                ),
            ));
        }
        let auth_len = header.auth_len as usize;
        if auth_len == 0 {
            return Ok(Fragment {
                header,
                body: &raw[HEADER_LEN..],
                trailer: None,
                auth_value: &[],
            });
        }
        let trailer_at = raw.len() - auth_len - SEC_TRAILER_LEN;
        let trailer = SecTrailer::parse(&raw[trailer_at..trailer_at + SEC_TRAILER_LEN]);
        Ok(Fragment {
            header,
            body: &raw[HEADER_LEN..trailer_at],
            trailer: Some(trailer),
            auth_value: &raw[trailer_at + SEC_TRAILER_LEN..],
        })
    }

    /// Offset of the sec_trailer within `raw` (only with an auth verifier).
    pub fn trailer_offset(&self) -> usize {
        HEADER_LEN + self.body.len()
    }
}

/// A presentation context offered in bind / alter_context.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub id: u16,
    pub abstract_syntax: (Guid, u16, u16),
    pub transfer_syntax: (Guid, u16, u16),
}

fn push_syntax(out: &mut Vec<u8>, s: &(Guid, u16, u16)) {
    out.extend_from_slice(&s.0 .0);
    out.extend_from_slice(&s.1.to_le_bytes());
    out.extend_from_slice(&s.2.to_le_bytes());
}

/// Encode a bind or alter_context PDU. `auth` is the sec_trailer plus token; the body is
/// padded to 4 bytes before the trailer.
pub fn encode_bind(
    ptype: PacketType,
    flags: u8,
    call_id: u32,
    assoc_group: u32,
    contexts: &[Context],
    auth: Option<(SecTrailer, &[u8])>,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    body.extend_from_slice(&OFFERED_FRAG_LEN.to_le_bytes());
    body.extend_from_slice(&OFFERED_FRAG_LEN.to_le_bytes());
    body.extend_from_slice(&assoc_group.to_le_bytes());
    body.extend_from_slice(&[contexts.len() as u8, 0, 0, 0]);
    for c in contexts {
        body.extend_from_slice(&c.id.to_le_bytes());
        body.extend_from_slice(&[1, 0]);
        push_syntax(&mut body, &c.abstract_syntax);
        push_syntax(&mut body, &c.transfer_syntax);
    }
    finish_pdu(ptype, flags, call_id, body, auth)
}

/// Encode an AUTH3 PDU (4 bytes of padding, then the verifier).
pub fn encode_auth3(call_id: u32, trailer: SecTrailer, token: &[u8]) -> Result<Vec<u8>> {
    finish_pdu(
        PacketType::Auth3,
        PFC_FIRST_FRAG | PFC_LAST_FRAG,
        call_id,
        vec![0; 4],
        Some((trailer, token)),
    )
}

fn finish_pdu(
    ptype: PacketType,
    flags: u8,
    call_id: u32,
    mut body: Vec<u8>,
    auth: Option<(SecTrailer, &[u8])>,
) -> Result<Vec<u8>> {
    let mut auth_len = 0usize;
    if let Some((mut trailer, token)) = auth {
        let pad = (4 - body.len() % 4) % 4;
        body.resize(body.len() + pad, 0);
        trailer.pad_len = pad as u8;
        body.extend_from_slice(&trailer.encode());
        body.extend_from_slice(token);
        auth_len = token.len();
    }
    let frag_len = HEADER_LEN + body.len();
    if frag_len > MAX_FRAG_LEN || auth_len > u16::MAX as usize {
        return Err(DrsrError::protocol(
            "outgoing PDU",
            format!("at most {MAX_FRAG_LEN} bytes, would be {frag_len}"),
        ));
    }
    let mut out = Vec::with_capacity(frag_len);
    Header {
        ptype,
        flags,
        frag_len: frag_len as u16,
        auth_len: auth_len as u16,
        call_id,
    }
    .encode(&mut out);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The parts of bind_ack / alter_context_resp we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAck {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group: u32,
    /// (result, reason) per offered context; result 0 = acceptance.
    pub results: Vec<(u16, u16)>,
}

fn rd_u16(b: &[u8], at: usize, what: &'static str) -> Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| DrsrError::protocol(what, "a longer body"))
}

fn rd_u32(b: &[u8], at: usize, what: &'static str) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| DrsrError::protocol(what, "a longer body"))
}

/// Parse a bind_ack or alter_context_resp body; bind_nak becomes `BindRejected`.
pub fn parse_bind_ack(frag: &Fragment<'_>) -> Result<BindAck> {
    const WHAT: &str = "bind_ack";
    match frag.header.ptype {
        PacketType::BindAck | PacketType::AlterContextResp => {}
        PacketType::BindNak => {
            let reason = rd_u16(frag.body, 0, "bind_nak")?;
            return Err(DrsrError::BindRejected { reason });
        }
        PacketType::Fault => {
            let status = rd_u32(frag.body, 8, "fault")?;
            return Err(DrsrError::RpcFault { op: "bind", status });
        }
        other => {
            return Err(DrsrError::protocol(
                WHAT,
                format!("bind_ack or alter_context_resp, got {other:?}"),
            ))
        }
    }
    let b = frag.body;
    let max_xmit_frag = rd_u16(b, 0, WHAT)?;
    let max_recv_frag = rd_u16(b, 2, WHAT)?;
    let assoc_group = rd_u32(b, 4, WHAT)?;
    let sec_addr_len = rd_u16(b, 8, WHAT)? as usize;
    let mut at = 10 + sec_addr_len;
    at = (at + 3) & !3;
    let n = *b
        .get(at)
        .ok_or_else(|| DrsrError::protocol(WHAT, "a result list"))? as usize;
    at += 4;
    let mut results = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let result = rd_u16(b, at, WHAT)?;
        let reason = rd_u16(b, at + 2, WHAT)?;
        if b.len() < at + 24 {
            return Err(DrsrError::protocol(WHAT, "a complete result entry"));
        }
        results.push((result, reason));
        at += 24;
    }
    Ok(BindAck {
        max_xmit_frag,
        max_recv_frag,
        assoc_group,
        results,
    })
}

/// Body of a response fragment after the header: (alloc_hint, context id, stub + pad).
pub fn split_response_body<'a>(frag: &Fragment<'a>) -> Result<(u32, u16, &'a [u8])> {
    match frag.header.ptype {
        PacketType::Response => {}
        PacketType::Fault => {
            let status = rd_u32(frag.body, 8, "fault")?;
            return Err(DrsrError::RpcFault {
                op: "request",
                status,
            });
        }
        other => {
            return Err(DrsrError::protocol(
                "response",
                format!("a response or fault PDU, got {other:?}"),
            ))
        }
    }
    if frag.body.len() < RESPONSE_HEADER_LEN {
        return Err(DrsrError::protocol("response", "an 8-byte response header"));
    }
    let alloc_hint = rd_u32(frag.body, 0, "response")?;
    let ctx = rd_u16(frag.body, 4, "response")?;
    Ok((alloc_hint, ctx, &frag.body[RESPONSE_HEADER_LEN..]))
}

/// Request PDU without auth (used for the endpoint mapper).
pub fn encode_request_plain(call_id: u32, ctx_id: u16, opnum: u16, stub: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(REQUEST_HEADER_LEN + stub.len());
    body.extend_from_slice(&(stub.len() as u32).to_le_bytes());
    body.extend_from_slice(&ctx_id.to_le_bytes());
    body.extend_from_slice(&opnum.to_le_bytes());
    body.extend_from_slice(stub);
    finish_pdu(
        PacketType::Request,
        PFC_FIRST_FRAG | PFC_LAST_FRAG,
        call_id,
        body,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            id: 0,
            abstract_syntax: (
                Guid::parse("e3514235-4b06-11d1-ab04-00c04fc2dcd2").unwrap(),
                4,
                0,
            ),
            transfer_syntax: NDR_SYNTAX,
        }
    }

    #[test]
    fn bind_encodes_header_and_context() {
        let trailer = SecTrailer {
            auth_type: RPC_C_AUTHN_WINNT,
            auth_level: RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
            pad_len: 0,
            context_id: 0,
        };
        let pdu = encode_bind(
            PacketType::Bind,
            PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_SUPPORT_HEADER_SIGN,
            1,
            0,
            &[ctx()],
            Some((trailer, b"NTLMSSP\0token")),
        )
        .unwrap();
        let frag = Fragment::parse(&pdu).unwrap();
        assert_eq!(frag.header.ptype, PacketType::Bind);
        assert_eq!(frag.header.call_id, 1);
        assert_eq!(frag.header.frag_len as usize, pdu.len());
        assert_eq!(frag.auth_value, b"NTLMSSP\0token");
        assert_eq!(frag.trailer.unwrap().auth_level, 6);
        // 8-byte fixed part + 4-byte list header + 44-byte context = 56, no padding.
        assert_eq!(frag.body.len(), 56);
        assert_eq!(frag.trailer_offset() % 4, 0);
    }

    fn bind_ack_bytes() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&4280u16.to_le_bytes());
        body.extend_from_slice(&4280u16.to_le_bytes());
        body.extend_from_slice(&0x1234u32.to_le_bytes());
        body.extend_from_slice(&6u16.to_le_bytes());
        body.extend_from_slice(b"49153\0");
        // 16 bytes so far: aligned.
        body.extend_from_slice(&[1, 0, 0, 0]);
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        push_syntax(&mut body, &NDR_SYNTAX);
        finish_pdu(PacketType::BindAck, 3, 1, body, None).unwrap()
    }

    #[test]
    fn bind_ack_parses() {
        let b = bind_ack_bytes();
        let ack = parse_bind_ack(&Fragment::parse(&b).unwrap()).unwrap();
        assert_eq!(ack.max_xmit_frag, 4280);
        assert_eq!(ack.assoc_group, 0x1234);
        assert_eq!(ack.results, vec![(0, 0)]);
    }

    #[test]
    fn bind_nak_and_fault_are_errors() {
        let nak = finish_pdu(PacketType::BindNak, 3, 1, vec![2, 0, 0, 0], None).unwrap();
        assert!(matches!(
            parse_bind_ack(&Fragment::parse(&nak).unwrap()),
            Err(DrsrError::BindRejected { reason: 2 })
        ));
        let mut body = vec![0u8; 8];
        body.extend_from_slice(&0x1c01_0002u32.to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        let fault = finish_pdu(PacketType::Fault, 3, 7, body, None).unwrap();
        let f = Fragment::parse(&fault).unwrap();
        assert!(matches!(
            split_response_body(&f),
            Err(DrsrError::RpcFault {
                status: 0x1c01_0002,
                ..
            })
        ));
    }

    #[test]
    fn request_and_response_round_trip() {
        let pdu = encode_request_plain(9, 0, 3, &[1, 2, 3, 4]).unwrap();
        let f = Fragment::parse(&pdu).unwrap();
        assert_eq!(f.header.ptype, PacketType::Request);
        assert_eq!(&f.body[8..], &[1, 2, 3, 4]);
        let mut body = vec![0u8; 8];
        body.extend_from_slice(&[5, 6]);
        let resp = finish_pdu(PacketType::Response, 3, 9, body, None).unwrap();
        let f = Fragment::parse(&resp).unwrap();
        assert_eq!(split_response_body(&f).unwrap().2, &[5, 6]);
    }

    #[test]
    fn truncated_and_lying_headers_are_errors() {
        let b = bind_ack_bytes();
        for n in 0..b.len() {
            assert!(Fragment::parse(&b[..n]).is_err(), "len {n}");
        }
        let mut lying = b.clone();
        lying[10] = 0xff; // auth_len larger than the fragment
        assert!(Fragment::parse(&lying).is_err());
        let mut wrong_ver = b.clone();
        wrong_ver[0] = 4;
        assert!(Header::parse(&wrong_ver).is_err());
        let mut big_endian = b;
        big_endian[4] = 0;
        assert!(Header::parse(&big_endian).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, .. Default::default() })]
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(f) = Fragment::parse(&data) {
                let _ = parse_bind_ack(&f);
                let _ = split_response_body(&f);
            }
        }

        #[test]
        fn mutated_bind_ack_never_panics(pos in 0usize..80, val in proptest::prelude::any::<u8>()) {
            let mut b = bind_ack_bytes();
            if pos < b.len() { b[pos] = val; }
            if let Ok(f) = Fragment::parse(&b) {
                let _ = parse_bind_ack(&f);
            }
        }
    }
}
