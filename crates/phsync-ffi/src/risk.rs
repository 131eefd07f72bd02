//! C export of the tenant's risk marks (issue 18): who is marked `leaked_credentials`.
//! Each user's own marks are also in `phs_cloud_user`'s `"risks"`.

use std::ffi::c_char;

use crate::cloud::phs_cloud;
use crate::error::phs_status;
use crate::ffi::{ffi_boundary, try_ref_from_ptr, Out};

/// Every user marked at risk, by UPN. On success `*out_json` is
/// `{"risks":[{"user_principal_name","source_anchor","kind":"leaked_credentials","detected_at","breach_count"}]}`
/// (`breach_count` null for a plain hash list); never a hash.
///
/// # Safety
/// `cloud` from `phs_cloud_open*`; `out_json` writable; free `*out_json` with
/// `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_risks(
    cloud: *mut phs_cloud,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let cloud: &phs_cloud = try_ref_from_ptr!(cloud);
        out.check()?;
        let risks = cloud.tenant().risks()?;
        out.set_json(&phsync_tenant::wire::RisksResponse { risks })
    })
}
