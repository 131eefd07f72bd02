//! Issue 18's acceptance for leaked credentials, end to end: the lab DC, the MS-DRSR
//! client, the engine with `[audit] leaked_hashes` (an HIBP-format list the test writes)
//! and `block_leaked_sign_in = true`, and a tenant file. Users and OU are this test's own
//! (`risk` prefix).

use phsync_tenant::{SignInStatus, LEAKED_ACTION};
use phsync_testkit::leaked::write_hibp_list;
use phsync_testkit::sync_fixture::SyncFixture;

const LEAKED_PW: &str = "Summer-Leak-2024!";
const CLEAN_PW: &str = "Unlisted-Clean-7x!";
const NEW_PW: &str = "Fresh-Unlisted-9q!";

#[test]
fn a_leaked_synced_password_is_marked_blocked_and_cleared_by_an_onprem_change() {
    let f = SyncFixture::new(
        "risk",
        "\n[audit]\nleaked_hashes = \"pwned.txt\"\nblock_leaked_sign_in = true\n",
    );
    // The leaked user's NT hash among 900 others, with a breach count.
    write_hibp_list(&f.dir.0.join("pwned.txt"), &[(LEAKED_PW, 1234)], 900);
    let (leaky, clean) = (f.sam("riskleak"), f.sam("riskclean"));
    let (leaky_upn, clean_upn) = (f.ou.upn(&leaky), f.ou.upn(&clean));
    f.ou.add_user(&leaky, LEAKED_PW);
    f.ou.add_user(&clean, CLEAN_PW);

    let report = f.cycle(false);
    assert_eq!((report.mode, report.applied), ("full", 2), "{report:?}");
    let tenant = f.tenant();
    let marks = tenant.user(&leaky_upn).unwrap().unwrap().risks;
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(marks[0].breach_count, Some(1234));
    let detected = marks[0].detected_at;
    assert!(tenant.user(&clean_upn).unwrap().unwrap().risks.is_empty());
    // Blocking: the leaked password signs in only to be changed; the clean one as usual.
    assert_eq!(
        f.sign_in(&leaky, LEAKED_PW),
        SignInStatus::MustChangePassword
    );
    assert_eq!(f.sign_in(&clean, CLEAN_PW), SignInStatus::Success);

    // Another full sync reads the same hash again: still one mark, first detection kept.
    f.cycle(true);
    let risks = tenant.risks().unwrap();
    assert_eq!(risks.len(), 1, "{risks:?}");
    assert_eq!(
        (risks[0].user_principal_name.as_str(), risks[0].detected_at),
        (leaky_upn.as_str(), detected)
    );

    // The administrator changes the password on-prem to a clean one: the next cycle
    // clears the mark, and the user signs in normally.
    f.ou.set_password(&leaky, NEW_PW);
    let report = f.cycle(false);
    assert_eq!((report.mode, report.applied), ("incremental", 1));
    assert!(tenant.risks().unwrap().is_empty());
    assert_eq!(f.sign_in(&leaky, NEW_PW), SignInStatus::Success);

    let transitions: Vec<(String, String)> = tenant
        .audit_log(1000)
        .unwrap()
        .into_iter()
        .rev()
        .filter(|a| a.action == LEAKED_ACTION)
        .map(|a| {
            assert_eq!(a.user_principal_name.as_deref(), Some(leaky_upn.as_str()));
            (a.outcome, a.detail.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        transitions,
        [
            (
                "marked".to_string(),
                "the current password is in the leaked list (1234 breaches); must change at next sign-in".to_string()
            ),
            (
                "cleared".to_string(),
                "the password changed on-prem".to_string()
            ),
        ]
    );
}
