//! Cloud password policy: complexity for passwords set in the cloud, expiry, smart lockout.
//! Synced passwords follow the on-prem policy and are never checked here.

use serde::{Deserialize, Serialize};

/// Tenant-wide settings, stored in the tenant and changed with `phsync cloud settings set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Microsoft's CloudPasswordPolicyForPasswordSyncedUsersEnabled: synced passwords
    /// expire by the cloud policy too. Off: a synced password never expires in the cloud.
    pub apply_cloud_password_policy_to_synced: bool,
    pub min_length: u32,
    pub max_length: u32,
    /// How many of the four classes (upper, lower, digit, symbol) a password needs.
    pub required_classes: u32,
    pub forbid_user_name: bool,
    /// Days before a cloud-policy password expires; 0 = never.
    pub max_password_age_days: u32,
    /// Failed sign-ins (distinct wrong passwords) that lock an account.
    pub lockout_threshold: u32,
    /// Failures older than this do not count.
    pub lockout_window_seconds: u32,
    pub lockout_duration_seconds: u32,
    pub session_lifetime_seconds: u32,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            apply_cloud_password_policy_to_synced: false,
            min_length: 8,
            max_length: 256,
            required_classes: 3,
            forbid_user_name: true,
            max_password_age_days: 90,
            lockout_threshold: 10,
            lockout_window_seconds: 3600,
            lockout_duration_seconds: 60,
            session_lifetime_seconds: 86_400,
        }
    }
}

/// A century: the longest password age the tenant accepts.
pub const MAX_PASSWORD_AGE_DAYS: u32 = 36_500;
/// A year: the longest lockout window, lockout and session the tenant accepts.
pub const MAX_PERIOD_SECONDS: u32 = 365 * 86_400;

impl TenantSettings {
    /// The settings' own consistency, and bounds that keep every time computed from them
    /// (expiry, lockout end, session end) a sensible date.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_length == 0 || self.min_length > self.max_length || self.max_length > 512 {
            return Err(
                "password lengths must satisfy 1 <= min_length <= max_length <= 512".into(),
            );
        }
        if self.required_classes > 4 {
            return Err("required_classes must be 0..=4".into());
        }
        if self.lockout_threshold == 0 {
            return Err("lockout_threshold must be at least 1".into());
        }
        if self.max_password_age_days > MAX_PASSWORD_AGE_DAYS {
            return Err(format!(
                "max_password_age_days must be at most {MAX_PASSWORD_AGE_DAYS} (a century; 0 = never expires)"
            ));
        }
        for (name, value) in [
            ("lockout_window_seconds", self.lockout_window_seconds),
            ("lockout_duration_seconds", self.lockout_duration_seconds),
            ("session_lifetime_seconds", self.session_lifetime_seconds),
        ] {
            if value > MAX_PERIOD_SECONDS {
                return Err(format!(
                    "{name} must be at most {MAX_PERIOD_SECONDS} (a year)"
                ));
            }
        }
        Ok(())
    }

    /// Every reason `password` fails the policy; empty when it passes.
    pub fn violations(&self, password: &str, upn: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let length = password.chars().count() as u32;
        if length < self.min_length {
            problems.push(format!(
                "it must have at least {} characters",
                self.min_length
            ));
        }
        if length > self.max_length {
            problems.push(format!(
                "it must have at most {} characters",
                self.max_length
            ));
        }
        let classes = [
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_numeric()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ];
        let have = classes.iter().filter(|&&x| x).count() as u32;
        if have < self.required_classes {
            problems.push(format!(
                "it must use {} of: upper-case letters, lower-case letters, digits, symbols",
                self.required_classes
            ));
        }
        if self.forbid_user_name {
            let name = upn.split('@').next().unwrap_or(upn).to_lowercase();
            if name.chars().count() >= 3 && password.to_lowercase().contains(&name) {
                problems.push("it must not contain the user name".into());
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy() {
        let p = TenantSettings::default();
        assert!(p.violations("Str0ng-Enough", "alice@x.test").is_empty());
        assert_eq!(p.violations("Sh0rt!", "alice@x.test").len(), 1);
        assert_eq!(p.violations("alllowercase", "bob@x.test").len(), 1);
        assert_eq!(
            p.violations("Alice-Passw0rd", "alice@x.test"),
            vec!["it must not contain the user name".to_string()]
        );
        assert!(p.violations("Žluťoučký-kůň-1", "u@x").is_empty());
        assert_eq!(p.violations(&"Aa1!".repeat(65), "u@x").len(), 1);
    }

    #[test]
    fn ages_and_periods_are_bounded() {
        assert!(TenantSettings::default().validate().is_ok());
        let ok = TenantSettings {
            max_password_age_days: MAX_PASSWORD_AGE_DAYS,
            lockout_window_seconds: MAX_PERIOD_SECONDS,
            lockout_duration_seconds: MAX_PERIOD_SECONDS,
            session_lifetime_seconds: MAX_PERIOD_SECONDS,
            ..TenantSettings::default()
        };
        assert!(ok.validate().is_ok());
        let too_much = [
            TenantSettings {
                max_password_age_days: u32::MAX,
                ..ok.clone()
            },
            TenantSettings {
                lockout_window_seconds: MAX_PERIOD_SECONDS + 1,
                ..ok.clone()
            },
            TenantSettings {
                lockout_duration_seconds: u32::MAX,
                ..ok.clone()
            },
            TenantSettings {
                session_lifetime_seconds: u32::MAX,
                ..ok.clone()
            },
        ];
        for s in too_much {
            let e = s.validate().unwrap_err();
            assert!(e.contains("must be at most"), "{e}");
        }
    }
}
