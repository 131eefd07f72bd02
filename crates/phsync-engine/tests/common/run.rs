//! Helpers of the tests that run `Engine::run` against the lab DC (the `it` and `burst`
//! binaries include this file).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phsync_engine::{Engine, RunHooks};
use phsync_tenant::SignInStatus;
use phsync_testkit::sync_fixture::SyncFixture;

/// The bound on a notified change reaching the tenant (the p95 goal).
pub(crate) const BOUND: Duration = Duration::from_secs(5);

/// Sets the stop flag when dropped (also when the test body panics).
pub(crate) struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Run the engine's run loop on this thread and `body` beside it; stop the loop when the body
/// ends, then propagate the body's panic.
/// One of these tests at a time: they measure latency, and the burst loads the DC.
pub(crate) static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn with_run(f: &SyncFixture, hooks: RunHooks, body: impl FnOnce() + Send) {
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
pub(crate) fn within(bound: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

pub(crate) fn swapped(f: &SyncFixture, sam: &str, new: &str, old: &str) -> bool {
    f.sign_in(sam, new) == SignInStatus::Success
        && f.sign_in(sam, old) == SignInStatus::InvalidCredentials
}

pub(crate) fn notification_state(f: &SyncFixture) -> String {
    Engine::open(&f.config)
        .unwrap()
        .notification_status()
        .unwrap()
        .map(|n| n.state)
        .unwrap_or_default()
}

/// A loopback relay to the DC's LDAPS port that can go down (cutting what it carries and
/// refusing new connections) and up again.
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    pub(crate) down: tokio::sync::watch::Sender<bool>,
    _rt: tokio::runtime::Runtime,
}

impl Relay {
    pub(crate) fn start(to: SocketAddr) -> Relay {
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
