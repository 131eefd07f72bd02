//! Integration tests of phsync-drsr (one binary: see the README's Tests section).

mod drsr;
