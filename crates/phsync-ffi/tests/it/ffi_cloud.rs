//! The tenant's C ABI, called as C would call it.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use phsync::*;
use phsync_testkit::tenant::TempDir;

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

unsafe fn take_json(p: *mut c_char) -> serde_json::Value {
    assert!(!p.is_null());
    let v = serde_json::from_str(CStr::from_ptr(p).to_str().unwrap()).unwrap();
    phs_string_free(p);
    v
}

fn last_error() -> String {
    let mut buf = vec![0 as c_char; 512];
    unsafe {
        phs_last_error_message(buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

#[test]
fn set_password_and_sign_in_through_the_c_abi() {
    let dir = TempDir::new("ffi-cloud");
    let path = CString::new(dir.0.join("t.db").to_str().unwrap()).unwrap();
    unsafe {
        let mut cloud = ptr::null_mut();
        assert_eq!(phs_cloud_open(path.as_ptr(), &mut cloud), PHS_OK);
        // Users come from the CLI or the engine; add one through the Rust API on the same file.
        phsync_tenant::open(path.to_str().unwrap(), "test")
            .unwrap()
            .add_cloud_user("erin@phs.test", None)
            .unwrap();
        let upn = CString::new("erin@phs.test").unwrap();
        let pw = utf16("Cloud-Passw0rd!");
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_set_cloud_password(
                cloud,
                upn.as_ptr(),
                pw.as_ptr(),
                pw.len(),
                PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN,
                &mut json
            ),
            PHS_OK,
            "{}",
            last_error()
        );
        let v = take_json(json);
        assert_eq!(v["result"], "applied");
        assert_eq!(v["force_change_at_next_sign_in"], true);

        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_sign_in(cloud, upn.as_ptr(), pw.as_ptr(), pw.len(), &mut json),
            PHS_OK
        );
        assert_eq!(take_json(json)["result"], "must_change_password");

        let new = utf16("Second-Passw0rd!");
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_change_password(
                cloud,
                upn.as_ptr(),
                pw.as_ptr(),
                pw.len(),
                new.as_ptr(),
                new.len(),
                &mut json
            ),
            PHS_OK
        );
        assert_eq!(take_json(json)["result"], "success");
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_sign_in(cloud, upn.as_ptr(), new.as_ptr(), new.len(), &mut json),
            PHS_OK
        );
        let v = take_json(json);
        assert_eq!(v["result"], "success");
        assert!(v["session_token"].is_string());

        let wrong = utf16("wrong");
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_sign_in(cloud, upn.as_ptr(), wrong.as_ptr(), wrong.len(), &mut json),
            PHS_OK
        );
        assert_eq!(take_json(json)["result"], "invalid_credentials");

        let mut json = ptr::null_mut();
        assert_eq!(phs_cloud_user(cloud, upn.as_ptr(), &mut json), PHS_OK);
        let v = take_json(json);
        assert_eq!(v["user_principal_name"], "erin@phs.test");
        assert!(!v.to_string().contains("argon2"));

        // Errors: each its own code, with a message.
        let weak = utf16("weak");
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), weak.as_ptr(), weak.len(), 0, &mut json),
            PHS_E_PASSWORD_POLICY
        );
        assert!(json.is_null());
        assert!(last_error().contains("policy"));
        let ghost = CString::new("ghost@phs.test").unwrap();
        assert_eq!(
            phs_set_cloud_password(cloud, ghost.as_ptr(), pw.as_ptr(), pw.len(), 0, &mut json),
            PHS_E_NOT_FOUND
        );
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), pw.as_ptr(), pw.len(), 0x80, &mut json),
            PHS_E_INVALID_ARGUMENT
        );
        assert_eq!(
            phs_set_cloud_password(
                ptr::null_mut(),
                upn.as_ptr(),
                pw.as_ptr(),
                pw.len(),
                0,
                &mut json
            ),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(
            phs_set_cloud_password(cloud, ptr::null(), pw.as_ptr(), pw.len(), 0, &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), ptr::null(), 0, 0, &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(
            phs_set_cloud_password(
                cloud,
                upn.as_ptr(),
                pw.as_ptr(),
                pw.len(),
                0,
                ptr::null_mut()
            ),
            PHS_E_NULL_ARGUMENT
        );
        let lone = [0x41u16, 0xD800, 0x61, 0x31, 0x21, 0x42, 0x43, 0x44];
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), lone.as_ptr(), lone.len(), 0, &mut json),
            PHS_E_INVALID_PASSWORD
        );
        let long = vec![0x41u16; 513];
        assert_eq!(
            phs_cloud_sign_in(cloud, upn.as_ptr(), long.as_ptr(), long.len(), &mut json),
            PHS_E_PASSWORD_TOO_LONG
        );
        let bad_utf8 = b"\xff@phs.test\0";
        assert_eq!(
            phs_cloud_sign_in(
                cloud,
                bad_utf8.as_ptr().cast(),
                pw.as_ptr(),
                pw.len(),
                &mut json
            ),
            PHS_E_INVALID_UTF8
        );
        phs_cloud_free(cloud);
        phs_cloud_free(ptr::null_mut());
        phs_string_free(ptr::null_mut());

        let mut other = ptr::null_mut();
        let url = CString::new("ftp://nowhere").unwrap();
        assert_eq!(
            phs_cloud_open(url.as_ptr(), &mut other),
            PHS_E_INVALID_ARGUMENT
        );
        assert!(other.is_null());
        let missing = CString::new("/nonexistent-dir/t.db").unwrap();
        assert_eq!(phs_cloud_open(missing.as_ptr(), &mut other), PHS_E_STORAGE);
        assert!(last_error().contains("does not exist"), "{}", last_error());
        assert_eq!(
            phs_cloud_open(path.as_ptr(), ptr::null_mut()),
            PHS_E_NULL_ARGUMENT
        );
    }
}

#[test]
fn revoke_sessions_through_the_c_abi() {
    let dir = TempDir::new("ffi-revoke");
    let file = dir.0.join("t.db");
    let path = CString::new(file.to_str().unwrap()).unwrap();
    // The same file through the Rust API: to add the user and to check session tokens
    // (the C ABI has no session check).
    let rust = phsync_tenant::open(file.to_str().unwrap(), "test").unwrap();
    rust.add_cloud_user("frank@phs.test", None).unwrap();
    let upn = CString::new("frank@phs.test").unwrap();
    let pw = utf16("Revoke-Passw0rd!");
    unsafe {
        let mut cloud = ptr::null_mut();
        assert_eq!(phs_cloud_open(path.as_ptr(), &mut cloud), PHS_OK);
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), pw.as_ptr(), pw.len(), 0, &mut json),
            PHS_OK,
            "{}",
            last_error()
        );
        take_json(json);

        // Two sign-ins, two live sessions.
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let mut json = ptr::null_mut();
            assert_eq!(
                phs_cloud_sign_in(cloud, upn.as_ptr(), pw.as_ptr(), pw.len(), &mut json),
                PHS_OK
            );
            let v = take_json(json);
            assert_eq!(v["result"], "success");
            tokens.push(v["session_token"].as_str().unwrap().to_string());
        }
        for t in &tokens {
            let s = rust
                .validate_session(t)
                .unwrap()
                .expect("session live before revoke");
            assert_eq!(s.user_principal_name, "frank@phs.test");
        }

        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, upn.as_ptr(), &mut json),
            PHS_OK,
            "{}",
            last_error()
        );
        let v = take_json(json);
        assert_eq!(
            v,
            serde_json::json!({ "user_principal_name": "frank@phs.test", "revoked": 2 })
        );
        for t in &tokens {
            assert!(
                rust.validate_session(t).unwrap().is_none(),
                "revoked session still valid"
            );
        }
        // Nothing left: 0 is a success too.
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, upn.as_ptr(), &mut json),
            PHS_OK
        );
        assert_eq!(take_json(json)["revoked"], 0);
        // The password still signs in: only the sessions were ended.
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_sign_in(cloud, upn.as_ptr(), pw.as_ptr(), pw.len(), &mut json),
            PHS_OK
        );
        assert_eq!(take_json(json)["result"], "success");

        // Errors: each its status and a message; the output stays NULL.
        let ghost = CString::new("ghost@phs.test").unwrap();
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, ghost.as_ptr(), &mut json),
            PHS_E_NOT_FOUND
        );
        assert!(json.is_null());
        assert!(last_error().contains("ghost@phs.test"), "{}", last_error());
        let malformed = CString::new("no-at-sign").unwrap();
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, malformed.as_ptr(), &mut json),
            PHS_E_INVALID_ARGUMENT
        );
        assert!(json.is_null());
        assert_eq!(
            phs_cloud_revoke_sessions(ptr::null_mut(), upn.as_ptr(), &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert!(last_error().contains("cloud"), "{}", last_error());
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, ptr::null(), &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert!(last_error().contains("upn"), "{}", last_error());
        assert!(json.is_null());
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, upn.as_ptr(), ptr::null_mut()),
            PHS_E_NULL_ARGUMENT
        );
        assert!(last_error().contains("out_json"), "{}", last_error());
        let bad_utf8 = b"\xff@phs.test\0";
        assert_eq!(
            phs_cloud_revoke_sessions(cloud, bad_utf8.as_ptr().cast(), &mut json),
            PHS_E_INVALID_UTF8
        );
        assert!(json.is_null());
        phs_cloud_free(cloud);
    }
}

#[test]
fn a_remote_tenant_through_the_c_abi() {
    use phsync_tenant::TokenRole;
    use phsync_testkit::service::ServiceLab;
    let lab = ServiceLab::new("ffi-remote");
    let service = lab.serve();
    lab.admin(&service)
        .add_cloud_user("remote@phs.test", None)
        .unwrap();
    let url = CString::new(service.url.clone()).unwrap();
    let token = CString::new(lab.admin_token.to_str().unwrap()).unwrap();
    let ca = CString::new(lab.pki.ca_file.to_str().unwrap()).unwrap();
    let other_ca = CString::new(lab.pki.other_ca_file.to_str().unwrap()).unwrap();
    let bogus = lab.dir.0.join("bogus.token");
    phsync_tenant::private_file::write_private(&bogus, b"phs_0123456789abcdef_nope").unwrap();
    let bogus = CString::new(bogus.to_str().unwrap()).unwrap();
    let agent = lab.token(TokenRole::Agent, "a", Some("phs.test"), "agent.token");
    let agent = CString::new(agent.to_str().unwrap()).unwrap();
    unsafe {
        let mut cloud = ptr::null_mut();
        assert_eq!(
            phs_cloud_open_remote(url.as_ptr(), token.as_ptr(), ca.as_ptr(), &mut cloud),
            PHS_OK,
            "{}",
            last_error()
        );
        let upn = CString::new("remote@phs.test").unwrap();
        let pw = utf16("Far-Away-Passw0rd!");
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), pw.as_ptr(), pw.len(), 0, &mut json),
            PHS_OK,
            "{}",
            last_error()
        );
        assert_eq!(take_json(json)["result"], "applied");
        let weak = utf16("weak");
        assert_eq!(
            phs_set_cloud_password(cloud, upn.as_ptr(), weak.as_ptr(), weak.len(), 0, &mut json),
            PHS_E_PASSWORD_POLICY
        );
        phs_cloud_free(cloud);

        // The service's answers become the usual status codes, with messages.
        let mut c = ptr::null_mut();
        assert_eq!(
            phs_cloud_open_remote(url.as_ptr(), bogus.as_ptr(), ca.as_ptr(), &mut c),
            PHS_E_ACCESS_DENIED
        );
        assert!(c.is_null());
        assert!(
            last_error().contains("invalid or revoked"),
            "{}",
            last_error()
        );
        assert_eq!(
            phs_cloud_open_remote(url.as_ptr(), token.as_ptr(), other_ca.as_ptr(), &mut c),
            PHS_E_UNREACHABLE
        );
        assert_eq!(
            phs_cloud_open_remote(url.as_ptr(), ptr::null(), ca.as_ptr(), &mut c),
            PHS_E_NULL_ARGUMENT
        );
        let file = CString::new("/tmp/x.db").unwrap();
        assert_eq!(
            phs_cloud_open_remote(file.as_ptr(), token.as_ptr(), ptr::null(), &mut c),
            PHS_E_INVALID_ARGUMENT
        );
        // An agent token may not reset passwords.
        assert_eq!(
            phs_cloud_open_remote(url.as_ptr(), agent.as_ptr(), ca.as_ptr(), &mut c),
            PHS_OK
        );
        assert_eq!(
            phs_set_cloud_password(c, upn.as_ptr(), pw.as_ptr(), pw.len(), 0, &mut json),
            PHS_E_ACCESS_DENIED
        );
        phs_cloud_free(c);
        // A stopped service is unreachable, not a crash.
        drop(service);
        assert_eq!(
            phs_cloud_open_remote(url.as_ptr(), token.as_ptr(), ca.as_ptr(), &mut c),
            PHS_E_UNREACHABLE
        );
        let name = CStr::from_ptr(phs_status_name(PHS_E_UNREACHABLE as i32));
        assert_eq!(name.to_str().unwrap(), "PHS_E_UNREACHABLE");
    }
}

/// Leaked-credentials marks (issue 18) through the C ABI, over a tenant file and
/// PostgreSQL: `phs_cloud_risks` lists them, `phs_cloud_user` carries them; no hash.
#[test]
fn risks_through_the_c_abi() {
    use phsync_testkit::tenant::{digest_of, provision, sync_leaked, TestDatabase, T0};
    let dir = TempDir::new("ffi-risk");
    let db = TestDatabase::new("ffi_risk");
    for target in [dir.0.join("t.db").display().to_string(), db.url.clone()] {
        let tenant = phsync_tenant::open(&target, "test").unwrap();
        provision(tenant.as_ref(), "Umlzaw==", "risky@phs.test");
        let digest = sync_leaked(tenant.as_ref(), "Umlzaw==", "Summer2024!", None);
        let path = CString::new(target.as_str()).unwrap();
        unsafe {
            let mut cloud = ptr::null_mut();
            assert_eq!(phs_cloud_open(path.as_ptr(), &mut cloud), PHS_OK);
            let mut json = ptr::null_mut();
            assert_eq!(
                phs_cloud_risks(cloud, &mut json),
                PHS_OK,
                "{}",
                last_error()
            );
            let text = CStr::from_ptr(json).to_str().unwrap().to_string();
            assert!(!text.contains(digest.as_str()));
            let v = take_json(json);
            let risks = v["risks"].as_array().unwrap();
            assert_eq!(risks.len(), 1, "{v}");
            assert_eq!(risks[0]["user_principal_name"], "risky@phs.test");
            assert_eq!(risks[0]["kind"], "leaked_credentials");
            assert_eq!(risks[0]["breach_count"], serde_json::Value::Null);
            assert!(risks[0]["detected_at"].is_string());

            let upn = CString::new("risky@phs.test").unwrap();
            let mut json = ptr::null_mut();
            assert_eq!(phs_cloud_user(cloud, upn.as_ptr(), &mut json), PHS_OK);
            let v = take_json(json);
            assert_eq!(v["risks"][0]["kind"], "leaked_credentials");

            // A clean on-prem change clears it: an empty list, still PHS_OK.
            tenant
                .apply_synced_credential(&phsync_tenant::SyncedCredential {
                    source_anchor: "Umlzaw==".into(),
                    digest: digest_of("Unlisted-Long-2"),
                    changed_at: T0.plus_seconds(1),
                    force_change_at_next_sign_in: false,
                    leak_check: Some(phsync_tenant::LeakCheck::clean()),
                })
                .unwrap();
            let mut json = ptr::null_mut();
            assert_eq!(phs_cloud_risks(cloud, &mut json), PHS_OK);
            assert_eq!(take_json(json)["risks"], serde_json::json!([]));
            // Errors leave the output NULL with a message.
            let mut json = ptr::null_mut();
            assert_eq!(
                phs_cloud_risks(ptr::null_mut(), &mut json),
                PHS_E_NULL_ARGUMENT
            );
            assert!(json.is_null());
            assert_eq!(phs_cloud_risks(cloud, ptr::null_mut()), PHS_E_NULL_ARGUMENT);
            assert!(last_error().contains("out_json"), "{}", last_error());
            phs_cloud_free(cloud);
        }
    }
}
