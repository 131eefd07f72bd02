use std::path::PathBuf;

use thiserror::Error;

/// Why an audit input was refused. Messages name the file and a byte offset, never the
/// content of a line: a line of a leaked list is a hash, and hashes are never printed.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("leaked-hash list {path} is empty")]
    LeakedListEmpty { path: PathBuf },
    #[error(
        "leaked-hash list {path}: line at byte {offset} is not an NT hash (32 hex digits, optionally ':COUNT'): {reason}"
    )]
    LeakedListFormat {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    #[error(
        "leaked-hash list {path} is not sorted by hash (near byte {offset}); binary search needs the \
         \"NTLM ordered by hash\" file, not the one ordered by prevalence, or a list sorted with `LC_ALL=C sort`"
    )]
    LeakedListUnsorted { path: PathBuf, offset: u64 },
    #[error("weak-password dictionary {path}, line {line}: {reason}")]
    WeakListFormat {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}
