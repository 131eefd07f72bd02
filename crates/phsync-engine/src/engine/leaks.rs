//! The leaked-credentials check of every sync (issue 18): each delivered user's NT hash is
//! looked up in `[audit] leaked_hashes` while the engine still holds it (it is dropped once
//! digested); only the verdict goes to the tenant, which marks or clears the user.

use phsync_hash::NtHash;
use phsync_tenant::LeakCheck;

use super::Engine;

impl Engine {
    /// The verdict on `nt`, or `None` without a list (the tenant then leaves marks alone).
    pub(super) fn leak_check(&self, nt: &NtHash) -> Option<LeakCheck> {
        let list = self.settings.leaked.as_ref()?;
        Some(match list.hashes.lookup(nt) {
            Some(entry) => LeakCheck::leaked(entry.breach_count, list.block_sign_in),
            None => LeakCheck::clean(),
        })
    }
}
