//! Files that hold secrets or sync state: created 0600 before anything is written, and
//! tightened if an existing one is more open than that.

use std::path::Path;

/// Make sure `path` exists as a regular file readable by its owner only.
pub fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::metadata(path)?;
                if !meta.is_file() {
                    return Err(std::io::Error::other("not a regular file"));
                }
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        if !path.exists() {
            std::fs::File::create(path)?;
        }
        Ok(())
    }
}

/// Create a directory (and parents) that only its owner can enter.
pub fn ensure_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Write `contents` to a private (0600) file, replacing what was there.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    ensure_private_file(path)?;
    std::fs::write(path, contents)
}
