//! Endpoint mapper (MS-RPCE 2.2.1.2.5, C706 appendix L): `ept_map` over TCP 135 to find
//! the dynamic TCP port of DRSUAPI.

use super::error::{DrsrError, Result};
use super::ndr::{Guid, NdrReader, NdrWriter};

/// EPM interface e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0.
pub(crate) const EPM_SYNTAX: (Guid, u16, u16) = (
    Guid([
        0x08, 0x83, 0xaf, 0xe1, 0x1f, 0x5d, 0xc9, 0x11, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0,
        0xfa,
    ]),
    3,
    0,
);

pub(crate) const EPT_MAP_OPNUM: u16 = 3;

const PROTO_UUID: u8 = 0x0d;
const PROTO_NCACN: u8 = 0x0b;
const PROTO_TCP: u8 = 0x07;
const PROTO_IP: u8 = 0x09;

fn floor(out: &mut Vec<u8>, lhs: &[u8], rhs: &[u8]) {
    out.extend_from_slice(&(lhs.len() as u16).to_le_bytes());
    out.extend_from_slice(lhs);
    out.extend_from_slice(&(rhs.len() as u16).to_le_bytes());
    out.extend_from_slice(rhs);
}

fn uuid_floor(out: &mut Vec<u8>, s: &(Guid, u16, u16)) {
    let mut lhs = vec![PROTO_UUID];
    lhs.extend_from_slice(&s.0 .0);
    lhs.extend_from_slice(&s.1.to_le_bytes());
    floor(out, &lhs, &s.2.to_le_bytes());
}

/// The tower asked for: interface, NDR, ncacn, TCP port 0, IP 0.0.0.0.
pub fn tower(interface: &(Guid, u16, u16), transfer: &(Guid, u16, u16)) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&5u16.to_le_bytes());
    uuid_floor(&mut t, interface);
    uuid_floor(&mut t, transfer);
    floor(&mut t, &[PROTO_NCACN], &[0, 0]);
    floor(&mut t, &[PROTO_TCP], &[0, 0]);
    floor(&mut t, &[PROTO_IP], &[0, 0, 0, 0]);
    t
}

/// ept_map request stub.
pub fn encode_ept_map(interface: &(Guid, u16, u16), transfer: &(Guid, u16, u16)) -> Vec<u8> {
    let t = tower(interface, transfer);
    let mut w = NdrWriter::new();
    w.null_pointer(); // object
    w.pointer(); // map_tower
    w.u32(t.len() as u32); // conformance
    w.u32(t.len() as u32); // tower_length
    w.bytes(&t);
    w.align(4);
    w.bytes(&[0u8; 20]); // entry_handle
    w.u32(4); // max_towers
    w.into_bytes()
}

/// TCP port from a tower, if it has a TCP floor.
pub fn tower_tcp_port(t: &[u8]) -> Option<u16> {
    let n = u16::from_le_bytes([*t.first()?, *t.get(1)?]) as usize;
    let mut at = 2;
    for _ in 0..n {
        let lhs_len = u16::from_le_bytes([*t.get(at)?, *t.get(at + 1)?]) as usize;
        let lhs = t.get(at + 2..at + 2 + lhs_len)?;
        at += 2 + lhs_len;
        let rhs_len = u16::from_le_bytes([*t.get(at)?, *t.get(at + 1)?]) as usize;
        let rhs = t.get(at + 2..at + 2 + rhs_len)?;
        at += 2 + rhs_len;
        if lhs.first() == Some(&PROTO_TCP) && rhs.len() == 2 {
            return Some(u16::from_be_bytes([rhs[0], rhs[1]]));
        }
    }
    None
}

/// Parse the ept_map response stub: the first TCP port among the towers.
pub fn decode_ept_map(stub: &[u8]) -> Result<u16> {
    let mut r = NdrReader::new(stub);
    r.take(20, "ept_map entry_handle")?;
    let num = r.u32("ept_map num_towers")? as usize;
    let _max = r.u32("ept_map towers max_count")?;
    let _offset = r.u32("ept_map towers offset")?;
    let actual = r.count("ept_map towers actual_count", 4)?;
    if actual != num {
        return Err(DrsrError::protocol(
            "ept_map",
            "actual_count equal to num_towers",
        ));
    }
    let mut present = Vec::with_capacity(actual);
    for _ in 0..actual {
        present.push(r.pointer("ept_map tower pointer")?);
    }
    let mut port = None;
    for p in present {
        if !p {
            continue;
        }
        let _max = r.u32("tower max_count")?;
        let len = r.u32("tower length")? as usize;
        let t = r.take(len, "tower octets")?;
        r.align(4)?;
        if port.is_none() {
            port = tower_tcp_port(t);
        }
    }
    let status = r.u32("ept_map status")?;
    if status != 0 || num == 0 {
        return Err(DrsrError::NoDrsuapiEndpoint);
    }
    port.ok_or(DrsrError::NoDrsuapiEndpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::NDR_SYNTAX;

    #[test]
    fn tower_round_trip_and_reply_decode() {
        let drs = (
            Guid::parse("e3514235-4b06-11d1-ab04-00c04fc2dcd2").unwrap(),
            4,
            0,
        );
        let mut t = tower(&drs, &NDR_SYNTAX);
        assert_eq!(tower_tcp_port(&t), Some(0));
        // Put port 49153 into the TCP floor.
        let pos = t.len() - (2 + 1 + 2 + 4) - 2;
        t[pos..pos + 2].copy_from_slice(&49153u16.to_be_bytes());
        assert_eq!(tower_tcp_port(&t), Some(49153));

        let mut w = NdrWriter::new();
        w.bytes(&[0; 20]);
        w.u32(1);
        w.u32(4);
        w.u32(0);
        w.u32(1);
        w.pointer();
        w.u32(t.len() as u32);
        w.u32(t.len() as u32);
        w.bytes(&t);
        w.align(4);
        w.u32(0);
        assert_eq!(decode_ept_map(&w.into_bytes()).unwrap(), 49153);
    }

    #[test]
    fn empty_or_failed_reply_is_no_endpoint() {
        let mut w = NdrWriter::new();
        w.bytes(&[0; 20]);
        w.u32(0);
        w.u32(4);
        w.u32(0);
        w.u32(0);
        w.u32(0x16c9_a0d6); // EPT_S_NOT_REGISTERED
        assert!(matches!(
            decode_ept_map(&w.into_bytes()),
            Err(DrsrError::NoDrsuapiEndpoint)
        ));
        assert!(decode_ept_map(&[0; 7]).is_err());
    }
}
