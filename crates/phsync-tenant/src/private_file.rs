//! Files that hold secrets or sync state: created 0600 before anything is written, and
//! tightened if an existing one is more open than that. A symbolic link in the file's place
//! is refused, not followed: whoever can plant one must not redirect a secret or truncate a
//! file of their choosing.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Refuse a path whose last component is a symbolic link, before anything opens it.
pub fn refuse_symlink(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_refused(path)),
        _ => Ok(()),
    }
}

/// The error for a file path that is a symbolic link.
fn symlink_refused(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link; refusing to follow it",
            path.display()
        ),
    )
}

/// Say so when an open failed because the last component is a symbolic link (ELOOP on
/// Linux, EMLINK on some BSDs: ask the file system rather than the errno).
fn explain(path: &Path, e: std::io::Error) -> std::io::Error {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => symlink_refused(path),
        _ => e,
    }
}

/// Open (creating it 0600 if missing) the file at `path` for writing, never through a
/// symbolic link, and make sure it is a regular file its owner alone can read.
#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted in the file's place must not hang the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| explain(path, e))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    // Exactly 0600 whatever the umask (or an older, more open file) made of it.
    if meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(symlink_refused(path));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .open(path)
}

/// Make sure `path` exists as a regular file readable by its owner only.
pub fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    open_private(path).map(drop)
}

/// Create a directory (and parents) that only its owner can enter: every directory created
/// here is 0700 from the start, whatever the umask.
pub fn ensure_private_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path)?;
    Ok(())
}

/// Write `contents` to a private (0600) file, replacing what was there.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = open_private(path)?;
    file.set_len(0)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn symbolic_links_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for p in [&link, &dangling] {
            for e in [
                ensure_private_file(p).unwrap_err(),
                write_private(p, b"secret").unwrap_err(),
            ] {
                assert!(
                    e.to_string()
                        .contains("is a symbolic link; refusing to follow it"),
                    "{e}"
                );
            }
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(mode(&victim), 0o644, "the link's target was touched");
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn files_are_0600_and_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_private(&p, b"a longer first text").unwrap();
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        write_private(&p, b"short").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"short");
        assert_eq!(mode(&p), 0o600);
        let d = dir.path().join("a/b/c");
        ensure_private_dir(&d).unwrap();
        for sub in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&dir.path().join(sub)), 0o700, "{sub}");
        }
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(ensure_private_file(&fifo).is_err(), "a FIFO accepted");
    }
}
