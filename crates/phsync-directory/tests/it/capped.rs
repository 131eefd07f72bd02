//! A directory that caps unpaged searches: a Samba-branded LDAP server on loopback (plain
//! LDAP, no secrets) that answers an unpaged search with two entries and sizeLimitExceeded,
//! as a DC enforcing MaxPageSize does, and a paged one with every entry. Samba itself never
//! caps (it ignores even a client's size limit), so the fallback is tested here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use phsync_directory::{Directory, LdapTarget, Transport, UserScope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAGED_OID: &[u8] = b"1.2.840.113556.1.4.319";
const USERS: u8 = 5;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..])
}

fn octets(v: &[u8]) -> Vec<u8> {
    tlv(0x04, v)
}

fn seq(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

fn message(id: i64, op: Vec<u8>, controls: Option<Vec<u8>>) -> Vec<u8> {
    let mut parts = vec![int(id), op];
    parts.extend(controls.map(|c| seq(0xa0, &[c])));
    seq(0x30, &parts)
}

fn done(id: i64, rc: u8, controls: Option<Vec<u8>>) -> Vec<u8> {
    let op = seq(0x65, &[tlv(0x0a, &[rc]), octets(b""), octets(b"")]);
    message(id, op, controls)
}

fn entry(id: i64, dn: &str, attrs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let attrs: Vec<Vec<u8>> = attrs
        .iter()
        .map(|(name, value)| {
            seq(
                0x30,
                &[octets(name.as_bytes()), seq(0x31, &[octets(value)])],
            )
        })
        .collect();
    message(
        id,
        seq(0x64, &[octets(dn.as_bytes()), seq(0x30, &attrs)]),
        None,
    )
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

/// One LDAP message off the wire: its ID, its operation's tag, and the whole of it.
async fn read_message(s: &mut TcpStream) -> Option<(i64, u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.ok()?;
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let mut bytes = vec![0u8; usize::from(head[1] & 0x7f)];
        s.read_exact(&mut bytes).await.ok()?;
        bytes.iter().fold(0usize, |n, b| n << 8 | usize::from(*b))
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    // messageID: INTEGER, short form.
    let id_len = usize::from(body[1]);
    let id = body[2..2 + id_len]
        .iter()
        .fold(0i64, |n, b| n << 8 | i64::from(*b));
    Some((id, body[2 + id_len], body))
}

#[derive(Default)]
struct Seen {
    unpaged: AtomicUsize,
    paged: AtomicUsize,
}

async fn serve(mut s: TcpStream, seen: Arc<Seen>) {
    while let Some((id, op, body)) = read_message(&mut s).await {
        let reply = match op {
            // BindRequest: success.
            0x60 => message(
                id,
                seq(0x61, &[tlv(0x0a, &[0]), octets(b""), octets(b"")]),
                None,
            ),
            // SearchRequest: the RootDSE (empty base), or the users.
            0x63 => {
                let search_at = 2 + usize::from(body[1]);
                // After the tag and its length: baseObject, an OCTET STRING.
                let len_bytes = if body[search_at + 1] < 0x80 {
                    1
                } else {
                    1 + usize::from(body[search_at + 1] & 0x7f)
                };
                let base_len = usize::from(body[search_at + 1 + len_bytes + 1]);
                if base_len == 0 {
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
                } else if body.windows(PAGED_OID.len()).any(|w| w == PAGED_OID) {
                    seen.paged.fetch_add(1, Ordering::SeqCst);
                    let mut r: Vec<u8> = (0..USERS).flat_map(|i| user(id, i)).collect();
                    // The paged results response: size 0, empty cookie (the last page).
                    let value = seq(0x30, &[int(0), octets(b"")]);
                    let control = seq(0x30, &[octets(PAGED_OID), octets(&value)]);
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
