//! FIPS mode: the DC's secret wrapping needs MD5 and RC4 (and NT hashes are MD4), which a
//! FIPS-locked host must not use unless the operator opts in, as Microsoft's
//! `enforceFIPSPolicy enabled="false"` does.

/// Is the host in FIPS mode? Linux: `/proc/sys/crypto/fips_enabled`; Windows: the LSA
/// `FipsAlgorithmPolicy\Enabled` value. `PHSYNC_FIPS_ENABLED_FILE` points the Linux check at
/// another file (for tests and containers that hide /proc).
pub fn host_in_fips_mode() -> bool {
    let path = std::env::var_os("PHSYNC_FIPS_ENABLED_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/proc/sys/crypto/fips_enabled".into());
    if let Ok(text) = std::fs::read_to_string(&path) {
        return text.trim() == "1";
    }
    windows_fips_policy()
}

#[cfg(windows)]
fn windows_fips_policy() -> bool {
    std::process::Command::new("reg")
        .args([
            "query",
            r"HKLM\System\CurrentControlSet\Control\Lsa\FipsAlgorithmPolicy",
            "/v",
            "Enabled",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("0x1"))
        .unwrap_or(false)
}

#[cfg(not(windows))]
fn windows_fips_policy() -> bool {
    false
}

/// The refusal, naming the setting that lifts it.
pub const FIPS_REFUSAL: &str =
    "this host is in FIPS mode, and reading password hashes from a domain controller needs \
     MD4, MD5 and RC4 (the DC's own secret wrapping); set allow_non_fips_crypto = true in [sync] \
     to allow them for phsync, as Entra Connect's enforceFIPSPolicy enabled=\"false\" does";
