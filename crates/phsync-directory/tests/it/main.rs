//! Integration tests of phsync-directory (one binary: see the README's Tests section).

mod capped;
mod directory;
mod dirsync;
mod notify;
