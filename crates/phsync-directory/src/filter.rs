//! LDAP filter value escaping (RFC 4515 §3).

/// Escape a string for use as an assertion value in an LDAP filter: `*`, `(`, `)`, `\` and NUL
/// become `\2a`, `\28`, `\29`, `\5c`, `\00`; everything else (UTF-8 included) is kept.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Escape raw bytes (e.g. an objectGUID) as `\xx` for every byte.
pub(crate) fn escape_filter_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4515_examples() {
        // The examples of RFC 4515 §4.
        assert_eq!(
            escape_filter_value("Parens R Us (for all your parenthetical needs)"),
            "Parens R Us \\28for all your parenthetical needs\\29"
        );
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("C:\\MyFile"), "C:\\5cMyFile");
        assert_eq!(escape_filter_value("a\0b"), "a\\00b");
        assert_eq!(escape_filter_value("Lučić"), "Lučić");
        assert_eq!(escape_filter_value("plain-name_1.2@x"), "plain-name_1.2@x");
    }

    #[test]
    fn escaped_values_parse_as_one_assertion() {
        for nasty in [
            "*)(objectClass=*",
            "a)(|(b=*",
            "\\",
            "x\0y",
            "(",
            "))((",
            "*",
        ] {
            let f = format!("(sAMAccountName={})", escape_filter_value(nasty));
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
            assert!(!f[1..f.len() - 1].contains(['(', ')', '*']), "{f}");
        }
    }

    #[test]
    fn bytes() {
        assert_eq!(escape_filter_bytes(&[0, 0x2a, 0xff]), "\\00\\2a\\ff");
    }
}
