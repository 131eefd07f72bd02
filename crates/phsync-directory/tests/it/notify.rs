//! Change notifications from the real Samba AD DC of scripts/ad-lab: a change made over
//! another connection (ldapmodify as Administrator, phsync-testkit's `TestOu`) arrives on the
//! notification stream within a bounded time. Every wait is bounded in time and in the number
//! of notifications read; each test works on users of its own OU, and matches notifications by
//! objectGUID, so other suites changing the same DC at the same time do not disturb it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use phsync_directory::{
    ChangeNotifications, ChangedObject, Directory, DirectoryError, Guid, LdapTarget, ObjectKind,
    Transport,
};
use phsync_testkit::ad::TestOu;
use phsync_testkit::lab::Lab;

/// The bound on every expected notification's latency.
const BOUND: Duration = Duration::from_secs(5);
/// At most this many notifications are read while waiting for one.
const MAX_READ: usize = 500;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn target(lab: &Lab, url: &str) -> LdapTarget {
    LdapTarget {
        url: url.to_string(),
        transport: Transport::Ldaps {
            ca_file: lab.ca_file.clone(),
        },
        timeout: Duration::from_secs(10),
        bind_name: lab.admin_upn.clone(),
        realm: lab.realm.clone(),
        netbios_domain: lab.domain.clone(),
    }
}

async fn guid_of(lab: &Lab, sam: &str) -> Guid {
    let mut dir = Directory::connect(&target(lab, &lab.ldaps_url), &lab.admin_password())
        .await
        .unwrap();
    let user = dir.resolve_user(sam).await.unwrap();
    dir.close().await;
    user.object_guid
}

/// Run `change` on a thread (ldapmodify is a blocking child process) and wait for the first
/// notification about `guid` that `accept` takes. Returns it with the latency measured from
/// the moment the change was started (an upper bound: it includes ldapmodify's own start, TLS
/// and bind) and from the moment ldapmodify returned (may be zero: the notification can
/// arrive before the tool has exited).
async fn expect_change(
    notes: &mut ChangeNotifications,
    guid: Guid,
    what: &str,
    change: impl FnOnce() + Send + 'static,
    accept: impl Fn(&ChangedObject) -> bool,
) -> (ChangedObject, Duration, Duration) {
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        change();
        Instant::now()
    });
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut seen = 0;
    let found = loop {
        assert!(
            seen < MAX_READ,
            "{what}: {seen} notifications, none for {guid}"
        );
        let next = tokio::time::timeout_at(deadline, notes.next()).await;
        let changed = match next {
            Err(_) => panic!("{what}: no notification for {guid} within {BOUND:?} ({seen} others)"),
            Ok(Err(e)) => panic!("{what}: the stream failed: {e}"),
            Ok(Ok(None)) => panic!("{what}: the stream ended"),
            Ok(Ok(Some(c))) => c,
        };
        seen += 1;
        if changed.object_guid == guid && accept(&changed) {
            break changed;
        }
    };
    let arrived = Instant::now();
    let done = worker.join().expect("the change failed");
    let from_start = arrived - started;
    let from_done = arrived.saturating_duration_since(done);
    println!(
        "{what}: notified {:.0} ms after the change started, {:.0} ms after ldapmodify returned \
         ({seen} notifications read)",
        from_start.as_secs_f64() * 1000.0,
        from_done.as_secs_f64() * 1000.0
    );
    assert!(from_start < BOUND, "{what}: {from_start:?}");
    (found, from_start, from_done)
}

#[test]
fn user_changes_arrive_within_seconds() {
    let ou = TestOu::new("notify");
    let sam = format!("ntf-u{}", ou.suffix);
    ou.add_user(&sam, "Notify-Start-1");
    let lab = ou.lab.clone();
    block_on(async {
        let guid = guid_of(&lab, &sam).await;
        let mut notes =
            ChangeNotifications::open(&target(&lab, &lab.ldaps_url), &lab.admin_password())
                .await
                .unwrap();
        assert_eq!(notes.base_dn(), lab.base_dn);
        let ou = std::sync::Arc::new(ou);

        // 1. A password change: the user comes with its new pwdLastSet.
        let before = {
            let mut dir = Directory::connect(&target(&lab, &lab.ldaps_url), &lab.admin_password())
                .await
                .unwrap();
            let u = dir.resolve_user(&sam).await.unwrap();
            dir.close().await;
            u
        };
        let (o, s) = (ou.clone(), sam.clone());
        let (changed, _, _) = expect_change(
            &mut notes,
            guid,
            "password change",
            move || o.set_password(&s, "Notify-Changed-2"),
            |c| c.pwd_last_set().is_some_and(|p| p != before.pwd_last_set),
        )
        .await;
        assert_eq!(changed.kind, ObjectKind::User);
        assert!(changed.is_user() && !changed.is_deleted);
        let user = changed.user.expect("a user record");
        assert_eq!(user.sam_account_name, sam);
        assert_eq!(user.dn, ou.user_dn(&sam));
        assert!(user.pwd_last_set > before.pwd_last_set);
        assert!(user.usn_changed > before.usn_changed);
        assert_eq!(changed.usn_changed, Some(user.usn_changed));

        // 2. Another attribute (description): the same user, any change counts.
        let (o, s) = (ou.clone(), sam.clone());
        let usn = user.usn_changed;
        let (changed, _, _) = expect_change(
            &mut notes,
            guid,
            "description change",
            move || {
                o.ldif(
                    "ldapmodify",
                    &format!(
                        "dn: {}\nchangetype: modify\nreplace: description\ndescription: notified\n",
                        o.user_dn(&s)
                    ),
                )
            },
            |c| c.usn_changed.is_some_and(|u| u > usn),
        )
        .await;
        assert!(changed.is_user());

        // 3. Disabling the account: userAccountControl says so.
        let (o, s) = (ou.clone(), sam.clone());
        let (changed, _, _) = expect_change(
            &mut notes,
            guid,
            "disable",
            move || o.set_uac(&s, 514),
            |c| c.user.as_ref().is_some_and(|u| !u.enabled()),
        )
        .await;
        assert_eq!(changed.user.unwrap().user_account_control, 514);
        notes.close().await;
    });
}

#[test]
fn other_objects_arrive_recognisably_not_users() {
    let ou = TestOu::new("notify-other");
    let computer = format!("ntf-c{}", ou.suffix);
    ou.add_computer(&computer, "Notify-Computer-1");
    let lab = ou.lab.clone();
    block_on(async {
        // No OU/computer lookup in the directory API: match these notifications by DN.
        let mut notes =
            ChangeNotifications::open(&target(&lab, &lab.ldaps_url), &lab.admin_password())
                .await
                .unwrap();
        let ou = std::sync::Arc::new(ou);
        for (what, dn, kind) in [
            ("OU description", ou.dn.clone(), ObjectKind::Other),
            (
                "computer description",
                ou.user_dn(&computer),
                ObjectKind::Computer,
            ),
        ] {
            let o = ou.clone();
            let target_dn = dn.clone();
            let started = Instant::now();
            let worker = std::thread::spawn(move || {
                o.ldif(
                    "ldapmodify",
                    &format!(
                        "dn: {target_dn}\nchangetype: modify\nreplace: description\ndescription: notified\n"
                    ),
                )
            });
            let deadline = tokio::time::Instant::now() + BOUND;
            let mut seen = 0;
            let changed = loop {
                assert!(seen < MAX_READ);
                let c = tokio::time::timeout_at(deadline, notes.next())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: nothing for {dn} within {BOUND:?}"))
                    .unwrap()
                    .expect("the stream goes on");
                seen += 1;
                if c.dn.eq_ignore_ascii_case(&dn) {
                    break c;
                }
            };
            println!(
                "{what}: notified {:.0} ms after the change started",
                started.elapsed().as_secs_f64() * 1000.0
            );
            worker.join().unwrap();
            assert_eq!(changed.kind, kind, "{what}: {:?}", changed.object_classes);
            assert!(!changed.is_user() && changed.user.is_none());
        }
        notes.close().await;
    });
}

/// A TCP forwarder on loopback that can cut every connection it carries, standing in for the
/// DC's side going away (the lab DC itself must not be stopped).
struct Cutter {
    addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

async fn forwarder(to: SocketAddr) -> Cutter {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut cut_rx = cut_rx.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut_rx.wait_for(|c| *c) => {}
                }
                // Dropping both sockets closes them.
            });
        }
    });
    Cutter { addr, cut }
}

#[test]
fn a_dropped_connection_ends_the_stream_with_a_clear_error() {
    let lab = Lab::load();
    block_on(async {
        let cutter = forwarder("127.0.0.1:636".parse().unwrap()).await;
        let url = format!("ldaps://127.0.0.1:{}", cutter.addr.port());
        let mut notes = ChangeNotifications::open(&target(&lab, &url), &lab.admin_password())
            .await
            .unwrap();
        cutter.cut.send(true).unwrap();
        let started = Instant::now();
        let mut seen = 0;
        let err = loop {
            assert!(seen < MAX_READ);
            match tokio::time::timeout(BOUND, notes.next())
                .await
                .expect("the drop is noticed within the bound")
            {
                Ok(Some(_)) => seen += 1,
                Ok(None) => panic!("ended without an error"),
                Err(e) => break e,
            }
        };
        println!(
            "connection cut: noticed after {:.0} ms: {err}",
            started.elapsed().as_secs_f64() * 1000.0
        );
        assert!(
            matches!(&err, DirectoryError::NotificationsLost { url: u, .. } if *u == url),
            "{err:?}"
        );
        assert!(err.to_string().contains("ended"), "{err}");
        // Ended for good: None from now on.
        assert!(matches!(notes.next().await, Ok(None)));
    });
}

#[test]
fn keepalive_finds_a_silently_dead_connection() {
    // A connection that stops answering without closing (a black-holed path): the keep-alive
    // read times out and ends the stream.
    let lab = Lab::load();
    block_on(async {
        // A forwarder that, once cut, keeps both sockets open but stops carrying data.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stall, stall_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let mut outbound = tokio::net::TcpStream::connect("127.0.0.1:636")
                .await
                .unwrap();
            let mut stall_rx = stall_rx;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = stall_rx.wait_for(|s| *s) => {}
            }
            // Hold the sockets, silent, until the test is over.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop((inbound, outbound));
        });
        let mut t = target(&lab, &format!("ldaps://127.0.0.1:{port}"));
        t.timeout = Duration::from_secs(2);
        let mut notes = ChangeNotifications::open(&t, &lab.admin_password())
            .await
            .unwrap();
        notes.set_keepalive(Duration::from_secs(1));
        stall.send(true).unwrap();
        let started = Instant::now();
        let err = loop {
            match tokio::time::timeout(Duration::from_secs(10), notes.next())
                .await
                .expect("the keep-alive notices within its interval plus the timeout")
            {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("ended without an error"),
                Err(e) => break e,
            }
        };
        println!(
            "silent connection: noticed after {:.0} ms: {err}",
            started.elapsed().as_secs_f64() * 1000.0
        );
        assert!(
            matches!(err, DirectoryError::NotificationsLost { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("keep-alive"), "{err}");
    });
}

#[test]
fn keepalive_keeps_a_quiet_stream_running() {
    // With a 1 s keep-alive, three quiet seconds are three round trips, and the stream still
    // delivers afterwards.
    let ou = TestOu::new("notify-ka");
    let sam = format!("ntf-k{}", ou.suffix);
    ou.add_user(&sam, "Notify-Start-1");
    let lab = ou.lab.clone();
    block_on(async {
        let guid = guid_of(&lab, &sam).await;
        let mut notes =
            ChangeNotifications::open(&target(&lab, &lab.ldaps_url), &lab.admin_password())
                .await
                .unwrap();
        notes.set_keepalive(Duration::from_secs(1));
        let quiet_until = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut seen = 0;
        while let Ok(next) = tokio::time::timeout_at(quiet_until, notes.next()).await {
            next.expect("keep-alives succeed")
                .expect("the stream goes on");
            seen += 1;
            assert!(seen < MAX_READ);
        }
        let ou = std::sync::Arc::new(ou);
        let (o, s) = (ou.clone(), sam.clone());
        expect_change(
            &mut notes,
            guid,
            "password change after keep-alives",
            move || o.set_password(&s, "Notify-Changed-2"),
            |_| true,
        )
        .await;
        notes.close().await;
    });
}

#[test]
fn close_and_reopen() {
    // Closing abandons the search and unbinds; a new stream on a new connection works at once
    // (the engine's reconnect).
    let lab = Lab::load();
    block_on(async {
        for _ in 0..3 {
            let notes =
                ChangeNotifications::open(&target(&lab, &lab.ldaps_url), &lab.admin_password())
                    .await
                    .unwrap();
            notes.close().await;
        }
        // Also from an already connected Directory.
        let dir = Directory::connect(&target(&lab, &lab.ldaps_url), &lab.admin_password())
            .await
            .unwrap();
        let notes = ChangeNotifications::start(dir).await.unwrap();
        assert_eq!(notes.url(), lab.ldaps_url);
        drop(notes);
    });
}
