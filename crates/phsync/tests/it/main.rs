//! Integration tests of phsync (one binary: see the README's Tests section).

mod cli_audit;
mod cli_cloud;
mod cli_directory;
mod cli_drsr;
mod cli_hash;
#[cfg(unix)]
mod cli_hostile;
#[cfg(unix)]
mod cli_run_status;
