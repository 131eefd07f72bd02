//! `phsync run` (and later the C ABI's run): the first cycle, then change-driven sync from the
//! DC's change notifications between periodic cycles.
//!
//! Threads and channels:
//! - the caller's thread runs [`Engine::run`]: cycles, notification batches, events, state;
//! - a listener thread (`phsync-notify`, its own current-thread tokio runtime) keeps one
//!   [`ChangeNotifications`] search open and sends [`Notice`]s over a std channel: the GUID of
//!   each changed `User`/`InetOrgPerson`, and the connection's state (connected, lost,
//!   unsupported). It reconnects with exponential backoff (1 s .. 60 s) and ends when the stop
//!   flag is set or the receiver is gone.
//!
//! The loop waits on the channel until the next periodic cycle (`interval_seconds`). The first
//! change starts a short window ([`DEFAULT_COALESCE`]); the GUIDs received until it closes,
//! and everything already queued when it does, form one batch ([`Engine::sync_objects`]), each
//! user once. Changes arriving while a batch or a cycle is in flight wait in the channel and
//! form the next batch. After a loss, the first reconnection runs an incremental cycle from
//! the stored cursor (catch-up): changes made while the search was down are not notified.
//!
//! Cursor rule: only cycles move the cursor; a notification batch never does, so the
//! periodic cycle replays what a batch applied (the tenant refuses it as already current)
//! and nothing a batch missed is lost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use phsync_directory::{ChangeNotifications, DirectoryError, Guid, LdapTarget, ObjectKind};
use phsync_tenant::Timestamp;

use super::Engine;
use crate::events::{id, Level};
use crate::settings::PasswordSource;
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
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30 * 60);
/// After a failed notification batch, a catch-up cycle this much later.
const BATCH_FAILURE_CATCH_UP: Duration = Duration::from_secs(5);

pub(super) const NOTIFICATIONS_KEY: &str = "notifications";

/// What the listener thread tells the run loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A user (or inetOrgPerson) changed.
    Changed(Guid),
    /// The notification search is open.
    Connected { url: String },
    /// The connection dropped or could not be opened; the listener retries with backoff.
    Lost { detail: String },
    /// The DC refuses notifications: the listener has ended; poll only.
    Unsupported { detail: String },
}

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
    /// The DC's URL (connected) or why not (lost, unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The listener thread: its stop flag and handle.
struct Listener {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Listener {
    fn spawn(
        target: LdapTarget,
        password: PasswordSource,
        keepalive: Option<Duration>,
        tx: Sender<Notice>,
    ) -> std::io::Result<Listener> {
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
                        });
                        return;
                    }
                };
                rt.block_on(listen(target, password, keepalive, flag, tx));
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

/// The listener: open, forward, reconnect with backoff; ends on stop, when the receiver is
/// gone, or when the DC refuses notifications.
async fn listen(
    target: LdapTarget,
    password: PasswordSource,
    keepalive: Option<Duration>,
    stop: Arc<AtomicBool>,
    tx: Sender<Notice>,
) {
    let mut backoff = RECONNECT_MIN;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let opened = match password.read() {
            Ok(pw) => ChangeNotifications::open(&target, &pw).await,
            Err(e) => Err(DirectoryError::NotificationsLost {
                url: target.url.clone(),
                detail: format!("the bind password cannot be read: {e}"),
            }),
        };
        match opened {
            Ok(mut n) => {
                if let Some(k) = keepalive {
                    n.set_keepalive(k);
                }
                if tx
                    .send(Notice::Connected {
                        url: n.url().to_string(),
                    })
                    .is_err()
                {
                    n.close().await;
                    return;
                }
                backoff = RECONNECT_MIN;
                let mut tick = tokio::time::interval(STOP_POLL);
                loop {
                    tokio::select! {
                        next = n.next() => match next {
                            Ok(Some(c)) => {
                                if matches!(c.kind, ObjectKind::User | ObjectKind::InetOrgPerson)
                                    && tx.send(Notice::Changed(c.object_guid)).is_err()
                                {
                                    n.close().await;
                                    return;
                                }
                            }
                            Ok(None) => {
                                let _ = tx.send(Notice::Lost { detail: "the notification search ended".into() });
                                break;
                            }
                            Err(e @ DirectoryError::NotificationsUnsupported { .. }) => {
                                let _ = tx.send(Notice::Unsupported { detail: e.to_string() });
                                n.close().await;
                                return;
                            }
                            Err(e) => {
                                let _ = tx.send(Notice::Lost { detail: e.to_string() });
                                break;
                            }
                        },
                        _ = tick.tick() => {
                            if stop.load(Ordering::SeqCst) {
                                n.close().await;
                                return;
                            }
                        }
                    }
                }
            }
            Err(e @ DirectoryError::NotificationsUnsupported { .. }) => {
                let _ = tx.send(Notice::Unsupported {
                    detail: e.to_string(),
                });
                return;
            }
            Err(e) => {
                if tx
                    .send(Notice::Lost {
                        detail: e.to_string(),
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
        if sleep_or_stop(backoff, &stop).await {
            return;
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// The run loop's view of the notifications.
struct Watch {
    rx: Option<Receiver<Notice>>,
    coalesce: Duration,
    status: NotificationStatus,
    /// A loss was seen (and reported) since the last connection.
    lost: bool,
    connected_once: bool,
    /// The pending batch, in arrival order, each user once.
    batch: Vec<Guid>,
    in_batch: HashSet<Guid>,
    window_end: Option<Instant>,
    catch_up_at: Option<Instant>,
}

impl Engine {
    /// Run until the stop flag ([`Engine::stop_flag`]) is set: the first cycle, then, with
    /// `[sync] notifications = true`, change-driven batches from the DC's change
    /// notifications between periodic cycles every `interval_seconds` (see the module docs).
    /// Events 601/602 at start and stop, 654 every 30 min, 690/691/692 for the
    /// notifications. Cycle and batch failures are logged and retried (the next cycle);
    /// `Err` only if the state store cannot be written at the start.
    pub fn run(&mut self, hooks: RunHooks) -> Result<(), SyncError> {
        let rx = if self.settings.rules.notifications {
            let (tx, rx) = mpsc::channel();
            let target = hooks
                .notification_target
                .clone()
                .unwrap_or_else(|| self.settings.ldap.clone());
            match Listener::spawn(target, self.settings.password.clone(), hooks.keepalive, tx) {
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
        let stop = self.stop.clone();
        let interval = self.settings.rules.interval;
        let previous = self.notification_status().ok().flatten();
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
            },
            rx,
            lost: false,
            connected_once: false,
            batch: Vec::new(),
            in_batch: HashSet::new(),
            window_end: None,
            catch_up_at: None,
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
        w.batch.clear();
        w.in_batch.clear();
        w.window_end = None;
        let mut last_heartbeat = Instant::now();
        if !stop.load(Ordering::SeqCst) && self.logged_cycle() {
            let mut next_cycle = Instant::now() + interval;
            while !stop.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now >= next_cycle || w.catch_up_at.is_some_and(|t| now >= t) {
                    // A cycle covers the changes notified before it starts.
                    w.catch_up_at = None;
                    w.batch.clear();
                    w.in_batch.clear();
                    w.window_end = None;
                    if !self.logged_cycle() {
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
                    w.in_batch.clear();
                    w.window_end = None;
                    if !self.notified_batch(&batch, &mut w) {
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
                if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
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

    /// One periodic or catch-up cycle, logged; false when stopped by the caller.
    fn logged_cycle(&mut self) -> bool {
        match self.cycle(false, &mut |_, _, _| {}) {
            Ok(r) => {
                tracing::info!(
                    "{} cycle: {} applied, {} failed, {} queued for retry",
                    r.mode,
                    r.applied,
                    r.failed,
                    r.retry_queued
                );
                true
            }
            Err(SyncError::Interrupted) => false,
            Err(e) => {
                tracing::error!("cycle failed: {e}");
                true
            }
        }
    }

    /// One notification batch; false when stopped by the caller.
    fn notified_batch(&mut self, batch: &[Guid], w: &mut Watch) -> bool {
        if batch.is_empty() {
            return true;
        }
        let _ = self.store_notifications(&w.status);
        match self.sync_objects(batch) {
            Ok(r) => {
                tracing::info!(
                    "notified: {} users, {} applied, {} already current, {} failed",
                    batch.len(),
                    r.applied,
                    r.stale,
                    r.failed
                );
                true
            }
            Err(SyncError::Interrupted) => false,
            Err(e) => {
                tracing::warn!("change-driven sync of {} users failed: {e}", batch.len());
                self.emit(
                    id::SYNC_ERROR,
                    Level::Warning,
                    format!(
                        "change-driven sync of {} users failed: {e}; a catch-up cycle follows",
                        batch.len()
                    ),
                    json!({ "users": batch.len() }),
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
            Notice::Changed(guid) => {
                w.status.last_notification_at = Some(self.now());
                if w.in_batch.insert(guid) {
                    w.batch.push(guid);
                }
                if w.window_end.is_none() {
                    w.window_end = Some(Instant::now() + w.coalesce);
                }
            }
            Notice::Connected { url } => {
                if w.lost {
                    self.emit(
                        id::NOTIFICATIONS_RESUMED,
                        Level::Info,
                        format!("change notifications from {url} resumed for domain {domain}; a catch-up cycle runs from the stored cursor"),
                        json!({ "domain": domain, "url": url }),
                    );
                    w.catch_up_at = Some(Instant::now());
                } else {
                    self.emit(
                        id::NOTIFICATIONS_CONNECTED,
                        Level::Info,
                        format!("change notifications from {url} connected for domain {domain}: changed passwords sync within seconds"),
                        json!({ "domain": domain, "url": url }),
                    );
                }
                w.lost = false;
                w.connected_once = true;
                self.set_status(w, "connected", true, Some(url));
            }
            Notice::Lost { detail } => {
                if !w.lost {
                    let interval = self.settings.rules.interval.as_secs();
                    self.emit(
                        id::NOTIFICATIONS_LOST,
                        Level::Warning,
                        format!("change notifications lost for domain {domain}: {detail}; reconnecting with backoff, polling every {interval} s meanwhile"),
                        json!({ "domain": domain, "detail": detail, "was_connected": w.connected_once }),
                    );
                    w.lost = true;
                }
                self.set_status(w, "lost", false, Some(detail));
            }
            Notice::Unsupported { detail } => {
                tracing::warn!(
                    "the DC does not support change notifications ({detail}); polling every {} s",
                    self.settings.rules.interval.as_secs()
                );
                self.set_status(w, "unsupported", false, Some(detail));
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

    /// The change notifications' state as the running (or last) `phsync run` stored it;
    /// `None` before the first run.
    pub fn notification_status(&self) -> Result<Option<NotificationStatus>, SyncError> {
        Ok(self
            .state
            .get(NOTIFICATIONS_KEY)?
            .and_then(|t| serde_json::from_str(&t).ok()))
    }
}
