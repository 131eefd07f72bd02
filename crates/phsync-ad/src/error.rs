//! The one error type of this crate.

/// A value that is not a valid instance of the AD type it was parsed as.
///
/// One type for every parser here: callers only need "which type, what was wrong", never
/// to match on the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what}: {reason}")]
pub struct ParseError {
    /// The type being parsed (`GUID`, `SID`, `FILETIME`, `GeneralizedTime`).
    pub what: &'static str,
    /// Why it was rejected.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        ParseError {
            what,
            reason: reason.into(),
        }
    }
}
