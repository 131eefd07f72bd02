//! Limits on what callers may store, checked before any storage or hashing, and the one
//! rendering of caller input that errors may carry.
//!
//! A hostile client sends names of any length and with any characters: these checks keep
//! megabyte names out of the stores, the audit log and the lockout table, and keep terminal
//! escapes and line breaks out of logs and messages.

use crate::{CloudError, CloudResult};

/// Active Directory's own limit on a user principal name.
pub const MAX_UPN_CHARS: usize = 1024;
/// Entra ID's limit on a display name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// Source anchors are base64 GUIDs (24 characters) in practice; other anchors (e.g.
/// ms-DS-ConsistencyGuid of another form) stay far below this.
pub const MAX_ANCHOR_CHARS: usize = 1024;
/// The most PBKDF2 iterations a synced digest may ask for. Azure AD Connect uses 1000 (100
/// before late 2016, phs-spec.md §1); the sender chooses the count and every sign-in pays
/// it, so a much higher one would let an agent make sign-ins arbitrarily expensive.
pub const MAX_DIGEST_ITERATIONS: u32 = 100_000;
/// How many characters of caller input an error message shows (see [`shown`]).
pub const SHOWN_CHARS: usize = 80;

/// Whether `s` has more than `max` characters, without counting past `max + 1` (a
/// megabyte string costs no more than a short one).
fn too_long(s: &str, max: usize) -> bool {
    // A char is at most 4 bytes: more than 4 * max bytes is too long for sure.
    s.len() > max && (s.len() > 4 * max || s.chars().nth(max).is_some())
}

/// Unicode general category Cc: C0 (including TAB, CR, LF, ESC), DEL and C1.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A user principal name: `name@domain`, at most [`MAX_UPN_CHARS`] characters, no control
/// characters, no whitespace.
pub fn check_upn(upn: &str) -> CloudResult<()> {
    let bad = |why| Err(CloudError::InvalidUpn(shown(upn), why));
    if too_long(upn, MAX_UPN_CHARS) {
        return bad("it is longer than 1024 characters");
    }
    if has_control(upn) {
        return bad("it contains control characters");
    }
    if upn.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    match upn.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => bad("it must have the form name@domain"),
    }
}

/// A display name: at most [`MAX_DISPLAY_NAME_CHARS`] characters, no control characters.
pub fn check_display_name(name: &str) -> CloudResult<()> {
    if too_long(name, MAX_DISPLAY_NAME_CHARS) {
        return Err(CloudError::InvalidArgument(format!(
            "the display name is longer than {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    if has_control(name) {
        return Err(CloudError::InvalidArgument(
            "the display name contains control characters".into(),
        ));
    }
    Ok(())
}

/// A source anchor: not empty, at most [`MAX_ANCHOR_CHARS`] characters, no control
/// characters.
pub fn check_anchor(anchor: &str) -> CloudResult<()> {
    if anchor.is_empty() {
        return Err(CloudError::InvalidArgument("source anchor is empty".into()));
    }
    if too_long(anchor, MAX_ANCHOR_CHARS) {
        return Err(CloudError::InvalidArgument(format!(
            "the source anchor is longer than {MAX_ANCHOR_CHARS} characters"
        )));
    }
    if has_control(anchor) {
        return Err(CloudError::InvalidArgument(
            "the source anchor contains control characters".into(),
        ));
    }
    Ok(())
}

/// Caller input as an error may show it: at most [`SHOWN_CHARS`] characters (cut on a
/// character boundary, "…" appended), control and other invisible characters escaped as
/// `\u{..}`, quotes and backslashes escaped, so a message quoting it stays one short,
/// printable line whatever the caller sent.
pub fn shown(s: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in s.chars() {
        let piece: String = if c.is_control() {
            format!("\\u{{{:x}}}", c as u32)
        } else if c == '\'' {
            c.to_string()
        } else {
            // Escapes `"` and `\`, and non-printable characters (bidi overrides, zero
            // widths) as \u{..}; printable text, including non-ASCII letters, stays.
            c.escape_debug().to_string()
        };
        let n = piece.chars().count();
        if count + n > SHOWN_CHARS {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        count += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upn_limits() {
        let local = "a".repeat(MAX_UPN_CHARS - "@x.test".len());
        assert!(check_upn(&format!("{local}@x.test")).is_ok());
        let e = check_upn(&format!("{local}a@x.test")).unwrap_err();
        assert!(matches!(
            e,
            CloudError::InvalidUpn(_, "it is longer than 1024 characters")
        ));
        // Multi-byte characters count as one each.
        let wide = "é".repeat(MAX_UPN_CHARS - 2);
        assert!(check_upn(&format!("{wide}@x")).is_ok());
        assert!(check_upn(&format!("{wide}é@x")).is_err());
        for bad in [
            "a\u{1b}[31m@x.test",
            "a\t@x.test",
            "a\r@x.test",
            "a\n@x.test",
            "a\u{7f}@x.test",
            "a\u{85}@x.test",
            "a\u{9b}@x.test",
            "a b@x.test",
            "a\u{a0}b@x.test",
            "no-at-sign",
            "@x.test",
            "a@",
            "a@b@c",
        ] {
            assert!(
                matches!(check_upn(bad), Err(CloudError::InvalidUpn(..))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_and_anchors() {
        assert!(check_display_name(&"d".repeat(256)).is_ok());
        assert!(check_display_name(&"d".repeat(257)).is_err());
        assert!(check_display_name("Ann\u{1b}[2J").is_err());
        assert!(check_display_name("Žofie Nováková").is_ok());
        assert!(check_anchor("").is_err());
        assert!(check_anchor(&"A".repeat(1024)).is_ok());
        assert!(check_anchor(&"A".repeat(1025)).is_err());
        assert!(check_anchor("QUFB\n").is_err());
    }

    #[test]
    fn shown_is_short_and_printable() {
        assert_eq!(shown("ann@x.test"), "ann@x.test");
        assert_eq!(
            shown("a\u{1b}[31m\r\n\u{9b}"),
            "a\\u{1b}[31m\\u{d}\\u{a}\\u{9b}"
        );
        assert_eq!(shown("say \"hi\"\\"), "say \\\"hi\\\"\\\\");
        assert_eq!(shown("rtl\u{202e}x"), "rtl\\u{202e}x");
        let long = shown(&"é".repeat(1_000_000));
        assert_eq!(long.chars().count(), SHOWN_CHARS + 1);
        assert!(long.ends_with('…'));
        // An escape is never cut in half.
        let escapes = shown(&"\u{1b}".repeat(100));
        assert!(
            escapes.trim_end_matches('…').ends_with("\\u{1b}"),
            "{escapes}"
        );
        assert!(escapes.chars().count() <= SHOWN_CHARS + 1);
    }
}
