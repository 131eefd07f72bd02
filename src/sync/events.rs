//! The sync event log: JSON lines in the state directory with Microsoft's "Directory
//! Synchronization" event IDs, mirrored to `tracing`. Rotated by size so it can be kept far
//! longer than the Windows event log. Events name users and statuses, never a secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::cloud::Timestamp;

/// Microsoft's event IDs (phs-spec.md §3).
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
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

pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    lock: Mutex<()>,
}

impl EventLog {
    /// `events.jsonl` in `dir`, rotated to `events.jsonl.1` ... `.N` past `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        crate::private_file::ensure_private_dir(dir)?;
        let path = dir.join("events.jsonl");
        crate::private_file::ensure_private_file(&path)?;
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
        crate::private_file::ensure_private_file(&self.path)
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
