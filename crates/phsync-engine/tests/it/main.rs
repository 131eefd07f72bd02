//! Integration tests of phsync-engine (one binary: see the README's Tests section).

mod sync_engine;
