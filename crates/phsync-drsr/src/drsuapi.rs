//! DRSUAPI (MS-DRSR) wire types and stubs: IDL_DRSBind (§4.1.3), IDL_DRSUnbind (§4.1.25),
//! IDL_DRSCrackNames (§4.1.4) and IDL_DRSGetNCChanges (§4.1.10; request V8, reply V6)
//! encoding and decoding. Types carry the spec's names in Rust casing; turning them into
//! records is `convert`'s job.
//!
//! NDR deferral: embedded pointer referents follow the scalars of the construct that
//! holds them, in member order; a referent's own referents follow its scalars. The reply's
//! object list (REPLENTINFLIST) is a linked list through its first member, so on the
//! wire it is: scalars of item 1, scalars of item 2, …, scalars of item n, then the other
//! referents of item n, item n-1, …, item 1. It is decoded iteratively (no recursion).

use super::error::{DrsrError, Result};
use super::ndr::{Guid, NdrReader, NdrWriter};
use super::prefix::{PrefixTableEntry, SchemaPrefixTable};
use super::records::{UptodateCursorV1, UsnVector};

/// DRSUAPI interface e3514235-4b06-11d1-ab04-00c04fc2dcd2 v4.0.
pub(crate) const DRSUAPI_SYNTAX: (Guid, u16, u16) = (
    Guid([
        0x35, 0x42, 0x51, 0xe3, 0x06, 0x4b, 0xd1, 0x11, 0xab, 0x04, 0x00, 0xc0, 0x4f, 0xc2, 0xdc,
        0xd2,
    ]),
    4,
    0,
);

pub(crate) const OP_BIND: u16 = 0;
pub(crate) const OP_UNBIND: u16 = 1;
pub(crate) const OP_GET_NC_CHANGES: u16 = 3;
pub(crate) const OP_CRACK_NAMES: u16 = 12;

/// The well-known client DSA GUID for DRSBind (MS-DRSR NTDSAPI_CLIENT_GUID).
pub(crate) const NTDSAPI_CLIENT_GUID: Guid = Guid([
    0x1a, 0x20, 0x4d, 0xe2, 0xd6, 0x4f, 0xd1, 0x11, 0xa3, 0xda, 0x00, 0x00, 0xf8, 0x75, 0xae, 0x0d,
]);

// DRS_EXTENSIONS_INT dwFlags.
pub(crate) const DRS_EXT_BASE: u32 = 0x0000_0001;
pub(crate) const DRS_EXT_RESTORE_USN_OPTIMIZATION: u32 = 0x0000_0040;
pub(crate) const DRS_EXT_INSTANCE_TYPE_NOT_REQ_ON_MOD: u32 = 0x0000_1000;
pub(crate) const DRS_EXT_STRONG_ENCRYPTION: u32 = 0x0000_8000;
pub(crate) const DRS_EXT_POST_BETA3: u32 = 0x0008_0000;
pub(crate) const DRS_EXT_GETCHGREQ_V5: u32 = 0x0010_0000;
pub(crate) const DRS_EXT_GETCHGREQ_V6: u32 = 0x0040_0000;
pub(crate) const DRS_EXT_GETCHGREQ_V8: u32 = 0x0100_0000;
pub(crate) const DRS_EXT_GETCHGREPLY_V5: u32 = 0x0200_0000;
pub(crate) const DRS_EXT_GETCHGREPLY_V6: u32 = 0x0400_0000;

/// What we advertise: V8 requests / V6 replies, strong encryption, no compression.
pub(crate) const CLIENT_EXTENSIONS: u32 = DRS_EXT_BASE
    | DRS_EXT_RESTORE_USN_OPTIMIZATION
    | DRS_EXT_INSTANCE_TYPE_NOT_REQ_ON_MOD
    | DRS_EXT_STRONG_ENCRYPTION
    | DRS_EXT_POST_BETA3
    | DRS_EXT_GETCHGREQ_V5
    | DRS_EXT_GETCHGREQ_V6
    | DRS_EXT_GETCHGREQ_V8
    | DRS_EXT_GETCHGREPLY_V5
    | DRS_EXT_GETCHGREPLY_V6;

// DRS_OPTIONS.
pub(crate) const DRS_WRIT_REP: u32 = 0x0000_0010;
pub(crate) const DRS_INIT_SYNC: u32 = 0x0000_0020;
pub(crate) const DRS_NEVER_SYNCED: u32 = 0x0020_0000;

pub(crate) const EXOP_NONE: u32 = 0;
pub(crate) const EXOP_REPL_OBJ: u32 = 6;

// DS_NAME_FORMAT.
pub(crate) const DS_FQDN_1779_NAME: u32 = 1;
pub(crate) const DS_NT4_ACCOUNT_NAME: u32 = 2;
pub(crate) const DS_UNIQUE_ID_NAME: u32 = 6;
pub(crate) const DS_USER_PRINCIPAL_NAME: u32 = 8;

/// DRS_HANDLE: the context handle IDL_DRSBind returns (MS-DRSR §4.1.3), 20 bytes on the
/// wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DrsHandle(pub [u8; 20]);

impl std::fmt::Debug for DrsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DrsHandle(..)")
    }
}

fn status(r: &mut NdrReader<'_>, what: &'static str) -> Result<u32> {
    r.u32(what)
}

// ---------------------------------------------------------------- DRSBind / Unbind

/// DRS_EXTENSIONS_INT, the capabilities exchanged by IDL_DRSBind.
/// MS-DRSR §5.39
///
/// Only the fields up to dwReplEpoch are sent (cb = 28); later fields (dwFlagsExt,
/// ConfigObjGUID, dwExtCaps) are optional and ignored when a DC sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrsExtensionsInt {
    /// dwFlags: DRS_EXT_* capability bits.
    pub flags: u32,
    /// SiteObjGuid.
    pub site_obj_guid: Guid,
    /// Pid.
    pub pid: u32,
    /// dwReplEpoch.
    pub repl_epoch: u32,
}

impl DrsExtensionsInt {
    /// Bytes from dwFlags through dwReplEpoch.
    const LEN: usize = 28;

    /// The bytes counted by cb (dwFlags through dwReplEpoch).
    fn encode(&self) -> Vec<u8> {
        let mut ext = Vec::with_capacity(Self::LEN);
        ext.extend_from_slice(&self.flags.to_le_bytes());
        ext.extend_from_slice(self.site_obj_guid.as_bytes());
        ext.extend_from_slice(&self.pid.to_le_bytes());
        ext.extend_from_slice(&self.repl_epoch.to_le_bytes());
        ext
    }

    /// From the bytes counted by cb; fields a short structure lacks stay zero.
    fn decode(ext: &[u8]) -> DrsExtensionsInt {
        let u32_at = |o: usize| {
            ext.get(o..o + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        DrsExtensionsInt {
            flags: u32_at(0),
            site_obj_guid: ext
                .get(4..20)
                .and_then(|b| Guid::from_slice(b).ok())
                .unwrap_or_default(),
            pid: u32_at(20),
            repl_epoch: u32_at(24),
        }
    }
}

/// IDL_DRSBind request (MS-DRSR §4.1.3): the client DSA GUID and our DRS_EXTENSIONS_INT.
pub fn encode_bind(epoch: u32) -> Vec<u8> {
    let mut w = NdrWriter::new();
    w.pointer();
    w.guid(&NTDSAPI_CLIENT_GUID);
    w.pointer();
    let ext = DrsExtensionsInt {
        flags: CLIENT_EXTENSIONS,
        repl_epoch: epoch,
        ..Default::default()
    }
    .encode();
    w.u32(ext.len() as u32); // conformance
    w.u32(ext.len() as u32); // cb
    w.bytes(&ext);
    w.into_bytes()
}

/// What IDL_DRSBind returns (MS-DRSR §4.1.3): the handle and the server's extensions.
#[derive(Debug, Clone)]
pub struct BindReply {
    pub handle: DrsHandle,
    pub server_flags: u32,
    pub repl_epoch: u32,
}

pub fn decode_bind(stub: &[u8]) -> Result<BindReply> {
    let mut r = NdrReader::new(stub);
    let mut server = DrsExtensionsInt::default();
    if r.pointer("DRSBind ppextServer")? {
        let _max = r.u32("DRS_EXTENSIONS conformance")?;
        let cb = r.u32("DRS_EXTENSIONS cb")? as usize;
        server = DrsExtensionsInt::decode(r.take(cb, "DRS_EXTENSIONS")?);
    }
    r.align(4)?;
    let mut h = [0u8; 20];
    h.copy_from_slice(r.take(20, "DRSBind handle")?);
    let st = status(&mut r, "DRSBind status")?;
    if st != 0 {
        return Err(DrsrError::from_drs_status("DRSBind", st));
    }
    Ok(BindReply {
        handle: DrsHandle(h),
        server_flags: server.flags,
        repl_epoch: server.repl_epoch,
    })
}

pub fn encode_unbind(h: &DrsHandle) -> Vec<u8> {
    h.0.to_vec()
}

// ---------------------------------------------------------------- DRSCrackNames

pub fn encode_crack_names(h: &DrsHandle, offered: u32, desired: u32, names: &[&str]) -> Vec<u8> {
    let mut w = NdrWriter::new();
    w.bytes(&h.0);
    w.u32(1); // dwInVersion
    w.u32(1); // union switch
    w.u32(0); // CodePage
    w.u32(0); // LocaleId
    w.u32(0); // dwFlags
    w.u32(offered);
    w.u32(desired);
    w.u32(names.len() as u32);
    w.pointer();
    w.u32(names.len() as u32);
    for _ in names {
        w.pointer();
    }
    for n in names {
        w.conformant_varying_wstring(n);
    }
    w.into_bytes()
}

/// One result of IDL_DRSCrackNames (MS-DRSR §4.1.4): DS_NAME_RESULT_ITEMW.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsNameResultItemW {
    pub status: u32,
    pub domain: Option<String>,
    pub name: Option<String>,
}

pub fn decode_crack_names(stub: &[u8]) -> Result<Vec<DsNameResultItemW>> {
    let mut r = NdrReader::new(stub);
    let ver = r.u32("CrackNames version")?;
    let sw = r.u32("CrackNames switch")?;
    if ver != 1 || sw != 1 {
        return Err(DrsrError::protocol(
            "DRSCrackNames reply",
            format!("version 1, got {ver}/{sw}"),
        ));
    }
    let mut out = Vec::new();
    if r.pointer("DS_NAME_RESULTW")? {
        let n = r.u32("cItems")? as usize;
        if r.pointer("rItems")? {
            let max = r.count("rItems conformance", 12)?;
            if max < n {
                return Err(DrsrError::protocol("DRSCrackNames", "max_count >= cItems"));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let st = r.u32("item status")?;
                let d = r.pointer("pDomain")?;
                let p = r.pointer("pName")?;
                items.push((st, d, p));
            }
            for (st, d, p) in items {
                let domain = if d {
                    Some(r.conformant_varying_wstring("pDomain")?)
                } else {
                    None
                };
                let name = if p {
                    Some(r.conformant_varying_wstring("pName")?)
                } else {
                    None
                };
                out.push(DsNameResultItemW {
                    status: st,
                    domain,
                    name,
                });
            }
        }
    }
    let st = status(&mut r, "DRSCrackNames status")?;
    if st != 0 {
        return Err(DrsrError::from_drs_status("DRSCrackNames", st));
    }
    Ok(out)
}

// ---------------------------------------------------------------- DSNAME

/// DSNAME: an object's identity by GUID, SID and DN.
/// MS-DRSR §5.50
///
/// `sid` holds the SidLen bytes of the 28-byte NT4SID field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsName {
    pub guid: Guid,
    pub sid: Vec<u8>,
    pub dn: String,
}

fn encode_dsname(w: &mut NdrWriter, name: &DsName) {
    let units: Vec<u16> = name.dn.encode_utf16().collect();
    let n = units.len();
    w.u32((n + 1) as u32); // conformance
    w.u32((4 + 4 + 16 + 28 + 4 + 2 * (n + 1)) as u32); // structLen
    w.u32(name.sid.len().min(28) as u32);
    w.guid(&name.guid);
    let mut sid = [0u8; 28];
    let k = name.sid.len().min(28);
    sid[..k].copy_from_slice(&name.sid[..k]);
    w.bytes(&sid);
    w.u32(n as u32);
    for u in units {
        w.u16(u);
    }
    w.u16(0);
}

fn decode_dsname(r: &mut NdrReader<'_>) -> Result<DsName> {
    let max = r.count("DSNAME conformance", 2)?;
    let _struct_len = r.u32("DSNAME structLen")?;
    let sid_len = r.u32("DSNAME SidLen")? as usize;
    let guid = r.guid("DSNAME Guid")?;
    let sid_bytes = r.take(28, "DSNAME Sid")?;
    let name_len = r.u32("DSNAME NameLen")? as usize;
    if sid_len > 28 || name_len >= max {
        return Err(DrsrError::protocol(
            "DSNAME",
            "SidLen <= 28 and NameLen < conformance",
        ));
    }
    let mut units = Vec::with_capacity(max);
    for _ in 0..max {
        units.push(r.u16("DSNAME StringName")?);
    }
    units.truncate(name_len.min(max));
    Ok(DsName {
        guid,
        sid: sid_bytes[..sid_len].to_vec(),
        dn: String::from_utf16_lossy(&units),
    })
}

// ---------------------------------------------------------------- GetNCChanges

/// DRS_MSG_GETCHGREQ_V8: one IDL_DRSGetNCChanges request.
/// MS-DRSR §4.1.10.2.6
///
/// `usn_from` is usnvecFrom (USN_VECTOR, §5.210); `up_to_dateness` is pUpToDateVecDest
/// (UPTODATE_VECTOR_V1_EXT, §5.204, of UPTODATE_CURSOR_V1, §5.202); `partial_attribute_set`
/// is pPartialAttrSet (PARTIAL_ATTR_VECTOR_V1_EXT); `prefix_table` is PrefixTableDest.
#[derive(Debug, Clone)]
pub struct DrsMsgGetchgreqV8 {
    pub dest_dsa: Guid,
    pub invocation_id: Guid,
    pub naming_context: DsName,
    pub usn_from: UsnVector,
    pub up_to_dateness: Option<Vec<UptodateCursorV1>>,
    pub flags: u32,
    pub max_objects: u32,
    pub max_bytes: u32,
    pub extended_op: u32,
    pub partial_attribute_set: Vec<u32>,
    pub prefix_table: SchemaPrefixTable,
}

pub fn encode_get_nc_changes(h: &DrsHandle, req: &DrsMsgGetchgreqV8) -> Vec<u8> {
    let mut w = NdrWriter::new();
    w.bytes(&h.0);
    w.u32(8); // dwInVersion
    w.u32(8); // union switch
    w.align(8);
    w.guid(&req.dest_dsa);
    w.guid(&req.invocation_id);
    w.pointer(); // pNC
    w.u64(req.usn_from.high_obj_update);
    w.u64(req.usn_from.reserved);
    w.u64(req.usn_from.high_prop_update);
    match &req.up_to_dateness {
        Some(_) => w.pointer(),
        None => w.null_pointer(),
    }
    w.u32(req.flags);
    w.u32(req.max_objects);
    w.u32(req.max_bytes);
    w.u32(req.extended_op);
    w.u64(0); // liFsmoInfo
    if req.partial_attribute_set.is_empty() {
        w.null_pointer();
    } else {
        w.pointer();
    }
    w.null_pointer(); // pPartialAttrSetEx
    let mut entries: Vec<PrefixTableEntry> = req.prefix_table.entries.clone();
    entries.push(super::prefix::schema_info_entry());
    w.u32(entries.len() as u32);
    w.pointer();

    // Deferred referents, in member order.
    encode_dsname(&mut w, &req.naming_context);
    if let Some(utd) = &req.up_to_dateness {
        w.u32(utd.len() as u32); // conformance
        w.align(8);
        w.u32(1); // dwVersion
        w.u32(0);
        w.u32(utd.len() as u32);
        w.u32(0);
        for c in utd {
            w.align(8);
            w.guid(&c.invocation_id);
            w.u64(c.usn);
        }
    }
    if !req.partial_attribute_set.is_empty() {
        let n = req.partial_attribute_set.len() as u32;
        w.u32(n); // conformance
        w.u32(1); // dwVersion
        w.u32(0);
        w.u32(n);
        for a in &req.partial_attribute_set {
            w.u32(*a);
        }
    }
    w.u32(entries.len() as u32);
    for e in &entries {
        w.u32(e.ndx);
        w.u32(e.prefix.len() as u32);
        w.pointer();
    }
    for e in &entries {
        w.conformant_bytes(&e.prefix);
    }
    w.into_bytes()
}

/// ATTR: one attribute of an object, its ATTRTYP and its values (the ATTRVALBLOCK, §5.17,
/// of ATTRVALs, §5.16, flattened to byte vectors). An ENTINF's ATTRBLOCK (§5.10) is a
/// `Vec<Attr>`.
/// MS-DRSR §5.9
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub attid: u32,
    pub values: Vec<Vec<u8>>,
}

/// PROPERTY_META_DATA_EXT: the stamp of one attribute in a reply (dwVersion, timeChanged
/// as DSTIME, uuidDsaOriginating, usnOriginating); a PROPERTY_META_DATA_EXT_VECTOR is a
/// `Vec` of them, parallel to the ATTRBLOCK.
/// MS-DRSR §5 (PROPERTY_META_DATA_EXT; see the IDL in §7)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyMetaDataExt {
    pub version: u32,
    pub time_changed: i64,
    pub originating_dsa: Guid,
    pub originating_usn: u64,
}

/// One REPLENTINFLIST item: the ENTINF (§5.53: pName, ulFlags, AttrBlock) flattened in,
/// then fIsNCPrefix, pParentGuid and pMetaDataExt. The wire's linked list is a `Vec`.
/// MS-DRSR §5.162
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplentinflistItem {
    pub name: Option<DsName>,
    pub flags: u32,
    pub attrs: Vec<Attr>,
    pub is_nc_prefix: bool,
    pub parent_guid: Option<Guid>,
    /// One entry per attribute of `attrs`, same order (PROPERTY_META_DATA_EXT_VECTOR).
    pub meta: Vec<PropertyMetaDataExt>,
}

/// DRS_MSG_GETCHGREPLY_V6: one IDL_DRSGetNCChanges reply, the parts a client uses.
/// MS-DRSR §4.1.10.2.12
///
/// `up_to_dateness` is pUpToDateVecSrc (UPTODATE_VECTOR_V2_EXT of UPTODATE_CURSOR_V2,
/// §5.203, kept without timeLastSyncSuccess); `prefix_table` is PrefixTableSrc; the
/// linked values (rgValues, REPLVALINF_V1 §5.167) are skipped.
#[derive(Debug, Clone, Default)]
pub struct DrsMsgGetchgreplyV6 {
    pub source_dsa: Guid,
    pub invocation_id: Guid,
    pub naming_context: Option<DsName>,
    pub usn_from: UsnVector,
    pub usn_to: UsnVector,
    pub up_to_dateness: Vec<UptodateCursorV1>,
    pub prefix_table: SchemaPrefixTable,
    pub extended_ret: u32,
    pub objects: Vec<ReplentinflistItem>,
    pub more_data: bool,
    pub linked_value_count: u32,
    pub drs_error: u32,
}

fn decode_usn_vector(r: &mut NdrReader<'_>) -> Result<UsnVector> {
    Ok(UsnVector {
        high_obj_update: r.u64("USN_VECTOR")?,
        reserved: r.u64("USN_VECTOR")?,
        high_prop_update: r.u64("USN_VECTOR")?,
    })
}

struct ItemScalars {
    has_name: bool,
    flags: u32,
    attr_count: u32,
    has_attrs: bool,
    is_nc_prefix: bool,
    has_parent: bool,
    has_meta: bool,
}

fn decode_attr_block(r: &mut NdrReader<'_>, attr_count: u32) -> Result<Vec<Attr>> {
    let max = r.count("ATTRBLOCK conformance", 12)?;
    if max < attr_count as usize {
        return Err(DrsrError::protocol("ATTRBLOCK", "conformance >= attrCount"));
    }
    let mut heads = Vec::with_capacity(max);
    for _ in 0..max {
        let attid = r.u32("ATTR attrTyp")?;
        let n = r.u32("ATTRVALBLOCK valCount")?;
        let p = r.pointer("ATTRVALBLOCK pAVal")?;
        heads.push((attid, n, p));
    }
    let mut attrs = Vec::with_capacity(max);
    for (attid, n, p) in heads {
        let mut values = Vec::new();
        if p {
            let vmax = r.count("ATTRVALBLOCK conformance", 8)?;
            if vmax < n as usize {
                return Err(DrsrError::protocol(
                    "ATTRVALBLOCK",
                    "conformance >= valCount",
                ));
            }
            let mut vheads = Vec::with_capacity(vmax);
            for _ in 0..vmax {
                let len = r.u32("ATTRVAL valLen")?;
                let vp = r.pointer("ATTRVAL pVal")?;
                vheads.push((len, vp));
            }
            values.reserve(vmax);
            for (len, vp) in vheads {
                if vp {
                    let b = r.conformant_bytes("ATTRVAL pVal")?;
                    if b.len() != len as usize {
                        return Err(DrsrError::protocol(
                            "ATTRVAL",
                            "valLen equal to the conformance",
                        ));
                    }
                    values.push(b.to_vec());
                } else {
                    values.push(Vec::new());
                }
            }
        }
        attrs.push(Attr { attid, values });
    }
    Ok(attrs)
}

fn decode_meta_ext(r: &mut NdrReader<'_>) -> Result<Vec<PropertyMetaDataExt>> {
    let max = r.count("PROPERTY_META_DATA_EXT_VECTOR conformance", 40)?;
    r.align(8)?;
    let n = r.u32("cNumProps")? as usize;
    if n != max {
        return Err(DrsrError::protocol(
            "PROPERTY_META_DATA_EXT_VECTOR",
            "cNumProps equal to the conformance",
        ));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        r.align(8)?;
        let version = r.u32("dwVersion")?;
        let time_changed = r.u64("timeChanged")? as i64;
        let originating_dsa = r.guid("uuidDsaOriginating")?;
        let originating_usn = r.u64("usnOriginating")?;
        out.push(PropertyMetaDataExt {
            version,
            time_changed,
            originating_dsa,
            originating_usn,
        });
    }
    Ok(out)
}

/// Decode an IDL_DRSGetNCChanges response stub (version 6 only; compressed or V1/V2/V7
/// replies are protocol errors because we never ask for them).
pub fn decode_get_nc_changes(stub: &[u8]) -> Result<DrsMsgGetchgreplyV6> {
    let mut r = NdrReader::new(stub);
    let ver = r.u32("GetNCChanges pdwOutVersion")?;
    let sw = r.u32("GetNCChanges switch")?;
    if ver != 6 || sw != 6 {
        return Err(DrsrError::protocol(
            "DRSGetNCChanges reply",
            format!("a version 6 reply, got {ver}"),
        ));
    }
    r.align(8)?;
    let mut rep = DrsMsgGetchgreplyV6 {
        source_dsa: r.guid("uuidDsaObjSrc")?,
        invocation_id: r.guid("uuidInvocIdSrc")?,
        ..Default::default()
    };
    let has_nc = r.pointer("pNC")?;
    rep.usn_from = decode_usn_vector(&mut r)?;
    rep.usn_to = decode_usn_vector(&mut r)?;
    let has_utd = r.pointer("pUpToDateVecSrc")?;
    let prefix_count = r.u32("PrefixTableSrc count")?;
    let has_prefix = r.pointer("PrefixTableSrc entries")?;
    rep.extended_ret = r.u32("ulExtendedRet")?;
    let object_count = r.u32("cNumObjects")?;
    let _bytes = r.u32("cNumBytes")?;
    let has_objects = r.pointer("pObjects")?;
    rep.more_data = r.u32("fMoreData")? != 0;
    let _nc_objects = r.u32("cNumNcSizeObjects")?;
    let _nc_values = r.u32("cNumNcSizeValues")?;
    rep.linked_value_count = r.u32("cNumValues")?;
    let has_values = r.pointer("rgValues")?;
    rep.drs_error = r.u32("dwDRSError")?;

    if has_nc {
        rep.naming_context = Some(decode_dsname(&mut r)?);
    }
    if has_utd {
        let max = r.count("UPTODATE_VECTOR_V2 conformance", 32)?;
        r.align(8)?;
        let _version = r.u32("UTD dwVersion")?;
        let _res = r.u32("UTD reserved")?;
        let n = r.u32("UTD cNumCursors")? as usize;
        let _res2 = r.u32("UTD reserved2")?;
        if n != max {
            return Err(DrsrError::protocol(
                "UPTODATE_VECTOR_V2",
                "cNumCursors equal to the conformance",
            ));
        }
        for _ in 0..n {
            r.align(8)?;
            let invocation_id = r.guid("UPTODATE_CURSOR_V2 uuidDsa")?;
            let usn = r.u64("UPTODATE_CURSOR_V2 usnHighPropUpdate")?;
            let _time = r.u64("UPTODATE_CURSOR_V2 timeLastSyncSuccess")?;
            rep.up_to_dateness
                .push(UptodateCursorV1 { invocation_id, usn });
        }
    }
    if has_prefix {
        let max = r.count("PrefixTableEntry conformance", 12)?;
        if max < prefix_count as usize {
            return Err(DrsrError::protocol(
                "SCHEMA_PREFIX_TABLE",
                "conformance >= PrefixCount",
            ));
        }
        let mut heads = Vec::with_capacity(max);
        for _ in 0..max {
            let ndx = r.u32("PrefixTableEntry ndx")?;
            let len = r.u32("OID_t length")?;
            let p = r.pointer("OID_t elements")?;
            heads.push((ndx, len, p));
        }
        for (ndx, len, p) in heads {
            let prefix = if p {
                let b = r.conformant_bytes("OID_t elements")?;
                if b.len() != len as usize {
                    return Err(DrsrError::protocol(
                        "OID_t",
                        "length equal to the conformance",
                    ));
                }
                b.to_vec()
            } else {
                Vec::new()
            };
            rep.prefix_table
                .entries
                .push(PrefixTableEntry { ndx, prefix });
        }
    }
    if has_objects {
        // Scalars of the whole chain first.
        let mut items: Vec<ItemScalars> = Vec::new();
        loop {
            if items.len() >= object_count as usize || r.remaining() < 28 {
                return Err(DrsrError::protocol(
                    "REPLENTINFLIST",
                    format!("at most cNumObjects ({object_count}) entries"),
                ));
            }
            let next = r.pointer("REPLENTINFLIST pNextEntInf")?;
            items.push(ItemScalars {
                has_name: r.pointer("ENTINF pName")?,
                flags: r.u32("ENTINF ulFlags")?,
                attr_count: r.u32("ATTRBLOCK attrCount")?,
                has_attrs: r.pointer("ATTRBLOCK pAttr")?,
                is_nc_prefix: r.u32("fIsNCPrefix")? != 0,
                has_parent: r.pointer("pParentGuid")?,
                has_meta: r.pointer("pMetaDataExt")?,
            });
            if !next {
                break;
            }
        }
        // Then the remaining referents, innermost item first.
        let mut objects = Vec::with_capacity(items.len());
        for it in items.iter().rev() {
            let mut o = ReplentinflistItem {
                flags: it.flags,
                is_nc_prefix: it.is_nc_prefix,
                ..Default::default()
            };
            if it.has_name {
                o.name = Some(decode_dsname(&mut r)?);
            }
            if it.has_attrs {
                o.attrs = decode_attr_block(&mut r, it.attr_count)?;
            }
            if it.has_parent {
                o.parent_guid = Some(r.guid("pParentGuid")?);
            }
            if it.has_meta {
                o.meta = decode_meta_ext(&mut r)?;
            }
            objects.push(o);
        }
        objects.reverse();
        rep.objects = objects;
    }
    if has_values {
        let max = r.count("REPLVALINF conformance", 56)?;
        let mut heads = Vec::with_capacity(max);
        for _ in 0..max {
            r.align(8)?;
            let has_obj = r.pointer("REPLVALINF pObject")?;
            let _attid = r.u32("REPLVALINF attrTyp")?;
            let _len = r.u32("REPLVALINF valLen")?;
            let has_val = r.pointer("REPLVALINF pVal")?;
            let _present = r.u32("REPLVALINF fIsPresent")?;
            let _t = r.u64("REPLVALINF timeCreated")?;
            let _v = r.u32("VALUE_META_DATA dwVersion")?;
            let _tc = r.u64("VALUE_META_DATA timeChanged")?;
            let _g = r.guid("VALUE_META_DATA uuidDsaOriginating")?;
            let _u = r.u64("VALUE_META_DATA usnOriginating")?;
            heads.push((has_obj, has_val));
        }
        for (has_obj, has_val) in heads {
            if has_obj {
                decode_dsname(&mut r)?;
            }
            if has_val {
                r.conformant_bytes("REPLVALINF pVal")?;
            }
        }
    }
    let st = status(&mut r, "DRSGetNCChanges status")?;
    if st != 0 {
        return Err(DrsrError::from_drs_status("DRSGetNCChanges", st));
    }
    if rep.drs_error != 0 {
        return Err(DrsrError::from_drs_status("DRSGetNCChanges", rep.drs_error));
    }
    Ok(rep)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn bind_request_layout() {
        let b = encode_bind(0);
        assert_eq!(b.len(), 4 + 16 + 4 + 4 + 4 + 28);
        assert_eq!(&b[4..20], &NTDSAPI_CLIENT_GUID.0);
        let flags = u32::from_le_bytes([b[32], b[33], b[34], b[35]]);
        assert_ne!(flags & DRS_EXT_GETCHGREQ_V8, 0);
        assert_ne!(flags & DRS_EXT_STRONG_ENCRYPTION, 0);
        assert_eq!(flags & 0x1000_0010, 0, "no compression");
    }

    #[test]
    fn drs_extensions_int_round_trip_and_short_forms() {
        let ext = DrsExtensionsInt {
            flags: CLIENT_EXTENSIONS,
            site_obj_guid: Guid([9; 16]),
            pid: 42,
            repl_epoch: 3,
        };
        let b = ext.encode();
        assert_eq!(b.len(), DrsExtensionsInt::LEN);
        assert_eq!(DrsExtensionsInt::decode(&b), ext);
        // A longer structure (dwFlagsExt etc.) decodes; a shorter one leaves zeros.
        let mut longer = b.clone();
        longer.extend_from_slice(&[0xff; 24]);
        assert_eq!(DrsExtensionsInt::decode(&longer), ext);
        let short = DrsExtensionsInt::decode(&b[..4]);
        assert_eq!(short.flags, CLIENT_EXTENSIONS);
        assert_eq!(short.repl_epoch, 0);
        assert_eq!(DrsExtensionsInt::decode(&[]), DrsExtensionsInt::default());
    }

    #[test]
    fn bind_reply_decodes_epoch_and_errors() {
        let mut w = NdrWriter::new();
        w.pointer();
        let mut ext = vec![0u8; 28];
        ext[0..4].copy_from_slice(&0x0400_8000u32.to_le_bytes());
        ext[24..28].copy_from_slice(&7u32.to_le_bytes());
        w.u32(28);
        w.u32(28);
        w.bytes(&ext);
        w.bytes(&[0xab; 20]);
        w.u32(0);
        let rep = decode_bind(&w.into_bytes()).unwrap();
        assert_eq!(rep.repl_epoch, 7);
        assert_eq!(rep.handle.0, [0xab; 20]);

        let mut w = NdrWriter::new();
        w.null_pointer();
        w.bytes(&[0; 20]);
        w.u32(8453);
        assert!(matches!(
            decode_bind(&w.into_bytes()),
            Err(DrsrError::MissingReplicationRights { code: 8453 })
        ));
    }

    #[test]
    fn crack_names_round_trip() {
        let h = DrsHandle([1; 20]);
        let req = encode_crack_names(&h, DS_NT4_ACCOUNT_NAME, DS_UNIQUE_ID_NAME, &["PHS\\alice"]);
        assert_eq!(&req[..20], &[1; 20]);
        let mut w = NdrWriter::new();
        w.u32(1);
        w.u32(1);
        w.pointer();
        w.u32(1);
        w.pointer();
        w.u32(1);
        w.u32(0);
        w.pointer();
        w.pointer();
        w.conformant_varying_wstring("phs.test");
        w.conformant_varying_wstring("{e24d201a-4fd6-11d1-a3da-0000f875ae0d}");
        w.u32(0);
        let out = decode_crack_names(&w.into_bytes()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, 0);
        assert_eq!(out[0].domain.as_deref(), Some("phs.test"));
        assert_eq!(
            out[0].name.as_deref(),
            Some("{e24d201a-4fd6-11d1-a3da-0000f875ae0d}")
        );
    }

    /// Build a V6 reply with `objects`, encoded the way Samba's pidl does it.
    pub(crate) fn encode_reply(
        objects: &[ReplentinflistItem],
        more: bool,
        prefix: &SchemaPrefixTable,
    ) -> Vec<u8> {
        let mut w = NdrWriter::new();
        w.u32(6);
        w.u32(6);
        w.align(8);
        w.guid(&Guid([1; 16]));
        w.guid(&Guid([2; 16]));
        w.pointer(); // pNC
        for v in [1u64, 0, 1, 10, 0, 10] {
            w.u64(v);
        }
        w.pointer(); // UTD
        w.u32(prefix.entries.len() as u32);
        w.pointer();
        w.u32(0);
        w.u32(objects.len() as u32);
        w.u32(0);
        if objects.is_empty() {
            w.null_pointer();
        } else {
            w.pointer();
        }
        w.u32(more as u32);
        w.u32(0);
        w.u32(0);
        w.u32(0);
        w.null_pointer();
        w.u32(0);
        encode_dsname(
            &mut w,
            &DsName {
                guid: Guid([3; 16]),
                sid: vec![],
                dn: "DC=phs,DC=test".into(),
            },
        );
        w.u32(1);
        w.align(8);
        w.u32(2);
        w.u32(0);
        w.u32(1);
        w.u32(0);
        w.align(8);
        w.guid(&Guid([2; 16]));
        w.u64(10);
        w.u64(0);
        w.u32(prefix.entries.len() as u32);
        for e in &prefix.entries {
            w.u32(e.ndx);
            w.u32(e.prefix.len() as u32);
            w.pointer();
        }
        for e in &prefix.entries {
            w.conformant_bytes(&e.prefix);
        }
        // Scalars of every item.
        for (i, o) in objects.iter().enumerate() {
            if i + 1 < objects.len() {
                w.pointer();
            } else {
                w.null_pointer();
            }
            if o.name.is_some() {
                w.pointer();
            } else {
                w.null_pointer();
            }
            w.u32(o.flags);
            w.u32(o.attrs.len() as u32);
            w.pointer();
            w.u32(o.is_nc_prefix as u32);
            if o.parent_guid.is_some() {
                w.pointer();
            } else {
                w.null_pointer();
            }
            w.pointer();
        }
        // Referents, innermost first.
        for o in objects.iter().rev() {
            if let Some(n) = &o.name {
                encode_dsname(&mut w, n);
            }
            w.u32(o.attrs.len() as u32);
            for a in &o.attrs {
                w.u32(a.attid);
                w.u32(a.values.len() as u32);
                w.pointer();
            }
            for a in &o.attrs {
                w.u32(a.values.len() as u32);
                for v in &a.values {
                    w.u32(v.len() as u32);
                    w.pointer();
                }
                for v in &a.values {
                    w.conformant_bytes(v);
                }
            }
            if let Some(g) = &o.parent_guid {
                w.guid(g);
            }
            w.u32(o.meta.len() as u32);
            w.align(8);
            w.u32(o.meta.len() as u32);
            for m in &o.meta {
                w.align(8);
                w.u32(m.version);
                w.u64(m.time_changed as u64);
                w.guid(&m.originating_dsa);
                w.u64(m.originating_usn);
            }
        }
        w.u32(0);
        w.into_bytes()
    }

    pub(crate) fn sample_objects() -> Vec<ReplentinflistItem> {
        (0..3u8)
            .map(|i| ReplentinflistItem {
                name: Some(DsName {
                    guid: Guid([10 + i; 16]),
                    sid: hex::decode("010500000000000515000000a065cf7e784b9b5fe77c8770f4010000")
                        .unwrap(),
                    dn: format!("CN=u{i},CN=Users,DC=phs,DC=test"),
                }),
                flags: 1,
                attrs: vec![
                    Attr {
                        attid: 0x0009_00dd,
                        values: vec![format!("u{i}")
                            .encode_utf16()
                            .flat_map(|u| u.to_le_bytes())
                            .collect()],
                    },
                    Attr {
                        attid: 0,
                        values: vec![vec![0, 0, 1, 0], vec![9, 0, 5, 0]],
                    },
                ],
                is_nc_prefix: false,
                parent_guid: Some(Guid([7; 16])),
                meta: vec![
                    PropertyMetaDataExt {
                        version: 1,
                        time_changed: 13_000_000_000,
                        originating_dsa: Guid([2; 16]),
                        originating_usn: 100 + i as u64,
                    },
                    PropertyMetaDataExt {
                        version: 1,
                        time_changed: 13_000_000_001,
                        originating_dsa: Guid([2; 16]),
                        originating_usn: 200 + i as u64,
                    },
                ],
            })
            .collect()
    }

    pub(crate) fn sample_prefix() -> SchemaPrefixTable {
        let mut p = SchemaPrefixTable::new();
        p.make_attid("1.2.840.113556.1.4.221").unwrap();
        p.make_attid("2.5.4.0").unwrap();
        p
    }

    #[test]
    fn get_nc_changes_reply_linked_list_round_trip() {
        let objs = sample_objects();
        let bytes = encode_reply(&objs, true, &sample_prefix());
        let rep = decode_get_nc_changes(&bytes).unwrap();
        assert_eq!(rep.objects, objs);
        assert!(rep.more_data);
        assert_eq!(rep.usn_to.high_obj_update, 10);
        assert_eq!(rep.up_to_dateness.len(), 1);
        assert_eq!(rep.prefix_table, sample_prefix());
        assert_eq!(rep.naming_context.unwrap().dn, "DC=phs,DC=test".to_string());
    }

    #[test]
    fn get_nc_changes_reply_empty_and_errors() {
        let bytes = encode_reply(&[], false, &sample_prefix());
        let rep = decode_get_nc_changes(&bytes).unwrap();
        assert!(rep.objects.is_empty());
        let mut denied = bytes.clone();
        let n = denied.len();
        denied[n - 4..].copy_from_slice(&8453u32.to_le_bytes());
        assert!(matches!(
            decode_get_nc_changes(&denied),
            Err(DrsrError::MissingReplicationRights { .. })
        ));
        let full = encode_reply(&sample_objects(), false, &sample_prefix());
        for cut in (0..full.len()).step_by(7) {
            assert!(decode_get_nc_changes(&full[..cut]).is_err());
        }
    }

    #[test]
    fn get_nc_changes_request_layout() {
        let mut prefix = SchemaPrefixTable::new();
        let pas = vec![
            prefix.make_attid("1.2.840.113556.1.4.90").unwrap(),
            prefix.make_attid("2.5.4.0").unwrap(),
        ];
        let req = DrsMsgGetchgreqV8 {
            dest_dsa: NTDSAPI_CLIENT_GUID,
            invocation_id: Guid::ZERO,
            naming_context: DsName {
                guid: Guid::ZERO,
                sid: vec![],
                dn: "DC=phs,DC=test".into(),
            },
            usn_from: UsnVector::default(),
            up_to_dateness: Some(vec![UptodateCursorV1 {
                invocation_id: Guid([5; 16]),
                usn: 42,
            }]),
            flags: DRS_WRIT_REP,
            max_objects: 1000,
            max_bytes: 0,
            extended_op: EXOP_NONE,
            partial_attribute_set: pas,
            prefix_table: prefix,
        };
        let b = encode_get_nc_changes(&DrsHandle([0; 20]), &req);
        // handle 20 + version 4 + switch 4 = 28, aligned to 32 for the V8 struct.
        assert_eq!(&b[20..28], &[8, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(&b[32..48], &NTDSAPI_CLIENT_GUID.0);
        // The DSNAME referent follows the fixed part; it carries the DN in UTF-16.
        let dn: Vec<u8> = "DC=phs"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert!(b.windows(dn.len()).any(|w| w == dn.as_slice()));
        // Ends with the schemaInfo prefix entry: conformance 21, 0xFF, zeros.
        let tail = &b[b.len() - 25..];
        assert_eq!(&tail[..5], &[21, 0, 0, 0, 0xff]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, .. Default::default() })]
        #[test]
        fn reply_decoder_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = decode_get_nc_changes(&data);
            let _ = decode_crack_names(&data);
            let _ = decode_bind(&data);
        }

        #[test]
        fn reply_decoder_never_panics_on_mutations(
            edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..4096,
        ) {
            let mut b = encode_reply(&sample_objects(), false, &sample_prefix());
            for (pos, v) in edits {
                let n = b.len();
                b[pos % n] = v;
            }
            let c = cut.min(b.len());
            let _ = decode_get_nc_changes(&b[..c]);
            let _ = decode_get_nc_changes(&b);
        }
    }
}
