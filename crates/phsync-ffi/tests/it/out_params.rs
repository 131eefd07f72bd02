//! Outputs are defined on every path: each export writes its out-parameters (NULL, false,
//! zeros, the empty string) before any check that can fail. Each case pre-sets the output
//! to something else, so an export that returns early without writing it fails here.
//! None of these need a domain controller.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{self, NonNull};

use phsync::*;
use phsync_testkit::tenant::TempDir;
use phsync_testkit::vectors::DIGEST_VECTORS;

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// A digest and the password it was made from.
fn good() -> (CString, &'static str) {
    let (pw, _, _, digest) = DIGEST_VECTORS[0];
    (CString::new(digest).unwrap(), pw)
}

/// A NUL-terminated digest string that is not UTF-8.
const NOT_UTF8_DIGEST: &[u8] = b"v1;PPH1_MD4,\xff\0";
/// One unit over the 512 UTF-16 code unit limit.
fn too_long() -> String {
    "a".repeat(513)
}

/// Call `f` with `*out_match` pre-set to true; it must fail with `want` and leave false.
fn verify_fails(what: &str, want: phs_status, f: impl FnOnce(*mut bool) -> phs_status) {
    let mut matched = true;
    let status = f(&mut matched);
    assert_eq!(status, want, "{what}");
    assert!(!matched, "{what}: *out_match left true after {status:?}");
}

#[test]
fn verify_leaves_no_match_on_every_error() {
    let (digest, pw) = good();
    let pw16 = utf16(pw);
    let long = too_long();
    let long16 = utf16(&long);
    let mut nt = [0u8; 16];
    let malformed = CString::new("v1;PPH1_MD4,").unwrap();
    let not_utf8 = NOT_UTF8_DIGEST.as_ptr().cast::<c_char>();
    unsafe {
        // The controls: the digest and password are right, and a match is written.
        assert_eq!(
            phs_nt_hash_utf8(pw.as_ptr().cast(), pw.len(), nt.as_mut_ptr()),
            PHS_OK
        );
        let mut m = false;
        assert_eq!(
            phs_verify_utf8(digest.as_ptr(), pw.as_ptr().cast(), pw.len(), &mut m),
            PHS_OK
        );
        assert!(m, "utf8: the control password does not match");
        m = false;
        assert_eq!(
            phs_verify_utf16(digest.as_ptr(), pw16.as_ptr(), pw16.len(), &mut m),
            PHS_OK
        );
        assert!(m, "utf16: the control password does not match");
        m = false;
        assert_eq!(
            phs_verify_nt_hash(digest.as_ptr(), nt.as_ptr(), &mut m),
            PHS_OK
        );
        assert!(m, "nt: the control hash does not match");

        // phs_verify_utf8
        let p = pw.as_ptr().cast::<c_char>();
        verify_fails("utf8: malformed digest", PHS_E_MALFORMED_DIGEST, |m| {
            phs_verify_utf8(malformed.as_ptr(), p, pw.len(), m)
        });
        verify_fails("utf8: NULL digest", PHS_E_NULL_ARGUMENT, |m| {
            phs_verify_utf8(ptr::null(), p, pw.len(), m)
        });
        verify_fails("utf8: NULL password", PHS_E_NULL_ARGUMENT, |m| {
            phs_verify_utf8(digest.as_ptr(), ptr::null(), 1, m)
        });
        verify_fails("utf8: digest not UTF-8", PHS_E_INVALID_UTF8, |m| {
            phs_verify_utf8(not_utf8, p, pw.len(), m)
        });
        verify_fails("utf8: password not UTF-8", PHS_E_INVALID_UTF8, |m| {
            phs_verify_utf8(digest.as_ptr(), c"\xc0\xaf".as_ptr(), 2, m)
        });
        verify_fails("utf8: password too long", PHS_E_PASSWORD_TOO_LONG, |m| {
            phs_verify_utf8(digest.as_ptr(), long.as_ptr().cast(), long.len(), m)
        });

        // phs_verify_utf16. Unpaired surrogates are not an error here: they are hashed as
        // they are, as AD does, so a digest can match them.
        let p16 = pw16.as_ptr();
        verify_fails("utf16: malformed digest", PHS_E_MALFORMED_DIGEST, |m| {
            phs_verify_utf16(malformed.as_ptr(), p16, pw16.len(), m)
        });
        verify_fails("utf16: NULL digest", PHS_E_NULL_ARGUMENT, |m| {
            phs_verify_utf16(ptr::null(), p16, pw16.len(), m)
        });
        verify_fails("utf16: NULL password", PHS_E_NULL_ARGUMENT, |m| {
            phs_verify_utf16(digest.as_ptr(), ptr::null(), 1, m)
        });
        verify_fails("utf16: digest not UTF-8", PHS_E_INVALID_UTF8, |m| {
            phs_verify_utf16(not_utf8, p16, pw16.len(), m)
        });
        verify_fails("utf16: password too long", PHS_E_PASSWORD_TOO_LONG, |m| {
            phs_verify_utf16(digest.as_ptr(), long16.as_ptr(), long16.len(), m)
        });
        let lone = [0xD800u16, b'a' as u16];
        let mut matched = true;
        assert_eq!(
            phs_verify_utf16(digest.as_ptr(), lone.as_ptr(), lone.len(), &mut matched),
            PHS_OK
        );
        assert!(
            !matched,
            "an unpaired surrogate matched another password's digest"
        );

        // phs_verify_nt_hash
        verify_fails("nt: malformed digest", PHS_E_MALFORMED_DIGEST, |m| {
            phs_verify_nt_hash(malformed.as_ptr(), nt.as_ptr(), m)
        });
        verify_fails("nt: NULL digest", PHS_E_NULL_ARGUMENT, |m| {
            phs_verify_nt_hash(ptr::null(), nt.as_ptr(), m)
        });
        verify_fails("nt: NULL hash", PHS_E_NULL_ARGUMENT, |m| {
            phs_verify_nt_hash(digest.as_ptr(), ptr::null(), m)
        });
        verify_fails("nt: digest not UTF-8", PHS_E_INVALID_UTF8, |m| {
            phs_verify_nt_hash(not_utf8, nt.as_ptr(), m)
        });
    }
}

#[test]
fn hash_and_digest_buffers_are_emptied_on_error() {
    unsafe {
        let mut nt = [0xAAu8; 16];
        assert_eq!(
            phs_nt_hash_utf8(c"\xff".as_ptr(), 1, nt.as_mut_ptr()),
            PHS_E_INVALID_UTF8
        );
        assert_eq!(nt, [0; 16], "utf8: out_hash not zeroed");
        nt = [0xAA; 16];
        assert_eq!(
            phs_nt_hash_utf8(ptr::null(), 0, nt.as_mut_ptr()),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(nt, [0; 16], "utf8 NULL password: out_hash not zeroed");
        nt = [0xAA; 16];
        let long16 = utf16(&too_long());
        assert_eq!(
            phs_nt_hash_utf16(long16.as_ptr(), long16.len(), nt.as_mut_ptr()),
            PHS_E_PASSWORD_TOO_LONG
        );
        assert_eq!(nt, [0; 16], "utf16: out_hash not zeroed");

        let hash = [1u8; 16];
        let mut out = [b'x' as c_char; PHS_DIGEST_STRING_CAPACITY];
        assert_eq!(
            phs_digest_from_nt_hash(ptr::null(), ptr::null(), 0, out.as_mut_ptr(), out.len()),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(out[0], 0, "NULL nt_hash: out not the empty string");
        out = [b'x' as c_char; PHS_DIGEST_STRING_CAPACITY];
        assert_eq!(
            phs_digest_from_nt_hash(hash.as_ptr(), ptr::null(), 0, out.as_mut_ptr(), 10),
            PHS_E_BUFFER_TOO_SMALL
        );
        assert_eq!(out[0], 0, "small buffer: out not the empty string");
        assert_eq!(out[1], b'x' as c_char, "wrote past the empty string");
        out = [b'x' as c_char; PHS_DIGEST_STRING_CAPACITY];
        assert_eq!(
            phs_digest_from_nt_hash(hash.as_ptr(), ptr::null(), 2_000_000, out.as_mut_ptr(), 128),
            PHS_E_INVALID_ARGUMENT
        );
        assert_eq!(out[0], 0, "bad iterations: out not the empty string");
        // Capacity 0: nothing may be written at all.
        out = [b'x' as c_char; PHS_DIGEST_STRING_CAPACITY];
        assert_eq!(
            phs_digest_from_nt_hash(hash.as_ptr(), ptr::null(), 0, out.as_mut_ptr(), 0),
            PHS_E_BUFFER_TOO_SMALL
        );
        assert_eq!(out[0], b'x' as c_char);
    }
}

/// Call `f` with `*out` pre-set to a non-NULL pointer (never dereferenced); it must fail
/// with `want` and leave `*out` NULL.
fn out_fails<T>(what: &str, want: phs_status, f: impl FnOnce(*mut *mut T) -> phs_status) {
    let mut out: *mut T = NonNull::dangling().as_ptr();
    let status = f(&mut out);
    assert_eq!(status, want, "{what}: {}", last_error());
    assert!(out.is_null(), "{what}: *out left {out:p} after {status:?}");
}

fn last_error() -> String {
    let mut buf = vec![0 as c_char; 512];
    unsafe {
        phs_last_error_message(buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

#[test]
fn handle_and_json_outputs_are_null_on_error() {
    let dir = TempDir::new("ffi-out");
    let path = CString::new(dir.0.join("t.db").to_str().unwrap()).unwrap();
    let missing_dir = CString::new("/nonexistent-dir/t.db").unwrap();
    let missing_config = CString::new(dir.0.join("missing.toml").to_str().unwrap()).unwrap();
    let not_utf8 = NOT_UTF8_DIGEST.as_ptr().cast::<c_char>();
    let http = c"http://127.0.0.1:1";
    let token = c"/nonexistent/token";
    let upn = c"nobody@phs.test";
    let pw = utf16("Cloud-Passw0rd!");
    unsafe {
        // Opening.
        out_fails("cloud_open NULL", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_open(ptr::null(), o)
        });
        out_fails("cloud_open not UTF-8", PHS_E_INVALID_UTF8, |o| {
            phs_cloud_open(not_utf8, o)
        });
        out_fails("cloud_open missing dir", PHS_E_STORAGE, |o| {
            phs_cloud_open(missing_dir.as_ptr(), o)
        });
        out_fails("cloud_open_remote NULL url", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_open_remote(ptr::null(), token.as_ptr(), ptr::null(), o)
        });
        out_fails("cloud_open_remote NULL token", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_open_remote(http.as_ptr(), ptr::null(), ptr::null(), o)
        });
        out_fails("cloud_open_remote http", PHS_E_INVALID_ARGUMENT, |o| {
            phs_cloud_open_remote(http.as_ptr(), token.as_ptr(), ptr::null(), o)
        });
        out_fails("engine_open NULL", PHS_E_NULL_ARGUMENT, |o| {
            phs_engine_open(ptr::null(), o)
        });
        out_fails("engine_open missing config", PHS_E_CONFIG, |o| {
            phs_engine_open(missing_config.as_ptr(), o)
        });

        // The tenant's JSON results.
        let mut cloud = ptr::null_mut();
        assert_eq!(phs_cloud_open(path.as_ptr(), &mut cloud), PHS_OK);
        let (p, n) = (pw.as_ptr(), pw.len());
        out_fails("set_password NULL cloud", PHS_E_NULL_ARGUMENT, |o| {
            phs_set_cloud_password(ptr::null_mut(), upn.as_ptr(), p, n, 0, o)
        });
        out_fails("set_password NULL upn", PHS_E_NULL_ARGUMENT, |o| {
            phs_set_cloud_password(cloud, ptr::null(), p, n, 0, o)
        });
        out_fails("set_password NULL password", PHS_E_NULL_ARGUMENT, |o| {
            phs_set_cloud_password(cloud, upn.as_ptr(), ptr::null(), n, 0, o)
        });
        out_fails("set_password flags", PHS_E_INVALID_ARGUMENT, |o| {
            phs_set_cloud_password(cloud, upn.as_ptr(), p, n, 0x80, o)
        });
        out_fails("set_password no user", PHS_E_NOT_FOUND, |o| {
            phs_set_cloud_password(cloud, upn.as_ptr(), p, n, 0, o)
        });
        out_fails("sign_in NULL cloud", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_sign_in(ptr::null_mut(), upn.as_ptr(), p, n, o)
        });
        out_fails("sign_in upn not UTF-8", PHS_E_INVALID_UTF8, |o| {
            phs_cloud_sign_in(cloud, not_utf8, p, n, o)
        });
        out_fails("change_password NULL cloud", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_change_password(ptr::null_mut(), upn.as_ptr(), p, n, p, n, o)
        });
        out_fails("change_password NULL new", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_change_password(cloud, upn.as_ptr(), p, n, ptr::null(), n, o)
        });
        out_fails("user NULL cloud", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_user(ptr::null_mut(), upn.as_ptr(), o)
        });
        out_fails("user NULL upn", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_user(cloud, ptr::null(), o)
        });
        out_fails("user absent", PHS_E_NOT_FOUND, |o| {
            phs_cloud_user(cloud, upn.as_ptr(), o)
        });
        out_fails("revoke_sessions NULL cloud", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_revoke_sessions(ptr::null_mut(), upn.as_ptr(), o)
        });
        out_fails("revoke_sessions NULL upn", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_revoke_sessions(cloud, ptr::null(), o)
        });
        out_fails("revoke_sessions absent", PHS_E_NOT_FOUND, |o| {
            phs_cloud_revoke_sessions(cloud, upn.as_ptr(), o)
        });
        out_fails("risks NULL cloud", PHS_E_NULL_ARGUMENT, |o| {
            phs_cloud_risks(ptr::null_mut(), o)
        });
        phs_cloud_free(cloud);

        // The engine's JSON results.
        let user = c"someone";
        out_fails("sync_cycle NULL engine", PHS_E_NULL_ARGUMENT, |o| {
            phs_sync_cycle(ptr::null_mut(), 0, None, ptr::null_mut(), o)
        });
        out_fails("sync_user NULL engine", PHS_E_NULL_ARGUMENT, |o| {
            phs_sync_user(ptr::null_mut(), user.as_ptr(), o)
        });
        out_fails("user_status NULL engine", PHS_E_NULL_ARGUMENT, |o| {
            phs_user_status(ptr::null_mut(), user.as_ptr(), o)
        });
        out_fails("sync_status NULL engine", PHS_E_NULL_ARGUMENT, |o| {
            phs_sync_status(ptr::null_mut(), o)
        });
        out_fails("check_connection NULL", PHS_E_NULL_ARGUMENT, |o| {
            phs_check_connection(ptr::null(), o)
        });
        out_fails("check_connection not UTF-8", PHS_E_INVALID_UTF8, |o| {
            phs_check_connection(not_utf8, o)
        });
        out_fails("events NULL", PHS_E_NULL_ARGUMENT, |o| {
            phs_events(ptr::null(), ptr::null(), 0, i64::MIN, 0, o)
        });
        out_fails("events missing config", PHS_E_CONFIG, |o| {
            phs_events(missing_config.as_ptr(), ptr::null(), 0, i64::MIN, 0, o)
        });
    }
}

#[test]
fn free_functions_accept_null() {
    unsafe {
        phs_string_free(ptr::null_mut());
        phs_cloud_free(ptr::null_mut());
        phs_engine_free(ptr::null_mut());
    }
}

/// A buffer too short for the message ends at a character boundary: what the caller gets
/// is valid UTF-8, never half of a multi-byte character.
#[test]
fn a_truncated_error_message_is_valid_utf8() {
    let path = CString::new("/nonexistent-dir-ü€😀/t.db").unwrap();
    unsafe {
        let mut cloud = ptr::null_mut();
        assert_eq!(phs_cloud_open(path.as_ptr(), &mut cloud), PHS_E_STORAGE);
        let full = last_error();
        let needed = phs_last_error_message(ptr::null_mut(), 0);
        assert_eq!(needed, full.len() + 1);
        for ch in ['ü', '€', '😀'] {
            let at = full.find(ch).expect("the path is in the message");
            // Room for the bytes before `ch` and 1..len-1 of its own bytes: each would
            // split it.
            for part in 1..ch.len_utf8() {
                let capacity = at + part + 1;
                let mut buf = vec![0x7f as c_char; capacity + 8];
                assert_eq!(phs_last_error_message(buf.as_mut_ptr(), capacity), needed);
                let got = CStr::from_ptr(buf.as_ptr()).to_bytes();
                assert!(got.len() < capacity, "written past the capacity");
                let got = std::str::from_utf8(got).expect("a split character");
                assert_eq!(
                    got,
                    &full[..at],
                    "cut for {ch:?} with {part} byte(s) of room"
                );
                assert_eq!(buf[capacity], 0x7f, "a byte written past the capacity");
            }
        }
    }
}
