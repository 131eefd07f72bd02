//! Integration tests of phsync-engine (one binary: see the README's Tests section).

mod leaked_e2e;
mod notify_run;
mod sync_engine;
