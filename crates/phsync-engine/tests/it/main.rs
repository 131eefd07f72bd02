//! Integration tests of phsync-engine (one binary: see the README's Tests section).

mod change_source;
mod leaked_e2e;
mod notify_run;
#[path = "../common/run.rs"]
mod run_common;
mod sync_engine;
