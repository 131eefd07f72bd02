//! Reading secrets from stdin without leaving copies behind in std's buffers.

use std::io::Read;

use zeroize::{Zeroize, Zeroizing};

/// Longest line accepted; a password of 512 UTF-16 units needs at most 2048 UTF-8 bytes.
const MAX_LINE: usize = 4096;

/// Unbuffered stdin on Unix, so the only copy of the secret is the zeroized one we own.
#[cfg(unix)]
fn stdin_reader() -> std::mem::ManuallyDrop<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: fd 0 is open for the life of the process; ManuallyDrop never closes it.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) })
}

#[cfg(not(unix))]
fn stdin_reader() -> std::io::Stdin {
    std::io::stdin()
}

/// Read `count` secret lines from stdin (newline and a preceding CR stripped). Running out
/// of input before any byte of a line is an error: an absent password is not the empty one.
pub fn read_secret_lines(count: usize, what: &[&str]) -> Result<Vec<Zeroizing<String>>, String> {
    let mut reader = stdin_reader();
    let mut lines = Vec::with_capacity(count);
    for i in 0..count {
        let name = what.get(i).copied().unwrap_or("secret");
        let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE + 1));
        let mut byte = [0u8; 1];
        let mut saw_newline = false;
        loop {
            match reader.read(&mut byte) {
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => {
                    saw_newline = true;
                    break;
                }
                Ok(_) => {
                    if line.len() == MAX_LINE {
                        return Err(format!(
                            "the {name} on stdin is longer than {MAX_LINE} bytes"
                        ));
                    }
                    line.push(byte[0]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot read the {name} from stdin: {e}")),
            }
        }
        byte.zeroize();
        if line.is_empty() && !saw_newline {
            return Err(format!(
                "no {name} on stdin (pipe it in, one line; an empty line is the empty password)"
            ));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8(std::mem::take(&mut *line)).map_err(|e| {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            format!("the {name} on stdin is not valid UTF-8")
        })?;
        lines.push(Zeroizing::new(text));
    }
    Ok(lines)
}

/// One secret line: the common case.
pub fn read_secret_line(what: &str) -> Result<Zeroizing<String>, String> {
    Ok(read_secret_lines(1, &[what])?.remove(0))
}
