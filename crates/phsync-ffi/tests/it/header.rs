//! The committed C header must be exactly what cbindgen generates from the code.

#[test]
fn committed_header_is_up_to_date() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/phsync.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../include/phsync.h");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/phsync.h is out of date with crates/phsync-ffi/src.\n\
         Regenerate it with:  PHSYNC_BLESS_HEADER=1 cargo build -p phsync-ffi\n\
         and commit the result."
    );
}
