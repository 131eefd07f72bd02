//! Integration tests of phsync-hash (one binary: see the README's Tests section).

mod hash_api;
mod hash_lanes;
mod hash_props;
