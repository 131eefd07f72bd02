//! The weak-password dictionary: a text file of passwords, one per line, hashed at load.
//! Only the NT hashes are kept (sorted, deduplicated, zeroized on drop); each line buffer
//! is wiped as soon as it is hashed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use phsync_hash::{NtHash, MAX_PASSWORD_UTF16_UNITS, NT_HASH_LEN};
use zeroize::{Zeroize, Zeroizing};

use crate::AuditError;

/// Longest line kept, in bytes: every password AD accepts (256 characters, at most 4 bytes
/// each in UTF-8) fits; longer lines are skipped without being read into memory whole.
const MAX_LINE_BYTES: usize = 4 * MAX_PASSWORD_UTF16_UNITS;

/// NT hashes of a dictionary's passwords.
pub struct WeakPasswords {
    hashes: Vec<[u8; NT_HASH_LEN]>,
    lines: u64,
    skipped: u64,
}

impl WeakPasswords {
    /// Read and hash `path`: UTF-8, one password per line, LF or CRLF, an optional BOM.
    /// Empty lines are ignored (the empty password is its own finding); lines that are not
    /// UTF-8 or longer than any AD password are skipped and counted, not fatal, so a
    /// dictionary with a few Latin-1 lines is still usable.
    pub fn load(path: &Path) -> Result<WeakPasswords, AuditError> {
        let file = File::open(path).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(file).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// [`Self::load`] over any reader.
    pub fn from_reader(reader: impl Read) -> std::io::Result<WeakPasswords> {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut out = WeakPasswords {
            hashes: Vec::new(),
            lines: 0,
            skipped: 0,
        };
        let mut line: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(MAX_LINE_BYTES + 2));
        let mut first = true;
        loop {
            line.clear();
            let (eof, too_long) = read_line_capped(&mut reader, &mut line)?;
            if eof && line.is_empty() {
                break;
            }
            let mut bytes: &[u8] = &line;
            if first {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                first = false;
            }
            bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            out.lines += 1;
            if too_long {
                out.skipped += 1;
            } else if !bytes.is_empty() {
                match NtHash::from_utf8(bytes) {
                    Ok(h) => out.hashes.push(*h.as_bytes()),
                    Err(_) => out.skipped += 1,
                }
            }
            if eof {
                break;
            }
        }
        out.hashes.sort_unstable();
        out.hashes.dedup();
        Ok(out)
    }

    /// Whether `nt` is the hash of a dictionary password.
    pub fn contains(&self, nt: &NtHash) -> bool {
        self.hashes.binary_search(nt.as_bytes()).is_ok()
    }

    /// Distinct passwords hashed.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Lines read, empty ones included.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Lines skipped: not UTF-8, or longer than any AD password.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Drop for WeakPasswords {
    fn drop(&mut self) {
        self.hashes.zeroize();
    }
}

impl std::fmt::Debug for WeakPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakPasswords")
            .field("passwords", &self.hashes.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Append the next line (without its `\n`) to `line`, keeping at most `MAX_LINE_BYTES + 1`
/// bytes; returns (end of input reached, line was longer than the cap). Consumed buffer
/// chunks are wiped by the caller's `Zeroizing` only for what was copied; `BufReader`'s
/// own buffer is overwritten by later reads.
fn read_line_capped(
    reader: &mut BufReader<impl Read>,
    line: &mut Zeroizing<Vec<u8>>,
) -> std::io::Result<(bool, bool)> {
    let mut too_long = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((true, too_long));
        }
        let (part, found) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i)),
            None => (chunk, None),
        };
        if !too_long {
            let room = MAX_LINE_BYTES + 1 - line.len();
            if part.len() > room {
                too_long = true;
                line.zeroize();
                line.clear();
            } else {
                line.extend_from_slice(part);
            }
        }
        match found {
            Some(i) => {
                reader.consume(i + 1);
                return Ok((false, too_long));
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nt(pw: &str) -> NtHash {
        NtHash::from_password(pw).unwrap()
    }

    #[test]
    fn bom_crlf_duplicates_empty_lines_and_unicode() {
        let text = "\u{FEFF}Summer2024\r\nSummer2024\n\nPässwörd1\r\n  spaced  \npassword";
        let w = WeakPasswords::from_reader(text.as_bytes()).unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(w.lines(), 6);
        assert_eq!(w.skipped(), 0);
        for pw in ["Summer2024", "Pässwörd1", "  spaced  ", "password"] {
            assert!(w.contains(&nt(pw)), "{pw}");
        }
        assert!(!w.contains(&nt("\u{FEFF}Summer2024")));
        assert!(!w.contains(&nt("Summer2024\r")));
        assert!(!w.contains(&nt("")));
        assert!(!w.contains(&nt("spaced")));
    }

    #[test]
    fn very_long_and_non_utf8_lines_are_skipped_and_counted() {
        let mut text = Vec::new();
        text.extend_from_slice(b"first\n");
        text.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
        text.extend_from_slice(b"\nlatin1-\xE9t\xE9\nlast\n");
        let w = WeakPasswords::from_reader(text.as_slice()).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w.skipped(), 2);
        assert!(w.contains(&nt("first")) && w.contains(&nt("last")));
        // A line of exactly the longest accepted length is kept.
        let max: String = "b".repeat(MAX_PASSWORD_UTF16_UNITS);
        let w = WeakPasswords::from_reader(format!("{max}\n").as_bytes()).unwrap();
        assert!(w.contains(&nt(&max)));
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = WeakPasswords::load(Path::new("/nonexistent/i18/weak.txt")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/i18/weak.txt"),
            "{err}"
        );
    }
}
