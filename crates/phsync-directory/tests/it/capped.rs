//! A directory that caps unpaged searches: a Samba-branded LDAP server on loopback (plain
//! LDAP, no secrets) that answers an unpaged search with two entries and sizeLimitExceeded,
//! as a DC enforcing MaxPageSize does, and a paged one with every entry. Samba itself never
//! caps (it ignores even a client's size limit), so the fallback is tested here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ldap3::asn1::{
    parse_tag, write, ASNTag, Enumerated, Integer, OctetString, Sequence, Set, StructureTag, Tag,
    TagClass,
};
use phsync_directory::{Directory, LdapTarget, Transport, UserScope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAGED_OID: &str = "1.2.840.113556.1.4.319";
const USERS: u8 = 5;

fn int(v: i64) -> Tag {
    Tag::Integer(Integer {
        inner: v,
        ..Default::default()
    })
}

fn octets(v: impl Into<Vec<u8>>) -> Tag {
    Tag::OctetString(OctetString {
        inner: v.into(),
        ..Default::default()
    })
}

fn seq(inner: Vec<Tag>) -> Tag {
    Tag::Sequence(Sequence {
        inner,
        ..Default::default()
    })
}

/// An application-class operation (RFC 4511 protocolOp) with its fields.
fn operation(id: u64, inner: Vec<Tag>) -> Tag {
    Tag::Sequence(Sequence {
        id,
        class: TagClass::Application,
        inner,
    })
}

fn encode(tag: Tag) -> Vec<u8> {
    let mut buf = BytesMut::new();
    write::encode_into(&mut buf, tag.into_structure()).unwrap();
    buf.to_vec()
}

fn message(id: i64, operation: Tag, controls: Option<Tag>) -> Vec<u8> {
    let mut parts = vec![int(id), operation];
    parts.extend(controls.map(|c| {
        Tag::Sequence(Sequence {
            id: 0,
            class: TagClass::Context,
            inner: vec![c],
        })
    }));
    encode(seq(parts))
}

/// LDAPResult fields: resultCode, matchedDN, diagnosticMessage.
fn result(rc: i64) -> Vec<Tag> {
    let code = Tag::Enumerated(Enumerated {
        inner: rc,
        ..Default::default()
    });
    vec![code, octets(""), octets("")]
}

fn done(id: i64, rc: i64, controls: Option<Tag>) -> Vec<u8> {
    message(id, operation(5, result(rc)), controls)
}

fn entry(id: i64, dn: &str, attrs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let attrs: Vec<Tag> = attrs
        .iter()
        .map(|(name, value)| {
            let values = Tag::Set(Set {
                inner: vec![octets(value.clone())],
                ..Default::default()
            });
            seq(vec![octets(*name), values])
        })
        .collect();
    message(id, operation(4, vec![octets(dn), seq(attrs)]), None)
}

fn user(id: i64, i: u8) -> Vec<u8> {
    let sam = format!("capped{i}");
    // S-1-5-21-1-2-3-(1100+i)
    let mut sid = vec![1, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, 1, 2, 3, 1100 + u32::from(i)] {
        sid.extend(sub.to_le_bytes());
    }
    entry(
        id,
        &format!("CN={sam},DC=fake,DC=test"),
        &[
            ("objectGUID", vec![i; 16]),
            ("objectSid", sid),
            ("sAMAccountName", sam.clone().into_bytes()),
            ("userPrincipalName", format!("{sam}@fake.test").into_bytes()),
            ("userAccountControl", b"512".to_vec()),
            ("uSNChanged", b"100".to_vec()),
            ("whenChanged", b"20260101000000.0Z".to_vec()),
        ],
    )
}

/// A request off the wire, as ldap3's parser reads it: its ID, operation and controls.
struct Request {
    id: i64,
    op: StructureTag,
    controls: Vec<StructureTag>,
}

async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        let parsed = match parse_tag(buf) {
            Ok((rest, tag)) => Some((buf.len() - rest.len(), tag)),
            Err(e) if e.is_incomplete() => None,
            Err(_) => return None,
        };
        if let Some((used, tag)) = parsed {
            buf.drain(..used);
            let mut parts = tag.expect_constructed()?.into_iter();
            let id = parts.next()?.expect_primitive()?;
            let id = id.iter().fold(0i64, |n, b| n << 8 | i64::from(*b));
            let op = parts.next()?;
            let controls = parts
                .next()
                .and_then(|c| c.expect_constructed())
                .unwrap_or_default();
            return Some(Request { id, op, controls });
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether a request carries the paged results control.
fn is_paged(controls: &[StructureTag]) -> bool {
    controls.iter().any(|c| {
        c.clone()
            .expect_constructed()
            .and_then(|parts| parts.into_iter().next()?.expect_primitive())
            .is_some_and(|oid| oid == PAGED_OID.as_bytes())
    })
}

#[derive(Default)]
struct Seen {
    unpaged: AtomicUsize,
    paged: AtomicUsize,
}

async fn serve(mut s: TcpStream, seen: Arc<Seen>) {
    let mut buf = Vec::new();
    while let Some(Request { id, op, controls }) = read_request(&mut s, &mut buf).await {
        let reply = match op.id {
            // BindRequest: success.
            0 => message(id, operation(1, result(0)), None),
            // SearchRequest: the RootDSE (empty base), or the users.
            3 => {
                let base = op
                    .expect_constructed()
                    .and_then(|fields| fields.into_iter().next()?.expect_primitive())
                    .unwrap_or_default();
                if base.is_empty() {
                    let mut r = entry(
                        id,
                        "",
                        &[
                            ("defaultNamingContext", b"DC=fake,DC=test".to_vec()),
                            ("dnsHostName", b"dc.fake.test".to_vec()),
                            ("highestCommittedUSN", b"100".to_vec()),
                            ("dsServiceName", b"CN=NTDS Settings,CN=DC".to_vec()),
                            ("vendorName", b"Samba Team (https://www.samba.org)".to_vec()),
                        ],
                    );
                    r.extend(done(id, 0, None));
                    r
                } else if is_paged(&controls) {
                    seen.paged.fetch_add(1, Ordering::SeqCst);
                    let mut r: Vec<u8> = (0..USERS).flat_map(|i| user(id, i)).collect();
                    // The paged results response: size 0, empty cookie (the last page).
                    let value = encode(seq(vec![int(0), octets("")]));
                    let control = seq(vec![octets(PAGED_OID), octets(value)]);
                    r.extend(done(id, 0, Some(control)));
                    r
                } else {
                    seen.unpaged.fetch_add(1, Ordering::SeqCst);
                    let mut r: Vec<u8> = (0..2).flat_map(|i| user(id, i)).collect();
                    // sizeLimitExceeded (4).
                    r.extend(done(id, 4, None));
                    r
                }
            }
            // UnbindRequest, or anything else: end.
            _ => return,
        };
        if s.write_all(&reply).await.is_err() {
            return;
        }
    }
}

#[test]
fn a_capped_unpaged_search_is_read_again_paged_and_loses_no_one() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let served = seen.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, served.clone()));
            }
        });
        let target = LdapTarget {
            url: format!("ldap://127.0.0.1:{port}"),
            transport: Transport::Plain,
            timeout: Duration::from_secs(5),
            bind_name: "reader@fake.test".into(),
            realm: "FAKE.TEST".into(),
            netbios_domain: "FAKE".into(),
        };
        let mut dir = Directory::connect(&target, "not-a-secret").await.unwrap();
        assert!(dir.unpaged_first(), "{:?}", dir.root_dse());
        let users = dir.users(&UserScope::default()).await.unwrap();
        let names: Vec<&str> = users.iter().map(|u| u.sam_account_name.as_str()).collect();
        assert_eq!(
            names,
            ["capped0", "capped1", "capped2", "capped3", "capped4"]
        );
        assert_eq!(
            seen.unpaged.load(Ordering::SeqCst),
            1,
            "tried unpaged first"
        );
        assert_eq!(seen.paged.load(Ordering::SeqCst), 1, "then paged");
        dir.close().await;
    });
}
