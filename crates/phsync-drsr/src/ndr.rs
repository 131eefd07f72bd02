//! NDR 2.0 (DCE/RPC transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860), little-endian,
//! 32-bit pointers.
//!
//! The writer and reader handle primitives, alignment, conformant / conformant-varying
//! arrays and unique pointers. Deferral of embedded pointer referents is the caller's
//! job: encoders/decoders in `drsuapi.rs` write or read a construct's scalars first and
//! its referents afterwards, in member order, exactly as NDR (and Samba's pidl) lays them
//! out. The reader never panics and never allocates more than the input can hold: every
//! count is checked against the remaining bytes before anything is reserved.

use super::error::{DrsrError, Result};
pub use phsync_ad::Guid;

/// NDR encoder.
#[derive(Debug, Default)]
pub struct NdrWriter {
    buf: Vec<u8>,
    next_ref_id: u32,
}

impl NdrWriter {
    pub fn new() -> Self {
        NdrWriter {
            buf: Vec::new(),
            next_ref_id: 0x0002_0000,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Pad with zeros to a multiple of `n` (1, 2, 4 or 8).
    pub fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    #[cfg(test)]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn guid(&mut self, g: &Guid) {
        self.align(4);
        self.buf.extend_from_slice(&g.0);
    }

    /// A non-null pointer's referent id (unique / embedded ref pointers).
    pub fn pointer(&mut self) {
        let id = self.next_ref_id;
        self.next_ref_id += 4;
        self.u32(id);
    }

    pub fn null_pointer(&mut self) {
        self.u32(0);
    }

    /// Conformant and varying UTF-16 string with its NUL terminator
    /// (`[string] wchar_t *`): max_count, offset 0, actual_count, units.
    pub fn conformant_varying_wstring(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
        self.u32(units.len() as u32);
        self.u32(0);
        self.u32(units.len() as u32);
        for u in units {
            self.u16(u);
        }
    }

    /// Conformant byte array (`[size_is(n)] BYTE *`): max_count, bytes.
    pub fn conformant_bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.bytes(b);
    }
}

/// NDR decoder over a complete stub.
#[derive(Debug, Clone)]
pub struct NdrReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> NdrReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        NdrReader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn short(&self, what: &'static str, need: usize) -> DrsrError {
        DrsrError::protocol(
            what,
            format!(
                "{need} more bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            ),
        )
    }

    pub fn align(&mut self, n: usize) -> Result<()> {
        let pad = (n - self.pos % n) % n;
        if pad > self.remaining() {
            return Err(self.short("NDR alignment", pad));
        }
        self.pos += pad;
        Ok(())
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.short(what, n));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[cfg(test)]
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        self.align(2)?;
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.align(4)?;
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.align(8)?;
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn guid(&mut self, what: &'static str) -> Result<Guid> {
        self.align(4)?;
        let b = self.take(16, what)?;
        let mut g = [0u8; 16];
        g.copy_from_slice(b);
        Ok(Guid(g))
    }

    /// A pointer's referent id: `true` when non-null.
    pub fn pointer(&mut self, what: &'static str) -> Result<bool> {
        Ok(self.u32(what)? != 0)
    }

    /// A conformance count for elements of at least `min_elem_size` bytes, checked against
    /// the bytes left so no caller can be made to allocate beyond the input.
    pub fn count(&mut self, what: &'static str, min_elem_size: usize) -> Result<usize> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_elem_size.max(1)) > self.remaining() {
            return Err(DrsrError::protocol(
                what,
                format!(
                    "a count that fits the message ({n} elements of >= {min_elem_size} bytes, {} bytes left)",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    /// Conformant byte array: max_count, bytes.
    pub fn conformant_bytes(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let n = self.count(what, 1)?;
        self.take(n, what)
    }

    /// Conformant varying UTF-16 string (`[string] wchar_t *` referent), NUL stripped.
    pub fn conformant_varying_wstring(&mut self, what: &'static str) -> Result<String> {
        let max = self.u32(what)? as usize;
        let offset = self.u32(what)? as usize;
        let actual = self.count(what, 2)?;
        if offset != 0 || actual > max {
            return Err(DrsrError::protocol(
                what,
                "a varying string with offset 0 and actual_count <= max_count",
            ));
        }
        let mut units = Vec::with_capacity(actual);
        for _ in 0..actual {
            units.push(self.u16(what)?);
        }
        if units.last() == Some(&0) {
            units.pop();
        }
        Ok(String::from_utf16_lossy(&units))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip_with_alignment() {
        let mut w = NdrWriter::new();
        w.u8(1);
        w.u16(0x0203);
        w.u8(4);
        w.u32(0x0506_0708);
        w.u64(0x1122_3344_5566_7788);
        let g = Guid::parse("e3514235-4b06-11d1-ab04-00c04fc2dcd2").unwrap();
        w.guid(&g);
        w.pointer();
        w.null_pointer();
        w.conformant_varying_wstring("PHS\\alice");
        w.conformant_bytes(&[9, 8, 7]);
        let bytes = w.into_bytes();
        // u16 aligned to 2, u32 to 4 (offset 8), u64 to 8 (offset 16).
        assert_eq!(&bytes[0..4], &[1, 0, 3, 2]);
        assert_eq!(&bytes[8..12], &0x0506_0708u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &0x1122_3344_5566_7788u64.to_le_bytes());

        let mut r = NdrReader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0203);
        assert_eq!(r.u8("c").unwrap(), 4);
        assert_eq!(r.u32("d").unwrap(), 0x0506_0708);
        assert_eq!(r.u64("e").unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(r.guid("f").unwrap(), g);
        assert!(r.pointer("g").unwrap());
        assert!(!r.pointer("h").unwrap());
        assert_eq!(r.conformant_varying_wstring("i").unwrap(), "PHS\\alice");
        assert_eq!(r.conformant_bytes("j").unwrap(), &[9, 8, 7]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn hostile_counts_are_rejected_without_allocating() {
        let mut w = NdrWriter::new();
        w.u32(0xffff_ffff);
        w.u32(0);
        let bytes = w.into_bytes();
        assert!(NdrReader::new(&bytes).conformant_bytes("x").is_err());
        assert!(NdrReader::new(&bytes).count("x", 1).is_err());
        let mut w = NdrWriter::new();
        w.u32(10);
        w.u32(0);
        w.u32(0x4000_0000);
        let bytes = w.into_bytes();
        assert!(NdrReader::new(&bytes)
            .conformant_varying_wstring("s")
            .is_err());
    }

    #[test]
    fn truncated_input_errors() {
        let mut r = NdrReader::new(&[1, 2, 3]);
        assert!(r.u32("x").is_err());
        let mut r = NdrReader::new(&[1, 0, 0, 0, 0]);
        r.u8("a").unwrap();
        assert!(r.u64("b").is_err());
        assert!(NdrReader::new(&[0; 10]).guid("g").is_err());
    }
}
