//! `phs_audit` against the lab DC: the same findings as `phsync audit`, errors as statuses
//! with messages, outputs defined on every path, and no hash in the JSON or the messages.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use phsync::*;
use phsync_testkit::audit_fixture::{AuditFixture, ADMIN_BREACH_COUNT};

unsafe fn take(p: *mut c_char) -> String {
    let s = CStr::from_ptr(p).to_str().unwrap().to_owned();
    phs_string_free(p);
    s
}

fn last_error() -> String {
    let mut msg = vec![0 as c_char; 1024];
    unsafe {
        phs_last_error_message(msg.as_mut_ptr(), msg.len());
        CStr::from_ptr(msg.as_ptr()).to_string_lossy().into_owned()
    }
}

fn cstr(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

#[test]
fn phs_audit_reports_the_seeded_findings_and_fails_cleanly() {
    let f = AuditFixture::new("i18a-cabi");
    let config = cstr(&f.sync.config);
    let leaked = cstr(&f.leaked);
    let weak = cstr(&f.weak);
    unsafe {
        let mut json: *mut c_char = ptr::null_mut();
        let status = phs_audit(
            config.as_ptr(),
            leaked.as_ptr(),
            weak.as_ptr(),
            false,
            &mut json,
        );
        assert_eq!(status, PHS_OK, "{}", last_error());
        let text = take(json);
        f.assert_no_hash("phs_audit JSON", &text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["accounts_audited"], 10);
        for (finding, want) in &f.expected {
            let entry = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["finding"] == *finding)
                .unwrap();
            let mut got: Vec<String> = entry["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["sam_account_name"].as_str().unwrap().to_owned())
                .collect();
            got.sort_by_key(|s| s.to_lowercase());
            assert_eq!(&got, want, "{finding}");
            if *finding == "leaked_password" {
                assert_eq!(entry["accounts"][0]["breach_count"], ADMIN_BREACH_COUNT);
            }
        }

        // Errors: a status, a message naming the problem, *out_json NULL.
        let missing = CString::new("/nonexistent/i18a/leaked.txt").unwrap();
        let mut json: *mut c_char = std::ptr::dangling_mut::<c_char>();
        let status = phs_audit(
            config.as_ptr(),
            missing.as_ptr(),
            ptr::null(),
            false,
            &mut json,
        );
        assert_eq!(status, PHS_E_INVALID_ARGUMENT);
        assert!(json.is_null());
        assert!(
            last_error().contains("/nonexistent/i18a/leaked.txt"),
            "{}",
            last_error()
        );

        let no_config = CString::new("/nonexistent/i18a/phsync.toml").unwrap();
        let mut json: *mut c_char = std::ptr::dangling_mut::<c_char>();
        let status = phs_audit(
            no_config.as_ptr(),
            ptr::null(),
            ptr::null(),
            false,
            &mut json,
        );
        assert_eq!(status, PHS_E_CONFIG);
        assert!(json.is_null());

        let mut json: *mut c_char = std::ptr::dangling_mut::<c_char>();
        assert_eq!(
            phs_audit(ptr::null(), ptr::null(), ptr::null(), false, &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert!(json.is_null());
        assert_eq!(
            phs_audit(
                config.as_ptr(),
                ptr::null(),
                ptr::null(),
                false,
                ptr::null_mut()
            ),
            PHS_E_NULL_ARGUMENT
        );
    }
}
