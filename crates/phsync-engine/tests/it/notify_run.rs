//! Change-driven sync against the lab DC: `Engine::run` (what `phsync run` runs) with the
//! DC's change notifications. Each test scopes the engine to an OU of its own; the DC is never
//! stopped: a loopback relay in front of it stands in for a dropped notification connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phsync_engine::{Engine, RunHooks};
use phsync_tenant::{SignInStatus, Timestamp};
use phsync_testkit::sync_fixture::SyncFixture;

/// The bound on a notified change reaching the tenant (the p95 goal).
const BOUND: Duration = Duration::from_secs(5);

/// Sets the stop flag when dropped (also when the test body panics).
struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Run the engine's run loop on this thread and `body` beside it; stop the loop when the body
/// ends, then propagate the body's panic.
/// One of these tests at a time: they measure latency, and the burst loads the DC.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn with_run(f: &SyncFixture, hooks: RunHooks, body: impl FnOnce() + Send) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut engine = f.engine();
    let stop = engine.stop_flag();
    std::thread::scope(|s| {
        let guard = StopOnDrop(stop.clone());
        let t = s.spawn(move || {
            let _guard = guard;
            body();
        });
        engine.run(hooks).unwrap();
        if let Err(p) = t.join() {
            std::panic::resume_unwind(p);
        }
    });
}

/// Wait until `ok`, at most `bound`; the time it took.
fn within(bound: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn swapped(f: &SyncFixture, sam: &str, new: &str, old: &str) -> bool {
    f.sign_in(sam, new) == SignInStatus::Success
        && f.sign_in(sam, old) == SignInStatus::InvalidCredentials
}

fn notification_state(f: &SyncFixture) -> String {
    Engine::open(&f.config)
        .unwrap()
        .notification_status()
        .unwrap()
        .map(|n| n.state)
        .unwrap_or_default()
}

#[test]
fn passwords_changed_over_ldap_reach_the_tenant_within_seconds() {
    let f = SyncFixture::new("nrun", "");
    let users: Vec<String> = (0..4).map(|i| f.sam(&format!("nr{i}"))).collect();
    for u in &users {
        f.ou.add_user(u, "Notify-Old-1!");
    }
    with_run(&f, RunHooks::default(), || {
        within(Duration::from_secs(60), "the first cycle", || {
            users
                .iter()
                .all(|u| f.sign_in(u, "Notify-Old-1!") == SignInStatus::Success)
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        for (i, u) in users.iter().enumerate() {
            let new = format!("Notify-New-{i}!");
            f.ou.set_password(u, &new);
            let t0 = Instant::now();
            while !swapped(&f, u, &new, "Notify-Old-1!") && t0.elapsed() < BOUND {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t0.elapsed() >= BOUND {
                let ev =
                    phsync_engine::events::read_events(&f.dir.0.join("state"), &Default::default())
                        .unwrap();
                for e in ev {
                    eprintln!("EV {} {} {}", e.at, e.event_id, e.message);
                }
                let e = Engine::open(&f.config).unwrap();
                eprintln!("ST {:?}", e.notification_status());
                eprintln!("US {:?}", e.user_status(u));
            }
            let took = within(BOUND, u, || swapped(&f, u, &new, "Notify-Old-1!"));
            println!(
                "{u}: new password signs in, old refused, {} ms after the modify",
                took.as_millis()
            );
        }
    });
    let status = Engine::open(&f.config)
        .unwrap()
        .notification_status()
        .unwrap()
        .unwrap();
    assert_eq!(status.state, "stopped");
    assert!(status.last_notification_at.is_some());
}

/// The burst: 500 password changes (50 users × 10 each) over LDAP connections in parallel.
const BURST_USERS: usize = 50;
const BURST_ROUNDS: usize = 10;
/// LDAP connections in parallel, each with its own share of the users: a user's changes all
/// go over one connection, in order, so its newest password is well defined.
const BURST_CONNECTIONS: usize = 5;
/// The bound on the 500 modifies. The issue asks for 500 in 10 s, which this lab cannot do:
/// its DC is Samba with `-M single` (one process) and a password set costs it ~125 ms (Kerberos
/// keys, the commit), so parallel connections add no throughput. On the 2 shared cores of this
/// machine 60 modifies took 7.6 s over one connection and 7.6 s over 4 in parallel; the 500 of
/// this test took 122 s (244 ms each) with the engine replicating every batch from the same DC
/// process and a load average of 5. The bound allows 360 ms a change: beyond it the DC is
/// starved, and the figure printed says by how much.
const BURST_MODIFIES_BOUND: Duration = Duration::from_secs(180);
/// The bound on the last user reaching its newest password after the last modify returned.
const BURST_ARRIVAL_BOUND: Duration = Duration::from_secs(20);

#[test]
fn a_burst_of_500_changes_ends_with_each_users_newest_password_and_no_stale_write() {
    let f = SyncFixture::new("nburst", "");
    let users: Vec<String> = (0..BURST_USERS).map(|i| f.sam(&format!("nb{i}"))).collect();
    let password = |round: usize| format!("Burst-{round}-Pass!");
    let seed: Vec<(String, String)> = users.iter().map(|u| (u.clone(), password(0))).collect();
    f.ou.add_users(&seed);
    with_run(&f, RunHooks::default(), || {
        within(Duration::from_secs(60), "the first cycle", || {
            users
                .iter()
                .all(|u| f.sign_in(u, &password(0)) == SignInStatus::Success)
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        // Each connection's users, round-robin: user by user, round by round.
        let shares: Vec<Vec<(String, String)>> = (0..BURST_CONNECTIONS)
            .map(|c| {
                (1..=BURST_ROUNDS)
                    .flat_map(|round| {
                        users
                            .iter()
                            .skip(c)
                            .step_by(BURST_CONNECTIONS)
                            .map(move |u| (u.clone(), password(round)))
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            shares.iter().map(Vec::len).sum::<usize>(),
            BURST_USERS * BURST_ROUNDS
        );
        let started = Instant::now();
        let per_connection: Vec<Duration> = std::thread::scope(|s| {
            let threads: Vec<_> = shares
                .iter()
                .map(|share| {
                    let ou = &f.ou;
                    s.spawn(move || {
                        ou.set_passwords(share);
                        started.elapsed()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let modifies = started.elapsed();
        println!(
            "{} password changes over {BURST_CONNECTIONS} LDAP connections in {} ms ({:.0} ms \
             per change; connections done at {:?} ms)",
            BURST_USERS * BURST_ROUNDS,
            modifies.as_millis(),
            modifies.as_secs_f64() * 1000.0 / (BURST_USERS * BURST_ROUNDS) as f64,
            per_connection
                .iter()
                .map(Duration::as_millis)
                .collect::<Vec<_>>()
        );
        assert!(
            modifies < BURST_MODIFIES_BOUND,
            "500 modifies took {modifies:?}: the lab DC is slower than {BURST_MODIFIES_BOUND:?}"
        );
        let (newest, previous) = (password(BURST_ROUNDS), password(BURST_ROUNDS - 1));
        let mut pending = users.clone();
        let took = within(
            BURST_ARRIVAL_BOUND,
            "every user's newest password (the previous one refused)",
            || {
                pending.retain(|u| !swapped(&f, u, &newest, &previous));
                pending.is_empty()
            },
        );
        println!(
            "all {BURST_USERS} users on their newest password (previous refused) {} ms after \
             the last change",
            took.as_millis()
        );
    });
    // The audit, oldest first (the tenant lists it newest first, in write order): per user,
    // each applied password changed on-prem after every one applied before it.
    let mut audit = f.tenant().audit_log(100_000).unwrap();
    audit.reverse();
    let mut newest_applied: std::collections::HashMap<String, Timestamp> = Default::default();
    let (mut applied, mut stale) = (0, 0);
    for e in audit.iter().filter(|e| e.action == "password.sync") {
        let anchor = e.source_anchor.clone().unwrap();
        match e.outcome.as_str() {
            "applied" => {
                let detail = e.detail.as_deref().unwrap();
                let at = detail.strip_prefix("on-prem change at ").unwrap();
                let at = Timestamp::parse_rfc3339(at.split(',').next().unwrap()).unwrap();
                if let Some(prev) = newest_applied.get(&anchor) {
                    assert!(
                        at > *prev,
                        "stale write applied for {anchor}: {at} after {prev}"
                    );
                }
                newest_applied.insert(anchor, at);
                applied += 1;
            }
            "stale" => stale += 1,
            _ => {}
        }
    }
    println!(
        "audit: {applied} applied (first cycle included), {stale} refused as stale, for {} users",
        newest_applied.len()
    );
    assert_eq!(newest_applied.len(), users.len());
    assert!(
        applied <= users.len() * (BURST_ROUNDS + 1),
        "more applied writes than changes: {applied}"
    );
}

/// A loopback relay to the DC's LDAPS port that can go down (cutting what it carries and
/// refusing new connections) and up again.
struct Relay {
    addr: SocketAddr,
    down: tokio::sync::watch::Sender<bool>,
    _rt: tokio::runtime::Runtime,
}

impl Relay {
    fn start(to: SocketAddr) -> Relay {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (down, down_rx) = tokio::sync::watch::channel(false);
        rt.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *down_rx.borrow() {
                    continue; // dropped: refused
                }
                let mut down_rx = down_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down_rx.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Relay {
            addr,
            down,
            _rt: rt,
        }
    }
}

#[test]
fn a_change_while_notifications_are_down_is_applied_by_the_catch_up_and_events_tell() {
    let f = SyncFixture::new("ncatch", "");
    let (ann, ben) = (f.sam("nca"), f.sam("ncb"));
    f.ou.add_user(&ann, "Catch-Old-1!");
    f.ou.add_user(&ben, "Catch-Old-1!");
    let relay = Relay::start("127.0.0.1:636".parse().unwrap());
    let mut target = f.engine().settings().ldap.clone();
    target.url = format!("ldaps://127.0.0.1:{}", relay.addr.port());
    let hooks = RunHooks {
        notification_target: Some(target),
        ..RunHooks::default()
    };
    let started_at = Timestamp::now();
    with_run(&f, hooks, || {
        within(Duration::from_secs(60), "the first cycle", || {
            f.sign_in(&ann, "Catch-Old-1!") == SignInStatus::Success
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        // Through the relay, notifications work.
        f.ou.set_password(&ben, "Catch-New-1!");
        within(BOUND, "ben by notification", || {
            swapped(&f, &ben, "Catch-New-1!", "Catch-Old-1!")
        });
        // The connection drops; a change made while it is down is not notified.
        relay.down.send(true).unwrap();
        within(BOUND, "notifications lost", || {
            notification_state(&f) == "lost"
        });
        f.ou.set_password(&ann, "Catch-New-1!");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            f.sign_in(&ann, "Catch-New-1!"),
            SignInStatus::InvalidCredentials,
            "nothing applies it while the notifications are down (the cycle is 120 s away)"
        );
        // Back up: the listener reconnects (backoff) and the catch-up cycle applies it.
        relay.down.send(false).unwrap();
        let took = within(Duration::from_secs(30), "ann by the catch-up cycle", || {
            swapped(&f, &ann, "Catch-New-1!", "Catch-Old-1!")
        });
        println!(
            "catch-up applied the change {} ms after the relay came back",
            took.as_millis()
        );
        assert_eq!(notification_state(&f), "connected");
    });
    let query = phsync_engine::events::EventQuery::default();
    let events = phsync_engine::events::read_events(&f.dir.0.join("state"), &query).unwrap();
    let ids: Vec<u16> = events
        .iter()
        .filter(|e| e.at >= started_at)
        .map(|e| e.event_id)
        .filter(|i| (690..=692).contains(i) || *i == 601 || *i == 602)
        .collect();
    assert_eq!(ids, vec![601, 690, 691, 692, 602], "{events:#?}");
}

/// The latency benchmark (`scripts/bench-notify`): 50 users' passwords changed one at a time
/// over LDAP, each timed from the modify's return until the new password signs in to the
/// tenant and the old one is refused. Prints p50, p95 and max, and the same figures for a
/// 2-minute poll (Entra Connect's) as the reference.
#[test]
#[ignore = "a benchmark: scripts/bench-notify runs it"]
fn bench_notify_latency() {
    let f = SyncFixture::new("nbench", "");
    let users: Vec<String> = (0..50).map(|i| f.sam(&format!("bn{i}"))).collect();
    let seed: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.clone(), "Bench-Old-1!".to_string()))
        .collect();
    f.ou.add_users(&seed);
    let mut took = Vec::new();
    with_run(&f, RunHooks::default(), || {
        within(Duration::from_secs(120), "the first cycle", || {
            users
                .iter()
                .all(|u| f.sign_in(u, "Bench-Old-1!") == SignInStatus::Success)
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        for (i, u) in users.iter().enumerate() {
            let new = format!("Bench-New-{i}!");
            f.ou.set_password(u, &new);
            let started = Instant::now();
            while !swapped(&f, u, &new, "Bench-Old-1!") {
                assert!(
                    started.elapsed() < Duration::from_secs(130),
                    "{u} never arrived"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            took.push(started.elapsed());
        }
    });
    took.sort();
    let pct =
        |v: &[Duration], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "notify latency over {} changes: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        took.len(),
        ms(pct(&took, 0.50)),
        ms(pct(&took, 0.95)),
        ms(took[took.len() - 1])
    );
    // A change lands at a uniformly random point of a 120 s poll interval and waits for the
    // next cycle: p50 60 s, p95 114 s, max 120 s (plus the cycle's own time).
    println!(
        "2-minute poll reference: p50 60000 ms, p95 114000 ms, max 120000 ms (plus the cycle)"
    );
    assert!(
        pct(&took, 0.50) < Duration::from_secs(2),
        "goal: p50 under 2 s"
    );
    assert!(
        pct(&took, 0.95) < Duration::from_secs(5),
        "goal: p95 under 5 s"
    );
}
