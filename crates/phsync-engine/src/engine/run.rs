//! `phsync run` (and later the C ABI's run): the first cycle, then change-driven sync from the
//! DC's change notifications between periodic cycles.
//!
//! Threads and channels:
//! - the caller's thread runs [`Engine::run`]: cycles, notification batches, events, state;
//! - a listener thread (`phsync-notify`, its own current-thread tokio runtime) keeps one
//!   [`ChangeNotifications`] search open — or, where the DC refuses notifications (or
//!   `[sync] change_source = "dirsync"`), polls [`DirSync`] every [`DIRSYNC_POLL`] — and sends
//!   [`Notice`]s over a std channel: each changed user or group ([`Change`]), the DirSync
//!   cookie, and the connection's state (connected, lost, unsupported). It reconnects with
//!   exponential backoff (1 s .. 60 s) and ends when the stop flag is set or the receiver is
//!   gone;
//! - a heartbeat thread (`phsync-heartbeat`) stores the run's pid and the time every
//!   [`HEARTBEAT_EVERY`], so `phsync status` can tell a live run from one that died
//!   ([`STALE_AFTER`]).
//!
//! The loop waits on the channel until the next periodic cycle (`interval_seconds`). The first
//! change starts a short window ([`DEFAULT_COALESCE`]); the GUIDs received until it closes,
//! and everything already queued when it does, form one batch ([`Engine::sync_objects`]), each
//! user once. Changes arriving while a batch or a cycle is in flight wait in the channel and
//! form the next batch. After a loss, the first reconnection runs an incremental cycle from
//! the stored cursor (catch-up): changes made while the search was down are not notified.
//!
//! A batch replicates only the users whose password may have changed (see `changes`: a
//! change that leaves pwdLastSet as the engine knows it is applied without a replication, or
//! skipped when nothing PHS cares about changed). A changed group, when the scope names
//! groups, re-reads the scope: members that left are disabled in the tenant, members that
//! joined get their password. A failed cycle is retried after 5 s, doubling up to 60 s.
//!
//! Cursor rule: only cycles move the cursor; a notification batch never does, so the
//! periodic cycle replays what a batch applied (the tenant refuses it as already current)
//! and nothing a batch missed is lost.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use phsync_directory::{ChangeNotifications, DirSync, DirectoryError, Guid, LdapTarget};
use phsync_tenant::Timestamp;

use super::changes::{Change, Need};
use super::Engine;
use crate::config::ChangeSource;
use crate::events::{id, Level};
use crate::settings::PasswordSource;
use crate::state::StateStore;
use crate::SyncError;

/// How long the first change of a batch waits for more (Samba sends a burst's changes
/// within about 100 ms of each other).
pub const DEFAULT_COALESCE: Duration = Duration::from_millis(100);
/// Reconnection backoff of the notification listener: first wait, then doubled up to max.
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);
pub const RECONNECT_MAX: Duration = Duration::from_secs(60);
/// How long the first cycle waits for the listener's first word (so that a change between
/// the search's start and the cycle is seen twice rather than never).
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How often the loop and the listener look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Event 654 ("running") this often.
const EVENT_HEARTBEAT_EVERY: Duration = Duration::from_secs(30 * 60);
/// After a failed notification batch, a catch-up cycle this much later.
const BATCH_FAILURE_CATCH_UP: Duration = Duration::from_secs(5);
/// After a failed cycle, the next one this much later, doubled up to [`CYCLE_RETRY_MAX`]
/// (and never later than the periodic cycle).
const CYCLE_RETRY_MIN: Duration = Duration::from_secs(5);
const CYCLE_RETRY_MAX: Duration = Duration::from_secs(60);
/// How often DirSync is polled where it is the change source.
pub const DIRSYNC_POLL: Duration = Duration::from_secs(2);
/// How often a running `phsync run` stores its heartbeat (pid, time).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A stored notification state whose run has not beaten for this long is reported "stale".
pub const STALE_AFTER: Duration = Duration::from_secs(60);

pub(super) const NOTIFICATIONS_KEY: &str = "notifications";
const HEARTBEAT_KEY: &str = "run_heartbeat";
const DIRSYNC_COOKIE_KEY: &str = "dirsync_cookie";

/// What the listener thread tells the run loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A user (or inetOrgPerson) or a group changed.
    Changed(Change),
    /// The notification search is open, or DirSync answers (`source`).
    Connected { url: String, source: &'static str },
    /// The connection of `source` dropped or could not be opened; the listener retries
    /// with backoff.
    Lost {
        detail: String,
        source: &'static str,
    },
    /// The DC refuses this change source; `fallback`: the listener tries DirSync next,
    /// else it has ended and the engine polls only.
    Unsupported { detail: String, fallback: bool },
    /// DirSync's cookie after a poll (stored, to resume from after a restart).
    Cookie(Vec<u8>),
}

/// The change sources' names in the status.
pub(crate) const SOURCE_NOTIFICATIONS: &str = "notifications";
pub(crate) const SOURCE_DIRSYNC: &str = "dirsync";

/// Test and embedding hooks for [`Engine::run`]; the default is what `phsync run` does.
#[derive(Debug, Clone, Default)]
pub struct RunHooks {
    /// Where the notification listener connects instead of the settings' LDAP target (tests
    /// put a relay in front of the DC to cut the connection).
    pub notification_target: Option<LdapTarget>,
    /// The listener's keep-alive interval instead of the directory layer's default.
    pub keepalive: Option<Duration>,
    /// The coalescing window instead of [`DEFAULT_COALESCE`].
    pub coalesce: Option<Duration>,
    /// The DirSync poll interval instead of [`DIRSYNC_POLL`].
    pub dirsync_poll: Option<Duration>,
}

/// The state of the change notifications, as `phsync status` shows it (kept in the state
/// store by the running `phsync run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationStatus {
    /// connecting | connected | lost | unsupported | disabled | stopped
    pub state: String,
    /// True while the notification search is open.
    pub live: bool,
    /// When `state` last changed.
    pub since: Timestamp,
    /// When the last change notification arrived (from this or an earlier run).
    pub last_notification_at: Option<Timestamp>,
    /// The DC's URL (connected) or why not (lost, unsupported, stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The change source in use: `notifications` or `dirsync` (none before one connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The process of the run that stored this state, and its last heartbeat (filled in
    /// when read; a run beats every 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<Timestamp>,
    /// What the change-driven batches of this run did.
    #[serde(default)]
    pub stats: ChangeStats,
}

/// Counters of one run's change-driven sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeStats {
    /// Changed users (and groups) reported by the change source.
    pub changes: u64,
    /// Users whose password was replicated (single-object GetNCChanges) by a batch.
    pub replicated: u64,
    /// Notified users applied without a replication (disabled, moved, renamed).
    pub applied_without_replication: u64,
    /// Notified users skipped: nothing PHS cares about changed (e.g. only `description`).
    pub unchanged: u64,
    /// Scope re-reads after a group changed.
    pub scope_reads: u64,
}

/// What the heartbeat thread stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Heartbeat {
    pid: u32,
    at: Timestamp,
    /// The run ended cleanly (its last word).
    #[serde(default)]
    ended: bool,
}

/// The stored state as it should be reported: a state a run left behind (anything but
/// `stopped`) whose run is gone (`alive(pid)` is `Some(false)`) or has not beaten for
/// [`STALE_AFTER`] becomes `stale`, not live.
pub(crate) fn effective_status(
    mut s: NotificationStatus,
    heartbeat: Option<(u32, Timestamp, bool)>,
    now: Timestamp,
    alive: impl Fn(u32) -> Option<bool>,
) -> NotificationStatus {
    if let Some((pid, at, _)) = heartbeat {
        s.pid = Some(pid);
        s.heartbeat_at = Some(at);
    }
    if s.state == "stopped" || heartbeat.is_some_and(|(_, _, ended)| ended) {
        return s;
    }
    let heartbeat = heartbeat.map(|(pid, at, _)| (pid, at));
    let bound = STALE_AFTER.as_secs() as i64;
    let why = match heartbeat {
        None => "no heartbeat was stored by the run that stored this state".to_string(),
        Some((pid, _)) if alive(pid) == Some(false) => {
            format!("the phsync run that stored this state (pid {pid}) is not running")
        }
        Some((pid, at)) if now.unix_micros() - at.unix_micros() > bound * 1_000_000 => format!(
            "no heartbeat from the phsync run (pid {pid}) since {at}, more than {bound} s ago"
        ),
        Some(_) => return s,
    };
    let was = match &s.detail {
        Some(d) => format!("{} ({d})", s.state),
        None => s.state.clone(),
    };
    s.detail = Some(format!("{why}; it last said: {was}"));
    s.state = "stale".into();
    s.live = false;
    s
}

/// Whether process `pid` runs on this host, where that can be told (Linux: /proc).
fn process_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    if cfg!(target_os = "linux") {
        Some(std::path::Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The heartbeat thread: the run's pid and the time, every [`HEARTBEAT_EVERY`], on a state
/// store connection of its own (a long cycle on the run's thread does not delay it).
struct HeartbeatThread {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl HeartbeatThread {
    fn spawn(state_dir: PathBuf) -> std::io::Result<HeartbeatThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("phsync-heartbeat".into())
            .spawn(move || {
                let store = match StateStore::open(&state_dir) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("the heartbeat cannot open the state store: {e}");
                        return;
                    }
                };
                let mut next = Instant::now();
                while !flag.load(Ordering::SeqCst) {
                    if Instant::now() >= next {
                        if let Err(e) = store_heartbeat(&store, false) {
                            tracing::warn!("the heartbeat could not be stored: {e}");
                        }
                        next = Instant::now() + HEARTBEAT_EVERY;
                    }
                    std::thread::sleep(STOP_POLL);
                }
            })?;
        Ok(HeartbeatThread { stop, handle })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.join();
    }
}

fn store_heartbeat(store: &StateStore, ended: bool) -> Result<(), crate::state::StateError> {
    let beat = Heartbeat {
        pid: std::process::id(),
        at: Timestamp::now(),
        ended,
    };
    store.put(
        HEARTBEAT_KEY,
        &serde_json::to_string(&beat).expect("a heartbeat serializes"),
    )
}

/// The listener thread: its stop flag and handle.
struct Listener {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

/// What the listener thread needs.
struct ListenConfig {
    target: LdapTarget,
    password: PasswordSource,
    keepalive: Option<Duration>,
    source: ChangeSource,
    /// The stored DirSync cookie.
    cookie: Option<Vec<u8>>,
    dirsync_poll: Duration,
}

impl Listener {
    fn spawn(cfg: ListenConfig, tx: Sender<Notice>) -> std::io::Result<Listener> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("phsync-notify".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Notice::Unsupported {
                            detail: format!("cannot start the async runtime: {e}"),
                            fallback: false,
                        });
                        return;
                    }
                };
                rt.block_on(listen(cfg, flag, tx));
            })?;
        Ok(Listener { stop, handle })
    }

    /// Stop and wait (briefly: a connect in progress is left to its timeout, detached).
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.handle.is_finished() {
            let _ = self.handle.join();
        }
    }
}

/// Sleep `d` unless stopped first; true if stopped.
async fn sleep_or_stop(d: Duration, stop: &AtomicBool) -> bool {
    let until = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(STOP_POLL.min(until - tokio::time::Instant::now())).await;
    }
    stop.load(Ordering::SeqCst)
}

/// A change source as the events name it.
fn source_name(source: &str) -> &'static str {
    if source == SOURCE_DIRSYNC {
        "DirSync (polled every few seconds)"
    } else {
        "change notifications"
    }
}

/// How a listener session ended.
enum Ended {
    /// Stopped, or the receiver is gone: the listener ends.
    Stopped,
    /// Lost (already reported); `connected`: it had been up (the backoff starts over).
    Lost { connected: bool },
    /// The DC refuses this source.
    Unsupported(String),
}

/// The listener: open, forward, reconnect with backoff; ends on stop, when the receiver is
/// gone, or when the DC refuses every source it may use.
async fn listen(mut cfg: ListenConfig, stop: Arc<AtomicBool>, tx: Sender<Notice>) {
    let mut dirsync = cfg.source == ChangeSource::DirSync;
    let mut backoff = RECONNECT_MIN;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let password = match cfg.password.read() {
            Ok(pw) => pw,
            Err(e) => {
                if tx
                    .send(Notice::Lost {
                        detail: format!("the bind password cannot be read: {e}"),
                        source: if dirsync {
                            SOURCE_DIRSYNC
                        } else {
                            SOURCE_NOTIFICATIONS
                        },
                    })
                    .is_err()
                {
                    return;
                }
                if sleep_or_stop(backoff, &stop).await {
                    return;
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        let ended = if dirsync {
            dirsync_session(&mut cfg, &password, &stop, &tx).await
        } else {
            notification_session(&cfg, &password, &stop, &tx).await
        };
        drop(password);
        match ended {
            Ended::Stopped => return,
            Ended::Lost { connected } => {
                if connected {
                    backoff = RECONNECT_MIN;
                }
            }
            Ended::Unsupported(detail) => {
                let fallback = !dirsync && cfg.source == ChangeSource::Auto;
                if tx.send(Notice::Unsupported { detail, fallback }).is_err() || !fallback {
                    return;
                }
                dirsync = true;
                backoff = RECONNECT_MIN;
                continue;
            }
        }
        if sleep_or_stop(backoff, &stop).await {
            return;
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// A change source that could not be opened: the DC refuses it (the caller may fall back to
/// DirSync), or it is lost before it connected (the caller retries with backoff).
fn open_failed(e: DirectoryError, source: &'static str, tx: &Sender<Notice>) -> Ended {
    if matches!(
        e,
        DirectoryError::NotificationsUnsupported { .. } | DirectoryError::DirSyncUnsupported { .. }
    ) {
        return Ended::Unsupported(e.to_string());
    }
    match tx.send(Notice::Lost {
        detail: e.to_string(),
        source,
    }) {
        Ok(()) => Ended::Lost { connected: false },
        Err(_) => Ended::Stopped,
    }
}

/// One change-notification search, until it is lost or the listener stops.
async fn notification_session(
    cfg: &ListenConfig,
    password: &str,
    stop: &AtomicBool,
    tx: &Sender<Notice>,
) -> Ended {
    let mut n = match ChangeNotifications::open(&cfg.target, password).await {
        Ok(n) => n,
        Err(e) => return open_failed(e, SOURCE_NOTIFICATIONS, tx),
    };
    if let Some(k) = cfg.keepalive {
        n.set_keepalive(k);
    }
    let connected = Notice::Connected {
        url: n.url().to_string(),
        source: SOURCE_NOTIFICATIONS,
    };
    if tx.send(connected).is_err() {
        n.close().await;
        return Ended::Stopped;
    }
    let mut tick = tokio::time::interval(STOP_POLL);
    loop {
        tokio::select! {
            next = n.next() => match next {
                Ok(Some(c)) => {
                    if let Some(change) = Change::from_notification(&c) {
                        if tx.send(Notice::Changed(change)).is_err() {
                            n.close().await;
                            return Ended::Stopped;
                        }
                    }
                }
                Ok(None) => {
                    let _ = tx.send(Notice::Lost {
                        detail: "the notification search ended".into(),
                        source: SOURCE_NOTIFICATIONS,
                    });
                    return Ended::Lost { connected: true };
                }
                Err(e @ DirectoryError::NotificationsUnsupported { .. }) => {
                    n.close().await;
                    return Ended::Unsupported(e.to_string());
                }
                Err(e) => {
                    let _ = tx.send(Notice::Lost {
                        detail: e.to_string(),
                        source: SOURCE_NOTIFICATIONS,
                    });
                    return Ended::Lost { connected: true };
                }
            },
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) {
                    n.close().await;
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// DirSync polled every `dirsync_poll`, until it fails or the listener stops; the cookie
/// is kept in `cfg` across sessions and reported after each poll that moved it.
async fn dirsync_session(
    cfg: &mut ListenConfig,
    password: &str,
    stop: &AtomicBool,
    tx: &Sender<Notice>,
) -> Ended {
    let mut ds = match DirSync::open(&cfg.target, password, cfg.cookie.clone()).await {
        Ok(ds) => ds,
        Err(e) => return open_failed(e, SOURCE_DIRSYNC, tx),
    };
    let mut url = ds.url().to_string();
    if ds.object_security() {
        url.push_str(" (object security: the account lacks Replicating Directory Changes)");
    }
    let sent = tx.send(Notice::Connected {
        url,
        source: SOURCE_DIRSYNC,
    });
    if sent.is_err() || !report_cookie(cfg, &ds, tx) {
        ds.close().await;
        return Ended::Stopped;
    }
    loop {
        if sleep_or_stop(cfg.dirsync_poll, stop).await {
            ds.close().await;
            return Ended::Stopped;
        }
        match ds.poll().await {
            Ok(changes) => {
                for c in &changes {
                    if let Some(change) = Change::from_dirsync(c) {
                        if tx.send(Notice::Changed(change)).is_err() {
                            ds.close().await;
                            return Ended::Stopped;
                        }
                    }
                }
                if !report_cookie(cfg, &ds, tx) {
                    ds.close().await;
                    return Ended::Stopped;
                }
            }
            Err(e @ DirectoryError::DirSyncUnsupported { .. }) => {
                ds.close().await;
                return Ended::Unsupported(e.to_string());
            }
            Err(e) => {
                // The reader may have started over from now (a refused cookie).
                let _ = report_cookie(cfg, &ds, tx);
                ds.close().await;
                let _ = tx.send(Notice::Lost {
                    detail: e.to_string(),
                    source: SOURCE_DIRSYNC,
                });
                return Ended::Lost { connected: true };
            }
        }
    }
}

/// Send the cookie if it moved; false when the receiver is gone.
fn report_cookie(cfg: &mut ListenConfig, ds: &DirSync, tx: &Sender<Notice>) -> bool {
    if cfg.cookie.as_deref() == Some(ds.cookie()) {
        return true;
    }
    cfg.cookie = Some(ds.cookie().to_vec());
    tx.send(Notice::Cookie(ds.cookie().to_vec())).is_ok()
}

/// The run loop's view of the notifications.
struct Watch {
    rx: Option<Receiver<Notice>>,
    coalesce: Duration,
    status: NotificationStatus,
    /// A loss was seen (and reported) since the last connection.
    lost: bool,
    connected_once: bool,
    /// The pending batch, in arrival order, each object once, with what was seen of it.
    batch: Vec<Guid>,
    in_batch: HashMap<Guid, Vec<Change>>,
    window_end: Option<Instant>,
    catch_up_at: Option<Instant>,
    /// The wait before retrying a failed cycle.
    cycle_retry: Duration,
    /// The first cycle has run.
    cycled: bool,
}

impl Watch {
    fn clear_batch(&mut self) {
        self.batch.clear();
        self.in_batch.clear();
        self.window_end = None;
    }
}

/// How a cycle of the run loop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CycleOutcome {
    Done,
    Failed,
    Stopped,
}

impl Engine {
    /// Run until the stop flag ([`Engine::stop_flag`]) is set: the first cycle, then, with
    /// `[sync] notifications = true`, change-driven batches from the DC's change
    /// notifications (or DirSync, see `[sync] change_source`) between periodic cycles every
    /// `interval_seconds` (see the module docs). Events 601/602 at start and stop, 654 every
    /// 30 min, 690/691/692 for the change source. Cycle and batch failures are logged and
    /// retried; `Err` only if the state store cannot be written at the start.
    pub fn run(&mut self, hooks: RunHooks) -> Result<(), SyncError> {
        let rx = if self.settings.rules.notifications {
            let (tx, rx) = mpsc::channel();
            let target = hooks
                .notification_target
                .clone()
                .unwrap_or_else(|| self.settings.ldap.clone());
            let cookie = self
                .state
                .get(DIRSYNC_COOKIE_KEY)
                .ok()
                .flatten()
                .and_then(|t| unhex(&t));
            let cfg = ListenConfig {
                target,
                password: self.settings.password.clone(),
                keepalive: hooks.keepalive,
                source: self.settings.rules.change_source,
                cookie,
                dirsync_poll: hooks.dirsync_poll.unwrap_or(DIRSYNC_POLL),
            };
            match Listener::spawn(cfg, tx) {
                Ok(listener) => Some((listener, rx)),
                Err(e) => {
                    tracing::warn!("cannot start the notification listener: {e}; polling only");
                    None
                }
            }
        } else {
            None
        };
        let (listener, rx) = match rx {
            Some((l, rx)) => (Some(l), Some(rx)),
            None => (None, None),
        };
        let result = self.run_loop(rx, &hooks);
        if let Some(l) = listener {
            l.stop();
        }
        result
    }

    /// The loop over a notice channel (`None`: notifications off, poll only).
    pub(crate) fn run_loop(
        &mut self,
        rx: Option<Receiver<Notice>>,
        hooks: &RunHooks,
    ) -> Result<(), SyncError> {
        // The heartbeat first: a status read from now on sees this run alive.
        store_heartbeat(&self.state, false)?;
        let heartbeat = match HeartbeatThread::spawn(self.settings.state_dir.clone()) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("cannot start the heartbeat thread: {e}");
                None
            }
        };
        self.known = Some(Default::default());
        let result = self.run_watch(rx, hooks);
        self.known = None;
        if let Some(h) = heartbeat {
            h.stop();
        }
        // The last word: ended cleanly (a state such as `disabled` is then not stale).
        let _ = store_heartbeat(&self.state, true);
        result
    }

    fn run_watch(
        &mut self,
        rx: Option<Receiver<Notice>>,
        hooks: &RunHooks,
    ) -> Result<(), SyncError> {
        let stop = self.stop.clone();
        let interval = self.settings.rules.interval;
        let previous = self.stored_notification_status().ok().flatten();
        let mut w = Watch {
            coalesce: hooks.coalesce.unwrap_or(DEFAULT_COALESCE),
            status: NotificationStatus {
                state: if rx.is_some() {
                    "connecting"
                } else {
                    "disabled"
                }
                .into(),
                live: false,
                since: self.now(),
                last_notification_at: previous.and_then(|p| p.last_notification_at),
                detail: None,
                source: None,
                pid: None,
                heartbeat_at: None,
                stats: ChangeStats::default(),
            },
            rx,
            lost: false,
            connected_once: false,
            batch: Vec::new(),
            in_batch: HashMap::new(),
            window_end: None,
            catch_up_at: None,
            cycle_retry: CYCLE_RETRY_MIN,
            cycled: false,
        };
        self.store_notifications(&w.status)?;
        self.started();
        // Notifications first, then the first cycle (the doc of ChangeNotifications says why).
        if w.rx.is_some() {
            let deadline = Instant::now() + FIRST_CONNECT_WAIT;
            while !stop.load(Ordering::SeqCst) && w.status.state == "connecting" {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let Some(rx) = &w.rx else { break };
                match rx.recv_timeout(left.min(STOP_POLL)) {
                    Ok(notice) => self.on_notice(notice, &mut w),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.listener_gone(&mut w),
                }
            }
        }
        // The first cycle covers everything notified so far.
        w.catch_up_at = None;
        w.clear_batch();
        let mut last_heartbeat = Instant::now();
        let first = self.logged_cycle(&mut w);
        w.cycled = true;
        if !stop.load(Ordering::SeqCst) && first != CycleOutcome::Stopped {
            let mut next_cycle = Instant::now() + interval;
            while !stop.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now >= next_cycle || w.catch_up_at.is_some_and(|t| now >= t) {
                    // A cycle covers the changes notified before it starts.
                    w.catch_up_at = None;
                    w.clear_batch();
                    if self.logged_cycle(&mut w) == CycleOutcome::Stopped {
                        break;
                    }
                    next_cycle = Instant::now() + interval;
                    continue;
                }
                if w.window_end.is_some_and(|t| now >= t) {
                    // Everything already queued joins the batch.
                    while let Some(notice) = w.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
                        self.on_notice(notice, &mut w);
                    }
                    let batch = std::mem::take(&mut w.batch);
                    let changes = std::mem::take(&mut w.in_batch);
                    w.window_end = None;
                    if !self.notified_batch(&batch, changes, &mut w) {
                        break;
                    }
                    continue;
                }
                let mut wake = next_cycle.min(now + STOP_POLL);
                if let Some(t) = w.window_end {
                    wake = wake.min(t);
                }
                if let Some(t) = w.catch_up_at {
                    wake = wake.min(t);
                }
                let timeout = wake.saturating_duration_since(now);
                match &w.rx {
                    Some(rx) => match rx.recv_timeout(timeout) {
                        Ok(notice) => self.on_notice(notice, &mut w),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => self.listener_gone(&mut w),
                    },
                    None => std::thread::sleep(timeout),
                }
                if last_heartbeat.elapsed() >= EVENT_HEARTBEAT_EVERY {
                    self.heartbeat();
                    last_heartbeat = Instant::now();
                }
            }
        }
        w.rx = None;
        if w.status.state != "disabled" {
            w.status.state = "stopped".into();
            w.status.live = false;
            w.status.since = self.now();
            w.status.detail = None;
        }
        let _ = self.store_notifications(&w.status);
        self.stopped();
        Ok(())
    }

    /// One periodic or catch-up cycle, logged. A failed cycle is retried after
    /// `w.cycle_retry` (doubling up to [`CYCLE_RETRY_MAX`]): the cursor did not move, so the
    /// retry covers everything the failed one would have.
    fn logged_cycle(&mut self, w: &mut Watch) -> CycleOutcome {
        match self.cycle(false, &mut |_, _, _| {}) {
            Ok(r) => {
                tracing::info!(
                    "{} cycle: {} applied, {} failed, {} queued for retry",
                    r.mode,
                    r.applied,
                    r.failed,
                    r.retry_queued
                );
                w.cycle_retry = CYCLE_RETRY_MIN;
                CycleOutcome::Done
            }
            Err(SyncError::Interrupted) => CycleOutcome::Stopped,
            Err(e) => {
                let retry = w.cycle_retry.min(self.settings.rules.interval);
                tracing::error!("cycle failed: {e}; retried in {} s", retry.as_secs());
                w.catch_up_at = Some(Instant::now() + retry);
                w.cycle_retry = (w.cycle_retry * 2).min(CYCLE_RETRY_MAX);
                CycleOutcome::Failed
            }
        }
    }

    /// One batch of changed objects; false when stopped by the caller. Each user's changes
    /// decide what it needs (see `changes`); a changed group re-reads the scope when the
    /// scope names groups.
    fn notified_batch(
        &mut self,
        batch: &[Guid],
        mut changes: HashMap<Guid, Vec<Change>>,
        w: &mut Watch,
    ) -> bool {
        if batch.is_empty() {
            return true;
        }
        let known = self.known.get_or_insert_with(Default::default);
        let mut sync: Vec<Guid> = Vec::new();
        let mut no_password: HashSet<Guid> = HashSet::new();
        let mut group_changed = false;
        let mut unchanged = 0u64;
        for guid in batch {
            let mut need: Option<Need> = None;
            for change in changes.remove(guid).unwrap_or_default() {
                match change {
                    Change::User { seen, .. } => {
                        need = need.max(Some(known.need(guid, &seen)));
                    }
                    Change::Group { .. } => group_changed = true,
                }
            }
            match need {
                None => {}
                Some(Need::Nothing) => unchanged += 1,
                Some(Need::Attributes) => {
                    no_password.insert(*guid);
                    sync.push(*guid);
                }
                Some(Need::Password) => sync.push(*guid),
            }
        }
        w.status.stats.unchanged += unchanged;
        let scope_known = self.known.as_ref().is_some_and(|k| k.is_complete());
        if group_changed && !self.settings.scope.groups.is_empty() && !scope_known {
            // No successful cycle yet: nothing to compare with; its retry reads the scope.
            tracing::debug!("a group changed before the scope was known: left to the next cycle");
        }
        if group_changed && !self.settings.scope.groups.is_empty() && scope_known {
            // Group membership is a backlink: a member added or removed changes the group,
            // not the user. Compare the scope now with the scope known.
            w.status.stats.scope_reads += 1;
            match self.directory.scope_users() {
                Ok(users) => {
                    let known = self.known.get_or_insert_with(Default::default);
                    let before = known.guids();
                    let now: HashSet<Guid> = users.iter().map(|u| u.object_guid).collect();
                    for g in before.difference(&now) {
                        if !sync.contains(g) {
                            // Left the scope: resolving it disables it in the tenant.
                            no_password.insert(*g);
                            sync.push(*g);
                        }
                    }
                    for g in now.difference(&before) {
                        if !sync.contains(g) {
                            sync.push(*g);
                        }
                        no_password.remove(g);
                    }
                }
                Err(e) => {
                    tracing::warn!("the scope could not be read after a group changed: {e}");
                    w.catch_up_at = Some(Instant::now() + BATCH_FAILURE_CATCH_UP);
                }
            }
        }
        let _ = self.store_notifications(&w.status);
        if sync.is_empty() {
            if unchanged > 0 {
                tracing::debug!("notified: {unchanged} users with nothing PHS cares about changed");
            }
            return true;
        }
        match self.sync_changed(&sync, &no_password) {
            Ok((r, replicated)) => {
                w.status.stats.replicated += replicated as u64;
                w.status.stats.applied_without_replication +=
                    sync.len().saturating_sub(replicated) as u64;
                tracing::info!(
                    "notified: {} users, {} replicated, {} applied, {} already current, {} disabled, {} failed, {} unchanged",
                    sync.len(),
                    replicated,
                    r.applied,
                    r.stale,
                    r.disabled,
                    r.failed,
                    unchanged
                );
                let _ = self.store_notifications(&w.status);
                true
            }
            Err(SyncError::Interrupted) => false,
            Err(e) => {
                tracing::warn!("change-driven sync of {} users failed: {e}", sync.len());
                self.emit(
                    id::SYNC_ERROR,
                    Level::Warning,
                    format!(
                        "change-driven sync of {} users failed: {e}; a catch-up cycle follows",
                        sync.len()
                    ),
                    json!({ "users": sync.len() }),
                );
                w.catch_up_at = Some(Instant::now() + BATCH_FAILURE_CATCH_UP);
                true
            }
        }
    }

    fn listener_gone(&mut self, w: &mut Watch) {
        w.rx = None;
        if w.status.state != "unsupported" {
            self.set_status(
                w,
                "lost",
                false,
                Some("the notification listener ended".into()),
            );
        }
    }

    fn on_notice(&mut self, notice: Notice, w: &mut Watch) {
        let domain = self.settings.domain.clone();
        match notice {
            Notice::Changed(change) => {
                w.status.last_notification_at = Some(self.now());
                w.status.stats.changes += 1;
                let guid = change.guid();
                let seen = w.in_batch.entry(guid).or_default();
                if seen.is_empty() {
                    w.batch.push(guid);
                }
                seen.push(change);
                if w.window_end.is_none() {
                    w.window_end = Some(Instant::now() + w.coalesce);
                }
            }
            Notice::Cookie(cookie) => {
                if let Err(e) = self.state.put(DIRSYNC_COOKIE_KEY, &hex(&cookie)) {
                    tracing::warn!("the DirSync cookie could not be stored: {e}");
                }
            }
            Notice::Connected { url, source } => {
                let what = source_name(source);
                if w.lost {
                    self.emit(
                        id::NOTIFICATIONS_RESUMED,
                        Level::Info,
                        format!("{what} from {url} resumed for domain {domain}; a catch-up cycle runs from the stored cursor"),
                        json!({ "domain": domain, "url": url, "source": source }),
                    );
                    w.catch_up_at = Some(Instant::now());
                } else {
                    self.emit(
                        id::NOTIFICATIONS_CONNECTED,
                        Level::Info,
                        format!("{what} from {url} connected for domain {domain}: changed passwords sync within seconds"),
                        json!({ "domain": domain, "url": url, "source": source }),
                    );
                    if w.cycled {
                        // Connected after the first cycle: a change in between is covered
                        // by neither, so catch up.
                        w.catch_up_at = Some(Instant::now());
                    }
                }
                w.lost = false;
                w.connected_once = true;
                w.status.source = Some(source.to_string());
                self.set_status(w, "connected", true, Some(url));
            }
            Notice::Lost { detail, source } => {
                if !w.lost {
                    let interval = self.settings.rules.interval.as_secs();
                    self.emit(
                        id::NOTIFICATIONS_LOST,
                        Level::Warning,
                        format!("{} lost for domain {domain}: {detail}; reconnecting with backoff, polling every {interval} s meanwhile", source_name(source)),
                        json!({ "domain": domain, "detail": detail, "source": source, "was_connected": w.connected_once }),
                    );
                    w.lost = true;
                }
                self.set_status(w, "lost", false, Some(detail));
            }
            Notice::Unsupported { detail, fallback } => {
                if fallback {
                    tracing::warn!(
                        "the DC does not offer change notifications ({detail}); trying DirSync"
                    );
                    // Still connecting: the first cycle waits for DirSync's answer too.
                    let state = w.status.state.clone();
                    let state = if state == "connecting" {
                        "connecting"
                    } else {
                        "lost"
                    };
                    self.set_status(w, state, false, Some(format!("{detail}; trying DirSync")));
                } else {
                    tracing::warn!(
                        "the DC does not support the change source ({detail}); polling every {} s",
                        self.settings.rules.interval.as_secs()
                    );
                    self.set_status(w, "unsupported", false, Some(detail));
                }
            }
        }
    }

    fn set_status(&mut self, w: &mut Watch, state: &str, live: bool, detail: Option<String>) {
        if w.status.state != state {
            w.status.since = self.now();
        }
        w.status.state = state.into();
        w.status.live = live;
        w.status.detail = detail;
        if let Err(e) = self.store_notifications(&w.status) {
            tracing::warn!("the notification state could not be stored: {e}");
        }
    }

    fn store_notifications(&self, status: &NotificationStatus) -> Result<(), SyncError> {
        let text = serde_json::to_string(status).expect("the status serializes");
        Ok(self.state.put(NOTIFICATIONS_KEY, &text)?)
    }

    fn stored_notification_status(&self) -> Result<Option<NotificationStatus>, SyncError> {
        Ok(self
            .state
            .get(NOTIFICATIONS_KEY)?
            .and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The change notifications' state as the running (or last) `phsync run` stored it;
    /// `None` before the first run. A state left by a run that is gone (its pid no longer
    /// runs, or no heartbeat for [`STALE_AFTER`]) is reported as `stale`, not live.
    pub fn notification_status(&self) -> Result<Option<NotificationStatus>, SyncError> {
        let Some(status) = self.stored_notification_status()? else {
            return Ok(None);
        };
        let heartbeat = self
            .state
            .get(HEARTBEAT_KEY)?
            .and_then(|t| serde_json::from_str::<Heartbeat>(&t).ok())
            .map(|h| (h.pid, h.at, h.ended));
        Ok(Some(effective_status(
            status,
            heartbeat,
            Timestamp::now(),
            process_alive,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, live: bool) -> NotificationStatus {
        NotificationStatus {
            state: state.into(),
            live,
            since: Timestamp::from_unix_micros(0),
            last_notification_at: None,
            detail: Some("ldaps://dc".into()),
            source: Some("notifications".into()),
            pid: None,
            heartbeat_at: None,
            stats: ChangeStats::default(),
        }
    }

    #[test]
    fn a_state_left_by_a_dead_or_silent_run_is_stale() {
        let now = Timestamp::from_unix_micros(1_000_000_000_000);
        let recent = now.plus_seconds(-5);
        let old = now.plus_seconds(-(STALE_AFTER.as_secs() as i64) - 1);
        let alive = |_| Some(true);
        let dead = |_| Some(false);
        let unknown = |_| None;
        // Beating and alive: as stored, with the pid and heartbeat filled in.
        let s = effective_status(
            status("connected", true),
            Some((42, recent, false)),
            now,
            alive,
        );
        assert_eq!((s.state.as_str(), s.live), ("connected", true));
        assert_eq!((s.pid, s.heartbeat_at), (Some(42), Some(recent)));
        // The process is gone: stale at once, whatever the heartbeat says.
        let s = effective_status(
            status("connected", true),
            Some((42, recent, false)),
            now,
            dead,
        );
        assert_eq!((s.state.as_str(), s.live), ("stale", false));
        let d = s.detail.unwrap();
        assert!(
            d.contains("pid 42") && d.contains("connected (ldaps://dc)"),
            "{d}"
        );
        // Where liveness cannot be told, a silent heartbeat decides.
        let s = effective_status(
            status("connected", true),
            Some((42, old, false)),
            now,
            unknown,
        );
        assert_eq!((s.state.as_str(), s.live), ("stale", false));
        assert!(s.detail.unwrap().contains("more than 60 s"));
        let s = effective_status(
            status("lost", false),
            Some((42, recent, false)),
            now,
            unknown,
        );
        assert_eq!(s.state, "lost");
        // No heartbeat at all (a run that died before storing one): stale.
        let s = effective_status(status("connecting", false), None, now, alive);
        assert_eq!(s.state, "stale");
        // A run that stopped cleanly is reported as stopped, however old.
        let s = effective_status(status("stopped", false), Some((42, old, false)), now, dead);
        assert_eq!((s.state.as_str(), s.live), ("stopped", false));
        // A run without notifications that ended cleanly stays "disabled".
        let s = effective_status(status("disabled", false), Some((42, old, true)), now, dead);
        assert_eq!((s.state.as_str(), s.live), ("disabled", false));
    }

    #[test]
    fn cookies_round_trip_as_hex() {
        let c = vec![0x4d, 0x53, 0x44, 0x53, 0x00, 0xff];
        assert_eq!(hex(&c), "4d53445300ff");
        assert_eq!(unhex(&hex(&c)), Some(c));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
