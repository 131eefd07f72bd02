//! Integration tests of phsync-engine (one binary: see the README's Tests section).

mod notify_run;
mod sync_engine;
