//! The sync event log: JSON lines in the state directory with Microsoft's "Directory
//! Synchronization" event IDs, mirrored to `tracing`. Rotated by size so it can be kept far
//! longer than the Windows event log. Events name users and statuses, never a secret.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use phsync_tenant::Timestamp;

/// Microsoft's event IDs (phs-spec.md §3), and phsync's own in 690-699.
pub mod id {
    pub const START: u16 = 601;
    pub const STOP: u16 = 602;
    pub const UNEXPECTED_ERROR: u16 = 603;
    pub const RETRY_QUEUE_ADD: u16 = 605;
    pub const RETRY_QUEUE_REMOVE: u16 = 606;
    pub const DOMAIN_SYNC_ERROR: u16 = 611;
    pub const FULL_SYNC_STARTED: u16 = 617;
    pub const FULL_SYNC_STARTED_DOMAIN: u16 = 618;
    pub const PROGRESS: u16 = 619;
    pub const NO_RETRY: u16 = 620;
    pub const FULL_SYNC_FAILED: u16 = 621;
    pub const FULL_SYNC_DONE_DOMAIN: u16 = 622;
    pub const FULL_SYNC_DONE: u16 = 623;
    pub const BATCH_START: u16 = 650;
    pub const BATCH_END: u16 = 651;
    pub const SYNC_ERROR: u16 = 652;
    pub const HEARTBEAT: u16 = 654;
    pub const SYNC_REQUEST: u16 = 656;
    pub const SYNC_RESPONSE: u16 = 657;
    pub const OBJECT_FAILED: u16 = 664;
    pub const CYCLE_STATE_NOT_STORED: u16 = 665;
    pub const MD5_UNAVAILABLE: u16 = 667;

    // phsync's own (Microsoft's "Directory Synchronization" source uses none of 690-699):
    // the change source of `phsync run` (`[sync] notifications = true`): the DC's change
    // notifications, or DirSync where the DC refuses them; each event names it (`source`).
    /// The change source is open (the notification search, or DirSync's first poll):
    /// changes sync within seconds.
    pub const NOTIFICATIONS_CONNECTED: u16 = 690;
    /// The change source's connection dropped (or could not be opened): reconnecting with
    /// backoff, polling every `interval_seconds` meanwhile.
    pub const NOTIFICATIONS_LOST: u16 = 691;
    /// The change source is back after a loss; a catch-up cycle runs from the stored cursor.
    pub const NOTIFICATIONS_RESUMED: u16 = 692;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: Timestamp,
    pub event_id: u16,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

/// The event log's file name in the state directory; rotated files add `.1` (newest) ... `.N`.
pub const FILE_NAME: &str = "events.jsonl";

/// An event as read back from the log: what [`Event`] wrote, with `data` always present
/// (`null` when the event had none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub at: Timestamp,
    pub event_id: u16,
    pub level: Level,
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Which events [`read_events`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only these event IDs; empty: any.
    pub ids: Vec<u16>,
    /// Only events strictly after this instant (Unix milliseconds); `None`: no lower bound.
    pub after_unix_ms: Option<i64>,
    /// Only the newest this many, after the other filters; 0: all.
    pub newest: usize,
}

impl EventQuery {
    fn matches(&self, e: &LoggedEvent) -> bool {
        (self.ids.is_empty() || self.ids.contains(&e.event_id))
            && self
                .after_unix_ms
                .is_none_or(|ms| i128::from(e.at.unix_micros()) > i128::from(ms) * 1000)
    }
}

/// The event log in `dir` (`events.jsonl` and its rotated files), oldest first, filtered by
/// `query`. Reads the files only (no engine, no tenant): a missing directory or log is no
/// events. Lines that are not events (a write cut short by a crash, a foreign line) are
/// skipped and counted in a warning.
pub fn read_events(dir: &Path, query: &EventQuery) -> std::io::Result<Vec<LoggedEvent>> {
    // Oldest first: the highest-numbered rotated file, ..., events.jsonl.1, events.jsonl.
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let Some(n) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix(FILE_NAME)?.strip_prefix('.'))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                rotated.push((n, entry.path()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    rotated.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let files = rotated
        .into_iter()
        .map(|(_, p)| p)
        .chain(std::iter::once(dir.join(FILE_NAME)));
    let mut out: VecDeque<LoggedEvent> = VecDeque::new();
    let mut unparseable = 0u64;
    for path in files {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Rotated away since the listing, or no log yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).split(b'\n') {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(event) = serde_json::from_slice::<LoggedEvent>(&line) else {
                unparseable += 1;
                continue;
            };
            if !query.matches(&event) {
                continue;
            }
            out.push_back(event);
            if query.newest > 0 && out.len() > query.newest {
                out.pop_front();
            }
        }
    }
    if unparseable > 0 {
        tracing::warn!(
            "skipped {unparseable} unparseable line(s) in the event log in {}",
            dir.display()
        );
    }
    Ok(out.into())
}

/// The events of the engine configured in `config_path`, from its `[state]` directory, as
/// [`read_events`] does. Only the config is read (no engine, tenant or DC); no `[state]`
/// section, directory or log yet is no events.
pub fn read_configured_events(
    config_path: &Path,
    query: &EventQuery,
) -> Result<Vec<LoggedEvent>, super::SyncError> {
    let config = crate::config::Config::load(config_path)?;
    let Some(state) = &config.state else {
        return Ok(Vec::new());
    };
    read_events(&state.dir, query).map_err(|e| {
        super::SyncError::State(super::state::StateError {
            path: state.dir.join(FILE_NAME).display().to_string(),
            message: format!("cannot read the event log: {e}"),
        })
    })
}

pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    lock: Mutex<()>,
}

impl EventLog {
    /// `events.jsonl` in `dir`, rotated to `events.jsonl.1` ... `.N` past `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        phsync_tenant::private_file::ensure_private_dir(dir)?;
        let path = dir.join(FILE_NAME);
        phsync_tenant::private_file::ensure_private_file(&path)?;
        Ok(EventLog {
            path,
            max_bytes,
            keep: keep.max(1),
            lock: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        phsync_tenant::private_file::ensure_private_file(&self.path)
    }

    /// Append an event and mirror it to `tracing`. A failure to write the file is reported
    /// through `tracing` and returned; it never loses the event silently.
    pub fn emit(
        &self,
        event_id: u16,
        level: Level,
        message: impl Into<String>,
        data: serde_json::Value,
    ) -> std::io::Result<()> {
        let event = Event {
            at: Timestamp::now(),
            event_id,
            level,
            message: message.into(),
            data,
        };
        match level {
            Level::Info => tracing::info!(event_id, "{}", event.message),
            Level::Warning => tracing::warn!(event_id, "{}", event.message),
            Level::Error => tracing::error!(event_id, "{}", event.message),
        }
        let line = serde_json::to_string(&event).expect("events serialize") + "\n";
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| {
            if std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0) + line.len() as u64
                > self.max_bytes
            {
                self.rotate()?;
            }
            let mut f = OpenOptions::new().append(true).open(&self.path)?;
            f.write_all(line.as_bytes())
        })();
        if let Err(e) = &result {
            tracing::error!(
                event_id = id::CYCLE_STATE_NOT_STORED,
                "cannot write the event log {}: {e}",
                self.path.display()
            );
        }
        result
    }

    /// The newest `limit` events, newest last (current file, then rotated ones as needed).
    pub fn tail(&self, limit: usize) -> std::io::Result<Vec<serde_json::Value>> {
        let mut files = vec![self.path.clone()];
        files
            .extend((1..=self.keep).map(|n| PathBuf::from(format!("{}.{n}", self.path.display()))));
        let mut out: Vec<serde_json::Value> = Vec::new();
        for f in files {
            if out.len() >= limit {
                break;
            }
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            let mut events: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            events.append(&mut out);
            out = events;
        }
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("phsync-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = EventLog::open(&dir, 2_000, 3).unwrap();
        for i in 0..100 {
            log.emit(
                id::PROGRESS,
                Level::Info,
                format!("progress {i}"),
                serde_json::json!({ "n": i }),
            )
            .unwrap();
        }
        assert!(dir.join("events.jsonl.1").exists());
        assert!(dir.join("events.jsonl.3").exists());
        assert!(!dir.join("events.jsonl.4").exists());
        let tail = log.tail(5).unwrap();
        assert_eq!(tail.len(), 5);
        assert_eq!(tail[4]["message"], "progress 99");
        assert_eq!(tail[4]["event_id"], 619);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("events.jsonl"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
