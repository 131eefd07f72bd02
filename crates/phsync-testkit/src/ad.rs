//! Changing the lab directory the way an administrator would: LDAP modifications over
//! LDAPS as Administrator (ldapmodify from ldap-utils). Each test works in an OU of its own,
//! removed when the fixture drops, so suites sharing the DC never see each other's users.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::lab::Lab;

pub struct TestOu {
    pub lab: Lab,
    pub dn: String,
    /// Short and unique to this OU: append it to sAMAccountNames (20 characters at most).
    pub suffix: String,
}

/// An LDIF `unicodePwd::` value: the password in quotes, UTF-16LE, base64.
pub(crate) fn unicode_pwd(password: &str) -> String {
    let quoted: Vec<u8> = format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(quoted)
}

impl TestOu {
    /// A fresh OU named after `tag`, this process and the time.
    pub fn new(tag: &str) -> TestOu {
        let lab = Lab::load();
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000;
        let dn = format!("OU=phsync-{tag}-{}-{n},{}", std::process::id(), lab.base_dn);
        let suffix = format!("{:05}", n % 100_000);
        let ou = TestOu { lab, dn, suffix };
        ou.ldif(
            "ldapadd",
            &format!("dn: {}\nobjectClass: organizationalUnit\n", ou.dn),
        );
        ou
    }

    /// Run ldapadd/ldapmodify/ldapdelete with `input` on stdin; panic with its output on failure.
    pub fn ldif(&self, tool: &str, input: &str) {
        self.ldif_args(tool, &[], input);
    }

    fn ldif_args(&self, tool: &str, extra: &[&str], input: &str) {
        let mut child = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.lab.ldaps_url,
                "-D",
                &self.lab.admin_dn,
                "-y",
            ])
            .arg(&self.lab.admin_password_file)
            .args(extra)
            .env("LDAPTLS_CACERT", &self.lab.ca_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool} (ldap-utils): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn user_dn(&self, sam: &str) -> String {
        format!("CN={sam},{}", self.dn)
    }

    /// An enabled user with a password; UPN sam@phs.test.
    pub fn add_user(&self, sam: &str, password: &str) {
        self.add_object(sam, password, "user", 512);
    }

    /// Many enabled users with passwords in one ldapadd (one process, one bind): for tests
    /// that need more users than a credential batch.
    pub fn add_users(&self, users: &[(String, String)]) {
        let ldif: Vec<String> = users
            .iter()
            .map(|(sam, password)| self.object_ldif(sam, password, "user", 512))
            .collect();
        self.ldif("ldapadd", &ldif.join("\n"));
    }

    /// objectClass inetOrgPerson (a subclass of user that PHS must skip).
    pub fn add_inet_org_person(&self, sam: &str, password: &str) {
        self.add_object(sam, password, "inetOrgPerson", 512);
    }

    /// A computer account (WORKSTATION_TRUST_ACCOUNT).
    pub fn add_computer(&self, sam: &str, password: &str) {
        self.add_object(sam, password, "computer", 4096);
    }

    fn add_object(&self, sam: &str, password: &str, class: &str, uac: u32) {
        self.ldif("ldapadd", &self.object_ldif(sam, password, class, uac));
    }

    fn object_ldif(&self, sam: &str, password: &str, class: &str, uac: u32) -> String {
        let upn = if class == "computer" {
            String::new()
        } else {
            format!("userPrincipalName: {sam}@{}\n", self.lab.dns_domain)
        };
        format!(
            "dn: {}\nobjectClass: {class}\nsAMAccountName: {sam}\n{upn}displayName: Test {sam}\nunicodePwd:: {}\nuserAccountControl: {uac}\n",
            self.user_dn(sam),
            unicode_pwd(password)
        )
    }

    pub fn set_password(&self, sam: &str, password: &str) {
        self.ldif(
            "ldapmodify",
            &format!(
                "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
                self.user_dn(sam),
                unicode_pwd(password)
            ),
        );
    }

    /// Many password changes over one LDAP connection (one ldapmodify process, one bind),
    /// applied one after another in the order given: a user's changes listed in order stay
    /// in order. Panics (with ldapmodify's output) at the first refused change.
    pub fn set_passwords(&self, changes: &[(String, String)]) {
        let ldif: String = changes
            .iter()
            .map(|(sam, password)| {
                format!(
                    "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n\n",
                    self.user_dn(sam),
                    unicode_pwd(password)
                )
            })
            .collect();
        self.ldif("ldapmodify", &ldif);
    }

    pub fn set_uac(&self, sam: &str, uac: u32) {
        self.ldif(
            "ldapmodify",
            &format!("dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {uac}\n", self.user_dn(sam)),
        );
    }

    /// "User must change password at next logon".
    pub fn set_must_change(&self, sam: &str) {
        self.ldif(
            "ldapmodify",
            &format!(
                "dn: {}\nchangetype: modify\nreplace: pwdLastSet\npwdLastSet: 0\n",
                self.user_dn(sam)
            ),
        );
    }

    /// Change `description` only (a change PHS must not replicate for).
    pub fn set_description(&self, sam: &str, text: &str) {
        self.ldif(
            "ldapmodify",
            &format!(
                "dn: {}\nchangetype: modify\nreplace: description\ndescription: {text}\n",
                self.user_dn(sam)
            ),
        );
    }

    /// A global security group in this OU; its DN.
    pub fn add_group(&self, name: &str) -> String {
        let dn = format!("CN={name},{}", self.dn);
        self.ldif(
            "ldapadd",
            &format!("dn: {dn}\nobjectClass: group\nsAMAccountName: {name}\n"),
        );
        dn
    }

    /// Add (`add`) or remove (`delete`) users to/from the group `group_dn`.
    pub fn set_members(&self, group_dn: &str, op: &str, sams: &[&str]) {
        let members: String = sams
            .iter()
            .map(|s| format!("member: {}\n", self.user_dn(s)))
            .collect();
        self.ldif(
            "ldapmodify",
            &format!("dn: {group_dn}\nchangetype: modify\n{op}: member\n{members}"),
        );
    }

    /// A child OU of this one; its DN (removed with this OU).
    pub fn add_child_ou(&self, name: &str) -> String {
        let dn = format!("OU={name},{}", self.dn);
        self.ldif(
            "ldapadd",
            &format!("dn: {dn}\nobjectClass: organizationalUnit\n"),
        );
        dn
    }

    /// Move the user `sam` (in this OU) under `parent_dn`.
    pub fn move_user(&self, sam: &str, parent_dn: &str) {
        self.ldif(
            "ldapmodify",
            &format!(
                "dn: {}\nchangetype: modrdn\nnewrdn: CN={sam}\ndeleteoldrdn: 1\nnewsuperior: {parent_dn}\n",
                self.user_dn(sam)
            ),
        );
    }

    pub fn upn(&self, sam: &str) -> String {
        format!("{sam}@{}", self.lab.dns_domain)
    }
}

impl Drop for TestOu {
    fn drop(&mut self) {
        let _ = Command::new("ldapdelete")
            .args([
                "-x",
                "-r",
                "-H",
                &self.lab.ldaps_url,
                "-D",
                &self.lab.admin_dn,
                "-y",
            ])
            .arg(&self.lab.admin_password_file)
            .arg(&self.dn)
            .env("LDAPTLS_CACERT", &self.lab.ca_file)
            .output();
    }
}
